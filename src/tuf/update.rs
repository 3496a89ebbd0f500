//! One refresh of a TUF repository, as the specification's client workflow (section 5)
//! orders it: root rotations, timestamp, snapshot, targets, then the two Sigstore targets.
//! Everything is checked in memory first; the folder is written only when all of it passed,
//! so a refused update leaves the previous good state as it was.

use std::path::PathBuf;
use std::time::Duration;

use super::fetch::{Fetched, Remote};
use super::metadata::{Envelope, HasCommon, MetaFile, Root, Snapshot, Targets, Timestamp};
use super::{
    Fail, MAX_ROOT_ROTATIONS, PUBLIC_GOOD_ROOT, PUBLIC_GOOD_URL, SIGNING_CONFIG_TARGET, Store, TRUSTED_ROOT_TARGET,
};

/// Default caps on metadata whose length no signed metadata states (python-tuf's defaults).
const MAX_ROOT: u64 = 512 << 10;
const MAX_TIMESTAMP: u64 = 16 << 10;
const MAX_SNAPSHOT: u64 = 2 << 20;
const MAX_TARGETS: u64 = 5 << 20;
/// The largest target this client fetches (trusted roots are a few KiB).
const MAX_TARGET_FILE: u64 = 4 << 20;

/// Checks a target's content (its name, its bytes) before it is stored.
pub type Validate = dyn Fn(&str, &[u8]) -> Result<(), String> + Send + Sync;

/// What to refresh and where.
pub struct Options {
    /// The repository's base URL.
    pub url: String,
    /// The folder of trusted metadata and targets.
    pub dir: PathBuf,
    /// A root to start from instead of the stored or built-in one (a private repository).
    pub bootstrap_root: Option<Vec<u8>>,
    /// Bounds every download from first to last byte.
    pub timeout: Duration,
    /// Checks a target's content before it is stored (e.g. that a trusted root parses).
    pub validate: Box<Validate>,
}

/// What an update found (`--output json` prints it).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub remote: String,
    pub dir: PathBuf,
    pub root_version: u64,
    pub root_rotations: u64,
    pub timestamp_version: u64,
    pub snapshot_version: u64,
    pub targets_version: u64,
    /// Targets stored.
    pub targets: Vec<StoredTarget>,
    /// When the first of the four roles' metadata expires.
    pub expires: String,
}

/// A target an update stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredTarget {
    pub name: String,
    pub sha256: String,
    pub length: u64,
}

/// Runs one refresh; see the module documentation.
pub async fn update(options: &Options) -> Result<Report, Fail> {
    let url = options.url.trim_end_matches('/').to_string();
    let remote = Remote::new(&url, options.timeout).map_err(Fail::Refused)?;
    let unavailable = |e: crate::error::Error| Fail::Unavailable(e.to_string());
    let store =
        Store::open(&options.dir, true).map_err(unavailable)?.ok_or_else(|| Fail::Unavailable("no folder".into()))?;
    store.lock().map_err(unavailable)?;
    let same_remote = store.remote().map_err(unavailable)?.is_some_and(|r| r == url);
    let stored = |role: &str| -> Result<Option<Vec<u8>>, Fail> {
        if same_remote { store.metadata(role).map_err(unavailable) } else { Ok(None) }
    };
    let now = jiff::Timestamp::now();

    // 5.2: the trusted root to start from, which must be signed by its own threshold.
    let start = match (&options.bootstrap_root, stored("root")?) {
        (Some(given), _) => given.clone(),
        (None, Some(stored)) => stored,
        (None, None) if url == PUBLIC_GOOD_URL => PUBLIC_GOOD_ROOT.to_vec(),
        (None, None) => {
            return Err(Fail::Refused(format!(
                "no trusted root for {url} yet: give the repository's initial root.json with --root FILE"
            )));
        }
    };
    let start_env = Envelope::parse(&start, "the starting root.json").map_err(Fail::Refused)?;
    let mut root: Root = start_env.signed("root", "the starting root.json").map_err(Fail::Refused)?;
    start_env.verify(&root, "root", "the starting root.json").map_err(Fail::Refused)?;
    let first_root = root.clone();
    let mut root_bytes = start;

    // 5.3: walk N+1, N+2, ... each signed by the old root's and its own threshold.
    let mut rotations = 0;
    loop {
        let next = root.common.version + 1;
        let name = format!("{next}.root.json");
        let bytes = match remote.get(&name, MAX_ROOT).await? {
            Fetched::NotFound => break,
            Fetched::Body(b) => b,
        };
        if rotations == MAX_ROOT_ROTATIONS {
            return Err(Fail::Refused(format!("more than {MAX_ROOT_ROTATIONS} root rotations in one update")));
        }
        let env = Envelope::parse(&bytes, &name).map_err(Fail::Refused)?;
        env.verify(&root, "root", &format!("{name} (by the keys of root version {})", root.common.version))
            .map_err(Fail::Refused)?;
        let new: Root = env.signed("root", &name).map_err(Fail::Refused)?;
        env.verify(&new, "root", &format!("{name} (by its own keys)")).map_err(Fail::Refused)?;
        if new.common.version != next {
            return Err(Fail::Refused(format!("{name} says it is root version {}", new.common.version)));
        }
        root = new;
        root_bytes = bytes;
        rotations += 1;
    }
    not_expired(&root, "root.json", now)?;

    // 5.3.11: after a timestamp or snapshot key rotation, the stored ones cannot be used
    // for rollback checks (that is how a repository recovers from a fast-forward attack).
    let rotated = |role: &str| first_root.role_keys(role) != root.role_keys(role);
    let keep_ts_snap = !rotated("timestamp") && !rotated("snapshot");
    let trusted = |role: &str, bytes: Option<Vec<u8>>| -> Option<Envelope> {
        let env = Envelope::parse(&bytes?, role).ok()?;
        env.verify(&root, role, role).ok().map(|_| env)
    };
    let old_timestamp: Option<Timestamp> = if keep_ts_snap {
        trusted("timestamp", stored("timestamp")?).and_then(|e| e.signed("timestamp", "timestamp.json").ok())
    } else {
        None
    };
    let old_snapshot: Option<Snapshot> = if keep_ts_snap {
        trusted("snapshot", stored("snapshot")?).and_then(|e| e.signed("snapshot", "snapshot.json").ok())
    } else {
        None
    };
    let old_targets: Option<Targets> =
        trusted("targets", stored("targets")?).and_then(|e| e.signed("targets", "targets.json").ok());

    // 5.4: timestamp.
    let ts_bytes = remote.get_existing("timestamp.json", MAX_TIMESTAMP).await?;
    let timestamp: Timestamp = checked(&ts_bytes, &root, "timestamp", "timestamp.json")?;
    let snapshot_meta = timestamp
        .meta
        .get("snapshot.json")
        .cloned()
        .ok_or_else(|| Fail::Refused("timestamp.json lists no snapshot.json".into()))?;
    if let Some(old) = &old_timestamp {
        not_older("timestamp.json", timestamp.common.version, old.common.version)?;
        if let Some(old_meta) = old.meta.get("snapshot.json") {
            not_older("the snapshot version in timestamp.json", snapshot_meta.version, old_meta.version)?;
        }
    }
    not_expired(&timestamp, "timestamp.json", now)?;

    // 5.5: snapshot, exactly the version (and length and hashes) the timestamp names.
    let snap_name = versioned(&root, snapshot_meta.version, "snapshot.json");
    let snap_bytes = fetch_meta(&remote, &snap_name, &snapshot_meta, MAX_SNAPSHOT).await?;
    let snapshot: Snapshot = checked(&snap_bytes, &root, "snapshot", &snap_name)?;
    same_version(&snap_name, snapshot.common.version, snapshot_meta.version, "timestamp.json")?;
    if let Some(old) = &old_snapshot {
        not_older("snapshot.json", snapshot.common.version, old.common.version)?;
        for (name, old_meta) in &old.meta {
            let Some(new_meta) = snapshot.meta.get(name) else {
                return Err(Fail::Refused(format!("{snap_name} no longer lists {name}")));
            };
            not_older(&format!("{name} in {snap_name}"), new_meta.version, old_meta.version)?;
        }
    }
    not_expired(&snapshot, &snap_name, now)?;

    // 5.6: targets, exactly the version the snapshot names.
    let targets_meta = snapshot
        .meta
        .get("targets.json")
        .cloned()
        .ok_or_else(|| Fail::Refused(format!("{snap_name} lists no targets.json")))?;
    let targets_name = versioned(&root, targets_meta.version, "targets.json");
    let targets_bytes = fetch_meta(&remote, &targets_name, &targets_meta, MAX_TARGETS).await?;
    let targets: Targets = checked(&targets_bytes, &root, "targets", &targets_name)?;
    same_version(&targets_name, targets.common.version, targets_meta.version, &snap_name)?;
    if let Some(old) = &old_targets {
        not_older("targets.json", targets.common.version, old.common.version)?;
    }
    not_expired(&targets, &targets_name, now)?;

    // 5.7: the two Sigstore targets, fetched by hash unless already stored.
    let mut fetched = Vec::new();
    for name in [TRUSTED_ROOT_TARGET, SIGNING_CONFIG_TARGET] {
        let Some(info) = targets.targets.get(name) else {
            if name == TRUSTED_ROOT_TARGET {
                return Err(Fail::Refused(format!("{targets_name} lists no {name}")));
            }
            continue;
        };
        if info.length > MAX_TARGET_FILE {
            return Err(Fail::Refused(format!("{name} would be {} bytes (limit {MAX_TARGET_FILE})", info.length)));
        }
        let stored_name = super::stored_name(name, info).map_err(Fail::Refused)?;
        let have = store.target(&stored_name).ok().flatten();
        let bytes = match have.filter(|b| super::check_file(b, Some(info.length), Some(&info.hashes), name).is_ok()) {
            Some(bytes) => bytes,
            None => {
                let path =
                    if root.consistent_snapshot { format!("targets/{stored_name}") } else { format!("targets/{name}") };
                let bytes = remote.get_existing(&path, info.length).await?;
                super::check_file(&bytes, Some(info.length), Some(&info.hashes), &path).map_err(Fail::Refused)?;
                bytes
            }
        };
        (options.validate)(name, &bytes).map_err(|e| Fail::Refused(format!("{name}: {e}")))?;
        fetched.push((name, stored_name, bytes));
    }

    // All checked: store targets first (named by hash), then the metadata naming them.
    let write = |r: crate::error::Result<()>| r.map_err(unavailable);
    for (_, stored_name, bytes) in &fetched {
        write(store.write_target(stored_name, bytes))?;
    }
    write(store.write_metadata("root", &root_bytes))?;
    write(store.write_metadata("targets", &targets_bytes))?;
    write(store.write_metadata("snapshot", &snap_bytes))?;
    write(store.write_metadata("timestamp", &ts_bytes))?;
    write(store.set_remote(&url))?;
    store.prune_targets(&fetched.iter().map(|(_, s, _)| s.clone()).collect::<Vec<_>>());

    let earliest = [&root.common.expires, &timestamp.common.expires, &snapshot.common.expires, &targets.common.expires]
        .into_iter()
        .min_by_key(|e| e.parse::<jiff::Timestamp>().ok())
        .cloned()
        .unwrap_or_default();
    Ok(Report {
        remote: url,
        dir: store.path().to_path_buf(),
        root_version: root.common.version,
        root_rotations: rotations,
        timestamp_version: timestamp.common.version,
        snapshot_version: snapshot.common.version,
        targets_version: targets.common.version,
        targets: fetched
            .iter()
            .map(|(name, stored, bytes)| StoredTarget {
                name: name.to_string(),
                sha256: stored[..64].to_string(),
                length: bytes.len() as u64,
            })
            .collect(),
        expires: earliest,
    })
}

/// Parses `bytes` as role `kind` signed by its threshold of keys in `root`.
fn checked<T: serde::de::DeserializeOwned + HasCommon>(
    bytes: &[u8],
    root: &Root,
    kind: &str,
    what: &str,
) -> Result<T, Fail> {
    let env = Envelope::parse(bytes, what).map_err(Fail::Refused)?;
    env.verify(root, kind, what).map_err(Fail::Refused)?;
    env.signed(kind, what).map_err(Fail::Refused)
}

/// `<version>.<name>` in a consistent-snapshot repository, else `<name>`.
fn versioned(root: &Root, version: u64, name: &str) -> String {
    if root.consistent_snapshot { format!("{version}.{name}") } else { name.to_string() }
}

/// Downloads metadata whose length and hashes its parent may state.
async fn fetch_meta(remote: &Remote, name: &str, meta: &MetaFile, default_cap: u64) -> Result<Vec<u8>, Fail> {
    let cap = meta.length.unwrap_or(default_cap).min(super::store::MAX_STORED);
    let bytes = remote.get_existing(name, cap).await?;
    super::check_file(&bytes, meta.length, meta.hashes.as_ref(), name).map_err(Fail::Refused)?;
    Ok(bytes)
}

fn not_expired<T: HasCommon>(doc: &T, what: &str, now: jiff::Timestamp) -> Result<(), Fail> {
    let expires = &doc.common().expires;
    let at: jiff::Timestamp =
        expires.parse().map_err(|e| Fail::Refused(format!("{what}: `expires` is not a timestamp: {e}")))?;
    if at <= now {
        return Err(Fail::Refused(format!(
            "{what} (version {}) expired at {expires}: refusing stale metadata (a freeze attack, or an unmaintained repository)",
            doc.common().version
        )));
    }
    Ok(())
}

fn not_older(what: &str, new: u64, trusted: u64) -> Result<(), Fail> {
    if new < trusted {
        return Err(Fail::Refused(format!(
            "{what} is version {new}, older than the trusted version {trusted}: refusing a rollback"
        )));
    }
    Ok(())
}

fn same_version(what: &str, got: u64, expected: u64, parent: &str) -> Result<(), Fail> {
    if got != expected {
        return Err(Fail::Refused(format!("{what} is version {got}, but {parent} names version {expected}")));
    }
    Ok(())
}
