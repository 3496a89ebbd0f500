//! Pruning the digest cache, so that it does not grow forever: entries whose file is gone
//! (nothing at the recorded path, or a file with another device and inode there), temporary
//! files left by killed runs, folders of older entry formats, and then the least recently
//! used entries beyond a cap. Run at most once a day ([`DigestCache::prune_if_due`]), by
//! whichever run finds the stamp old; concurrent pruners only race to remove the same
//! files, which is harmless (a removed entry is a miss, never a wrong digest).

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use super::{
    DigestCache, MAX_ENTRIES, MAX_ENTRY, OLD_ENTRIES, PRUNE_INTERVAL, PRUNE_STAMP, STALE_TEMP, TEMP_PREFIX, older_than,
    parse_any_entry,
};

/// What a pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Entries kept.
    pub kept: usize,
    /// Entries whose file is gone (or that were damaged).
    pub gone: usize,
    /// Entries removed, least recently used first, to stay within the cap.
    pub over_cap: usize,
}

impl DigestCache {
    /// Prunes when the last pruning is more than a day old (or never happened). Best
    /// effort: a cache that cannot be pruned is only bigger.
    pub fn prune_if_due(&self) -> Option<PruneReport> {
        let stamp = self.root().join(PRUNE_STAMP);
        let due = match fs::metadata(&stamp).and_then(|m| m.modified()) {
            Ok(t) => older_than(t, PRUNE_INTERVAL),
            Err(_) => true,
        };
        if !due {
            return None;
        }
        // The stamp first: a concurrent run that sees it does not prune as well.
        let written = fs::File::create(&stamp).and_then(|f| f.set_modified(SystemTime::now()));
        if written.is_err() {
            return None;
        }
        Some(self.prune(MAX_ENTRIES))
    }

    /// Removes entries whose file is gone, then the least recently used beyond
    /// `max_entries`; also stale temporary files and folders of older formats.
    pub fn prune(&self, max_entries: usize) -> PruneReport {
        let mut report = PruneReport::default();
        for old in OLD_ENTRIES {
            let _ = fs::remove_dir_all(self.root().join(old));
        }
        let Ok(listing) = fs::read_dir(self.dir()) else { return report };
        // (last use, name) of every entry kept so far.
        let mut live: Vec<(SystemTime, std::ffi::OsString)> = Vec::new();
        for entry in listing.flatten() {
            let name = entry.file_name();
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.to_string_lossy().starts_with(TEMP_PREFIX) {
                if older_than(used, STALE_TEMP) {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            if meta.is_file() && file_still_there(&path) {
                live.push((used, name));
            } else if fs::remove_file(&path).is_ok() {
                report.gone += 1;
            }
        }
        if live.len() > max_entries {
            live.sort();
            let excess = live.len() - max_entries;
            for (_, name) in live.drain(..excess) {
                if fs::remove_file(self.dir().join(name)).is_ok() {
                    report.over_cap += 1;
                }
            }
        }
        report.kept = live.len();
        report
    }

    fn root(&self) -> &Path {
        self.dir().parent().unwrap_or(self.dir())
    }
}

/// Whether the entry at `entry` is whole and its recorded path still holds a file with the
/// recorded device and inode (a file that changed since keeps its entry until it is hashed
/// again, which replaces it).
fn file_still_there(entry: &Path) -> bool {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut text = String::new();
    let read = fs::File::open(entry).and_then(|f| f.take(MAX_ENTRY).read_to_string(&mut text));
    if read.is_err() {
        return false;
    }
    let Some((fields, _, path)) = parse_any_entry(&text) else { return false };
    let mut parts = fields.split(' ').skip(1);
    let (Some(dev), Some(ino)) = (parts.next(), parts.next()) else { return false };
    fs::metadata(&path).is_ok_and(|m| m.is_file() && dev == m.dev().to_string() && ino == m.ino().to_string())
}
