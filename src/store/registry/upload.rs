//! Uploading blobs, and cross-repository mounts.
//!
//! Small blobs: `POST /blobs/uploads/` then one streamed `PUT <location>?digest=`
//! (distribution 2.8 has no single-POST upload). Each attempt starts a new session and
//! reopens the source, so a retry never depends on what a failed session kept.
//!
//! Local files from [`CHUNKED_FROM`] bytes up go in chunks, `PATCH` with `Content-Range`
//! (a sixteenth of the blob, at least 1 MiB and the registry's `OCI-Chunk-Min-Length`),
//! then an empty `PUT ?digest=`. After a cut, the next attempt asks the session how much it
//! holds (`GET <location>` → `Range: 0-N`) and goes on from there; a registry that cannot
//! say (go-containerregistry answers 400) or that dropped the session (distribution 2.8
//! cancels an upload cut inside a chunk) gets the whole blob again in a new session. The
//! registry checks the digest of what it assembled at the `PUT`.
//!
//! Bodies carry `Content-Type: application/octet-stream` and an exact `Content-Length`
//! (distribution loses the body otherwise). Sending a body takes as long as it takes, but
//! the registry's silence does not (one helper, [`Registry::send_blob`], sends every body):
//! the answer to a `PUT` or `PATCH` is awaited at most `--timeout` after its last byte, and
//! a registry that stops reading a local body has the idle timeout. A local file that
//! cannot be read fails the push at once (no retry).

use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::Registry;
use super::auth::Scope;
use super::client::{Call, MakeBody, Payload};
use super::errors;
use super::retry::{self, Failure};
use super::timeouts::{Patience, seconds};
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

    /// How much of the blob an upload session holds (`GET <location>` → `204`, `Range: 0-N`),
    /// and where to go on; `None` when the registry cannot say or no longer has the session.
    async fn session_status(&self, url: &Url, scope: &Scope, operation: &str) -> Option<(Url, u64)> {
        let call = Call::new(Method::GET, url.clone(), scope, operation);
        let resp = self.client.send_once(&call).await.ok()?;
        if resp.status() != StatusCode::NO_CONTENT && resp.status() != StatusCode::ACCEPTED {
            return None;
        }
        let held = received(resp.headers())?;
        let next = match resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
            Some(location) => self.client.resolve_location(resp.url(), location, operation).ok()?,
            None => url.clone(),
        };
        Some((next, held))
    }

    /// One attempt at a chunked upload: resumes the session a failed attempt left in
    /// `session` if the registry still holds it, else starts a new one.
    #[allow(clippy::too_many_arguments)]
    async fn upload_chunks(
        &self,
        desc: &Descriptor,
        source: &BlobSource<'_>,
        progress: &dyn Progress,
        scope: &Scope,
        operation: &str,
        session: &Mutex<Option<Url>>,
        label: &str,
        unanswered: &Patience,
    ) -> Result<(), Failure> {
        let previous = session.lock().expect("session lock").take();
        let resumed = match previous {
            Some(url) => match self.session_status(&url, scope, operation).await {
                Some((url, held)) if held <= desc.size => {
                    progress.note(&format!(
                        "resuming the upload of {label} at {held} of {} bytes ({} not sent again)",
                        desc.size, held
                    ));
                    Some((url, held))
                }
                _ => {
                    progress.note(&format!(
                        "the registry kept nothing of the interrupted upload of {label}: sending it again"
                    ));
                    None
                }
            },
            None => None,
        };
        let (mut url, mut offset, min_chunk) = match resumed {
            Some((url, held)) => (url, held, 0),
            None => match self.start_session(scope, operation).await? {
                Some((url, min_chunk)) => (url, 0, min_chunk),
                None => return Ok(()),
            },
        };
        progress.restart(&desc.digest, offset);
        let chunk = chunk_size(desc.size, min_chunk);
        while offset < desc.size {
            let end = desc.size.min(offset.saturating_add(chunk));
            *session.lock().expect("session lock") = Some(url.clone());
            let resp = self
                .send_blob(&url, Method::PATCH, desc, source, progress, scope, operation, Some(offset..end), unanswered)
                .await?;
            let status = resp.status();
            if status == StatusCode::RANGE_NOT_SATISFIABLE {
                // The session holds something else than we think: start afresh.
                *session.lock().expect("session lock") = None;
                let error = errors::status_error(&self.registry, operation, resp).await;
                return Err(Failure::Transient { error, retry_after: None });
            }
            if status != StatusCode::ACCEPTED && status != StatusCode::NO_CONTENT {
                return Err(errors::status_failure(&self.registry, operation, resp).await);
            }
            if let Some(location) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
                url = self.client.resolve_location(resp.url(), location, operation)?;
            }
            offset = match received(resp.headers()) {
                // A registry that took part of the chunk: go on from what it holds.
                Some(held) if held < end && held > offset => held,
                // One that took nothing would have us send the same chunk for ever.
                Some(held) if held <= offset => {
                    *session.lock().expect("session lock") = None;
                    let error = Error::Registry {
                        registry: self.registry.clone(),
                        operation: operation.to_string(),
                        status: status.as_u16(),
                        code: None,
                        message: Some(format!("the registry kept none of bytes {offset}-{} of the upload", end - 1)),
                    };
                    return Err(Failure::Transient { error, retry_after: None });
                }
                _ => end,
            };
        }
        *session.lock().expect("session lock") = Some(url.clone());
        let resp = self
            .send_blob(
                &put_url(url, &desc.digest),
                Method::PUT,
                desc,
                source,
                progress,
                scope,
                operation,
                Some(0..0),
                unanswered,
            )
            .await?;
        if resp.status().is_success() {
            *session.lock().expect("session lock") = None;
            return Ok(());
        }
        Err(errors::status_failure(&self.registry, operation, resp).await)
    }

    /// Sends `range` of the source to `url` (`None`: the whole blob; an empty range: no
    /// body), reporting progress as the bytes go out, and waits for the answer.
    ///
    /// The registry's silence is bounded whenever it is the one that should act: once the
    /// body is all sent, its answer is awaited at most `--timeout`; while a local body goes
    /// out, a registry that stops reading it has the idle timeout (and is retried). A
    /// failing source is reported as itself: a local file that cannot be read is no
    /// registry fault and is not retried; a read from another registry (copy) may be.
    #[allow(clippy::too_many_arguments)]
    async fn send_blob(
        &self,
        url: &Url,
        method: Method,
        desc: &Descriptor,
        source: &BlobSource<'_>,
        progress: &dyn Progress,
        scope: &Scope,
        operation: &str,
        range: Option<std::ops::Range<u64>>,
        unanswered: &Patience,
    ) -> Result<Response, Failure> {
        let len = range.as_ref().map_or(desc.size, |r| r.end - r.start);
        let mut call = Call::new(method, url.clone(), scope, operation)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, &len.to_string())
            .no_timeout();
        if let Some(r) = range.as_ref().filter(|_| len > 0) {
            call = call.header(CONTENT_RANGE, &format!("{}-{}", r.start, r.end - 1));
        }
        // Bytes sent are counted in the body stream and reported from here (the body must be
        // 'static, the progress sink is borrowed). A failing source is kept to be reported as
        // itself rather than as a dropped connection.
        let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let source_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
        let make_body = BlobBody { source, desc, range, sent: sent_tx, source_error: source_error.clone() };
        if len > 0 {
            call = call.payload(Payload::Fresh(&make_body));
        }
        let patience = &self.client.patience;
        // A local source never keeps the registry waiting: silence while its bytes go out is
        // the registry's (the idle timeout, retried). Another registry's bytes have their own.
        let local = !matches!(source, BlobSource::Target(_));
        let Some(wait) = patience.next_wait() else {
            return Err(Failure::Fatal(patience.silence_error(&self.registry, operation, patience.total(), true)));
        };
        let Some(wait) = unanswered.next_wait().map(|w| w.min(wait)) else {
            return Err(Failure::Fatal(self.unanswered_error(operation, unanswered)));
        };
        let sending = self.client.send_once(&call);
        tokio::pin!(sending);
        let mut sent = 0u64;
        let mut last = tokio::time::Instant::now();
        // When the last byte went out: from then on the registry may take the rest of the
        // whole timeout to answer (it may be checking the digest of a large blob), then the
        // upload fails without a retry (one would send everything again).
        let mut done = (len == 0).then_some(last);
        let idle = tokio::time::sleep(wait);
        tokio::pin!(idle);
        let result = loop {
            tokio::select! {
                result = &mut sending => break result,
                Some(n) = sent_rx.recv() => {
                    progress.advance(&desc.digest, n);
                    sent += n;
                    last = tokio::time::Instant::now();
                    if sent >= len && done.is_none() {
                        done = Some(last);
                    }
                }
                () = &mut idle => {
                    let now = tokio::time::Instant::now();
                    if let Some(done) = done {
                        let answer_wait = unanswered.left().unwrap_or_default().min(patience.left().unwrap_or_default());
                        if now.saturating_duration_since(done) >= answer_wait {
                            patience.stalled(done);
                            unanswered.stalled(done);
                            return Err(Failure::Fatal(self.unanswered_error(operation, unanswered)));
                        }
                        idle.as_mut().reset(done + answer_wait);
                    } else if local && now.saturating_duration_since(last) >= wait {
                        // The registry stopped reading the body. Both clocks count this
                        // silence: the registry's (any answer ends it) and this upload's
                        // (only the answer to a body ends it, so a registry that answers
                        // every POST and reads no body is given up on too).
                        let exhausted = patience.stalled(last);
                        return Err(if unanswered.stalled(last) {
                            Failure::Fatal(self.unanswered_error(operation, unanswered))
                        } else {
                            let error = patience.silence_error(&self.registry, operation, wait, exhausted);
                            if exhausted { Failure::Fatal(error) } else { Failure::Transient { error, retry_after: None } }
                        });
                    } else {
                        idle.as_mut().reset((if local { last } else { now }) + wait);
                    }
                }
            }
        };
        while let Ok(n) = sent_rx.try_recv() {
            progress.advance(&desc.digest, n);
        }
        if result.is_ok() {
            unanswered.heard();
        }
        let taken = source_error.lock().expect("source error lock").take();
        if let Some(e) = taken {
            return Err(match source {
                BlobSource::File(path) => Failure::Fatal(Error::io(*path, e)),
                BlobSource::Bytes(_) => Failure::Fatal(Error::io(format!("source of {operation}"), e)),
                BlobSource::Target(_) => {
                    // A typed error (the copy source failed its digest check) will not go
                    // away; a read error (a dropped download from another registry) may.
                    let typed = e.get_ref().is_some_and(|inner| inner.is::<Error>());
                    let error = Error::io(format!("source of {operation}"), e);
                    if typed { Failure::Fatal(error) } else { Failure::Transient { error, retry_after: None } }
                }
            });
        }
        result
    }

    /// The error for an upload whose bodies have gone unanswered for the whole timeout.
    fn unanswered_error(&self, operation: &str, unanswered: &Patience) -> Error {
        Error::Unreachable {
            registry: self.registry.clone(),
            reason: format!(
                "{operation}: the registry has not answered the upload for {} (wait longer with --timeout DURATION)",
                seconds(unanswered.total())
            ),
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

/// Blobs of local files this large go up in chunks, and resume after a cut.
pub(crate) const CHUNKED_FROM: u64 = 8 << 20;
/// The bounds of a chunk (before the registry's minimum).
const MIN_CHUNK: u64 = 1 << 20;
const MAX_CHUNK: u64 = 256 << 20;

/// The chunk size for a blob of `size` bytes: a sixteenth of it, in whole MiB within
/// [`MIN_CHUNK`]..[`MAX_CHUNK`], at least the registry's `min_chunk`, at most the blob.
fn chunk_size(size: u64, min_chunk: u64) -> u64 {
    let sixteenth = size.div_ceil(16).div_ceil(MIN_CHUNK) * MIN_CHUNK;
    sixteenth.clamp(MIN_CHUNK, MAX_CHUNK).max(min_chunk).min(size).max(1)
}

/// How many bytes an upload session holds, from its `Range: 0-N` (`0-0` counts as none,
/// as distribution writes it for an empty session).
fn received(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(RANGE)?.to_str().ok()?.trim();
    let value = value.strip_prefix("bytes=").unwrap_or(value);
    let (first, last) = value.split_once('-')?;
    if first.trim() != "0" {
        return None;
    }
    let last: u64 = last.trim().parse().ok()?;
    Some(if last == 0 { 0 } else { last.checked_add(1)? })
}

/// The body of a blob upload: the source reopened (at `range`, for a chunk), counted as it
/// goes out.
struct BlobBody<'a> {
    source: &'a BlobSource<'a>,
    desc: &'a Descriptor,
    range: Option<std::ops::Range<u64>>,
    sent: tokio::sync::mpsc::UnboundedSender<u64>,
    /// The source's own error, when reading it failed.
    source_error: Arc<Mutex<Option<std::io::Error>>>,
}

impl MakeBody for BlobBody<'_> {
    fn make(&self) -> BoxFuture<'_, Result<reqwest::Body>> {
        let sent = self.sent.clone();
        let source_error = self.source_error.clone();
        Box::pin(async move {
            let reader = match (&self.range, self.source) {
                (Some(range), BlobSource::File(path)) => {
                    let mut file = tokio::fs::File::open(path).await.map_err(|e| Error::io(*path, e))?;
                    file.seek(std::io::SeekFrom::Start(range.start)).await.map_err(|e| Error::io(*path, e))?;
                    Box::pin(file.take(range.end - range.start)) as crate::store::BlobReader
                }
                _ => self.source.open(self.desc).await?,
            };
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
    fn chunks_are_a_sixteenth_in_mib_within_bounds_and_the_registry_minimum() {
        assert_eq!(chunk_size(16 << 20, 0), 1 << 20);
        assert_eq!(chunk_size(CHUNKED_FROM, 0), MIN_CHUNK);
        assert_eq!(chunk_size(1 << 30, 8192), 64 << 20);
        assert_eq!(chunk_size((1 << 30) + 1, 0), 65 << 20);
        assert_eq!(chunk_size(50 << 30, 0), MAX_CHUNK);
        assert_eq!(chunk_size(16 << 20, 5 << 20), 5 << 20);
        assert_eq!(chunk_size(16 << 20, u64::MAX), 16 << 20);
    }

    #[test]
    fn session_ranges() {
        let range = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(RANGE, v.parse().unwrap());
            received(&h)
        };
        assert_eq!(range("0-0"), Some(0));
        assert_eq!(range("0-499999"), Some(500_000));
        assert_eq!(range("bytes=0-9"), Some(10));
        assert_eq!(range("5-9"), None);
        assert_eq!(range("0-x"), None);
        assert_eq!(range(&format!("0-{}", u64::MAX)), None);
        assert_eq!(received(&reqwest::header::HeaderMap::new()), None);
    }

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
