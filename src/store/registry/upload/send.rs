//! Sending one upload body, with the registry's silence bounded.
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
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, Response, Url};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::error::{Error, Result};
use crate::oci::Descriptor;
use crate::progress::Progress;
use crate::store::BlobSource;
use crate::store::registry::Registry;
use crate::store::registry::auth::Scope;
use crate::store::registry::client::{Call, MakeBody, Payload};
use crate::store::registry::retry::Failure;
use crate::store::registry::timeouts::{Patience, seconds};

const UPLOAD_CHUNK: usize = 256 * 1024;

impl Registry {
    /// Sends `range` of the source to `url` (`None`: the whole blob; an empty range: no
    /// body), reporting progress as the bytes go out, and waits for the answer.
    ///
    /// The registry's silence is bounded whenever it is the one that should act: once the
    /// body is all sent, its answer is awaited at most `--timeout`; while a local body goes
    /// out, a registry that stops reading it has the idle timeout (and is retried). A
    /// failing source is reported as itself: a local file that cannot be read is no
    /// registry fault and is not retried; a read from another registry (copy) may be.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send_blob(
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
