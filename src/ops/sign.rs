//! `sign REF`: signs a model that is already in a target **from its manifest alone**
//! (each raw layer's digest is its file's SHA-256, so nothing is downloaded or rehashed).
//!
//! Two Sigstore bundles are attached as referrers, laid out as cosign lays them out:
//! 1. an OMS v1.0 statement over the components (what `model_signing verify` checks once
//!    the bundle is written as `model.sig` beside a pulled model);
//! 2. a statement whose subject is the manifest digest (what `cosign verify-attestation`
//!    checks), which pins the config and annotations too, and names the OMS root digest.
//!
//! The exact layout is in `docs/FORMAT.md` ("Signatures").
//!
//! `sign PATH` on a local model folder or file is [`sign_folder`]: a detached `model.sig`
//! written as `model_signing sign` writes it ([`crate::sign::local`]).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::digest::Digest;
use crate::digest_cache::{DigestCache, HashSummary};
use crate::error::Result;
use crate::folder::ScanOptions;
use crate::oci::{Annotations, Descriptor, Manifest};
use crate::ops::attach::{attach_referrer, attach_referrers, referrer_manifest};
use crate::ops::components::{self, Component};
use crate::ops::model::{
    MANIFEST_PREDICATE_TYPE, fetch_model_manifest, oms_matches_components, oms_resources, oms_root_digest,
};
use crate::progress::{NoProgress, Progress};
use crate::reference::{Location, Reference};
use crate::sign::Signer;
use crate::sign::bundle::BUNDLE_MEDIA_TYPE;
use crate::sign::local::{self, SIGNATURE_FILE};
use crate::sign::oms;
use crate::sign::statement::{Statement, Subject};
use crate::store::{BlobSource, Target};

/// Referrer annotation: what the bundle holds (cosign writes `dsse-envelope`).
pub const ANNOTATION_BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
/// Referrer annotation: the signed statement's predicate type.
pub const ANNOTATION_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";

/// The paths `model_signing` records as left out of a folder whose signature is `model.sig` inside it.
pub fn oms_ignore_paths() -> Vec<String> {
    ScanOptions { ignore_paths: vec![SIGNATURE_FILE.to_string()], ..ScanOptions::default() }.recorded_ignore_paths()
}

/// The OMS statement for a manifest's components.
pub fn oms_statement(model_name: &str, components: &[Component]) -> Statement {
    oms::build_statement(model_name, &oms_resources(components), &oms_ignore_paths(), false)
}

/// The statement whose subject is the manifest itself.
pub fn manifest_statement(
    subject_name: &str,
    manifest_desc: &Descriptor,
    manifest: &Manifest,
    oms_root: &Digest,
) -> Statement {
    let subject = Subject {
        name: subject_name.to_string(),
        digest: [("sha256".to_string(), manifest_desc.digest.hex())].into_iter().collect(),
    };
    let predicate = json!({
        "mediaType": manifest_desc.media_type,
        "artifactType": manifest.effective_artifact_type(),
        "components": manifest.layers.len(),
        "oms": {"predicateType": oms::PREDICATE_TYPE, "rootDigest": {"sha256": oms_root.hex()}},
    });
    Statement::new(vec![subject], MANIFEST_PREDICATE_TYPE, predicate)
}

/// The referrer manifest that carries a bundle, as cosign lays it out.
pub fn bundle_referrer(subject: &Descriptor, bundle: &[u8], predicate_type: &str) -> Manifest {
    let layer = Descriptor::of_bytes(BUNDLE_MEDIA_TYPE, bundle);
    let mut annotations = Annotations::new();
    annotations.insert(ANNOTATION_BUNDLE_CONTENT.into(), "dsse-envelope".into());
    annotations.insert(ANNOTATION_PREDICATE_TYPE.into(), predicate_type.into());
    referrer_manifest(BUNDLE_MEDIA_TYPE, subject, vec![layer], annotations)
}

/// Attaches a bundle to `subject` as a referrer.
pub async fn attach_bundle(
    target: &Target,
    subject: &Descriptor,
    bundle: &[u8],
    predicate_type: &str,
) -> Result<Descriptor> {
    let manifest = bundle_referrer(subject, bundle, predicate_type);
    attach_referrer(target, &manifest, &[BlobSource::Bytes(bundle)], &NoProgress).await
}

/// What `sign REF` attached.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignReport {
    pub reference: String,
    pub digest: Digest,
    pub components: usize,
    pub oms_root_digest: Digest,
    pub oms_signature: Descriptor,
    pub manifest_signature: Descriptor,
}

/// How statements about a manifest name the artifact, as cosign does:
/// `registry/repository`, or a layout folder's name.
pub fn subject_name(reference: &Reference) -> String {
    match &reference.location {
        Location::Registry { registry, repository } => format!("{registry}/{repository}"),
        Location::Layout { path } => {
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
        }
    }
}

/// Signs the model `reference` names in `target`. The manifest statement names the
/// artifact by [`subject_name`].
pub async fn sign(target: &Target, reference: &Reference, signer: &Signer) -> Result<SignReport> {
    sign_reference(target, &reference.selector(), &subject_name(reference), signer).await
}

/// Signs the model `selector` names in `target`. `subject_name` names the artifact in
/// the manifest statement (the repository, as cosign does).
pub async fn sign_reference(
    target: &Target,
    selector: &str,
    subject_name: &str,
    signer: &Signer,
) -> Result<SignReport> {
    let (desc, manifest) = fetch_model_manifest(target, selector).await?;
    let comps = components::components(&manifest, &format!("manifest {}", desc.digest))?;
    let model_name = subject_name.rsplit('/').next().unwrap_or(subject_name);
    let oms = oms_statement(model_name, &comps);
    let oms_root = oms_root_digest(&comps);
    let oms_bundle = signer.sign_statement(&oms)?;
    let manifest_st = manifest_statement(subject_name, &desc, &manifest, &oms_root);
    let manifest_bundle = signer.sign_statement(&manifest_st)?;
    // Both referrers at once: one fallback-index update where the registry has no referrers API.
    let oms_referrer = bundle_referrer(&desc, &oms_bundle, oms::PREDICATE_TYPE);
    let manifest_referrer = bundle_referrer(&desc, &manifest_bundle, MANIFEST_PREDICATE_TYPE);
    let oms_source = [BlobSource::Bytes(&oms_bundle)];
    let manifest_source = [BlobSource::Bytes(&manifest_bundle)];
    let mut pushed = attach_referrers(
        target,
        &[(&oms_referrer, &oms_source[..]), (&manifest_referrer, &manifest_source[..])],
        &NoProgress,
    )
    .await?;
    let manifest_signature = pushed.pop().expect("two referrers pushed");
    let oms_signature = pushed.pop().expect("two referrers pushed");
    Ok(SignReport {
        reference: selector.to_string(),
        digest: desc.digest,
        components: comps.len(),
        oms_root_digest: oms_root,
        oms_signature,
        manifest_signature,
    })
}

/// The OMS statement inside a bundle, read **without checking its signature**: only for
/// the structural check `push` makes before attaching a `model.sig` it found in a folder
/// (verification later checks the signature against trusted keys).
pub fn unverified_oms_statement(bundle: &[u8]) -> Result<oms::Manifest> {
    use base64::Engine;
    let invalid = |reason: String| crate::Error::InvalidContent { what: "model.sig".into(), reason };
    let value: serde_json::Value = serde_json::from_slice(bundle).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let payload = value
        .pointer("/dsseEnvelope/payload")
        .and_then(|p| p.as_str())
        .ok_or_else(|| invalid("not a Sigstore bundle with a DSSE envelope".into()))?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|e| invalid(format!("payload is not base64: {e}")))?;
    let statement = Statement::from_json(&payload)?;
    Ok(oms::Manifest::from_statement(&statement)?)
}

/// Checks that a `model_signing` signature found beside a model lists exactly the
/// components of `manifest` (structure only: its signature is checked against trusted keys
/// by verification). `push` calls it before uploading anything, so that a stale
/// `model.sig` does not publish the model unsigned.
pub fn check_folder_signature(manifest: &Manifest, what: &str, bundle: &[u8]) -> Result<()> {
    let comps = components::components(manifest, what)?;
    let signed = unverified_oms_statement(bundle)?;
    oms_matches_components(&signed, &comps)
        .map_err(|reason| crate::Error::Verification(format!("model.sig does not match the model's files: {reason}")))
}

/// Attaches a `model_signing` signature found beside a pushed model, after checking that it
/// lists exactly the pushed components.
pub async fn attach_folder_signature(
    target: &Target,
    desc: &Descriptor,
    manifest: &Manifest,
    bundle: &[u8],
) -> Result<Descriptor> {
    check_folder_signature(manifest, &format!("manifest {}", desc.digest), bundle)?;
    attach_bundle(target, desc, bundle, oms::PREDICATE_TYPE).await
}

/// What `sign REF --component GLOB…` attached.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSignReport {
    pub reference: String,
    /// The manifest the components were read from (the statement does not name it).
    pub digest: Digest,
    /// The signed components' paths.
    pub components: Vec<String>,
    pub signature: Descriptor,
}

/// Signs only the components of the model `selector` names whose paths match `patterns`
/// (each must match at least one): a component statement (`docs/FORMAT.md`, "Component
/// signatures") listing each one's path and digest, attached as a referrer. Reads the
/// manifest only.
pub async fn sign_components(
    target: &Target,
    selector: &str,
    patterns: &[String],
    signer: &Signer,
) -> Result<ComponentSignReport> {
    use crate::sign::components::{self as component_statement, SignedComponent};
    if patterns.is_empty() {
        return Err(crate::Error::InvalidArguments("--component needs at least one glob".into()));
    }
    let (desc, manifest) = fetch_model_manifest(target, selector).await?;
    let all = components::components(&manifest, &format!("manifest {}", desc.digest))?;
    let selected = components::select(all, patterns)?;
    let signed: Vec<SignedComponent> = selected
        .iter()
        .map(|c| SignedComponent { path: c.path.clone(), digest: c.descriptor.digest.clone() })
        .collect();
    let statement = component_statement::build_statement(&signed, patterns);
    let bundle = signer.sign_statement(&statement)?;
    let signature = attach_bundle(target, &desc, &bundle, component_statement::PREDICATE_TYPE).await?;
    Ok(ComponentSignReport {
        reference: selector.to_string(),
        digest: desc.digest,
        components: signed.into_iter().map(|c| c.path).collect(),
        signature,
    })
}

/// What `sign PATH` (a local model folder or file) wrote. The fields are in the JSON
/// report's key order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderSignReport {
    /// How many files the signature lists.
    pub files: usize,
    /// Which files were read, and which digests came from the digest cache.
    pub hashing: HashSummary,
    /// The OMS root digest over the files.
    pub root_digest: Digest,
    /// Where the signature was written.
    pub signature: PathBuf,
}

/// Signs the local model folder (or file) `path` as `model_signing sign` does, writing the
/// bundle to `signature` (default `PATH/model.sig`, left out of the signed files) and
/// taking unchanged files' digests from `cache`. Blocking: it hashes every file (one
/// thread per core); call it off async runtime threads.
pub fn sign_folder(
    path: &Path,
    signer: &Signer,
    signature: Option<&Path>,
    options: &ScanOptions,
    progress: &dyn Progress,
    cache: Option<&DigestCache>,
) -> Result<FolderSignReport> {
    let threads = crate::folder::default_threads();
    let signed = local::sign_folder_cached(path, signer, signature, options, threads, progress, cache)?;
    Ok(FolderSignReport {
        files: signed.manifest.resources.len(),
        hashing: signed.hashing,
        root_digest: signed.manifest.root_digest,
        signature: signed.signature_path,
    })
}
