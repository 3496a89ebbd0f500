//! The two readers around a decompressor: one hashes and counts the compressed bytes as
//! they arrive (the layer digest is checked on them), the other counts what comes out
//! of the decompressor and stops a decompression bomb.

use std::io::{self, BufRead, BufReader, Read};

use crate::digest::{Digest, Hasher};
use crate::error::Error;

/// A layer's compressed bytes, whose size and digest are checked when they end. The
/// unpacker reads through one (buffered: the decompressor and the tar reader read from
/// its buffer in place) and calls [`LayerSource::finish`] before it reports success.
pub trait LayerSource: BufRead {
    /// Reads what is left and checks the layer's size and digest; returns the size.
    fn finish(self, expected: &Digest) -> Result<u64, Error>;

    /// Why reading the layer failed, if it did: the error to report rather than the one
    /// the decompressor or the tar reader made of it.
    fn take_failure(&mut self) -> Option<Error> {
        None
    }
}

/// Bytes are hashed as they leave the inner reader, so what the buffer still holds is
/// already counted: dropping it at the end loses nothing.
impl<R: Read> LayerSource for BufReader<HashingReader<R>> {
    fn finish(self, expected: &Digest) -> Result<u64, Error> {
        HashingReader::finish(self.into_inner(), expected)
    }
}

/// Hashes and counts the layer's bytes; refuses more than `size` of them.
pub(super) struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    size: u64,
    what: String,
}

impl<R: Read> HashingReader<R> {
    pub(super) fn new(inner: R, size: u64, what: &str) -> Self {
        HashingReader { inner, hasher: Hasher::new(), size, what: what.to_string() }
    }

    /// Reads the rest of the stream (bytes after the end of the archive still count
    /// toward the digest) and checks size and digest.
    pub(super) fn finish(mut self, expected: &Digest) -> Result<u64, Error> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(Error::io(&self.what, e)),
            }
        }
        if self.hasher.len() != self.size {
            return Err(Error::SizeMismatch { what: self.what, expected: self.size, actual: self.hasher.len() });
        }
        let len = self.hasher.len();
        let actual = self.hasher.finish();
        if &actual != expected {
            return Err(Error::DigestMismatch { what: self.what, expected: expected.clone(), actual });
        }
        Ok(len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if self.hasher.len() > self.size {
            return Err(io::Error::other(Error::SizeMismatch {
                what: self.what.clone(),
                expected: self.size,
                actual: self.hasher.len(),
            }));
        }
        Ok(n)
    }
}

/// Counts the decompressed bytes and fails the read that goes past `cap`.
pub(super) struct CappedReader<R> {
    inner: R,
    read: u64,
    cap: u64,
    what: String,
    why: String,
}

impl<R: Read> CappedReader<R> {
    pub(super) fn new(inner: R, cap: u64, what: &str, why: String) -> Self {
        CappedReader { inner, read: 0, cap, what: what.to_string(), why }
    }

    pub(super) fn into_inner(self) -> R {
        self.inner
    }

    pub(super) fn count(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Never ask for more than one byte past the cap: the error comes before the bytes.
        let room = self.cap.saturating_sub(self.read).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(io::Error::other(Error::InvalidContent {
                what: self.what.clone(),
                reason: format!("unpacks to more than {} bytes ({})", self.cap, self.why),
            }));
        }
        Ok(n)
    }
}
