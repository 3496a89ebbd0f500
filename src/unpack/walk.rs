//! Reads one archive layer from start to end: decompresses it, checks every entry (name,
//! type, size, repeats) against the rules and the caps, hands the accepted ones to a
//! sink, and checks the layer's size and digest on the compressed bytes at the end.

use std::collections::HashMap;
use std::io::Read;

use crate::component_path::unsafe_path_reason;
use crate::error::{Error, Result};

use super::readers::{CappedReader, LayerSource};
use super::{Compression, Layer, Limits, RESERVED_NAMES};

/// Where accepted entries go (a staging folder, or nowhere when only listing).
pub(super) trait Sink {
    fn dir(&mut self, path: &str) -> Result<()>;
    fn file(&mut self, path: &str, size: u64, executable: bool, data: &mut dyn Read) -> Result<()>;
}

/// What one pass over an archive saw.
#[derive(Debug, Default)]
pub(super) struct Summary {
    /// Entries read (headers), files and folders alike.
    pub entries: u64,
    /// Bytes of all regular files in the archive.
    pub file_bytes: u64,
    /// Bytes that came out of the decompressor (the tar stream).
    pub stream_bytes: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    Dir,
    File,
}

/// Reads the whole layer through `sink`. Returns only if every entry was accepted, the
/// archive ended cleanly and the compressed bytes matched the layer's size and digest.
pub(super) fn walk<S: LayerSource>(
    hashing: S,
    layer: &Layer<'_>,
    limits: &Limits,
    filter: Option<&dyn Fn(&str) -> bool>,
    sink: &mut dyn Sink,
) -> Result<Summary> {
    let what = layer.what();
    let (cap, why) = limits.stream_cap_and_why(layer.desc.size);
    // The tar reader reads the source in place when the layer is plain, the decompressor
    // does when it is not: no buffer between them (each would be one more copy).
    let (result, mut hashing) = match layer.compression {
        Compression::None => {
            let mut capped = CappedReader::new(hashing, cap, &what, why);
            let result = read_archive(&mut capped, &what, limits, filter, sink);
            (result, capped.into_inner())
        }
        Compression::Gzip => {
            let mut capped = CappedReader::new(flate2::bufread::MultiGzDecoder::new(hashing), cap, &what, why);
            let result = read_archive(&mut capped, &what, limits, filter, sink);
            (result, capped.into_inner().into_inner())
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(hashing).map_err(|e| Error::io(&what, e))?;
            let mut capped = CappedReader::new(decoder, cap, &what, why);
            let result = read_archive(&mut capped, &what, limits, filter, sink);
            (result, capped.into_inner().finish())
        }
    };
    match result {
        Ok(summary) => {
            hashing.finish(&layer.desc.digest)?;
            Ok(summary)
        }
        // Bytes that do not decompress or parse are most often bytes that changed on the
        // way: the rest of the layer (at most its declared size) is read to tell which.
        Err(e @ Error::InvalidContent { .. }) if e.to_string().contains(NOT_AN_ARCHIVE) => {
            hashing.finish(&layer.desc.digest)?;
            Err(e)
        }
        Err(e) => Err(hashing.take_failure().unwrap_or(e)),
    }
}

const NOT_AN_ARCHIVE: &str = "not a valid archive";

/// The tar part: every entry checked, then the rest of the stream must be zero padding.
fn read_archive<R: Read>(
    capped: &mut CappedReader<R>,
    what: &str,
    limits: &Limits,
    filter: Option<&dyn Fn(&str) -> bool>,
    sink: &mut dyn Sink,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    {
        let mut archive = tar::Archive::new(&mut *capped);
        let entries = archive.entries().map_err(|e| Error::io(what, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad_archive(what, e))?;
            let kind = entry.header().entry_type();
            if kind.is_pax_global_extensions() {
                continue; // a comment (git archive writes one); tar readers apply none of it here
            }
            summary.entries += 1;
            if summary.entries > limits.max_entries {
                return Err(invalid(
                    what,
                    format!(
                        "more than {} entries (the entry cap; raise it with {})",
                        limits.max_entries,
                        super::flags::ENTRIES
                    ),
                ));
            }
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let unsafe_entry =
                |reason: String| Error::UnsafePath { what: what.to_string(), path: shown.clone(), reason };
            let path = match entry_path(&raw) {
                Ok(Some(p)) => p,
                Ok(None) if kind.is_dir() => continue, // `./`: the output folder itself
                Ok(None) => return Err(unsafe_entry("names the output folder itself".into())),
                Err(reason) => return Err(unsafe_entry(reason.into())),
            };
            let is_file = kind.is_file() || kind.is_contiguous();
            if !is_file && !kind.is_dir() {
                return Err(unsafe_entry(refused_type(kind).into()));
            }
            if is_file && sparse(&mut entry).map_err(|e| bad_archive(what, e))? {
                return Err(unsafe_entry("sparse entries are refused".into()));
            }
            record(&mut seen, &path, if is_file { Seen::File } else { Seen::Dir }).map_err(unsafe_entry)?;
            if !is_file {
                if filter.is_none() {
                    sink.dir(&path)?;
                }
                continue;
            }
            let size = entry.size();
            if size > limits.max_entry_size {
                return Err(invalid(
                    what,
                    format!(
                        "entry `{shown}`: {size} bytes is more than the single-file cap ({} bytes; raise it with {})",
                        limits.max_entry_size,
                        super::flags::ENTRY_SIZE
                    ),
                ));
            }
            summary.file_bytes = summary.file_bytes.saturating_add(size);
            if summary.file_bytes > limits.max_total_size {
                return Err(invalid(
                    what,
                    format!(
                        "its files add up to more than {} bytes (the total size cap; raise it with {})",
                        limits.max_total_size,
                        super::flags::TOTAL
                    ),
                ));
            }
            if filter.is_none_or(|f| f(&path)) {
                let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                sink.file(&path, size, executable, &mut EntryReader { inner: &mut entry, what })?;
            }
        }
    }
    // After the end-of-archive blocks only zero padding may follow: data there would be a
    // second archive that other readers (`tar -i`) unpack and this one never checked.
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = capped.read(&mut buf).map_err(|e| bad_archive(what, e))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(invalid(what, "data after the end of the archive".into()));
        }
    }
    summary.stream_bytes = capped.count();
    Ok(summary)
}

/// Notes a path and its folders; refuses a repeated file, or a name that is a file and a folder.
fn record(seen: &mut HashMap<String, Seen>, path: &str, kind: Seen) -> std::result::Result<(), String> {
    for (i, _) in path.match_indices('/') {
        let parent = &path[..i];
        match seen.get(parent) {
            Some(Seen::File) => return Err(format!("`{parent}` is both a file and a folder in the archive")),
            Some(Seen::Dir) => {}
            None => {
                seen.insert(parent.to_string(), Seen::Dir);
            }
        }
    }
    match (seen.get(path), kind) {
        (None, _) => {
            seen.insert(path.to_string(), kind);
            Ok(())
        }
        (Some(Seen::Dir), Seen::Dir) => Ok(()),
        (Some(Seen::File), Seen::File) => Err("repeats an earlier entry of the archive".into()),
        _ => Err("is both a file and a folder in the archive".into()),
    }
}

/// The entry's path relative to the output folder: `./` prefixes and a trailing `/`
/// dropped; `None` for the archive's root folder itself. Refuses what may not be written.
pub(super) fn entry_path(raw: &[u8]) -> std::result::Result<Option<String>, &'static str> {
    let s = std::str::from_utf8(raw).map_err(|_| "not UTF-8")?;
    if s.len() > 4096 {
        return Err("longer than 4096 bytes");
    }
    let mut p = s;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.is_empty() || p == "." {
        return if s.starts_with('/') { Err("absolute path") } else { Ok(None) };
    }
    if let Some(reason) = unsafe_path_reason(p) {
        return Err(reason);
    }
    let first = p.split('/').next().unwrap_or(p);
    if RESERVED_NAMES.contains(&first) {
        return Err("uses a name modelsign keeps for itself");
    }
    Ok(Some(p.to_string()))
}

fn refused_type(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symlinks are refused (even ones pointing inside the archive)",
        tar::EntryType::Link => "hard links are refused (even ones pointing inside the archive)",
        tar::EntryType::Char | tar::EntryType::Block => "device entries are refused",
        tar::EntryType::Fifo => "FIFO entries are refused",
        tar::EntryType::GNUSparse => "sparse entries are refused",
        _ => "entries of this type are refused (only files and folders are unpacked)",
    }
}

/// Whether an entry is a sparse file (GNU `S` or PAX `GNU.sparse.*` records).
fn sparse<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<bool> {
    if entry.header().entry_type() == tar::EntryType::GNUSparse {
        return Ok(true);
    }
    let Some(pax) = entry.pax_extensions()? else { return Ok(false) };
    for ext in pax {
        if ext?.key_bytes().starts_with(b"GNU.sparse.") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// An entry's bytes; a read error that is not already typed (a cap, a size) means the
/// archive is broken, and says so.
struct EntryReader<'a> {
    inner: &'a mut dyn Read,
    what: &'a str,
}

impl Read for EntryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| std::io::Error::other(bad_archive(self.what, e)))
    }
}

fn invalid(what: &str, reason: String) -> Error {
    Error::InvalidContent { what: what.to_string(), reason }
}

/// A read error while walking: a typed error from a reader (cap, size) as itself,
/// anything else as a malformed archive.
fn bad_archive(what: &str, e: std::io::Error) -> Error {
    match Error::io(what, e) {
        Error::Io { source, .. } => invalid(what, format!("{NOT_AN_ARCHIVE}: {source}")),
        typed => typed,
    }
}
