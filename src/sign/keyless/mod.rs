//! Verifying any Sigstore bundle (v0.1–v0.3; a message signature or a DSSE envelope)
//! against trusted material: keyless signatures (a Fulcio certificate for an OIDC identity,
//! logged in Rekor and/or timestamped) and managed-key signatures.
//!
//! The checks are sigstore-rust's `sigstore-verify` (pinned exactly): the certificate chain
//! to a Fulcio CA of the trusted root at every verified signing time, the certificate's SCT
//! against the root's CT logs, each Rekor entry (v1: SET and inclusion proof with a signed
//! checkpoint; v2: checkpoint and inclusion proof) and that it describes this signature and
//! certificate, RFC 3161 timestamps against the root's TSAs, the log time within the
//! certificate's validity, and the signature over the artifact or the DSSE PAE. Identity and
//! issuer come from the certificate's SAN and Fulcio issuer extension and are matched here
//! ([`identity`]: exactly, or by a regular expression anchored at both ends).
//!
//! A key-signed bundle with neither a log entry nor a timestamp (what `model_signing sign
//! key` writes, and what cosign writes with a signing config without a log) carries no
//! signing time to check; the key is the whole trust, and `sigstore-verify` refuses such
//! bundles, so they are verified here: the signature over the PAE (DSSE) or over the
//! artifact's digest (message signature) with the trusted key.

pub mod identity;
pub mod trusted_root;

use std::io::Read;

use sigstore_verify::crypto::{KeyAlgorithm, verify_signature_prehashed};
use sigstore_verify::types::bundle::VerificationMaterialContent;
use sigstore_verify::types::{Artifact, Bundle, DerPublicKey, HashAlgorithm, SignatureContent, Statement};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, VerificationResult};

pub use identity::{CertificateIdentity, Matcher};
pub use trusted_root::TrustedRoot;

use super::MAX_BUNDLE_SIZE;
use super::keys::PublicKey;
use super::{Error, Result};
use crate::digest::{Digest, Hasher};

/// What a bundle must have signed.
pub enum Subject<'a> {
    /// The artifact's bytes, read to the end (streamed; never held in memory).
    Reader(&'a mut dyn Read),
    /// The artifact's SHA-256 (for a DSSE statement: one of its subjects' digests).
    Digest(Digest),
}

/// Who must have signed it.
#[derive(Clone, Copy)]
pub enum Expected<'a> {
    /// This public key (a managed-key bundle).
    Key(&'a PublicKey),
    /// A certificate from the trusted root's Fulcio for one of these identities.
    Identities(&'a [CertificateIdentity]),
}

/// What verified, for reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SigstoreVerified {
    /// The certificate's SAN (email or URI), for a keyless signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The certificate's OIDC issuer, for a keyless signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Transparency log entries whose inclusion was verified.
    pub log_entries: usize,
    /// Verified signing times (Rekor v1 integrated times, RFC 3161 timestamps), RFC 3339.
    pub signing_times: Vec<String>,
}

/// Parses a bundle of any version (v0.1–v0.3, either content kind).
pub fn parse_bundle(bytes: &[u8]) -> Result<Bundle> {
    if bytes.len() > MAX_BUNDLE_SIZE {
        return Err(Error::MalformedBundle(format!("larger than {MAX_BUNDLE_SIZE} bytes")));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Error::MalformedBundle("not UTF-8".into()))?;
    Bundle::from_json(text).map_err(|e| Error::MalformedBundle(e.to_string()))
}

/// Verifies `bundle` over `subject` as signed by `expected`, with `root`'s logs, CAs and
/// timestamp authorities. See the module documentation for what is checked.
pub fn verify(
    bundle: &Bundle,
    subject: Subject<'_>,
    expected: Expected<'_>,
    root: &TrustedRoot,
) -> Result<SigstoreVerified> {
    match expected {
        Expected::Key(key) => verify_with_key(bundle, subject, key, root),
        Expected::Identities(identities) => verify_keyless(bundle, subject, identities, root),
    }
}

fn sigstore_error(e: sigstore_verify::Error) -> Error {
    Error::Sigstore(e.to_string())
}

fn run(
    root: &TrustedRoot,
    bundle: &Bundle,
    subject: Subject<'_>,
    policy: &(impl sigstore_verify::Policy + ?Sized),
) -> Result<VerificationResult> {
    let verifier = root.verifier();
    match subject {
        Subject::Reader(reader) => verifier.verify_reader(reader, bundle, policy),
        Subject::Digest(d) => verifier.verify(Artifact::from_digest(sha256(&d)), bundle, policy),
    }
    .map_err(sigstore_error)
}

fn sha256(d: &Digest) -> sigstore_verify::types::Sha256Hash {
    sigstore_verify::types::Sha256Hash::new(*d.raw())
}

fn verify_keyless(
    bundle: &Bundle,
    subject: Subject<'_>,
    identities: &[CertificateIdentity],
    root: &TrustedRoot,
) -> Result<SigstoreVerified> {
    if identities.is_empty() {
        return Err(Error::NoTrust);
    }
    if bundle.signing_certificate().is_none() {
        return Err(Error::Sigstore("the bundle is signed with a key, not a certificate: verify it with --key".into()));
    }
    // The crypto is checked for any identity the root's Fulcio certified; who signed is
    // matched below, so that one pass serves several trusted identities and regexps.
    let policy = if root.requires_sct() {
        VerificationPolicy::any_identity()
    } else {
        VerificationPolicy::any_identity().skip_sct()
    };
    let result = run(root, bundle, subject, &policy)?;
    let sct_ok = result.sct_verified() || !root.requires_sct();
    if !(result.certificate_verified() && sct_ok && result.tlog_verified()) {
        return Err(Error::Sigstore("the certificate, its SCT or the log entries were not verified".into()));
    }
    let identity = result.identity().map(|s| s.as_str().to_string());
    let issuer = result.issuer().map(str::to_string);
    let (Some(found_identity), Some(found_issuer)) = (&identity, &issuer) else {
        return Err(Error::IdentityMismatch(format!(
            "the certificate names no {} (expected {})",
            if identity.is_none() { "identity (SAN)" } else { "OIDC issuer" },
            list(identities)
        )));
    };
    if !identities.iter().any(|i| i.matches(found_identity, found_issuer)) {
        return Err(Error::IdentityMismatch(format!(
            "signed by `{found_identity}` from issuer `{found_issuer}`; trusted: {}",
            list(identities)
        )));
    }
    Ok(report(&result, identity, issuer, bundle))
}

fn list(identities: &[CertificateIdentity]) -> String {
    identities.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

fn report(
    result: &VerificationResult,
    identity: Option<String>,
    issuer: Option<String>,
    bundle: &Bundle,
) -> SigstoreVerified {
    SigstoreVerified {
        identity,
        issuer,
        log_entries: if result.tlog_verified() { bundle.verification_material.tlog_entries.len() } else { 0 },
        signing_times: result.verified_timestamps().iter().map(ToString::to_string).collect(),
    }
}

fn verify_with_key(
    bundle: &Bundle,
    subject: Subject<'_>,
    key: &PublicKey,
    root: &TrustedRoot,
) -> Result<SigstoreVerified> {
    if !matches!(bundle.verification_material.content, VerificationMaterialContent::PublicKey(_)) {
        // A certificate's key may still be the trusted one (model_signing `verify key`
        // accepts that); only the signature counts then, as for a bare key.
        return verify_key_only(bundle, subject, key);
    }
    let material = &bundle.verification_material;
    if material.tlog_entries.is_empty() && material.timestamp_verification_data.rfc3161_timestamps.is_empty() {
        return verify_key_only(bundle, subject, key);
    }
    let policy = PublicKeyVerificationPolicy::new(DerPublicKey::from(key.spki_der().to_vec()));
    let result = run(root, bundle, subject, &policy)?;
    Ok(report(&result, None, None, bundle))
}

/// The key is the whole trust: the signature must verify with it, and the artifact must
/// be what was signed. Log entries and timestamps, if any, are not looked at.
fn verify_key_only(bundle: &Bundle, subject: Subject<'_>, key: &PublicKey) -> Result<SigstoreVerified> {
    let digest = match subject {
        Subject::Digest(d) => d,
        Subject::Reader(reader) => hash(reader)?,
    };
    match &bundle.content {
        SignatureContent::DsseEnvelope(envelope) => {
            key.verify(&envelope.pae(), envelope.signature.sig.as_bytes())?;
            if envelope.payload_type != super::statement::PAYLOAD_TYPE {
                return Err(Error::PayloadType(envelope.payload_type.clone()));
            }
            let statement: Statement = serde_json::from_slice(envelope.payload.as_bytes())
                .map_err(|e| Error::InvalidStatement(e.to_string()))?;
            if !statement.matches_sha256(&sha256(&digest)) {
                return Err(Error::Sigstore(format!("the artifact {digest} is not a subject of the signed statement")));
            }
        }
        SignatureContent::MessageSignature(message) => {
            if let Some(claimed) = &message.message_digest
                && (claimed.algorithm != HashAlgorithm::Sha2256 || claimed.digest.as_bytes() != digest.raw())
            {
                return Err(Error::Sigstore(format!("the bundle's message digest is not the artifact's ({digest})")));
            }
            let der = DerPublicKey::from(key.spki_der().to_vec());
            let scheme =
                KeyAlgorithm::from_spki(&der).and_then(|a| a.resolve_signing_scheme(HashAlgorithm::Sha2256)).map_err(
                    |e| Error::BadSignature(format!("this key cannot verify a SHA-256 message signature: {e}")),
                )?;
            verify_signature_prehashed(&der, digest.raw(), &message.signature, scheme)
                .map_err(|e| Error::BadSignature(format!("the signature does not verify with the trusted key: {e}")))?;
        }
        _ => return Err(Error::MalformedBundle("neither a message signature nor a DSSE envelope".into())),
    }
    Ok(SigstoreVerified { identity: None, issuer: None, log_entries: 0, signing_times: Vec::new() })
}

fn hash(reader: &mut dyn Read) -> Result<Digest> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(format!("reading the artifact: {e}"))),
        }
    }
}
