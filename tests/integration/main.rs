mod support;

mod auth;
mod delta;
mod faults;
mod fuzz_parsers;
mod hardening_pull;
mod hardening_registry;
mod interop;
mod keyless;
mod registry_target;
mod sign_interop;
mod signing_attacks;
mod signing_registry;
mod testbed_smoke;
mod tls;
mod transport_layout;
mod transport_registry;
