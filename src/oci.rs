//! OCI image-spec types: descriptors, image manifests and indexes, and the media types
//! modelsign writes. Annotations are `BTreeMap`s so serialisation is byte-stable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

pub const MEDIA_TYPE_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The `{}` blob every artifact without a config points at.
pub const EMPTY_JSON: &[u8] = b"{}";

/// Manifest media types a registry is asked for (distribution 2.8 refuses OCI manifests
/// unless they are named in `Accept`).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

pub type Annotations = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor { media_type: media_type.into(), digest, size, artifact_type: None, annotations: Annotations::new() }
    }

    /// The descriptor of `bytes` (small content: configs, manifests).
    pub fn of_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// A copy with only the fields that identify content (for `subject`).
    pub fn plain(&self) -> Self {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }

    pub fn is_manifest(&self) -> bool {
        matches!(self.media_type.as_str(), MEDIA_TYPE_IMAGE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST)
    }

    pub fn is_index(&self) -> bool {
        matches!(self.media_type.as_str(), MEDIA_TYPE_IMAGE_INDEX | MEDIA_TYPE_DOCKER_MANIFEST_LIST)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

impl Manifest {
    pub fn new(artifact_type: Option<String>, config: Descriptor, layers: Vec<Descriptor>) -> Self {
        Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.to_string()),
            artifact_type,
            config,
            layers,
            subject: None,
            annotations: Annotations::new(),
        }
    }

    /// The artifact type as the image spec defines it: `artifactType`, else the config's media type.
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type.as_deref().unwrap_or(&self.config.media_type)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serialises")
    }

    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| Error::InvalidContent {
            what: what.to_string(),
            reason: format!("not an OCI image manifest: {e}"),
        })?;
        if m.schema_version != 2 {
            return Err(Error::InvalidContent {
                what: what.to_string(),
                reason: format!("schemaVersion {} is not 2", m.schema_version),
            });
        }
        Ok(m)
    }

    /// The descriptor of this manifest when serialised as `bytes`.
    pub fn descriptor(&self, bytes: &[u8]) -> Descriptor {
        let mut d =
            Descriptor::of_bytes(self.media_type.clone().unwrap_or_else(|| MEDIA_TYPE_IMAGE_MANIFEST.into()), bytes);
        d.artifact_type = Some(self.effective_artifact_type().to_string());
        d.annotations = self.annotations.clone();
        d
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

impl Index {
    pub fn empty() -> Self {
        Index {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_INDEX.to_string()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: Annotations::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("index serialises")
    }

    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidContent {
            what: what.to_string(),
            reason: format!("not an OCI image index: {e}"),
        })
    }
}

/// The media type a manifest document declares, for documents fetched without one.
pub fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    p.media_type.or_else(|| {
        Some(if p.manifests.is_some() { MEDIA_TYPE_IMAGE_INDEX } else { MEDIA_TYPE_IMAGE_MANIFEST }.to_string())
    })
}
