//! Turning what went wrong on the wire into one-line [`Error`]s: OCI error bodies
//! (`{"errors":[{"code","message"}]}`) into `Error::Registry`, transport failures into
//! `Error::Unreachable` with their root cause, and deciding which of them are transient.
//!
//! Invariant: no credential or token ever reaches an error message; only status codes,
//! the registry's own error codes/messages and short causes do.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde::Deserialize;

use super::retry::{Failure, parse_retry_after};
use crate::error::Error;
pub(crate) use crate::net::root_cause;
use crate::net::{one_line, shorten};

/// Longest error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest non-JSON error text kept in a message.
const MAX_ERROR_TEXT: usize = 200;

/// The registry's explanation of an error status: the first OCI error's code, and the
/// messages of all of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ErrorBody {
    pub fn parse(bytes: &[u8]) -> ErrorBody {
        #[derive(Deserialize)]
        struct Errors {
            errors: Vec<OneError>,
        }
        #[derive(Deserialize)]
        struct OneError {
            code: Option<String>,
            message: Option<String>,
        }
        if let Ok(parsed) = serde_json::from_slice::<Errors>(bytes)
            && !parsed.errors.is_empty()
        {
            let code = parsed.errors.iter().find_map(|e| e.code.clone());
            let messages: Vec<String> = parsed
                .errors
                .iter()
                .filter_map(|e| e.message.as_deref().map(one_line))
                .filter(|m| !m.is_empty())
                .collect();
            let message = if messages.is_empty() { None } else { Some(messages.join("; ")) };
            return ErrorBody { code, message };
        }
        // Some servers (and proxies) answer plain text or HTML: keep a short first line.
        let text = String::from_utf8_lossy(bytes);
        let text = one_line(text.trim());
        if text.is_empty() || text.starts_with('<') {
            return ErrorBody::default();
        }
        ErrorBody { code: None, message: Some(shorten(&text, MAX_ERROR_TEXT)) }
    }

    /// ` CODE: message` for appending to a sentence (empty when there is nothing).
    pub fn suffix(&self) -> String {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!(": {c}: {m}"),
            (Some(c), None) => format!(": {c}"),
            (None, Some(m)) => format!(": {m}"),
            (None, None) => String::new(),
        }
    }
}

/// Reads (at most [`MAX_ERROR_BODY`] of) an error response's body.
pub(crate) async fn read_error_body(mut resp: Response) -> ErrorBody {
    // A registry that stalls its error body must not hold the error up: what arrived within
    // the time cap is enough for a message.
    let deadline = tokio::time::Instant::now() + super::timeouts::ERROR_BODY_TIME;
    let mut buf = Vec::new();
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, resp.chunk()).await {
        let room = MAX_ERROR_BODY - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    ErrorBody::parse(&buf)
}

/// `Error::Registry` for an unexpected status, with the body's explanation.
pub(crate) async fn status_error(registry: &str, operation: &str, resp: Response) -> Error {
    let status = resp.status().as_u16();
    let body = read_error_body(resp).await;
    Error::Registry {
        registry: registry.to_string(),
        operation: operation.to_string(),
        status,
        code: body.code,
        message: body.message,
    }
}

/// Whether a status is worth retrying: 429 and the 5xx that signal a passing condition.
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The `Retry-After` of a response, if it has a usable one.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(RETRY_AFTER)?.to_str().ok().and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// A failure for an unexpected status: transient for 429/5xx, fatal otherwise.
pub(crate) async fn status_failure(registry: &str, operation: &str, resp: Response) -> Failure {
    let transient = is_transient_status(resp.status());
    let after = retry_after(resp.headers());
    let error = status_error(registry, operation, resp).await;
    if transient { Failure::Transient { error, retry_after: after } } else { Failure::Fatal(error) }
}

/// Classifies a transport error. Connection failures on first contact (refused, DNS,
/// TLS) are fatal: retrying a registry that was never reachable only delays the message.
/// Once the registry has answered, dropped connections and timeouts are transient; a
/// certificate that is not trusted never is.
pub(crate) fn transport_failure(
    registry: &str,
    operation: &str,
    err: &reqwest::Error,
    reached_before: bool,
) -> Failure {
    let mut reason = root_cause(err);
    if err.is_timeout() {
        reason = format!("timed out during {operation} ({reason})");
    } else if err.is_connect() && looks_like_certificate(&reason) {
        let error = Error::Unreachable { registry: registry.to_string(), reason: certificate_reason(&reason) };
        return Failure::Fatal(error);
    } else if err.is_connect() && looks_like_tls(&reason) {
        reason = format!("{reason} (TLS handshake failed; for a plain-HTTP registry use --plain-http)");
    } else if !err.is_connect() {
        reason = format!("{operation}: {reason}");
    }
    let error = Error::Unreachable { registry: registry.to_string(), reason };
    let transient =
        if err.is_connect() { reached_before } else { err.is_timeout() || err.is_request() || err.is_body() };
    if transient { Failure::Transient { error, retry_after: None } } else { Failure::Fatal(error) }
}

/// A certificate failure, with what to do about it.
fn certificate_reason(reason: &str) -> String {
    // webpki's errors come wrapped: `Other(OtherError(CaUsedAsEndEntity))`.
    let reason = match reason.split_once("Other(OtherError(") {
        Some((head, tail)) if tail.ends_with("))") => format!("{head}{}", &tail[..tail.len() - 2]),
        _ => reason.to_string(),
    };
    format!(
        "TLS certificate problem: {reason} (trust the registry's CA with --ca-file PATH, or skip the check with --insecure)"
    )
}

/// rustls says `invalid peer certificate: …` (`UnknownIssuer`, `NotValidForName`, expired…).
fn looks_like_certificate(reason: &str) -> bool {
    reason.to_ascii_lowercase().contains("certificate")
}

fn looks_like_tls(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    ["tls", "certificate", "handshake", "corrupt message", "invalidcontenttype", "peer"].iter().any(|w| r.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oci_error_bodies() {
        let b = ErrorBody::parse(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
        );
        assert_eq!(b.code.as_deref(), Some("MANIFEST_UNKNOWN"));
        assert_eq!(b.message.as_deref(), Some("manifest unknown"));
        assert_eq!(b.suffix(), ": MANIFEST_UNKNOWN: manifest unknown");
        let b = ErrorBody::parse(br#"{"errors":[{"code":"A","message":"one\ntwo"},{"code":"B","message":"three"}]}"#);
        assert_eq!(b.code.as_deref(), Some("A"));
        assert_eq!(b.message.as_deref(), Some("one two; three"));
        assert_eq!(ErrorBody::parse(b"").suffix(), "");
        assert_eq!(ErrorBody::parse(b"<html><body>502</body></html>"), ErrorBody::default());
        assert_eq!(ErrorBody::parse(b"upstream  busy\n").message.as_deref(), Some("upstream busy"));
        assert!(ErrorBody::parse(&vec![b'x'; 5000]).message.unwrap().len() < 210);
    }

    #[test]
    fn certificate_failures_say_what_to_do() {
        assert!(looks_like_certificate("invalid peer certificate: UnknownIssuer"));
        assert!(!looks_like_certificate("Connection refused (os error 111)"));
        assert_eq!(
            certificate_reason("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))"),
            certificate_reason("invalid peer certificate: CaUsedAsEndEntity")
        );
        let reason = certificate_reason("invalid peer certificate: UnknownIssuer");
        assert!(reason.starts_with("TLS certificate problem: invalid peer certificate: UnknownIssuer"), "{reason}");
        assert!(reason.contains("--ca-file") && reason.contains("--insecure") && !reason.contains('\n'), "{reason}");
    }

    #[test]
    fn transient_statuses() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_transient_status(StatusCode::from_u16(s).unwrap()));
        }
        for s in [400, 401, 403, 404, 416, 501] {
            assert!(!is_transient_status(StatusCode::from_u16(s).unwrap()));
        }
    }
}
