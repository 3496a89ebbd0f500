//! `verify-blob`: one Sigstore bundle (as cosign, sigstore-python and model_signing write
//! it) checked for one file, or for a digest, against a public key or keyless identities
//! and a trusted root. No network: the trusted root is given (or built in).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::sign::PublicKey;
use crate::sign::bundle::MAX_BUNDLE_SIZE;
use crate::sign::keyless::{self, Expected, Subject, TrustedRoot};

/// The largest public-key file read.
const MAX_KEY_FILE: u64 = 1 << 20;

/// What `verify-blob` prints: the artifact, the bundle and who signed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyBlobReport {
    /// Always true: a bundle that does not verify is an error.
    pub verified: bool,
    pub artifact: String,
    pub bundle: PathBuf,
    #[serde(flatten)]
    pub details: keyless::SigstoreVerified,
}

/// `sha256:` followed by 64 hex digits, and not a path on disk (the conformance suite's
/// rule): the artifact is then that digest, else the file of that name.
pub fn as_digest(artifact: &str) -> Option<Digest> {
    let hex = artifact.strip_prefix("sha256:")?;
    if hex.len() != 64 || Path::new(artifact).exists() {
        return None;
    }
    Digest::from_hex(hex).ok()
}

/// At most `limit` bytes of a local file; a longer one is refused.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::LocalFile { path: path.to_path_buf(), reason: format!("larger than {limit} bytes") });
    }
    Ok(bytes)
}

/// A public key from a PEM file (at most 1 MiB).
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let pem = String::from_utf8(read_limited(path, MAX_KEY_FILE)?)
        .map_err(|_| Error::LocalFile { path: path.to_path_buf(), reason: "not a PEM file".into() })?;
    Ok(PublicKey::from_pem(&pem)?)
}

/// Checks the bundle file `bundle` for `artifact` (a file, streamed, or `sha256:HEX`; see
/// [`as_digest`]) against `expected` and `root`. A bundle that does not verify is
/// [`Error::Verification`] naming the artifact and the bundle; a file that cannot be read
/// stays a local-file error.
pub fn verify_blob(
    artifact: &str,
    bundle: &Path,
    expected: Expected<'_>,
    root: &TrustedRoot,
) -> Result<VerifyBlobReport> {
    let bundle_bytes = read_limited(bundle, MAX_BUNDLE_SIZE as u64)?;
    let parsed =
        keyless::parse_bundle(&bundle_bytes).map_err(|e| Error::Verification(format!("{}: {e}", bundle.display())))?;
    let result = match as_digest(artifact) {
        Some(digest) => keyless::verify(&parsed, Subject::Digest(digest), expected, root),
        None => {
            let path = Path::new(artifact);
            let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            keyless::verify(&parsed, Subject::Reader(&mut file), expected, root)
        }
    };
    let details = result.map_err(|e| match e {
        // What did not verify says so with the bundle's name; reading failures stay failures.
        crate::sign::Error::Io(m) => Error::LocalFile { path: artifact.into(), reason: m },
        crate::sign::Error::InvalidPolicy(_) | crate::sign::Error::TrustedRootUnreadable(_) => e.into(),
        e => Error::Verification(format!("{artifact} (bundle {}): {e}", bundle.display())),
    })?;
    Ok(VerifyBlobReport { verified: true, artifact: artifact.to_string(), bundle: bundle.to_path_buf(), details })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sha256_names_a_digest_unless_it_is_a_file() {
        let hex = "a".repeat(64);
        assert_eq!(as_digest(&format!("sha256:{hex}")).map(|d| d.hex()), Some(hex.clone()));
        assert!(as_digest(&hex).is_none(), "no prefix: a file name");
        assert!(as_digest(&format!("sha256:{}", &hex[1..])).is_none(), "63 digits");
        assert!(as_digest(&format!("sha256:{}", "g".repeat(64))).is_none(), "not hex");
    }

    #[test]
    fn a_key_file_too_large_or_not_text_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pub");
        std::fs::write(&big, vec![b'a'; (MAX_KEY_FILE + 1) as usize]).unwrap();
        let e = read_public_key(&big).unwrap_err().to_string();
        assert!(e.contains("big.pub") && e.contains("larger than"), "{e}");
        let binary = dir.path().join("binary.pub");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        let e = read_public_key(&binary).unwrap_err().to_string();
        assert!(e.contains("binary.pub") && e.contains("not a PEM file"), "{e}");
    }
}
