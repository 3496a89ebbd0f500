//! Where artifacts are stored: a registry (`registry`) or an OCI image-layout folder
//! (`layout`). Every operation above this module (push, pull, copy, sign, verify) speaks
//! only to [`Target`] and descriptors, so it works on both alike. Only this module knows
//! HTTP and the on-disk layout.
//!
//! Invariant: nothing here interprets artifacts; callers check what they read against
//! digests (`fetch_manifest` by digest and [`Target::fetch_small_blob`] check for them).

pub mod layout;
pub mod limits;
pub mod registry;

use std::path::{Path, PathBuf};
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Manifest};
use crate::progress::Progress;
use crate::reference::{Location, Reference};
use crate::verifying_reader::VerifyingReader;

/// A stream of blob bytes, not yet checked.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// Largest manifest or index modelsign will read (the distribution spec suggests 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// How to reach targets.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// Talk HTTP instead of HTTPS to registries: to every registry, or only to those in
    /// `plain_http_hosts` when it is not empty.
    pub plain_http: bool,
    /// `host` or `host:port` of the registries reached over plain HTTP (`--plain-http=HOST,…`).
    pub plain_http_hosts: Vec<String>,
    /// The longest wait on a registry that sends nothing (default 90 s); a silence of a third
    /// of it (at most 30 s) fails one attempt.
    pub timeout: Option<std::time::Duration>,
    /// PEM files of CA certificates that registries' TLS certificates may chain to, besides
    /// the system's (a private CA, a self-signed registry).
    pub ca_files: Vec<PathBuf>,
    /// Accept any TLS certificate from registries: no chain, name or expiry check.
    pub insecure: bool,
    /// Blobs transferred at once.
    pub concurrency: Option<usize>,
    /// Where notes go that no operation's progress receives (a retried manifest request).
    pub notes: Notes,
}

/// A shared sink for [`Progress::note`]s; reports nothing by default.
#[derive(Clone)]
pub struct Notes(pub std::sync::Arc<dyn Progress>);

impl Default for Notes {
    fn default() -> Self {
        Notes(std::sync::Arc::new(crate::progress::NoProgress))
    }
}

impl std::fmt::Debug for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notes")
    }
}

impl TargetOptions {
    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(4).max(1)
    }
}

/// A registry repository or an OCI layout folder.
pub enum Target {
    Registry(registry::Registry),
    Layout(layout::Layout),
}

/// The result of pushing a manifest.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    pub descriptor: Descriptor,
    /// The target indexed the manifest's `subject` itself (`OCI-Subject` answered, or a layout).
    pub subject_indexed: bool,
}

/// Where the bytes of a blob come from when pushing. Reopened on every retry.
pub enum BlobSource<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
    /// The same blob, fetched from another target (copy).
    Target(&'a Target),
}

impl BlobSource<'_> {
    /// Opens the source at its start.
    pub async fn open(&self, desc: &Descriptor) -> Result<BlobReader> {
        match self {
            BlobSource::Bytes(b) => Ok(Box::pin(std::io::Cursor::new(b.to_vec()))),
            BlobSource::File(p) => {
                let f = tokio::fs::File::open(p).await.map_err(|e| Error::io(*p, e))?;
                Ok(Box::pin(f))
            }
            BlobSource::Target(t) => {
                let r = Box::pin(t.fetch_blob(desc, 0)).await?;
                Ok(Box::pin(VerifyingReader::new(
                    r,
                    desc.digest.clone(),
                    desc.size,
                    desc.digest.to_string(),
                    Hasher::new(),
                )))
            }
        }
    }
}

impl Target {
    /// Opens the target a reference points at. A layout folder is created when `create` is set.
    pub async fn open(reference: &Reference, options: &TargetOptions, create: bool) -> Result<Target> {
        match &reference.location {
            Location::Registry { registry, repository } => {
                Ok(Target::Registry(registry::Registry::new(registry, repository, options)?))
            }
            Location::Layout { path } => Ok(Target::Layout(layout::Layout::open(path, create).await?)),
        }
    }

    /// Names the target in messages: `registry 127.0.0.1:5000 repository m` or `layout /x`.
    pub fn describe(&self) -> String {
        match self {
            Target::Registry(r) => r.describe(),
            Target::Layout(l) => l.describe(),
        }
    }

    /// Resolves a tag or digest to the manifest descriptor it names.
    pub async fn resolve(&self, selector: &str) -> Result<Descriptor> {
        match self {
            Target::Registry(r) => r.resolve(selector).await,
            Target::Layout(l) => l.resolve(selector).await,
        }
    }

    /// Fetches a manifest (or index) by tag or digest. When `selector` is a digest the bytes
    /// are checked against it; the returned descriptor is always computed from the bytes.
    pub async fn fetch_manifest(&self, selector: &str) -> Result<(Descriptor, Vec<u8>)> {
        let (media_type, bytes) = match self {
            Target::Registry(r) => r.fetch_manifest(selector).await?,
            Target::Layout(l) => l.fetch_manifest(selector).await?,
        };
        let desc = Descriptor::of_bytes(media_type, &bytes);
        if let Ok(expected) = selector.parse::<Digest>()
            && desc.digest != expected
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest in {}", self.describe()),
                expected,
                actual: desc.digest,
            });
        }
        Ok((desc, bytes))
    }

    /// Fetches and parses an image manifest by digest.
    pub async fn fetch_image_manifest(&self, desc: &Descriptor) -> Result<Manifest> {
        let (_, bytes) = self.fetch_manifest(&desc.digest.to_string()).await?;
        Manifest::parse(&bytes, &format!("manifest {}", desc.digest))
    }

    /// Streams a blob's bytes from `offset` on. The bytes are NOT checked: wrap them in a
    /// [`VerifyingReader`] or use [`Target::fetch_small_blob`].
    pub async fn fetch_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobReader> {
        match self {
            Target::Registry(r) => r.fetch_blob(desc, offset).await,
            Target::Layout(l) => l.fetch_blob(desc, offset).await,
        }
    }

    /// The blob as a local file, when the target is a layout folder (read on a blocking
    /// thread without the async runtime's hand-offs); `None` for a registry.
    pub fn local_blob(&self, desc: &Descriptor) -> Result<Option<std::fs::File>> {
        match self {
            Target::Registry(_) => Ok(None),
            Target::Layout(l) => l.open_blob(desc).map(Some),
        }
    }

    /// Reads a small blob (config, bundle) whole, checked against its size and digest.
    pub async fn fetch_small_blob(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>> {
        if desc.size > limit {
            return Err(Error::InvalidContent {
                what: format!("blob {}", desc.digest),
                reason: format!("{} bytes is over the {limit}-byte limit for metadata", desc.size),
            });
        }
        let reader = self.fetch_blob(desc, 0).await?;
        let mut verified = VerifyingReader::new(
            reader,
            desc.digest.clone(),
            desc.size,
            format!("blob {}", desc.digest),
            Hasher::new(),
        );
        let mut out = Vec::with_capacity(desc.size as usize);
        verified.read_to_end(&mut out).await.map_err(|e| Error::io(self.describe(), e))?;
        Ok(out)
    }

    /// Whether the target holds the blob.
    pub async fn blob_exists(&self, desc: &Descriptor) -> Result<bool> {
        match self {
            Target::Registry(r) => r.blob_exists(desc).await,
            Target::Layout(l) => l.blob_exists(desc).await,
        }
    }

    /// Uploads a blob whose descriptor is known, with retries.
    pub async fn push_blob(&self, desc: &Descriptor, source: &BlobSource<'_>, progress: &dyn Progress) -> Result<()> {
        match self {
            Target::Registry(r) => r.push_blob(desc, source, progress).await,
            Target::Layout(l) => l.push_blob(desc, source, progress).await,
        }
    }

    /// Asks the target to link a blob from another repository of the same registry.
    /// `Ok(false)` when it would not; the caller then uploads.
    pub async fn mount_blob(&self, desc: &Descriptor, from: &Target) -> Result<bool> {
        match (self, from) {
            (Target::Registry(r), Target::Registry(src)) if r.same_registry(src) => {
                r.mount_blob(desc, src.repository()).await
            }
            _ => Ok(false),
        }
    }

    /// Stores a manifest (by digest, and under `tag` when given).
    pub async fn push_manifest(&self, bytes: &[u8], media_type: &str, tag: Option<&str>) -> Result<PushedManifest> {
        match self {
            Target::Registry(r) => r.push_manifest(bytes, media_type, tag).await,
            Target::Layout(l) => l.push_manifest(bytes, media_type, tag).await,
        }
    }

    /// Stores a manifest that has a `subject`, and makes it findable by [`Target::referrers`]:
    /// through the registry's referrers API when it indexed it, else through the
    /// `sha256-<hex>` fallback tag (read-modify-write, re-read, retried).
    pub async fn push_referrer(&self, bytes: &[u8], manifest: &Manifest) -> Result<Descriptor> {
        let mut pushed = self.push_referrers(&[(bytes, manifest)]).await?;
        Ok(pushed.remove(0))
    }

    /// [`Target::push_referrer`] for several manifests of the same subject at once: a
    /// registry without the referrers API gets one fallback-index update for all of them.
    pub async fn push_referrers(&self, referrers: &[(&[u8], &Manifest)]) -> Result<Vec<Descriptor>> {
        let Some(((_, first), rest)) = referrers.split_first() else { return Ok(Vec::new()) };
        let subject = first.subject.as_ref().ok_or(Error::InvalidReferrers("a referrer manifest needs a subject"))?;
        if rest.iter().any(|(_, m)| m.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest)) {
            return Err(Error::InvalidReferrers("referrers pushed together must share their subject"));
        }
        match self {
            Target::Registry(r) => r.push_referrers(subject, referrers).await,
            Target::Layout(l) => {
                let mut out = Vec::with_capacity(referrers.len());
                for (bytes, manifest) in referrers {
                    out.push(l.push_referrer(bytes, manifest).await?);
                }
                Ok(out)
            }
        }
    }

    /// The manifests whose `subject` is `subject`: at most [`limits::MAX_REFERRERS`] of
    /// them, else an error (a registry reads no further than the caps in [`limits`]).
    /// Entries' `artifactType` may be wrong (cosign 2.5 writes the config media type
    /// there): read the manifest when it matters. Fetch them with a
    /// [`limits::ReferrerBudget`].
    pub async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        let list = match self {
            Target::Registry(r) => r.referrers(subject).await?,
            Target::Layout(l) => l.referrers(subject).await?,
        };
        if list.len() > limits::MAX_REFERRERS {
            return Err(limits::listing_too_long(
                &format!("referrers of {} in {}", subject.digest, self.describe()),
                format!("more than {} referrers", limits::MAX_REFERRERS),
            ));
        }
        Ok(list)
    }
}
