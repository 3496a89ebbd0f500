//! `push`: a model folder (or one file) becomes a ModelPack artifact with one raw layer
//! per file. [`pack`] hashes the files in parallel (a raw layer's digest is the file's
//! SHA-256) and builds the manifest; [`push`] then uploads only the blobs the target lacks,
//! streamed from disk, then the manifest, then a `model.sig` found in the folder as a
//! signature referrer. That order is the function's, not its caller's: a model.sig that
//! does not list exactly the packed files is refused before anything is uploaded, so a
//! model is never published without the signature that came with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::digest::Digest;
use crate::digest_cache::{DigestCache, HashSummary};
use crate::error::{Error, Result};
use crate::folder::{self, ScanOptions};
use crate::modelpack::{self, ModelDescriptor, ModelFs, ModelPackConfig};
use crate::oci::{ANNOTATION_TITLE, Descriptor, Manifest};
use crate::ops::sign::{attach_folder_signature, check_folder_signature};
use crate::progress::{Progress, Skipped};
use crate::reference::Reference;
use crate::sign::local::SIGNATURE_FILE;
use crate::store::{BlobSource, Target};

/// How to pack a folder.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub scan: ScanOptions,
    /// `descriptor.name`; defaults to the folder's name.
    pub name: Option<String>,
    /// `descriptor.version`; defaults to the tag pushed to.
    pub version: Option<String>,
    /// Hashing threads (default: one per core).
    pub threads: Option<usize>,
    /// Digests of files unchanged since they were last hashed (`None`: read every file).
    pub cache: Option<Arc<DigestCache>>,
}

/// A packed model: the manifest and where each blob's bytes are.
#[derive(Debug, Clone)]
pub struct PackedModel {
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    pub config_bytes: Vec<u8>,
    /// Each layer with the file that holds its bytes.
    pub layers: Vec<(Descriptor, PathBuf)>,
    /// Which files were read to get their digests.
    pub hashing: HashSummary,
    /// A `model_signing` signature found in the folder (not a component: [`push`] attaches
    /// it as a referrer).
    pub signature: Option<FolderSignature>,
}

/// The `model.sig` of a folder, as read when it was packed.
#[derive(Debug, Clone)]
pub struct FolderSignature {
    pub path: PathBuf,
    pub bundle: Vec<u8>,
}

/// Scans and hashes a folder and builds its ModelPack manifest. Each file is read at most
/// once to hash it (not at all when the digest cache knows it unchanged), and a small
/// `config.json` once more for the ModelPack config; a `model.sig` in the folder is read
/// and left out of the components.
pub fn pack(
    path: &Path,
    options: &PackOptions,
    default_version: Option<&str>,
    progress: &dyn Progress,
) -> Result<PackedModel> {
    let signature_file = path.join(SIGNATURE_FILE);
    let mut options = options.clone();
    let signature = if path.is_dir() && signature_file.is_file() {
        options.scan.ignore_paths.push(SIGNATURE_FILE.to_string());
        let bundle = crate::sign::local::read_limited(&signature_file)?;
        Some(FolderSignature { path: signature_file, bundle })
    } else {
        None
    };
    let options = &options;
    let model = folder::scan(path, &options.scan)?;
    if model.files.is_empty() {
        return Err(Error::LocalFile { path: path.to_path_buf(), reason: "no files to push".into() });
    }
    let threads = options.threads.unwrap_or_else(folder::default_threads);
    let cache = options.cache.as_deref();
    let before = cache.map(DigestCache::stats);
    let digests = folder::hash_files_cached(&model.files, threads, progress, cache)?;
    let after = cache.map(DigestCache::stats);
    let hashing = HashSummary::new(
        model.files.len() as u64,
        model.files.iter().map(|f| f.size).sum(),
        before.as_ref().zip(after.as_ref()),
    );

    let mut layers = Vec::with_capacity(model.files.len());
    for (file, digest) in model.files.iter().zip(digests) {
        let class = modelpack::classify(&file.path, file.size);
        let mut desc = Descriptor::new(class.media_type, digest, file.size);
        desc.annotations.insert(modelpack::ANNOTATION_FILEPATH.into(), file.path.clone());
        desc.annotations.insert(ANNOTATION_TITLE.into(), file.path.clone());
        if class.guessed {
            desc.annotations.insert(modelpack::ANNOTATION_UNTESTED.into(), "true".into());
        }
        layers.push((desc, file.source.clone()));
    }

    let name = options.name.clone().or_else(|| {
        let base = if model.single_file {
            path.file_stem().map(|n| n.to_owned())
        } else {
            path.canonicalize().ok()?.file_name().map(|n| n.to_owned())
        };
        base.and_then(|n| n.to_str().map(str::to_string))
    });
    let mut config = model
        .files
        .iter()
        .find(|f| f.path == "config.json" && f.size < (1 << 20))
        .and_then(|f| crate::local_fs::read_capped(&f.source, 1 << 20, "config.json").ok())
        .map(|b| modelpack::read_hf_config(&b))
        .unwrap_or_default();
    config.format = modelpack::infer_format(model.files.iter().map(|f| (f.path.as_str(), f.size)));
    let descriptor = ModelDescriptor {
        created_at: Some(created_at()),
        name,
        version: options.version.clone().or_else(|| default_version.map(str::to_string)),
        ..ModelDescriptor::default()
    };
    let config = ModelPackConfig {
        descriptor,
        config,
        modelfs: ModelFs { fs_type: "layers".into(), diff_ids: layers.iter().map(|(d, _)| d.digest.clone()).collect() },
    };
    let config_bytes = config.to_bytes();
    let config_desc = Descriptor::of_bytes(modelpack::CONFIG_MEDIA_TYPE, &config_bytes);
    let manifest = Manifest::new(
        Some(modelpack::ARTIFACT_TYPE.into()),
        config_desc,
        layers.iter().map(|(d, _)| d.clone()).collect(),
    );
    let manifest_bytes = manifest.to_bytes();
    Ok(PackedModel { manifest, manifest_bytes, config_bytes, layers, hashing, signature })
}

/// `createdAt`: now, or `SOURCE_DATE_EPOCH` for reproducible artifacts.
fn created_at() -> String {
    let time = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap_or_else(SystemTime::now);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// One component as pushed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushedComponent {
    pub path: String,
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// False when the target already had the blob.
    pub uploaded: bool,
}

/// What `push` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushReport {
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub config: Descriptor,
    pub components: Vec<PushedComponent>,
    pub bytes_uploaded: u64,
    /// Bytes of components the target already had (an earlier or interrupted push): not sent.
    pub bytes_present: u64,
    /// Which files were read to get their digests, and which came from the digest cache.
    pub hashing: HashSummary,
    /// The referrer holding a `model.sig` found in the folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Descriptor>,
}

/// Pushes a packed model to `target` under `reference`'s tag (none when the reference names
/// only a digest, which must then be the packed manifest's): a `model.sig` packed with it is
/// checked against the components first, then the config and missing layers are uploaded
/// (`concurrency` at once), then the manifest, then the signature is attached.
pub async fn push(
    target: &Target,
    reference: &Reference,
    packed: &PackedModel,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let tag = push_tag(reference);
    if let Some(expected) = &reference.digest {
        let actual = Digest::of(&packed.manifest_bytes);
        if &actual != expected {
            return Err(Error::ReferenceDigestMismatch { actual, expected: expected.clone() });
        }
    }
    // A model.sig that does not list exactly these files would be refused after the upload,
    // leaving the model published without its signature: refuse it before.
    if let Some(signature) = &packed.signature {
        let what = format!("{} ({})", signature.path.display(), Digest::of(&packed.manifest_bytes));
        check_folder_signature(&packed.manifest, &what, &signature.bundle)?;
    }
    let (manifest, uploaded) = upload(target, packed, tag.as_deref(), concurrency, progress).await?;
    let mut report = report(reference.to_string(), packed, &manifest, &uploaded);
    if let Some(signature) = &packed.signature {
        report.signature = Some(attach_folder_signature(target, &manifest, &packed.manifest, &signature.bundle).await?);
    }
    Ok(report)
}

/// The tag a push of `reference` writes: none when it names only a digest.
pub fn push_tag(reference: &Reference) -> Option<String> {
    if reference.digest.is_some() && reference.tag.is_none() { None } else { Some(reference.selector_tag()) }
}

/// Uploads a packed model: config and missing layers (`concurrency` at once), then the manifest under `tag`.
/// Private: [`push`] checks a packed signature before and attaches it after.
async fn upload(
    target: &Target,
    packed: &PackedModel,
    tag: Option<&str>,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<(Descriptor, Vec<bool>)> {
    let config = &packed.manifest.config;
    let push_config = async {
        if !target.blob_exists(config).await? {
            target.push_blob(config, &BlobSource::Bytes(&packed.config_bytes), progress).await?;
        }
        Ok::<(), Error>(())
    };
    // Unordered: one slow blob does not hold back the others' slots (thousands of small files).
    let slots = crate::ops::slots::Slots::new(concurrency);
    let slots = &slots;
    let push_layers =
        futures_util::stream::iter(packed.layers.iter().enumerate().map(|(i, (desc, path))| async move {
            let _slot = slots.take(desc.size).await;
            let label = desc.annotations.get(ANNOTATION_TITLE).map(String::as_str).unwrap_or("");
            if target.blob_exists(desc).await? {
                progress.skip(&desc.digest, label, desc.size, Skipped::Exists);
                return Ok::<(usize, bool), Error>((i, false));
            }
            target.push_blob(desc, &BlobSource::File(path), progress).await?;
            Ok((i, true))
        }))
        .buffer_unordered(slots.most())
        .try_collect::<Vec<(usize, bool)>>();
    let ((), done) = tokio::try_join!(push_config, push_layers)?;
    let mut uploaded = vec![false; packed.layers.len()];
    for (i, up) in done {
        uploaded[i] = up;
    }
    let media_type = packed.manifest.media_type.as_deref().unwrap_or(crate::oci::MEDIA_TYPE_IMAGE_MANIFEST);
    let pushed = target.push_manifest(&packed.manifest_bytes, media_type, tag).await?;
    Ok((pushed.descriptor, uploaded))
}

/// Builds the report of a finished push.
fn report(reference: String, packed: &PackedModel, manifest: &Descriptor, uploaded: &[bool]) -> PushReport {
    let components: Vec<PushedComponent> = packed
        .layers
        .iter()
        .zip(uploaded)
        .map(|((d, _), up)| PushedComponent {
            path: d.annotations.get(modelpack::ANNOTATION_FILEPATH).cloned().unwrap_or_default(),
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
            uploaded: *up,
        })
        .collect();
    let bytes_uploaded = components.iter().filter(|c| c.uploaded).map(|c| c.size).sum();
    let bytes_present = components.iter().filter(|c| !c.uploaded).map(|c| c.size).sum();
    PushReport {
        reference,
        digest: manifest.digest.clone(),
        media_type: manifest.media_type.clone(),
        size: manifest.size,
        config: packed.manifest.config.clone(),
        components,
        bytes_uploaded,
        bytes_present,
        hashing: packed.hashing,
        signature: None,
    }
}
