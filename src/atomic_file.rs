//! Publishing files whole or not at all: a temporary file in the destination's folder,
//! written, synced, made readable, and renamed into place. Used for layout metadata,
//! signatures and pulled `model.sig` files alike. Everything is done inside a folder
//! opened as a [`Dir`] (through its descriptor), never following a symlink.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::local_fs::Dir;

/// A temporary file created (`O_EXCL`, no symlink followed) in a [`Dir`]; removed when
/// dropped unless it was [`persist`](TempFile::persist)ed.
pub struct TempFile<'a> {
    dir: &'a Dir,
    name: String,
    file: Option<fs::File>,
}

impl<'a> TempFile<'a> {
    /// Creates `.<prefix>.<unique>.partial` in `dir`.
    pub fn new_in(dir: &'a Dir, prefix: &str) -> Result<TempFile<'a>> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let mut last = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!(".{prefix}.{}-{nanos:x}-{n}.partial", std::process::id());
            match dir.create_new_file(&name) {
                Ok(file) => return Ok(TempFile { dir, name, file: Some(file) }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried at least once"))
    }

    /// The open file.
    pub fn file(&self) -> &fs::File {
        self.file.as_ref().expect("open until persisted")
    }

    /// Takes the file out (to write it asynchronously); give it back with [`TempFile::put_back`].
    pub fn take_file(&mut self) -> fs::File {
        self.file.take().expect("open until persisted")
    }

    pub fn put_back(&mut self, file: fs::File) {
        self.file = Some(file);
    }

    /// Makes the file readable and renames it to `name` in the same folder (replacing a
    /// file there; a symlink there is replaced, not followed).
    pub fn persist(mut self, name: &str) -> Result<()> {
        let final_path = self.dir.child_path(name);
        make_readable(self.file(), &final_path)?;
        self.dir.rename(&self.name, self.dir, name).map_err(|e| Error::io(&final_path, e))?;
        self.name.clear();
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = self.dir.remove_file(&self.name);
        }
    }
}

/// Writes `bytes` to `name` in `dir` through a temporary file there and a rename.
pub fn write_in(dir: &Dir, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = TempFile::new_in(dir, "modelsign")?;
    let path = dir.child_path(name);
    let mut file = tmp.file();
    file.write_all(bytes).map_err(|e| Error::io(&path, e))?;
    file.sync_all().map_err(|e| Error::io(&path, e))?;
    tmp.persist(name)
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename,
/// both made through the folder's descriptor ([`write_in`]): the folder is opened once, so
/// the file lands in it even if its path is made to point elsewhere meanwhile, and a
/// symlink at `path` is replaced, never followed.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::LocalFile { path: path.to_path_buf(), reason: "not a file name to write".into() })?;
    let dir = Dir::open(parent).map_err(|e| Error::io(parent, e))?;
    write_in(&dir, name, bytes)
}

/// Temporary files are created 0600; what is published is readable like any other file.
pub fn make_readable(file: &fs::File, path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o644)).map_err(|e| Error::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = (file, path);
    Ok(())
}
