//! `discover`: the tree of referrers of an artifact. Each referrer's manifest is read, so
//! its artifact type and annotations come from the manifest itself, never from an index
//! entry alone (cosign 2.5 writes the config media type there).

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{Annotations, Descriptor, Manifest};
use crate::ops::verify::Trust;
use crate::ops::verify::signatures::{Coverage, SignerSet, classify, coverage, gather};
use crate::reference::Reference;
use crate::store::Target;
use crate::store::limits::ReferrerBudget;

/// How many levels of referrers `discover` follows below the subject (a referrer of a
/// referrer is level 2): a bound on work a hostile registry can ask for.
pub const MAX_DEPTH: usize = 8;

/// What `discover` found: the subject and its referrers tree.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverReport {
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub referrers: Vec<ReferrerNode>,
    /// For a model: every signature and attestation, who signed it and what it covers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SignatureSummary>,
}

/// The referrers tree of what `reference` names in `target`, [`MAX_DEPTH`] levels deep,
/// and for a model, who signed each signature and attestation (checked against `trust`
/// when given) and what it covers.
pub async fn discover(target: &Target, reference: &Reference, trust: Option<&Trust>) -> Result<DiscoverReport> {
    let desc = target.resolve(&reference.selector()).await?;
    let referrers = referrers_tree(target, &desc, MAX_DEPTH).await?;
    // A model's signatures are summarised; any other artifact (an index, a referrer) is not.
    let signatures = match crate::ops::model::fetch_model_manifest(target, &desc.digest.to_string()).await {
        Ok((_, manifest)) => match crate::ops::components::components(&manifest, "model") {
            Ok(all) => signatures(target, &desc, &all, trust).await?,
            Err(_) => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    Ok(DiscoverReport {
        reference: reference.to_string(),
        digest: desc.digest.clone(),
        media_type: desc.media_type.clone(),
        referrers,
        signatures,
    })
}

/// One artifact in the referrers tree.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerNode {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Annotations::is_empty")]
    pub annotations: Annotations,
    pub referrers: Vec<ReferrerNode>,
}

/// The referrers of `subject`, each with its own referrers, `levels` levels deep (1: the
/// direct referrers only, without theirs).
/// The referrer manifests fetched in the whole tree are capped by one [`ReferrerBudget`].
pub async fn referrers_tree(target: &Target, subject: &Descriptor, levels: usize) -> Result<Vec<ReferrerNode>> {
    let mut budget = ReferrerBudget::new(subject);
    tree(target, subject, levels, &mut budget).await
}

fn tree<'a>(
    target: &'a Target,
    subject: &'a Descriptor,
    levels: usize,
    budget: &'a mut ReferrerBudget,
) -> BoxFuture<'a, Result<Vec<ReferrerNode>>> {
    Box::pin(async move {
        let mut out = Vec::new();
        if levels == 0 {
            return Ok(out);
        }
        for entry in target.referrers(subject).await? {
            budget.fetch()?;
            // A fallback index can name a referrer deleted since (nothing updates the index
            // then): it is no referrer.
            let (desc, bytes) = match target.fetch_manifest(&entry.digest.to_string()).await {
                Ok(found) => found,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let manifest = Manifest::parse(&bytes, &format!("referrer {}", desc.digest))?;
            // A manifest that does not name this subject is not its referrer, whatever an index says.
            if manifest.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
                continue;
            }
            let referrers = tree(target, &desc, levels - 1, &mut *budget).await?;
            out.push(ReferrerNode {
                digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size,
                artifact_type: Some(manifest.effective_artifact_type().to_string()),
                annotations: manifest.annotations.clone(),
                referrers,
            });
        }
        Ok(out)
    })
}

/// Counts the nodes of a tree.
pub fn count(nodes: &[ReferrerNode]) -> usize {
    nodes.iter().map(|n| 1 + count(&n.referrers)).sum()
}

/// One signature or attestation of a model: who signed it and what it covers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureSummary {
    pub referrer: Digest,
    pub predicate_type: String,
    /// `model-signature`, `component-signature` or `attestation`.
    pub kind: crate::ops::verify::StatementKind,
    /// The signer (policy names, key fingerprint or certificate subject) when it verified
    /// against the given trust material; else `unverified`.
    pub signer: String,
    pub verified: bool,
    /// What it covers: the whole model, which components, which card.
    pub covers: String,
    /// Why it does not match the model, or why it was not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn covers(statement: &crate::sign::statement::Statement, coverage: &std::result::Result<Coverage, String>) -> String {
    use crate::ops::verify::StatementKind;
    match (classify(&statement.predicate_type), coverage) {
        (_, Err(_)) => "does not match this model".into(),
        (StatementKind::ModelSignature, _) => "whole model".into(),
        (StatementKind::ComponentSignature, Ok(Coverage::Components(paths))) if paths.is_empty() => {
            "components: none of this model's".into()
        }
        (StatementKind::ComponentSignature, Ok(Coverage::Components(paths))) => {
            format!("components: {}", paths.join(", "))
        }
        (_, _) if statement.predicate_type == crate::card::PREDICATE_TYPE => {
            let name = statement.predicate.get("name").and_then(|v| v.as_str()).unwrap_or("?");
            let version = statement.predicate.get("version").and_then(|v| v.as_str()).unwrap_or("?");
            format!("model card: {name} {version}")
        }
        (_, _) => format!("attestation: {}", statement.predicate_type),
    }
}

/// Every signature and attestation of the model `desc` (whose components are `all`),
/// checked against `trust` when given (else each is `unverified`).
pub async fn signatures(
    target: &Target,
    desc: &Descriptor,
    all: &[crate::ops::components::Component],
    trust: Option<&Trust>,
) -> Result<Vec<SignatureSummary>> {
    let sets: Vec<SignerSet<'_>> = match trust {
        None => Vec::new(),
        Some(Trust::Keys(keys)) => vec![SignerSet { name: None, trust: keys }],
        Some(Trust::Policy(policy)) => {
            policy.signers.iter().map(|s| SignerSet { name: Some(s.name.as_str()), trust: &s.trust }).collect()
        }
    };
    let findings = gather(target, desc, all, &sets).await?;
    let mut out = Vec::new();
    for f in findings {
        let summary = match (&f.trusted, &f.unverified) {
            (Ok(t), _) => SignatureSummary {
                referrer: f.referrer.clone(),
                predicate_type: t.statement.predicate_type.clone(),
                kind: t.kind,
                signer: t.signer.clone(),
                verified: true,
                covers: covers(&t.statement, &t.coverage),
                note: t.coverage.as_ref().err().cloned(),
            },
            (Err(reason), Some(statement)) => SignatureSummary {
                referrer: f.referrer.clone(),
                predicate_type: statement.predicate_type.clone(),
                kind: classify(&statement.predicate_type),
                signer: "unverified".into(),
                verified: false,
                covers: covers(statement, &coverage(statement, desc, all)),
                note: trust.map(|_| reason.clone()),
            },
            // Not a bundle at all: shown in the referrers tree only.
            (Err(_), None) => continue,
        };
        out.push(summary);
    }
    Ok(out)
}
