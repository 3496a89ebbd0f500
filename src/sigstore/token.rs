//! The OIDC identity token keyless signing presents to Fulcio: given on the command line,
//! or fetched from the CI the way cosign does (GitHub Actions: `ACTIONS_ID_TOKEN_REQUEST_URL`
//! and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, given to jobs with `permissions: id-token: write`).
//!
//! The token's claims are read **without** checking its signature: that is Fulcio's job.
//! They are read only to refuse early what Fulcio would refuse (a token for another
//! audience, an expired one) with a clear line, and to know the subject the proof of
//! possession must sign. The token itself is a credential: its `Debug` output hides it,
//! and it is sent to Fulcio only.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::http::{self, Service};
use crate::sign::Error;

/// The audience Sigstore's Fulcio accepts (cosign's default `--oidc-client-id`).
pub const SIGSTORE_AUDIENCE: &str = "sigstore";

/// Largest token accepted (real ones are 1–2 KiB).
const MAX_TOKEN: usize = 64 << 10;

fn bad(reason: impl Into<String>) -> Error {
    Error::IdentityToken(reason.into())
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    exp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// A JWT identity token and the claims read from it (unverified).
#[derive(Clone)]
pub struct IdentityToken {
    raw: String,
    issuer: String,
    subject: String,
    audiences: Vec<String>,
    email: Option<String>,
    expires: Option<SystemTime>,
}

impl fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityToken")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl IdentityToken {
    /// Reads a compact JWT (`header.claims.signature`).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let raw = raw.trim();
        if raw.len() > MAX_TOKEN {
            return Err(bad(format!("longer than {MAX_TOKEN} bytes")));
        }
        let parts: Vec<&str> = raw.split('.').collect();
        let [_, claims, _] = parts.as_slice() else {
            return Err(bad("not a JWT (expected three dot-separated parts)"));
        };
        let claims = URL_SAFE_NO_PAD
            .decode(claims.trim_end_matches('='))
            .map_err(|_| bad("not a JWT (its claims are not base64url)"))?;
        let claims: Claims =
            serde_json::from_slice(&claims).map_err(|e| bad(format!("not a JWT (its claims are not JSON: {e})")))?;
        let issuer = claims.iss.filter(|s| !s.is_empty()).ok_or_else(|| bad("it has no issuer (iss)"))?;
        let subject = claims.sub.filter(|s| !s.is_empty()).ok_or_else(|| bad("it has no subject (sub)"))?;
        let audiences = match claims.aud {
            Some(Audience::One(a)) => vec![a],
            Some(Audience::Many(a)) => a,
            None => Vec::new(),
        };
        let expires = claims
            .exp
            .filter(|e| e.is_finite() && *e >= 0.0 && *e < 1e11)
            .map(|e| UNIX_EPOCH + Duration::from_secs(e as u64));
        Ok(IdentityToken { raw: raw.to_string(), issuer, subject, audiences, email: claims.email, expires })
    }

    /// Refuses a token Fulcio would refuse: another audience, or expired.
    pub fn check_usable(&self, audience: &str) -> Result<(), Error> {
        if !self.audiences.iter().any(|a| a == audience) {
            return Err(bad(format!(
                "issued for audience {}, not `{audience}`: ask the OIDC provider for a token with audience `{audience}`",
                if self.audiences.is_empty() {
                    "(none)".to_string()
                } else {
                    self.audiences.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                }
            )));
        }
        if let Some(expires) = self.expires
            && expires <= SystemTime::now()
        {
            return Err(bad(format!(
                "expired at {} (tokens live a few minutes: get a fresh one)",
                humantime::format_rfc3339_seconds(expires)
            )));
        }
        Ok(())
    }

    /// What the proof of possession signs, as Fulcio checks it: the email for tokens that
    /// carry one, else the subject.
    pub fn proof_subject(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.subject)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The token itself (a credential: send it to Fulcio only).
    pub(crate) fn secret(&self) -> &str {
        &self.raw
    }
}

/// The GitHub Actions token-request endpoint and its bearer token, from
/// `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
#[derive(Clone)]
pub struct GithubActions {
    pub request_url: String,
    request_token: String,
}

impl fmt::Debug for GithubActions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubActions").field("request_url", &self.request_url).finish_non_exhaustive()
    }
}

impl GithubActions {
    /// From the environment of a job with `id-token: write`; `None` outside one.
    pub fn from_env() -> Option<Self> {
        let request_url = std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL").ok().filter(|v| !v.is_empty())?;
        let request_token = std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").ok().filter(|v| !v.is_empty())?;
        Some(GithubActions { request_url, request_token })
    }

    /// Asks the runner for an identity token for `audience` (GET URL&audience=…, the
    /// request token as bearer, `{"value": TOKEN}` back).
    pub async fn fetch(&self, client: &reqwest::Client, audience: &str) -> Result<IdentityToken, Error> {
        let service = Service::new("GitHub Actions token endpoint", &self.request_url)?;
        let mut url = service.url.clone();
        url.query_pairs_mut().append_pair("audience", audience);
        let response = http::send(client, &service, reqwest::Method::GET, url, None, Some(&self.request_token)).await?;
        if response.status != 200 {
            return Err(service.error(format!("refused to issue an identity token ({})", response.reason())));
        }
        #[derive(Deserialize)]
        struct Answer {
            value: String,
        }
        let answer: Answer = response.json(&service, "the token response")?;
        IdentityToken::parse(&answer.value)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn jwt(claims: serde_json::Value) -> String {
        let enc = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        format!("{}.{}.{}", enc(br#"{"alg":"RS256"}"#), enc(claims.to_string().as_bytes()), enc(b"sig"))
    }

    #[test]
    fn reads_claims_and_checks_audience_and_expiry() {
        let far = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
        let t = IdentityToken::parse(&jwt(serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com", "sub": "repo:acme/m:ref:refs/heads/main",
            "aud": "sigstore", "exp": far})))
        .unwrap();
        t.check_usable("sigstore").unwrap();
        assert_eq!(t.proof_subject(), "repo:acme/m:ref:refs/heads/main");
        assert!(!format!("{t:?}").contains(t.secret()));
        let err = t.check_usable("other").unwrap_err().to_string();
        assert!(err.contains("audience `sigstore`, not `other`"), "{err}");

        let t = IdentityToken::parse(&jwt(serde_json::json!({
            "iss": "https://accounts.example", "sub": "123", "email": "a@example.com",
            "aud": ["x", "sigstore"], "exp": 1000})))
        .unwrap();
        assert_eq!(t.proof_subject(), "a@example.com");
        assert!(t.check_usable("sigstore").unwrap_err().to_string().contains("expired"));
    }

    #[test]
    fn refuses_what_is_not_a_token() {
        for bad in ["", "a.b", "a.!!!.c", &jwt(serde_json::json!({"sub": "x"})), &jwt(serde_json::json!({"iss": "x"}))]
        {
            assert!(matches!(IdentityToken::parse(bad), Err(Error::IdentityToken(_))), "{bad}");
        }
    }
}
