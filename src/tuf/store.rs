//! The TUF client's folder: the trusted metadata and the targets it vouches for.
//!
//! ```text
//! DIR/remote                      the repository URL the metadata came from
//! DIR/metadata/root.json          the newest trusted root (after every rotation)
//! DIR/metadata/timestamp.json     snapshot.json, targets.json: the last trusted versions
//! DIR/targets/<sha256>.<name>     trusted_root.json, signing_config.v0.2.json
//! ```
//!
//! Every file is written whole through a temporary file and a rename ([`atomic_file`]),
//! inside folders reached through their descriptors (no symlink followed). Targets are
//! named by their hash, so they are written before the metadata naming them and an
//! interrupted update leaves the previous metadata pointing at files that still exist.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::atomic_file;
use crate::error::{Error, Result};
use crate::local_fs::Dir;

/// No metadata file or target this client keeps is larger.
pub const MAX_STORED: u64 = 16 << 20;

/// The folder, opened.
pub struct Store {
    top: Dir,
    metadata: Dir,
    targets: Dir,
}

impl Store {
    /// Opens `path`, creating it and its two sub-folders (mode 0700) when `create`;
    /// `Ok(None)` when it does not exist and `create` is false.
    pub fn open(path: &Path, create: bool) -> Result<Option<Store>> {
        if create {
            std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        }
        let top = match Dir::open(path) {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let sub = |name: &str| -> Result<Option<Dir>> {
            if create { top.create_dir(name, 0o700).map(|(d, _)| Some(d)) } else { top.open_dir(name) }
        };
        let (Some(metadata), Some(targets)) = (sub("metadata")?, sub("targets")?) else { return Ok(None) };
        Ok(Some(Store { top, metadata, targets }))
    }

    pub fn path(&self) -> &Path {
        self.top.path()
    }

    /// Waits for the folder's exclusive lock (one update at a time); held until dropped.
    pub fn lock(&self) -> Result<()> {
        self.top.lock(true, true).map(|_| ()).map_err(|e| Error::io(self.top.path(), e))
    }

    /// The repository URL the stored metadata came from.
    pub fn remote(&self) -> Result<Option<String>> {
        Ok(read(&self.top, "remote")?.and_then(|b| String::from_utf8(b).ok()).map(|s| s.trim().to_string()))
    }

    pub fn set_remote(&self, url: &str) -> Result<()> {
        atomic_file::write_in(&self.top, "remote", format!("{url}\n").as_bytes())
    }

    /// `<role>.json` from `metadata/`, if there.
    pub fn metadata(&self, role: &str) -> Result<Option<Vec<u8>>> {
        read(&self.metadata, &format!("{role}.json"))
    }

    pub fn write_metadata(&self, role: &str, bytes: &[u8]) -> Result<()> {
        atomic_file::write_in(&self.metadata, &format!("{role}.json"), bytes)
    }

    /// Removes `<role>.json` (after a key rotation made it unverifiable).
    pub fn remove_metadata(&self, role: &str) -> Result<()> {
        match self.metadata.remove_file(&format!("{role}.json")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(self.metadata.path(), e)),
            _ => Ok(()),
        }
    }

    /// A stored target by its stored name (`<sha256>.<name>`).
    pub fn target(&self, stored: &str) -> Result<Option<Vec<u8>>> {
        read(&self.targets, stored)
    }

    pub fn write_target(&self, stored: &str, bytes: &[u8]) -> Result<()> {
        atomic_file::write_in(&self.targets, stored, bytes)
    }

    /// Removes stored targets other than `keep` (older versions of the same files).
    pub fn prune_targets(&self, keep: &[String]) {
        let Ok(entries) = std::fs::read_dir(self.targets.path()) else { return };
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str()
                && !keep.iter().any(|k| k == name)
                && !name.starts_with('.')
            {
                let _ = self.targets.remove_file(name);
            }
        }
    }

    pub fn targets_path(&self) -> PathBuf {
        self.targets.path().to_path_buf()
    }
}

/// Reads a regular file of at most [`MAX_STORED`] bytes (no symlink followed).
fn read(dir: &Dir, name: &str) -> Result<Option<Vec<u8>>> {
    let Some(file) = dir.open_file(name)? else { return Ok(None) };
    let mut bytes = Vec::new();
    file.take(MAX_STORED + 1).read_to_end(&mut bytes).map_err(|e| Error::io(dir.child_path(name), e))?;
    if bytes.len() as u64 > MAX_STORED {
        return Err(Error::RefusedFile {
            what: "TUF metadata".into(),
            path: dir.child_path(name),
            reason: format!("larger than {MAX_STORED} bytes"),
        });
    }
    Ok(Some(bytes))
}
