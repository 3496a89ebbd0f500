//! SHA-256 digests, the only identity modelsign trusts.
//!
//! Every byte read from a target passes through a [`VerifyingReader`] (or is hashed
//! into a [`Digest`] before use) so that nothing unchecked is ever acted upon.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use crate::error::Error;

/// A validated `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    pub fn from_raw(raw: [u8; 32]) -> Self {
        Digest(raw)
    }

    /// Parses a bare 64-character lowercase hex string (the OMS resource form).
    pub fn from_hex(hex_str: &str) -> Result<Self, Error> {
        if hex_str.len() != 64 || hex_str.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::InvalidDigest(hex_str.to_string()));
        }
        let mut raw = [0u8; 32];
        hex::decode_to_slice(hex_str, &mut raw).map_err(|_| Error::InvalidDigest(hex_str.to_string()))?;
        Ok(Digest(raw))
    }

    pub fn raw(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The `sha256-<hex>` tag that names the referrers fallback index of this digest.
    pub fn fallback_tag(&self) -> String {
        format!("sha256-{}", self.hex())
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.strip_prefix("sha256:") {
            Some(hex_str) => Digest::from_hex(hex_str).map_err(|_| Error::InvalidDigest(s.to_string())),
            None => Err(Error::InvalidDigest(s.to_string())),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental SHA-256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> Digest {
        Digest(self.inner.finalize().into())
    }
}

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

/// Recovers a typed error that travelled through `std::io::Error`.
pub fn unwrap_io_error(err: std::io::Error) -> Option<Error> {
    if err.get_ref().is_some_and(|e| e.is::<Error>()) {
        err.into_inner().and_then(|e| e.downcast::<Error>().ok()).map(|e| *e)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn parses_and_prints() {
        let d = Digest::of(b"");
        assert_eq!(d.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("sha256:E3B0".parse::<Digest>().is_err());
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "G".repeat(64)).parse::<Digest>().is_err());
    }

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
