//! Feeds one archive layer to the unpacking thread: the compressed bytes are read (from the
//! registry, or from the blob file of a layout folder), hashed and counted on one side and
//! handed through a small bounded channel to the thread that inflates and writes, so
//! hashing overlaps with unpacking and memory stays at a few MiB whatever the layer.
//!
//! A registry download cut mid-layer (a dropped connection, a 5xx) is resumed with a
//! Range request from the last byte received, up to [`ATTEMPTS`] times: the unpacker only
//! waits, it never sees the cut. The digest and size go down the channel last; the
//! unpacker checks them ([`LayerSource::finish`]) before it reports success.

use std::io::{BufRead, Read};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::{Receiver, Sender, channel};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::ops::components::Component;
use crate::progress::Progress;
use crate::store::{BlobReader, Target};
use crate::unpack::LayerSource;

/// Chunks in flight between the reading side and the unpacking thread.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Bytes per chunk (a smaller layer gets chunks of its size).
const CHUNK: usize = 1 << 20;
/// Buffers that go round: those in flight, the one being filled and the one being read.
const POOL: usize = CHUNKS_IN_FLIGHT + 2;
/// Tries of a registry download, the first included (as for single-file layers).
const ATTEMPTS: u32 = 4;

/// Reads the layer's blob and feeds it, hashed, to `work` on a blocking thread.
pub(super) async fn stream_into<T: Send + 'static>(
    target: &Target,
    c: &Component,
    progress: &dyn Progress,
    work: impl FnOnce(ChannelReader) -> Result<T> + Send + 'static,
) -> Result<T> {
    let d = &c.descriptor;
    let what = format!("component `{}` from {}", c.path, target.describe());
    let local = target.local_blob(d)?;
    let (tx, rx) = channel::<Msg>(CHUNKS_IN_FLIGHT);
    let (free_tx, free_rx) = channel::<Vec<u8>>(POOL);
    let label = format!("layer {} ({})", d.digest, c.path);
    let reader = ChannelReader {
        rx,
        free: free_tx,
        current: Vec::new(),
        pos: 0,
        end: None,
        failure: None,
        size: d.size,
        what: label,
    };
    let worker = tokio::task::spawn_blocking(move || work(reader));
    progress.start(&d.digest, &c.path, d.size);
    let feed = Feed { tx, pool: Pool { free: free_rx, made: 0, len: d.size.clamp(1, CHUNK as u64) as usize } };
    match local {
        // A local file: read on a blocking thread of its own, beside the unpacking one.
        Some(file) => {
            let (size, what) = (d.size, what.clone());
            let reading = tokio::task::spawn_blocking(move || feed.read_file(file, size, &what));
            let _ = reading.await;
        }
        None => feed.read_registry(target, c, &what, progress).await,
    }
    let result = worker.await.map_err(|e| Error::Internal(format!("{what}: the unpacking thread failed: {e}")))?;
    progress.finish(&d.digest);
    result
}

/// What goes from the reading side to the unpacking thread.
enum Msg {
    Data(Vec<u8>),
    /// The blob ended: the digest and size of everything sent.
    End(Digest, u64),
    Failed(Error),
}

/// Buffers for chunks: made on demand up to [`POOL`], then reused as the unpacking thread
/// hands them back (allocating a MiB per chunk made the allocator return pages to the
/// kernel and fault them in again).
struct Pool {
    free: Receiver<Vec<u8>>,
    made: usize,
    len: usize,
}

impl Pool {
    async fn take(&mut self) -> Option<Vec<u8>> {
        let buf = match self.free.try_recv() {
            Ok(buf) => buf,
            Err(_) if self.made < POOL => {
                self.made += 1;
                Vec::with_capacity(self.len)
            }
            Err(_) => self.free.recv().await?,
        };
        Some(self.sized(buf))
    }

    fn blocking_take(&mut self) -> Option<Vec<u8>> {
        let buf = match self.free.try_recv() {
            Ok(buf) => buf,
            Err(_) if self.made < POOL => {
                self.made += 1;
                Vec::with_capacity(self.len)
            }
            Err(_) => self.free.blocking_recv()?,
        };
        Some(self.sized(buf))
    }

    fn sized(&self, mut buf: Vec<u8>) -> Vec<u8> {
        buf.resize(self.len, 0);
        buf
    }
}

/// The reading side: hashes and counts what it sends.
struct Feed {
    tx: Sender<Msg>,
    pool: Pool,
}

/// What one read into a chunk gave.
enum Filled {
    /// Bytes (maybe none: the end), and the error that stopped the read early, if any.
    Bytes(Vec<u8>, Option<std::io::Error>),
    /// The unpacking thread went away (it refused the archive; its error is reported).
    Gone,
}

impl Feed {
    /// Hashes a chunk; the failure to send when the layer is now over its size.
    fn check(&self, hasher: &mut Hasher, chunk: &[u8], size: u64, what: &str) -> Option<Msg> {
        hasher.update(chunk);
        if hasher.len() > size {
            let e = Error::SizeMismatch { what: what.to_string(), expected: size, actual: hasher.len() };
            return Some(Msg::Failed(e));
        }
        None
    }

    /// From a layout folder's blob file, on a blocking thread.
    fn read_file(mut self, mut file: std::fs::File, size: u64, what: &str) {
        let mut hasher = Hasher::new();
        loop {
            let Some(mut chunk) = self.pool.blocking_take() else { return };
            let mut n = 0;
            let mut failed = None;
            while n < chunk.len() {
                match file.read(&mut chunk[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            chunk.truncate(n);
            if let Some(e) = failed {
                let _ = self.tx.blocking_send(Msg::Failed(Error::io(what, e)));
                return;
            }
            if n == 0 {
                let _ = self.tx.blocking_send(Msg::End(hasher.clone().finish(), hasher.len()));
                return;
            }
            if let Some(failed) = self.check(&mut hasher, &chunk, size, what) {
                let _ = self.tx.blocking_send(failed);
                return;
            }
            if self.tx.blocking_send(Msg::Data(chunk)).is_err() {
                return;
            }
        }
    }

    /// From a registry, resuming a cut download with a Range request.
    async fn read_registry(mut self, target: &Target, c: &Component, what: &str, progress: &dyn Progress) {
        let d = &c.descriptor;
        let mut hasher = Hasher::new();
        let mut attempt = 1;
        let mut reader: Option<BlobReader> = None;
        loop {
            let source = match reader.as_mut() {
                Some(r) => r,
                None => match target.fetch_blob(d, hasher.len()).await {
                    Ok(r) => reader.insert(r),
                    Err(e) if attempt < ATTEMPTS && transient(&e) => {
                        attempt = self.retry(attempt, &e, hasher.len(), progress).await;
                        continue;
                    }
                    Err(e) => {
                        let _ = self.tx.send(Msg::Failed(e)).await;
                        return;
                    }
                },
            };
            let (chunk, cut) = match self.fill(source).await {
                Filled::Bytes(chunk, cut) => (chunk, cut),
                Filled::Gone => return,
            };
            let n = chunk.len();
            if n == 0 && cut.is_none() {
                let _ = self.tx.send(Msg::End(hasher.clone().finish(), hasher.len())).await;
                return;
            }
            if n > 0 {
                if let Some(failed) = self.check(&mut hasher, &chunk, d.size, what) {
                    let _ = self.tx.send(failed).await;
                    return;
                }
                if self.tx.send(Msg::Data(chunk)).await.is_err() {
                    return;
                }
                progress.advance(&d.digest, n as u64);
            }
            if let Some(e) = cut {
                let e = Error::io(what, e);
                if attempt < ATTEMPTS && transient(&e) {
                    reader = None;
                    attempt = self.retry(attempt, &e, hasher.len(), progress).await;
                    continue;
                }
                let _ = self.tx.send(Msg::Failed(e)).await;
                return;
            }
        }
    }

    /// Fills one chunk from `source`; a read error after some bytes still returns them.
    async fn fill(&mut self, source: &mut BlobReader) -> Filled {
        let Some(mut chunk) = self.pool.take().await else { return Filled::Gone };
        let mut n = 0;
        let mut cut = None;
        while n < chunk.len() {
            match source.read(&mut chunk[n..]).await {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => {
                    cut = Some(e);
                    break;
                }
            }
        }
        chunk.truncate(n);
        Filled::Bytes(chunk, cut)
    }

    /// Notes a cut and waits before the next try; returns the next try's number.
    async fn retry(&self, attempt: u32, e: &Error, at: u64, progress: &dyn Progress) -> u32 {
        progress.note(&format!("{e}; resuming at byte {at}"));
        tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
        attempt + 1
    }
}

/// Errors worth another try: the connection, or the registry's side (5xx).
fn transient(e: &Error) -> bool {
    matches!(e, Error::Io { .. } | Error::Unreachable { .. } | Error::Registry { status: 500.., .. })
}

/// A `BufRead` over the chunks sent (and hashed) by the reading side; each chunk is read
/// in place and its buffer handed back once consumed.
pub(super) struct ChannelReader {
    rx: Receiver<Msg>,
    free: Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    end: Option<(Digest, u64)>,
    /// Why the reading side stopped, kept for [`LayerSource::finish`]: the tar reader and
    /// the decompressors may turn the read error they got into one of their own.
    failure: Option<Error>,
    size: u64,
    what: String,
}

impl LayerSource for ChannelReader {
    fn take_failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

    fn finish(mut self, expected: &Digest) -> Result<u64> {
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        loop {
            let n = match self.fill_buf() {
                Ok(rest) => rest.len(),
                Err(e) => return Err(self.failure.take().unwrap_or_else(|| Error::io(&self.what, e))),
            };
            if n == 0 {
                break;
            }
            self.consume(n);
        }
        let Some((actual, len)) = self.end.take() else {
            return Err(Error::Internal(format!("{}: the download stopped before the end", self.what)));
        };
        if len != self.size {
            return Err(Error::SizeMismatch { what: self.what, expected: self.size, actual: len });
        }
        if &actual != expected {
            return Err(Error::DigestMismatch { what: self.what, expected: expected.clone(), actual });
        }
        Ok(len)
    }
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos == self.current.len() {
            if self.end.is_some() {
                return Ok(&[]);
            }
            if let Some(e) = &self.failure {
                return Err(std::io::Error::other(e.to_string()));
            }
            match self.rx.blocking_recv() {
                Some(Msg::Data(chunk)) => {
                    let used = std::mem::replace(&mut self.current, chunk);
                    self.pos = 0;
                    if used.capacity() > 0 {
                        let _ = self.free.try_send(used);
                    }
                }
                Some(Msg::End(digest, len)) => self.end = Some((digest, len)),
                Some(Msg::Failed(e)) => self.failure = Some(e),
                // The sender went away without an end: a cut transfer, never a clean end.
                None => return Err(std::io::Error::other("the download stopped")),
            }
        }
        Ok(&self.current[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.current.len());
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}
