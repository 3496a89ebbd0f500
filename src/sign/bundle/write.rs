//! Signing: [`Signer::sign_statement`] serialises an in-toto statement, signs its DSSE
//! PAE and wraps it with the verification material: `publicKey.hint` for a bare key,
//! `x509CertificateChain` (leaf first) with a certificate; `tlogEntries` is empty unless a
//! [`BundleWitness`] (keyless signing, `crate::sigstore`) completes the bundle.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sigstore_types::dsse::pae;

use super::BUNDLE_MEDIA_TYPE;
use super::json::{BundleJson, CertJson, ChainJson, EnvelopeJson, MaterialJson, PublicKeyJson, SignatureJson};
use crate::sign::certs::CertChain;
use crate::sign::keys::{PublicKey, SigningKey};
use crate::sign::statement::{PAYLOAD_TYPE, Statement};
use crate::sign::{Error, Result};

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

/// Completes a freshly signed bundle before anyone sees it: keyless signing logs it in a
/// transparency log, timestamps it and verifies the result (`crate::sigstore`). Called
/// once per bundle; an error means there is no bundle.
pub trait BundleWitness: Send + Sync + std::fmt::Debug {
    fn complete(&self, bundle: Vec<u8>) -> Result<Vec<u8>>;
}

/// A private key, optionally with the certificate chain that certifies it.
#[derive(Debug)]
pub struct Signer {
    key: SigningKey,
    chain: Option<CertChain>,
    hint: HintStyle,
    witness: Option<std::sync::Arc<dyn BundleWitness>>,
}

impl Signer {
    /// Signs with a bare key; the bundle carries its hint.
    pub fn from_key(key: SigningKey) -> Self {
        Signer { key, chain: None, hint: HintStyle::default(), witness: None }
    }

    /// Signs with a key and its certificate chain (leaf first); the bundle carries the
    /// chain. Fails if the leaf does not certify `key`.
    pub fn with_certificates(key: SigningKey, chain: CertChain) -> Result<Self> {
        if &chain.leaf().public_key()? != key.public_key() {
            return Err(Error::CertificateKeyMismatch);
        }
        Ok(Signer { key, chain: Some(chain), hint: HintStyle::default(), witness: None })
    }

    /// Has every bundle completed by `witness` (keyless: log entry, timestamp) before it
    /// is returned.
    pub fn with_witness(mut self, witness: std::sync::Arc<dyn BundleWitness>) -> Self {
        self.witness = Some(witness);
        self
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
        let bundle = serde_json::to_vec(&bundle).expect("a bundle always serialises");
        match &self.witness {
            Some(witness) => witness.complete(bundle),
            None => Ok(bundle),
        }
    }
}
