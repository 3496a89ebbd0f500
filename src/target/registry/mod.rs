//! A repository on an OCI distribution registry, over HTTP(S).

use crate::error::Result;
use crate::oci::{Descriptor, Manifest};
use crate::progress::Progress;

use super::{BlobReader, BlobSource, PushedManifest, TargetOptions};

pub struct Registry {
    registry: String,
    repository: String,
    plain_http: bool,
}

impl Registry {
    pub fn new(registry: &str, repository: &str, options: &TargetOptions) -> Result<Self> {
        Ok(Registry { registry: registry.to_string(), repository: repository.to_string(), plain_http: options.plain_http })
    }

    pub fn describe(&self) -> String {
        format!("registry {} repository {}", self.registry, self.repository)
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn same_registry(&self, other: &Registry) -> bool {
        self.registry == other.registry && self.plain_http == other.plain_http
    }

    pub async fn resolve(&self, _selector: &str) -> Result<Descriptor> {
        todo!()
    }

    /// Returns (media type from Content-Type, bytes).
    pub async fn fetch_manifest(&self, _selector: &str) -> Result<(String, Vec<u8>)> {
        todo!()
    }

    pub async fn fetch_blob(&self, _desc: &Descriptor, _offset: u64) -> Result<BlobReader> {
        todo!()
    }

    pub async fn blob_exists(&self, _desc: &Descriptor) -> Result<bool> {
        todo!()
    }

    pub async fn push_blob(&self, _desc: &Descriptor, _source: &BlobSource<'_>, _progress: &dyn Progress) -> Result<()> {
        todo!()
    }

    pub async fn mount_blob(&self, _desc: &Descriptor, _from_repository: &str) -> Result<bool> {
        todo!()
    }

    pub async fn push_manifest(&self, _bytes: &[u8], _media_type: &str, _tag: Option<&str>) -> Result<PushedManifest> {
        todo!()
    }

    pub async fn push_referrer(&self, _bytes: &[u8], _manifest: &Manifest, _subject: &Descriptor) -> Result<Descriptor> {
        todo!()
    }

    pub async fn referrers(&self, _subject: &Descriptor) -> Result<Vec<Descriptor>> {
        todo!()
    }
}
