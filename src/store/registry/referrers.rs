//! Referrers: the OCI referrers API (`GET /v2/<repo>/referrers/<digest>`, `Link`
//! pagination) where the registry has it, else the tag-schema fallback: an image index
//! tagged `sha256-<hex>` that lists the subject's referrers.
//!
//! Whether the API exists is learnt once per registry and kept ([`ApiState`], as oras-go
//! does). On push, an `OCI-Subject` answer means the registry indexed the referrer itself;
//! go-containerregistry has the API but sends no `OCI-Subject`, so an unknown registry is
//! probed once. Otherwise the fallback index is updated read-modify-write, then re-read to
//! check the entry survived concurrent writers, retried with jittered waits.
//!
//! Invariant: the fallback index names only manifests that exist (distribution checks).

use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, LINK};
use reqwest::{Method, StatusCode};

use super::Registry;
use super::auth::Scope;
use super::client::Call;
use super::errors;
use super::manifests::{manifest_media_type, read_limited};
use super::retry::jitter;
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Index, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST, Manifest};
use crate::store::MAX_MANIFEST_SIZE;
use crate::store::limits::{MAX_REFERRER_LISTING_BYTES, MAX_REFERRER_PAGES, MAX_REFERRERS, listing_too_long};

/// Whether the registry serves the referrers API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ApiState {
    Unknown,
    Supported,
    Unsupported,
}

/// What one look at the referrers API said.
enum ApiAnswer {
    List(Vec<Descriptor>),
    /// No API here (404 page, 405, a non-index answer).
    Unsupported,
    /// The repository does not exist yet: says nothing about the API.
    Inconclusive,
}

/// Attempts at updating the fallback index before giving up.
const FALLBACK_ATTEMPTS: u32 = 6;
/// Bounds of the wait before checking that a fallback-index write survived.
const SETTLE_MIN: Duration = Duration::from_millis(50);
const SETTLE_MAX: Duration = Duration::from_secs(2);

/// The `rel="next"` target of a `Link` header value.
pub(super) fn next_link(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let is_next = params.split(';').any(|p| {
            let Some((k, v)) = p.split_once('=') else { return false };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim().trim_matches('"').split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = after;
    }
    None
}

impl Registry {
    fn api_state(&self) -> ApiState {
        *self.referrers_api.lock().expect("referrers state lock")
    }

    fn set_api_state(&self, state: ApiState) {
        *self.referrers_api.lock().expect("referrers state lock") = state;
    }

    pub async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        if self.api_state() != ApiState::Unsupported {
            match self.referrers_via_api(subject).await? {
                ApiAnswer::List(list) => {
                    self.set_api_state(ApiState::Supported);
                    return Ok(list);
                }
                ApiAnswer::Unsupported => self.set_api_state(ApiState::Unsupported),
                ApiAnswer::Inconclusive => {}
            }
        }
        let tag = subject.digest.fallback_tag();
        let what = format!("referrers index {tag} in {}", self.describe());
        let index = match self.read_fallback_index(subject).await {
            // Garbage where the referrers should be: nothing in it can be trusted or verified.
            Err(Error::InvalidContent { reason, .. }) => {
                return Err(Error::Verification(format!("{what}: {reason}; its referrers cannot be read")));
            }
            other => other?,
        };
        if index.manifests.len() > MAX_REFERRERS {
            return Err(listing_too_long(&what, format!("more than {MAX_REFERRERS} referrers")));
        }
        Ok(index.manifests)
    }

    async fn referrers_via_api(&self, subject: &Descriptor) -> Result<ApiAnswer> {
        let scope = Scope::pull(&self.repository);
        let operation = format!("list referrers of {}@{}", self.repository, subject.digest);
        let mut url = self.client.url(&format!("/v2/{}/referrers/{}", self.repository, subject.digest));
        let mut found = Vec::new();
        let mut bytes_read = 0u64;
        for page in 0..MAX_REFERRER_PAGES {
            let call = Call::new(Method::GET, url.clone(), &scope, &operation).header(ACCEPT, MEDIA_TYPE_IMAGE_INDEX);
            let resp = self.client.send(&call, self.client.notes()).await?;
            let status = resp.status();
            if page == 0
                && matches!(
                    status,
                    StatusCode::NOT_FOUND
                        | StatusCode::BAD_REQUEST
                        | StatusCode::METHOD_NOT_ALLOWED
                        | StatusCode::NOT_IMPLEMENTED
                )
            {
                let body = errors::read_error_body(resp).await;
                if status == StatusCode::NOT_FOUND && body.code.as_deref() == Some("NAME_UNKNOWN") {
                    return Ok(ApiAnswer::Inconclusive);
                }
                return Ok(ApiAnswer::Unsupported);
            }
            if !status.is_success() {
                return Err(self.client.unexpected(&operation, resp).await);
            }
            let media_type = manifest_media_type(resp.headers());
            let next = next_page(resp.headers());
            let page_url = resp.url().clone();
            let bytes =
                read_limited(resp, MAX_MANIFEST_SIZE, self.client.patience.idle(), &self.registry, &operation).await?;
            bytes_read += bytes.len() as u64;
            if bytes_read > MAX_REFERRER_LISTING_BYTES {
                return Err(listing_too_long(
                    &operation,
                    format!("more than {} MiB of referrer pages", MAX_REFERRER_LISTING_BYTES >> 20),
                ));
            }
            let index = match Index::parse(&bytes, &operation) {
                Ok(i) if media_type.as_deref().is_none_or(|m| m == MEDIA_TYPE_IMAGE_INDEX) => i,
                // A 200 that is not an index: some front page or proxy, not the API.
                _ if page == 0 => return Ok(ApiAnswer::Unsupported),
                Ok(_) | Err(_) => {
                    return Err(Error::Verification(format!(
                        "{operation}: page {} of the referrers is not an image index; the referrers cannot be read",
                        page + 1
                    )));
                }
            };
            if found.len() + index.manifests.len() > MAX_REFERRERS {
                return Err(listing_too_long(&operation, format!("more than {MAX_REFERRERS} referrers")));
            }
            found.extend(index.manifests);
            match next {
                Some(link) => url = self.client.resolve_location(&page_url, &link, &operation)?,
                None => return Ok(ApiAnswer::List(found)),
            }
        }
        Err(listing_too_long(&operation, format!("more than {MAX_REFERRER_PAGES} pages of referrers")))
    }

    /// The fallback index of `subject`, empty when its tag does not exist.
    async fn read_fallback_index(&self, subject: &Descriptor) -> Result<Index> {
        let tag = subject.digest.fallback_tag();
        match self.fetch_manifest(&tag).await {
            Ok((_, bytes)) => Index::parse(&bytes, &format!("referrers index {tag} in {}", self.describe())),
            Err(Error::NotFound { .. }) => Ok(Index::empty()),
            Err(e) => Err(e),
        }
    }

    /// Pushes referrer manifests of one subject by digest and makes them findable: the
    /// registry indexed them (`OCI-Subject`, or a referrers API), else one update of the
    /// fallback index adds them all.
    pub async fn push_referrers(
        &self,
        subject: &Descriptor,
        referrers: &[(&[u8], &Manifest)],
    ) -> Result<Vec<Descriptor>> {
        let mut descs = Vec::with_capacity(referrers.len());
        let mut all_indexed = true;
        for (bytes, manifest) in referrers {
            let media_type = manifest.media_type.clone().unwrap_or_else(|| MEDIA_TYPE_IMAGE_MANIFEST.to_string());
            let desc = manifest.descriptor(bytes);
            if self.put_manifest_at(bytes, &media_type, &desc.digest.to_string()).await? {
                self.set_api_state(ApiState::Supported);
            } else {
                all_indexed = false;
            }
            descs.push(desc);
        }
        if all_indexed {
            return Ok(descs);
        }
        match self.api_state() {
            ApiState::Supported => return Ok(descs),
            ApiState::Unsupported => {}
            ApiState::Unknown => match self.referrers_via_api(subject).await? {
                ApiAnswer::List(_) => {
                    self.set_api_state(ApiState::Supported);
                    return Ok(descs);
                }
                ApiAnswer::Unsupported => self.set_api_state(ApiState::Unsupported),
                ApiAnswer::Inconclusive => {}
            },
        }
        self.add_to_fallback_index(subject, &descs).await?;
        Ok(descs)
    }

    /// Adds `descs` to the fallback index of `subject`, then re-reads the index until the
    /// entries are seen to have survived (another writer may have replaced the index
    /// meanwhile). Registry errors during an attempt (distribution's tag files are not
    /// written atomically, so a concurrent read can fail) are retried too; the last one is
    /// reported.
    async fn add_to_fallback_index(&self, subject: &Descriptor, descs: &[Descriptor]) -> Result<()> {
        let tag = subject.digest.fallback_tag();
        let mut last_error = None;
        for attempt in 1..=FALLBACK_ATTEMPTS {
            match self.fallback_attempt(subject, descs, &tag, attempt).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e @ (Error::Registry { .. } | Error::InvalidContent { .. })) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        let digests: Vec<String> = descs.iter().map(|d| d.digest.to_string()).collect();
        Err(last_error.unwrap_or_else(|| Error::Registry {
            registry: self.registry.clone(),
            operation: format!("update referrers index {}:{tag}", self.repository),
            status: 0,
            code: None,
            message: Some(format!("the entries for {} kept being overwritten by other writers", digests.join(", "))),
        }))
    }

    /// One read-modify-write-verify round; `Ok(true)` when every entry is seen in the index.
    async fn fallback_attempt(
        &self,
        subject: &Descriptor,
        descs: &[Descriptor],
        tag: &str,
        attempt: u32,
    ) -> Result<bool> {
        let listed = |index: &Index, d: &Descriptor| index.manifests.iter().any(|e| e.digest == d.digest);
        // Later rounds wait first, spreading competing writers apart.
        let base = Duration::from_millis(150) * attempt;
        if attempt > 1 {
            tokio::time::sleep(jitter(base / 2, base)).await;
        }
        let started = std::time::Instant::now();
        let mut index = self.read_fallback_index(subject).await?;
        let missing: Vec<&Descriptor> = descs.iter().filter(|d| !listed(&index, d)).collect();
        if missing.is_empty() {
            if attempt == 1 {
                return Ok(true); // already listed before we wrote anything
            }
        } else {
            index.manifests.extend(missing.into_iter().cloned());
            if let Err(e) = self.put_manifest_at(&index.to_bytes(), MEDIA_TYPE_IMAGE_INDEX, tag).await {
                // An entry whose manifest was deleted makes distribution refuse the index.
                let Error::Registry { status: 400, .. } = e else { return Err(e) };
                if !self.drop_missing(&mut index, descs).await? {
                    return Err(e);
                }
                self.put_manifest_at(&index.to_bytes(), MEDIA_TYPE_IMAGE_INDEX, tag).await?;
            }
        }
        // Give a concurrent writer that read the old index time to land its write, then
        // check ours are still there. Its read-to-write window is about as long as ours
        // was, so wait a few times that (not a fixed time: loopback and WAN differ by
        // 100×), and longer in later rounds.
        let round_trip = started.elapsed();
        let settle = (round_trip * 3).clamp(SETTLE_MIN, SETTLE_MAX) * attempt;
        tokio::time::sleep(jitter(settle, settle * 2)).await;
        let index = self.read_fallback_index(subject).await?;
        Ok(descs.iter().all(|d| listed(&index, d)))
    }

    /// Removes index entries (other than those in `keep`) whose manifests no longer exist.
    /// Returns whether any was removed.
    async fn drop_missing(&self, index: &mut Index, keep: &[Descriptor]) -> Result<bool> {
        let mut kept = Vec::with_capacity(index.manifests.len());
        let before = index.manifests.len();
        for entry in std::mem::take(&mut index.manifests) {
            if keep.iter().any(|k| k.digest == entry.digest) {
                kept.push(entry);
                continue;
            }
            match self.resolve(&entry.digest.to_string()).await {
                Ok(_) => kept.push(entry),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        index.manifests = kept;
        Ok(index.manifests.len() < before)
    }
}

fn next_page(headers: &HeaderMap) -> Option<String> {
    headers.get_all(LINK).iter().filter_map(|v| v.to_str().ok()).find_map(next_link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Url;

    #[test]
    fn parses_link_headers() {
        assert_eq!(
            next_link(r#"</v2/m/referrers/sha256:ab?n=2&last=x>; rel="next""#).as_deref(),
            Some("/v2/m/referrers/sha256:ab?n=2&last=x")
        );
        assert_eq!(next_link("<https://r.example/a?b=c,d>; rel=next").as_deref(), Some("https://r.example/a?b=c,d"));
        assert_eq!(next_link(r#"</first>; rel="prev", </second>; type="x"; rel="next""#).as_deref(), Some("/second"));
        assert_eq!(next_link(r#"</x>; rel="prev next""#).as_deref(), Some("/x"));
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link("<unclosed; rel=next"), None);
    }

    #[test]
    fn links_resolve_against_the_page() {
        let page = Url::parse("https://r.example:5000/v2/m/referrers/sha256:ab").unwrap();
        assert_eq!(
            page.join("/v2/m/referrers/sha256:ab?last=1").unwrap().as_str(),
            "https://r.example:5000/v2/m/referrers/sha256:ab?last=1"
        );
        assert_eq!(page.join("https://o.example/p").unwrap().as_str(), "https://o.example/p");
    }
}
