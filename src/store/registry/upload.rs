//! Uploading blobs: `POST /blobs/uploads/` then one streamed `PUT <location>?digest=`
//! (distribution 2.8 has no single-POST upload; go-containerregistry breaks on chunked
//! PATCH + status), and cross-repository mounts.
//!
//! Each attempt starts a new session and reopens the source, so a retry never depends on
//! what a failed session kept. The PUT carries `Content-Type: application/octet-stream`
//! and an exact `Content-Length` (distribution loses the body otherwise).

use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use tokio_util::io::ReaderStream;

use super::Registry;
use super::auth::Scope;
use super::client::{Call, MakeBody, Payload};
use super::errors;
use super::retry::{self, Failure};
use crate::error::{Error, Result};
use crate::oci::{ANNOTATION_TITLE, Descriptor};
use crate::progress::Progress;
use crate::store::BlobSource;

const UPLOAD_CHUNK: usize = 256 * 1024;

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
        retry::run(&self.client.policy, progress, move |attempt| {
            if attempt > 1 {
                progress.restart(&desc.digest, 0);
            }
            self.upload_once(desc, source, progress, scope, operation)
        })
        .await?;
        progress.finish(&desc.digest);
        Ok(())
    }

    async fn upload_once(
        &self,
        desc: &Descriptor,
        source: &BlobSource<'_>,
        progress: &dyn Progress,
        scope: &Scope,
        operation: &str,
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

        // Bytes sent are counted in the body stream and reported from here (the body must be
        // 'static, the progress sink is borrowed). A failing source is kept to be reported as
        // itself rather than as a dropped connection.
        let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let source_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
        let make_body = BlobBody { source, desc, sent: sent_tx, source_error: source_error.clone() };
        let put = Call::new(Method::PUT, url, scope, operation)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, &desc.size.to_string())
            .payload(Payload::Fresh(&make_body))
            .no_timeout();
        let sending = self.client.send_once(&put);
        tokio::pin!(sending);
        let result = loop {
            tokio::select! {
                result = &mut sending => break result,
                Some(n) = sent_rx.recv() => progress.advance(&desc.digest, n),
            }
        };
        while let Ok(n) = sent_rx.try_recv() {
            progress.advance(&desc.digest, n);
        }
        let taken = source_error.lock().expect("source error lock").take();
        if let Some(e) = taken {
            // A typed error (the copy source failed its digest check) will not go away;
            // a read error (a dropped download from another registry) may.
            let typed = e.get_ref().is_some_and(|inner| inner.is::<Error>());
            let error = Error::io(format!("source of {operation}"), e);
            return Err(if typed { Failure::Fatal(error) } else { Failure::Transient { error, retry_after: None } });
        }
        let resp = result?;
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

/// The body of a blob upload: the source reopened, counted as it goes out.
struct BlobBody<'a> {
    source: &'a BlobSource<'a>,
    desc: &'a Descriptor,
    sent: tokio::sync::mpsc::UnboundedSender<u64>,
    /// The source's own error, when reading it failed.
    source_error: Arc<Mutex<Option<std::io::Error>>>,
}

impl MakeBody for BlobBody<'_> {
    fn make(&self) -> BoxFuture<'_, Result<reqwest::Body>> {
        let sent = self.sent.clone();
        let source_error = self.source_error.clone();
        Box::pin(async move {
            let reader = self.source.open(self.desc).await?;
            let stream = ReaderStream::with_capacity(reader, UPLOAD_CHUNK)
                .inspect_ok(move |chunk| {
                    let _ = sent.send(chunk.len() as u64);
                })
                .map_err(move |e| {
                    let copy = std::io::Error::new(e.kind(), e.to_string());
                    *source_error.lock().expect("source error lock") = Some(e);
                    copy
                });
            Ok(reqwest::Body::wrap_stream(stream))
        })
    }
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
