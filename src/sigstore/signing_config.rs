//! Which Sigstore services keyless signing uses: a Sigstore signing config v0.2
//! (`application/vnd.dev.sigstore.signingconfig.v0.2+json`), the public-good instance's
//! built in (or the newer one `modelsign trust update` stored), or a private one from
//! `--signing-config FILE`.
//!
//! From each list the services valid now (`validFor`) with an API version this client
//! speaks are kept, and the one that started most recently is used: Fulcio (API v1:
//! `/api/v2/signingCert`), one Rekor log (v2 `rekor-tiles` preferred to v1) and, when the
//! config lists any, one timestamp authority (a Rekor v2 log requires one).
//!
//! `public_good_signing_config.json` beside this file is a byte-for-byte copy of
//! `sigstore/_store/https%3A%2F%2Ftuf-repo-cdn.sigstore.dev/signing_config.v0.2.json` from
//! the PyPI wheel `sigstore-4.5.1-py3-none-any.whl` (sigstore-python, Apache-2.0), itself a
//! target of Sigstore's TUF repository; SHA-256 [`PUBLIC_GOOD_SHA256`].

use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;

use crate::sign::Error;

/// The built-in public-good signing config.
pub const PUBLIC_GOOD_JSON: &str = include_str!("public_good_signing_config.json");

/// SHA-256 of [`PUBLIC_GOOD_JSON`] as shipped in the sigstore-python 4.5.1 wheel.
pub const PUBLIC_GOOD_SHA256: &str = "9711a6d5375706957a4859af31c5866a4474f81f0544f9f4b76c9c4f4c8a539c";

const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.signingconfig.v0.2+json";

/// Largest signing config read from a file.
const MAX_SIZE: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigJson {
    media_type: String,
    #[serde(default)]
    ca_urls: Vec<ServiceJson>,
    #[serde(default)]
    rekor_tlog_urls: Vec<ServiceJson>,
    #[serde(default)]
    tsa_urls: Vec<ServiceJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceJson {
    url: String,
    major_api_version: u32,
    #[serde(default)]
    valid_for: Option<ValidFor>,
}

#[derive(Deserialize)]
struct ValidFor {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

/// Which Rekor API a log speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekorVersion {
    /// `POST /api/v1/log/entries`, a `dsse` 0.0.1 entry; SET and inclusion proof back.
    V1,
    /// `rekor-tiles`: `POST /api/v2/log/entries`, a `dsse` 0.0.2 request; needs a TSA.
    V2,
}

/// The services one signature uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    pub fulcio: String,
    pub rekor: String,
    pub rekor_version: RekorVersion,
    pub tsa: Option<String>,
    /// Where the config came from, for messages.
    pub source: String,
}

impl Services {
    /// The public-good instance's services: the signing config `modelsign trust update`
    /// stored (see [`crate::tuf`]) when there is a usable one, else the built-in config.
    pub fn public_good() -> Result<Self, Error> {
        if let Some(Ok(stored)) = crate::tuf::load_default()
            && let Some(json) = &stored.signing_config
        {
            let source =
                format!("the signing config from TUF ({}, targets v{})", stored.remote, stored.targets_version);
            if let Ok(services) = Self::from_json(json, &source, SystemTime::now()) {
                return Ok(services);
            }
        }
        Self::from_json(PUBLIC_GOOD_JSON, "the built-in public-good signing config", SystemTime::now())
    }

    /// Reads a signing config file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let source = path.display().to_string();
        let bytes = crate::local_fs::read_capped(path, MAX_SIZE, "signing config")
            .map_err(|e| Error::InvalidPolicy(format!("signing config {source}: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::InvalidPolicy(format!("signing config {source}: not UTF-8")))?;
        Self::from_json(&text, &source, SystemTime::now())
    }

    /// Parses a signing config and picks the services valid at `now`.
    pub fn from_json(json: &str, source: &str, now: SystemTime) -> Result<Self, Error> {
        let bad = |reason: String| Error::InvalidPolicy(format!("signing config {source}: {reason}"));
        let config: ConfigJson = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        if config.media_type != MEDIA_TYPE {
            return Err(bad(format!("media type `{}` (expected {MEDIA_TYPE})", config.media_type)));
        }
        let fulcio = pick(&config.ca_urls, &[1], now, &bad)?
            .ok_or_else(|| bad("no Fulcio (caUrls) with API version 1 valid now".into()))?;
        let rekor = pick(&config.rekor_tlog_urls, &[2, 1], now, &bad)?
            .ok_or_else(|| bad("no Rekor log (rekorTlogUrls) with API version 1 or 2 valid now".into()))?;
        let tsa = pick(&config.tsa_urls, &[1], now, &bad)?;
        let rekor_version = if rekor.major_api_version == 2 { RekorVersion::V2 } else { RekorVersion::V1 };
        if rekor_version == RekorVersion::V2 && tsa.is_none() {
            return Err(bad("a Rekor v2 log gives no signing time: the config must list a timestamp authority".into()));
        }
        Ok(Services {
            fulcio: fulcio.url.clone(),
            rekor: rekor.url.clone(),
            rekor_version,
            tsa: tsa.map(|t| t.url.clone()),
            source: source.to_string(),
        })
    }
}

/// The service valid at `now` with the first of `versions` any offers, started last.
fn pick<'a>(
    services: &'a [ServiceJson],
    versions: &[u32],
    now: SystemTime,
    bad: &dyn Fn(String) -> Error,
) -> Result<Option<&'a ServiceJson>, Error> {
    let time = |t: &Option<String>| -> Result<Option<SystemTime>, Error> {
        t.as_deref()
            .map(|t| humantime::parse_rfc3339_weak(t).map_err(|e| bad(format!("bad time `{t}`: {e}"))))
            .transpose()
    };
    let mut valid = Vec::new();
    for s in services {
        let (start, end) = match &s.valid_for {
            Some(v) => (time(&v.start)?, time(&v.end)?),
            None => (None, None),
        };
        if start.is_none_or(|t| t <= now) && end.is_none_or(|t| now < t) {
            valid.push((s, start));
        }
    }
    for version in versions {
        let best = valid.iter().filter(|(s, _)| s.major_api_version == *version).max_by_key(|(_, start)| *start);
        if let Some((s, _)) = best {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn built_in_config_is_the_one_noted() {
        assert_eq!(hex::encode(sha2::Sha256::digest(PUBLIC_GOOD_JSON.as_bytes())), PUBLIC_GOOD_SHA256);
        let s = Services::public_good().unwrap();
        assert!(s.fulcio.starts_with("https://fulcio."), "{s:?}");
        assert_eq!(s.rekor_version, RekorVersion::V1);
        assert!(s.tsa.is_some());
    }

    #[test]
    fn picks_valid_services_and_prefers_rekor_v2() {
        let json = r#"{"mediaType":"application/vnd.dev.sigstore.signingconfig.v0.2+json",
          "caUrls":[{"url":"https://old-ca","majorApiVersion":1,"validFor":{"start":"2020-01-01T00:00:00Z","end":"2021-01-01T00:00:00Z"}},
                    {"url":"https://ca","majorApiVersion":1,"validFor":{"start":"2022-01-01T00:00:00Z"}}],
          "rekorTlogUrls":[{"url":"https://v1","majorApiVersion":1,"validFor":{"start":"2022-01-01T00:00:00Z"}},
                           {"url":"https://v2","majorApiVersion":2,"validFor":{"start":"2023-01-01T00:00:00Z"}},
                           {"url":"https://v9","majorApiVersion":9,"validFor":{"start":"2024-01-01T00:00:00Z"}}],
          "tsaUrls":[{"url":"https://tsa/api/v1/timestamp","majorApiVersion":1}],
          "rekorTlogConfig":{"selector":"ANY"},"tsaConfig":{"selector":"ANY"}}"#;
        let s = Services::from_json(json, "t", SystemTime::now()).unwrap();
        assert_eq!((s.fulcio.as_str(), s.rekor.as_str()), ("https://ca", "https://v2"));
        assert_eq!(s.rekor_version, RekorVersion::V2);
        let no_tsa = json.replace(r#"{"url":"https://tsa/api/v1/timestamp","majorApiVersion":1}"#, "");
        assert!(Services::from_json(&no_tsa, "t", SystemTime::now()).unwrap_err().to_string().contains("timestamp"));
        assert!(Services::from_json("{}", "t", SystemTime::now()).is_err());
    }
}
