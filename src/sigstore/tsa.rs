//! RFC 3161 timestamp authority: a signed time for a signature (`POST` of a DER
//! `TimeStampReq` over the SHA-256 of the signature bytes, a `TimeStampResp` back), as a
//! Sigstore bundle's `timestampVerificationData.rfc3161Timestamps[].signedTimestamp`.
//!
//! Checked here: the status, and that the token's `TSTInfo` carries this request's nonce
//! and message imprint (a replayed or mixed-up answer is refused at once). The token's
//! signature and its certificate chain to the trusted root's TSA are verified with the
//! whole bundle.

use der::asn1::{Int, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _, Sequence, Tagged as _};
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

/// RFC 5652 `ContentInfo` (the token), with its content as is.
#[derive(Sequence)]
struct ContentInfo {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    content: der::Any,
}

/// `EncapsulatedContentInfo` of the token's `SignedData`: the DER `TSTInfo`.
#[derive(Sequence)]
struct EncapsulatedContentInfo {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    content: Option<OctetString>,
}

/// The nonce and message imprint of a token's `TSTInfo` (RFC 3161 §2.4.2: version, policy,
/// messageImprint, serialNumber, genTime, then optional accuracy, ordering, nonce, …).
fn token_nonce_and_imprint(token: &der::Any) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
    let info = ContentInfo::from_der(&token.to_der().map_err(|e| e.to_string())?)
        .map_err(|e| format!("the token is not a CMS ContentInfo: {e}"))?;
    let signed: Vec<der::Any> =
        info.content.decode_as().map_err(|e| format!("the token's content is not a SignedData: {e}"))?;
    let encap: EncapsulatedContentInfo = signed
        .get(2)
        .ok_or("the token's SignedData is too short")?
        .decode_as()
        .map_err(|e| format!("the token's encapsulated content is malformed: {e}"))?;
    let tst = encap.content.ok_or("the token carries no TSTInfo")?;
    let fields: Vec<der::Any> =
        Vec::from_der(tst.as_bytes()).map_err(|e| format!("the token's TSTInfo is malformed: {e}"))?;
    let imprint = fields.get(2).ok_or("the token's TSTInfo is too short")?.to_der().map_err(|e| e.to_string())?;
    let nonce = fields.iter().skip(5).find(|f| f.tag() == der::Tag::Integer).map(|f| f.value().to_vec());
    Ok((nonce, imprint))
}

/// An INTEGER's content bytes without leading zeros (for comparing values).
fn magnitude(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// A DER `TimeStampResp` granting a timestamp over SHA-256(`signature`).
pub async fn timestamp(client: &reqwest::Client, service: &Service, signature: &[u8]) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| service.error("no randomness for the nonce"))?;
    // First byte 0x40..=0x7f: positive and minimally encoded as an 8-byte DER INTEGER (a
    // leading zero byte would be non-canonical DER, which the TSA's parser refuses).
    nonce[0] = (nonce[0] & 0x3f) | 0x40;
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
    let Some(token) = parsed.time_stamp_token.as_ref().filter(|_| parsed.status.status <= 1) else {
        return Err(service.error(format!("refused the timestamp request (PKI status {})", parsed.status.status)));
    };
    let (nonce, imprint) = token_nonce_and_imprint(token).map_err(|e| service.error(e))?;
    match nonce {
        Some(got) if magnitude(&got) == magnitude(request.nonce.as_bytes()) => {}
        Some(got) => {
            return Err(service.error(format!(
                "answered with a timestamp for another request (nonce {} instead of {}): a replayed or mixed-up answer",
                hex::encode(magnitude(&got)),
                hex::encode(magnitude(request.nonce.as_bytes()))
            )));
        }
        None => return Err(service.error("answered with a timestamp without the request's nonce")),
    }
    if imprint != request.message_imprint.to_der().map_err(|e| service.error(e.to_string()))? {
        return Err(service.error("answered with a timestamp over another message imprint"));
    }
    Ok(response.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_keeps_leading_zero_bytes_so_the_nonce_never_has_one() {
        // Why `timestamp` sets the nonce's first byte to 0x40..=0x7f: a leading zero byte is
        // kept by `Int::new` and makes non-canonical DER.
        let der = Int::new(&[0, 0x12, 3, 4, 5, 6, 7, 8]).unwrap().to_der().unwrap();
        assert!(Int::from_der(&der).is_err());
        for first in [0u8, 0x3f, 0x80, 0xff] {
            let nonce = [(first & 0x3f) | 0x40, 0, 0, 0, 0, 0, 0, 1];
            let back = Int::from_der(&Int::new(&nonce).unwrap().to_der().unwrap()).unwrap();
            assert_eq!(back.as_bytes(), nonce);
        }
        assert_eq!(magnitude(&[0, 0, 5]), [5]);
    }
}
