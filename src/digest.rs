//! SHA-256 digests, the only identity modelsign trusts.
//!
//! Every byte read from a target passes through a
//! [`VerifyingReader`](crate::verifying_reader::VerifyingReader) (or is hashed into a
//! [`Digest`] before use) so that nothing unchecked is ever acted upon. This module is a
//! leaf: it depends on no other module of the crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A string that is not a `sha256:<64 lowercase hex>` digest (or, for
/// [`Digest::from_hex`], not 64 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest `{0}` (expected sha256:<64 lowercase hex>)")]
pub struct InvalidDigest(pub String);

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
    pub fn from_hex(hex_str: &str) -> Result<Self, InvalidDigest> {
        if hex_str.len() != 64 || hex_str.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(InvalidDigest(hex_str.to_string()));
        }
        let mut raw = [0u8; 32];
        hex::decode_to_slice(hex_str, &mut raw).map_err(|_| InvalidDigest(hex_str.to_string()))?;
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
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, InvalidDigest> {
        match s.strip_prefix("sha256:") {
            Some(hex_str) => Digest::from_hex(hex_str).map_err(|_| InvalidDigest(s.to_string())),
            None => Err(InvalidDigest(s.to_string())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let d = Digest::of(b"");
        assert_eq!(d.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("sha256:E3B0".parse::<Digest>().is_err());
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "G".repeat(64)).parse::<Digest>().is_err());
    }
}
