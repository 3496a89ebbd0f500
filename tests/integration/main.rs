mod support;

mod testbed_smoke;
mod transport_layout;
