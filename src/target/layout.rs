//! An OCI image-layout folder (`oci-layout`, `index.json`, `blobs/sha256/`).

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::oci::{Descriptor, Manifest};
use crate::progress::Progress;

use super::{BlobReader, BlobSource, PushedManifest};

pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub async fn open(path: &Path, _create: bool) -> Result<Self> {
        Ok(Layout { root: path.to_path_buf() })
    }
    pub fn describe(&self) -> String {
        format!("layout {}", self.root.display())
    }
    pub async fn resolve(&self, _selector: &str) -> Result<Descriptor> {
        todo!()
    }
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
    pub async fn push_manifest(&self, _bytes: &[u8], _media_type: &str, _tag: Option<&str>) -> Result<PushedManifest> {
        todo!()
    }
    pub async fn push_referrer(&self, _bytes: &[u8], _manifest: &Manifest) -> Result<Descriptor> {
        todo!()
    }
    pub async fn referrers(&self, _subject: &Descriptor) -> Result<Vec<Descriptor>> {
        todo!()
    }
}
