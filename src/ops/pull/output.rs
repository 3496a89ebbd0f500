//! The output folder of a pull (`-o DIR`) and its resume folder `DIR/.modelsign-partial`.
//!
//! Anyone may have created entries in `DIR` before the pull (a shared `/tmp/models`, a team
//! folder), so it is opened once and everything below it is reached through descriptors
//! ([`crate::local_fs::Dir`]), never following a symlink. The resume folder is created
//! private (0700) or, if it exists, must be a real folder owned by this user that no one
//! else can write to. Every pull holds a shared `flock` on it; the last one out removes it
//! when empty. A pull that fails removes the (empty) folders it created.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::folder;
use crate::local_fs::Dir;
use crate::oci::Descriptor;

use super::super::components::{Component, PARTIAL_DIR, open_resume_folder, unsafe_path_reason};
use super::partial::PartialFile;

/// The longest path the kernel takes (`PATH_MAX` less the final NUL), in bytes.
const MAX_PATH_BYTES: usize = 4095;

pub(super) struct OutputDir {
    root: Arc<Dir>,
    partial: Dir,
    /// Folders under `root` opened so far (each once, without following a symlink), by
    /// `/`-separated path: thousands of files in a few folders do not reopen them per file.
    opened: Mutex<HashMap<String, Arc<Dir>>>,
    /// Folders under `root` this pull created, `/`-separated, in creation order.
    created: Mutex<Vec<String>>,
    /// `DIR` and its parents when this pull created them, deepest last.
    created_above: Vec<PathBuf>,
    succeeded: AtomicBool,
}

impl OutputDir {
    /// Checks every component's path, then opens (or creates) `dir` and its resume folder.
    /// Nothing is created when a path is refused.
    pub(super) fn open(dir: &Path, components: &[Component]) -> Result<OutputDir> {
        for c in components {
            check_path(dir, &c.path)?;
        }
        let created_above = create_root(dir)?;
        let output = Dir::open(dir).map_err(|e| Error::io(dir, e)).and_then(|root| {
            let partial = open_resume_folder(&root)?;
            Ok(OutputDir {
                root: Arc::new(root),
                partial,
                opened: Mutex::new(HashMap::new()),
                created: Mutex::new(Vec::new()),
                created_above: created_above.clone(),
                succeeded: AtomicBool::new(false),
            })
        });
        if output.is_err() {
            remove_empty_above(&created_above);
        }
        output
    }

    /// The resume folder.
    pub(super) fn partial_dir(&self) -> &Dir {
        &self.partial
    }

    /// Marks the pull as done: the folders it created stay.
    pub(super) fn succeeded(&self) {
        self.succeeded.store(true, Ordering::Relaxed);
    }

    /// The folder holding `path` and the file name in it; `Ok(None)` when a folder on the
    /// way is missing and `create` is false. Created folders are remembered for cleanup.
    fn parent<'p>(&self, path: &'p str, create: bool) -> Result<Option<(Arc<Dir>, &'p str)>> {
        let (folders, leaf) = path.rsplit_once('/').unwrap_or(("", path));
        if folders.is_empty() {
            return Ok(Some((self.root.clone(), leaf)));
        }
        let opened = |prefix: &str| self.opened.lock().expect("opened folders").get(prefix).cloned();
        if let Some(dir) = opened(folders) {
            return Ok(Some((dir, leaf)));
        }
        let mut current = self.root.clone();
        let mut done = 0;
        for part in folders.split('/') {
            done += part.len() + usize::from(done > 0);
            let prefix = &folders[..done];
            if let Some(dir) = opened(prefix) {
                current = dir;
                continue;
            }
            let next = if create {
                let (next, created) = current.create_dir(part, 0o777)?;
                if created {
                    self.created.lock().expect("created folders").push(prefix.to_string());
                }
                next
            } else {
                match current.open_dir(part)? {
                    Some(next) => next,
                    None => return Ok(None),
                }
            };
            current = Arc::new(next);
            self.opened.lock().expect("opened folders").entry(prefix.to_string()).or_insert_with(|| current.clone());
        }
        Ok(Some((current, leaf)))
    }

    /// Whether anything (a file, or something [`OutputDir::up_to_date`] refuses) is at
    /// `path`: a cheap look before hashing.
    pub(super) fn has_entry(&self, path: &str) -> Result<bool> {
        let Some((parent, leaf)) = self.parent(path, false)? else { return Ok(false) };
        let entry = parent.entry(leaf).map_err(|e| Error::io(self.root.child_path(path), e))?;
        Ok(entry != crate::local_fs::Entry::Missing)
    }

    /// Whether `path` already holds exactly the layer's bytes.
    pub(super) fn up_to_date(&self, path: &str, desc: &Descriptor) -> Result<bool> {
        let Some((parent, leaf)) = self.parent(path, false)? else { return Ok(false) };
        let Some(file) = parent.open_file(leaf)? else { return Ok(false) };
        let full = self.root.child_path(path);
        let len = file.metadata().map_err(|e| Error::io(&full, e))?.len();
        Ok(len == desc.size && folder::hash_open_file(&file, &full, None)?.0 == desc.digest)
    }

    /// Renames the checked partial file to `path`: the very file that was checked (its
    /// inode is compared just before), into a folder reached without following symlinks.
    pub(super) fn place(&self, partial: &mut PartialFile<'_>, path: &str) -> Result<()> {
        let full = self.root.child_path(path);
        let Some((parent, leaf)) = self.parent(path, true)? else {
            unreachable!("parent() with create never returns None")
        };
        if !partial.is_still_in_place() {
            return Err(Error::LocalFile {
                path: full,
                reason: "the checked download was replaced while being put in place; nothing written".into(),
            });
        }
        self.partial.rename(partial.name(), &parent, leaf).map_err(|e| Error::io(&full, e))?;
        partial.placed();
        Ok(())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        // The last pull out removes the resume folder when nothing resumable is left in it;
        // the exclusive lock keeps a pull that just opened it from losing it.
        if self.partial.lock(true, false).unwrap_or(false) {
            let _ = self.root.remove_dir(PARTIAL_DIR);
        }
        if self.succeeded.load(Ordering::Relaxed) {
            return;
        }
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        for rel in created.iter().rev() {
            let (folders, leaf) = rel.rsplit_once('/').unwrap_or(("", rel));
            let parent = if folders.is_empty() {
                Some(self.root.clone())
            } else {
                self.parent(&format!("{folders}/x"), false).ok().flatten().map(|(d, _)| d)
            };
            if let Some(parent) = parent {
                let _ = parent.remove_dir(leaf);
            }
        }
        remove_empty_above(&self.created_above);
    }
}

/// Refuses a component path before anything is written: unsafe names, names inside the
/// resume folder, paths longer than the OS takes, and symlinks or non-folders on the way.
fn check_path(dir: &Path, path: &str) -> Result<()> {
    let what = || format!("output folder {}", dir.display());
    if let Some(reason) = unsafe_path_reason(path) {
        return Err(Error::UnsafePath { what: what(), path: path.to_string(), reason: reason.into() });
    }
    if dir.as_os_str().len() + 1 + path.len() > MAX_PATH_BYTES {
        return Err(Error::UnsafePath {
            what: what(),
            path: path.to_string(),
            reason: format!(
                "`{}/{path}` would be longer than the {MAX_PATH_BYTES} bytes a path may have",
                dir.display()
            ),
        });
    }
    let mut current = dir.to_path_buf();
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        current.push(part);
        let reason = match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => "is a symlink; refusing to write through it",
            Ok(m) if i + 1 < parts.len() && !m.is_dir() => "exists and is not a folder",
            Ok(m) if i + 1 == parts.len() && m.is_dir() => "exists and is a folder",
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io(&current, e)),
        };
        return Err(Error::UnsafePath {
            what: what(),
            path: path.to_string(),
            reason: format!("`{}` {reason}", current.display()),
        });
    }
    Ok(())
}

/// Creates `dir` and missing parents; returns those it created, deepest last.
fn create_root(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at.filter(|p| !p.as_os_str().is_empty()) {
        match std::fs::symlink_metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(p.to_path_buf()),
            _ => break,
        }
        at = p.parent();
    }
    missing.reverse();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    Ok(missing)
}

fn remove_empty_above(created: &[PathBuf]) {
    for p in created.iter().rev() {
        if std::fs::remove_dir(p).is_err() {
            break;
        }
    }
}
