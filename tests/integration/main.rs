mod support;
mod testbed_smoke;
