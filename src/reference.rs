//! References to artifacts: `registry[:port]/repository[:tag][@sha256:…]` for a registry,
//! `oci:PATH[:tag|@digest]` for an OCI image-layout folder.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Where an artifact lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Registry { registry: String, repository: String },
    Layout { path: PathBuf },
}

/// A parsed reference: a location plus an optional tag and an optional digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub location: Location,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// The tag or digest to resolve: the digest wins when both are given; `latest` when neither is.
    pub fn selector(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The tag to push to: the given one, else `latest`.
    pub fn selector_tag(&self) -> String {
        self.tag.clone().unwrap_or_else(|| "latest".to_string())
    }

    /// The same location pinned to `digest` (the tag is kept for display only).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference { location: self.location.clone(), tag: self.tag.clone(), digest: Some(digest) }
    }

    pub fn registry(&self) -> Option<&str> {
        match &self.location {
            Location::Registry { registry, .. } => Some(registry),
            Location::Layout { .. } => None,
        }
    }
}

fn invalid(reference: &str, reason: impl Into<String>) -> Error {
    Error::InvalidReference { reference: reference.to_string(), reason: reason.into() }
}

fn valid_tag(tag: &str) -> bool {
    // distribution-spec: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
    let mut bytes = tag.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_repository(repo: &str) -> bool {
    // distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
    !repo.is_empty()
        && repo.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        })
}

/// Splits `rest@digest` and `rest:tag` (the tag only after the last `/`).
fn split_tag_digest(s: &str, whole: &str) -> Result<(String, Option<String>, Option<Digest>)> {
    let (rest, digest) = match s.rsplit_once('@') {
        Some((rest, d)) => {
            (rest, Some(d.parse::<Digest>().map_err(|_| invalid(whole, format!("`{d}` is not a sha256 digest")))?))
        }
        None => (s, None),
    };
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (rest, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let tag = &rest[last_slash + i + 1..];
            if !valid_tag(tag) {
                return Err(invalid(whole, format!("`{tag}` is not a valid tag")));
            }
            (&rest[..last_slash + i], Some(tag.to_string()))
        }
        None => (rest, None),
    };
    Ok((rest.to_string(), tag, digest))
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(path) = s.strip_prefix("oci:") {
            let (path, tag, digest) = split_tag_digest(path, s)?;
            if path.is_empty() {
                return Err(invalid(s, "the layout folder path is empty"));
            }
            return Ok(Reference { location: Location::Layout { path: PathBuf::from(path) }, tag, digest });
        }
        let (registry, rest) = s
            .split_once('/')
            .ok_or_else(|| invalid(s, "expected registry[:port]/repository[:tag][@digest] or oci:PATH"))?;
        if registry.is_empty() || registry.contains(|c: char| c.is_whitespace() || c == '@') {
            return Err(invalid(s, "the registry host is empty or malformed"));
        }
        let (repository, tag, digest) = split_tag_digest(rest, s)?;
        if !valid_repository(&repository) {
            return Err(invalid(
                s,
                format!("`{repository}` is not a valid repository name (lowercase letters, digits, . _ - and /)"),
            ));
        }
        Ok(Reference { location: Location::Registry { registry: registry.to_string(), repository }, tag, digest })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Registry { registry, repository } => write!(f, "{registry}/{repository}")?,
            Location::Layout { path } => write!(f, "oci:{}", path.display())?,
        }
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_references() {
        let r: Reference = "127.0.0.1:5000/models/llama:v1".parse().unwrap();
        assert_eq!(
            r.location,
            Location::Registry { registry: "127.0.0.1:5000".into(), repository: "models/llama".into() }
        );
        assert_eq!(r.tag.as_deref(), Some("v1"));
        let d = Digest::of(b"x");
        let r: Reference = format!("localhost:5000/m@{d}").parse().unwrap();
        assert_eq!(r.digest, Some(d.clone()));
        assert_eq!(r.selector(), d.to_string());
        let r: Reference = "ghcr.example/a/b".parse().unwrap();
        assert_eq!(r.selector(), "latest");
        assert!("noslash".parse::<Reference>().is_err());
        assert!("host/UPPER".parse::<Reference>().is_err());
        assert!("host/repo:bad tag".parse::<Reference>().is_err());
        assert!("host/repo@sha256:abc".parse::<Reference>().is_err());
    }

    #[test]
    fn layout_references() {
        let r: Reference = "oci:/tmp/x:v2".parse().unwrap();
        assert_eq!(r.location, Location::Layout { path: "/tmp/x".into() });
        assert_eq!(r.tag.as_deref(), Some("v2"));
        let r: Reference = "oci:./rel/dir".parse().unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), "oci:./rel/dir");
        assert!("oci:".parse::<Reference>().is_err());
    }
}
