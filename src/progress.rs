//! Progress reporting as a library trait. Only the CLI draws bars (`cli::progress`);
//! the library just reports events, keyed by the blob's digest.

use crate::digest::Digest;

/// What happened to a blob that did not need its bytes moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// The destination already had it.
    Exists,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// A local file already held the right bytes.
    UpToDate,
}

pub trait Progress: Send + Sync {
    /// A transfer (or hash) of `total` bytes called `label` starts.
    fn start(&self, _id: &Digest, _label: &str, _total: u64) {}
    /// `bytes` more bytes moved.
    fn advance(&self, _id: &Digest, _bytes: u64) {}
    /// The transfer restarts at `position` (a retry or a resumed download).
    fn restart(&self, _id: &Digest, _position: u64) {}
    /// The transfer finished.
    fn finish(&self, _id: &Digest) {}
    /// No bytes needed to move.
    fn skip(&self, _id: &Digest, _label: &str, _total: u64, _why: Skipped) {}
    /// A human-readable note (a retry, a fallback); the CLI prints it without garbling bars.
    fn note(&self, _message: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
