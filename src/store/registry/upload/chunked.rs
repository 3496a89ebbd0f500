//! Chunked, resumable uploads of large local files.
//!
//! Local files from [`CHUNKED_FROM`] bytes up go in chunks, `PATCH` with `Content-Range`
//! (a sixteenth of the blob, at least 1 MiB and the registry's `OCI-Chunk-Min-Length`),
//! then an empty `PUT ?digest=`. After a cut, the next attempt asks the session how much it
//! holds (`GET <location>` → `Range: 0-N`) and goes on from there; a registry that cannot
//! say (go-containerregistry answers 400) or that dropped the session gets the whole blob
//! again in a new session. Distribution 2.8 drops every session cut inside a `PATCH`: it
//! keeps the bytes that reached it but not in the offset signed into the session's `_state`,
//! and the next request on the session (status or chunk alike) finds the two differ and
//! cancels the upload ("upload resumed at wrong offest"), so smaller chunks would not save
//! anything there. The registry checks the digest of what it assembled at the `PUT`.

use std::sync::Mutex;

use reqwest::header::{LOCATION, RANGE};
use reqwest::{Method, StatusCode, Url};

use super::put_url;
use crate::error::Error;
use crate::oci::Descriptor;
use crate::progress::Progress;
use crate::store::BlobSource;
use crate::store::registry::Registry;
use crate::store::registry::auth::Scope;
use crate::store::registry::client::Call;
use crate::store::registry::errors;
use crate::store::registry::retry::Failure;
use crate::store::registry::timeouts::Patience;

impl Registry {
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
    pub(super) async fn upload_chunks(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
