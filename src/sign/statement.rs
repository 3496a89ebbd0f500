//! in-toto Statement v1 (<https://in-toto.io/Statement/v1>), the payload of every DSSE
//! envelope modelsign signs or verifies.
//!
//! Parsing is by structure, never by bytes: `model_signing` writes keys in varying order
//! and pretty-prints, so two equal statements rarely have equal bytes. Unknown fields
//! (a subject's `uri`, `annotations`) are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// The `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The `_type` of an in-toto Statement v0.1, which cosign 2.5 `attest` still writes
/// (the same shape as v1 for what is read here).
pub const STATEMENT_TYPE_V01: &str = "https://in-toto.io/Statement/v0.1";

/// DSSE `payloadType` of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    #[serde(default)]
    pub predicate: serde_json::Value,
}

/// One subject: a name and its digests by algorithm (`sha256` → lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    #[serde(default)]
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Statement {
    /// A statement of `predicate_type` about `subject`.
    pub fn new(subject: Vec<Subject>, predicate_type: impl Into<String>, predicate: serde_json::Value) -> Self {
        Statement { statement_type: STATEMENT_TYPE.into(), subject, predicate_type: predicate_type.into(), predicate }
    }

    /// Parses a statement from JSON and checks its `_type` (v1, or v0.1 as cosign writes it).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let statement: Statement = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidStatement(format!("not an in-toto statement: {e}")))?;
        if statement.statement_type != STATEMENT_TYPE && statement.statement_type != STATEMENT_TYPE_V01 {
            return Err(Error::InvalidStatement(format!(
                "unsupported statement type `{}` (expected {STATEMENT_TYPE} or {STATEMENT_TYPE_V01})",
                statement.statement_type
            )));
        }
        Ok(statement)
    }

    /// Compact JSON, keys in the order in-toto documents them.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_regardless_of_key_order_and_ignores_unknown_fields() {
        let a = br#"{"predicate":{"x":1},"predicateType":"p","subject":[{"uri":"u","digest":{"sha256":"ab"},"name":"n"}],"_type":"https://in-toto.io/Statement/v1"}"#;
        let b = br#"{
  "_type": "https://in-toto.io/Statement/v1",
  "subject": [{"name": "n", "digest": {"sha256": "ab"}}],
  "predicateType": "p",
  "predicate": {"x": 1}
}"#;
        let a = Statement::from_json(a).unwrap();
        assert_eq!(a, Statement::from_json(b).unwrap());
        assert_eq!(Statement::from_json(&a.to_json()).unwrap(), a);
        assert!(
            String::from_utf8(a.to_json())
                .unwrap()
                .starts_with(r#"{"_type":"https://in-toto.io/Statement/v1","subject""#)
        );
    }

    #[test]
    fn rejects_other_types_and_garbage() {
        let cosign =
            br#"{"_type":"https://in-toto.io/Statement/v0.1","subject":[],"predicateType":"p","predicate":{}}"#;
        assert!(Statement::from_json(cosign).is_ok(), "cosign 2.5 writes v0.1");
        let other = br#"{"_type":"https://in-toto.io/Statement/v0.2","subject":[],"predicateType":"p","predicate":{}}"#;
        assert!(Statement::from_json(other).is_err());
        assert!(Statement::from_json(b"[]").is_err());
        assert!(Statement::from_json(br#"{"_type":"https://in-toto.io/Statement/v1"}"#).is_err());
    }
}
