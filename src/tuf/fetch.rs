//! Downloads from a TUF repository: one GET at a time, a connect and an overall timeout,
//! no redirects, plain `http` only to a loopback address, and every body read up to a cap
//! given by the caller (the length the signed metadata states, else a fixed maximum), so
//! an endless or oversized answer costs at most the cap.

use std::time::Duration;

use reqwest::Url;

use super::Fail;
use crate::net::{ReadFailure, read_capped, request_cause};

/// Where a repository lives and how it is reached.
pub struct Remote {
    base: Url,
    client: reqwest::Client,
}

/// What a GET ended with.
pub enum Fetched {
    Body(Vec<u8>),
    /// 404 or 403 (what static hosts answer for a file that does not exist).
    NotFound,
}

impl Remote {
    /// Checks `url` (https, or http to loopback) and builds the client.
    pub fn new(url: &str, timeout: Duration) -> Result<Remote, String> {
        let mut base = Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        match base.scheme() {
            "https" => {}
            "http" if is_loopback(&base) => {}
            "http" => return Err(format!("`{url}`: plain http is allowed only to a loopback address")),
            other => return Err(format!("`{url}`: unsupported scheme `{other}`")),
        }
        if !base.username().is_empty() || base.password().is_some() || base.query().is_some() {
            return Err(format!("`{url}`: URLs with credentials or a query are refused"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("modelsign/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Remote { base, client })
    }

    /// `path` (relative, e.g. `3.root.json`, `targets/<hex>.trusted_root.json`) below the base.
    fn url(&self, path: &str) -> Result<Url, String> {
        self.base.join(path).map_err(|e| format!("bad file name `{path}`: {e}"))
    }

    /// GETs `path`, reading at most `cap` bytes: a longer body is an error.
    pub async fn get(&self, path: &str, cap: u64) -> Result<Fetched, Fail> {
        let url = self.url(path).map_err(Fail::Refused)?;
        let net = |e: reqwest::Error| Fail::Unavailable(format!("cannot fetch {path}: {}", request_cause(&e)));
        let mut response = self.client.get(url).send().await.map_err(net)?;
        let status = response.status().as_u16();
        if status == 404 || status == 403 {
            return Ok(Fetched::NotFound);
        }
        if status != 200 {
            return Err(Fail::Unavailable(format!("fetching {path}: HTTP {status}")));
        }
        match read_capped(&mut response, cap).await {
            Ok(body) => Ok(Fetched::Body(body)),
            Err(ReadFailure::TooLarge) => Err(Fail::Refused(format!("{path} is larger than its limit of {cap} bytes"))),
            Err(ReadFailure::Transport(cause)) => Err(Fail::Unavailable(format!("reading {path}: {cause}"))),
        }
    }

    /// GETs a file that must exist.
    pub async fn get_existing(&self, path: &str, cap: u64) -> Result<Vec<u8>, Fail> {
        match self.get(path, cap).await? {
            Fetched::Body(body) => Ok(body),
            Fetched::NotFound => Err(Fail::Unavailable(format!("{path} is not in the repository (HTTP 404)"))),
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
