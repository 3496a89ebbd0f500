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
//!
//! Submodules: [`challenge`] parses `WWW-Authenticate`, [`token`] fetches bearer tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};

use super::credentials::{Credential, DockerConfig};
use super::errors::ErrorBody;
use super::origin::CleartextRule;
use super::retry::RetryPolicy;
use crate::error::{Error, Result};
use crate::progress::{NoProgress, Progress};

mod challenge;
mod token;

pub(crate) use challenge::{Challenge, parse_challenge};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(Scope::pull("a/b").to_string(), "repository:a/b:pull");
        let s = Scope::push("a").and_pull("b").and_pull("b");
        assert_eq!(s.to_string(), "repository:a:pull,push repository:b:pull");
        assert_ne!(Scope::pull("a"), Scope::push("a"));
    }
}
