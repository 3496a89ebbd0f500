//! The bundle's JSON shapes, as `model_signing` writes them (field order and spelling
//! matter: [`super::write`] must produce its bytes exactly), and protobuf-JSON base64.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::sign::{Error, Result};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BundleJson {
    pub(super) media_type: String,
    pub(super) verification_material: MaterialJson,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) dsse_envelope: Option<EnvelopeJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) message_signature: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MaterialJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) public_key: Option<PublicKeyJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) x509_certificate_chain: Option<ChainJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) certificate: Option<CertJson>,
    #[serde(default)]
    pub(super) tlog_entries: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct PublicKeyJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) hint: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ChainJson {
    #[serde(default)]
    pub(super) certificates: Vec<CertJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CertJson {
    pub(super) raw_bytes: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EnvelopeJson {
    pub(super) payload: String,
    pub(super) payload_type: String,
    #[serde(default)]
    pub(super) signatures: Vec<SignatureJson>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SignatureJson {
    pub(super) sig: String,
    /// `model_signing` before 1.0.1 wrote `"keyid": null`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(super) keyid: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Protobuf JSON accepts standard and URL-safe base64, padded or not.
pub(super) fn decode_base64(text: &str, what: &str) -> Result<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| Error::MalformedBundle(format!("{what} is not valid base64")))
}
