//! `pull`: writes selected components of a model into a folder. Every byte is checked
//! against the layer's size and digest while it streams into a partial file under
//! `DIR/.modelsign-partial/`; only a file that matched is renamed into place. A pull cut
//! short keeps its partial file and the next pull resumes it with a Range request.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::folder;
use crate::oci::Descriptor;
use crate::progress::{Progress, Skipped};
use crate::store::Target;

use super::components::Component;

/// The folder, under the output folder, that holds downloads in progress.
pub const PARTIAL_DIR: &str = ".modelsign-partial";
const ATTEMPTS: u32 = 4;

/// One component as pulled.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PulledComponent {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
    /// False when the file was already there with the right digest.
    pub downloaded: bool,
}

/// What `pull` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReport {
    pub reference: String,
    pub digest: Digest,
    pub output: PathBuf,
    pub components: Vec<PulledComponent>,
    pub bytes_downloaded: u64,
    /// The trust decision, when the pull was asked to verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<PullVerification>,
}

/// What a verified pull decided and wrote beside the components.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullVerification {
    pub decision: crate::ops::verify::Decision,
    /// `DIR/model.sig`, when written (a complete pull with a trusted OMS signature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_file: Option<PathBuf>,
    /// Why `model.sig` was not written, if it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_note: Option<String>,
}

/// Refuses to write `path` under `dir` if an existing part of it is a symlink or not a folder.
fn check_no_symlink(dir: &Path, path: &str) -> Result<()> {
    let mut current = dir.to_path_buf();
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        current.push(part);
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::UnsafePath {
                    what: format!("output folder {}", dir.display()),
                    path: path.to_string(),
                    reason: format!("`{}` is a symlink; refusing to write through it", current.display()),
                });
            }
            Ok(m) if i + 1 < parts.len() && !m.is_dir() => {
                return Err(Error::UnsafePath {
                    what: format!("output folder {}", dir.display()),
                    path: path.to_string(),
                    reason: format!("`{}` exists and is not a folder", current.display()),
                });
            }
            Ok(m) if i + 1 == parts.len() && m.is_dir() => {
                return Err(Error::UnsafePath {
                    what: format!("output folder {}", dir.display()),
                    path: path.to_string(),
                    reason: format!("`{}` exists and is a folder", current.display()),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io(&current, e)),
        }
    }
    Ok(())
}

/// Whether `dest` already holds exactly the component's bytes.
fn up_to_date(dest: &Path, desc: &Descriptor) -> Result<bool> {
    match std::fs::metadata(dest) {
        Ok(m) if m.is_file() && m.len() == desc.size => Ok(folder::hash_file(dest, None)?.0 == desc.digest),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(dest, e)),
    }
}

/// Writes `components` of the model into `dir`. All paths are checked before anything is written.
pub async fn pull_components(
    target: &Target,
    dir: &Path,
    components: &[Component],
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<Vec<PulledComponent>> {
    for c in components {
        check_no_symlink(dir, &c.path)?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let partial_dir = dir.join(PARTIAL_DIR);

    // One download per digest; components sharing content are copied from it.
    let mut by_digest: BTreeMap<Digest, Vec<&Component>> = BTreeMap::new();
    for c in components {
        by_digest.entry(c.descriptor.digest.clone()).or_default().push(c);
    }
    let results: Result<Vec<Vec<PulledComponent>>> = futures_util::stream::iter(by_digest.into_values().map(|group| {
        let partial_dir = partial_dir.clone();
        async move { pull_group(target, dir, &partial_dir, &group, progress).await }
    }))
    .buffer_unordered(concurrency.max(1))
    .try_collect()
    .await;
    // Leave no empty bookkeeping folder behind (it stays when it holds a resumable download).
    let _ = std::fs::remove_dir(&partial_dir);
    let results: Vec<Vec<PulledComponent>> = results?;
    let mut out: Vec<PulledComponent> = results.into_iter().flatten().collect();
    out.sort_by(|a, b| folder::component_order(&a.path, &b.path));
    Ok(out)
}

async fn pull_group(
    target: &Target,
    dir: &Path,
    partial_dir: &Path,
    group: &[&Component],
    progress: &dyn Progress,
) -> Result<Vec<PulledComponent>> {
    let desc = &group[0].descriptor;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for c in group {
        let dest = dir.join(&c.path);
        if up_to_date(&dest, desc)? {
            progress.skip(&desc.digest, &c.path, desc.size, Skipped::UpToDate);
            out.push(PulledComponent {
                path: c.path.clone(),
                digest: desc.digest.clone(),
                size: desc.size,
                downloaded: false,
            });
        } else {
            missing.push((*c, dest));
        }
    }
    let Some((first, _)) = missing.first() else { return Ok(out) };
    let partial = partial_dir.join(desc.digest.hex());
    let _lock = lock_partial(partial_dir, &partial, &first.path, progress).await?;
    // Another pull into this folder may have put them in place while we waited.
    let mut still_missing = Vec::new();
    for (c, dest) in missing {
        if up_to_date(&dest, desc)? {
            progress.skip(&desc.digest, &c.path, desc.size, Skipped::UpToDate);
            out.push(PulledComponent {
                path: c.path.clone(),
                digest: desc.digest.clone(),
                size: desc.size,
                downloaded: false,
            });
        } else {
            still_missing.push((c, dest));
        }
    }
    let missing = still_missing;
    let Some(((first, first_dest), rest)) = missing.split_first() else {
        let _ = std::fs::remove_file(&partial);
        return Ok(out);
    };
    if let Err(e) = download(target, desc, &first.path, &partial, progress).await {
        // Keep what can be resumed, nothing else.
        if std::fs::metadata(&partial).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(&partial);
        }
        return Err(e);
    }
    for (c, dest) in rest {
        let copy = partial_dir.join(format!("{}.copy", desc.digest.hex()));
        std::fs::copy(&partial, &copy).map_err(|e| Error::io(&copy, e))?;
        place(&copy, dir, &c.path, dest)?;
    }
    place(&partial, dir, &first.path, first_dest)?;
    for (c, _) in &missing {
        out.push(PulledComponent {
            path: c.path.clone(),
            digest: desc.digest.clone(),
            size: desc.size,
            downloaded: true,
        });
    }
    Ok(out)
}

/// The exclusive lock on a blob's partial file, held while it is downloaded and put in
/// place: two pulls into the same folder (two processes) must not append to the same
/// partial file, or each would check its own bytes and rename a mix of both into place.
struct PartialLock {
    _file: std::fs::File,
}

/// Creates (or opens) `partial` and locks it, waiting while another pull holds it. The
/// holder before us may have renamed or deleted the file: only the file still at the path
/// counts, else we start over.
async fn lock_partial(partial_dir: &Path, partial: &Path, label: &str, progress: &dyn Progress) -> Result<PartialLock> {
    let mut noted = false;
    loop {
        std::fs::create_dir_all(partial_dir).map_err(|e| Error::io(partial_dir, e))?;
        let file = match std::fs::OpenOptions::new().create(true).append(true).open(partial) {
            Ok(f) => f,
            // The folder was removed by a pull that finished meanwhile: make it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(partial, e)),
        };
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if !noted {
                        progress.note(&format!("{label}: waiting for another pull into the same folder"));
                        noted = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(partial, e)),
            }
        }
        if is_file_at(&file, partial) {
            return Ok(PartialLock { _file: file });
        }
    }
}

/// Whether `path` still names the open `file`.
fn is_file_at(file: &std::fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        // Elsewhere an open file cannot be renamed or deleted: it is still there.
        let _ = file;
        path.exists()
    }
}

/// Renames a checked file into place, re-checking the path just before.
fn place(from: &Path, dir: &Path, path: &str, dest: &Path) -> Result<()> {
    check_no_symlink(dir, path)?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::rename(from, dest).map_err(|e| Error::io(dest, e))
}

/// Downloads a blob into `partial`, resuming what is already there, and returns once the
/// file holds exactly the blob. A digest or size mismatch deletes the partial file; a
/// transfer error keeps it for the next attempt.
pub async fn download(
    target: &Target,
    desc: &Descriptor,
    label: &str,
    partial: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let mut hasher = Hasher::new();
    let mut offset = match std::fs::metadata(partial) {
        Ok(m) if m.len() <= desc.size => m.len(),
        Ok(_) => {
            std::fs::remove_file(partial).map_err(|e| Error::io(partial, e))?;
            0
        }
        Err(_) => 0,
    };
    if offset > 0 {
        // Resume: the bytes already there count toward the digest.
        let mut f = std::fs::File::open(partial).map_err(|e| Error::io(partial, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(partial, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        offset = hasher.len();
    }
    if offset == 0 {
        // Start from an empty file (an empty blob needs one too).
        std::fs::File::create(partial).map_err(|e| Error::io(partial, e))?;
    }
    progress.start(&desc.digest, label, desc.size);
    progress.restart(&desc.digest, offset);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match transfer(target, desc, label, partial, &mut hasher, progress).await {
            Ok(()) => break,
            Err(e @ (Error::DigestMismatch { .. } | Error::SizeMismatch { .. })) => {
                let _ = std::fs::remove_file(partial);
                return Err(e);
            }
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                progress.note(&format!("{label}: {e}; resuming at byte {}", hasher.len()));
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
    let actual = hasher.clone().finish();
    if hasher.len() != desc.size {
        let _ = std::fs::remove_file(partial);
        return Err(Error::SizeMismatch { what: label.to_string(), expected: desc.size, actual: hasher.len() });
    }
    if actual != desc.digest {
        let _ = std::fs::remove_file(partial);
        return Err(Error::DigestMismatch { what: label.to_string(), expected: desc.digest.clone(), actual });
    }
    progress.finish(&desc.digest);
    Ok(())
}

fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Io { .. } | Error::Unreachable { .. } | Error::Registry { status: 500.., .. })
}

/// Bytes read from the network before they are handed to the writer.
const CHUNK: usize = 1 << 20;
/// Size of each `write` to the partial file.
const WRITE_PIECE: usize = 32 << 10;
/// Chunks in flight between the network and the writer, per download.
const CHUNKS_IN_FLIGHT: usize = 2;

/// One attempt: appends from `hasher.len()` to the end of the blob.
///
/// The network is read on the async runtime; writing and hashing happen on a blocking
/// thread fed through a small bounded channel, so the two overlap and memory stays at a
/// few MiB per download. On any error the hasher still matches the bytes in the file.
async fn transfer(
    target: &Target,
    desc: &Descriptor,
    label: &str,
    partial: &Path,
    hasher: &mut Hasher,
    progress: &dyn Progress,
) -> Result<()> {
    let offset = hasher.len();
    if offset == desc.size {
        return Ok(());
    }
    let mut reader = target.fetch_blob(desc, offset).await.map_err(|e| match e {
        Error::NotFound { target, what } => Error::NotFound { target, what: format!("{what} ({label})") },
        other => other,
    })?;
    let file =
        std::fs::OpenOptions::new().create(true).append(true).open(partial).map_err(|e| Error::io(partial, e))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    // Buffers go round between reader and writer instead of being allocated per chunk, so
    // the allocator never hands pages back to the kernel only to fault them in again.
    let (free_tx, mut free_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT + 1);
    for _ in 0..CHUNKS_IN_FLIGHT + 1 {
        free_tx.try_send(vec![0u8; CHUNK]).expect("the pool has room for every buffer");
    }
    let mut writer_hasher = std::mem::take(hasher);
    let path = partial.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || {
        let mut file = file;
        while let Some(chunk) = rx.blocking_recv() {
            // Written in small pieces: with a large page cache, 1 MiB writes cost 2-3x the
            // kernel time of 32 KiB ones here (measured: 1.6-2.5 s vs 0.7-0.8 s per GiB).
            for piece in chunk.chunks(WRITE_PIECE) {
                if let Err(e) = file.write_all(piece) {
                    return (writer_hasher, Err(Error::io(&path, e)));
                }
            }
            writer_hasher.update(&chunk);
            let _ = free_tx.blocking_send(chunk);
        }
        (writer_hasher, Ok(()))
    });
    let mut received = offset;
    let read_result: Result<()> = async {
        loop {
            let Some(mut chunk) = free_rx.recv().await else { return Ok(()) };
            chunk.resize(CHUNK, 0);
            let mut filled = 0;
            let mut read_error = None;
            while filled < CHUNK {
                match reader.read(&mut chunk[filled..]).await {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        read_error = Some(Error::io(format!("{label} from {}", target.describe()), e));
                        break;
                    }
                }
            }
            if filled == 0 {
                return read_error.map_or(Ok(()), Err);
            }
            received += filled as u64;
            if received > desc.size {
                return Err(Error::SizeMismatch { what: label.to_string(), expected: desc.size, actual: received });
            }
            chunk.truncate(filled);
            if tx.send(chunk).await.is_err() {
                return Ok(()); // the writer failed; its error is reported below
            }
            progress.advance(&desc.digest, filled as u64);
            // What arrived before a cut is kept: the next attempt resumes after it.
            if let Some(e) = read_error {
                return Err(e);
            }
        }
    }
    .await;
    drop(tx);
    let (writer_hasher, write_result) =
        writer.await.map_err(|e| Error::InvalidInput(format!("{label}: the writer thread failed: {e}")))?;
    *hasher = writer_hasher;
    write_result?;
    read_result
}

/// Pulls the model `reference` names into `dir`: the components matching `include` (all
/// when empty). With `trust`, the trust decision runs first and **nothing is written**
/// unless it passes; then a complete pull gets the trusted OMS signature written as
/// `DIR/model.sig`, so `model_signing verify` can check the folder.
pub async fn pull(
    target: &Target,
    reference: &crate::reference::Reference,
    dir: &Path,
    include: &[String],
    trust: Option<&crate::ops::verify::Trust>,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<PullReport> {
    use crate::ops::{components, verify};
    let (desc, manifest) = crate::ops::model::fetch_model_manifest(target, &reference.selector()).await?;
    let what = format!("{reference} ({})", desc.digest);
    let all = components::components(&manifest, &what)?;
    let selected = components::select(all.clone(), include)?;
    let decision = match trust {
        None => None,
        Some(trust) => {
            let decision = verify::decide(target, &desc, &all, &selected, trust).await?;
            if let Some(reason) = &decision.failure {
                return Err(Error::Verification(format!("{reference}: {reason}; nothing was written")));
            }
            Some(decision)
        }
    };
    let pulled = pull_components(target, dir, &selected, concurrency, progress).await?;
    let verification = match decision {
        None => None,
        Some(decision) => {
            let complete = selected.len() == all.len();
            let (signature_file, signature_note) = match (decision.oms_bundle(), complete) {
                (Some(bundle), true) => {
                    let path = dir.join(crate::sign::local::SIGNATURE_FILE);
                    crate::atomic_file::write(&path, bundle)?;
                    (Some(path), None)
                }
                (Some(_), false) => (None, Some("--include pulled only part of the model".to_string())),
                (None, _) => (None, Some("no trusted OMS signature (only manifest signatures)".to_string())),
            };
            Some(PullVerification { decision, signature_file, signature_note })
        }
    };
    Ok(PullReport {
        reference: reference.to_string(),
        digest: desc.digest,
        output: dir.to_path_buf(),
        bytes_downloaded: pulled.iter().filter(|c| c.downloaded).map(|c| c.size).sum(),
        components: pulled,
        verification,
    })
}

#[cfg(test)]
mod entry_tests;
