//! Archive layers (ModelPack `.tar*`, oras folders, KitOps) in `pull` and `verify`.
//!
//! `pull` streams each selected archive layer into the unpacker ([`crate::unpack`]): its
//! compressed bytes are hashed as they arrive, its entries checked and written into a
//! staging folder under `DIR/.modelsign-partial/`, and only once every archive was
//! accepted and matched its digest are the files renamed into `DIR`. `--include`
//! patterns select files inside archives too. An interrupted archive layer starts over
//! on the next pull (its bytes are not kept: the digest is checked on the stream).
//!
//! `verify --component PATH` accepts a path inside an archive: the archive layers are
//! listed (each read whole and checked against its digest; archives whose name is a
//! folder on the way to PATH first) until one holds PATH, and that layer is the component
//! checked.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::ops::components::PARTIAL_DIR;
use crate::ops::components::{self, Component};
use crate::progress::Progress;
use crate::store::Target;
use crate::unpack::{self, ArchiveFile, Compression, Layer, LayerSource, Limits, Unpacked};

/// One archive layer as pulled.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpackedArchive {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
    /// Files written into the output folder.
    pub files: Vec<ArchiveFile>,
}

/// The components `pull --include` selects when some layers are archives: raw layers by
/// their path, every archive layer (its files are selected inside it). Without archives
/// this is [`components::select`].
pub fn select(all: Vec<Component>, patterns: &[String]) -> Result<(Vec<Component>, Vec<Component>)> {
    let (archives, raw): (Vec<Component>, Vec<Component>) = all.into_iter().partition(|c| c.archive().is_some());
    if archives.is_empty() {
        return Ok((components::select(raw, patterns)?, Vec::new()));
    }
    if patterns.is_empty() {
        return Ok((raw, archives));
    }
    let set = glob_set(patterns)?;
    let raw = raw.into_iter().filter(|c| set.is_match(&c.path)).collect();
    Ok((raw, archives))
}

fn glob_set(patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        set.add(Glob::new(p).map_err(|e| Error::InvalidPattern {
            what: "pattern",
            pattern: Some(p.to_string()),
            reason: e.to_string(),
        })?);
    }
    set.build().map_err(|e| Error::InvalidPattern { what: "", pattern: None, reason: e.to_string() })
}

/// Archives unpacked into staging folders, not yet in place.
pub struct Staged {
    dir: PathBuf,
    /// Whether the resume folder was used (there were archives to stage).
    touched: bool,
    staged: Vec<(PathBuf, Component, Unpacked)>,
}

impl Staged {
    /// Renames every staged file into the output folder, archive by archive in manifest
    /// order (a file in two archives: the later one's).
    pub fn place(self) -> Result<Vec<UnpackedArchive>> {
        if !self.touched {
            return Ok(Vec::new()); // no archives: the resume folder is the file pulls' business
        }
        let mut out = Vec::new();
        let mut staged = self.staged.into_iter();
        while let Some((staging, c, unpacked)) = staged.next() {
            if let Err(e) = unpack::place(&staging, &self.dir, &unpacked) {
                let _ = std::fs::remove_dir_all(&staging);
                for (rest, _, _) in staged {
                    let _ = std::fs::remove_dir_all(rest);
                }
                return Err(e);
            }
            out.push(UnpackedArchive {
                path: c.path.clone(),
                digest: c.descriptor.digest.clone(),
                size: c.descriptor.size,
                compression: c.archive().unwrap_or(Compression::None),
                files: unpacked.files,
            });
        }
        remove_resume_folder_if_unused(&self.dir);
        Ok(out)
    }

    /// Removes every staging folder.
    pub fn discard(self) {
        if !self.touched {
            return;
        }
        for (staging, _, _) in self.staged {
            let _ = std::fs::remove_dir_all(staging);
        }
        remove_resume_folder_if_unused(&self.dir);
    }
}

/// Removes `DIR/.modelsign-partial` when it is empty and no other pull is using it. A pull
/// holds a shared lock on that folder while it works (`ops::pull`), so only a pull that can
/// lock it exclusively is the last one in it; removing it by name alone would pull it from
/// under a concurrent pull about to create its partial file there.
fn remove_resume_folder_if_unused(dir: &Path) {
    let Ok(root) = crate::local_fs::Dir::open(dir) else { return };
    let Ok(Some(resume)) = root.open_dir(PARTIAL_DIR) else { return };
    if resume.lock(true, false).unwrap_or(false) {
        let _ = root.remove_dir(PARTIAL_DIR);
    }
}

/// Downloads and unpacks `archives` into staging folders under `dir`. `patterns` (the
/// `--include` globs) select files inside an archive unless one matches the archive's
/// own name; each pattern must match something: one of `raw_paths`, an archive's name
/// or a file inside one. On any failure nothing is left behind. Crate-private: [`crate::ops::pull::pull`]
/// makes the trust decision, when asked to, before calling it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn stage(
    target: &Target,
    dir: &Path,
    archives: &[Component],
    patterns: &[String],
    raw_paths: &[String],
    limits: &Limits,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<Staged> {
    let mut staged = Staged { dir: dir.to_path_buf(), touched: !archives.is_empty(), staged: Vec::new() };
    if archives.is_empty() {
        return Ok(staged);
    }
    std::fs::create_dir_all(dir.join(PARTIAL_DIR)).map_err(|e| Error::io(dir.join(PARTIAL_DIR), e))?;
    let set = if patterns.is_empty() { None } else { Some(glob_set(patterns)?) };
    let results: Vec<Result<(PathBuf, Component, Unpacked)>> = futures_util::stream::iter(archives.iter().map(|c| {
        let whole = set.as_ref().is_none_or(|s| s.is_match(&c.path));
        let filter = if whole { None } else { set.clone() };
        let staging =
            dir.join(PARTIAL_DIR).join(format!("{}.{}.unpack", c.descriptor.digest.hex(), std::process::id()));
        async move {
            let unpacked = fetch_and_unpack(target, c, &staging, limits, filter, progress).await?;
            Ok((staging, c.clone(), unpacked))
        }
    }))
    .buffered(concurrency.max(1))
    .collect()
    .await;
    let mut failure = None;
    for r in results {
        match r {
            Ok(s) => staged.staged.push(s),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        staged.discard();
        return Err(e);
    }
    for p in patterns {
        let m = Glob::new(p)
            .map_err(|e| Error::InvalidPattern {
                what: "pattern",
                pattern: Some(p.to_string()),
                reason: e.to_string(),
            })?
            .compile_matcher();
        let hit = raw_paths.iter().any(|r| m.is_match(r))
            || staged.staged.iter().any(|(_, c, u)| m.is_match(&c.path) || u.files.iter().any(|f| m.is_match(&f.path)));
        if !hit {
            staged.discard();
            return Err(Error::NoSuchComponent {
                pattern: p.to_string(),
                reason: "matches no component and no file inside an archive layer",
            });
        }
    }
    Ok(staged)
}

/// Streams one archive layer from the target into the unpacker on a blocking thread.
async fn fetch_and_unpack(
    target: &Target,
    c: &Component,
    staging: &Path,
    limits: &Limits,
    filter: Option<GlobSet>,
    progress: &dyn Progress,
) -> Result<Unpacked> {
    let compression = c.archive().unwrap_or(Compression::None);
    let desc = c.descriptor.clone();
    let (label, limits, staging) = (c.path.clone(), *limits, staging.to_path_buf());
    stream_into(target, c, progress, move |reader| {
        let layer = Layer { desc: &desc, compression, label: &label };
        let f = filter.map(|set| move |p: &str| set.is_match(p));
        let f_ref: Option<&dyn Fn(&str) -> bool> = f.as_ref().map(|f| f as &dyn Fn(&str) -> bool);
        unpack::unpack_source_to_staging(reader, &layer, &limits, f_ref, &staging)
    })
    .await
}

/// Lists the files of one archive layer (read whole, checked against its digest).
pub async fn list_archive(
    target: &Target,
    c: &Component,
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<Unpacked> {
    let compression = c.archive().unwrap_or(Compression::None);
    let desc = c.descriptor.clone();
    let (label, limits) = (c.path.clone(), *limits);
    stream_into(target, c, progress, move |reader| {
        unpack::list_source(reader, &Layer { desc: &desc, compression, label: &label }, &limits)
    })
    .await
}

/// Chunks in flight between the network and the unpacking thread.
const CHUNKS_IN_FLIGHT: usize = 4;
const CHUNK: usize = 1 << 20;

/// Reads the layer's blob on the runtime, hashing it there, and feeds it to `work` on a
/// blocking thread through a small bounded channel: hashing overlaps with inflating and
/// writing, and memory stays at a few MiB whatever the layer. The digest and size go down
/// the channel last; the reader checks them when the unpacker finishes ([`LayerSource`]).
async fn stream_into<T: Send + 'static>(
    target: &Target,
    c: &Component,
    progress: &dyn Progress,
    work: impl FnOnce(ChannelReader) -> Result<T> + Send + 'static,
) -> Result<T> {
    let d = &c.descriptor;
    let what = format!("component `{}` from {}", c.path, target.describe());
    let mut reader = target.fetch_blob(d, 0).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(CHUNKS_IN_FLIGHT);
    let label = format!("layer {} ({})", d.digest, c.path);
    let size = d.size;
    let worker = tokio::task::spawn_blocking(move || {
        work(ChannelReader { rx, current: Vec::new(), pos: 0, end: None, size, what: label })
    });
    progress.start(&d.digest, &c.path, d.size);
    let mut hasher = Hasher::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut n = 0;
        let mut failed = None;
        while n < CHUNK {
            match reader.read(&mut chunk[n..]).await {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            let _ = tx.send(Msg::Failed(std::io::Error::other(Error::io(&what, e)))).await;
            break;
        }
        if n == 0 {
            let _ = tx.send(Msg::End(hasher.clone().finish(), hasher.len())).await;
            break;
        }
        chunk.truncate(n);
        hasher.update(&chunk);
        if hasher.len() > d.size {
            let e = Error::SizeMismatch { what: what.clone(), expected: d.size, actual: hasher.len() };
            let _ = tx.send(Msg::Failed(std::io::Error::other(e))).await;
            break;
        }
        if tx.send(Msg::Data(chunk)).await.is_err() {
            break; // the worker stopped (refused the archive); its error is reported below
        }
        progress.advance(&d.digest, n as u64);
    }
    drop(tx);
    let result = worker.await.map_err(|e| Error::Internal(format!("{what}: the unpacking thread failed: {e}")))?;
    progress.finish(&d.digest);
    result
}

/// What goes from the network side to the unpacking thread.
enum Msg {
    Data(Vec<u8>),
    /// The blob ended: the digest and size of everything sent.
    End(Digest, u64),
    Failed(std::io::Error),
}

/// A `Read` over chunks sent (and hashed) by the async side.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Msg>,
    current: Vec<u8>,
    pos: usize,
    end: Option<(Digest, u64)>,
    size: u64,
    what: String,
}

impl LayerSource for ChannelReader {
    fn finish(mut self, expected: &Digest) -> Result<u64> {
        let mut buf = vec![0u8; 64 << 10];
        while self.read(&mut buf).map_err(|e| Error::io(&self.what, e))? > 0 {}
        let Some((actual, len)) = self.end.take() else {
            return Err(Error::Internal(format!("{}: the download stopped before the end", self.what)));
        };
        if len != self.size {
            return Err(Error::SizeMismatch { what: self.what, expected: self.size, actual: len });
        }
        if &actual != expected {
            return Err(Error::DigestMismatch { what: self.what, expected: expected.clone(), actual });
        }
        Ok(len)
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            if self.end.is_some() {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Data(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Some(Msg::End(digest, len)) => self.end = Some((digest, len)),
                Some(Msg::Failed(e)) => return Err(e),
                // The sender went away without an end: a cut transfer, never a clean end.
                None => return Err(std::io::Error::other(format!("{}: the download stopped", self.what))),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The components `verify --component` names: a component's path, or a path inside an
/// archive layer (that layer is then the component checked). Archive layers are listed
/// only when a path is no component, those whose name is a folder on the way first.
pub async fn pick_components(
    target: &Target,
    all: &[Component],
    paths: &[String],
    limits: &Limits,
    progress: &dyn Progress,
) -> Result<Vec<Component>> {
    if paths.is_empty() {
        return Ok(all.to_vec());
    }
    let mut listings: HashMap<Digest, Unpacked> = HashMap::new();
    let mut out = Vec::new();
    for p in paths {
        if let Some(c) = all.iter().find(|c| &c.path == p) {
            out.push(c.clone());
            continue;
        }
        let mut archives: Vec<&Component> = all.iter().filter(|c| c.archive().is_some()).collect();
        archives.sort_by_key(|c| !p.starts_with(&format!("{}/", c.path)));
        let mut found = None;
        for c in archives {
            if !listings.contains_key(&c.descriptor.digest) {
                let listing = list_archive(target, c, limits, progress).await?;
                listings.insert(c.descriptor.digest.clone(), listing);
            }
            if listings[&c.descriptor.digest].files.iter().any(|f| &f.path == p) {
                found = Some(c.clone());
                break;
            }
        }
        let c = found.ok_or_else(|| Error::NoSuchComponent {
            pattern: p.to_string(),
            reason: "is not a component of the model nor a file in one of its archive layers",
        })?;
        progress
            .note(&format!("`{p}` is in archive layer `{}` ({}): checking that layer", c.path, c.descriptor.digest));
        out.push(c);
    }
    Ok(out)
}
