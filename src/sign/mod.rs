//! Signing and verification of models in the OpenSSF model signing format (OMS v1.0).
//!
//! This module is pure: it never reaches the network and knows nothing about OCI
//! transport or the CLI. Trust material (public keys, root certificates) is always
//! passed in by the caller through a [`TrustPolicy`].
//!
//! Layers, bottom up:
//! - [`keys`]: key generation and loading (ECDSA P-256/P-384/P-521, Ed25519), key hints.
//! - [`pkcs11`]: keys in a hardware token or HSM, named by an RFC 7512 `pkcs11:` URI.
//! - [`certs`]: signing certificate chains, and their validation against trusted roots
//!   the way `model_signing` validates them.
//! - [`statement`]: in-toto Statement v1, parsed without caring about key order.
//! - [`oms`]: the OMS v1.0 predicate (`https://model_signing/signature/v1.0`): building a
//!   statement from file digests and checking one that was parsed.
//! - [`components`]: the component statement (`https://modelsign.dev/components/v1`):
//!   some components by path and digest, no manifest.
//! - [`bundle`]: Sigstore bundle v0.3 with a DSSE envelope, as `model_signing` writes it;
//!   [`bundle::verify_bundle`] is the only way to obtain a [`VerifiedStatement`].
//! - [`local`]: `sign`/`verify` of a model folder with a detached signature file
//!   (`model.sig`), interchangeable with `model_signing sign|verify key|certificate`.
//!
//! Invariant: a [`VerifiedStatement`] exists only when a DSSE signature over its exact
//! payload bytes verified with a key the caller trusts (directly, or through a
//! certificate chain that ends at a trusted root); the statement was then checked for
//! OMS consistency (one subject, recomputed root digest, no duplicate names).
//! What the statement says about files is checked against the files by the caller
//! ([`local::verify_folder`] for a folder on disk).

pub mod bundle;
pub mod certs;
pub mod components;
pub mod keyless;
pub mod keys;
pub mod local;
pub mod oms;
mod pae_compat;
mod pbes2;
pub mod pkcs11;
pub mod statement;

pub use bundle::{Signer, TrustPolicy, VerifiedBy, VerifiedStatement, verify_bundle};
pub use keys::{Algorithm, PublicKey, SigningKey};

/// Largest bundle [`verify_bundle`] (or the keyless verifier) parses: a statement listing
/// every file of a huge model is still far below this.
pub const MAX_BUNDLE_SIZE: usize = 256 << 20;

/// Why signing or signature verification failed (defined beside the crate's error type,
/// which wraps it, so that `error` does not import `sign`).
pub use crate::error::SignError as Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;
