//! Manifests: resolve (HEAD), fetch (GET, size-bounded), push (PUT by digest, then by tag).
//!
//! Every request names all manifest media types in `Accept`: distribution 2.8 answers 404
//! for an OCI manifest otherwise.

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Response, StatusCode};

use super::Registry;
use super::auth::Scope;
use super::client::{Call, Payload};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::{self, Descriptor};
use crate::store::{MAX_MANIFEST_SIZE, PushedManifest};

pub(super) const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
pub(super) const OCI_SUBJECT: &str = "oci-subject";
/// Attempts at a manifest PUT that a concurrent upload of one of its blobs made fail.
const BLOB_RACE_ATTEMPTS: u32 = 3;

/// The media type of a `Content-Type` value, without parameters; `None` for generic types
/// that say nothing about the document (the bytes are sniffed then).
pub(super) fn manifest_media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let media_type = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media_type.as_str() {
        "" | "application/json" | "text/plain" | "application/octet-stream" => None,
        _ => Some(media_type),
    }
}

fn header_u64(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Registry {
    fn manifest_call<'a>(&self, method: Method, selector: &str, scope: &'a Scope, operation: &'a str) -> Call<'a> {
        Call::new(method, self.client.url(&format!("/v2/{}/manifests/{selector}", self.repository)), scope, operation)
            .header(ACCEPT, oci::MANIFEST_ACCEPT)
    }

    fn manifest_not_found(&self, selector: &str) -> Error {
        Error::NotFound { target: self.describe(), what: format!("manifest {selector}") }
    }

    /// Resolves a tag or digest to its manifest descriptor (a HEAD request; a GET when the
    /// registry sends no digest).
    pub async fn resolve(&self, selector: &str) -> Result<Descriptor> {
        let scope = Scope::pull(&self.repository);
        let operation = format!("resolve manifest {}", self.reference(selector));
        let resp = self
            .client
            .send(&self.manifest_call(Method::HEAD, selector, &scope, &operation), self.client.notes())
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(self.manifest_not_found(selector));
        }
        if resp.status().is_success() {
            let headers = resp.headers();
            let digest = match selector.parse::<Digest>() {
                Ok(d) => Some(d),
                Err(_) => {
                    headers.get(DOCKER_CONTENT_DIGEST).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
                }
            };
            // HEAD bodies are empty: the size is in the header, not in the body's length.
            let size = header_u64(headers, CONTENT_LENGTH).filter(|s| *s > 0);
            if let (Some(digest), Some(size), Some(media_type)) = (digest, size, manifest_media_type(headers)) {
                return Ok(Descriptor::new(media_type, digest, size));
            }
        }
        // HEAD said too little (or is not supported): read the manifest itself.
        let (media_type, bytes) = self.fetch_manifest(selector).await?;
        Ok(Descriptor::of_bytes(media_type, &bytes))
    }

    /// Fetches a manifest by tag or digest: (media type from Content-Type, bytes).
    pub async fn fetch_manifest(&self, selector: &str) -> Result<(String, Vec<u8>)> {
        let scope = Scope::pull(&self.repository);
        let operation = format!("fetch manifest {}", self.reference(selector));
        let resp = self
            .client
            .send(&self.manifest_call(Method::GET, selector, &scope, &operation), self.client.notes())
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(self.manifest_not_found(selector));
        }
        if !resp.status().is_success() {
            return Err(self.client.unexpected(&operation, resp).await);
        }
        let media_type = manifest_media_type(resp.headers());
        let bytes =
            read_limited(resp, MAX_MANIFEST_SIZE, self.client.patience.idle(), &self.registry, &operation).await?;
        let media_type = media_type.or_else(|| oci::sniff_media_type(&bytes)).ok_or_else(|| Error::InvalidContent {
            what: format!("manifest {} in {}", selector, self.describe()),
            reason: "neither a Content-Type nor a JSON document with a media type".into(),
        })?;
        Ok((media_type, bytes))
    }

    /// Stores a manifest under `tag` when given (which stores it by digest too), else by
    /// digest: one PUT either way, so the registry checks its layers once (a PUT by digest
    /// then by tag made distribution look up a 2,000-layer manifest's blobs twice).
    pub async fn push_manifest(&self, bytes: &[u8], media_type: &str, tag: Option<&str>) -> Result<PushedManifest> {
        let descriptor = Descriptor::of_bytes(media_type, bytes);
        let digest = descriptor.digest.to_string();
        let subject_indexed = self.put_manifest_at(bytes, media_type, tag.unwrap_or(&digest)).await?;
        Ok(PushedManifest { descriptor, subject_indexed })
    }

    /// PUTs a manifest under `selector`; returns whether the registry answered `OCI-Subject`.
    pub(super) async fn put_manifest_at(&self, bytes: &[u8], media_type: &str, selector: &str) -> Result<bool> {
        let scope = Scope::push(&self.repository);
        let operation = format!("push manifest {}", self.reference(selector));
        let call = Call::new(
            Method::PUT,
            self.client.url(&format!("/v2/{}/manifests/{selector}", self.repository)),
            &scope,
            &operation,
        )
        .header(CONTENT_TYPE, media_type)
        .payload(Payload::Bytes(bytes::Bytes::copy_from_slice(bytes)));
        let mut attempt = 1;
        loop {
            let resp = self.client.send(&call, self.client.notes()).await?;
            if resp.status().is_success() {
                return Ok(resp.headers().contains_key(OCI_SUBJECT));
            }
            let error = self.client.unexpected(&operation, resp).await;
            // distribution rewrites a blob's link file in place when another writer uploads
            // the same blob at the same moment; a manifest PUT that reads it then is told the
            // blob is unknown. A second look after a short wait settles it.
            let blob_race = matches!(&error, Error::Registry { status: 400, code: Some(c), message, .. }
                if c == "BLOB_UNKNOWN" || (c == "DIGEST_INVALID" && message.as_deref().is_some_and(|m| m.contains("blob unknown"))));
            if !blob_race || attempt >= BLOB_RACE_ATTEMPTS {
                return Err(error);
            }
            attempt += 1;
            tokio::time::sleep(super::retry::jitter(
                std::time::Duration::from_millis(100),
                std::time::Duration::from_millis(400),
            ))
            .await;
        }
    }
}

/// Reads a small body whole, refusing more than `limit` bytes (by Content-Length before
/// reading anything, and while reading for chunked answers) and a silence of `idle`.
pub(super) async fn read_limited(
    mut resp: Response,
    limit: u64,
    idle: std::time::Duration,
    registry: &str,
    operation: &str,
) -> Result<Vec<u8>> {
    let too_big = |size: String| Error::InvalidContent {
        what: format!("registry {registry}: {operation}"),
        reason: format!("{size} bytes is over the {limit}-byte limit for manifests"),
    };
    let declared = header_u64(resp.headers(), CONTENT_LENGTH);
    if let Some(len) = declared
        && len > limit
    {
        return Err(too_big(len.to_string()));
    }
    let mut out = Vec::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        let Ok(next) = tokio::time::timeout(idle, resp.chunk()).await else {
            return Err(Error::Unreachable {
                registry: registry.to_string(),
                reason: format!("{operation}: no data for {}", super::timeouts::seconds(idle)),
            });
        };
        match next {
            Ok(Some(chunk)) => {
                if (out.len() + chunk.len()) as u64 > limit {
                    return Err(too_big(format!("more than {limit}")));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) => {
                return Err(Error::Unreachable {
                    registry: registry.to_string(),
                    reason: format!("{operation}: {}", super::errors::root_cause(&e)),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn media_types_from_content_type() {
        let mut h = HeaderMap::new();
        assert_eq!(manifest_media_type(&h), None);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json; charset=utf-8"));
        assert_eq!(manifest_media_type(&h).as_deref(), Some(oci::MEDIA_TYPE_IMAGE_MANIFEST));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert_eq!(manifest_media_type(&h), None);
    }
}
