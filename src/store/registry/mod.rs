//! A repository on an OCI distribution registry, over HTTP(S).
//!
//! Code map: `client` sends requests (authentication loop, retries); `auth` answers
//! challenges and caches tokens per scope; [`credentials`] reads docker's config and helpers
//! (and offers `login`/`logout`); [`retry`] is the backoff policy; `errors` turns answers
//! into one-line errors; `tls` trusts the CAs of `--ca-file`; `origin` decides where
//! credentials may go; [`timeouts`] bounds waits on a silent registry; `manifests`, `blobs`,
//! `upload` and `referrers` are the operations.
//!
//! Invariant: nothing here interprets artifacts or trusts what it reads: the target layer
//! above checks digests. Nothing here prints; retries are reported through `Progress::note`.

mod auth;
mod blobs;
mod client;
pub mod credentials;
mod errors;
pub mod login;
mod manifests;
mod origin;
mod referrers;
pub mod retry;
pub mod timeouts;
mod tls;
mod upload;

use std::sync::Mutex;

use crate::digest::Digest;
use crate::error::Result;
use crate::oci::{Descriptor, Manifest};
use crate::progress::Progress;

use super::{BlobReader, BlobSource, PushedManifest, TargetOptions};

pub use login::{login, logout};
pub use retry::RetryPolicy;

pub struct Registry {
    /// Boxed: it is large, and `Target` holds a `Registry` inline.
    client: Box<client::Client>,
    registry: String,
    repository: String,
    plain_http: bool,
    referrers_api: Mutex<referrers::ApiState>,
}

impl Registry {
    pub fn new(registry: &str, repository: &str, options: &TargetOptions) -> Result<Self> {
        let mut client = client::Client::new(registry, options, auth::CredentialSource::DefaultConfig)?;
        client.set_notes(options.notes.0.clone());
        Ok(Registry {
            client: Box::new(client),
            registry: registry.to_string(),
            repository: repository.to_string(),
            plain_http: origin::PlainHttp::new(options.plain_http, &options.plain_http_hosts).applies_to(registry),
            referrers_api: Mutex::new(referrers::ApiState::Unknown),
        })
    }

    /// Replaces the retry policy (tests use short waits).
    pub fn set_retry_policy(&mut self, policy: RetryPolicy) {
        self.client.policy = policy;
    }

    /// Reads credentials from this docker config file instead of the usual one.
    pub fn set_docker_config(&mut self, config: credentials::DockerConfig) {
        self.client.set_credentials(auth::CredentialSource::Config(config));
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

    /// `repository:tag` or `repository@digest`, for messages.
    fn reference(&self, selector: &str) -> String {
        if selector.parse::<Digest>().is_ok() {
            format!("{}@{selector}", self.repository)
        } else {
            format!("{}:{selector}", self.repository)
        }
    }

    pub async fn resolve(&self, selector: &str) -> Result<Descriptor> {
        self.resolve_manifest(selector).await
    }

    /// Returns (media type from Content-Type, bytes).
    pub async fn fetch_manifest(&self, selector: &str) -> Result<(String, Vec<u8>)> {
        self.get_manifest(selector).await
    }

    pub async fn fetch_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobReader> {
        self.get_blob(desc, offset).await
    }

    pub async fn blob_exists(&self, desc: &Descriptor) -> Result<bool> {
        self.head_blob(desc).await
    }

    pub async fn push_blob(&self, desc: &Descriptor, source: &BlobSource<'_>, progress: &dyn Progress) -> Result<()> {
        self.upload_blob(desc, source, progress).await
    }

    pub async fn mount_blob(&self, desc: &Descriptor, from_repository: &str) -> Result<bool> {
        self.mount(desc, from_repository).await
    }

    pub async fn push_manifest(&self, bytes: &[u8], media_type: &str, tag: Option<&str>) -> Result<PushedManifest> {
        self.put_manifest(bytes, media_type, tag).await
    }

    pub async fn push_referrers(
        &self,
        subject: &Descriptor,
        referrers: &[(&[u8], &Manifest)],
    ) -> Result<Vec<Descriptor>> {
        self.put_referrers(subject, referrers).await
    }

    pub async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        self.list_referrers(subject).await
    }
}
