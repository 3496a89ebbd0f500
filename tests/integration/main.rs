mod support;

mod sign_interop;
mod testbed_smoke;
mod transport_layout;
