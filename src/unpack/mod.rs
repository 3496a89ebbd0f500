//! Safe streaming unpacking of archive layers (tar, tar+gzip, tar+zstd).
//!
//! A layer is read once, as it arrives: its compressed bytes are hashed (the layer digest
//! is checked on them), decompressed, and every tar entry is checked before a byte of it
//! is written. Only regular files and folders are unpacked. Refused: names that leave the
//! output folder (`..`, absolute, backslash, NUL, drive letters), names that are not
//! UTF-8, **every symlink and hard link** (even ones pointing inside the archive: a
//! model folder needs none, `model_signing` refuses them by default, and refusing them
//! removes the whole symlink-then-write-through-it family of attacks), devices, FIFOs,
//! sparse files, a repeated file, a name that is both a file and a folder, data after
//! the end of the archive, and anything over the caps of [`Limits`].
//!
//! Entries are written into a staging folder that this module creates (it must not
//! exist) inside a folder the caller checked; files are created with `O_EXCL` and
//! `O_NOFOLLOW`, reached one folder at a time from open handles (`fsat`). Only when the
//! whole archive was accepted *and* the layer's size and digest matched does [`place`]
//! rename the files into the output folder. Any failure removes the staging folder, so a
//! refused archive leaves nothing behind.

mod fsat;
mod readers;
mod walk;

#[cfg(test)]
mod tests;

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::direct_write::{Buffer, DIRECT_FROM, Writer as DirectWriter};
use crate::error::{Error, Result};
use crate::oci::Descriptor;

use fsat::{Dir, Kind};
use readers::HashingReader;
pub use readers::LayerSource;
use walk::{Sink, walk};

/// Top-level names an archive may not use: modelsign's own bookkeeping in the output folder.
pub const RESERVED_NAMES: &[&str] = &[".modelsign-partial"];

/// How an archive layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Caps on what one archive layer may unpack to. A layer over any of them is refused whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries (files and folders) in one archive.
    pub max_entries: u64,
    /// Bytes of one file.
    pub max_entry_size: u64,
    /// Bytes of all files of one archive.
    pub max_total_size: u64,
    /// Decompressed bytes per compressed byte of the layer (decompression bombs) ...
    pub max_ratio: u64,
    /// ... beyond this many decompressed bytes, which any layer may unpack to.
    pub ratio_allowance: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 100_000,
            max_entry_size: 1 << 40,
            max_total_size: 4 << 40,
            max_ratio: 100,
            ratio_allowance: 64 << 20,
        }
    }
}

impl Limits {
    /// The most decompressed bytes (tar headers included) a layer of `size` bytes may give.
    pub fn stream_cap(&self, size: u64) -> u64 {
        self.stream_cap_and_why(size).0
    }

    /// [`Self::stream_cap`], and which cap it is (for the message when it is hit).
    pub fn stream_cap_and_why(&self, size: u64) -> (u64, String) {
        let by_ratio = size.saturating_mul(self.max_ratio).max(self.ratio_allowance);
        // The tar stream holds the files plus headers and padding (1 KiB per entry at most, plus records).
        let by_total =
            self.max_total_size.saturating_add(self.max_entries.saturating_mul(1536)).saturating_add(1 << 20);
        if by_ratio <= by_total {
            let why = format!(
                "the decompression ratio cap: {}x its {size} compressed bytes, at least {} bytes; a decompression bomb? raise it with {}",
                self.max_ratio,
                self.ratio_allowance,
                flags::RATIO
            );
            (by_ratio, why)
        } else {
            (by_total, format!("the total size cap; raise it with {}", flags::TOTAL))
        }
    }
}

/// The command-line flags that set each cap, named in the messages of a refused archive.
pub mod flags {
    pub const ENTRIES: &str = "--max-unpack-entries";
    pub const ENTRY_SIZE: &str = "--max-unpack-file-size";
    pub const TOTAL: &str = "--max-unpack-size";
    pub const RATIO: &str = "--max-unpack-ratio";
}

/// The layer being unpacked: its descriptor (size and digest are checked), its
/// compression, and a name for messages.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    pub desc: &'a Descriptor,
    pub compression: Compression,
    pub label: &'a str,
}

impl Layer<'_> {
    /// `source` hashed and counted here.
    fn hashed<R: Read>(&self, source: R) -> BufReader<HashingReader<R>> {
        BufReader::with_capacity(SOURCE_BUF, HashingReader::new(source, self.desc.size, &self.what()))
    }

    /// How messages name the layer.
    pub fn what(&self) -> String {
        if self.label.is_empty() {
            format!("layer {}", self.desc.digest)
        } else {
            format!("layer {} ({})", self.desc.digest, self.label)
        }
    }
}

/// One file an archive holds (or that was unpacked from it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveFile {
    pub path: String,
    pub size: u64,
}

/// What an archive held or unpacked to.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unpacked {
    /// Files unpacked (those the filter selected), in archive order.
    pub files: Vec<ArchiveFile>,
    /// Folders named by the archive (created even when empty).
    #[serde(skip)]
    pub dirs: Vec<String>,
    /// Entries in the archive.
    pub entries: u64,
    /// Bytes the tar stream decompressed to.
    pub uncompressed: u64,
}

/// Lists the files of an archive layer without writing anything; fails unless the whole
/// layer is a valid archive within `limits` whose size and digest match (so a listing is
/// never taken from unchecked bytes).
pub fn list(source: impl Read, layer: &Layer<'_>, limits: &Limits) -> Result<Unpacked> {
    list_source(layer.hashed(source), layer, limits)
}

/// [`list`] from a source that checks the layer's size and digest itself (one that hashed
/// the bytes on another thread as they arrived).
pub fn list_source<S: LayerSource>(source: S, layer: &Layer<'_>, limits: &Limits) -> Result<Unpacked> {
    struct Lister(Unpacked);
    impl Sink for Lister {
        fn dir(&mut self, path: &str) -> Result<()> {
            self.0.dirs.push(path.to_string());
            Ok(())
        }
        fn file(&mut self, path: &str, size: u64, _executable: bool, _data: &mut dyn Read) -> Result<()> {
            self.0.files.push(ArchiveFile { path: path.to_string(), size });
            Ok(())
        }
    }
    let mut lister = Lister(Unpacked::default());
    let summary = walk(source, layer, limits, None, &mut lister)?;
    lister.0.entries = summary.entries;
    lister.0.uncompressed = summary.stream_bytes;
    Ok(lister.0)
}

/// Unpacks an archive layer into `staging`, a folder this creates (nothing may be there;
/// its parent must be a real folder, not a symlink). `filter`, when given, selects the
/// files written (all are still checked). On any failure `staging` is removed.
pub fn unpack_to_staging(
    source: impl Read,
    layer: &Layer<'_>,
    limits: &Limits,
    filter: Option<&dyn Fn(&str) -> bool>,
    staging: &Path,
) -> Result<Unpacked> {
    unpack_source_to_staging(layer.hashed(source), layer, limits, filter, staging)
}

/// [`unpack_to_staging`] from a source that checks the layer's size and digest itself.
pub fn unpack_source_to_staging<S: LayerSource>(
    source: S,
    layer: &Layer<'_>,
    limits: &Limits,
    filter: Option<&dyn Fn(&str) -> bool>,
    staging: &Path,
) -> Result<Unpacked> {
    let (parent, name) = split(staging)?;
    let parent_dir = Dir::open(parent).map_err(|e| Error::io(parent, e))?;
    parent_dir.mkdir(name).map_err(|e| Error::io(staging, e))?;
    let result = (|| {
        let root = parent_dir.child(name).map_err(|e| Error::io(staging, e))?;
        let mut writer = Writer { root, out: Unpacked::default(), buf: vec![0u8; WRITE_BUF], direct_buf: None };
        let summary = walk(source, layer, limits, filter, &mut writer)?;
        writer.out.entries = summary.entries;
        writer.out.uncompressed = summary.stream_bytes;
        Ok(writer.out)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(staging);
    }
    result
}

/// Moves what [`unpack_to_staging`] wrote into `out` (which must exist), replacing files
/// of the same names, then removes `staging`. Refuses a symlink or a non-folder on the
/// way to any file and a folder where a file goes; folders are reached from open handles,
/// never by following a name.
pub fn place(staging: &Path, out: &Path, unpacked: &Unpacked) -> Result<()> {
    let what = |path: &str, reason: String| Error::UnsafePath {
        what: format!("output folder {}", out.display()),
        path: path.to_string(),
        reason,
    };
    let src_root = Dir::open(staging).map_err(|e| Error::io(staging, e))?;
    let out_root = Dir::open(out).map_err(|e| Error::io(out, e))?;
    for dir in &unpacked.dirs {
        out_root.descend(dir, true).map_err(|e| what(dir, e.to_string()))?;
    }
    for file in &unpacked.files {
        let (parent, name) = file.path.rsplit_once('/').unwrap_or(("", &file.path));
        let to = out_root.descend(parent, true).map_err(|e| what(&file.path, e.to_string()))?;
        match to.kind(name).map_err(|e| Error::io(to.path().join(name), e))? {
            Some(Kind::Dir) => return Err(what(&file.path, "exists in the output folder and is a folder".into())),
            Some(Kind::Other) => {
                return Err(what(&file.path, "exists in the output folder and is not a regular file".into()));
            }
            _ => {}
        }
        let from = src_root.descend(parent, false).map_err(|e| Error::io(staging.join(parent), e))?;
        from.rename(name, &to, name).map_err(|e| Error::io(to.path().join(name), e))?;
    }
    std::fs::remove_dir_all(staging).map_err(|e| Error::io(staging, e))
}

/// [`unpack_to_staging`] then [`place`]: the layer's files end up in `out` only if all of
/// it was accepted and matched its digest.
pub fn unpack(
    source: impl Read,
    layer: &Layer<'_>,
    limits: &Limits,
    filter: Option<&dyn Fn(&str) -> bool>,
    staging: &Path,
    out: &Path,
) -> Result<Unpacked> {
    let unpacked = unpack_to_staging(source, layer, limits, filter, staging)?;
    if let Err(e) = place(staging, out, &unpacked) {
        let _ = std::fs::remove_dir_all(staging);
        return Err(e);
    }
    Ok(unpacked)
}

fn split(path: &Path) -> Result<(&Path, &str)> {
    let bad = || Error::LocalFile { path: path.to_path_buf(), reason: "not a usable staging folder name".into() };
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?;
    let parent = path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p }).ok_or_else(bad)?;
    Ok((parent, name))
}

/// Size of each read from an entry and write to its file.
const WRITE_BUF: usize = 128 << 10;
/// Buffer in front of a plain `Read` source (hashed as it fills).
const SOURCE_BUF: usize = 256 << 10;

/// Each read from a large entry (written directly) fills this much before it is written.
const DIRECT_BUF: usize = 1 << 20;

/// The staging writer.
struct Writer {
    root: Dir,
    out: Unpacked,
    buf: Vec<u8>,
    /// For entries of [`DIRECT_FROM`] bytes and more, made at the first one.
    direct_buf: Option<Buffer>,
}

impl Sink for Writer {
    fn dir(&mut self, path: &str) -> Result<()> {
        self.root.descend(path, true).map_err(|e| Error::io(self.root.path().join(path), e))?;
        self.out.dirs.push(path.to_string());
        Ok(())
    }

    fn file(&mut self, path: &str, size: u64, executable: bool, data: &mut dyn Read) -> Result<()> {
        use std::io::Write;
        let dest: PathBuf = self.root.path().join(path);
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let dir = self.root.descend(parent, true).map_err(|e| Error::io(&dest, e))?;
        let mut file = dir.create_file(name, executable).map_err(|e| Error::io(&dest, e))?;
        let mut written = 0u64;
        if size >= DIRECT_FROM {
            // Whole buffers, so that every write but the last is aligned.
            let buf = self.direct_buf.get_or_insert_with(|| Buffer::new(DIRECT_BUF));
            let mut out = DirectWriter::new(file, true);
            loop {
                let space = buf.space();
                let mut filled = 0;
                while filled < space.len() {
                    match data.read(&mut space[filled..]).map_err(|e| Error::io(&dest, e))? {
                        0 => break,
                        n => filled += n,
                    }
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                out.write_all_at(buf.bytes(), written).map_err(|e| Error::io(&dest, e))?;
                written += filled as u64;
            }
        } else {
            loop {
                let n = data.read(&mut self.buf).map_err(|e| Error::io(&dest, e))?;
                if n == 0 {
                    break;
                }
                file.write_all(&self.buf[..n]).map_err(|e| Error::io(&dest, e))?;
                written += n as u64;
            }
        }
        if written != size {
            return Err(Error::SizeMismatch {
                what: format!("archive entry `{path}`"),
                expected: size,
                actual: written,
            });
        }
        self.out.files.push(ArchiveFile { path: path.to_string(), size });
        Ok(())
    }
}
