//! Sigstore bundle v0.3 with a DSSE envelope: what `model_signing sign key|certificate`
//! writes (compact JSON on one line) and what registry tools (cosign) read.
//!
//! Signing: [`Signer::sign_statement`] serialises an in-toto statement, signs its DSSE
//! PAE and wraps it with the verification material: `publicKey.hint` for a bare key,
//! `x509CertificateChain` (leaf first) with a certificate; `tlogEntries` is empty unless a
//! [`BundleWitness`] (keyless signing, `crate::sigstore`) completes the bundle.
//!
//! Verification: [`verify_bundle`] is the only way to get a [`VerifiedStatement`]. It
//! fails closed: unknown media type, a message signature instead of DSSE, a payload
//! type other than in-toto, an envelope without exactly one signature (the Sigstore
//! bundle format allows one; `model_signing` reads only the first), bad base64, or a
//! signature no trusted key verifies. Policy:
//! - the signature is tried against **every** trusted public key, whatever the bundle's
//!   key hint says (a hint is never proof; it only improves the error message);
//! - if the bundle carries a certificate chain and the policy has trusted roots, the
//!   chain is validated ([`crate::sign::certs::TrustRoots::validate`]) and the leaf's key is tried too;
//! - transparency log entries and timestamps are ignored: trust comes only from the
//!   policy's keys and roots (this is offline verification, as `model_signing verify
//!   key|certificate` does).
//!
//! Submodules: `json` the wire shapes (shared by both sides), `write` the signer,
//! `verify` the verifier and its trust policy.

mod json;
mod verify;
mod write;

pub use verify::{TrustPolicy, VerifiedBy, VerifiedStatement, verify_bundle};
pub use write::{BundleWitness, HintStyle, Signer};

/// Media type of a Sigstore bundle v0.3.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

pub use super::MAX_BUNDLE_SIZE;

/// The other spelling of the v0.3 media type, which Sigstore clients also accept.
const BUNDLE_MEDIA_TYPE_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";

#[cfg(test)]
pub(crate) mod tests;
