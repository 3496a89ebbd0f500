//! The signatures of a manifest: which referrers are trusted statements, what kind of
//! statement each is, and whether it matches the model (FORMAT.md §6).
//!
//! - Every referrer of the manifest is read; one that cannot be fetched, does not name
//!   this manifest as its `subject`, holds no Sigstore bundle, or whose bundle does not
//!   verify with trusted material is **ignored** (anyone who can push may attach one).
//!   The referrers fetched and those that failed to be fetched are capped
//!   ([`ReferrerBudget`]): past a cap the registry is given up on (an error, exit 1).
//! - A trusted statement is classified by its predicate type ([`classify`]): only the
//!   OMS statement, modelsign's manifest statement and cosign's `sign` statement are
//!   **whole-model signatures**; a component statement is a **component signature**;
//!   every other predicate is an **attestation** (a scan, a review, a model card), which
//!   never verifies a model on its own.
//! - A whole-model signature must **match**: an OMS statement lists exactly the
//!   manifest's components; the others name the manifest digest as a subject (and a
//!   manifest statement names the components' OMS root digest). An attestation must name
//!   the manifest digest. A trusted statement that does not match fails verification.
//! - A component signature covers the components it lists with the same path *and*
//!   digest; it neither passes nor fails a model by itself.
//!
//! [`SignatureVerdict`] applies the rule for plain trusted keys and roots: it passes only
//! with at least one matching whole-model signature and no mismatching statement. No
//! signature is a failure.

use futures_util::StreamExt;
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Manifest};
use crate::ops::components::Component;
use crate::ops::model::{MANIFEST_PREDICATE_TYPE, oms_matches_components, oms_root_digest};
use crate::sign::bundle::BUNDLE_MEDIA_TYPE;
use crate::sign::statement::Statement;
use crate::sign::{TrustPolicy, VerifiedBy, VerifiedStatement, components as component_statement, oms, verify_bundle};
use crate::store::Target;
use crate::store::limits::ReferrerBudget;

/// Largest bundle read from a referrer.
pub const MAX_BUNDLE_BLOB: u64 = 16 << 20;

/// Predicate type of the statement `cosign sign` (3.x, new bundle format) signs: a
/// whole-artifact signature whose subject is the manifest digest.
pub const COSIGN_SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";

/// What a trusted statement can vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatementKind {
    /// Signs the whole model: OMS, modelsign's manifest statement, cosign's `sign`.
    ModelSignature,
    /// Signs some components by path and digest.
    ComponentSignature,
    /// Says something about the model (a card, a scan, a review); signs nothing.
    Attestation,
}

/// Which kind of statement a predicate type makes. Only the known signature statements
/// are signatures; anything else is an attestation.
pub fn classify(predicate_type: &str) -> StatementKind {
    match predicate_type {
        oms::PREDICATE_TYPE | oms::PREDICATE_TYPE_V0_2 | MANIFEST_PREDICATE_TYPE | COSIGN_SIGN_PREDICATE_TYPE => {
            StatementKind::ModelSignature
        }
        component_statement::PREDICATE_TYPE => StatementKind::ComponentSignature,
        _ => StatementKind::Attestation,
    }
}

/// What a trusted statement that matched says about this model.
#[derive(Debug, Clone)]
pub enum Coverage {
    /// A whole-model signature that matches the manifest.
    Model,
    /// A component signature: the model's components it covers (path and digest equal).
    Components(Vec<String>),
    /// An attestation about this manifest.
    Attestation,
}

/// A set of trusted material, named when it is a policy's signer.
#[derive(Debug, Clone, Copy)]
pub struct SignerSet<'a> {
    pub name: Option<&'a str>,
    pub trust: &'a TrustPolicy,
}

/// A referrer whose bundle verified with at least one signer set.
#[derive(Debug, Clone)]
pub struct Trusted {
    /// Who signed: `key <fingerprint>` or `certificate <subject>`.
    pub signer: String,
    /// The named signer sets that verified it (empty for unnamed ones).
    pub signer_names: Vec<String>,
    pub statement: Statement,
    pub kind: StatementKind,
    /// What it covers, or why it does not match this model.
    pub coverage: std::result::Result<Coverage, String>,
    pub bundle: Vec<u8>,
}

/// One referrer, read and checked.
#[derive(Debug, Clone)]
pub struct Finding {
    pub referrer: Digest,
    /// The trusted statement, or why the referrer is ignored.
    pub trusted: std::result::Result<Trusted, String>,
    /// For an ignored bundle: its statement read **without** checking the signature
    /// (only for showing what it claims; never for a decision).
    pub unverified: Option<Statement>,
}

/// The in-toto statement inside a bundle, read without checking its signature.
pub fn unverified_statement(bundle: &[u8]) -> Option<Statement> {
    use base64::Engine;
    let value: serde_json::Value = serde_json::from_slice(bundle).ok()?;
    let payload = value.pointer("/dsseEnvelope/payload")?.as_str()?;
    let payload = base64::engine::general_purpose::STANDARD.decode(payload).ok()?;
    Statement::from_json(&payload).ok()
}

/// `key <fingerprint>` or `certificate <subject>`.
pub fn signer_label(by: &VerifiedBy) -> String {
    match by {
        VerifiedBy::Key(key) => format!("key {}", key.cosign_hint()),
        VerifiedBy::Certificate(chain) => format!("certificate {}", chain.leaf().subject()),
        VerifiedBy::Keyless { identity, issuer } => format!("{identity} (issuer {issuer})"),
    }
}

/// OMS v1.0, or what `model_signing` 0.2 wrote (one subject per file), which it still accepts.
fn is_oms(predicate_type: &str) -> bool {
    predicate_type == oms::PREDICATE_TYPE || predicate_type == oms::PREDICATE_TYPE_V0_2
}

fn names_manifest(statement: &Statement, desc: &Descriptor) -> bool {
    statement.subject.iter().any(|s| s.digest.get("sha256").map(String::as_str) == Some(desc.digest.hex().as_str()))
}

/// What a trusted statement covers in the model `desc`. `Err` holds why it does not match.
pub fn coverage(
    statement: &Statement,
    desc: &Descriptor,
    components: &[Component],
) -> std::result::Result<Coverage, String> {
    match classify(&statement.predicate_type) {
        StatementKind::ModelSignature if is_oms(&statement.predicate_type) => {
            let signed = oms::Manifest::from_statement(statement).map_err(|e| e.to_string())?;
            oms_matches_components(&signed, components)?;
            Ok(Coverage::Model)
        }
        StatementKind::ModelSignature => {
            if !names_manifest(statement, desc) {
                return Err(format!("the statement is about another artifact, not {}", desc.digest));
            }
            if statement.predicate_type == MANIFEST_PREDICATE_TYPE {
                let claimed = statement.predicate.pointer("/oms/rootDigest/sha256").and_then(|v| v.as_str());
                let computed = oms_root_digest(components).hex();
                if claimed != Some(computed.as_str()) {
                    return Err(format!(
                        "the statement's OMS root digest {claimed:?} is not the components' {computed}"
                    ));
                }
            }
            Ok(Coverage::Model)
        }
        StatementKind::ComponentSignature => {
            let signed = component_statement::from_statement(statement).map_err(|e| e.to_string())?;
            let covered = components
                .iter()
                .filter(|c| signed.iter().any(|s| s.path == c.path && s.digest == c.descriptor.digest))
                .map(|c| c.path.clone())
                .collect();
            Ok(Coverage::Components(covered))
        }
        StatementKind::Attestation => {
            if names_manifest(statement, desc) {
                Ok(Coverage::Attestation)
            } else {
                Err(format!("the attestation is about another artifact, not {}", desc.digest))
            }
        }
    }
}

/// Why a referrer's bundle was not read.
enum NoBundle {
    /// Fetching its manifest or bundle failed: charged to the [`ReferrerBudget`].
    Fetch(Error),
    /// It is no signature of this manifest (another subject, not a bundle).
    Ignored(String),
}

/// Reads one referrer's bundle.
async fn referrer_bundle(
    target: &Target,
    entry: &Descriptor,
    subject: &Descriptor,
) -> std::result::Result<Vec<u8>, NoBundle> {
    let (_, bytes) = target.fetch_manifest(&entry.digest.to_string()).await.map_err(NoBundle::Fetch)?;
    let manifest = Manifest::parse(&bytes, "referrer").map_err(|e| NoBundle::Ignored(e.to_string()))?;
    if manifest.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
        return Err(NoBundle::Ignored("its subject is not this manifest".into()));
    }
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == BUNDLE_MEDIA_TYPE || l.media_type.starts_with("application/vnd.dev.sigstore.bundle"))
        .ok_or_else(|| {
            NoBundle::Ignored(format!("not a Sigstore bundle (artifact type {})", manifest.effective_artifact_type()))
        })?;
    target.fetch_small_blob(layer, MAX_BUNDLE_BLOB).await.map_err(NoBundle::Fetch)
}

/// Checks one bundle against every signer set.
fn check_bundle(
    bundle: Vec<u8>,
    signers: &[SignerSet<'_>],
    desc: &Descriptor,
    components: &[Component],
) -> std::result::Result<Trusted, String> {
    let mut verified: Option<VerifiedStatement> = None;
    let mut names = Vec::new();
    let mut last_error = None;
    if signers.is_empty() {
        return Err("no trust material given".into());
    }
    for set in signers {
        match verify_bundle(&bundle, set.trust) {
            Ok(v) => {
                names.extend(set.name.map(str::to_string));
                verified.get_or_insert(v);
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(verified) = verified else {
        return Err(last_error.map_or_else(|| "no trusted signer".to_string(), |e| e.to_string()));
    };
    let statement = verified.statement().clone();
    let label = signer_label(verified.verified_by());
    Ok(Trusted {
        signer: if names.is_empty() { label } else { format!("{} ({label})", names.join(", ")) },
        signer_names: names,
        kind: classify(&statement.predicate_type),
        coverage: coverage(&statement, desc, components),
        statement,
        bundle,
    })
}

/// Referrer fetches in flight at once while gathering.
const READ_AHEAD: usize = 4;

/// Reads every referrer of `desc` and checks each against every signer set.
/// `components` are all of the model's components. The fetches and the failed fetches
/// are capped by a [`ReferrerBudget`]: past either cap, the registry is given up on.
pub async fn gather(
    target: &Target,
    desc: &Descriptor,
    components: &[Component],
    signers: &[SignerSet<'_>],
) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut budget = ReferrerBudget::new(desc);
    // A few referrers are fetched at once (each is a manifest and a bundle request, and
    // verifying one component is mostly these round trips); they are judged in listing
    // order, and the budget is charged in that order, so at most READ_AHEAD - 1 fetches run
    // past a cap before it stops the gather (dropping the stream cancels them).
    let entries = target.referrers(desc).await?;
    let mut fetched = futures_util::stream::iter(entries)
        .map(|entry| async move {
            let bundle = referrer_bundle(target, &entry, desc).await;
            (entry, bundle)
        })
        .buffered(READ_AHEAD);
    while let Some((entry, bundle)) = fetched.next().await {
        budget.fetch()?;
        let (trusted, unverified) = match bundle {
            Err(NoBundle::Fetch(error)) => {
                // A referrer listed but gone (a stale fallback index) costs one quick 404.
                if !matches!(error, Error::NotFound { .. }) {
                    budget.failed(&error)?;
                }
                (Err(error.to_string()), None)
            }
            Err(NoBundle::Ignored(reason)) => (Err(reason), None),
            Ok(bundle) => {
                let unverified = unverified_statement(&bundle);
                let trusted = check_bundle(bundle, signers, desc, components);
                (trusted, unverified)
            }
        };
        let unverified = if trusted.is_ok() { None } else { unverified };
        findings.push(Finding { referrer: entry.digest.clone(), trusted, unverified });
    }
    Ok(findings)
}

/// What became of one referrer under plain trusted keys and roots.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "outcome")]
pub enum SignatureOutcome {
    /// A whole-model signature by a trusted signer that matches the manifest.
    Verified { predicate_type: String, signer: String },
    /// Signed by a trusted signer but does not match: verification fails.
    Mismatch { predicate_type: String, signer: String, reason: String },
    /// A trusted component signature: covers these components, verifies no model on its own.
    ComponentSignature { predicate_type: String, signer: String, components: Vec<String> },
    /// A trusted attestation about this model: signs nothing, verifies no model on its own.
    Attestation { predicate_type: String, signer: String },
    /// Not a trusted statement (garbage, foreign key, another subject): no effect.
    Ignored { reason: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureCheck {
    pub referrer: Digest,
    #[serde(flatten)]
    pub outcome: SignatureOutcome,
}

impl SignatureCheck {
    /// The outcome of a finding, whoever's signature verified it.
    pub fn of(finding: &Finding) -> Self {
        let outcome = match &finding.trusted {
            Err(reason) => SignatureOutcome::Ignored { reason: reason.clone() },
            Ok(t) => {
                let (predicate_type, signer) = (t.statement.predicate_type.clone(), t.signer.clone());
                match &t.coverage {
                    Err(reason) => SignatureOutcome::Mismatch { predicate_type, signer, reason: reason.clone() },
                    Ok(Coverage::Model) => SignatureOutcome::Verified { predicate_type, signer },
                    Ok(Coverage::Components(components)) => {
                        SignatureOutcome::ComponentSignature { predicate_type, signer, components: components.clone() }
                    }
                    Ok(Coverage::Attestation) => SignatureOutcome::Attestation { predicate_type, signer },
                }
            }
        };
        SignatureCheck { referrer: finding.referrer.clone(), outcome }
    }
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
    /// The outcome of every finding; `oms_from` limits which findings may supply the
    /// OMS bundle (`pull` writes it as `model.sig`).
    pub fn from_findings(findings: &[Finding], oms_from: impl Fn(&Trusted) -> bool) -> Self {
        let oms_bundle = findings
            .iter()
            .filter_map(|f| f.trusted.as_ref().ok())
            .find(|t| is_oms(&t.statement.predicate_type) && matches!(t.coverage, Ok(Coverage::Model)) && oms_from(t))
            .map(|t| t.bundle.clone());
        SignatureVerdict { checks: findings.iter().map(SignatureCheck::of).collect(), oms_bundle }
    }

    fn count(&self, f: impl Fn(&SignatureOutcome) -> bool) -> usize {
        self.checks.iter().filter(|c| f(&c.outcome)).count()
    }

    /// Matching whole-model signatures.
    pub fn verified(&self) -> usize {
        self.count(|o| matches!(o, SignatureOutcome::Verified { .. }))
    }

    pub fn mismatches(&self) -> usize {
        self.count(|o| matches!(o, SignatureOutcome::Mismatch { .. }))
    }

    pub fn passed(&self) -> bool {
        self.verified() > 0 && self.mismatches() == 0
    }

    /// Why the signatures do not pass under plain trusted keys and roots, if they do not.
    pub fn failure(&self) -> Option<String> {
        if let Some(reason) = self.mismatch() {
            return Some(reason);
        }
        if self.verified() > 0 {
            return None;
        }
        let ignored = self.count(|o| matches!(o, SignatureOutcome::Ignored { .. }));
        let not_signatures = self.checks.len() - ignored;
        Some(if self.checks.is_empty() {
            "no signature: the model has no signature referrers".to_string()
        } else if not_signatures > 0 {
            format!(
                "no signature from a trusted signer: {not_signatures} trusted statement(s) are attestations or component signatures, which never verify a model on their own ({ignored} referrers ignored)"
            )
        } else {
            format!("no signature from a trusted signer ({ignored} referrers ignored)")
        })
    }

    /// The first trusted statement that contradicts the model, as a reason.
    pub fn mismatch(&self) -> Option<String> {
        self.checks.iter().find_map(|c| match &c.outcome {
            SignatureOutcome::Mismatch { reason, signer, .. } => {
                Some(format!("signature {} by {signer} does not match the model: {reason}", c.referrer))
            }
            _ => None,
        })
    }
}

/// Applies the rule for plain trusted keys and roots to every referrer of `desc`.
pub async fn verify_signatures(
    target: &Target,
    desc: &Descriptor,
    components: &[Component],
    trust: &TrustPolicy,
) -> Result<SignatureVerdict> {
    let findings = gather(target, desc, components, &[SignerSet { name: None, trust }]).await?;
    Ok(SignatureVerdict::from_findings(&findings, |_| true))
}
