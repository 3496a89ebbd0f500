//! `pull`: writes selected components of a model into a folder. Every byte is checked
//! against the layer's size and digest while it streams into a partial file under
//! `DIR/.modelsign-partial/`; only a file that matched is renamed into place. A pull cut
//! short keeps its partial file and the next pull resumes it with a Range request.
//!
//! Three steps with their own modules: `output` checks the paths and opens the output
//! and resume folders (descriptors only, no symlink followed), `partial` downloads and
//! checks a blob into its locked partial file, and `output::OutputDir::place` renames
//! the checked file into place.

mod output;
mod partial;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::folder;
use crate::progress::{Progress, Skipped};
use crate::store::Target;

use super::components::Component;
use output::OutputDir;
use partial::download;

/// The folder, under the output folder, that holds downloads in progress.
pub use super::components::PARTIAL_DIR;

/// One component as pulled.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PulledComponent {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
    /// False when the file was already there with the right digest.
    pub downloaded: bool,
    /// Bytes of it an earlier, interrupted pull had kept, not downloaded again.
    #[serde(skip_serializing_if = "is_zero")]
    pub resumed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What `pull` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReport {
    pub reference: String,
    pub digest: Digest,
    pub output: PathBuf,
    pub components: Vec<PulledComponent>,
    /// Bytes received from the registry (the bytes resumed are not counted).
    pub bytes_downloaded: u64,
    /// Bytes of components already in the folder with the right digest: not downloaded.
    pub bytes_present: u64,
    /// Bytes an earlier, interrupted pull had kept: not downloaded again.
    pub bytes_resumed: u64,
    /// Archive layers unpacked into the folder (FORMAT.md §7).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub archives: Vec<crate::ops::archives::UnpackedArchive>,
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

/// Writes `components` of the model into `dir`. All paths are checked before anything is
/// written; a failed pull leaves no folder it created and no empty partial file behind.
/// Private: [`pull`] makes the trust decision, when asked to, before calling it.
async fn pull_components(
    target: &Target,
    dir: &Path,
    components: &[Component],
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<Vec<PulledComponent>> {
    // Opening checks every path on disk and may wait for the resume folder's lock.
    let output = {
        let (dir, components) = (dir.to_path_buf(), components.to_vec());
        Arc::new(crate::blocking::run("the output folder", move || OutputDir::open(&dir, &components)).await?)
    };
    // One download per digest; components sharing content are copied from it.
    let mut by_digest: BTreeMap<Digest, Vec<&Component>> = BTreeMap::new();
    for c in components {
        by_digest.entry(c.descriptor.digest.clone()).or_default().push(c);
    }
    let output_ref = &output;
    let slots = crate::ops::slots::Slots::new(concurrency);
    let slots = &slots;
    let results: Vec<Vec<PulledComponent>> =
        futures_util::stream::iter(by_digest.into_values().map(|group| async move {
            let _slot = slots.take(group[0].descriptor.size).await;
            pull_group(target, output_ref, &group, progress).await
        }))
        .buffer_unordered(slots.most())
        .try_collect()
        .await?;
    output.succeeded();
    // The last reference: its drop removes the resume folder when unused.
    drop(output);
    let mut out: Vec<PulledComponent> = results.into_iter().flatten().collect();
    out.sort_by(|a, b| folder::component_order(&a.path, &b.path));
    Ok(out)
}

fn present(c: &Component) -> PulledComponent {
    PulledComponent {
        path: c.path.clone(),
        digest: c.descriptor.digest.clone(),
        size: c.descriptor.size,
        downloaded: false,
        resumed: 0,
    }
}

/// Whether `c`'s path already holds the layer's bytes: the file is hashed on a blocking
/// thread, so a large up-to-date file does not stall the other downloads.
async fn up_to_date(output: &Arc<OutputDir>, c: &Component) -> Result<bool> {
    // Most often nothing is there yet: said without a thread hand-off per file.
    if !output.has_entry(&c.path)? {
        return Ok(false);
    }
    let (output, path, desc) = (Arc::clone(output), c.path.clone(), c.descriptor.clone());
    crate::blocking::run(&c.path, move || output.up_to_date(&path, &desc)).await
}

async fn pull_group(
    target: &Target,
    output: &Arc<OutputDir>,
    group: &[&Component],
    progress: &dyn Progress,
) -> Result<Vec<PulledComponent>> {
    let desc = &group[0].descriptor;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for c in group {
        if up_to_date(output, c).await? {
            progress.skip(&desc.digest, &c.path, desc.size, Skipped::UpToDate);
            out.push(present(c));
        } else {
            missing.push(*c);
        }
    }
    let Some(first) = missing.first() else { return Ok(out) };
    let mut partial = partial::lock(output.partial_dir(), &desc.digest.hex(), &first.path, progress).await?;
    // Another pull into this folder may have put them in place since we looked: while we
    // waited for the lock, or wholly between our look and our taking it.
    let mut still_missing = Vec::new();
    for c in missing {
        if up_to_date(output, c).await? {
            progress.skip(&desc.digest, &c.path, desc.size, Skipped::UpToDate);
            out.push(present(c));
        } else {
            still_missing.push(c);
        }
    }
    let Some((first, rest)) = still_missing.split_first() else { return Ok(out) };
    let resumed = download(target, desc, &first.path, &mut partial, progress).await?;
    for c in rest {
        let mut copy = partial.copy().await?;
        output.place(&mut copy, &c.path)?;
    }
    output.place(&mut partial, &first.path)?;
    for (i, c) in still_missing.iter().enumerate() {
        // The resumed bytes count once, for the file that was downloaded.
        out.push(PulledComponent { downloaded: true, resumed: if i == 0 { resumed } else { 0 }, ..present(c) });
    }
    Ok(out)
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
    let limits = crate::unpack::Limits::default();
    pull_with_limits(target, reference, dir, include, trust, &limits, concurrency, progress).await
}

/// [`pull`], unpacking archive layers within `limits` (`--max-unpack-*`).
#[allow(clippy::too_many_arguments)]
pub async fn pull_with_limits(
    target: &Target,
    reference: &crate::reference::Reference,
    dir: &Path,
    include: &[String],
    trust: Option<&crate::ops::verify::Trust>,
    limits: &crate::unpack::Limits,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<PullReport> {
    use crate::ops::{components, verify};
    let (desc, manifest) = crate::ops::model::fetch_model_manifest(target, &reference.selector()).await?;
    let what = format!("{reference} ({})", desc.digest);
    let all = components::components(&manifest, &what)?;
    // Archive layers are all selected: `include` picks files inside them (ops::archives).
    let (selected, archive_layers) = crate::ops::archives::select(all.clone(), include)?;
    let decision = match trust {
        None => None,
        Some(trust) => {
            let chosen: Vec<Component> = selected.iter().chain(&archive_layers).cloned().collect();
            let decision = verify::decide(target, &desc, &all, &chosen, trust).await?;
            if let Some(reason) = &decision.failure {
                return Err(Error::Verification(format!("{reference}: {reason}; nothing was written")));
            }
            Some(decision)
        }
    };
    // Archives are unpacked into staging folders first (all checked), then the single-file
    // layers pulled, then the unpacked files renamed into place.
    let raw_paths: Vec<String> = selected.iter().map(|c| c.path.clone()).collect();
    let staged =
        crate::ops::archives::stage(target, dir, &archive_layers, include, &raw_paths, limits, concurrency, progress)
            .await?;
    let pulled = match pull_components(target, dir, &selected, concurrency, progress).await {
        Ok(p) => p,
        Err(e) => {
            staged.discard();
            return Err(e);
        }
    };
    let archives = staged.place()?;
    let verification = match decision {
        None => None,
        Some(decision) => {
            let complete = selected.len() + archive_layers.len() == all.len();
            let (signature_file, signature_note) = match (decision.oms_bundle(), complete) {
                // The signature lists the archives, not the files unpacked from them (FORMAT.md §7).
                (Some(_), _) if !archives.is_empty() => (
                    None,
                    Some(
                        "archive layers were unpacked, and the signature covers the archives, not the files in them"
                            .to_string(),
                    ),
                ),
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
        bytes_downloaded: pulled.iter().filter(|c| c.downloaded).map(|c| c.size - c.resumed).sum::<u64>()
            + archives.iter().map(|a| a.size).sum::<u64>(),
        bytes_present: pulled.iter().filter(|c| !c.downloaded).map(|c| c.size).sum(),
        bytes_resumed: pulled.iter().map(|c| c.resumed).sum(),
        components: pulled,
        archives,
        verification,
    })
}

#[cfg(test)]
mod entry_tests;
#[cfg(test)]
mod offload_tests;
