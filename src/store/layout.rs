//! An OCI image-layout folder (`oci-layout`, `index.json`, `blobs/sha256/`), for
//! air-gapped sites and offline verification.
//!
//! Blobs are written to a temporary file in `blobs/sha256/`, checked against their digest
//! while being written, and renamed into place. `index.json` is rewritten whole (temporary
//! file + rename) under an exclusive lock on `index.json.lock`, so concurrent writers
//! never lose each other's entries. Tags are index entries annotated with
//! `org.opencontainers.image.ref.name`; referrers are untagged index entries whose
//! manifest has a `subject` (this is how oras-go's layout store finds them too).
//!
//! A layout folder may be shared, so writes follow the pull rules (FORMAT.md §4): below
//! the layout's root everything is reached through folder descriptors without following a
//! symlink, temporary files are created with `O_EXCL`, the lock file is opened only if it
//! is a regular file. Reads refuse FIFOs and devices and count the bytes they read.

use std::fs;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::atomic_file::{self, TempFile};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::local_fs::{self, Dir, Entry};
use crate::oci::{self, ANNOTATION_REF_NAME, Descriptor, Index, Manifest};
use crate::progress::{Progress, Skipped};
use crate::verifying_reader::VerifyingReader;

use super::{BlobReader, BlobSource, MAX_MANIFEST_SIZE, PushedManifest};

const OCI_LAYOUT: &str = "oci-layout";
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The largest `index.json` read (a layout with tens of thousands of entries fits).
const MAX_INDEX_SIZE: u64 = 16 << 20;

pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens a layout folder; with `create`, makes it (and its `oci-layout` and empty
    /// `index.json`) when missing.
    pub async fn open(path: &Path, create: bool) -> Result<Self> {
        let layout = Layout { root: path.to_path_buf() };
        if path.join(OCI_LAYOUT).is_file() {
            return Ok(layout);
        }
        if !create {
            return Err(Error::NotFound {
                target: layout.describe(),
                what: "an OCI layout (no oci-layout file)".into(),
            });
        }
        fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let root = layout.root_dir()?;
        layout.blobs_dir(&root)?;
        if root.entry("index.json").map_err(|e| Error::io(root.child_path("index.json"), e))? == Entry::Missing {
            atomic_file::write_in(&root, "index.json", &Index::empty().to_bytes())?;
        }
        atomic_file::write_in(&root, OCI_LAYOUT, OCI_LAYOUT_CONTENT)?;
        Ok(layout)
    }

    pub fn describe(&self) -> String {
        format!("layout {}", self.root.display())
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// The layout's root folder, opened for writing below it.
    fn root_dir(&self) -> Result<Dir> {
        Dir::open(&self.root).map_err(|e| Error::io(&self.root, e))
    }

    /// `blobs/sha256`, created when missing, reached without following a symlink.
    fn blobs_dir(&self, root: &Dir) -> Result<Dir> {
        let (blobs, _) = root.create_dir("blobs", 0o777)?;
        Ok(blobs.create_dir("sha256", 0o777)?.0)
    }

    fn read_index(&self) -> Result<Index> {
        let path = self.root.join("index.json");
        let bytes = local_fs::read_capped(&path, MAX_INDEX_SIZE, "layout index")?;
        Index::parse(&bytes, &format!("{}/index.json", self.root.display()))
    }

    /// Runs `change` on `index.json` under the layout's lock and writes the result, on a
    /// blocking thread: waiting for another writer's lock must not hold a runtime thread.
    async fn update_index(&self, change: impl FnOnce(&mut Index) + Send + 'static) -> Result<()> {
        let layout = Layout { root: self.root.clone() };
        crate::blocking::run("index.json", move || {
            let root = layout.root_dir()?;
            let lock = root.open_or_create_file("index.json.lock")?;
            let lock_path = root.child_path("index.json.lock");
            lock.lock().map_err(|e| Error::io(&lock_path, e))?;
            let mut index = layout.read_index()?;
            change(&mut index);
            atomic_file::write_in(&root, "index.json", &index.to_bytes())
            // The lock is released when `lock` is dropped.
        })
        .await
    }

    pub async fn resolve(&self, selector: &str) -> Result<Descriptor> {
        let index = self.read_index()?;
        if let Ok(digest) = selector.parse::<Digest>() {
            if let Some(d) = index.manifests.iter().find(|d| d.digest == digest) {
                return Ok(without_ref_name(d));
            }
            // Not listed (a referrer written by another tool): describe the blob itself.
            let path = self.blob_path(&digest);
            let bytes = read_limited(&path, MAX_MANIFEST_SIZE)
                .map_err(|_| Error::NotFound { target: self.describe(), what: format!("manifest {digest}") })?;
            let media_type = oci::sniff_media_type(&bytes).unwrap_or_else(|| oci::MEDIA_TYPE_IMAGE_MANIFEST.into());
            return Ok(Descriptor::of_bytes(media_type, &bytes));
        }
        index
            .manifests
            .iter()
            .find(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(selector))
            .map(without_ref_name)
            .ok_or_else(|| Error::NotFound { target: self.describe(), what: format!("tag `{selector}`") })
    }

    pub async fn fetch_manifest(&self, selector: &str) -> Result<(String, Vec<u8>)> {
        let desc = self.resolve(selector).await?;
        if desc.size > MAX_MANIFEST_SIZE {
            return Err(Error::InvalidContent {
                what: format!("manifest {}", desc.digest),
                reason: "larger than 4 MiB".into(),
            });
        }
        let path = self.blob_path(&desc.digest);
        let bytes = read_limited(&path, MAX_MANIFEST_SIZE).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::NotFound { target: self.describe(), what: format!("manifest {}", desc.digest) }
            }
            _ => Error::io(&path, e),
        })?;
        Ok((desc.media_type, bytes))
    }

    /// The blob's file, opened for reading (a regular file, not checked against the digest).
    pub fn open_blob(&self, desc: &Descriptor) -> Result<fs::File> {
        let path = self.blob_path(&desc.digest);
        open_regular(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::NotFound { target: self.describe(), what: format!("blob {}", desc.digest) }
            }
            _ => Error::io(&path, e),
        })
    }

    pub async fn fetch_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobReader> {
        let path = self.blob_path(&desc.digest);
        let mut file = tokio::fs::File::from_std(self.open_blob(desc)?);
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).await.map_err(|e| Error::io(&path, e))?;
        }
        Ok(Box::pin(file))
    }

    pub async fn blob_exists(&self, desc: &Descriptor) -> Result<bool> {
        match fs::metadata(self.blob_path(&desc.digest)) {
            Ok(m) => Ok(m.is_file() && m.len() == desc.size),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(self.blob_path(&desc.digest), e)),
        }
    }

    pub async fn push_blob(&self, desc: &Descriptor, source: &BlobSource<'_>, progress: &dyn Progress) -> Result<()> {
        let label = desc.annotations.get(oci::ANNOTATION_TITLE).cloned().unwrap_or_else(|| desc.digest.to_string());
        if self.blob_exists(desc).await? {
            progress.skip(&desc.digest, &label, desc.size, Skipped::Exists);
            return Ok(());
        }
        let root = self.root_dir()?;
        let dir = self.blobs_dir(&root)?;
        let hex = desc.digest.hex();
        let mut tmp = TempFile::new_in(&dir, &hex)?;
        let tmp_path = dir.child_path(&hex);
        let mut file = tokio::fs::File::from_std(tmp.take_file());
        progress.start(&desc.digest, &label, desc.size);
        let reader = source.open(desc).await?;
        let mut reader = VerifyingReader::new(reader, desc.digest.clone(), desc.size, label.clone(), Hasher::new());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).await.map_err(|e| Error::io(&label, e))?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).await.map_err(|e| Error::io(&tmp_path, e))?;
            progress.advance(&desc.digest, n as u64);
        }
        file.flush().await.map_err(|e| Error::io(&tmp_path, e))?;
        tmp.put_back(file.into_std().await);
        tmp.persist(&hex)?;
        progress.finish(&desc.digest);
        Ok(())
    }

    pub async fn push_manifest(&self, bytes: &[u8], media_type: &str, tag: Option<&str>) -> Result<PushedManifest> {
        let mut desc = Descriptor::of_bytes(media_type, bytes);
        if let Ok(m) = Manifest::parse(bytes, "manifest") {
            desc.artifact_type = m.artifact_type.clone();
        }
        self.push_blob(&desc, &BlobSource::Bytes(bytes), &crate::progress::NoProgress).await?;
        let (entry, tag) = (desc.clone(), tag.map(str::to_string));
        self.update_index(move |index| match tag {
            Some(tag) => {
                index
                    .manifests
                    .retain(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(tag.as_str()));
                let mut tagged = entry;
                tagged.annotations.insert(ANNOTATION_REF_NAME.into(), tag);
                index.manifests.push(tagged);
            }
            None => {
                if !index.manifests.iter().any(|d| d.digest == entry.digest) {
                    index.manifests.push(entry);
                }
            }
        })
        .await?;
        Ok(PushedManifest { descriptor: desc, subject_indexed: true })
    }

    pub async fn push_referrer(&self, bytes: &[u8], manifest: &Manifest) -> Result<Descriptor> {
        let media_type = manifest.media_type.as_deref().unwrap_or(oci::MEDIA_TYPE_IMAGE_MANIFEST);
        self.push_manifest(bytes, media_type, None).await?;
        Ok(manifest.descriptor(bytes))
    }

    pub async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        let index = self.read_index()?;
        let mut out: Vec<Descriptor> = Vec::new();
        for entry in &index.manifests {
            if entry.digest == subject.digest || !entry.is_manifest() || out.iter().any(|d| d.digest == entry.digest) {
                continue;
            }
            let path = self.blob_path(&entry.digest);
            let Ok(bytes) = read_limited(&path, MAX_MANIFEST_SIZE) else { continue };
            if Digest::of(&bytes) != entry.digest {
                continue;
            }
            if let Ok(m) = Manifest::parse(&bytes, "manifest")
                && m.subject.as_ref().is_some_and(|s| s.digest == subject.digest)
            {
                out.push(m.descriptor(&bytes));
            }
        }
        Ok(out)
    }
}

fn without_ref_name(d: &Descriptor) -> Descriptor {
    let mut d = d.clone();
    d.annotations.remove(ANNOTATION_REF_NAME);
    d
}

/// Reads a manifest blob: a regular file (FIFOs and devices refused), at most `limit` bytes.
fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("{} is larger than {limit} bytes", path.display())));
    }
    Ok(bytes)
}

/// Opens a file for reading if it is a regular file; a FIFO does not block the open.
fn open_regular(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!("{} is not a regular file", path.display())));
    }
    Ok(file)
}
