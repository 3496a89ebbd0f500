//! Where credentials may go: the registry's origin, and token servers it names.
//!
//! - The registry's credentials (and tokens for it) go only to the registry's own origin
//!   (scheme, host, port). A redirect to another origin (blob storage, a CDN) is followed
//!   without them, and its 401/403 is never answered: a redirect target gets no registry
//!   credentials, ever, not even through a token realm it names.
//! - A token realm named by the registry's own challenge may be another host (Docker Hub's
//!   is). Credentials go there only over HTTPS, or over plain HTTP when the realm is on a
//!   loopback address, on the registry's own host (the user chose plain HTTP for it), or on
//!   a host named in `--plain-http=HOST,…`.
//! - `--plain-http` with no host list lets every registry be reached over HTTP; the first
//!   time credentials go in clear text to a registry that is not on loopback, one warning
//!   says so.
//!
//! Invariant: every decision here is made on parsed URLs, never on strings.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Url;

/// Whether `a` and `b` are the same origin: scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

/// `host` or `host:port` of a URL, for messages and host lists.
pub(crate) fn host_port(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => url.as_str().to_string(),
    }
}

/// Whether a host (name or address, `[::1]` brackets allowed) is the local machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Strips a `:port` from `host[:port]` (IPv6 in brackets kept whole).
fn host_only(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host_port,
    }
}

/// Which registries are reached over plain HTTP (`--plain-http[=HOST,…]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum PlainHttp {
    /// HTTPS everywhere (the default).
    #[default]
    Never,
    /// Every registry (`--plain-http` alone): warns when credentials go in clear text to a
    /// registry that is not on loopback.
    Everywhere,
    /// Only these `host` or `host:port` entries.
    Hosts(Vec<String>),
}

impl PlainHttp {
    /// From `--plain-http` (`enabled`) and its host list (empty: every registry).
    pub fn new(enabled: bool, hosts: &[String]) -> Self {
        let hosts: Vec<String> = hosts.iter().map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).collect();
        match (enabled, hosts.is_empty()) {
            (false, true) => PlainHttp::Never,
            (true, true) => PlainHttp::Everywhere,
            (_, false) => PlainHttp::Hosts(hosts),
        }
    }

    /// Whether `registry` (`host[:port]`, as the user wrote it) is reached over HTTP.
    pub fn applies_to(&self, registry: &str) -> bool {
        match self {
            PlainHttp::Never => false,
            PlainHttp::Everywhere => true,
            PlainHttp::Hosts(hosts) => hosts.iter().any(|h| host_matches(h, registry)),
        }
    }
}

/// `entry` names `target` (`host:port` exactly, or `host` for any port of it).
fn host_matches(entry: &str, target: &str) -> bool {
    let (entry, target) = (entry.trim().to_ascii_lowercase(), target.trim().to_ascii_lowercase());
    entry == target || (host_only(&entry) == entry && host_only(&target) == entry)
}

/// The rule for one registry: may credentials go to `url` over its scheme?
#[derive(Debug, Clone)]
pub(crate) struct CleartextRule {
    /// The registry's base URL.
    pub registry: Url,
    pub plain_http: PlainHttp,
}

/// Set once the clear-text warning has been given (one per process).
static WARNED: AtomicBool = AtomicBool::new(false);

impl CleartextRule {
    /// Whether credentials may be sent to the token server at `realm`.
    pub fn realm_may_get_credentials(&self, realm: &Url) -> bool {
        if realm.scheme() == "https" {
            return true;
        }
        if realm.scheme() != "http" {
            return false;
        }
        let host = realm.host_str().unwrap_or("");
        is_loopback(host)
            || (self.registry.scheme() == "http" && self.registry.host_str() == realm.host_str())
            || matches!(&self.plain_http, PlainHttp::Hosts(hosts) if hosts.iter().any(|h| host_matches(h, &host_port(realm))))
    }

    /// The warning to give (once per process) before credentials go to the registry or
    /// `to` in clear text because `--plain-http` named no hosts.
    pub fn cleartext_warning(&self, to: &Url) -> Option<String> {
        if to.scheme() != "http"
            || self.plain_http != PlainHttp::Everywhere
            || is_loopback(to.host_str().unwrap_or(""))
            || WARNED.swap(true, Ordering::Relaxed)
        {
            return None;
        }
        Some(format!(
            "warning: --plain-http: credentials for {} are sent in clear text to {}; limit plain HTTP to the registries that need it with --plain-http={}",
            host_port(&self.registry),
            host_port(to),
            host_port(&self.registry),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn origins() {
        assert!(same_origin(&url("https://r.example/v2/"), &url("https://r.example:443/x")));
        assert!(!same_origin(&url("https://r.example/"), &url("http://r.example/")));
        assert!(!same_origin(&url("http://127.0.0.1:5000/"), &url("http://127.0.0.1:5001/")));
        assert!(!same_origin(&url("http://127.0.0.1:5000/"), &url("http://127.0.0.2:5000/")));
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "LOCALHOST", "127.0.0.1", "127.3.4.5", "::1", "[::1]", "a.localhost"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1", "localhost.example", "example.com", "", "[::2]"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn plain_http_host_lists() {
        let hosts = PlainHttp::Hosts(vec!["reg.lan".into(), "127.0.0.1:5000".into()]);
        assert!(hosts.applies_to("reg.lan") && hosts.applies_to("reg.lan:8080") && hosts.applies_to("REG.lan"));
        assert!(hosts.applies_to("127.0.0.1:5000"));
        assert!(
            !hosts.applies_to("127.0.0.1:5001") && !hosts.applies_to("127.0.0.1") && !hosts.applies_to("reg.lan.evil")
        );
        assert!(PlainHttp::Everywhere.applies_to("anything"));
        assert!(!PlainHttp::Never.applies_to("localhost:5000"));
    }

    #[test]
    fn token_realms() {
        let rule = CleartextRule { registry: url("https://r.example/"), plain_http: PlainHttp::Never };
        assert!(rule.realm_may_get_credentials(&url("https://auth.example/token")));
        assert!(rule.realm_may_get_credentials(&url("http://127.0.0.1:9/token")));
        assert!(!rule.realm_may_get_credentials(&url("http://auth.example/token")));
        assert!(!rule.realm_may_get_credentials(&url("http://r.example/token")), "the registry itself is HTTPS");
        assert!(!rule.realm_may_get_credentials(&url("ftp://auth.example/token")));
        let plain = CleartextRule { registry: url("http://reg.lan:5000/"), plain_http: PlainHttp::Everywhere };
        assert!(plain.realm_may_get_credentials(&url("http://reg.lan:5001/token")));
        assert!(!plain.realm_may_get_credentials(&url("http://evil.example/token")));
        let listed = CleartextRule {
            registry: url("http://reg.lan/"),
            plain_http: PlainHttp::Hosts(vec!["reg.lan".into(), "auth.lan:8080".into()]),
        };
        assert!(listed.realm_may_get_credentials(&url("http://auth.lan:8080/token")));
        assert!(!listed.realm_may_get_credentials(&url("http://auth.lan:8081/token")));
    }
}
