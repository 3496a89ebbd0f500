//! One HTTP client per registry: URLs, the authentication loop (send, on 401 learn the
//! challenge and answer it, send again) and retries of transient failures.
//!
//! Redirects are followed here, not by reqwest, so that credentials go only to the
//! registry's origin (see `origin`). Every wait for an answer has the idle timeout of
//! `timeouts`.
//!
//! Invariant: this is the only place requests are sent to the registry itself (token
//! servers are reached from `auth`). Statuses other than 401/403 and transient ones are
//! handed back to the caller, who knows what a 404 means for its operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::{Auth, CredentialSource, Scope};
use super::errors;
use super::origin::{CleartextRule, PlainHttp, host_port, same_origin};
use super::retry::{self, Failure, RetryPolicy};
use super::timeouts::Patience;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::TargetOptions;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

/// What a request sends.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(Bytes),
    /// A body made anew for every attempt (a streamed blob).
    Fresh(&'a (dyn MakeBody + 'a)),
}

/// Makes a request body, again for every attempt.
pub(crate) trait MakeBody: Send + Sync {
    fn make(&self) -> BoxFuture<'_, Result<reqwest::Body>>;
}

/// One request, as it is sent (again) on every attempt.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub payload: Payload<'a>,
    pub scope: &'a Scope,
    /// Names the operation in errors: `fetch manifest models/llama:v1`.
    pub operation: &'a str,
    /// Whether the whole request (body included) is bounded by `--timeout`; not for
    /// streamed blob bodies, whose reads have the idle timeout instead.
    pub bounded: bool,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, url: Url, scope: &'a Scope, operation: &'a str) -> Self {
        Call { method, url, headers: HeaderMap::new(), payload: Payload::Empty, scope, operation, bounded: true }
    }

    pub fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub fn payload(mut self, payload: Payload<'a>) -> Self {
        self.payload = payload;
        self
    }

    /// A request whose body (sent or received) may take longer than `--timeout`.
    pub fn no_timeout(mut self) -> Self {
        self.bounded = false;
        self
    }
}

pub(crate) struct Client {
    /// The registry as the user named it (messages, credentials).
    registry: String,
    /// `https://host[:port]/`
    base: Url,
    http: reqwest::Client,
    auth: Auth,
    pub policy: RetryPolicy,
    /// Receives retry notes of requests made without an operation's progress.
    notes: std::sync::Arc<dyn crate::progress::Progress>,
    /// The registry has answered at least once: later connection failures are transient.
    reached: AtomicBool,
    /// Timeouts, and how long the registry has kept silent.
    pub patience: Arc<Patience>,
    /// Where its credentials may go in clear text.
    rule: CleartextRule,
}

impl Client {
    /// A client for `registry`, reached as `options` say (scheme, CA files, `insecure`).
    pub fn new(registry: &str, options: &TargetOptions, credentials: CredentialSource) -> Result<Self> {
        let host = match super::credentials::normalize_registry(registry).as_str() {
            "docker.io" => "registry-1.docker.io".to_string(),
            _ => registry.to_string(),
        };
        let plain_http = PlainHttp::new(options.plain_http, &options.plain_http_hosts);
        let scheme = if plain_http.applies_to(registry) { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{host}/"))
            .ok()
            .filter(|u| u.path() == "/" && u.query().is_none() && u.username().is_empty())
            .ok_or_else(|| Error::InvalidReference {
                reference: registry.to_string(),
                reason: "not a registry host[:port]".into(),
            })?;
        let ca_files = super::tls::client_config(&options.ca_files)?;
        let mut http = reqwest::Client::builder()
            .user_agent(concat!("modelsign/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(60));
        if options.insecure {
            http = http.tls_danger_accept_invalid_certs(true);
        } else if let Some(config) = ca_files {
            http = http.tls_backend_preconfigured(config);
        }
        let http = http
            .build()
            .map_err(|e| Error::Unreachable { registry: registry.to_string(), reason: errors::root_cause(&e) })?;
        let patience = Arc::new(Patience::new(options.timeout));
        let rule = CleartextRule { registry: base.clone(), plain_http };
        Ok(Client {
            registry: registry.to_string(),
            auth: Auth::new(registry, credentials, rule.clone(), patience.idle()),
            base,
            http,
            policy: RetryPolicy::default(),
            notes: std::sync::Arc::new(crate::progress::NoProgress),
            reached: AtomicBool::new(false),
            patience,
            rule,
        })
    }

    /// Takes credentials from `source` from now on (forgetting tokens).
    pub fn set_credentials(&mut self, source: CredentialSource) {
        self.auth = Auth::new(&self.registry, source, self.rule.clone(), self.patience.idle());
        self.auth.notes = self.notes.clone();
    }

    /// Where retry notes of requests made without an operation's progress go.
    pub fn notes(&self) -> &dyn crate::progress::Progress {
        &*self.notes
    }

    /// Sends retry notes of requests made without an operation's progress (token
    /// requests included) to `notes`.
    pub fn set_notes(&mut self, notes: std::sync::Arc<dyn crate::progress::Progress>) {
        self.auth.notes = notes.clone();
        self.notes = notes;
    }

    /// `base` + `path` (which starts with `/v2/`).
    pub fn url(&self, path: &str) -> Url {
        self.base.join(path.trim_start_matches('/')).expect("registry paths are valid URL paths")
    }

    /// Resolves a `Location` or `Link` target (absolute, or relative to `against`). Requests
    /// to it carry credentials only if it is on the registry's origin.
    pub fn resolve_location(&self, against: &Url, location: &str, operation: &str) -> Result<Url> {
        against.join(location).map_err(|e| Error::Registry {
            registry: self.registry.clone(),
            operation: operation.to_string(),
            status: 0,
            code: None,
            message: Some(format!("unusable location `{location}`: {e}")),
        })
    }

    /// Sends `call` once, answering authentication challenges (at most one new credential
    /// per call). 401/403 that survive become `Error::Unauthorized`; every other status is
    /// returned; transport errors are classified.
    pub async fn send_once(&self, call: &Call<'_>) -> Result<Response, Failure> {
        let mut authorization = self.auth.authorization(&self.http, call.scope, call.operation).await?;
        for round in 0..2 {
            let resp = self.send_following(call, authorization.as_ref()).await?;
            let status = resp.status();
            if !same_origin(resp.url(), &self.base)
                && matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
            {
                return Err(Failure::Fatal(Error::Unauthorized {
                    registry: self.registry.clone(),
                    action: format!("{} (scope {})", call.operation, call.scope),
                    status: status.as_u16(),
                    reason: format!(
                        "it redirected to {}, which asked for credentials; registry credentials are never sent to another host",
                        host_port(resp.url())
                    ),
                }));
            }
            if status == StatusCode::UNAUTHORIZED && round == 0 {
                let next = self
                    .auth
                    .after_unauthorized(&self.http, resp.headers(), call.scope, call.operation, authorization.as_ref())
                    .await?;
                if next.is_some() {
                    authorization = next;
                    continue;
                }
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let body = errors::read_error_body(resp).await;
                return Err(Failure::Fatal(
                    self.auth.unauthorized(call.operation, call.scope, status.as_u16(), &body).await,
                ));
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second round")
    }

    /// Sends `call` with `authorization` and follows redirects of GET and HEAD requests.
    /// `authorization` goes only to the registry's origin.
    async fn send_following(&self, call: &Call<'_>, authorization: Option<&HeaderValue>) -> Result<Response, Failure> {
        let mut url = call.url.clone();
        for hop in 0..=MAX_REDIRECTS {
            let ours = same_origin(&url, &self.base);
            let mut req = self.http.request(call.method.clone(), url.clone()).headers(call.headers.clone());
            if ours && let Some(a) = authorization {
                if let Some(warning) = self.rule.cleartext_warning(&url) {
                    self.notes.note(&warning);
                }
                req = req.header(AUTHORIZATION, a.clone());
            }
            if call.bounded {
                req = req.timeout(self.patience.total());
            }
            let streamed = matches!(call.payload, Payload::Fresh(_));
            req = match &call.payload {
                _ if hop > 0 => req,
                Payload::Empty => req,
                Payload::Bytes(b) => req.body(b.clone()),
                Payload::Fresh(make) => req.body(make.make().await?),
            };
            let resp = self.answer(req, call.operation, streamed).await?;
            let follow = matches!(call.method, Method::GET | Method::HEAD)
                && matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308);
            let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok());
            let (true, Some(location)) = (follow, location) else { return Ok(resp) };
            let next = self.resolve_location(resp.url(), location, call.operation)?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(Failure::Fatal(self.bad_redirect(call.operation, format!("to `{next}`"))));
            }
            url = next;
        }
        Err(Failure::Fatal(self.bad_redirect(call.operation, format!("more than {MAX_REDIRECTS} times"))))
    }

    fn bad_redirect(&self, operation: &str, what: String) -> Error {
        Error::Registry {
            registry: self.registry.clone(),
            operation: operation.to_string(),
            status: 0,
            code: None,
            message: Some(format!("redirected {what}")),
        }
    }

    /// Sends `req` and waits for the answer's head, at most the idle timeout (uploads
    /// with a streamed body excepted: sending takes as long as it takes).
    async fn answer(&self, req: reqwest::RequestBuilder, operation: &str, streamed: bool) -> Result<Response, Failure> {
        let Some(wait) = self.patience.next_wait() else {
            let waited = self.patience.total();
            return Err(Failure::Fatal(self.patience.silence_error(&self.registry, operation, waited, true)));
        };
        let started = tokio::time::Instant::now();
        let result = if streamed {
            req.send().await
        } else {
            match tokio::time::timeout(wait, req.send()).await {
                Ok(result) => result,
                Err(_) => {
                    let exhausted = self.patience.stalled(started);
                    let error = self.patience.silence_error(&self.registry, operation, wait, exhausted);
                    return Err(if exhausted {
                        Failure::Fatal(error)
                    } else {
                        Failure::Transient { error, retry_after: None }
                    });
                }
            }
        };
        match result {
            Ok(resp) => {
                self.patience.heard();
                self.reached.store(true, Ordering::Relaxed);
                Ok(resp)
            }
            Err(e) => {
                Err(errors::transport_failure(&self.registry, operation, &e, self.reached.load(Ordering::Relaxed)))
            }
        }
    }

    /// Sends `call`, retrying transient failures (429, 5xx, dropped connections) with
    /// backoff. Other statuses are returned as they are.
    pub async fn send(&self, call: &Call<'_>, progress: &dyn Progress) -> Result<Response> {
        retry::run(&self.policy, progress, move |_| async move {
            let resp = self.send_once(call).await?;
            if errors::is_transient_status(resp.status()) {
                return Err(errors::status_failure(&self.registry, call.operation, resp).await);
            }
            Ok(resp)
        })
        .await
    }

    /// `Error::Registry` for an unexpected answer.
    pub async fn unexpected(&self, operation: &str, resp: Response) -> Error {
        errors::status_error(&self.registry, operation, resp).await
    }

    /// Checks that the registry accepts this client's credentials: `GET /v2/` through the
    /// challenge, with no repository scope.
    pub async fn check_login(&self) -> Result<()> {
        let scope = Scope::none();
        let operation = "login";
        let call = Call::new(Method::GET, self.url("/v2/"), &scope, operation);
        let resp = self.send(&call, &*self.notes).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.unexpected(operation, resp).await)
    }
}
