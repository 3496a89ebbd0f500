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
//!
//! Why not the `oci-client` crate: it discards response headers (`OCI-Subject`), has no
//! retry or backoff, no `Link` pagination, no refresh-token exchange, checks no digest on
//! ranged reads and swallows token errors; this is a thin layer over `reqwest` (which
//! `oci-client` itself uses).

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

use super::TargetOptions;

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
}
