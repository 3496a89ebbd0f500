//! Fulcio: a short-lived signing certificate for an ephemeral key, issued to the identity
//! an OIDC token proves (`POST /api/v2/signingCert`).
//!
//! The request carries the token, the public key (PEM) and a proof of possession: the
//! key's signature over the token's subject. A certificate with an embedded SCT is
//! accepted, or one with no SCT at all (a Fulcio that runs without a CT log); a detached
//! SCT is refused (a Sigstore bundle has no place for it); and only a certificate for
//! exactly the key that asked for it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::http::{self, Service};
use super::token::IdentityToken;
use crate::sign::certs::{CertChain, parse_pem_certificates};
use crate::sign::{Error, SigningKey};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    credentials: Credentials<'a>,
    public_key_request: PublicKeyRequest,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Credentials<'a> {
    oidc_identity_token: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyRequest {
    public_key: PublicKeyJson,
    proof_of_possession: String,
}

#[derive(Serialize)]
struct PublicKeyJson {
    algorithm: &'static str,
    content: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    signed_certificate_embedded_sct: Option<Signed>,
    #[serde(default)]
    signed_certificate_detached_sct: Option<Detached>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detached {
    chain: Chain,
    #[serde(default)]
    signed_certificate_timestamp: Option<String>,
}

#[derive(Deserialize)]
struct Signed {
    chain: Chain,
}

#[derive(Deserialize)]
struct Chain {
    certificates: Vec<String>,
}

/// Asks Fulcio at `service` for a certificate for `key` (ECDSA) and the identity `token`
/// proves; returns the chain, leaf first.
pub async fn signing_certificate(
    client: &reqwest::Client,
    service: &Service,
    key: &SigningKey,
    token: &IdentityToken,
) -> Result<CertChain, Error> {
    let proof = key.sign(token.proof_subject().as_bytes())?;
    let request = Request {
        credentials: Credentials { oidc_identity_token: token.secret() },
        public_key_request: PublicKeyRequest {
            public_key: PublicKeyJson { algorithm: "ECDSA", content: key.public_key().to_pem() },
            proof_of_possession: STANDARD.encode(proof),
        },
    };
    let body = serde_json::to_vec(&request).expect("a request always serialises");
    let url = service.join("/api/v2/signingCert");
    let response =
        http::send(client, service, reqwest::Method::POST, url, Some(("application/json", body)), None).await?;
    match response.status {
        200 | 201 => {}
        400 | 401 | 403 => {
            return Err(service.error(format!(
                "refused the identity token of `{}` ({})",
                token.issuer(),
                response.reason()
            )));
        }
        _ => return Err(service.error(format!("no certificate ({})", response.reason()))),
    }
    let answer: Response = response.json(service, "the certificate response")?;
    let chain = match (answer.signed_certificate_embedded_sct, answer.signed_certificate_detached_sct) {
        (Some(signed), _) => signed.chain,
        // A Fulcio without a CT log: no SCT at all (verifiers must be told to do without).
        (None, Some(detached)) if detached.signed_certificate_timestamp.as_deref().unwrap_or("").is_empty() => {
            detached.chain
        }
        (None, Some(_)) => {
            return Err(service.error("issued a certificate with a detached SCT, which a Sigstore bundle cannot carry"));
        }
        (None, None) => return Err(service.error("answered without a certificate")),
    };
    let mut certificates = Vec::new();
    for (i, pem) in chain.certificates.iter().enumerate() {
        certificates.extend(
            parse_pem_certificates(pem, &format!("Fulcio certificate #{i}"))
                .map_err(|e| service.error(e.to_string()))?,
        );
    }
    let chain = CertChain::new(certificates).map_err(|_| service.error("answered with an empty certificate chain"))?;
    if &chain.leaf().public_key()? != key.public_key() {
        return Err(service.error("issued a certificate for another key"));
    }
    Ok(chain)
}
