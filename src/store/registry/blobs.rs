//! Reading blobs: existence (HEAD) and streaming download, resumable at an offset.
//!
//! A resumed download asks for a closed range (`bytes=N-(size-1)`: go-containerregistry
//! answers 416 to open ones); a server that ignores ranges and answers 200 gets the first
//! `N` bytes skipped here. Redirects (to blob storage) are followed by the client, without
//! credentials when the origin changes. A body that sends nothing for the idle timeout
//! fails (see `timeouts`); the timer is armed once per silence, not once per chunk.
//!
//! Invariant: blob bodies are streamed, never buffered; the bytes are not checked here.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, Response, StatusCode};
use std::pin::Pin;
use tokio::time::{Instant, Sleep};
use tokio_util::io::StreamReader;

use super::Registry;
use super::auth::Scope;
use super::client::Call;
use super::errors;
use super::timeouts::{Patience, seconds};
use crate::error::{Error, Result};
use crate::oci::Descriptor;
use crate::store::BlobReader;

impl Registry {
    fn blob_call<'a>(&self, method: Method, desc: &Descriptor, scope: &'a Scope, operation: &'a str) -> Call<'a> {
        Call::new(method, self.client.url(&format!("/v2/{}/blobs/{}", self.repository, desc.digest)), scope, operation)
    }

    /// Whether the repository holds the blob (HEAD).
    pub async fn blob_exists(&self, desc: &Descriptor) -> Result<bool> {
        let scope = Scope::pull(&self.repository);
        let operation = format!("check blob {}@{}", self.repository, desc.digest);
        let resp =
            self.client.send(&self.blob_call(Method::HEAD, desc, &scope, &operation), self.client.notes()).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.client.unexpected(&operation, resp).await),
        }
    }

    /// Streams a blob from `offset` on (a Range request past 0); the bytes are not checked.
    pub async fn fetch_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobReader> {
        if offset > desc.size {
            return Err(Error::ResumeOutOfRange { digest: desc.digest.clone(), offset, size: desc.size });
        }
        if offset == desc.size && offset > 0 {
            return Ok(Box::pin(io::Cursor::new(Vec::new())));
        }
        let scope = Scope::pull(&self.repository);
        let operation = format!("fetch blob {}@{}", self.repository, desc.digest);
        let mut call = self.blob_call(Method::GET, desc, &scope, &operation).no_timeout();
        if offset > 0 {
            call = call.header(RANGE, &format!("bytes={offset}-{}", desc.size - 1));
        }
        let mut resp = self.client.send(&call, self.client.notes()).await?;
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE && offset > 0 {
            // A server that mishandles ranges: take it all and skip.
            let whole = self.blob_call(Method::GET, desc, &scope, &operation).no_timeout();
            resp = self.client.send(&whole, self.client.notes()).await?;
        }
        let skip = match resp.status() {
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let start = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                match start {
                    Some(start) if start <= offset => offset - start,
                    None => 0,
                    Some(start) => {
                        return Err(Error::Registry {
                            registry: self.registry.clone(),
                            operation,
                            status: 206,
                            code: None,
                            message: Some(format!("asked for bytes from {offset}, got bytes from {start}")),
                        });
                    }
                }
            }
            s if s.is_success() => offset,
            StatusCode::NOT_FOUND => {
                return Err(Error::NotFound { target: self.describe(), what: format!("blob {}", desc.digest) });
            }
            _ => return Err(self.client.unexpected(&operation, resp).await),
        };
        Ok(body_reader(resp, skip, format!("registry {}: {operation}", self.registry), self.client.patience.clone()))
    }
}

/// The body of `resp` as a reader, without its first `skip` bytes, failing when the
/// connection drops or sends nothing for the idle timeout.
fn body_reader(resp: Response, skip: u64, what: String, patience: Arc<Patience>) -> BlobReader {
    struct State {
        body: Option<futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>>,
        skip: u64,
        what: String,
        patience: Arc<Patience>,
        /// When the last chunk arrived (or the body was opened).
        last: Instant,
        /// Fires at the earliest moment the body can have been silent for the idle timeout;
        /// when it fires after chunks arrived, it is moved to `last + idle`.
        alarm: Pin<Box<Sleep>>,
    }
    let idle = patience.idle();
    let now = Instant::now();
    let state = State {
        body: Some(resp.bytes_stream().boxed()),
        skip,
        what,
        patience,
        last: now,
        alarm: Box::pin(tokio::time::sleep_until(now + idle)),
    };
    let stream = futures_util::stream::unfold(state, move |mut st| async move {
        loop {
            let body = st.body.as_mut()?;
            let next = tokio::select! {
                biased;
                next = body.next() => next,
                () = &mut st.alarm => {
                    let deadline = st.last + idle;
                    if Instant::now() < deadline {
                        st.alarm.as_mut().reset(deadline);
                        continue;
                    }
                    st.body = None;
                    let exhausted = st.patience.stalled(st.last);
                    let msg = format!("{}: no data for {}{}", st.what, seconds(idle), if exhausted {
                        format!("; the registry has sent nothing for {} (wait longer with --timeout DURATION)", seconds(st.patience.total()))
                    } else {
                        String::new()
                    });
                    return Some((Err(io::Error::new(io::ErrorKind::TimedOut, msg)), st));
                }
            };
            match next {
                None => return None,
                Some(Err(e)) => {
                    st.body = None;
                    let msg = format!("{}: interrupted: {}", st.what, errors::root_cause(&e));
                    return Some((Err(io::Error::new(io::ErrorKind::ConnectionReset, msg)), st));
                }
                Some(Ok(mut chunk)) => {
                    st.last = Instant::now();
                    st.patience.heard();
                    if st.skip > 0 {
                        let n = st.skip.min(chunk.len() as u64) as usize;
                        chunk = chunk.slice(n..);
                        st.skip -= n as u64;
                    }
                    if !chunk.is_empty() {
                        return Some((Ok(chunk), st));
                    }
                }
            }
        }
    });
    Box::pin(StreamReader::new(stream))
}
