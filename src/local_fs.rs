//! Local folders and files as an attacker who can create entries beside ours sees them.
//!
//! A [`Dir`] is a folder opened once; everything below it is reached through its
//! descriptor (`openat`, `mkdirat`, `renameat`, `unlinkat`) with `O_NOFOLLOW`, so a symlink
//! or a folder swapped in after a check is refused instead of followed. Files are created
//! with `O_EXCL` or opened only when they are regular files. [`read_capped`] reads a file
//! named by the user with a cap on the bytes actually read (never on what `stat` says,
//! which is 0 for `/dev/zero` or a FIFO) and refuses FIFOs and devices without blocking.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};

use crate::error::{Error, Result};

/// A folder opened once; its entries are reached through its descriptor, never its path.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// What is at a name inside a [`Dir`], symlinks not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Missing,
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

impl Dir {
    /// Opens a folder the user named (symlinks on the way there are theirs to choose).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::openat(CWD, path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Dir { fd, path: path.to_path_buf() })
    }

    /// Another descriptor for the same folder.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir { fd: self.fd.try_clone()?, path: self.path.clone() })
    }

    /// The path the folder was reached by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of an entry, for messages.
    pub fn child_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// What `name` is, without following a symlink.
    pub fn entry(&self, name: &str) -> io::Result<Entry> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Entry::File,
                FileType::Directory => Entry::Dir,
                FileType::Symlink => Entry::Symlink,
                _ => Entry::Other,
            }),
            Err(rustix::io::Errno::NOENT) => Ok(Entry::Missing),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the sub-folder `name`; `Ok(None)` when it does not exist. A symlink, or
    /// anything but a folder, is an error saying so.
    pub fn open_dir(&self, name: &str) -> Result<Option<Dir>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir { fd, path: self.child_path(name) })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(self.refusal(name, "a folder", e.into())),
        }
    }

    /// Opens the sub-folder `name`, creating it with `mode` (less the umask) when missing.
    /// Returns it and whether this call created it.
    pub fn create_dir(&self, name: &str, mode: u32) -> Result<(Dir, bool)> {
        let created = match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) => true,
            Err(rustix::io::Errno::EXIST) => false,
            Err(e) => return Err(Error::io(self.child_path(name), e.into())),
        };
        match self.open_dir(name)? {
            Some(dir) => Ok((dir, created)),
            None => Err(Error::io(self.child_path(name), io::Error::from(io::ErrorKind::NotFound))),
        }
    }

    /// Opens the regular file `name` for reading; `Ok(None)` when it does not exist. A
    /// symlink, FIFO, device or folder is an error saying so (a FIFO never blocks the open).
    pub fn open_file(&self, name: &str) -> Result<Option<File>> {
        self.open_regular(name, OFlags::RDONLY, Mode::empty())
    }

    /// Opens the regular file `name` for reading and writing, creating it (mode 0600) when
    /// missing. A symlink or anything but a regular file is an error saying so.
    pub fn open_or_create_file(&self, name: &str) -> Result<File> {
        let file = self.open_regular(name, OFlags::RDWR | OFlags::CREATE, Mode::from_raw_mode(0o600))?;
        file.ok_or_else(|| Error::io(self.child_path(name), io::Error::from(io::ErrorKind::NotFound)))
    }

    /// Creates `name` (mode 0600), failing if anything, even a dangling symlink, has that name.
    pub fn create_new_file(&self, name: &str) -> Result<File> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o600))
            .map_err(|e| Error::io(self.child_path(name), e.into()))?;
        Ok(File::from(fd))
    }

    fn open_regular(&self, name: &str, access: OFlags, mode: Mode) -> Result<Option<File>> {
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
        let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, name, flags, mode) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.refusal(name, "a regular file", e.into())),
        };
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| Error::io(self.child_path(name), e))?;
        if !meta.is_file() {
            return Err(unsafe_entry(&self.child_path(name), "is not a regular file"));
        }
        Ok(Some(file))
    }

    /// Whether `name` is still the very file `file` is open on.
    #[allow(clippy::unnecessary_cast)] // st_dev and st_ino are not u64 on every unix
    pub fn holds(&self, name: &str, file: &File) -> bool {
        match (rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW), file.metadata()) {
            (Ok(st), Ok(meta)) => st.st_dev as u64 == meta.dev() && st.st_ino as u64 == meta.ino(),
            _ => false,
        }
    }

    /// Renames `name` to `to/to_name` (replacing a file there, never following a symlink).
    pub fn rename(&self, name: &str, to: &Dir, to_name: &str) -> io::Result<()> {
        Ok(rustix::fs::renameat(&self.fd, name, &to.fd, to_name)?)
    }

    /// Removes the entry `name` (a symlink itself, not what it points to).
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Removes the sub-folder `name` if it is empty.
    pub fn remove_dir(&self, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?)
    }

    /// Takes the folder's `flock`, shared or exclusive; `Ok(false)` when `wait` is false
    /// and another holder has it.
    pub fn lock(&self, exclusive: bool, wait: bool) -> io::Result<bool> {
        use rustix::fs::FlockOperation as Op;
        let op = match (exclusive, wait) {
            (true, true) => Op::LockExclusive,
            (true, false) => Op::NonBlockingLockExclusive,
            (false, true) => Op::LockShared,
            (false, false) => Op::NonBlockingLockShared,
        };
        match rustix::fs::flock(&self.fd, op) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The folder's owner and permission bits.
    pub fn owner_and_mode(&self) -> io::Result<(u32, u32)> {
        let st = rustix::fs::fstat(&self.fd)?;
        Ok((st.st_uid, st.st_mode & 0o7777))
    }

    /// Whether the folder still has a name (it was not removed while open).
    pub fn is_linked(&self) -> io::Result<bool> {
        Ok(rustix::fs::fstat(&self.fd)?.st_nlink > 0)
    }

    /// Why `name` could not be opened as `wanted`: a symlink or a wrong kind of entry is an
    /// unsafe path; anything else an I/O error.
    fn refusal(&self, name: &str, wanted: &str, e: io::Error) -> Error {
        let path = self.child_path(name);
        match self.entry(name) {
            Ok(Entry::Symlink) => unsafe_entry(&path, "is a symlink; refusing to write or read through it"),
            Ok(Entry::File | Entry::Dir | Entry::Other) if e.raw_os_error() != Some(libc::EACCES) => {
                unsafe_entry(&path, &format!("is not {wanted}"))
            }
            _ => Error::io(path, e),
        }
    }
}

fn unsafe_entry(path: &Path, reason: &str) -> Error {
    Error::UnsafePath { what: "local folder".into(), path: path.display().to_string(), reason: reason.into() }
}

/// The effective user id: folders this process keeps state in must be its own.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Reads a file the user named (a key, a signature, a layout's `index.json`), at most
/// `limit` bytes. Refuses FIFOs, devices and folders without blocking on them, and
/// counts the bytes read rather than trusting the size `stat` reports.
pub fn read_capped(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    read_capped_with(path, limit, what, || Error::RefusedFile {
        what: what.to_string(),
        path: path.to_path_buf(),
        reason: format!("larger than {limit} bytes"),
    })
}

/// [`read_capped`] with the error for a file over `limit` bytes.
pub fn read_capped_with(path: &Path, limit: u64, what: &str, too_large: impl FnOnce() -> Error) -> Result<Vec<u8>> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(CWD, path, flags, Mode::empty()).map_err(|e| Error::io(path, e.into()))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::RefusedFile {
            what: what.to_string(),
            path: path.to_path_buf(),
            reason: "not a regular file (a FIFO, device or folder is never read)".into(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn refuses_symlinks_and_special_files() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("target"), b"x").unwrap();
        symlink(tmp.path().join("target"), tmp.path().join("link")).unwrap();
        symlink(tmp.path().join("nowhere"), tmp.path().join("dangling")).unwrap();
        symlink(tmp.path(), tmp.path().join("dirlink")).unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        for name in ["link", "dangling"] {
            assert!(matches!(dir.open_file(name), Err(Error::UnsafePath { .. })), "{name}");
            assert!(matches!(dir.open_or_create_file(name), Err(Error::UnsafePath { .. })), "{name}");
            assert!(dir.create_new_file(name).is_err(), "{name}");
        }
        assert!(!tmp.path().join("nowhere").exists());
        assert!(matches!(dir.open_dir("dirlink"), Err(Error::UnsafePath { .. })));
        assert!(matches!(dir.create_dir("dirlink", 0o700), Err(Error::UnsafePath { .. })));
        assert!(dir.open_file("missing").unwrap().is_none());
        assert!(read_capped(Path::new("/dev/zero"), 10, "test").is_err());
        assert!(read_capped(&tmp.path().join("target"), 0, "test").is_err());
        assert_eq!(read_capped(&tmp.path().join("target"), 1, "test").unwrap(), b"x");
    }
}
