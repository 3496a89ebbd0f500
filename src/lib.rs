//! modelsign: AI models as OCI artifacts, one layer per file, signed so that one
//! component can be verified without the rest. See `docs/ARCHITECTURE.md`.

pub mod atomic_file;
pub mod card;
pub mod digest;
pub mod digest_cache;
pub mod error;
pub mod folder;
pub mod modelpack;
pub mod oci;
pub mod ops;
pub mod progress;
pub mod reference;
pub mod sign;
pub mod store;
pub mod verifying_reader;

pub use error::{Error, Result};
