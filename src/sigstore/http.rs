//! The HTTP client for Sigstore services, with the registry client's conventions: a
//! connect timeout and an overall one, no redirects followed (a redirect could carry the
//! identity token to another host), responses read up to a cap, HTTPS except to loopback
//! (a token must not cross a network in clear text), and errors that name the service.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Url};

use crate::net::{ReadFailure, read_capped, request_cause};
use crate::sign::Error;

/// Largest response read from a Sigstore service: a certificate chain, a log entry with
/// its proof or a timestamp is a few KiB.
pub const MAX_RESPONSE: usize = 1 << 20;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One service (Fulcio, Rekor, a TSA, the CI's token endpoint) at one URL.
#[derive(Debug, Clone)]
pub struct Service {
    /// For messages: `Fulcio https://fulcio.example`.
    pub name: String,
    pub url: Url,
}

impl Service {
    /// Parses `url`; plain `http` is accepted for loopback hosts only.
    pub fn new(kind: &str, url: &str) -> Result<Self, Error> {
        let name = format!("{kind} {url}");
        let bad = |reason: &str| Error::SigstoreService { service: name.clone(), reason: reason.into() };
        let parsed = Url::parse(url).map_err(|e| bad(&format!("not a URL: {e}")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if is_loopback(&parsed) => {}
            "http" => {
                return Err(bad("plain http is allowed only to a loopback address (tokens must not travel in clear)"));
            }
            other => return Err(bad(&format!("unsupported scheme `{other}`"))),
        }
        if parsed.username() != "" || parsed.password().is_some() {
            return Err(bad("URLs with credentials are refused"));
        }
        Ok(Service { name, url: parsed })
    }

    /// `path` below the service URL (which may itself have a path).
    pub fn join(&self, path: &str) -> Url {
        let mut url = self.url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/{}", path.trim_start_matches('/')));
        url
    }

    pub fn error(&self, reason: impl Into<String>) -> Error {
        Error::SigstoreService { service: self.name.clone(), reason: reason.into() }
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A client for one signing run. `timeout` bounds every request from start to last byte.
pub fn client(timeout: Duration) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .user_agent(concat!("modelsign/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::SigstoreService { service: "HTTP client".into(), reason: e.to_string() })
}

/// A response: status and at most [`MAX_RESPONSE`] bytes of body.
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON of type `T`, or an error naming the service.
    pub fn json<T: serde::de::DeserializeOwned>(&self, service: &Service, what: &str) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| service.error(format!("{what} is not the expected JSON: {e}")))
    }

    /// A one-line reason from an error body (`{"message": …}` or short text).
    pub fn reason(&self) -> String {
        let text = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let short: String = line.chars().take(300).collect();
        format!("HTTP {}{}", self.status, if short.is_empty() { String::new() } else { format!(": {short}") })
    }
}

/// Sends one request and reads the response (capped). `bearer` goes only to this service.
pub async fn send(
    client: &reqwest::Client,
    service: &Service,
    method: Method,
    url: Url,
    body: Option<(&str, Vec<u8>)>,
    bearer: Option<&str>,
) -> Result<Response, Error> {
    if url.origin() != service.url.origin() {
        return Err(service
            .error(format!("refusing to send a request to another origin ({})", url.origin().ascii_serialization())));
    }
    let mut request = client.request(method, url);
    if let Some((content_type, bytes)) = body {
        request = request.header(CONTENT_TYPE, content_type).body(bytes);
    }
    if let Some(token) = bearer {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| service.error("the token is not a valid header value"))?;
        value.set_sensitive(true);
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    let mut response =
        request.send().await.map_err(|e| service.error(format!("cannot reach it: {}", request_cause(&e))))?;
    let status = response.status().as_u16();
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = read_capped(&mut response, MAX_RESPONSE as u64).await.map_err(|failure| match failure {
        ReadFailure::TooLarge => service.error(format!("its response is larger than {MAX_RESPONSE} bytes")),
        ReadFailure::Transport(cause) => service.error(format!("reading its response: {cause}")),
    })?;
    Ok(Response { status, content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_to_loopback() {
        Service::new("Fulcio", "https://fulcio.example").unwrap();
        Service::new("Fulcio", "http://127.0.0.1:5555").unwrap();
        Service::new("Fulcio", "http://localhost:5555").unwrap();
        Service::new("Fulcio", "http://[::1]:5555").unwrap();
        let err = Service::new("Fulcio", "http://fulcio.example").unwrap_err().to_string();
        assert!(err.starts_with("Fulcio http://fulcio.example: plain http"), "{err}");
        assert!(Service::new("Rekor", "https://u:p@rekor.example").is_err());
        assert!(Service::new("Rekor", "ftp://rekor.example").is_err());
    }

    #[test]
    fn joins_below_the_service_path() {
        let s = Service::new("Rekor", "https://log.example/prefix/").unwrap();
        assert_eq!(s.join("/api/v1/log/entries").as_str(), "https://log.example/prefix/api/v1/log/entries");
        let s = Service::new("Rekor", "https://log.example").unwrap();
        assert_eq!(s.join("api/v2/log/entries").as_str(), "https://log.example/api/v2/log/entries");
    }
}
