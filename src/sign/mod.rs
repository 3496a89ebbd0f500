//! Signing and verification of models in the OpenSSF model signing format (OMS v1.0).
//!
//! This module is pure: it never reaches the network and knows nothing about OCI
//! transport or the CLI. Trust material (public keys, root certificates) is always
//! passed in by the caller through a [`TrustPolicy`].
//!
//! Layers, bottom up:
//! - [`keys`]: key generation and loading (ECDSA P-256/P-384/P-521, Ed25519), key hints.
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
mod ca_signer;
pub mod certs;
pub mod components;
pub mod keyless;
pub mod keys;
pub mod local;
pub mod oms;
mod pae_compat;
mod pbes2;
pub mod statement;

pub use bundle::{Signer, TrustPolicy, VerifiedBy, VerifiedStatement, verify_bundle};
pub use keys::{Algorithm, PublicKey, SigningKey};

use crate::digest::Digest;

/// Largest bundle [`verify_bundle`] (or the keyless verifier) parses: a statement listing
/// every file of a huge model is still far below this.
pub const MAX_BUNDLE_SIZE: usize = 256 << 20;

/// Why signing or signature verification failed. Each message is one line and says
/// what was wrong; none of them leaks key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key could not be read or is not usable.
    #[error("{what}: {reason}")]
    InvalidKey { what: String, reason: String },

    /// The private key is encrypted and no password was given.
    #[error("the private key is encrypted: a password is needed")]
    PasswordRequired,

    /// The password does not decrypt the private key.
    #[error("cannot decrypt the private key: wrong password or corrupt key")]
    WrongPassword,

    /// A certificate could not be parsed.
    #[error("{what}: invalid certificate: {reason}")]
    InvalidCertificate { what: String, reason: String },

    /// The signing certificate does not match the private key.
    #[error("the signing certificate's public key does not match the private key")]
    CertificateKeyMismatch,

    /// The certificate chain does not lead to a trusted root.
    #[error("certificate chain not trusted: {0}")]
    UntrustedChain(String),

    /// The signing certificate may not sign.
    #[error(
        "the signing certificate cannot be used for signing (it needs key usage digitalSignature or extended key usage codeSigning)"
    )]
    CertificateUsage,

    /// The bundle is not well-formed JSON of the expected shape.
    #[error("malformed signature bundle: {0}")]
    MalformedBundle(String),

    /// The bundle declares a media type this verifier does not know.
    #[error("unsupported bundle media type `{0}` (expected application/vnd.dev.sigstore.bundle.v0.3+json)")]
    UnsupportedMediaType(String),

    /// The bundle's verification material is of a kind this verifier does not handle.
    #[error("unsupported verification material: {0}")]
    UnsupportedMaterial(String),

    /// The DSSE payload is not an in-toto statement.
    #[error("unsupported DSSE payload type `{0}` (expected application/vnd.in-toto+json)")]
    PayloadType(String),

    /// The DSSE envelope does not carry exactly one signature.
    #[error("the DSSE envelope carries {0} signatures; exactly one is required")]
    SignatureCount(usize),

    /// No trusted key verified the signature.
    #[error("signature does not verify with any trusted key ({0})")]
    BadSignature(String),

    /// The trust policy is empty.
    #[error("no trusted public key or root certificate was given")]
    NoTrust,

    /// The statement (payload) is not valid.
    #[error("invalid statement: {0}")]
    InvalidStatement(String),

    /// A sharded OMS statement (`sha256-sharded-*`, `method: shards`).
    #[error("sharded OMS signatures are not supported yet")]
    Sharded,

    /// The subject digest is not the digest of the listed resources.
    #[error("the statement's subject digest {claimed} does not match its resources, which hash to {computed}")]
    RootDigestMismatch { claimed: String, computed: Digest },

    /// The same resource is listed twice.
    #[error("resource `{0}` is listed more than once")]
    DuplicateResource(String),

    /// The model has files the signature does not cover.
    #[error("extra files found in model (not covered by the signature): {}", list(.0))]
    ExtraFiles(Vec<String>),

    /// Files the signature covers are absent.
    #[error("missing files in model: {}", list(.0))]
    MissingFiles(Vec<String>),

    /// A keyless trust rule (identity, issuer, regular expression) is not usable.
    #[error("{0}")]
    InvalidPolicy(String),

    /// A Sigstore trusted root cannot be used.
    #[error("invalid trusted root: {0}")]
    InvalidTrustedRoot(String),

    /// A Sigstore trusted root file cannot be read.
    #[error("cannot read the trusted root {0}")]
    TrustedRootUnreadable(String),

    /// Sigstore verification (certificate chain, SCT, log entry, timestamp, signature) failed.
    #[error("Sigstore verification failed: {0}")]
    Sigstore(String),

    /// A keyless signature verified, but for an identity or issuer that is not trusted.
    #[error("certificate identity not trusted: {0}")]
    IdentityMismatch(String),

    /// Reading the artifact failed.
    #[error("{0}")]
    Io(String),

    /// A file's content differs from what was signed.
    #[error("hash mismatch for `{path}`: signed {expected}, found {actual}")]
    HashMismatch { path: String, expected: Digest, actual: Digest },
}

/// Shows at most ten names, then how many more.
fn list(names: &[String]) -> String {
    let mut out: Vec<String> = names.iter().take(10).map(|n| format!("`{n}`")).collect();
    if names.len() > 10 {
        out.push(format!("and {} more", names.len() - 10));
    }
    out.join(", ")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
