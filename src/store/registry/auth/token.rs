//! Bearer tokens from the token server: a `GET` with the scope (and basic credentials),
//! or an OAuth2 `refresh_token` exchange for an identity token; retried, timed, cached
//! per scope until shortly before they expire.

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::{Auth, Scope, Token};
use crate::error::{Error, Result};
use crate::store::registry::credentials::Secret;
use crate::store::registry::errors;
use crate::store::registry::origin::host_port;
use crate::store::registry::retry::{self, Failure};

/// The OAuth2 client id sent to token servers.
const CLIENT_ID: &str = "modelsign";
/// Tokens are dropped this long before the server says they expire.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The lifetime assumed when the token server does not say (the distribution spec's minimum).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

impl Auth {
    pub(super) async fn fetch_token(
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
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}
