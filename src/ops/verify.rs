//! `verify REF`: checks a model in a target against signatures from trusted signers,
//! then checks the bytes of the requested components (only those are downloaded).
//!
//! The rule (also in `docs/FORMAT.md`, "Verification"):
//! - every referrer of the manifest is read; one that cannot be fetched, does not name
//!   this manifest as its `subject`, holds no Sigstore bundle, or whose bundle does not
//!   verify against the trust policy is **ignored** (anyone who can push may attach one);
//! - a bundle that verifies against the policy must **match**: an OMS statement must list
//!   exactly the manifest's components (same paths, same digests, none extra, missing or
//!   repeated); any other statement must name the manifest digest as a subject (and a
//!   modelsign manifest statement must name the components' OMS root digest). A trusted
//!   statement that does not match fails verification;
//! - verification passes only with at least one matching trusted signature and no
//!   mismatching one. No signature is a failure.

use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Manifest};
use crate::ops::components::Component;
use crate::ops::model::{MANIFEST_PREDICATE_TYPE, oms_matches_components, oms_root_digest};
use crate::progress::Progress;
use crate::sign::bundle::BUNDLE_MEDIA_TYPE;
use crate::sign::oms;
use crate::sign::{TrustPolicy, VerifiedBy, VerifiedStatement, verify_bundle};
use crate::store::Target;
use crate::verifying_reader::VerifyingReader;

/// Largest bundle read from a referrer.
pub const MAX_BUNDLE_BLOB: u64 = 16 << 20;

/// What became of one referrer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "outcome")]
pub enum SignatureOutcome {
    /// Signed by a trusted signer and matches the manifest.
    Verified { predicate_type: String, signer: String },
    /// Signed by a trusted signer but does not match: verification fails.
    Mismatch { predicate_type: String, signer: String, reason: String },
    /// Not a trusted signature (garbage, foreign key, another subject): no effect.
    Ignored { reason: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureCheck {
    pub referrer: Digest,
    #[serde(flatten)]
    pub outcome: SignatureOutcome,
}

/// The signatures' verdict on a manifest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureVerdict {
    pub checks: Vec<SignatureCheck>,
    /// A trusted OMS bundle that matched (written as `model.sig` by `pull`).
    #[serde(skip)]
    pub oms_bundle: Option<Vec<u8>>,
}

impl SignatureVerdict {
    pub fn verified(&self) -> usize {
        self.checks.iter().filter(|c| matches!(c.outcome, SignatureOutcome::Verified { .. })).count()
    }

    pub fn mismatches(&self) -> usize {
        self.checks.iter().filter(|c| matches!(c.outcome, SignatureOutcome::Mismatch { .. })).count()
    }

    pub fn passed(&self) -> bool {
        self.verified() > 0 && self.mismatches() == 0
    }

    /// Why the signatures do not pass, if they do not.
    pub fn failure(&self) -> Option<String> {
        if let Some(SignatureCheck { referrer, outcome: SignatureOutcome::Mismatch { reason, signer, .. } }) =
            self.checks.iter().find(|c| matches!(c.outcome, SignatureOutcome::Mismatch { .. }))
        {
            return Some(format!("signature {referrer} by {signer} does not match the model: {reason}"));
        }
        if self.verified() == 0 {
            let ignored = self.checks.len();
            return Some(if ignored == 0 {
                "no signature: the model has no signature referrers".to_string()
            } else {
                format!("no signature from a trusted signer ({ignored} referrers ignored)")
            });
        }
        None
    }
}

fn signer_name(by: &VerifiedBy) -> String {
    match by {
        VerifiedBy::Key(key) => format!("key {}", key.cosign_hint()),
        VerifiedBy::Certificate(chain) => format!("certificate {}", chain.leaf().subject()),
    }
}

/// Checks a trusted statement against the manifest. `Err` holds why it does not match.
fn matches_manifest(
    verified: &VerifiedStatement,
    desc: &Descriptor,
    components: &[Component],
) -> std::result::Result<(), String> {
    let statement = verified.statement();
    if statement.predicate_type == oms::PREDICATE_TYPE {
        let signed = oms::Manifest::from_statement(statement).map_err(|e| e.to_string())?;
        return oms_matches_components(&signed, components);
    }
    let names_manifest = statement
        .subject
        .iter()
        .any(|s| s.digest.get("sha256").map(String::as_str) == Some(desc.digest.hex().as_str()));
    if !names_manifest {
        return Err(format!("the statement is about another artifact, not {}", desc.digest));
    }
    if statement.predicate_type == MANIFEST_PREDICATE_TYPE {
        let claimed = statement.predicate.pointer("/oms/rootDigest/sha256").and_then(|v| v.as_str());
        let computed = oms_root_digest(components).hex();
        if claimed != Some(computed.as_str()) {
            return Err(format!("the statement's OMS root digest {claimed:?} is not the components' {computed}"));
        }
    }
    Ok(())
}

/// Reads one referrer's bundle. `Err` holds why it is ignored.
async fn referrer_bundle(
    target: &Target,
    entry: &Descriptor,
    subject: &Descriptor,
) -> std::result::Result<Vec<u8>, String> {
    let (_, bytes) = target.fetch_manifest(&entry.digest.to_string()).await.map_err(|e| e.to_string())?;
    let manifest = Manifest::parse(&bytes, "referrer").map_err(|e| e.to_string())?;
    if manifest.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
        return Err("its subject is not this manifest".into());
    }
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == BUNDLE_MEDIA_TYPE || l.media_type.starts_with("application/vnd.dev.sigstore.bundle"))
        .ok_or_else(|| format!("not a Sigstore bundle (artifact type {})", manifest.effective_artifact_type()))?;
    target.fetch_small_blob(layer, MAX_BUNDLE_BLOB).await.map_err(|e| e.to_string())
}

/// Applies the verification rule to every referrer of `desc`.
pub async fn verify_signatures(
    target: &Target,
    desc: &Descriptor,
    components: &[Component],
    policy: &TrustPolicy,
) -> Result<SignatureVerdict> {
    let mut checks = Vec::new();
    let mut oms_bundle = None;
    for entry in target.referrers(desc).await? {
        let outcome = match referrer_bundle(target, &entry, desc).await {
            Err(reason) => SignatureOutcome::Ignored { reason },
            Ok(bundle) => match verify_bundle(&bundle, policy) {
                Err(e) => SignatureOutcome::Ignored { reason: e.to_string() },
                Ok(verified) => {
                    let predicate_type = verified.statement().predicate_type.clone();
                    let signer = signer_name(verified.verified_by());
                    match matches_manifest(&verified, desc, components) {
                        Ok(()) => {
                            if predicate_type == oms::PREDICATE_TYPE && oms_bundle.is_none() {
                                oms_bundle = Some(bundle);
                            }
                            SignatureOutcome::Verified { predicate_type, signer }
                        }
                        Err(reason) => SignatureOutcome::Mismatch { predicate_type, signer, reason },
                    }
                }
            },
        };
        checks.push(SignatureCheck { referrer: entry.digest.clone(), outcome });
    }
    Ok(SignatureVerdict { checks, oms_bundle })
}

/// One component's bytes, checked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentCheck {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Streams each component's blob through SHA-256 without storing it, `concurrency` at a
/// time. The checks come back in the order of `components`.
pub async fn verify_components(
    target: &Target,
    components: &[Component],
    concurrency: usize,
    progress: &dyn Progress,
) -> Vec<ComponentCheck> {
    let checks = components.iter().map(|c| check_component(target, c, progress));
    futures_util::stream::iter(checks).buffered(concurrency.max(1)).collect().await
}

async fn check_component(target: &Target, c: &Component, progress: &dyn Progress) -> ComponentCheck {
    let d = &c.descriptor;
    progress.start(&d.digest, &c.path, d.size);
    let result: Result<()> = async {
        let reader = target.fetch_blob(d, 0).await?;
        let label = format!("component `{}`", c.path);
        let mut verified = VerifyingReader::new(reader, d.digest.clone(), d.size, label, Hasher::new());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = verified.read(&mut buf).await.map_err(|e| Error::io(&c.path, e))?;
            if n == 0 {
                return Ok(());
            }
            progress.advance(&d.digest, n as u64);
        }
    }
    .await;
    progress.finish(&d.digest);
    ComponentCheck {
        path: c.path.clone(),
        digest: d.digest.clone(),
        size: d.size,
        ok: result.is_ok(),
        error: result.err().map(|e| e.to_string()),
    }
}

/// Selects components by exact path; an unknown path is an error.
pub fn pick_components(all: Vec<Component>, paths: &[String]) -> Result<Vec<Component>> {
    if paths.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::new();
    for p in paths {
        let c = all
            .iter()
            .find(|c| &c.path == p)
            .ok_or_else(|| Error::InvalidInput(format!("`{p}` is not a component of the model")))?;
        out.push(c.clone());
    }
    Ok(out)
}
