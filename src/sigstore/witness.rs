//! Completes each keyless bundle: logs its DSSE signature in Rekor, timestamps it when a
//! TSA is configured, writes the Sigstore bundle v0.3 (the Fulcio certificate, the log
//! entry, the timestamp) and **verifies it** with modelsign's own verifier against the
//! trusted root before handing it back. Any failure means no bundle: nothing is attached
//! or written.
//!
//! [`BundleWitness::complete`] is synchronous (signing is called from synchronous code,
//! `sign DIR` among it), so the requests run on a thread of their own with a small
//! runtime; every request is bounded by the client's timeout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Value, json};

use super::fulcio;
use super::http::{self, Service};
use super::rekor::{self, Envelope};
use super::signing_config::{RekorVersion, Services};
use super::token::IdentityToken;
use super::tsa;
use crate::digest::Digest;
use crate::sign::bundle::{BUNDLE_MEDIA_TYPE, BundleWitness};
use crate::sign::certs::CertChain;
use crate::sign::keyless::{self, CertificateIdentity, Expected, SigstoreVerified, Subject, TrustedRoot};
use crate::sign::statement::Statement;
use crate::sign::{Error, Result, SigningKey};

/// A certificate is renewed when it has less than this left: the log entry must fall
/// inside its validity.
const RENEW_BEFORE: Duration = Duration::from_secs(120);

/// Logs, timestamps and verifies keyless bundles for one signing run.
pub struct KeylessWitness {
    key: Arc<SigningKey>,
    token: IdentityToken,
    fulcio: Service,
    chain: Mutex<Option<CertChain>>,
    rekor: Service,
    rekor_version: RekorVersion,
    tsa: Option<Service>,
    root: TrustedRoot,
    timeout: Duration,
    verified: Mutex<Vec<SigstoreVerified>>,
}

/// The bundle as written, in protobuf JSON field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleOut<'a> {
    media_type: &'static str,
    verification_material: Material,
    dsse_envelope: &'a Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    certificate: Value,
    tlog_entries: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_verification_data: Option<Value>,
}

impl std::fmt::Debug for KeylessWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeylessWitness")
            .field("token", &self.token)
            .field("fulcio", &self.fulcio.name)
            .field("rekor", &self.rekor.name)
            .finish_non_exhaustive()
    }
}

impl KeylessWitness {
    /// Bundles signed by `key` are certified by `fulcio` for `token`, logged and
    /// timestamped by `services`, and verified against `root`.
    pub fn new(
        key: Arc<SigningKey>,
        token: IdentityToken,
        fulcio: Service,
        services: &Services,
        root: TrustedRoot,
        timeout: Duration,
    ) -> Result<Self> {
        Ok(KeylessWitness {
            key,
            token,
            fulcio,
            chain: Mutex::new(None),
            rekor: Service::new("Rekor", &services.rekor)?,
            rekor_version: services.rekor_version,
            tsa: services.tsa.as_deref().map(|u| Service::new("timestamp authority", u)).transpose()?,
            root,
            timeout,
            verified: Mutex::new(Vec::new()),
        })
    }

    /// What verified for each bundle completed so far (identity, issuer, log entries, times).
    pub fn verified(&self) -> Vec<SigstoreVerified> {
        self.verified.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Asks Fulcio for a certificate for the key now (done once before signing, so that
    /// a refused token fails early).
    pub async fn certify(&mut self) -> Result<()> {
        let chain =
            fulcio::signing_certificate(&http::client(self.timeout)?, &self.fulcio, &self.key, &self.token).await?;
        *self.chain.get_mut().map_err(|_| Error::Io("poisoned lock".into()))? = Some(chain);
        Ok(())
    }

    /// The certificate to log under: the current one, or a new one if it runs out soon.
    async fn certificate(&self, client: &reqwest::Client) -> Result<CertChain> {
        let current = self.chain.lock().map_err(|_| Error::Io("poisoned lock".into()))?.clone();
        let soon = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(RENEW_BEFORE);
        if let Some(chain) = current
            && chain.leaf().valid_at(soon)
        {
            return Ok(chain);
        }
        self.token.check_usable(super::SIGSTORE_AUDIENCE)?;
        let chain = fulcio::signing_certificate(client, &self.fulcio, &self.key, &self.token).await?;
        *self.chain.lock().map_err(|_| Error::Io("poisoned lock".into()))? = Some(chain.clone());
        Ok(chain)
    }

    async fn complete_async(&self, bundle: &[u8]) -> Result<Vec<u8>> {
        let signed: Value = serde_json::from_slice(bundle).map_err(|e| Error::MalformedBundle(e.to_string()))?;
        let envelope = signed.get("dsseEnvelope").ok_or_else(|| Error::MalformedBundle("no DSSE envelope".into()))?;
        let field = |v: &Value, name: &str| -> Result<String> {
            v.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| Error::MalformedBundle(format!("the DSSE envelope has no {name}")))
        };
        let signature = envelope.get("signatures").and_then(|s| s.get(0)).cloned().unwrap_or(Value::Null);
        let (payload, payload_type, sig) =
            (field(envelope, "payload")?, field(envelope, "payloadType")?, field(&signature, "sig")?);
        let client = http::client(self.timeout)?;
        let chain = self.certificate(&client).await?;
        let leaf = chain.leaf();
        let entry = rekor::log_entry(
            &client,
            &self.rekor,
            self.rekor_version,
            &Envelope { payload: &payload, payload_type: &payload_type, sig: &sig },
            leaf,
        )
        .await?;
        let timestamp = match &self.tsa {
            Some(tsa) => {
                let sig_bytes =
                    STANDARD.decode(&sig).map_err(|_| Error::MalformedBundle("signature is not base64".into()))?;
                let response = tsa::timestamp(&client, tsa, &sig_bytes).await?;
                Some(json!({"rfc3161Timestamps": [{"signedTimestamp": STANDARD.encode(response)}]}))
            }
            None => None,
        };
        let out = BundleOut {
            media_type: BUNDLE_MEDIA_TYPE,
            verification_material: Material {
                certificate: json!({"rawBytes": STANDARD.encode(leaf.der())}),
                tlog_entries: vec![entry],
                timestamp_verification_data: timestamp,
            },
            dsse_envelope: envelope,
        };
        let bytes = serde_json::to_vec(&out).expect("a bundle always serialises");
        let verified = self.verify(&bytes, &payload)?;
        if let Ok(mut all) = self.verified.lock() {
            all.push(verified);
        }
        Ok(bytes)
    }

    /// The finished bundle, checked as any verifier will check it: chain to the root's
    /// Fulcio, SCT, log entry, timestamp, signature over the statement's first subject.
    fn verify(&self, bundle: &[u8], payload_b64: &str) -> Result<SigstoreVerified> {
        let failed = |e: Error| Error::SigstoreService {
            service: self.rekor.name.clone(),
            reason: format!("the signed bundle does not verify against {}: {e}", self.root.source()),
        };
        let payload =
            STANDARD.decode(payload_b64).map_err(|_| Error::MalformedBundle("payload is not base64".into()))?;
        let statement = Statement::from_json(&payload)?;
        let digest = statement
            .subject
            .iter()
            .find_map(|s| s.digest.get("sha256"))
            .ok_or_else(|| Error::InvalidStatement("no sha256 subject".into()))?;
        let digest: Digest =
            format!("sha256:{digest}").parse().map_err(|e| Error::InvalidStatement(format!("subject digest: {e}")))?;
        let parsed = keyless::parse_bundle(bundle).map_err(failed)?;
        // Any identity: the certificate is the one Fulcio just issued for our token; the
        // point is that everything in the bundle checks out against the root.
        let anyone = CertificateIdentity::from_flags(None, Some(".+"), None, Some(".+"))?;
        keyless::verify(&parsed, Subject::Digest(digest), Expected::Identities(&[anyone]), &self.root).map_err(failed)
    }
}

impl BundleWitness for KeylessWitness {
    fn complete(&self, bundle: Vec<u8>) -> Result<Vec<u8>> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| Error::Io(format!("cannot start the signing runtime: {e}")))?;
                    runtime.block_on(self.complete_async(&bundle))
                })
                .join()
                .unwrap_or_else(|_| Err(Error::Io("the signing thread panicked".into())))
        })
    }
}
