//! Uploading blobs, and cross-repository mounts.
//!
//! Small blobs: `POST /blobs/uploads/` then one streamed `PUT <location>?digest=`
//! (distribution 2.8 has no single-POST upload). Each attempt starts a new session and
//! reopens the source, so a retry never depends on what a failed session kept.
//!
//! Local files from [`CHUNKED_FROM`] bytes up go in chunks and resume after a cut
//! ([`chunked`]). Every body, whole or chunk, is sent by one helper that bounds the
//! registry's silence ([`send`]).

mod chunked;
mod send;

use std::sync::Mutex;

use reqwest::header::LOCATION;
use reqwest::{Method, Response, StatusCode, Url};

use super::Registry;
use super::auth::Scope;
use super::client::Call;
use super::errors;
use super::retry::{self, Failure};
use super::timeouts::Patience;
use crate::error::{Error, Result};
use crate::oci::{ANNOTATION_TITLE, Descriptor};
use crate::progress::Progress;
use crate::store::BlobSource;
use chunked::CHUNKED_FROM;

impl Registry {
    fn uploads_url(&self) -> Url {
        self.client.url(&format!("/v2/{}/blobs/uploads/", self.repository))
    }

    /// The upload session URL a `202 Accepted` names (absolute or relative).
    fn session_location(&self, resp: &Response, operation: &str) -> Result<Url> {
        let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| Error::Registry {
            registry: self.registry.clone(),
            operation: operation.to_string(),
            status: resp.status().as_u16(),
            code: None,
            message: Some("the upload session has no Location".into()),
        })?;
        self.client.resolve_location(resp.url(), location, operation)
    }

    /// Uploads a blob (POST, then one streamed PUT), with retries.
    pub async fn push_blob(&self, desc: &Descriptor, source: &BlobSource<'_>, progress: &dyn Progress) -> Result<()> {
        let label = desc.annotations.get(ANNOTATION_TITLE).cloned().unwrap_or_else(|| desc.digest.to_string());
        let scope = Scope::push(&self.repository);
        let operation = format!("push blob {}@{}", self.repository, desc.digest);
        progress.start(&desc.digest, &label, desc.size);
        let (scope, operation) = (&scope, operation.as_str());
        // How long the bodies of this blob have gone unanswered, over all attempts.
        let unanswered = &Patience::new(Some(self.client.patience.total()));
        if matches!(source, BlobSource::File(_)) && desc.size >= CHUNKED_FROM {
            let session: Mutex<Option<Url>> = Mutex::new(None);
            let session = &session;
            let label = label.as_str();
            retry::run(&self.client.policy, progress, move |_| {
                self.upload_chunks(desc, source, progress, scope, operation, session, label, unanswered)
            })
            .await?;
        } else {
            retry::run(&self.client.policy, progress, move |attempt| {
                if attempt > 1 {
                    progress.restart(&desc.digest, 0);
                }
                self.upload_once(desc, source, progress, scope, operation, unanswered)
            })
            .await?;
        }
        progress.finish(&desc.digest);
        Ok(())
    }

    /// Opens an upload session: its location and the registry's smallest chunk.
    async fn start_session(&self, scope: &Scope, operation: &str) -> Result<Option<(Url, u64)>, Failure> {
        let start = Call::new(Method::POST, self.uploads_url(), scope, operation);
        let resp = self.client.send_once(&start).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(None), // the registry already has the blob
            StatusCode::ACCEPTED => {
                let min_chunk = resp
                    .headers()
                    .get("oci-chunk-min-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                Ok(Some((self.session_location(&resp, operation)?, min_chunk)))
            }
            _ => Err(errors::status_failure(&self.registry, operation, resp).await),
        }
    }

    async fn upload_once(
        &self,
        desc: &Descriptor,
        source: &BlobSource<'_>,
        progress: &dyn Progress,
        scope: &Scope,
        operation: &str,
        unanswered: &Patience,
    ) -> Result<(), Failure> {
        let start = Call::new(Method::POST, self.uploads_url(), scope, operation);
        let resp = self.client.send_once(&start).await?;
        let status = resp.status();
        if status == StatusCode::CREATED {
            return Ok(()); // the registry took the (empty) POST as the whole upload: it already has the blob
        }
        if status != StatusCode::ACCEPTED {
            return Err(errors::status_failure(&self.registry, operation, resp).await);
        }
        let url = put_url(self.session_location(&resp, operation)?, &desc.digest);
        let resp =
            self.send_blob(&url, Method::PUT, desc, source, progress, scope, operation, None, unanswered).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(errors::status_failure(&self.registry, operation, resp).await)
    }

    /// Asks the registry to link a blob from another of its repositories.
    pub async fn mount_blob(&self, desc: &Descriptor, from_repository: &str) -> Result<bool> {
        let scope = Scope::push(&self.repository).and_pull(from_repository);
        let operation = format!("mount blob {} from {from_repository} into {}", desc.digest, self.repository);
        let mut url = self.uploads_url();
        url.query_pairs_mut().append_pair("mount", &desc.digest.to_string()).append_pair("from", from_repository);
        let resp = match self.client.send(&Call::new(Method::POST, url, &scope, &operation), self.client.notes()).await
        {
            Ok(r) => r,
            // Not allowed to read the source (or to mount): an upload will tell the real story.
            Err(Error::Unauthorized { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry opened an ordinary upload session instead: close it.
                if let Ok(session) = self.session_location(&resp, &operation) {
                    let _ = self.client.send_once(&Call::new(Method::DELETE, session, &scope, &operation)).await;
                }
                Ok(false)
            }
            s if s.is_client_error() => Ok(false),
            _ => Err(self.client.unexpected(&operation, resp).await),
        }
    }
}

/// The URL that completes an upload session: its location plus `digest=`, keeping the
/// session's own query (distribution's `_state`).
fn put_url(mut session: Url, digest: &crate::digest::Digest) -> Url {
    session.query_pairs_mut().append_pair("digest", &digest.to_string());
    session
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn upload_locations_relative_absolute_and_with_queries() {
        let d = Digest::of(b"x");
        let encoded = format!("digest=sha256%3A{}", d.hex());
        let post = Url::parse("http://127.0.0.1:5000/v2/m/blobs/uploads/").unwrap();
        let relative = post.join("/v2/m/blobs/uploads/abc?_state=s%2Bt").unwrap();
        assert_eq!(
            put_url(relative, &d).as_str(),
            format!("http://127.0.0.1:5000/v2/m/blobs/uploads/abc?_state=s%2Bt&{encoded}")
        );
        let bare = post.join("abc").unwrap();
        assert_eq!(put_url(bare, &d).as_str(), format!("http://127.0.0.1:5000/v2/m/blobs/uploads/abc?{encoded}"));
        let absolute = post.join("https://upload.example/session/1?sig=a").unwrap();
        assert_eq!(put_url(absolute, &d).as_str(), format!("https://upload.example/session/1?sig=a&{encoded}"));
    }
}
