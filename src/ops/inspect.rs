//! `inspect REF`: what a model is without downloading it: its manifest, ModelPack config,
//! components and how many referrers (signatures, attestations) it has.

use serde::Serialize;

use crate::artifact_kind::{self, ArtifactKind};
use crate::digest::Digest;
use crate::error::Result;
use crate::modelpack::{self, ModelPackConfig};
use crate::ops::{components, discover, model};
use crate::reference::Reference;
use crate::store::{MAX_MANIFEST_SIZE, Target};

/// One component as the manifest lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectedComponent {
    pub path: String,
    pub media_type: String,
    /// `raw` (one file) or the archive format (`tar`, `tar+gzip`, `tar+zstd`).
    pub storage: &'static str,
    pub size: u64,
    pub digest: Digest,
}

/// What `inspect` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectReport {
    pub reference: String,
    pub digest: Digest,
    pub artifact_type: String,
    /// Which tool's layout: modelpack, modelkit, docker, oras.
    pub kind: ArtifactKind,
    pub config_media_type: String,
    /// The ModelPack config, when the config is one and parses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ModelPackConfig>,
    pub components: Vec<InspectedComponent>,
    pub total_size: u64,
    /// How many referrers name the manifest as their subject.
    pub referrers: usize,
}

/// Inspects the model `reference` names in `target`. Reads the manifest, the config and
/// the referrers' manifests; no layer.
pub async fn inspect(target: &Target, reference: &Reference) -> Result<InspectReport> {
    let (desc, manifest) = model::fetch_model_manifest(target, &reference.selector()).await?;
    let comps = components::components(&manifest, &format!("{reference} ({})", desc.digest))?;
    let config = if manifest.config.media_type == modelpack::CONFIG_MEDIA_TYPE {
        let bytes = target.fetch_small_blob(&manifest.config, MAX_MANIFEST_SIZE).await?;
        serde_json::from_slice::<ModelPackConfig>(&bytes).ok()
    } else {
        None
    };
    // The direct referrers only: their own referrers are `discover`'s business.
    let referrers = discover::referrers_tree(target, &desc, 1).await?.len();
    Ok(InspectReport {
        reference: reference.to_string(),
        digest: desc.digest.clone(),
        artifact_type: manifest.effective_artifact_type().to_string(),
        kind: ArtifactKind::of(&manifest),
        config_media_type: manifest.config.media_type.clone(),
        config,
        total_size: comps.iter().map(|c| c.descriptor.size).sum(),
        components: comps
            .into_iter()
            .map(|c| InspectedComponent {
                storage: artifact_kind::storage_label(&c.descriptor),
                path: c.path,
                media_type: c.descriptor.media_type,
                size: c.descriptor.size,
                digest: c.descriptor.digest,
            })
            .collect(),
        referrers,
    })
}
