//! Sigstore trusted material (`trusted_root.json`): Fulcio CAs, Rekor keys, CT log keys and
//! timestamp authorities, each with the window in which it may be used.
//!
//! The public-good instance's root is built into the binary so that keyless verification
//! works offline. `public_good_trusted_root.json` beside this file is a byte-for-byte copy of
//! `sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/trusted_root.json` from the PyPI
//! wheel `sigstore-4.5.1-py3-none-any.whl` (sigstore-python, Apache-2.0), itself the target
//! `trusted_root.json` of Sigstore's TUF repository; SHA-256 [`PUBLIC_GOOD_SHA256`]. A private
//! Sigstore (or a newer public-good root) is given with `--trusted-root FILE`, and
//! `modelsign trust update` stores a newer public-good one that is then used instead.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use sigstore_verify::Verifier;
use sigstore_verify::trust_root::TrustedRoot as RootJson;

use crate::sign::{Error, Result};

/// The built-in public-good `trusted_root.json`.
pub const PUBLIC_GOOD_JSON: &str = include_str!("public_good_trusted_root.json");

/// SHA-256 of [`PUBLIC_GOOD_JSON`] as shipped in the sigstore-python 4.5.1 wheel.
pub const PUBLIC_GOOD_SHA256: &str = "6494e21ea73fa7ee769f85f57d5a3e6a08725eae1e38c755fc3517c9e6bc0b66";

/// Largest `trusted_root.json` read from a file.
const MAX_TRUSTED_ROOT_SIZE: u64 = 16 << 20;

/// A parsed and checked trusted root, ready to verify with. Cheap to clone.
#[derive(Clone)]
pub struct TrustedRoot {
    verifier: Arc<Verifier>,
    source: Arc<str>,
    ct_logs: usize,
    ignore_sct: bool,
    /// Why the root `modelsign trust update` stored was not used (this is the built-in one).
    stored_unusable: Option<Arc<str>>,
}

impl std::fmt::Debug for TrustedRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedRoot").field("source", &self.source).finish_non_exhaustive()
    }
}

impl TrustedRoot {
    /// The public-good Sigstore instance's root: the one `modelsign trust update` stored
    /// (see [`crate::tuf`]) when there is one and it checks out, else the built-in one. If a
    /// stored one is unusable, [`TrustedRoot::stored_unusable`] of the built-in one says why.
    pub fn public_good() -> Result<Self> {
        static ROOT: OnceLock<std::result::Result<TrustedRoot, String>> = OnceLock::new();
        ROOT.get_or_init(|| {
            let why = match crate::tuf::load_default() {
                None => return TrustedRoot::built_in().map_err(|e| e.to_string()),
                Some(Ok(stored)) => {
                    let source = format!(
                        "the Sigstore trusted root from TUF ({}, targets v{})",
                        stored.remote, stored.targets_version
                    );
                    match TrustedRoot::from_json(&stored.trusted_root, &source) {
                        Ok(root) => return Ok(root),
                        Err(e) => e.to_string(),
                    }
                }
                Some(Err((dir, why))) => format!("{}: {why}", dir.display()),
            };
            let mut root = TrustedRoot::built_in().map_err(|e| e.to_string())?;
            root.stored_unusable = Some(why.into());
            Ok(root)
        })
        .clone()
        .map_err(Error::InvalidTrustedRoot)
    }

    /// The public-good Sigstore instance's root, built into the binary.
    pub fn built_in() -> Result<Self> {
        static ROOT: OnceLock<std::result::Result<TrustedRoot, String>> = OnceLock::new();
        ROOT.get_or_init(|| {
            TrustedRoot::from_json(PUBLIC_GOOD_JSON, "the built-in public-good Sigstore trusted root")
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Error::InvalidTrustedRoot)
    }

    /// Parses a `trusted_root.json`; `source` names it in messages. Refuses material
    /// sigstore-verify would not use: bad keys or certificates, inverted validity windows,
    /// duplicate log IDs.
    pub fn from_json(json: &str, source: &str) -> Result<Self> {
        let root = RootJson::from_json(json).map_err(|e| Error::InvalidTrustedRoot(format!("{source}: {e}")))?;
        let verifier = Verifier::new(&root).map_err(|e| Error::InvalidTrustedRoot(format!("{source}: {e}")))?;
        Ok(TrustedRoot {
            verifier: Arc::new(verifier),
            source: source.into(),
            ct_logs: root.ctlogs.len(),
            ignore_sct: false,
            stored_unusable: None,
        })
    }

    /// Reads and parses a `trusted_root.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let source = path.display().to_string();
        let read = || -> std::io::Result<String> {
            use std::io::Read as _;
            let mut text = String::new();
            std::fs::File::open(path)?.take(MAX_TRUSTED_ROOT_SIZE + 1).read_to_string(&mut text)?;
            Ok(text)
        };
        let text = read().map_err(|e| Error::TrustedRootUnreadable(format!("{source}: {e}")))?;
        if text.len() as u64 > MAX_TRUSTED_ROOT_SIZE {
            return Err(Error::InvalidTrustedRoot(format!("{source}: larger than {MAX_TRUSTED_ROOT_SIZE} bytes")));
        }
        TrustedRoot::from_json(&text, &source)
    }

    pub(crate) fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Accept Fulcio certificates without a verified SCT (cosign's `--insecure-ignore-sct`):
    /// for a private Sigstore that runs no certificate-transparency log. Everything else
    /// (chain, log entry, timestamps, identity) is still checked.
    pub fn ignore_sct(mut self) -> Self {
        self.ignore_sct = true;
        self
    }

    /// The root a keyless signer checks its own signatures against: when the root lists no
    /// certificate-transparency log, its Fulcio runs none, so the certificates carry no SCT
    /// and nothing could verify one; SCTs are then not required ([`Self::ignore_sct`]) and
    /// the second value is a note for the user saying that verifiers need to ignore them too.
    pub fn for_signing(self) -> (Self, Option<String>) {
        if self.ct_logs > 0 {
            return (self, None);
        }
        let note = format!(
            "{} lists no certificate-transparency log: the signatures carry no SCT, and verifiers need --insecure-ignore-sct",
            self.source
        );
        (self.ignore_sct(), Some(note))
    }

    /// Whether SCTs are required (the default).
    pub fn requires_sct(&self) -> bool {
        !self.ignore_sct
    }

    /// How many certificate-transparency logs the root lists (none: no SCT can verify).
    pub fn ct_log_count(&self) -> usize {
        self.ct_logs
    }

    /// Where the root came from (a path, or the built-in one).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Why the trusted root `modelsign trust update` stored was not used and this built-in
    /// one is (it did not check out), for a note to the user.
    pub fn stored_unusable(&self) -> Option<&str> {
        self.stored_unusable.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn built_in_root_is_the_one_noted_and_loads() {
        assert_eq!(hex::encode(sha2::Sha256::digest(PUBLIC_GOOD_JSON.as_bytes())), PUBLIC_GOOD_SHA256);
        TrustedRoot::built_in().unwrap();
    }

    #[test]
    fn bad_roots_are_refused_with_their_name() {
        for bad in ["", "{}", "not json", r#"{"mediaType":"x","tlogs":[{"baseUrl":1}]}"#] {
            let err = TrustedRoot::from_json(bad, "bad.json").unwrap_err();
            assert!(matches!(&err, Error::InvalidTrustedRoot(m) if m.starts_with("bad.json: ")), "{bad}: {err}");
        }
        let err = TrustedRoot::from_file(Path::new("/nonexistent/trusted_root.json")).unwrap_err();
        assert!(matches!(err, Error::TrustedRootUnreadable(m) if m.contains("/nonexistent/trusted_root.json")));
    }
}
