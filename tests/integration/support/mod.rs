//! The integration tests' harness: finds the test bed (`scripts/testbed.sh`), starts real
//! registries on loopback, puts a fault-injecting proxy in front of them, and runs the peer
//! tools (oras, cosign, skopeo, model_signing) and our own binary. See docs/TESTING.md.
//!
//! A test that needs the test bed starts with `let tb = require_testbed!();`: without the
//! test bed it is skipped loudly, or fails when `MODELSIGN_REQUIRE_TESTBED=1` (CI).
#![allow(dead_code)]

pub mod bed;
pub mod cases;
pub mod cli;
pub mod fixtures;
pub mod http;
pub mod peers;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod registry;
pub mod signing;
pub mod sigstore_stack;
pub mod softhsm;
pub mod testbed;

pub use bed::*;
pub use cases::{CaseKind, Place};
pub use cli::*;
pub use fixtures::*;
pub use http::*;
pub use peers::*;
pub use ports::closed_port;
pub use process::run_within;
pub use proxy::*;
pub use registry::*;
pub use signing::*;
pub use testbed::*;

pub use crate::bed;
pub use crate::proxied_bed;
pub use crate::registry_cases;
pub use crate::require_testbed;
