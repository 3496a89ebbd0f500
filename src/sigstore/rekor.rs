//! Rekor: the transparency log entry for one DSSE signature, returned in the form a
//! Sigstore bundle v0.3 carries it (`verificationMaterial.tlogEntries[]`).
//!
//! - v1 (`POST /api/v1/log/entries`): a `dsse` 0.0.1 entry whose proposed content is the
//!   envelope and the signing certificate; the answer (entry body, integrated time, SET,
//!   inclusion proof with checkpoint) is translated to the bundle's protobuf JSON.
//! - v2 (`rekor-tiles`, `POST /api/v2/log/entries`): a `hashedRekordRequestV002` over the
//!   SHA-256 of the DSSE PAE with the signature and the certificate (rekor-tiles refuses its
//!   deprecated `dsse` type); the answer already is a bundle `TransparencyLogEntry`.
//!
//! Nothing here decides whether the entry is good: the whole bundle is verified against
//! the trusted root before it is used (see [`super::witness`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::http::{self, Service};
use super::signing_config::RekorVersion;
use crate::sign::Error;
use crate::sign::certs::Certificate;

/// The DSSE envelope as it is logged.
pub struct Envelope<'a> {
    /// The payload, base64 as in the bundle.
    pub payload: &'a str,
    pub payload_type: &'a str,
    /// The signature, base64 as in the bundle.
    pub sig: &'a str,
}

/// Logs the envelope signed by `certificate`'s key; returns the bundle's tlog entry.
pub async fn log_entry(
    client: &reqwest::Client,
    service: &Service,
    version: RekorVersion,
    envelope: &Envelope<'_>,
    certificate: &Certificate,
) -> Result<Value, Error> {
    let envelope_json = json!({
        "payload": envelope.payload,
        "payloadType": envelope.payload_type,
        "signatures": [{"sig": envelope.sig, "keyid": ""}],
    });
    let (path, request) = match version {
        RekorVersion::V1 => (
            "/api/v1/log/entries",
            json!({
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {"proposedContent": {
                    "envelope": envelope_json.to_string(),
                    "verifiers": [STANDARD.encode(certificate.to_pem())],
                }},
            }),
        ),
        RekorVersion::V2 => {
            // rekor-tiles logs DSSE signatures as hashedrekord 0.0.2 over the SHA-256 of the
            // PAE (its `dsse` type is deprecated and refused).
            let payload =
                STANDARD.decode(envelope.payload).map_err(|_| service.error("the DSSE payload is not base64"))?;
            let digest = sha2::Sha256::digest(sigstore_types::dsse::pae(envelope.payload_type, &payload));
            (
                "/api/v2/log/entries",
                json!({"hashedRekordRequestV002": {
                    "digest": STANDARD.encode(digest),
                    "signature": {
                        "content": envelope.sig,
                        "verifier": {
                            "x509Certificate": {"rawBytes": STANDARD.encode(certificate.der())},
                            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        },
                    },
                }}),
            )
        }
    };
    let body = serde_json::to_vec(&request).expect("a request always serialises");
    let response =
        http::send(client, service, reqwest::Method::POST, service.join(path), Some(("application/json", body)), None)
            .await?;
    if !matches!(response.status, 200 | 201) {
        return Err(service.error(format!("did not log the signature ({})", response.reason())));
    }
    match version {
        RekorVersion::V1 => {
            let answer: std::collections::BTreeMap<String, V1Entry> = response.json(service, "the log entry")?;
            let mut entries = answer.into_values();
            match (entries.next(), entries.next()) {
                (Some(entry), None) => entry.to_bundle(service),
                _ => Err(service.error("answered with other than one log entry")),
            }
        }
        RekorVersion::V2 => {
            let entry: Value = response.json(service, "the log entry")?;
            if !entry.is_object() || entry.get("kindVersion").is_none() {
                return Err(service.error("answered with something that is not a transparency log entry"));
            }
            Ok(entry)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1Entry {
    body: String,
    integrated_time: i64,
    #[serde(rename = "logID")]
    log_id: String,
    log_index: i64,
    verification: V1Verification,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1Verification {
    signed_entry_timestamp: String,
    inclusion_proof: V1Proof,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1Proof {
    checkpoint: String,
    hashes: Vec<String>,
    log_index: i64,
    root_hash: String,
    tree_size: i64,
}

impl V1Entry {
    /// The v1 answer in protobuf JSON: 64-bit numbers as strings, hashes and the log ID
    /// from hex to base64.
    fn to_bundle(&self, service: &Service) -> Result<Value, Error> {
        let b64_of_hex = |h: &str, what: &str| {
            hex::decode(h).map(|b| STANDARD.encode(b)).map_err(|_| service.error(format!("{what} is not hex")))
        };
        let proof = &self.verification.inclusion_proof;
        Ok(json!({
            "logIndex": self.log_index.to_string(),
            "logId": {"keyId": b64_of_hex(&self.log_id, "logID")?},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": self.integrated_time.to_string(),
            "inclusionPromise": {"signedEntryTimestamp": self.verification.signed_entry_timestamp},
            "inclusionProof": {
                "logIndex": proof.log_index.to_string(),
                "rootHash": b64_of_hex(&proof.root_hash, "rootHash")?,
                "treeSize": proof.tree_size.to_string(),
                "hashes": proof.hashes.iter().map(|h| b64_of_hex(h, "a proof hash")).collect::<Result<Vec<_>, _>>()?,
                "checkpoint": {"envelope": proof.checkpoint},
            },
            "canonicalizedBody": self.body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_answer_becomes_a_bundle_entry() {
        let service = Service::new("Rekor", "https://rekor.example").unwrap();
        let answer = r#"{"24296fb24b8ad77a": {"body": "eyJhcGlWZXJzaW9uIjoiMC4wLjEifQ==", "integratedTime": 1700000000,
            "logID": "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d", "logIndex": 123456789,
            "verification": {"signedEntryTimestamp": "MEUCIQ==", "inclusionProof": {"checkpoint": "rekor.example - 1\n100\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n\n\u2014 rekor.example wNI9a01FVUNJUUQ=\n",
            "hashes": ["0000000000000000000000000000000000000000000000000000000000000000"], "logIndex": 42, "rootHash": "abababababababababababababababababababababababababababababababab", "treeSize": 100}}}}"#;
        let entries: std::collections::BTreeMap<String, V1Entry> = serde_json::from_str(answer).unwrap();
        let entry = entries.into_values().next().unwrap().to_bundle(&service).unwrap();
        assert_eq!(entry["logIndex"], "123456789");
        assert_eq!(entry["integratedTime"], "1700000000");
        assert_eq!(entry["kindVersion"], json!({"kind": "dsse", "version": "0.0.1"}));
        assert_eq!(
            entry["logId"]["keyId"],
            STANDARD.encode(hex::decode("c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d").unwrap())
        );
        assert_eq!(entry["inclusionProof"]["rootHash"], STANDARD.encode([0xab; 32]));
        assert_eq!(entry["inclusionProof"]["hashes"], json!([STANDARD.encode([0u8; 32])]));
        assert_eq!(entry["inclusionProof"]["logIndex"], "42");
        assert!(
            entry["inclusionProof"]["checkpoint"]["envelope"].as_str().unwrap().starts_with("rekor.example - 1\n100\n")
        );
        assert_eq!(entry["inclusionPromise"]["signedEntryTimestamp"], "MEUCIQ==");
        // sigstore-verify reads what we wrote.
        let bundle = json!({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"certificate": {"rawBytes": "MAA="}, "tlogEntries": [entry]},
            "dsseEnvelope": {"payload": "e30=", "payloadType": "application/vnd.in-toto+json", "signatures": [{"sig": "MAA=", "keyid": ""}]}});
        crate::sign::keyless::parse_bundle(bundle.to_string().as_bytes()).unwrap();
        let bad = r#"{"x": {"body": "", "integratedTime": 1, "logID": "zz", "logIndex": 1,
            "verification": {"signedEntryTimestamp": "", "inclusionProof": {"checkpoint": "", "hashes": [], "logIndex": 1, "rootHash": "", "treeSize": 1}}}}"#;
        let entries: std::collections::BTreeMap<String, V1Entry> = serde_json::from_str(bad).unwrap();
        assert!(entries.into_values().next().unwrap().to_bundle(&service).is_err());
    }
}
