//! Folder handles that never follow a symlink: every file and folder of an unpacked
//! archive is reached from an open folder, one name at a time (`openat` with
//! `O_NOFOLLOW`), so a symlink swapped into the output folder while we write cannot
//! redirect a write or a rename outside it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

#[cfg(unix)]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An open folder.
pub(super) struct Dir {
    #[cfg(unix)]
    fd: OwnedFd,
    path: PathBuf,
}

/// What a name in a folder is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

fn cname(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("`{name}` is not a single file name")));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a file name"))
}

#[cfg(unix)]
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

#[cfg(unix)]
impl Dir {
    /// Opens a folder; refuses a symlink at `path` itself.
    pub(super) fn open(path: &Path) -> io::Result<Dir> {
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
        // SAFETY: `c` is a valid NUL-terminated string; the result is checked.
        let fd = check(unsafe {
            libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Dir { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path: path.to_path_buf() })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The folder `name` in this one; fails (ELOOP/ENOTDIR) if it is a symlink or not a folder.
    pub(super) fn child(&self, name: &str) -> io::Result<Dir> {
        let c = cname(name)?;
        // SAFETY: valid fd and C string; the result is checked.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Dir { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path: self.path.join(name) })
    }

    /// Makes the folder `name` (fails if anything is there).
    pub(super) fn mkdir(&self, name: &str) -> io::Result<()> {
        let c = cname(name)?;
        // SAFETY: valid fd and C string; the result is checked.
        check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), 0o755) }).map(drop)
    }

    /// Creates a new file `name` (fails if anything is there, a symlink included).
    pub(super) fn create_file(&self, name: &str, executable: bool) -> io::Result<File> {
        let c = cname(name)?;
        let mode: libc::c_uint = if executable { 0o755 } else { 0o644 };
        // SAFETY: valid fd and C string; the result is checked.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// What `name` is, without following a symlink; `None` when nothing is there.
    pub(super) fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        let c = cname(name)?;
        // SAFETY: `st` is plain data that fstatat fills in.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd, C string and out-pointer; the result is checked.
        match check(unsafe { libc::fstatat(self.fd.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }) {
            Ok(_) => Ok(Some(match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => Kind::Dir,
                libc::S_IFREG => Kind::File,
                libc::S_IFLNK => Kind::Symlink,
                _ => Kind::Other,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Renames `name` here to `to_name` in `to`, replacing a file (or symlink) there.
    pub(super) fn rename(&self, name: &str, to: &Dir, to_name: &str) -> io::Result<()> {
        let (a, b) = (cname(name)?, cname(to_name)?);
        // SAFETY: valid fds and C strings; the result is checked.
        check(unsafe { libc::renameat(self.fd.as_raw_fd(), a.as_ptr(), to.fd.as_raw_fd(), b.as_ptr()) }).map(drop)
    }
}

/// Elsewhere: the same by path (no `openat`), refusing symlinks found on the way.
#[cfg(not(unix))]
impl Dir {
    pub(super) fn open(path: &Path) -> io::Result<Dir> {
        let m = std::fs::symlink_metadata(path)?;
        if !m.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a folder"));
        }
        Ok(Dir { path: path.to_path_buf() })
    }
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
    pub(super) fn child(&self, name: &str) -> io::Result<Dir> {
        cname(name)?;
        Dir::open(&self.path.join(name))
    }
    pub(super) fn mkdir(&self, name: &str) -> io::Result<()> {
        cname(name)?;
        std::fs::create_dir(self.path.join(name))
    }
    pub(super) fn create_file(&self, name: &str, _executable: bool) -> io::Result<File> {
        cname(name)?;
        std::fs::OpenOptions::new().write(true).create_new(true).open(self.path.join(name))
    }
    pub(super) fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        cname(name)?;
        match std::fs::symlink_metadata(self.path.join(name)) {
            Ok(m) if m.file_type().is_symlink() => Ok(Some(Kind::Symlink)),
            Ok(m) if m.is_dir() => Ok(Some(Kind::Dir)),
            Ok(m) if m.is_file() => Ok(Some(Kind::File)),
            Ok(_) => Ok(Some(Kind::Other)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    pub(super) fn rename(&self, name: &str, to: &Dir, to_name: &str) -> io::Result<()> {
        cname(name)?;
        cname(to_name)?;
        std::fs::rename(self.path.join(name), to.path.join(to_name))
    }
}

impl Dir {
    /// The folder at `rel` (`/`-separated, already checked safe) below this one, made where
    /// missing; refuses a symlink or a non-folder on the way.
    pub(super) fn descend(&self, rel: &str, create: bool) -> io::Result<Dir> {
        let mut parts = rel.split('/').filter(|p| !p.is_empty());
        let Some(first) = parts.next() else { return self.child_self() };
        let mut dir = self.step(first, create)?;
        for part in parts {
            dir = dir.step(part, create)?;
        }
        Ok(dir)
    }

    fn step(&self, name: &str, create: bool) -> io::Result<Dir> {
        match self.child(name) {
            Ok(d) => Ok(d),
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                match self.mkdir(name) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
                self.child(name)
            }
            Err(e) => Err(self.explain(name, e)),
        }
    }

    /// A clearer error when a name on the way is a symlink or not a folder.
    fn explain(&self, name: &str, e: io::Error) -> io::Error {
        match self.kind(name) {
            Ok(Some(Kind::Symlink)) => io::Error::other(format!(
                "`{}` is a symlink; refusing to write through it",
                self.path.join(name).display()
            )),
            Ok(Some(Kind::File | Kind::Other)) => {
                io::Error::other(format!("`{}` exists and is not a folder", self.path.join(name).display()))
            }
            _ => e,
        }
    }

    fn child_self(&self) -> io::Result<Dir> {
        #[cfg(unix)]
        return Ok(Dir { fd: self.fd.try_clone()?, path: self.path.clone() });
        #[cfg(not(unix))]
        return Dir::open(&self.path);
    }
}
