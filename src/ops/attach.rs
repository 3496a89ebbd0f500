//! `attach`: a generic referrer: files as layers of a manifest whose `subject` is the
//! artifact. Signatures build on the same path (`Target::push_referrer`).

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::oci::{
    ANNOTATION_CREATED, ANNOTATION_TITLE, Annotations, Descriptor, EMPTY_JSON, MEDIA_TYPE_EMPTY, Manifest,
};
use crate::progress::Progress;
use crate::store::{BlobSource, Target};

/// The layer media type of attached files (as `oras attach` writes them).
pub const DEFAULT_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// Builds a referrer manifest: empty config, the given layers, `subject`.
pub fn referrer_manifest(
    artifact_type: &str,
    subject: &Descriptor,
    layers: Vec<Descriptor>,
    mut annotations: Annotations,
) -> Manifest {
    let config = Descriptor::of_bytes(MEDIA_TYPE_EMPTY, EMPTY_JSON);
    let mut m = Manifest::new(Some(artifact_type.to_string()), config, layers);
    m.subject = Some(subject.plain());
    annotations
        .entry(ANNOTATION_CREATED.into())
        .or_insert_with(|| humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    m.annotations = annotations;
    m
}

/// Pushes the empty config, the layers' blobs, and the referrer manifest.
pub async fn attach_referrer(
    target: &Target,
    manifest: &Manifest,
    sources: &[BlobSource<'_>],
    progress: &dyn Progress,
) -> Result<Descriptor> {
    let mut pushed = attach_referrers(target, &[(manifest, sources)], progress).await?;
    Ok(pushed.remove(0))
}

/// [`attach_referrer`] for several referrers of one subject: blobs first, then the manifests
/// together (one fallback-index update on registries without the referrers API).
pub async fn attach_referrers(
    target: &Target,
    referrers: &[(&Manifest, &[BlobSource<'_>])],
    progress: &dyn Progress,
) -> Result<Vec<Descriptor>> {
    let empty = Descriptor::of_bytes(MEDIA_TYPE_EMPTY, EMPTY_JSON);
    if referrers.iter().any(|(m, _)| m.config == empty) && !target.blob_exists(&empty).await? {
        target.push_blob(&empty, &BlobSource::Bytes(EMPTY_JSON), progress).await?;
    }
    for (manifest, sources) in referrers {
        for (layer, source) in manifest.layers.iter().zip(sources.iter()) {
            if !target.blob_exists(layer).await? {
                target.push_blob(layer, source, progress).await?;
            }
        }
    }
    let bytes: Vec<Vec<u8>> = referrers.iter().map(|(m, _)| m.to_bytes()).collect();
    let batch: Vec<(&[u8], &Manifest)> = bytes.iter().zip(referrers).map(|(b, (m, _))| (b.as_slice(), *m)).collect();
    target.push_referrers(&batch).await
}

/// Attaches `files` to `subject` as a referrer of `artifact_type`.
pub async fn attach(
    target: &Target,
    subject: &Descriptor,
    artifact_type: &str,
    files: &[PathBuf],
    annotations: Annotations,
    progress: &dyn Progress,
) -> Result<Descriptor> {
    if files.is_empty() {
        return Err(Error::InvalidArguments("attach needs at least one file".into()));
    }
    let mut layers = Vec::new();
    for f in files {
        let path = f.clone();
        let (digest, size) =
            crate::blocking::run(&f.display().to_string(), move || crate::folder::hash_file(&path, None)).await?;
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::LocalFile { path: f.clone(), reason: "file name is not UTF-8".into() })?;
        let mut d = Descriptor::new(DEFAULT_LAYER_MEDIA_TYPE, digest, size);
        d.annotations.insert(ANNOTATION_TITLE.into(), name.to_string());
        layers.push(d);
    }
    let manifest = referrer_manifest(artifact_type, subject, layers, annotations);
    let sources: Vec<BlobSource> = files.iter().map(|f| BlobSource::File(f)).collect();
    attach_referrer(target, &manifest, &sources, progress).await
}
