//! A model folder on disk: which files belong to it (the same rules as OpenSSF
//! `model_signing`), in which order, and their SHA-256 digests, hashed in parallel and
//! streamed from disk in 1 MiB reads so memory does not grow with the model (read, not
//! memory-mapped: a file truncated meanwhile is an error, never a SIGBUS).

use std::cmp::Ordering;
use std::fs;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::digest::{Digest, Hasher};
use crate::digest_cache::DigestCache;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Top-level paths `model_signing` leaves out by default.
pub const GIT_PATHS: [&str; 4] = [".git", ".github", ".gitattributes", ".gitignore"];

/// Which files of a folder make up the model.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Globs over paths relative to the root (`/`-separated); a match on a directory
    /// leaves out everything below it.
    pub ignore: Vec<String>,
    /// Leave out [`GIT_PATHS`] at the top level.
    pub ignore_git_paths: bool,
    /// Follow symlinks instead of refusing them.
    pub allow_symlinks: bool,
    /// Exact relative paths to leave out (a signature file inside the folder).
    pub ignore_paths: Vec<String>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions { ignore: Vec::new(), ignore_git_paths: true, allow_symlinks: false, ignore_paths: Vec::new() }
    }
}

impl ScanOptions {
    /// The relative paths left out, as `model_signing` records them in `ignore_paths`.
    pub fn recorded_ignore_paths(&self) -> Vec<String> {
        let mut out: Vec<String> = self.ignore_paths.clone();
        if self.ignore_git_paths {
            out.extend(GIT_PATHS.iter().map(|s| s.to_string()));
        }
        out.extend(self.ignore.iter().cloned());
        out
    }
}

/// One regular file of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the model root, `/`-separated (the file name for a single-file model).
    pub path: String,
    /// Where to read it.
    pub source: PathBuf,
    pub size: u64,
}

/// A scanned model: its files in `model_signing` order.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub root: PathBuf,
    /// The model was a single file rather than a folder.
    pub single_file: bool,
    pub files: Vec<FileEntry>,
}

/// Orders paths by their `/`-separated components, as `model_signing` does
/// (`a/b.txt` < `a-b.txt` < `a.txt`).
pub fn component_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

fn build_globs(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| Error::InvalidPattern {
            what: "--ignore pattern",
            pattern: Some(p.clone()),
            reason: e.to_string(),
        })?;
        builder.add(glob);
    }
    builder.build().map_err(|e| Error::InvalidPattern {
        what: "--ignore patterns",
        pattern: None,
        reason: e.to_string(),
    })
}

/// Lists the files of a model folder (or a single file). A symlink (unless allowed), FIFO,
/// socket or device in it is an input error.
pub fn scan(root: &Path, options: &ScanOptions) -> Result<ModelFiles> {
    scan_with(root, options, Error::UnexpectedEntry)
}

/// [`scan`] for a folder being verified: a symlink, FIFO, socket or device in it means the
/// folder is not the model that was signed (exit 3), and is never opened.
pub fn scan_to_verify(root: &Path, options: &ScanOptions) -> Result<ModelFiles> {
    scan_with(root, options, Error::Verification)
}

/// How an entry that is not a regular file or folder is reported.
type Unexpected = fn(String) -> Error;

fn scan_with(root: &Path, options: &ScanOptions, unexpected: Unexpected) -> Result<ModelFiles> {
    let meta = fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
    if meta.file_type().is_symlink() && !options.allow_symlinks {
        return Err(unexpected(format!("{} is a symlink (pass --allow-symlinks to follow it)", root.display())));
    }
    let meta = fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::LocalFile { path: root.to_path_buf(), reason: "file name is not UTF-8".into() })?;
        let files = vec![FileEntry { path: name.to_string(), source: root.to_path_buf(), size: meta.len() }];
        return Ok(ModelFiles { root: root.to_path_buf(), single_file: true, files });
    }
    if !meta.is_dir() {
        return Err(unexpected(format!("{} is neither a regular file nor a folder", root.display())));
    }
    let globs = build_globs(&options.ignore)?;
    let mut files = Vec::new();
    walk(root, "", options, &globs, &mut files, 0, unexpected)?;
    files.sort_by(|a, b| component_order(&a.path, &b.path));
    Ok(ModelFiles { root: root.to_path_buf(), single_file: false, files })
}

fn walk(
    dir: &Path,
    prefix: &str,
    options: &ScanOptions,
    globs: &GlobSet,
    out: &mut Vec<FileEntry>,
    depth: usize,
    unexpected: Unexpected,
) -> Result<()> {
    if depth > 64 {
        return Err(Error::LocalFile {
            path: dir.to_path_buf(),
            reason: "folders nested too deep (a symlink loop?)".into(),
        });
    }
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name
            .to_str()
            .ok_or_else(|| Error::LocalFile { path: entry.path(), reason: "file name is not UTF-8".into() })?;
        let rel = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
        if (depth == 0 && options.ignore_git_paths && GIT_PATHS.contains(&name))
            || options.ignore_paths.iter().any(|p| p == &rel)
            || globs.is_match(&rel)
        {
            continue;
        }
        let path = entry.path();
        let mut file_type = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if file_type.is_symlink() {
            if !options.allow_symlinks {
                return Err(unexpected(format!(
                    "{} is a symlink (pass --allow-symlinks to follow it)",
                    path.display()
                )));
            }
            file_type = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.file_type();
        }
        if file_type.is_dir() {
            walk(&path, &rel, options, globs, out, depth + 1, unexpected)?;
        } else if file_type.is_file() {
            let size = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
            out.push(FileEntry { path: rel, source: path, size });
        } else {
            return Err(unexpected(format!("{} is not a regular file (a FIFO, socket or device)", path.display())));
        }
    }
    Ok(())
}

/// Bytes read at a time when hashing.
const HASH_BUFFER: usize = 1 << 20;

/// SHA-256 of one file, and the number of bytes read, read in 1 MiB pieces (`HASH_BUFFER`) so
/// memory does not grow with the file. The file is read, not memory-mapped: a file
/// truncated while it is hashed then ends early (its length no longer matches, a clear
/// error for the caller) instead of killing the process with SIGBUS.
pub fn hash_file(path: &Path, id_for_progress: Option<(&Digest, &dyn Progress)>) -> Result<(Digest, u64)> {
    let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    hash_open_file(&file, path, id_for_progress)
}

/// [`hash_file`] on a file already open (`path` is for messages), from its start.
pub fn hash_open_file(
    file: &fs::File,
    path: &Path,
    id_for_progress: Option<(&Digest, &dyn Progress)>,
) -> Result<(Digest, u64)> {
    let mut hasher = Hasher::new();
    let mut file = file;
    file.seek(std::io::SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; HASH_BUFFER];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        hasher.update(&buf[..n]);
        if let Some((id, progress)) = id_for_progress {
            progress.advance(id, n as u64);
        }
    }
    let len = hasher.len();
    Ok((hasher.finish(), len))
}

/// Hashes every file with `threads` workers. Returns digests in the order of `files`.
/// Fails if a file's size changed since it was scanned. Reads every byte: verification
/// uses this.
pub fn hash_files(files: &[FileEntry], threads: usize, progress: &dyn Progress) -> Result<Vec<Digest>> {
    hash_files_cached(files, threads, progress, None)
}

/// [`hash_files`], taking the digest of files unchanged since they were last hashed from
/// `cache` (for `push` and `sign DIR`, never for verification).
pub fn hash_files_cached(
    files: &[FileEntry],
    threads: usize,
    progress: &dyn Progress,
    cache: Option<&DigestCache>,
) -> Result<Vec<Digest>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Digest>>>> = Mutex::new((0..files.len()).map(|_| None).collect());
    let threads = threads.clamp(1, files.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                    let Some(entry) = files.get(i) else { break };
                    // Progress needs an id before the digest is known: key on the path's digest.
                    let id = Digest::of(entry.path.as_bytes());
                    progress.start(&id, &entry.path, entry.size);
                    let hash = || hash_file(&entry.source, Some((&id, progress)));
                    let hashed = match cache {
                        Some(cache) => cache.get_or_hash(&entry.source, hash).map(|(d, len, cached)| {
                            if cached {
                                progress.advance(&id, len);
                            }
                            (d, len)
                        }),
                        None => hash(),
                    };
                    let result = hashed.and_then(|(d, len)| {
                        if len != entry.size {
                            Err(Error::FileChanged { path: entry.source.clone(), listed: entry.size, read: len })
                        } else {
                            Ok(d)
                        }
                    });
                    progress.finish(&id);
                    let failed = result.is_err();
                    results.lock().expect("hash results lock")[i] = Some(result);
                    if failed {
                        next.store(files.len(), AtomicOrdering::Relaxed);
                    }
                }
            });
        }
    });
    let results = results.into_inner().expect("hash results lock");
    let mut out = Vec::with_capacity(files.len());
    for r in results {
        match r {
            Some(r) => out.push(r?),
            None => return Err(Error::Internal("hashing stopped early".into())),
        }
    }
    Ok(out)
}

/// The number of hashing threads to use by default: one per core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_order_matches_model_signing() {
        let mut v = vec!["a.txt", "a-b.txt", "a/b.txt", "B", "a/a/z"];
        v.sort_by(|a, b| component_order(a, b));
        assert_eq!(v, vec!["B", "a/a/z", "a/b.txt", "a-b.txt", "a.txt"]);
    }

    #[test]
    fn scans_hashes_and_ignores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join(".git/HEAD"), "x").unwrap();
        fs::create_dir_all(root.join("sub dir")).unwrap();
        fs::write(root.join("sub dir/é.bin"), b"abc").unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        fs::write(root.join("skip.tmp"), b"zz").unwrap();
        let options = ScanOptions { ignore: vec!["*.tmp".into()], ..ScanOptions::default() };
        let m = scan(root, &options).unwrap();
        let paths: Vec<_> = m.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec!["empty", "sub dir/é.bin"]);
        let digests = hash_files(&m.files, 2, &crate::progress::NoProgress).unwrap();
        assert_eq!(digests[0], Digest::of(b""));
        assert_eq!(digests[1], Digest::of(b"abc"));
    }

    #[test]
    fn hashing_reads_whole_buffers_and_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        for len in [2 * HASH_BUFFER + 12_345, HASH_BUFFER, HASH_BUFFER - 1, 1] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            fs::write(&path, &bytes).unwrap();
            assert_eq!(hash_file(&path, None).unwrap(), (Digest::of(&bytes), len as u64));
        }
    }

    /// Truncates the file being hashed once the first piece of it has been hashed.
    struct Truncate<'a>(&'a Path, std::sync::atomic::AtomicBool);

    impl Progress for Truncate<'_> {
        fn advance(&self, _id: &Digest, _bytes: u64) {
            if !self.1.swap(true, AtomicOrdering::SeqCst) {
                fs::OpenOptions::new().write(true).open(self.0).unwrap().set_len(1).unwrap();
            }
        }
    }

    #[test]
    fn a_file_truncated_while_it_is_hashed_is_an_error_not_a_crash() {
        // 24 MiB: past the 8 MiB windows the hashing once memory-mapped, whose next window
        // then lay past the end of the file (SIGBUS, the test process killed).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.bin");
        fs::write(&path, vec![7u8; 24 << 20]).unwrap();
        let m = scan(dir.path(), &ScanOptions::default()).unwrap();
        let truncate = Truncate(&path, Default::default());
        let e = hash_files(&m.files, 1, &truncate).unwrap_err();
        assert!(matches!(e, Error::FileChanged { .. }), "{e:?}");
        let message = e.to_string();
        assert!(
            message.contains("weights.bin changed while it was being read")
                && message.contains(&format!("{} bytes when listed", 24 << 20)),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn refuses_symlinks_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("real"), b"1").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        assert!(scan(dir.path(), &ScanOptions::default()).is_err());
        let m = scan(dir.path(), &ScanOptions { allow_symlinks: true, ..ScanOptions::default() }).unwrap();
        assert_eq!(m.files.len(), 2);
    }
}
