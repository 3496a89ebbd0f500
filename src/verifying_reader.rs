//! [`VerifyingReader`]: a blob stream that fails unless it yields exactly the expected
//! size and digest. Every byte read from a target passes through one (or is hashed into a
//! [`Digest`] before use), so that nothing unchecked is ever acted upon.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::digest::{Digest, Hasher};
use crate::error::Error;

/// Wraps a blob stream and fails it unless it yields exactly `size` bytes hashing to `digest`.
///
/// The error surfaces on the read that would otherwise end the stream (or on the first byte
/// past `size`), so a consumer that writes to a temporary file and only renames it after a
/// clean EOF never publishes unchecked bytes.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Hasher,
    expected: Digest,
    size: u64,
    what: String,
}

impl<R> VerifyingReader<R> {
    /// `what` names the blob in errors (a component path or a digest). `prefix` holds the
    /// state of bytes already received earlier (a resumed download).
    pub fn new(inner: R, expected: Digest, size: u64, what: impl Into<String>, prefix: Hasher) -> Self {
        VerifyingReader { inner, hasher: prefix, expected, size, what: what.into() }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if new.is_empty() {
                    if this.hasher.len() != this.size {
                        return Poll::Ready(Err(std::io::Error::other(Error::SizeMismatch {
                            what: this.what.clone(),
                            expected: this.size,
                            actual: this.hasher.len(),
                        })));
                    }
                    let actual = this.hasher.clone().finish();
                    if actual != this.expected {
                        return Poll::Ready(Err(std::io::Error::other(Error::DigestMismatch {
                            what: this.what.clone(),
                            expected: this.expected.clone(),
                            actual,
                        })));
                    }
                    return Poll::Ready(Ok(()));
                }
                this.hasher.update(new);
                if this.hasher.len() > this.size {
                    buf.set_filled(before);
                    return Poll::Ready(Err(std::io::Error::other(Error::SizeMismatch {
                        what: this.what.clone(),
                        expected: this.size,
                        actual: this.hasher.len(),
                    })));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::unwrap_io_error;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn verifying_reader_rejects_wrong_bytes() {
        let good = b"hello".to_vec();
        let d = Digest::of(&good);
        let mut out = Vec::new();
        VerifyingReader::new(&good[..], d.clone(), 5, "x", Hasher::new()).read_to_end(&mut out).await.unwrap();
        assert_eq!(out, good);
        let bad = b"hellp".to_vec();
        let err = VerifyingReader::new(&bad[..], d.clone(), 5, "x", Hasher::new())
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(unwrap_io_error(err), Some(Error::DigestMismatch { .. })));
        let long = b"hello!".to_vec();
        let err = VerifyingReader::new(&long[..], d.clone(), 5, "x", Hasher::new())
            .read_to_end(&mut Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(unwrap_io_error(err), Some(Error::SizeMismatch { .. })));
        let short = b"hell".to_vec();
        let err =
            VerifyingReader::new(&short[..], d, 5, "x", Hasher::new()).read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(matches!(unwrap_io_error(err), Some(Error::SizeMismatch { .. })));
    }
}
