//! One HTTP client per registry: URLs, the authentication loop (send, on 401 learn the
//! challenge and answer it, send again) and retries of transient failures.
//!
//! Invariant: this is the only place requests are sent to the registry itself (token
//! servers are reached from `auth`). Statuses other than 401/403 and transient ones are
//! handed back to the caller, who knows what a 404 means for its operation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::{Auth, CredentialSource, Scope};
use super::errors;
use super::retry::{self, Failure, RetryPolicy};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::TargetOptions;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The whole of a small request (manifests, HEAD, upload sessions). Blob bodies have none.
pub(crate) const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// `None` for streamed blob bodies.
    pub timeout: Option<Duration>,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, url: Url, scope: &'a Scope, operation: &'a str) -> Self {
        Call {
            method,
            url,
            headers: HeaderMap::new(),
            payload: Payload::Empty,
            scope,
            operation,
            timeout: Some(SMALL_REQUEST_TIMEOUT),
        }
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

    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
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
}

impl Client {
    /// A client for `registry`, reached as `options` say (scheme, CA files, `insecure`).
    pub fn new(registry: &str, options: &TargetOptions, credentials: CredentialSource) -> Result<Self> {
        let host = match super::credentials::normalize_registry(registry).as_str() {
            "docker.io" => "registry-1.docker.io".to_string(),
            _ => registry.to_string(),
        };
        let scheme = if options.plain_http { "http" } else { "https" };
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
        Ok(Client {
            registry: registry.to_string(),
            base,
            http,
            auth: Auth::new(registry, credentials),
            policy: RetryPolicy::default(),
            notes: std::sync::Arc::new(crate::progress::NoProgress),
            reached: AtomicBool::new(false),
        })
    }

    /// Takes credentials from `source` from now on (forgetting tokens).
    pub fn set_credentials(&mut self, source: CredentialSource) {
        self.auth = Auth::new(&self.registry, source);
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

    /// Resolves a `Location` or `Link` target (absolute, or relative to `against`).
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
            let mut req = self.http.request(call.method.clone(), call.url.clone()).headers(call.headers.clone());
            if let Some(a) = &authorization {
                req = req.header(AUTHORIZATION, a.clone());
            }
            if let Some(t) = call.timeout {
                req = req.timeout(t);
            }
            req = match &call.payload {
                Payload::Empty => req,
                Payload::Bytes(b) => req.body(b.clone()),
                Payload::Fresh(make) => req.body(make.make().await?),
            };
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    return Err(errors::transport_failure(
                        &self.registry,
                        call.operation,
                        &e,
                        self.reached.load(Ordering::Relaxed),
                    ));
                }
            };
            self.reached.store(true, Ordering::Relaxed);
            let status = resp.status();
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
