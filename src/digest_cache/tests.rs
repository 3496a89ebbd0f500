//! Unit tests of the digest cache and its pruning.

use super::*;
use std::fs::FileTimes;

fn backdate(path: &Path) {
    backdate_by(path, Duration::from_secs(3600));
}

fn backdate_by(path: &Path, age: Duration) {
    let past = SystemTime::now() - age;
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_times(FileTimes::new().set_modified(past).set_accessed(past)).unwrap();
}

fn hash(path: &Path) -> Result<(Digest, u64)> {
    let bytes = fs::read(path).unwrap();
    Ok((Digest::of(&bytes), bytes.len() as u64))
}

/// A cache whose RACY_WINDOW has passed for `path`: its ctime is now, so wait it out.
fn settle() {
    std::thread::sleep(RACY_WINDOW + Duration::from_millis(50));
}

#[test]
fn hit_after_settled_hash_miss_after_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DigestCache::open(&dir.path().join("cache")).unwrap();
    let file = dir.path().join("w.bin");
    fs::write(&file, b"weights").unwrap();
    backdate(&file);
    settle();
    let (d, len, cached) = cache.get_or_hash(&file, || hash(&file)).unwrap();
    assert_eq!((d.clone(), len, cached), (Digest::of(b"weights"), 7, false));
    let (d2, _, cached) = cache.get_or_hash(&file, || panic!("must not hash again")).unwrap();
    assert!(cached);
    assert_eq!(d2, d);
    assert_eq!(cache.stats(), CacheStats { hits: 1, bytes_skipped: 7, misses: 1 });

    // Same size, modification time put back: the change time still moved.
    let mtime = fs::metadata(&file).unwrap().modified().unwrap();
    fs::write(&file, b"WEIGHTS").unwrap();
    fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
    let (d3, _, cached) = cache.get_or_hash(&file, || hash(&file)).unwrap();
    assert!(!cached);
    assert_eq!(d3, Digest::of(b"WEIGHTS"));
}

#[test]
fn a_file_written_just_now_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DigestCache::open(dir.path()).unwrap();
    let file = dir.path().join("fresh");
    fs::write(&file, b"x").unwrap();
    cache.get_or_hash(&file, || hash(&file)).unwrap();
    let (_, _, cached) = cache.get_or_hash(&file, || hash(&file)).unwrap();
    assert!(!cached, "a file within the racy window must be hashed again");
    assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 0);
}

#[test]
fn a_file_changed_while_hashing_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DigestCache::open(dir.path()).unwrap();
    let file = dir.path().join("moving");
    fs::write(&file, b"one").unwrap();
    settle();
    let result = cache.get_or_hash(&file, || {
        let r = hash(&file);
        fs::write(&file, b"two").unwrap();
        r
    });
    assert_eq!(result.unwrap().0, Digest::of(b"one"));
    let (d, _, cached) = cache.get_or_hash(&file, || hash(&file)).unwrap();
    assert!(!cached);
    assert_eq!(d, Digest::of(b"two"));
}

#[test]
fn damaged_or_foreign_entries_are_misses() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DigestCache::open(dir.path()).unwrap();
    let file = dir.path().join("f");
    fs::write(&file, b"abc").unwrap();
    let id = Identity::of(&file).unwrap();
    let good = format_entry(&id, &file, &Digest::of(b"abc"));
    assert_eq!(parse_entry(&good, &id), Some((Digest::of(b"abc"), file.clone())));
    // Torn, altered, or about another identity.
    assert_eq!(parse_entry(&good[..good.len() - 5], &id), None);
    assert_eq!(parse_entry(&good.replacen(" 3 ", " 4 ", 1), &id), None);
    let other = Identity { ctime: (id.ctime.0, id.ctime.1 + 1), ..id };
    assert_eq!(parse_entry(&good, &other), None);
    assert_eq!(parse_entry("", &id), None);
    // Garbage at the entry's place is rebuilt.
    fs::write(cache.entry_path(&id), b"\0\0garbage").unwrap();
    assert!(matches!(cache.lookup(&file), Lookup::Miss(_)));
}

#[test]
fn refuses_a_folder_others_can_write() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shared");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
    assert!(DigestCache::open(&root).unwrap_err().contains("no one else can write"));
}

/// A cache with an entry for each of `names` (files under `dir`, settled and hashed).
fn cache_with(dir: &Path, names: &[&str]) -> DigestCache {
    let cache = DigestCache::open(&dir.join("cache")).unwrap();
    for name in names {
        fs::write(dir.join(name), name.as_bytes()).unwrap();
    }
    settle();
    for name in names {
        let file = dir.join(name);
        let (_, _, cached) = cache.get_or_hash(&file, || hash(&file)).unwrap();
        assert!(!cached);
    }
    assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), names.len());
    cache
}

#[test]
fn prune_drops_entries_of_files_that_are_gone_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(dir.path(), &["kept", "deleted", "replaced", "renamed"]);
    fs::remove_file(dir.path().join("deleted")).unwrap();
    // Another file (another inode) at the same path.
    fs::remove_file(dir.path().join("replaced")).unwrap();
    fs::write(dir.path().join("replaced.new"), b"new").unwrap();
    fs::rename(dir.path().join("replaced.new"), dir.path().join("replaced")).unwrap();
    fs::rename(dir.path().join("renamed"), dir.path().join("moved")).unwrap();
    // Damage, a stale temporary file and a folder of the old format go too.
    fs::write(cache.dir().join("1-2"), b"garbage").unwrap();
    let temp = cache.dir().join(".tmp-left");
    fs::write(&temp, b"x").unwrap();
    backdate_by(&temp, 2 * STALE_TEMP);
    fs::create_dir_all(dir.path().join("cache/digests-v1")).unwrap();
    let report = cache.prune(MAX_ENTRIES);
    assert_eq!(report, PruneReport { kept: 1, gone: 4, over_cap: 0 });
    assert!(!temp.exists() && !dir.path().join("cache/digests-v1").exists());
    let kept = dir.path().join("kept");
    let (_, _, cached) = cache.get_or_hash(&kept, || panic!("kept must stay cached")).unwrap();
    assert!(cached);
}

#[test]
fn prune_keeps_the_most_recently_used_within_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(dir.path(), &["a", "b", "c", "d"]);
    // Last used long ago, except "c" (a hit refreshes a stale last-use time).
    for entry in fs::read_dir(cache.dir()).unwrap() {
        backdate_by(&entry.unwrap().path(), 2 * PRUNE_INTERVAL);
    }
    let c = dir.path().join("c");
    cache.get_or_hash(&c, || panic!("cached")).unwrap();
    let report = cache.prune(2);
    assert_eq!((report.kept, report.over_cap, report.gone), (2, 2, 0));
    let (_, _, cached) = cache.get_or_hash(&c, || hash(&c)).unwrap();
    assert!(cached, "the entry used last must be kept");
}

#[test]
fn prune_if_due_runs_once_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(dir.path(), &["x"]);
    fs::remove_file(dir.path().join("x")).unwrap();
    assert_eq!(cache.prune_if_due().map(|r| r.gone), Some(1));
    assert_eq!(cache.prune_if_due(), None, "pruned an hour ago: not due");
    let stamp = dir.path().join("cache").join(PRUNE_STAMP);
    let two_days_ago = SystemTime::now() - 2 * PRUNE_INTERVAL;
    fs::File::options().write(true).open(&stamp).unwrap().set_modified(two_days_ago).unwrap();
    assert!(cache.prune_if_due().is_some());
}
