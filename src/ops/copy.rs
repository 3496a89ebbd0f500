//! `copy`: an artifact and all its referrers, recursively, from one target to another.
//! Blobs the destination has are skipped, blobs on the same registry are mounted, and
//! the rest stream from source to destination, checked against their digest on the way.

use std::collections::HashSet;
use std::sync::Mutex;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Index, Manifest};
use crate::progress::{Progress, Skipped};
use crate::reference::Reference;
use crate::store::limits::ReferrerBudget;
use crate::store::{BlobSource, Target};

/// Referrers of referrers are followed this deep.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    pub digest: Option<Digest>,
    pub manifests: usize,
    pub referrers: usize,
    pub blobs_copied: usize,
    pub blobs_mounted: usize,
    pub blobs_skipped: usize,
    pub bytes_copied: u64,
    /// The ingestion gate's decision, when the copy was gated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::ops::verify::Decision>,
}

/// A model in a source target that passed the trust decision: the only way to make a
/// gated copy ([`copy_approved`]). It holds the exact manifest bytes that were decided
/// on, so a tag moved meanwhile cannot slip another manifest through.
pub struct Approved<'a> {
    src: &'a Target,
    desc: Descriptor,
    bytes: Vec<u8>,
    decision: crate::ops::verify::Decision,
}

impl Approved<'_> {
    pub fn digest(&self) -> &Digest {
        &self.desc.digest
    }

    pub fn decision(&self) -> &crate::ops::verify::Decision {
        &self.decision
    }
}

/// The ingestion gate: decides whether the model `selector` names in `src` may be copied.
/// Fails with a verification error (and nothing touched anywhere) unless it passes; open
/// the destination only after this.
pub async fn approve<'a>(src: &'a Target, selector: &str, trust: &crate::ops::verify::Trust) -> Result<Approved<'a>> {
    use crate::ops::verify;
    let (desc, bytes) = src.fetch_manifest(selector).await?;
    if desc.is_index() {
        return Err(Error::NotAModel {
            selector: selector.to_string(),
            target: src.describe(),
            note: ": a gated copy copies one model",
        });
    }
    let what = format!("manifest {} in {}", desc.digest, src.describe());
    let manifest = Manifest::parse(&bytes, &what)?;
    let all = verify::model_components(&manifest, &what)?;
    let decision = verify::decide(src, &desc, &all, &all, trust).await?;
    if let Some(reason) = &decision.failure {
        return Err(Error::Verification(format!(
            "{} in {}: {reason}; nothing was copied",
            desc.digest,
            src.describe()
        )));
    }
    Ok(Approved { src, desc, bytes, decision })
}

/// Copies an approved model (the manifest that was decided on) to `dst`, tagged `tag`
/// there, with every referrer.
pub async fn copy_approved(
    approved: Approved<'_>,
    dst: &Target,
    tag: Option<&str>,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let copier = Copier {
        src: approved.src,
        dst,
        concurrency,
        progress,
        visited: Mutex::new(HashSet::new()),
        budget: Mutex::new(ReferrerBudget::new(&approved.desc)),
        report: Mutex::new(CopyReport::default()),
    };
    copier.copy_node(&approved.desc, &approved.bytes, tag, 0).await?;
    let mut report = copier.report.into_inner().expect("copy report lock");
    report.digest = Some(approved.desc.digest);
    report.verification = Some(approved.decision);
    Ok(report)
}

struct Copier<'a> {
    src: &'a Target,
    dst: &'a Target,
    concurrency: usize,
    progress: &'a dyn Progress,
    visited: Mutex<HashSet<Digest>>,
    /// Caps the referrer manifests fetched in the whole copy.
    budget: Mutex<ReferrerBudget>,
    report: Mutex<CopyReport>,
}

/// The tag a copy from `source` to `destination` writes: the destination's, else the
/// source's, else `latest`; none when the source names only a digest and the destination
/// no tag.
pub fn destination_tag(source: &Reference, destination: &Reference) -> Option<String> {
    destination
        .tag
        .clone()
        .or_else(|| source.tag.clone())
        .or_else(|| source.digest.is_none().then(|| "latest".to_string()))
}

/// Copies what `selector` names in `src` to `dst` (tagged `tag` there), with every referrer.
pub async fn copy(
    src: &Target,
    dst: &Target,
    selector: &str,
    tag: Option<&str>,
    concurrency: usize,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let (desc, bytes) = src.fetch_manifest(selector).await?;
    let copier = Copier {
        src,
        dst,
        concurrency,
        progress,
        visited: Mutex::new(HashSet::new()),
        budget: Mutex::new(ReferrerBudget::new(&desc)),
        report: Mutex::new(CopyReport::default()),
    };
    copier.copy_node(&desc, &bytes, tag, 0).await?;
    let mut report = copier.report.into_inner().expect("copy report lock");
    report.digest = Some(desc.digest);
    Ok(report)
}

impl Copier<'_> {
    fn copy_node<'s>(
        &'s self,
        desc: &'s Descriptor,
        bytes: &'s [u8],
        tag: Option<&'s str>,
        depth: usize,
    ) -> futures_util::future::BoxFuture<'s, Result<()>> {
        Box::pin(async move {
            if !self.visited.lock().expect("visited lock").insert(desc.digest.clone()) {
                return Ok(());
            }
            let what = format!("manifest {} in {}", desc.digest, self.src.describe());
            let subject = if desc.is_index() {
                let index = Index::parse(bytes, &what)?;
                for child in &index.manifests {
                    let (child_desc, child_bytes) = self.src.fetch_manifest(&child.digest.to_string()).await?;
                    self.copy_node(&child_desc, &child_bytes, None, depth).await?;
                }
                index.subject
            } else {
                let manifest = Manifest::parse(bytes, &what)?;
                let blobs: Vec<&Descriptor> = std::iter::once(&manifest.config).chain(&manifest.layers).collect();
                let transfers: Vec<_> = blobs.into_iter().map(|b| self.copy_blob(b)).collect();
                futures_util::stream::iter(transfers)
                    .buffer_unordered(self.concurrency.max(1))
                    .try_collect::<Vec<()>>()
                    .await?;
                manifest.subject.clone()
            };
            match subject {
                Some(_) if !desc.is_index() => {
                    let manifest = Manifest::parse(bytes, &what)?;
                    self.dst.push_referrer(bytes, &manifest).await?;
                    self.report.lock().expect("report lock").referrers += 1;
                }
                _ => {
                    self.dst.push_manifest(bytes, &desc.media_type, tag).await?;
                }
            }
            self.report.lock().expect("report lock").manifests += 1;
            if depth < MAX_DEPTH {
                for r in self.src.referrers(desc).await? {
                    self.budget.lock().expect("referrer budget lock").fetch()?;
                    // A fallback index can name a referrer deleted since: nothing to copy.
                    let (r_desc, r_bytes) = match self.src.fetch_manifest(&r.digest.to_string()).await {
                        Ok(found) => found,
                        Err(Error::NotFound { .. }) => {
                            self.progress
                                .note(&format!("referrer {} of {} is listed but gone; skipped", r.digest, desc.digest));
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    self.copy_node(&r_desc, &r_bytes, None, depth + 1).await?;
                }
            }
            Ok(())
        })
    }

    async fn copy_blob(&self, desc: &Descriptor) -> Result<()> {
        let label = crate::ops::components::layer_path(desc).unwrap_or("").to_string();
        let label = if label.is_empty() { desc.digest.to_string() } else { label };
        if self.dst.blob_exists(desc).await? {
            self.progress.skip(&desc.digest, &label, desc.size, Skipped::Exists);
            self.report.lock().expect("report lock").blobs_skipped += 1;
            return Ok(());
        }
        if self.dst.mount_blob(desc, self.src).await? {
            self.progress.skip(&desc.digest, &label, desc.size, Skipped::Mounted);
            self.report.lock().expect("report lock").blobs_mounted += 1;
            return Ok(());
        }
        self.dst.push_blob(desc, &BlobSource::Target(self.src), self.progress).await.map_err(|e| match e {
            Error::NotFound { .. } => {
                Error::NotFound { target: self.src.describe(), what: format!("blob {} ({label})", desc.digest) }
            }
            other => other,
        })?;
        let mut report = self.report.lock().expect("report lock");
        report.blobs_copied += 1;
        report.bytes_copied += desc.size;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_tag_is_the_destinations_then_the_sources_then_latest() {
        let tag = |src: &str, dst: &str| destination_tag(&src.parse().unwrap(), &dst.parse().unwrap());
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(tag("r.example/m:v1", "s.example/m:v2").as_deref(), Some("v2"));
        assert_eq!(tag("r.example/m:v1", "s.example/m").as_deref(), Some("v1"));
        assert_eq!(tag("r.example/m", "s.example/m").as_deref(), Some("latest"));
        assert_eq!(tag(&format!("r.example/m@{digest}"), "s.example/m"), None);
        assert_eq!(tag(&format!("r.example/m:v1@{digest}"), "s.example/m").as_deref(), Some("v1"));
        assert_eq!(tag(&format!("r.example/m@{digest}"), "oci:/tmp/x:v3").as_deref(), Some("v3"));
    }
}

#[cfg(test)]
mod gate_tests;
