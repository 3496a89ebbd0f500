//! `discover`: the tree of referrers of an artifact. Each referrer's manifest is read, so
//! its artifact type and annotations come from the manifest itself, never from an index
//! entry alone (cosign 2.5 writes the config media type there).

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{Annotations, Descriptor, Manifest};
use crate::reference::Reference;
use crate::store::Target;

/// How many levels of referrers `discover` follows below the subject (a referrer of a
/// referrer is level 2): a bound on work a hostile registry can ask for.
pub const MAX_DEPTH: usize = 8;

/// What `discover` found: the subject and its referrers tree.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverReport {
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub referrers: Vec<ReferrerNode>,
}

/// The referrers tree of what `reference` names in `target`, [`MAX_DEPTH`] levels deep.
pub async fn discover(target: &Target, reference: &Reference) -> Result<DiscoverReport> {
    let desc = target.resolve(&reference.selector()).await?;
    let referrers = referrers_tree(target, &desc, MAX_DEPTH).await?;
    Ok(DiscoverReport {
        reference: reference.to_string(),
        digest: desc.digest.clone(),
        media_type: desc.media_type.clone(),
        referrers,
    })
}

/// One artifact in the referrers tree.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerNode {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Annotations::is_empty")]
    pub annotations: Annotations,
    pub referrers: Vec<ReferrerNode>,
}

/// The referrers of `subject`, each with its own referrers, `levels` levels deep (1: the
/// direct referrers only, without theirs).
pub fn referrers_tree<'a>(
    target: &'a Target,
    subject: &'a Descriptor,
    levels: usize,
) -> BoxFuture<'a, Result<Vec<ReferrerNode>>> {
    Box::pin(async move {
        let mut out = Vec::new();
        if levels == 0 {
            return Ok(out);
        }
        for entry in target.referrers(subject).await? {
            // A fallback index can name a referrer deleted since (nothing updates the index
            // then): it is no referrer.
            let (desc, bytes) = match target.fetch_manifest(&entry.digest.to_string()).await {
                Ok(found) => found,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let manifest = Manifest::parse(&bytes, &format!("referrer {}", desc.digest))?;
            // A manifest that does not name this subject is not its referrer, whatever an index says.
            if manifest.subject.as_ref().map(|s| &s.digest) != Some(&subject.digest) {
                continue;
            }
            let referrers = referrers_tree(target, &desc, levels - 1).await?;
            out.push(ReferrerNode {
                digest: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size,
                artifact_type: Some(manifest.effective_artifact_type().to_string()),
                annotations: manifest.annotations.clone(),
                referrers,
            });
        }
        Ok(out)
    })
}

/// Counts the nodes of a tree.
pub fn count(nodes: &[ReferrerNode]) -> usize {
    nodes.iter().map(|n| 1 + count(&n.referrers)).sum()
}
