//! `verify REF`, and the one trust decision every command makes ([`decide`]): `verify`,
//! `pull` and `copy` with trusted keys, roots or a policy all go through it, so a program
//! using this crate cannot get "verified" bytes without it.
//!
//! Order matters: the manifest is fetched (digest-checked) and every component path
//! checked; then the signatures decide ([`signatures`] has the rule); only when they pass
//! are the requested components' bytes streamed and checked ([`content`]) — bytes are
//! only worth checking against a manifest a trusted signature pins.
//!
//! `verify PATH` on a local model folder or file is [`verify_folder`]: its `model.sig`
//! checked as `model_signing verify` checks it ([`crate::sign::local`]).
//!
//! ```no_run
//! # async fn example() -> modelsign::Result<()> {
//! use modelsign::ops::verify::{self, Trust};
//! use modelsign::progress::NoProgress;
//! use modelsign::sign::{PublicKey, TrustPolicy};
//! use modelsign::store::{Target, TargetOptions};
//!
//! let reference: modelsign::reference::Reference = "oci:/models/llama:v1".parse()?;
//! let target = Target::open(&reference, &TargetOptions::default(), false).await?;
//! let key = PublicKey::from_pem(&std::fs::read_to_string("signer.pub").unwrap())?;
//! let trust = Trust::Keys(TrustPolicy::new().trust_key(key));
//! let report = verify::verify(&target, &reference, &trust, &["config.json".into()], 4, &NoProgress).await?;
//! assert!(report.verified, "{:?}", report.failure);
//! # Ok(()) }
//! ```

pub mod content;
pub mod rules;
pub mod signatures;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use content::{ComponentCheck, verify_components};
pub use rules::{PolicyReport, RuleResult};
pub use signatures::{
    COSIGN_SIGN_PREDICATE_TYPE, MAX_BUNDLE_BLOB, SignatureCheck, SignatureOutcome, SignatureVerdict, StatementKind,
    classify, verify_signatures,
};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Manifest};
use crate::ops::components::{self, Component};
use crate::policy::Policy;
use crate::progress::Progress;
use crate::reference::Reference;
use crate::sign::{TrustPolicy, local};
use crate::store::Target;

/// What a trust decision trusts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Plain trusted keys and roots: a matching whole-model signature by any of them
    /// passes, unless a statement by any of them contradicts the model.
    Keys(TrustPolicy),
    /// A policy: its rules decide (`docs/POLICY.md`).
    Policy(Policy),
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub signatures: SignatureVerdict,
    /// Every rule of the policy with pass or fail, when the trust was a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyReport>,
}

impl Decision {
    /// A trusted OMS bundle that matched the whole model (`pull` writes it as `model.sig`).
    pub fn oms_bundle(&self) -> Option<&[u8]> {
        self.signatures.oms_bundle.as_deref()
    }
}

/// Decides whether the model `desc` (whose components are `all`) may be trusted, for the
/// components in `scope` (all of them unless one is verified or pulled alone).
pub async fn decide(
    target: &Target,
    desc: &Descriptor,
    all: &[Component],
    scope: &[Component],
    trust: &Trust,
) -> Result<Decision> {
    match trust {
        Trust::Keys(keys) => {
            let signatures = verify_signatures(target, desc, all, keys).await?;
            let failure = signatures.failure();
            Ok(Decision { passed: failure.is_none(), failure, signatures, policy: None })
        }
        Trust::Policy(policy) => {
            let sets: Vec<signatures::SignerSet<'_>> = policy
                .signers
                .iter()
                .map(|s| signatures::SignerSet { name: Some(s.name.as_str()), trust: &s.trust })
                .collect();
            let findings = signatures::gather(target, desc, all, &sets).await?;
            let report = rules::evaluate(policy, &findings, all, scope);
            let signatures = SignatureVerdict::from_findings(&findings, |t| !t.signer_names.is_empty());
            let failure = report.failure();
            Ok(Decision { passed: failure.is_none(), failure, signatures, policy: Some(report) })
        }
    }
}

/// The components of a model manifest. A manifest whose layers do not all name a safe,
/// unique file is no model a signature can cover: it did not verify.
pub fn model_components(manifest: &Manifest, what: &str) -> Result<Vec<Component>> {
    components::components(manifest, what).map_err(|e| match e {
        Error::InvalidContent { .. } => Error::Verification(e.to_string()),
        e => e,
    })
}

/// What `verify REF` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub reference: String,
    pub digest: Digest,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub signatures: SignatureVerdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyReport>,
    pub components: Vec<ComponentCheck>,
}

/// Verifies the model `reference` names in `target`: the trust decision, then the bytes
/// of `components` (paths; empty: every component), `concurrency` at a time. A failed
/// check is a report with `verified: false`; `Err` is for what stopped the check itself.
pub async fn verify(
    target: &Target,
    reference: &Reference,
    trust: &Trust,
    components: &[String],
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let limits = crate::unpack::Limits::default();
    verify_with_limits(target, reference, trust, components, &limits, concurrency, progress).await
}

/// [`verify`], listing archive layers (for a path inside one) within `limits`.
pub async fn verify_with_limits(
    target: &Target,
    reference: &Reference,
    trust: &Trust,
    components: &[String],
    limits: &crate::unpack::Limits,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let (desc, manifest) = crate::ops::model::fetch_model_manifest(target, &reference.selector()).await?;
    let all = model_components(&manifest, &format!("{reference} ({})", desc.digest))?;
    // A path inside an archive layer names the layer that holds it (found by listing the archives).
    let selected = crate::ops::archives::pick_components(target, &all, components, limits, progress).await?;
    let decision = decide(target, &desc, &all, &selected, trust).await?;
    let checks =
        if decision.passed { verify_components(target, &selected, concurrency, progress).await } else { Vec::new() };
    let failure = decision.failure.or_else(|| checks.iter().find_map(ComponentCheck::failure));
    Ok(VerifyReport {
        reference: reference.to_string(),
        digest: desc.digest,
        verified: failure.is_none(),
        failure,
        signatures: decision.signatures,
        policy: decision.policy,
        components: checks,
    })
}

/// What `verify PATH` (a local model folder or file) found; only made when it verified
/// (a folder that does not match its signature is an `Err`). The fields are in the JSON
/// report's key order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderVerifyReport {
    /// How many files the signature lists (all present with the signed digests).
    pub files: usize,
    /// The OMS root digest over the files.
    pub root_digest: Digest,
    /// Always `true`.
    pub verified: bool,
}

/// Verifies the local model folder (or file) `path` against its signature (`signature`,
/// default `PATH/model.sig`) and `policy`, leaving out `ignore_paths` as `model_signing
/// verify --ignore-paths` does. Blocking: it hashes every file; call it off async runtime
/// threads.
pub fn verify_folder(
    path: &Path,
    signature: Option<&Path>,
    policy: &TrustPolicy,
    ignore_paths: &[PathBuf],
    progress: &dyn Progress,
) -> Result<FolderVerifyReport> {
    let options = local::VerifyOptions { ignore_paths: ignore_paths.to_vec(), ..Default::default() };
    let result = local::verify_folder_with(path, signature, policy, &options, progress)?;
    Ok(FolderVerifyReport {
        files: result.manifest.resources.len(),
        root_digest: result.manifest.root_digest,
        verified: true,
    })
}

#[cfg(test)]
pub(crate) mod test_models;
#[cfg(test)]
mod tests;
