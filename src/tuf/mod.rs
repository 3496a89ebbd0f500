//! A TUF client (The Update Framework, specification 1.0) for Sigstore's trusted material:
//! `modelsign trust update` refreshes `trusted_root.json` and `signing_config.v0.2.json`
//! from a TUF repository (by default the public-good one), and keyless verification and
//! signing then use what it stored instead of the copies built into the binary.
//!
//! [`update`] follows the specification's client workflow: the root is walked version by
//! version (each new root signed by a threshold of the old root's keys and of its own, at
//! most [`MAX_ROOT_ROTATIONS`] steps), then timestamp → snapshot → targets, each signed by
//! its role's keys in the newest root, not expired, no older than the stored one (rollback),
//! and matching the version, length and hashes its parent states; every download is capped.
//! [`load`] reads what an earlier update stored, checking the targets metadata's signatures
//! and each target's length and hashes again (expiry is not checked there: verifying offline
//! with the last good material is the point). Delegated targets roles are not followed:
//! Sigstore's two files are top-level targets.
//!
//! The first trusted root is Sigstore's public-good `root.json` built in
//! (`public_good_root.json`: a byte-for-byte copy of
//! `sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/root.json` from the PyPI wheel
//! `sigstore-4.5.1-py3-none-any.whl`, sigstore-python, Apache-2.0; SHA-256
//! [`PUBLIC_GOOD_ROOT_SHA256`]), or `--root FILE` for another repository.

mod canonical;
mod fetch;
mod metadata;
mod store;
mod update;

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::Digest as _;

pub use store::Store;
pub use update::{Options, Report, StoredTarget, update};

/// The public-good Sigstore TUF repository.
pub const PUBLIC_GOOD_URL: &str = "https://tuf-repo-cdn.sigstore.dev";

/// Sigstore's public-good TUF `root.json` (version 15) built in.
pub const PUBLIC_GOOD_ROOT: &[u8] = include_bytes!("public_good_root.json");

/// SHA-256 of [`PUBLIC_GOOD_ROOT`] as shipped in the sigstore-python 4.5.1 wheel.
pub const PUBLIC_GOOD_ROOT_SHA256: &str = "73747011d0857ada15479a16c4cae0f3ed03aac698b523b97e1de314ac9d9ca8";

/// The most root versions one update walks through.
pub const MAX_ROOT_ROTATIONS: u64 = 32;

/// The target holding Sigstore's trusted root.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// The target holding Sigstore's signing config.
pub const SIGNING_CONFIG_TARGET: &str = "signing_config.v0.2.json";

/// Environment variable naming the TUF folder (overrides the XDG location).
pub const DIR_ENV: &str = "MODELSIGN_TUF_DIR";

/// `MODELSIGN_TUF_DIR`, else `$XDG_DATA_HOME/modelsign/tuf` (absolute only, as the XDG
/// specification says), else `$HOME/.local/share/modelsign/tuf`. Data, not cache: deleting
/// it would lose the rollback protection the stored versions give.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Some(xdg.join("modelsign").join("tuf"));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute())?;
    Some(home.join(".local").join("share").join("modelsign").join("tuf"))
}

/// Why an update stopped.
#[derive(Debug)]
pub enum Fail {
    /// Metadata or a target was refused: bad signature, rollback, expiry, hash, size.
    Refused(String),
    /// The repository could not be reached, or the folder not written.
    Unavailable(String),
}

/// What an earlier update stored, checked again.
#[derive(Debug, Clone)]
pub struct Refreshed {
    /// The repository it came from.
    pub remote: String,
    /// The targets metadata version that vouches for the files.
    pub targets_version: u64,
    pub trusted_root: String,
    pub signing_config: Option<String>,
}

/// Reads the trusted material stored in `dir` by [`update`]: `Ok(None)` when nothing is
/// stored, an error saying why when what is stored does not check out.
pub fn load(dir: &std::path::Path) -> Result<Option<Refreshed>, String> {
    let shown = dir.display();
    let Some(store) = Store::open(dir, false).map_err(|e| e.to_string())? else { return Ok(None) };
    let read = |role: &str| store.metadata(role).map_err(|e| e.to_string());
    let (Some(root), Some(targets)) = (read("root")?, read("targets")?) else { return Ok(None) };
    let remote = store.remote().map_err(|e| e.to_string())?.unwrap_or_default();
    let root_env = metadata::Envelope::parse(&root, "root.json")?;
    let root: metadata::Root = root_env.signed("root", "root.json")?;
    root_env.verify(&root, "root", "root.json")?;
    let env = metadata::Envelope::parse(&targets, "targets.json")?;
    env.verify(&root, "targets", "targets.json")?;
    let targets: metadata::Targets = env.signed("targets", "targets.json")?;
    let file = |name: &str| -> Result<Option<String>, String> {
        let Some(info) = targets.targets.get(name) else { return Ok(None) };
        let stored = stored_name(name, info)?;
        let bytes = store
            .target(&stored)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{shown}: targets/{stored} is missing"))?;
        check_file(&bytes, Some(info.length), Some(&info.hashes), name)?;
        String::from_utf8(bytes).map(Some).map_err(|_| format!("{name} is not UTF-8"))
    };
    let trusted_root =
        file(TRUSTED_ROOT_TARGET)?.ok_or_else(|| format!("{shown}: the targets list no {TRUSTED_ROOT_TARGET}"))?;
    Ok(Some(Refreshed {
        remote,
        targets_version: targets.common.version,
        trusted_root,
        signing_config: file(SIGNING_CONFIG_TARGET)?,
    }))
}

/// [`load`] from [`default_dir`], remembered for the life of the process.
pub fn load_default() -> Option<&'static Result<Refreshed, (PathBuf, String)>> {
    static LOADED: std::sync::OnceLock<Option<Result<Refreshed, (PathBuf, String)>>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let dir = default_dir()?;
            match load(&dir) {
                Ok(found) => found.map(Ok),
                Err(why) => Some(Err((dir, why))),
            }
        })
        .as_ref()
}

/// How a target is stored (and, in a consistent-snapshot repository, fetched):
/// `<sha256 hex>.<name>`. The name must be a plain file name.
fn stored_name(name: &str, info: &metadata::TargetFile) -> Result<String, String> {
    let sha256 = info.hashes.get("sha256").ok_or_else(|| format!("target {name} has no sha256 hash"))?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("target {name} has a malformed sha256 hash"));
    }
    Ok(format!("{sha256}.{name}"))
}

/// Checks `bytes` against the length and hashes signed metadata states for them. Of the
/// hashes, SHA-256 and SHA-512 are checked; a list naming neither is refused.
fn check_file(
    bytes: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
    what: &str,
) -> Result<(), String> {
    if let Some(length) = length
        && bytes.len() as u64 != length
    {
        return Err(format!("{what} is {} bytes; the signed metadata says {length}", bytes.len()));
    }
    let Some(hashes) = hashes else { return Ok(()) };
    let mut checked = 0;
    for (algorithm, expected) in hashes {
        let actual = match algorithm.as_str() {
            "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
            "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
            _ => continue,
        };
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(format!("{what} has {algorithm} {actual}; the signed metadata says {expected}"));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(format!("{what}: the signed metadata gives no sha256 or sha512 hash"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_root_is_the_one_noted() {
        assert_eq!(hex::encode(sha2::Sha256::digest(PUBLIC_GOOD_ROOT)), PUBLIC_GOOD_ROOT_SHA256);
    }

    #[test]
    fn files_must_match_length_and_every_known_hash() {
        let sha = |b: &[u8]| hex::encode(sha2::Sha256::digest(b));
        let hashes = BTreeMap::from([("sha256".to_string(), sha(b"abc"))]);
        check_file(b"abc", Some(3), Some(&hashes), "f").unwrap();
        assert!(check_file(b"abd", Some(3), Some(&hashes), "f").unwrap_err().contains("sha256"));
        assert!(check_file(b"abc", Some(4), Some(&hashes), "f").unwrap_err().contains("says 4"));
        let unknown = BTreeMap::from([("md5".to_string(), "00".to_string())]);
        assert!(check_file(b"abc", None, Some(&unknown), "f").is_err());
        let info = metadata::TargetFile { length: 3, hashes: BTreeMap::from([("sha256".into(), "../x".into())]) };
        assert!(stored_name("t", &info).is_err());
    }
}
