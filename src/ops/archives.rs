//! Archive layers (ModelPack `.tar*`, oras folders, KitOps) in `pull` and `verify`.
//!
//! `pull` streams each selected archive layer into the unpacker ([`crate::unpack`]): its
//! compressed bytes are hashed as they arrive, its entries checked and written into a
//! staging folder under `DIR/.modelsign-partial/`, and only once every archive was
//! accepted and matched its digest are the files renamed into `DIR`. `--include`
//! patterns select files inside archives too. A download cut mid-layer is resumed within
//! the pull with a Range request (`stream`); a pull that fails or is killed keeps no
//! bytes of an archive layer, and the next pull removes what a killed one left and starts
//! that layer over.
//!
//! `verify --component PATH` accepts a path inside an archive: the archive layers are
//! listed (each read whole and checked against its digest; archives whose name is a
//! folder on the way to PATH first) until one holds PATH, and that layer is the component
//! checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::ops::components::PARTIAL_DIR;
use crate::ops::components::{self, Component};
use crate::progress::Progress;
use crate::store::Target;
use crate::unpack::{self, ArchiveFile, Compression, Layer, Limits, Unpacked};

mod stream;
use stream::stream_into;

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
    /// This pull's folder of staging folders (none when there were no archives).
    own: Option<OwnStaging>,
    staged: Vec<(PathBuf, Component, Unpacked)>,
}

impl Staged {
    /// Renames every staged file into the output folder, archive by archive in manifest
    /// order (a file in two archives: the later one's).
    pub fn place(mut self) -> Result<Vec<UnpackedArchive>> {
        let Some(own) = self.own.take() else {
            return Ok(Vec::new()); // no archives: the resume folder is the file pulls' business
        };
        let mut out = Vec::new();
        for (staging, c, unpacked) in std::mem::take(&mut self.staged) {
            if let Err(e) = unpack::place(&staging, &self.dir, &unpacked) {
                own.remove(&self.dir);
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
        own.remove(&self.dir);
        Ok(out)
    }

    /// Removes every staging folder.
    pub fn discard(self) {
        drop(self);
    }
}

/// Staged archives dropped unplaced (an early return, a panic) are removed as by `discard`.
impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(own) = self.own.take() {
            own.remove(&self.dir);
        }
    }
}

/// `DIR/.modelsign-partial/unpack.<pid>.<random>`: the folder of one pull's staging
/// folders, locked (`flock`) while the pull lives. A pull that was killed leaves its folder
/// unlocked, and the next pull into `DIR` with archive layers removes it
/// ([`OwnStaging::create`]).
struct OwnStaging {
    dir: crate::local_fs::Dir,
    /// The resume folder, share-locked as every pull holds it while it works.
    resume: crate::local_fs::Dir,
}

const OWN_PREFIX: &str = "unpack.";

impl OwnStaging {
    /// Opens the resume folder as file pulls do (private, shared-locked), removes what
    /// killed pulls left there, then makes and locks this pull's folder.
    fn create(out: &Path) -> Result<OwnStaging> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        let root = crate::local_fs::Dir::open(out).map_err(|e| Error::io(out, e))?;
        let resume = components::open_resume_folder(&root)?;
        sweep(&resume);
        // A sweeping pull may remove our folder before we lock it: then another name.
        for _ in 0..3 {
            let name = format!("{OWN_PREFIX}{}.{:016x}", std::process::id(), fastrand::u64(..));
            let (dir, created) = resume.create_dir(&name, 0o700)?;
            if !created {
                continue; // a random name taken: another one
            }
            dir.lock(true, true).map_err(|e| Error::io(dir.path(), e))?;
            if dir.is_linked().map_err(|e| Error::io(dir.path(), e))? {
                return Ok(OwnStaging { dir, resume });
            }
        }
        Err(Error::io(
            resume.path(),
            std::io::Error::other("staging folders removed by another pull as they were made"),
        ))
    }

    /// Where the `i`th archive layer is staged.
    fn staging(&self, i: usize, c: &Component) -> PathBuf {
        self.dir.path().join(format!("{i}.{}", c.descriptor.digest.hex()))
    }

    /// Removes the folder (what is left in it), then the resume folder if no one uses it.
    fn remove(self, out: &Path) {
        let _ = std::fs::remove_dir_all(self.dir.path());
        // The locks go after the folder.
        drop(self.dir);
        drop(self.resume);
        remove_resume_folder_if_unused(out);
    }
}

/// Removes the staging folders of pulls that were killed: those no live pull holds locked.
fn sweep(resume: &crate::local_fs::Dir) {
    let Ok(entries) = std::fs::read_dir(resume.path()) else { return };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        if !name.starts_with(OWN_PREFIX) {
            continue;
        }
        let Ok(Some(dir)) = resume.open_dir(&name) else { continue };
        if dir.lock(true, false).unwrap_or(false) {
            let _ = std::fs::remove_dir_all(resume.child_path(&name));
        }
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
    let mut staged = Staged { dir: dir.to_path_buf(), own: None, staged: Vec::new() };
    if archives.is_empty() {
        return Ok(staged);
    }
    let set = if patterns.is_empty() { None } else { Some(glob_set(patterns)?) };
    let own = {
        let dir = dir.to_path_buf();
        crate::blocking::run("the staging folder", move || OwnStaging::create(&dir)).await?
    };
    let stagings: Vec<PathBuf> = archives.iter().enumerate().map(|(i, c)| own.staging(i, c)).collect();
    staged.own = Some(own);
    let results: Vec<Result<(PathBuf, Component, Unpacked)>> =
        futures_util::stream::iter(archives.iter().zip(stagings).map(|(c, staging)| {
            let whole = set.as_ref().is_none_or(|s| s.is_match(&c.path));
            let filter = if whole { None } else { set.clone() };
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
