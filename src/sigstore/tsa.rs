//! RFC 3161 timestamp authority: a signed time for a signature (`POST` of a DER
//! `TimeStampReq` over the SHA-256 of the signature bytes, a `TimeStampResp` back), as a
//! Sigstore bundle's `timestampVerificationData.rfc3161Timestamps[].signedTimestamp`.
//!
//! Only the status is checked here; the token's signature, its certificate chain to the
//! trusted root's TSA and its message imprint are verified with the whole bundle.

use der::asn1::{Int, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _, Sequence};
use sha2::Digest as _;

use super::http::{self, Service};
use crate::sign::Error;

const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

#[derive(Sequence)]
struct AlgorithmIdentifier {
    algorithm: ObjectIdentifier,
    parameters: Option<der::asn1::Null>,
}

#[derive(Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifier,
    hashed_message: OctetString,
}

#[derive(Sequence)]
struct TimeStampReq {
    version: u8,
    message_imprint: MessageImprint,
    nonce: Int,
    cert_req: bool,
}

#[derive(Sequence)]
struct PkiStatusInfo {
    status: u8,
    #[asn1(optional = "true")]
    status_string: Option<der::Any>,
    #[asn1(optional = "true")]
    fail_info: Option<der::asn1::BitString>,
}

#[derive(Sequence)]
struct TimeStampResp {
    status: PkiStatusInfo,
    #[asn1(optional = "true")]
    time_stamp_token: Option<der::Any>,
}

/// A DER `TimeStampResp` granting a timestamp over SHA-256(`signature`).
pub async fn timestamp(client: &reqwest::Client, service: &Service, signature: &[u8]) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| service.error("no randomness for the nonce"))?;
    nonce[0] &= 0x7f;
    let request = TimeStampReq {
        version: 1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifier { algorithm: SHA256, parameters: Some(der::asn1::Null) },
            hashed_message: OctetString::new(sha2::Sha256::digest(signature).to_vec())
                .map_err(|e| service.error(e.to_string()))?,
        },
        nonce: Int::new(&nonce).map_err(|e| service.error(e.to_string()))?,
        cert_req: true,
    };
    let body = request.to_der().map_err(|e| service.error(format!("cannot encode the request: {e}")))?;
    let response = http::send(
        client,
        service,
        reqwest::Method::POST,
        service.url.clone(),
        Some(("application/timestamp-query", body)),
        None,
    )
    .await?;
    if response.status != 200 {
        return Err(service.error(format!("no timestamp ({})", response.reason())));
    }
    let parsed = TimeStampResp::from_der(&response.body)
        .map_err(|e| service.error(format!("answered with something that is not a TimeStampResp: {e}")))?;
    // granted (0) or grantedWithMods (1), with a token.
    if parsed.status.status > 1 || parsed.time_stamp_token.is_none() {
        return Err(service.error(format!("refused the timestamp request (PKI status {})", parsed.status.status)));
    }
    Ok(response.body)
}
