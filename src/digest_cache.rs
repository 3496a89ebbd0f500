//! The digest cache: the SHA-256 of local files that `push` and `sign DIR` already hashed,
//! so an unchanged file is not read again. `verify` never uses it: verification always
//! hashes what it checks.
//!
//! A file is known by its identity: device, inode, size, and modification and change
//! times to the nanosecond. Any write to a file, and any `touch` that puts its modification
//! time back, moves its change time, which no user can set; so a file whose identity is
//! unchanged has not been written since it was hashed.
//!
//! One small file per entry, `<dir>/digests-v2/<dev>-<inode>` (hex), written to a
//! temporary file and renamed into place: concurrent runs never see half an entry and hold
//! no lock. An entry repeats the identity it belongs to, the path the file was hashed at,
//! and ends with the SHA-256 of the rest; an entry that does not parse, fails that check or
//! names another identity is a miss, and is replaced after the file is hashed.
//!
//! The cache does not grow forever: at most once a day ([`DigestCache::prune_if_due`]) the
//! entries whose file is gone (nothing at the recorded path, or another file there) are
//! removed, and then the least recently used ones beyond [`MAX_ENTRIES`]. An entry's
//! modification time is its last use (refreshed on a hit at most once a day). The self-check catches torn and
//! truncated writes, not forgery: anyone who can write the cache folder can make `push`
//! and `sign DIR` record a wrong digest (which `verify` then rejects), so the folder must
//! be the user's own, and is refused otherwise.
//!
//! A digest is recorded only when the identity taken before hashing equals the one taken
//! after, and when both times are older than [`RACY_WINDOW`] at the start of hashing:
//! a write within the file system's timestamp granularity of the hash (the "racy git"
//! problem) could otherwise leave the identity unchanged.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::digest::Digest;
use crate::error::Result;

mod prune;
pub use prune::PruneReport;

/// Environment variable naming the cache folder (overrides the XDG location).
pub const CACHE_DIR_ENV: &str = "MODELSIGN_CACHE_DIR";

/// Files whose modification or change time is this close to the start of hashing (or
/// later) are not cached: coarse file system clocks (FAT: 2 s) could hide a write.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The folder that holds the entries, under the cache root.
const ENTRIES: &str = "digests-v2";
/// Folders of earlier entry formats, removed by [`DigestCache::prune`].
const OLD_ENTRIES: &[&str] = &["digests-v1"];
/// The first field of every entry.
const MAGIC: &str = "modelsign-digest-v2";
/// An entry is one line: the fields, a digest and a hex-encoded path of at most 4095
/// bytes; anything longer is not one.
const MAX_ENTRY: u64 = 9 * 1024;
/// Entries kept at most (a few MB on disk); the least recently used go first.
pub const MAX_ENTRIES: usize = 20_000;
/// How often [`DigestCache::prune_if_due`] prunes, and how stale an entry's last-use time
/// may grow before a hit refreshes it.
const PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The file, under the cache root, whose modification time is the last pruning.
const PRUNE_STAMP: &str = "digests-pruned";
/// Temporary entry files older than this were left by a run that was killed.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Identity {
    /// The identity of the file at `path` (following symlinks, as reading it does).
    #[cfg(unix)]
    pub fn of(path: &Path) -> Option<Identity> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path).ok()?;
        if !m.is_file() {
            return None;
        }
        Some(Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    #[cfg(not(unix))]
    pub fn of(_path: &Path) -> Option<Identity> {
        None
    }

    /// Both times lie before `limit` (seconds and nanoseconds since the epoch).
    fn settled_before(&self, limit: (i64, i64)) -> bool {
        self.mtime < limit && self.ctime < limit
    }

    fn key(&self) -> String {
        format!("{:x}-{:x}", self.dev, self.ino)
    }

    fn fields(&self) -> String {
        format!(
            "{} {} {} {} {} {} {} {}",
            MAGIC, self.dev, self.ino, self.size, self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1
        )
    }
}

/// How much a cache saved, since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    /// Files whose digest came from the cache.
    pub hits: u64,
    /// Bytes not read thanks to it.
    pub bytes_skipped: u64,
    /// Files hashed (and recorded when they qualified).
    pub misses: u64,
}

impl CacheStats {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &CacheStats) -> CacheStats {
        CacheStats {
            hits: self.hits - earlier.hits,
            bytes_skipped: self.bytes_skipped - earlier.bytes_skipped,
            misses: self.misses - earlier.misses,
        }
    }
}

/// How a set of files got its digests: read, or taken from the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HashSummary {
    /// Files whose digest is known.
    pub files: u64,
    /// Of those, files read and hashed.
    pub hashed: u64,
    /// Of those, files unchanged since they were last hashed (not read).
    pub from_cache: u64,
    /// Bytes read and hashed.
    pub bytes_hashed: u64,
    /// Bytes not read thanks to the cache.
    pub bytes_from_cache: u64,
}

impl HashSummary {
    /// `files` files of `bytes` bytes in all, hashed while the cache (if any) moved from
    /// `before` to `after`.
    pub fn new(files: u64, bytes: u64, cache: Option<(&CacheStats, &CacheStats)>) -> HashSummary {
        let used = cache.map(|(before, after)| after.since(before)).unwrap_or_default();
        HashSummary {
            files,
            hashed: files - used.hits.min(files),
            from_cache: used.hits.min(files),
            bytes_hashed: bytes.saturating_sub(used.bytes_skipped),
            bytes_from_cache: used.bytes_skipped.min(bytes),
        }
    }
}

/// An open digest cache. Cheap to share between threads.
#[derive(Debug)]
pub struct DigestCache {
    entries: PathBuf,
    hits: AtomicU64,
    bytes_skipped: AtomicU64,
    misses: AtomicU64,
}

/// A file looked up and not found: what to record once it is hashed.
#[derive(Debug)]
pub struct Pending {
    before: Identity,
    /// Where the file was found, absolute, recorded so that pruning can tell it is gone.
    path: PathBuf,
    /// The start of hashing, minus [`RACY_WINDOW`].
    settled: (i64, i64),
}

/// The answer of [`DigestCache::lookup`].
#[derive(Debug)]
pub enum Lookup {
    /// The file is unchanged since it was hashed: its digest and size.
    Hit(Digest, u64),
    /// Hash it, then [`DigestCache::record`] the result with this.
    Miss(Pending),
    /// The file cannot be cached (no identity); just hash it.
    Uncacheable,
}

impl DigestCache {
    /// The cache under `MODELSIGN_CACHE_DIR`, `$XDG_CACHE_HOME/modelsign` or
    /// `~/.cache/modelsign`. An error says why there is none (no home, a folder that is not
    /// the user's own); callers go on without a cache.
    pub fn open_default() -> std::result::Result<DigestCache, String> {
        DigestCache::open(&default_dir().ok_or("no cache folder: neither HOME nor XDG_CACHE_HOME is set")?)
    }

    /// The cache rooted at `root` (created, private to the user, if missing).
    pub fn open(root: &Path) -> std::result::Result<DigestCache, String> {
        let entries = root.join(ENTRIES);
        create_private_dir(&entries).map_err(|e| format!("cannot use the digest cache {}: {e}", entries.display()))?;
        check_private(root).and_then(|()| check_private(&entries))?;
        Ok(DigestCache {
            entries,
            hits: AtomicU64::new(0),
            bytes_skipped: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// Where entries are kept.
    pub fn dir(&self) -> &Path {
        &self.entries
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            bytes_skipped: self.bytes_skipped.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Looks `path` up. The clock is read before the identity, so a write after this call
    /// moves the file's times past the recorded limit.
    pub fn lookup(&self, path: &Path) -> Lookup {
        let started = now();
        let Some(before) = Identity::of(path) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Lookup::Uncacheable;
        };
        if let Some(digest) = self.read_entry(&before) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            self.bytes_skipped.fetch_add(before.size, Ordering::Relaxed);
            return Lookup::Hit(digest, before.size);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let settled = started
            .checked_sub(RACY_WINDOW)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| (d.as_secs() as i64, i64::from(d.subsec_nanos())))
            .unwrap_or((i64::MIN, 0));
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Lookup::Miss(Pending { before, path, settled })
    }

    /// Records the digest of `path`, hashed after `lookup` gave `pending`, if the file
    /// kept its identity throughout and had settled before hashing began. Best effort: a
    /// cache that cannot be written is only slower.
    pub fn record(&self, path: &Path, pending: Pending, digest: &Digest, len: u64) {
        let Pending { before, path: absolute, settled } = pending;
        let after = Identity::of(path);
        if after != Some(before) || len != before.size || !before.settled_before(settled) {
            return;
        }
        let _ = self.write_entry(&before, &absolute, digest);
    }

    /// Hashes `path` with `hash` unless the cache knows it; returns the digest, the length
    /// and whether it came from the cache.
    pub fn get_or_hash(
        &self,
        path: &Path,
        hash: impl FnOnce() -> Result<(Digest, u64)>,
    ) -> Result<(Digest, u64, bool)> {
        match self.lookup(path) {
            Lookup::Hit(digest, size) => Ok((digest, size, true)),
            Lookup::Miss(pending) => {
                let (digest, len) = hash()?;
                self.record(path, pending, &digest, len);
                Ok((digest, len, false))
            }
            Lookup::Uncacheable => hash().map(|(d, len)| (d, len, false)),
        }
    }

    fn entry_path(&self, identity: &Identity) -> PathBuf {
        self.entries.join(identity.key())
    }

    fn read_entry(&self, identity: &Identity) -> Option<Digest> {
        let mut file = fs::File::open(self.entry_path(identity)).ok()?;
        let mut text = String::new();
        (&mut file).take(MAX_ENTRY).read_to_string(&mut text).ok()?;
        let digest = parse_entry(&text, identity)?.0;
        // Used now: keep it from looking unused to pruning (a metadata write at most daily).
        let stale = file.metadata().and_then(|m| m.modified()).is_ok_and(|t| older_than(t, PRUNE_INTERVAL));
        if stale {
            let _ = file.set_modified(SystemTime::now());
        }
        Some(digest)
    }

    fn write_entry(&self, identity: &Identity, path: &Path, digest: &Digest) -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(&self.entries)?;
        tmp.write_all(format_entry(identity, path, digest).as_bytes())?;
        // No fsync: an entry torn by a crash fails its self-check and is rebuilt.
        tmp.persist(self.entry_path(identity)).map_err(|e| e.error)?;
        Ok(())
    }
}

fn now() -> SystemTime {
    SystemTime::now()
}

/// Whether `time` lies more than `age` in the past.
fn older_than(time: SystemTime, age: Duration) -> bool {
    SystemTime::now().duration_since(time).is_ok_and(|d| d > age)
}

/// `MODELSIGN_CACHE_DIR`, else `$XDG_CACHE_HOME/modelsign` (absolute only, as the XDG
/// specification says), else `$HOME/.cache/modelsign`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Some(xdg.join("modelsign"));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|p| p.is_absolute())?;
    Some(home.join(".cache").join("modelsign"))
}

/// Names of temporary entry files (never an entry: entries are `<hex>-<hex>`).
const TEMP_PREFIX: &str = ".tmp-";

fn format_entry(identity: &Identity, path: &Path, digest: &Digest) -> String {
    use std::os::unix::ffi::OsStrExt;
    let body = format!("{} {} {}", identity.fields(), digest, hex::encode(path.as_os_str().as_bytes()));
    format!("{body} {}\n", Digest::of(body.as_bytes()).hex())
}

/// The digest and path an entry records for `identity`, if the entry is whole and is
/// about it.
fn parse_entry(text: &str, identity: &Identity) -> Option<(Digest, PathBuf)> {
    let (fields, digest, path) = parse_any_entry(text)?;
    (fields == identity.fields()).then_some((digest, path))
}

/// An entry that is whole (its self-check holds): its identity fields, digest and path.
fn parse_any_entry(text: &str) -> Option<(&str, Digest, PathBuf)> {
    use std::os::unix::ffi::OsStringExt;
    let line = text.strip_suffix('\n')?;
    let (body, check) = line.rsplit_once(' ')?;
    if Digest::of(body.as_bytes()).hex() != check {
        return None;
    }
    let (rest, path) = body.rsplit_once(' ')?;
    let (fields, digest) = rest.rsplit_once(' ')?;
    let path = PathBuf::from(std::ffi::OsString::from_vec(hex::decode(path).ok()?));
    Some((fields, digest.parse().ok()?, path))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

/// A cache folder another user owns or can write could feed us digests: refuse it.
#[cfg(unix)]
fn check_private(dir: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(dir).map_err(|e| format!("cannot use the digest cache {}: {e}", dir.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !m.is_dir() || m.uid() != me || m.mode() & 0o022 != 0 {
        return Err(format!(
            "not using the digest cache {}: it must be a folder of your own that no one else can write",
            dir.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_dir: &Path) -> std::result::Result<(), String> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests;
