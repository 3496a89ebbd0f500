//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens fetched from the
//! token server (or exchanged for an identity token via OAuth2) and cached per scope, and
//! basic credentials.
//!
//! The challenge is learnt lazily, from the first 401, and remembered: an anonymous
//! registry costs no extra request, and once a registry is known to want a token, requests
//! carry one from the start. Token server failures are reported as they are, not as a
//! later bare 401.
//!
//! Credentials go to a token realm only as `origin::CleartextRule` allows (HTTPS, or a
//! plain-HTTP host the user chose); challenges are learnt only from the registry's own
//! answers (the client never hands over a redirect target's 401).
//!
//! Invariant: secrets live only in [`Credential`] and [`Token`] values, neither of which
//! prints them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::credentials::{Credential, DockerConfig, Secret};
use super::errors::{self, ErrorBody};
use super::origin::{CleartextRule, host_port};
use super::retry::{self, Failure, RetryPolicy};
use crate::error::{Error, Result};
use crate::progress::{NoProgress, Progress};

/// The OAuth2 client id sent to token servers.
const CLIENT_ID: &str = "modelsign";
/// Tokens are dropped this long before the server says they expire.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The lifetime assumed when the token server does not say (the distribution spec's minimum).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parses a `WWW-Authenticate` value into its challenges: `scheme` followed by
/// comma-separated `key=value` or `key="quoted, \"value\""` parameters.
pub(crate) fn parse_challenges(header: &str) -> Vec<(String, HashMap<String, String>)> {
    let bytes = header.as_bytes();
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    let mut i = 0;
    let skip = |i: &mut usize, pred: &dyn Fn(u8) -> bool| {
        while *i < bytes.len() && pred(bytes[*i]) {
            *i += 1;
        }
    };
    while i < bytes.len() {
        skip(&mut i, &|b| b == b' ' || b == b'\t' || b == b',');
        let start = i;
        skip(&mut i, &|b| !matches!(b, b' ' | b'\t' | b',' | b'='));
        if start == i {
            if i < bytes.len() {
                i += 1; // a stray '='
            }
            continue;
        }
        let token = &header[start..i];
        let mut j = i;
        skip(&mut j, &|b| b == b' ' || b == b'\t');
        let is_param = j < bytes.len() && bytes[j] == b'=' && !(j + 1 < bytes.len() && bytes[j + 1] == b'=');
        if !is_param {
            // A new challenge (or a token68 after the scheme, which carries nothing we use).
            if out.last().is_none_or(|(_, params)| {
                !params.is_empty() || token.eq_ignore_ascii_case("basic") || token.eq_ignore_ascii_case("bearer")
            }) {
                out.push((token.to_string(), HashMap::new()));
            }
            if i < bytes.len() && bytes[i] == b'=' {
                skip(&mut i, &|b| b == b'=');
            }
            continue;
        }
        i = j + 1;
        skip(&mut i, &|b| b == b' ' || b == b'\t');
        let value = if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                let ch = header[i..].chars().next().unwrap_or('\u{fffd}');
                v.push(ch);
                i += ch.len_utf8();
            }
            i += 1; // closing quote
            v
        } else {
            let s = i;
            skip(&mut i, &|b| b != b',');
            header[s..i].trim().to_string()
        };
        if let Some((_, params)) = out.last_mut() {
            params.insert(token.to_ascii_lowercase(), value);
        }
    }
    out
}

/// The challenge modelsign can answer: the first Bearer or Basic one.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    parse_challenges(header).into_iter().find_map(|(scheme, mut params)| {
        if scheme.eq_ignore_ascii_case("bearer") {
            let realm = params.remove("realm").filter(|r| !r.is_empty())?;
            Some(Challenge::Bearer { realm, service: params.remove("service"), scope: params.remove("scope") })
        } else if scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic)
        } else {
            None
        }
    })
}

/// The access a request needs, in the token server's terms
/// (`repository:models/llama:pull,push`). Several for a cross-repository mount.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct Scope(Vec<String>);

impl Scope {
    pub fn pull(repository: &str) -> Self {
        Scope(vec![format!("repository:{repository}:pull")])
    }
    pub fn push(repository: &str) -> Self {
        Scope(vec![format!("repository:{repository}:pull,push")])
    }
    /// No repository access (a login check).
    pub fn none() -> Self {
        Scope(Vec::new())
    }
    /// This scope plus pull access to `repository` (the source of a mount).
    pub fn and_pull(mut self, repository: &str) -> Self {
        let extra = format!("repository:{repository}:pull");
        if !self.0.contains(&extra) {
            self.0.push(extra);
        }
        self
    }
    pub fn items(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() { f.write_str("registry access") } else { f.write_str(&self.0.join(" ")) }
    }
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub(crate) struct Token {
    header: HeaderValue,
    expires: Instant,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("token", &"<redacted>").field("expires", &self.expires).finish()
    }
}

/// The credentials looked up for a registry, loaded once.
#[derive(Clone)]
struct Loaded {
    credential: Option<Credential>,
    /// Where they were looked for, for "none found" messages.
    looked_in: String,
    /// Why the lookup failed, reported when credentials turn out to be needed.
    problem: Option<String>,
}

/// Where a registry's credentials come from.
pub(crate) enum CredentialSource {
    /// Docker's config at its usual place (`$DOCKER_CONFIG`, `~/.docker`).
    DefaultConfig,
    /// A given docker config file.
    Config(DockerConfig),
    /// These credentials, whatever docker's config says (login checks them).
    Explicit(Credential),
}

/// The authentication state of one registry: its challenge, its credentials and its tokens.
pub(crate) struct Auth {
    registry: String,
    source: CredentialSource,
    loaded: tokio::sync::OnceCell<Loaded>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<Scope, Token>>,
    /// One token request at a time, so concurrent blob uploads share the answer.
    fetching: tokio::sync::Mutex<()>,
    policy: RetryPolicy,
    /// Receives notes of retried token requests.
    pub notes: Arc<dyn Progress>,
    /// Where credentials may go in clear text.
    rule: CleartextRule,
    /// The whole of one token request.
    token_timeout: Duration,
}

impl Auth {
    pub fn new(registry: &str, source: CredentialSource, rule: CleartextRule, token_timeout: Duration) -> Self {
        Auth {
            rule,
            token_timeout,
            registry: registry.to_string(),
            source,
            loaded: tokio::sync::OnceCell::new(),
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
            policy: RetryPolicy { max_attempts: 3, ..RetryPolicy::default() },
            notes: Arc::new(NoProgress),
        }
    }

    async fn credentials(&self) -> &Loaded {
        self.loaded
            .get_or_init(async || {
                let config = match &self.source {
                    CredentialSource::Explicit(c) => {
                        return Loaded { credential: Some(c.clone()), looked_in: c.source.clone(), problem: None };
                    }
                    CredentialSource::Config(c) => c.clone(),
                    CredentialSource::DefaultConfig => match DockerConfig::default_location() {
                        Ok(c) => c,
                        Err(e) => {
                            return Loaded {
                                credential: None,
                                looked_in: "docker config".into(),
                                problem: Some(e.to_string()),
                            };
                        }
                    },
                };
                let looked_in = config.path().display().to_string();
                let registry = self.registry.clone();
                match tokio::task::spawn_blocking(move || config.lookup(&registry)).await {
                    Ok(Ok(credential)) => Loaded { credential, looked_in, problem: None },
                    Ok(Err(e)) => Loaded { credential: None, looked_in, problem: Some(e.to_string()) },
                    Err(e) => Loaded { credential: None, looked_in, problem: Some(e.to_string()) },
                }
            })
            .await
    }

    fn known_challenge(&self) -> Option<Challenge> {
        self.challenge.lock().expect("challenge lock").clone()
    }

    /// The `Authorization` to send up front, from what earlier requests taught.
    pub async fn authorization(
        &self,
        http: &reqwest::Client,
        scope: &Scope,
        operation: &str,
    ) -> Result<Option<HeaderValue>> {
        match self.known_challenge() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.basic_header().await),
            Some(Challenge::Bearer { realm, service, .. }) => {
                if let Some(t) = self.cached_token(scope) {
                    return Ok(Some(t));
                }
                self.fetch_token(http, &realm, service.as_deref(), scope, operation).await.map(Some)
            }
        }
    }

    /// After a 401: learns the challenge, drops the token that was refused and returns a
    /// new `Authorization` to try, or `None` when there is nothing new to try.
    pub async fn after_unauthorized(
        &self,
        http: &reqwest::Client,
        headers: &HeaderMap,
        scope: &Scope,
        operation: &str,
        sent: Option<&HeaderValue>,
    ) -> Result<Option<HeaderValue>> {
        let challenge =
            headers.get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).find_map(parse_challenge);
        let Some(challenge) = challenge else { return Ok(None) };
        *self.challenge.lock().expect("challenge lock") = Some(challenge.clone());
        match challenge {
            Challenge::Basic => {
                let header = self.basic_header().await;
                Ok(if header.as_ref() == sent { None } else { header })
            }
            Challenge::Bearer { realm, service, .. } => {
                if let Some(sent) = sent {
                    self.tokens.lock().expect("token lock").retain(|_, t| t.header != *sent);
                }
                self.fetch_token(http, &realm, service.as_deref(), scope, operation).await.map(Some)
            }
        }
    }

    async fn basic_header(&self) -> Option<HeaderValue> {
        let cred = self.credentials().await.credential.as_ref()?;
        let mut v = HeaderValue::from_str(&cred.basic_header()?).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    fn cached_token(&self, scope: &Scope) -> Option<HeaderValue> {
        let tokens = self.tokens.lock().expect("token lock");
        tokens.get(scope).filter(|t| t.expires > Instant::now()).map(|t| t.header.clone())
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
        operation: &str,
    ) -> Result<HeaderValue> {
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(t) = self.cached_token(scope) {
            return Ok(t);
        }
        let loaded = self.credentials().await.clone();
        let realm_url = Url::parse(realm).map_err(|e| Error::Registry {
            registry: self.registry.clone(),
            operation: operation.to_string(),
            status: 401,
            code: None,
            message: Some(format!("the token realm `{realm}` is not a URL: {e}")),
        })?;
        let server = format!("the token server at {}", host_port(&realm_url));
        let token_operation = format!("{operation}: token request to {server}");
        if loaded.credential.is_some() {
            if !self.rule.realm_may_get_credentials(&realm_url) {
                return Err(Error::Unauthorized {
                    registry: self.registry.clone(),
                    action: format!("{operation} (scope {scope})"),
                    status: 401,
                    reason: format!(
                        "its token realm {} is not HTTPS; credentials are not sent there in clear text (name the host in --plain-http=HOST to allow it)",
                        host_port(&realm_url)
                    ),
                });
            }
            if let Some(warning) = self.rule.cleartext_warning(&realm_url) {
                self.notes.note(&warning);
            }
        }
        let (loaded, realm_url, server_ref, original) = (&loaded, &realm_url, server.as_str(), operation);
        let operation = token_operation.as_str();
        let answer: TokenAnswer = retry::run(&self.policy, &*self.notes, move |_| async move {
            let request = match loaded.credential.as_ref().map(|c| &c.secret) {
                Some(Secret::IdentityToken { token }) => {
                    let mut form = Url::parse("http://form.invalid/").expect("static URL");
                    {
                        let mut pairs = form.query_pairs_mut();
                        pairs.append_pair("grant_type", "refresh_token").append_pair("refresh_token", token);
                        if let Some(s) = service {
                            pairs.append_pair("service", s);
                        }
                        if !scope.items().is_empty() {
                            pairs.append_pair("scope", &scope.items().join(" "));
                        }
                        pairs.append_pair("client_id", CLIENT_ID);
                    }
                    let body = form.query().unwrap_or("").to_string();
                    http.post(realm_url.clone()).header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body)
                }
                other => {
                    let mut url = realm_url.clone();
                    {
                        let mut pairs = url.query_pairs_mut();
                        if let Some(s) = service {
                            pairs.append_pair("service", s);
                        }
                        for s in scope.items() {
                            pairs.append_pair("scope", s);
                        }
                        pairs.append_pair("client_id", CLIENT_ID);
                        if let Some(Secret::Basic { username, .. }) = other {
                            pairs.append_pair("account", username);
                        }
                    }
                    let mut req = http.get(url);
                    if let Some(cred) = &loaded.credential
                        && let Some(basic) = cred.basic_header()
                    {
                        let mut v = HeaderValue::from_str(&basic).map_err(|_| {
                            Error::Credentials(format!(
                                "the credentials from {} are not valid in an HTTP header",
                                cred.source
                            ))
                        })?;
                        v.set_sensitive(true);
                        req = req.header(AUTHORIZATION, v);
                    }
                    req
                }
            };
            let resp =
                request.timeout(self.token_timeout).send().await.map_err(|e| {
                    errors::transport_failure(realm_url.host_str().unwrap_or(realm), operation, &e, true)
                })?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let body = errors::read_error_body(resp).await;
                return Err(Failure::Fatal(self.refused(original, scope, status.as_u16(), loaded, &body, server_ref)));
            }
            if !status.is_success() {
                return Err(errors::status_failure(&self.registry, operation, resp).await);
            }
            let bytes =
                resp.bytes().await.map_err(|e| errors::transport_failure(&self.registry, operation, &e, true))?;
            serde_json::from_slice::<TokenAnswer>(&bytes).map_err(|e| {
                Failure::Fatal(Error::Registry {
                    registry: self.registry.clone(),
                    operation: operation.to_string(),
                    status: status.as_u16(),
                    code: None,
                    message: Some(format!("unreadable token answer: {e}")),
                })
            })
        })
        .await?;
        let token = answer.token.or(answer.access_token).filter(|t| !t.is_empty()).ok_or_else(|| Error::Registry {
            registry: self.registry.clone(),
            operation: operation.to_string(),
            status: 200,
            code: None,
            message: Some("the token server answered without a token".into()),
        })?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::Registry {
            registry: self.registry.clone(),
            operation: operation.to_string(),
            status: 200,
            code: None,
            message: Some("the token server answered a token that is not valid in an HTTP header".into()),
        })?;
        header.set_sensitive(true);
        let lifetime =
            answer.expires_in.map(Duration::from_secs).unwrap_or(DEFAULT_TOKEN_LIFETIME).max(DEFAULT_TOKEN_LIFETIME);
        let expires = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        self.tokens.lock().expect("token lock").insert(scope.clone(), Token { header: header.clone(), expires });
        Ok(header)
    }

    /// The error for a refusal after every authentication attempt: names the registry,
    /// the operation, the scope, and whether (and where) credentials were found.
    pub async fn unauthorized(&self, operation: &str, scope: &Scope, status: u16, body: &ErrorBody) -> Error {
        let loaded = self.credentials().await.clone();
        self.refused(operation, scope, status, &loaded, body, "the registry")
    }

    fn refused(
        &self,
        operation: &str,
        scope: &Scope,
        status: u16,
        loaded: &Loaded,
        body: &ErrorBody,
        by: &str,
    ) -> Error {
        let mut reason = match (&loaded.credential, &loaded.problem) {
            (Some(c), _) => format!("the credentials from {} were refused by {by}", c.source),
            (None, Some(problem)) => format!("no usable credentials ({problem})"),
            (None, None) => format!("no credentials for {} found in {}", self.registry, loaded.looked_in),
        };
        reason.push_str(&body.suffix());
        if loaded.credential.is_none() {
            reason.push_str(&format!("; run `modelsign login {}`", self.registry));
        }
        Error::Unauthorized {
            registry: self.registry.clone(),
            action: format!("{operation} (scope {scope})"),
            status,
            reason,
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        // Unquoted values, spaces, odd case, escaped quotes and an error parameter.
        let c =
            parse_challenge(r#"bearer  realm=https://a.example/t , service = "s \"q\"", error="insufficient_scope""#);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://a.example/t".into(),
                service: Some("s \"q\"".into()),
                scope: None
            })
        );
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None, "a bearer challenge needs a realm");
    }

    #[test]
    fn parses_basic_and_several_challenges() {
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Basic"), Some(Challenge::Basic));
        assert_eq!(parse_challenge(r#"Negotiate, Basic realm="x""#), Some(Challenge::Basic));
        let all = parse_challenges(r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, "Newauth");
        assert_eq!(all[0].1["title"], "Login to \"apps\"");
        assert_eq!(all[1].1["realm"], "simple");
        assert_eq!(parse_challenge("Negotiate abc=="), None);
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn scopes() {
        assert_eq!(Scope::pull("a/b").to_string(), "repository:a/b:pull");
        let s = Scope::push("a").and_pull("b").and_pull("b");
        assert_eq!(s.to_string(), "repository:a:pull,push repository:b:pull");
        assert_ne!(Scope::pull("a"), Scope::push("a"));
    }
}
