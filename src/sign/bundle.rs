//! Sigstore bundle v0.3 with a DSSE envelope: what `model_signing sign key|certificate`
//! writes (compact JSON on one line) and what registry tools (cosign) read.
//!
//! Signing: [`Signer::sign_statement`] serialises an in-toto statement, signs its DSSE
//! PAE and wraps it with the verification material: `publicKey.hint` for a bare key,
//! `x509CertificateChain` (leaf first) with a certificate; `tlogEntries` is always empty.
//!
//! Verification: [`verify_bundle`] is the only way to get a [`VerifiedStatement`]. It
//! fails closed: unknown media type, a message signature instead of DSSE, a payload
//! type other than in-toto, an envelope without exactly one signature (the Sigstore
//! bundle format allows one; `model_signing` reads only the first), bad base64, or a
//! signature no trusted key verifies. Policy:
//! - the signature is tried against **every** trusted public key, whatever the bundle's
//!   key hint says (a hint is never proof; it only improves the error message);
//! - if the bundle carries a certificate chain and the policy has trusted roots, the
//!   chain is validated ([`TrustRoots::validate`]) and the leaf's key is tried too;
//! - transparency log entries and timestamps are ignored: trust comes only from the
//!   policy's keys and roots (this is offline verification, as `model_signing verify
//!   key|certificate` does).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sigstore_types::dsse::pae;

use super::certs::{CertChain, Certificate, TrustRoots};
use super::keyless::{self, CertificateIdentity, TrustedRoot};
use super::keys::{PublicKey, SigningKey};
use super::statement::{PAYLOAD_TYPE, Statement};
use super::{Error, Result};

/// Media type of a Sigstore bundle v0.3.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

pub use super::MAX_BUNDLE_SIZE;

/// The other spelling of the v0.3 media type, which Sigstore clients also accept.
const BUNDLE_MEDIA_TYPE_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";

// ----- wire format -------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleJson {
    media_type: String,
    verification_material: MaterialJson,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dsse_envelope: Option<EnvelopeJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_signature: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaterialJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKeyJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x509_certificate_chain: Option<ChainJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate: Option<CertJson>,
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ChainJson {
    #[serde(default)]
    certificates: Vec<CertJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertJson {
    raw_bytes: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeJson {
    payload: String,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<SignatureJson>,
}

#[derive(Serialize, Deserialize)]
struct SignatureJson {
    sig: String,
    /// `model_signing` before 1.0.1 wrote `"keyid": null`.
    #[serde(default, deserialize_with = "null_as_empty")]
    keyid: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Protobuf JSON accepts standard and URL-safe base64, padded or not.
fn decode_base64(text: &str, what: &str) -> Result<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| Error::MalformedBundle(format!("{what} is not valid base64")))
}

// ----- signing -----------------------------------------------------------------------

/// Which key hint to write in `verificationMaterial.publicKey.hint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HintStyle {
    /// Hex SHA-256 of the SPKI PEM text. `model_signing verify key` rejects a bundle
    /// whose hint is present but different ("Key mismatch"); cosign ignores the hint's
    /// value. So this is the default everywhere, registry bundles included.
    #[default]
    ModelSigning,
    /// Base64 SHA-256 of the DER SPKI, as cosign writes it (breaks `model_signing`).
    Cosign,
    /// No hint (`model_signing` prints a warning but verifies).
    None,
}

/// A private key, optionally with the certificate chain that certifies it.
#[derive(Debug)]
pub struct Signer {
    key: SigningKey,
    chain: Option<CertChain>,
    hint: HintStyle,
}

impl Signer {
    /// Signs with a bare key; the bundle carries its hint.
    pub fn from_key(key: SigningKey) -> Self {
        Signer { key, chain: None, hint: HintStyle::default() }
    }

    /// Signs with a key and its certificate chain (leaf first); the bundle carries the
    /// chain. Fails if the leaf does not certify `key`.
    pub fn with_certificates(key: SigningKey, chain: CertChain) -> Result<Self> {
        if &chain.leaf().public_key()? != key.public_key() {
            return Err(Error::CertificateKeyMismatch);
        }
        Ok(Signer { key, chain: Some(chain), hint: HintStyle::default() })
    }

    /// Chooses the key hint written for a bare key.
    pub fn hint_style(mut self, hint: HintStyle) -> Self {
        self.hint = hint;
        self
    }

    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    pub fn certificates(&self) -> Option<&CertChain> {
        self.chain.as_ref()
    }

    /// A compact JSON bundle whose DSSE envelope signs `statement`.
    pub fn sign_statement(&self, statement: &Statement) -> Result<Vec<u8>> {
        self.sign_payload(&statement.to_json())
    }

    /// A compact JSON bundle whose DSSE envelope (payload type in-toto) signs `payload`.
    pub fn sign_payload(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let signature = self.key.sign(&pae(PAYLOAD_TYPE, payload))?;
        let material = match &self.chain {
            Some(chain) => MaterialJson {
                public_key: None,
                x509_certificate_chain: Some(ChainJson {
                    certificates: chain
                        .certificates()
                        .iter()
                        .map(|c| CertJson { raw_bytes: STANDARD.encode(c.der()) })
                        .collect(),
                }),
                certificate: None,
                tlog_entries: Vec::new(),
            },
            None => MaterialJson {
                public_key: Some(PublicKeyJson {
                    hint: match self.hint {
                        HintStyle::ModelSigning => Some(self.key.public_key().model_signing_hint()),
                        HintStyle::Cosign => Some(self.key.public_key().cosign_hint()),
                        HintStyle::None => None,
                    },
                }),
                x509_certificate_chain: None,
                certificate: None,
                tlog_entries: Vec::new(),
            },
        };
        let bundle = BundleJson {
            media_type: BUNDLE_MEDIA_TYPE.into(),
            verification_material: material,
            dsse_envelope: Some(EnvelopeJson {
                payload: STANDARD.encode(payload),
                payload_type: PAYLOAD_TYPE.into(),
                signatures: vec![SignatureJson { sig: STANDARD.encode(signature), keyid: String::new() }],
            }),
            message_signature: None,
        };
        Ok(serde_json::to_vec(&bundle).expect("a bundle always serialises"))
    }
}

// ----- verification ------------------------------------------------------------------

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
/// interpreted here (see [`super::oms::Manifest::from_statement`]).
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
    let compat = super::pae_compat::pae_v0_2(&payload);
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
/// ([`super::pae_compat`]), accepted for trusted keys and certificate chains only.
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sign::certs::parse_pem_certificates;
    use crate::sign::keys::Algorithm;
    use crate::sign::oms::{self, Resource};
    use serde_json::Value;

    pub(crate) fn fixture(path: &str) -> String {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sign").join(path);
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
    }

    fn statement() -> Statement {
        let resources = vec![Resource { name: "w.bin".into(), digest: crate::digest::Digest::of(b"w") }];
        oms::build_statement("m", &resources, &[".git".into()], false)
    }

    fn edit(bundle: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(bundle).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    fn key_signed() -> (SigningKey, Vec<u8>) {
        let key = SigningKey::generate(Algorithm::P256).unwrap();
        let bundle = Signer::from_key(SigningKey::from_pem(&key.to_pkcs8_pem(None).unwrap(), None).unwrap())
            .sign_statement(&statement())
            .unwrap();
        (key, bundle)
    }

    fn trusting(key: &SigningKey) -> TrustPolicy {
        TrustPolicy::new().trust_key(key.public_key().clone())
    }

    #[test]
    fn writes_what_model_signing_writes() {
        let (key, bundle) = key_signed();
        let text = String::from_utf8(bundle).unwrap();
        assert!(!text.contains('\n'));
        let prefix = format!(
            r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{{"publicKey":{{"hint":"{}"}},"tlogEntries":[]}},"dsseEnvelope":{{"payload":""#,
            key.public_key().model_signing_hint()
        );
        assert!(text.starts_with(&prefix), "{text}");
        assert!(text.contains(r#""payloadType":"application/vnd.in-toto+json","signatures":[{"sig":""#));
        assert!(text.ends_with(r#","keyid":""}]}}"#));
    }

    #[test]
    fn round_trips_for_every_algorithm_and_hint_style() {
        for alg in Algorithm::ALL {
            for hint in [HintStyle::ModelSigning, HintStyle::Cosign, HintStyle::None] {
                let key = SigningKey::generate(alg).unwrap();
                let policy = trusting(&key);
                let bundle = Signer::from_key(key).hint_style(hint).sign_statement(&statement()).unwrap();
                let verified = verify_bundle(&bundle, &policy).unwrap();
                assert_eq!(verified.statement(), &statement());
                assert!(matches!(verified.verified_by(), VerifiedBy::Key(k) if k == &policy.keys()[0]));
            }
        }
    }

    #[test]
    fn attack_flipped_payload_byte() {
        let (key, bundle) = key_signed();
        let tampered = edit(&bundle, |v| {
            let mut payload = STANDARD.decode(v["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
            let i = payload.len() / 2;
            payload[i] ^= 1;
            v["dsseEnvelope"]["payload"] = Value::String(STANDARD.encode(payload));
        });
        assert!(matches!(verify_bundle(&tampered, &trusting(&key)), Err(Error::BadSignature(_))));
    }

    #[test]
    fn attack_signature_over_a_different_payload() {
        let (key, bundle) = key_signed();
        let signer = Signer::from_key(SigningKey::from_pem(&key.to_pkcs8_pem(None).unwrap(), None).unwrap());
        let other = signer
            .sign_payload(
                br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"x","predicate":{}}"#,
            )
            .unwrap();
        let other: Value = serde_json::from_slice(&other).unwrap();
        let spliced = edit(&bundle, |v| v["dsseEnvelope"]["signatures"] = other["dsseEnvelope"]["signatures"].clone());
        assert!(matches!(verify_bundle(&spliced, &trusting(&key)), Err(Error::BadSignature(_))));
        // And the other way round: the other payload with this bundle's signature.
        let spliced = edit(&bundle, |v| v["dsseEnvelope"]["payload"] = other["dsseEnvelope"]["payload"].clone());
        assert!(matches!(verify_bundle(&spliced, &trusting(&key)), Err(Error::BadSignature(_))));
    }

    #[test]
    fn attack_untrusted_key_even_with_a_trusted_hint() {
        let (key, bundle) = key_signed();
        let trusted = SigningKey::generate(Algorithm::P256).unwrap();
        let err = verify_bundle(&bundle, &trusting(&trusted)).unwrap_err();
        assert!(matches!(err, Error::BadSignature(ref m) if m.contains("signed by another key")), "{err}");
        // The attacker writes the trusted key's hint: still refused.
        let lying = edit(&bundle, |v| {
            v["verificationMaterial"]["publicKey"]["hint"] = Value::String(trusted.public_key().model_signing_hint())
        });
        assert!(matches!(verify_bundle(&lying, &trusting(&trusted)), Err(Error::BadSignature(_))));
        // A wrong hint does not stop a trusted key from verifying.
        let wrong_hint = edit(&bundle, |v| v["verificationMaterial"]["publicKey"]["hint"] = Value::String("00".into()));
        verify_bundle(
            &wrong_hint,
            &TrustPolicy::new().trust_key(trusted.public_key().clone()).trust_key(key.public_key().clone()),
        )
        .unwrap();
        assert!(matches!(verify_bundle(&bundle, &TrustPolicy::new()), Err(Error::NoTrust)));
    }

    #[test]
    fn fails_closed_on_envelope_shape() {
        let (key, bundle) = key_signed();
        let policy = trusting(&key);
        type Expect = fn(&Error) -> bool;
        let cases: Vec<(Vec<u8>, Expect)> = vec![
            (edit(&bundle, |v| v["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.4+json".into()), |e| {
                matches!(e, Error::UnsupportedMediaType(_))
            }),
            (edit(&bundle, |v| v.as_object_mut().unwrap().remove("mediaType").map(|_| ()).unwrap()), |e| {
                matches!(e, Error::MalformedBundle(_))
            }),
            (edit(&bundle, |v| v["dsseEnvelope"]["payloadType"] = "text/plain".into()), |e| {
                matches!(e, Error::PayloadType(_))
            }),
            (edit(&bundle, |v| v["dsseEnvelope"]["signatures"] = Value::Array(vec![])), |e| {
                matches!(e, Error::SignatureCount(0))
            }),
            (
                edit(&bundle, |v| {
                    let s = v["dsseEnvelope"]["signatures"][0].clone();
                    v["dsseEnvelope"]["signatures"] = Value::Array(vec![s.clone(), s]);
                }),
                |e| matches!(e, Error::SignatureCount(2)),
            ),
            (edit(&bundle, |v| v["dsseEnvelope"]["payload"] = "!!!not base64!!!".into()), |e| {
                matches!(e, Error::MalformedBundle(_))
            }),
            (edit(&bundle, |v| v["dsseEnvelope"]["signatures"][0]["sig"] = "%%%".into()), |e| {
                matches!(e, Error::MalformedBundle(_))
            }),
            (edit(&bundle, |v| v["messageSignature"] = serde_json::json!({})), |e| {
                matches!(e, Error::MalformedBundle(_))
            }),
            (
                edit(&bundle, |v| {
                    v["verificationMaterial"]["x509CertificateChain"] = serde_json::json!({"certificates": []});
                }),
                |e| matches!(e, Error::MalformedBundle(_)),
            ),
            (b"not json".to_vec(), |e| matches!(e, Error::MalformedBundle(_))),
        ];
        for (i, (bytes, expected)) in cases.into_iter().enumerate() {
            let err = verify_bundle(&bytes, &policy).unwrap_err();
            assert!(expected(&err), "case {i}: {err}");
        }
    }

    #[test]
    fn signed_garbage_is_not_a_statement() {
        let key = SigningKey::generate(Algorithm::P256).unwrap();
        let policy = trusting(&key);
        let bundle = Signer::from_key(key).sign_payload(b"[1,2,3]").unwrap();
        assert!(matches!(verify_bundle(&bundle, &policy), Err(Error::InvalidStatement(_))));
    }

    fn leaf_signer(name: &str, chain: &[&str]) -> Signer {
        let key = SigningKey::from_pem(&fixture(&format!("certs/{name}.key")), None).unwrap();
        let chain_pems: Vec<String> = chain.iter().map(|c| fixture(&format!("certs/{c}.pem"))).collect();
        let chain_refs: Vec<&str> = chain_pems.iter().map(String::as_str).collect();
        let chain = CertChain::from_pems(&fixture(&format!("certs/{name}.pem")), &chain_refs).unwrap();
        Signer::with_certificates(key, chain).unwrap()
    }

    fn trusting_roots(names: &[&str]) -> TrustPolicy {
        names.iter().fold(TrustPolicy::new(), |p, n| {
            p.trust_certificates(parse_pem_certificates(&fixture(&format!("certs/{n}.pem")), n).unwrap())
        })
    }

    #[test]
    fn certificate_chain_round_trip() {
        let bundle = leaf_signer("leaf", &["intermediate"]).sign_statement(&statement()).unwrap();
        let v: Value = serde_json::from_slice(&bundle).unwrap();
        assert_eq!(v["verificationMaterial"]["x509CertificateChain"]["certificates"].as_array().unwrap().len(), 2);
        assert!(v["verificationMaterial"].get("publicKey").is_none());
        let verified = verify_bundle(&bundle, &trusting_roots(&["root"])).unwrap();
        assert!(
            matches!(verified.verified_by(), VerifiedBy::Certificate(c) if c.leaf().subject() == "CN=modelsign test signer")
        );
        // EKU codeSigning without key usage is enough.
        let bundle = leaf_signer("leaf-eku-only", &["intermediate"]).sign_statement(&statement()).unwrap();
        verify_bundle(&bundle, &trusting_roots(&["root"])).unwrap();
        // The intermediate may come from the trusted set instead of the bundle.
        let bundle = leaf_signer("leaf", &[]).sign_statement(&statement()).unwrap();
        verify_bundle(&bundle, &trusting_roots(&["root", "intermediate"])).unwrap();
    }

    #[test]
    fn attack_chain_from_another_root() {
        let bundle = leaf_signer("other-leaf", &[]).sign_statement(&statement()).unwrap();
        assert!(matches!(verify_bundle(&bundle, &trusting_roots(&["root"])), Err(Error::UntrustedChain(_))));
        // Trusting only the intermediate (not self-signed) is not enough, as with OpenSSL.
        let bundle = leaf_signer("leaf", &["intermediate"]).sign_statement(&statement()).unwrap();
        assert!(matches!(verify_bundle(&bundle, &trusting_roots(&["intermediate"])), Err(Error::UntrustedChain(_))));
        // A chain without its intermediate does not reach the root.
        let bundle = leaf_signer("leaf", &[]).sign_statement(&statement()).unwrap();
        assert!(matches!(verify_bundle(&bundle, &trusting_roots(&["root"])), Err(Error::UntrustedChain(_))));
    }

    #[test]
    fn attack_intermediate_expired_before_the_leaf_was_issued() {
        let bundle = leaf_signer("leaf-of-expired", &["expired-intermediate"]).sign_statement(&statement()).unwrap();
        let err = verify_bundle(&bundle, &trusting_roots(&["root"])).unwrap_err();
        assert!(matches!(err, Error::UntrustedChain(ref m) if m.contains("expired")), "{err}");
    }

    #[test]
    fn attack_certificate_that_may_not_sign() {
        let bundle = leaf_signer("leaf-no-signing", &["intermediate"]).sign_statement(&statement()).unwrap();
        assert!(matches!(verify_bundle(&bundle, &trusting_roots(&["root"])), Err(Error::CertificateUsage)));
    }

    #[test]
    fn attack_swapped_leaf_certificate() {
        // Signed by the no-signing leaf's key, but the bundle shows the good leaf.
        let bundle = leaf_signer("leaf-no-signing", &["intermediate"]).sign_statement(&statement()).unwrap();
        let good = leaf_signer("leaf", &["intermediate"]).sign_statement(&statement()).unwrap();
        let good: Value = serde_json::from_slice(&good).unwrap();
        let swapped = edit(&bundle, |v| v["verificationMaterial"] = good["verificationMaterial"].clone());
        assert!(matches!(verify_bundle(&swapped, &trusting_roots(&["root"])), Err(Error::BadSignature(_))));
    }

    #[test]
    fn certificate_must_match_the_key() {
        let key = SigningKey::generate(Algorithm::P256).unwrap();
        let chain = CertChain::from_pems(&fixture("certs/leaf.pem"), &[]).unwrap();
        assert!(matches!(Signer::with_certificates(key, chain), Err(Error::CertificateKeyMismatch)));
    }

    #[test]
    fn a_trusted_key_verifies_a_certificate_bundle() {
        // `model_signing verify key` accepts a certificate-signed bundle if the key matches.
        let bundle = leaf_signer("leaf", &["intermediate"]).sign_statement(&statement()).unwrap();
        let key = SigningKey::from_pem(&fixture("certs/leaf.key"), None).unwrap();
        let verified = verify_bundle(&bundle, &trusting(&key)).unwrap();
        assert!(matches!(verified.verified_by(), VerifiedBy::Key(_)));
        // A key-signed bundle and only roots trusted: refused.
        let (_, bundle) = key_signed();
        assert!(matches!(verify_bundle(&bundle, &trusting_roots(&["root"])), Err(Error::BadSignature(_))));
    }
}
