//! The fields modelsign knows better than a card's author, filled in by `attest`:
//! `format`, `architecture` and `parameters` from the model's ModelPack config,
//! `security.encryption` from its layers, and `security.certificate` and `signatures`
//! from the signing material. So the cryptographic fields of an attested card are never
//! empty. Also who signed a card, described the same way for `card show`.

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Card, PREDICATE_TYPE};
use crate::oci::Manifest;
use crate::sign::bundle::BUNDLE_MEDIA_TYPE;
use crate::sign::certs::Certificate;
use crate::sign::statement::PAYLOAD_TYPE;
use crate::sign::{PublicKey, Signer, VerifiedBy};

/// Who signed: a bare public key, or an X.509 certificate (the leaf of a chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum SignerInfo {
    /// A key: its fingerprint is `sha256:` + hex SHA-256 of the DER SubjectPublicKeyInfo.
    PublicKey { algorithm: String, fingerprint: String },
    /// A certificate: RFC 4514 subject and issuer, hex serial, validity (RFC 3339), and
    /// `sha256:` + hex SHA-256 of the certificate's DER.
    X509 {
        algorithm: String,
        subject: String,
        issuer: String,
        serial_number: String,
        not_before: String,
        not_after: String,
        fingerprint: String,
        key_fingerprint: String,
    },
}

/// `sha256:<hex>` of a public key's DER SubjectPublicKeyInfo.
pub fn key_fingerprint(key: &PublicKey) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(key.spki_der())))
}

fn rfc3339(t: std::time::Duration) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + t).to_string()
}

impl SignerInfo {
    pub fn of_key(key: &PublicKey) -> SignerInfo {
        SignerInfo::PublicKey { algorithm: key.algorithm().name().into(), fingerprint: key_fingerprint(key) }
    }

    /// A certificate's description; `None` if it cannot be parsed (it already was once).
    pub fn of_certificate(cert: &Certificate) -> Option<SignerInfo> {
        use der::Decode;
        let parsed = x509_cert::Certificate::from_der(cert.der()).ok()?;
        let tbs = &parsed.tbs_certificate;
        let key = cert.public_key().ok()?;
        Some(SignerInfo::X509 {
            algorithm: key.algorithm().name().into(),
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            serial_number: hex::encode(tbs.serial_number.as_bytes()),
            not_before: rfc3339(tbs.validity.not_before.to_unix_duration()),
            not_after: rfc3339(tbs.validity.not_after.to_unix_duration()),
            fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(cert.der()))),
            key_fingerprint: key_fingerprint(&key),
        })
    }

    /// The signer of a bundle modelsign is about to write.
    pub fn of_signer(signer: &Signer) -> SignerInfo {
        signer
            .certificates()
            .and_then(|chain| SignerInfo::of_certificate(chain.leaf()))
            .unwrap_or_else(|| SignerInfo::of_key(signer.public_key()))
    }

    /// What verified a bundle.
    pub fn of_verified(by: &VerifiedBy) -> SignerInfo {
        match by {
            VerifiedBy::Key(key) => SignerInfo::of_key(key),
            VerifiedBy::Certificate(chain) => {
                let leaf = chain.leaf();
                SignerInfo::of_certificate(leaf).unwrap_or_else(|| SignerInfo::X509 {
                    algorithm: String::new(),
                    subject: leaf.subject(),
                    issuer: String::new(),
                    serial_number: String::new(),
                    not_before: rfc3339(leaf.not_before()),
                    not_after: String::new(),
                    fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(leaf.der()))),
                    key_fingerprint: String::new(),
                })
            }
            // A keyless Sigstore signer: its certificate identity and OIDC issuer.
            VerifiedBy::Keyless { identity, issuer } => SignerInfo::X509 {
                algorithm: String::new(),
                subject: identity.clone(),
                issuer: issuer.clone(),
                serial_number: String::new(),
                not_before: String::new(),
                not_after: String::new(),
                fingerprint: String::new(),
                key_fingerprint: String::new(),
            },
        }
    }

    /// One line: `key sha256:…` or `certificate CN=… (issuer CN=…)`.
    pub fn describe(&self) -> String {
        match self {
            SignerInfo::PublicKey { fingerprint, .. } => format!("key {fingerprint}"),
            SignerInfo::X509 { subject, issuer, .. } => format!("certificate {subject} (issuer {issuer})"),
        }
    }

    fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("signer info serialises")
    }
}

/// A field modelsign set, and what the author had written there (if anything else).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filled {
    pub field: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Value>,
}

fn fill(card: &mut Card, field: &'static str, value: Value, filled: &mut Vec<Filled>) {
    let replaced = card.field(field).filter(|old| **old != value && !super::fields::is_blank(old)).cloned();
    card.set(field, value);
    filled.push(Filled { field, replaced });
}

/// Fills the fields the artifact and the signer determine. `config` is the ModelPack
/// config blob, parsed, when the manifest has one. `also_signed` lists other predicate
/// types signed with the same key alongside the card (the CycloneDX BOM).
pub fn fill_in(
    card: &mut Card,
    manifest: &Manifest,
    config: Option<&Value>,
    signer: &Signer,
    also_signed: &[&str],
) -> Vec<Filled> {
    let mut filled = Vec::new();
    let from_config = |key: &str| {
        config
            .and_then(|c| c.pointer(&format!("/config/{key}")))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    for (field, key) in [("format", "format"), ("architecture", "architecture"), ("parameters", "paramSize")] {
        if let Some(v) = from_config(key) {
            fill(card, field, json!(v), &mut filled);
        }
    }
    let encrypted: Vec<&str> =
        manifest.layers.iter().map(|l| l.media_type.as_str()).filter(|t| t.ends_with("+encrypted")).collect();
    let encryption = if encrypted.is_empty() {
        "none: every component is stored unencrypted".to_string()
    } else {
        format!("{} of {} components are encrypted (OCI layer encryption)", encrypted.len(), manifest.layers.len())
    };
    fill(card, "security.encryption", json!(encryption), &mut filled);
    let info = SignerInfo::of_signer(signer);
    fill(card, "security.certificate", info.to_value(), &mut filled);
    let mut predicate_types = vec![PREDICATE_TYPE];
    predicate_types.extend_from_slice(also_signed);
    let signatures = json!([{
        "format": BUNDLE_MEDIA_TYPE,
        "envelope": "dsse",
        "payloadType": PAYLOAD_TYPE,
        "predicateTypes": predicate_types,
        "signer": info.to_value(),
    }]);
    fill(card, "signatures", signatures, &mut filled);
    filled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Descriptor;
    use crate::sign::{Algorithm, SigningKey};

    #[test]
    fn fills_from_config_layers_and_key() {
        let mut card =
            Card::from_value(json!({"name": "m", "format": "gguf", "security": {"encryption": "AES"}})).unwrap();
        let layer = Descriptor::of_bytes("application/vnd.cncf.model.weight.v1.raw", b"w");
        let manifest = Manifest::new(None, Descriptor::of_bytes("c", b"{}"), vec![layer]);
        let config = json!({"config": {"format": "safetensors", "architecture": "Llama", "paramSize": ""}});
        let signer = Signer::from_key(SigningKey::generate(Algorithm::P256).unwrap());
        let filled = fill_in(&mut card, &manifest, Some(&config), &signer, &["x"]);
        assert_eq!(card.text("format"), Some("safetensors"));
        assert_eq!(card.text("architecture"), Some("Llama"));
        assert!(!card.is_present("parameters"), "an empty paramSize fills nothing");
        assert!(card.text("security.encryption").unwrap().starts_with("none"));
        let fp = key_fingerprint(signer.public_key());
        assert_eq!(card.field("security.certificate").unwrap()["fingerprint"], json!(fp));
        assert_eq!(card.field("signatures").unwrap()[0]["predicateTypes"], json!([PREDICATE_TYPE, "x"]));
        let format = filled.iter().find(|f| f.field == "format").unwrap();
        assert_eq!(format.replaced, Some(json!("gguf")));
        assert!(filled.iter().find(|f| f.field == "architecture").unwrap().replaced.is_none());
        // What attest writes reads back as a card.
        assert_eq!(Card::from_predicate(&card.to_predicate()).unwrap(), card);
    }
}
