mod support;

mod faults;
mod interop;
mod registry_target;
mod sign_interop;
mod testbed_smoke;
mod transport_layout;
mod transport_registry;
