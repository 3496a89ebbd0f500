//! Verification: [`verify_bundle`] is the only way to get a [`VerifiedStatement`]; the
//! parent module's documentation lists what it checks.

use sigstore_types::dsse::pae;

use super::json::{BundleJson, decode_base64};
use super::{BUNDLE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE_ALT, MAX_BUNDLE_SIZE};
use crate::sign::certs::{CertChain, Certificate, TrustRoots};
use crate::sign::keyless::{self, CertificateIdentity, TrustedRoot};
use crate::sign::keys::PublicKey;
use crate::sign::statement::{PAYLOAD_TYPE, Statement};
use crate::sign::{Error, Result};

/// What the verifier trusts: public keys, and root certificates for certificate chains.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    keys: Vec<PublicKey>,
    roots: TrustRoots,
    identities: Vec<CertificateIdentity>,
    sigstore_root: Option<TrustedRoot>,
}

impl TrustPolicy {
    pub fn new() -> Self {
        TrustPolicy::default()
    }

    /// Trusts signatures made by `key`.
    pub fn trust_key(mut self, key: PublicKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Trusts certificate chains leading to these certificates (self-issued ones are
    /// anchors; others only help build paths).
    pub fn trust_certificates(mut self, certs: impl IntoIterator<Item = Certificate>) -> Self {
        self.roots.add(certs);
        self
    }

    /// Trusts keyless Sigstore signatures by this identity and issuer, checked against
    /// [`Self::sigstore_root`] (default: the built-in public-good root).
    pub fn trust_identity(mut self, identity: CertificateIdentity) -> Self {
        self.identities.push(identity);
        self
    }

    /// The Sigstore trusted root keyless signatures are checked against.
    pub fn sigstore_root(mut self, root: TrustedRoot) -> Self {
        self.sigstore_root = Some(root);
        self
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    pub fn identities(&self) -> &[CertificateIdentity] {
        &self.identities
    }

    pub fn roots(&self) -> &TrustRoots {
        &self.roots
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.roots.is_empty() && self.identities.is_empty()
    }
}

/// Which trusted material verified a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedBy {
    /// A trusted public key.
    Key(PublicKey),
    /// A certificate chain that validated against the trusted roots; the leaf first.
    Certificate(CertChain),
    /// A keyless Sigstore signature: a Fulcio certificate for this identity and OIDC
    /// issuer, its SCT, log entries and timestamps verified against the Sigstore root.
    Keyless { identity: String, issuer: String },
}

/// A statement whose signature verified against the trust policy. Only
/// [`verify_bundle`] creates one.
#[derive(Debug, Clone)]
pub struct VerifiedStatement {
    statement: Statement,
    payload: Vec<u8>,
    verified_by: VerifiedBy,
}

impl VerifiedStatement {
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The exact signed payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    pub fn verified_by(&self) -> &VerifiedBy {
        &self.verified_by
    }
}

/// Verifies a bundle against `policy` and parses its in-toto statement. See the module
/// documentation for exactly what is checked. The statement's predicate is not
/// interpreted here (see [`crate::sign::oms::Manifest::from_statement`]).
pub fn verify_bundle(bundle: &[u8], policy: &TrustPolicy) -> Result<VerifiedStatement> {
    if policy.is_empty() {
        return Err(Error::NoTrust);
    }
    if bundle.len() > MAX_BUNDLE_SIZE {
        return Err(Error::MalformedBundle(format!("larger than {MAX_BUNDLE_SIZE} bytes")));
    }
    let media_type: serde_json::Value =
        serde_json::from_slice(bundle).map_err(|e| Error::MalformedBundle(e.to_string()))?;
    match media_type.get("mediaType").and_then(|m| m.as_str()) {
        Some(BUNDLE_MEDIA_TYPE | BUNDLE_MEDIA_TYPE_ALT) => {}
        Some(other) => return Err(Error::UnsupportedMediaType(other.to_string())),
        None => return Err(Error::MalformedBundle("no mediaType".into())),
    }
    let json: BundleJson = serde_json::from_value(media_type).map_err(|e| Error::MalformedBundle(e.to_string()))?;
    let envelope = match (json.dsse_envelope, json.message_signature) {
        (Some(envelope), None) => envelope,
        (None, Some(_)) => {
            return Err(Error::UnsupportedMaterial("a message signature (only DSSE envelopes are supported)".into()));
        }
        _ => return Err(Error::MalformedBundle("expected exactly one of dsseEnvelope and messageSignature".into())),
    };
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(Error::PayloadType(envelope.payload_type));
    }
    let [signature] = envelope.signatures.as_slice() else {
        return Err(Error::SignatureCount(envelope.signatures.len()));
    };
    let payload = decode_base64(&envelope.payload, "the DSSE payload")?;
    let sig = decode_base64(&signature.sig, "the DSSE signature")?;
    let message = pae(&envelope.payload_type, &payload);

    let material = json.verification_material;
    let certificates = match (&material.public_key, &material.x509_certificate_chain, &material.certificate) {
        (Some(_), None, None) => None,
        (None, Some(chain), None) => Some(chain.certificates.iter().collect::<Vec<_>>()),
        (None, None, Some(cert)) => Some(vec![cert]),
        _ => {
            return Err(Error::MalformedBundle(
                "expected exactly one of publicKey, x509CertificateChain and certificate".into(),
            ));
        }
    };
    let chain = match certificates {
        None => None,
        Some(certs) => Some(
            CertChain::new(
                certs
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        Certificate::from_der(
                            &decode_base64(&c.raw_bytes, "a certificate")?,
                            &format!("bundle certificate #{i}"),
                        )
                    })
                    .collect::<Result<_>>()?,
            )
            .map_err(|_| Error::MalformedBundle("an empty x509CertificateChain".into()))?,
        ),
    };

    let hint = material.public_key.and_then(|k| k.hint);
    let compat = crate::sign::pae_compat::pae_v0_2(&payload);
    let verified_by = match check_signature(&message, &compat, &sig, policy, chain.clone(), hint) {
        Ok(by) => by,
        // Keyless: the certificate, its log entries and timestamps are checked by
        // sigstore-verify against the Sigstore trusted root.
        Err(e) if chain.is_some() && !policy.identities.is_empty() => match check_keyless(bundle, &payload, policy) {
            Ok(by) => by,
            Err(keyless) if policy.keys.is_empty() && policy.roots.is_empty() => return Err(keyless),
            Err(keyless) => return Err(Error::BadSignature(format!("{e}; keyless: {keyless}"))),
        },
        Err(e) => return Err(e),
    };
    let statement = Statement::from_json(&payload)?;
    Ok(VerifiedStatement { statement, payload, verified_by })
}

/// A keyless signature: the bundle as Sigstore verifies it, for one of the policy's
/// identities. The artifact is the statement's own subject digest: what the subject
/// stands for (a manifest, a model's files) is checked by the caller, as for any bundle.
fn check_keyless(bundle: &[u8], payload: &[u8], policy: &TrustPolicy) -> Result<VerifiedBy> {
    let parsed = keyless::parse_bundle(bundle)?;
    match &parsed.content {
        sigstore_types::SignatureContent::DsseEnvelope(envelope) if envelope.payload.as_bytes() == payload => {}
        _ => return Err(Error::MalformedBundle("the DSSE envelope reads differently to Sigstore's parser".into())),
    }
    let statement = Statement::from_json(payload)?;
    let digest = statement
        .subject
        .iter()
        .find_map(|s| s.digest.get("sha256").and_then(|d| crate::digest::Digest::from_hex(d).ok()))
        .ok_or_else(|| Error::InvalidStatement("no subject has a sha256 digest".into()))?;
    let root = match &policy.sigstore_root {
        Some(root) => root.clone(),
        None => TrustedRoot::public_good()?,
    };
    let verified = keyless::verify(
        &parsed,
        keyless::Subject::Digest(digest),
        keyless::Expected::Identities(&policy.identities),
        &root,
    )?;
    match (verified.identity, verified.issuer) {
        (Some(identity), Some(issuer)) => Ok(VerifiedBy::Keyless { identity, issuer }),
        _ => Err(Error::Sigstore("the certificate names no identity or issuer".into())),
    }
}

/// `message` is the DSSE PAE; `compat` what `model_signing` 0.2 signed instead
/// ([`crate::sign::pae_compat`]), accepted for trusted keys and certificate chains only.
fn check_signature(
    message: &[u8],
    compat: &[u8],
    sig: &[u8],
    policy: &TrustPolicy,
    chain: Option<CertChain>,
    hint: Option<String>,
) -> Result<VerifiedBy> {
    for key in &policy.keys {
        if key.verify(message, sig).is_ok() || key.verify(compat, sig).is_ok() {
            return Ok(VerifiedBy::Key(key.clone()));
        }
    }
    let mut reasons = Vec::new();
    if !policy.keys.is_empty() {
        let hinted = hint.as_deref().is_some_and(|h| policy.keys.iter().any(|k| k.matches_hint(h)));
        reasons.push(match (&hint, hinted) {
            (Some(_), true) => format!(
                "the hinted key is trusted but the signature does not match it ({} trusted keys tried)",
                policy.keys.len()
            ),
            (Some(h), false) => format!("signed by another key (hint {h}); {} trusted keys tried", policy.keys.len()),
            (None, _) => format!("{} trusted keys tried", policy.keys.len()),
        });
    }
    match chain {
        Some(chain) if !policy.roots.is_empty() => {
            let leaf_key = match policy.roots.validate(&chain) {
                Ok(key) => key,
                // With no trusted key to fall back on, the chain's own error is the answer.
                Err(e) if policy.keys.is_empty() => return Err(e),
                Err(e) => return Err(Error::BadSignature(format!("{}; certificate chain: {e}", reasons.join("; ")))),
            };
            if leaf_key.verify(message, sig).is_ok() || leaf_key.verify_ecdsa_sha256(compat, sig).is_ok() {
                return Ok(VerifiedBy::Certificate(chain));
            }
            reasons.push(format!("the signing certificate `{}` does not verify the signature", chain.leaf().subject()));
        }
        Some(_) => reasons.push("the bundle carries a certificate chain but no root certificate is trusted".into()),
        None if policy.keys.is_empty() => {
            reasons.push("the bundle carries no certificate and no public key is trusted".into())
        }
        None => {}
    }
    Err(Error::BadSignature(reasons.join("; ")))
}
