//! The component statement (`https://modelsign.dev/components/v1`): a signature over
//! some components of a model, by path and digest, not over a manifest.
//!
//! ```json
//! {"_type":"https://in-toto.io/Statement/v1",
//!  "subject":[{"name":"vision/encoder.safetensors","digest":{"sha256":"<hex>"}}, …],
//!  "predicateType":"https://modelsign.dev/components/v1",
//!  "predicate":{"patterns":["vision/**"]}}
//! ```
//!
//! Each subject is one component: its path relative to the model root and the SHA-256 of
//! its bytes (the raw layer's digest). Because it names no manifest, it stays valid for
//! any later version of the model carrying the same component unchanged. It covers a
//! component only when **both** path and digest are equal; it never covers a whole model.

use std::collections::HashSet;

use serde_json::json;

use super::oms::is_safe_relative_path;
use super::statement::{Statement, Subject};
use super::{Error, Result};
use crate::digest::Digest;

/// Predicate type of a component statement.
pub const PREDICATE_TYPE: &str = "https://modelsign.dev/components/v1";

/// One signed component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedComponent {
    pub path: String,
    pub digest: Digest,
}

/// The statement signing `components`; `patterns` (the globs that chose them) are kept
/// in the predicate for people reading it, and play no part in verification.
pub fn build_statement(components: &[SignedComponent], patterns: &[String]) -> Statement {
    let subject = components
        .iter()
        .map(|c| Subject { name: c.path.clone(), digest: [("sha256".to_string(), c.digest.hex())].into() })
        .collect();
    Statement::new(subject, PREDICATE_TYPE, json!({ "patterns": patterns }))
}

/// The components a component statement signs. Fails unless the predicate type is the
/// component one, there is at least one subject, and every subject has a safe relative
/// path (unique) and a valid `sha256` digest.
pub fn from_statement(statement: &Statement) -> Result<Vec<SignedComponent>> {
    let invalid = |reason: String| Error::InvalidStatement(reason);
    if statement.predicate_type != PREDICATE_TYPE {
        return Err(invalid(format!("predicate type `{}` is not {PREDICATE_TYPE}", statement.predicate_type)));
    }
    if statement.subject.is_empty() {
        return Err(invalid("a component statement names no component".into()));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(statement.subject.len());
    for s in &statement.subject {
        if !is_safe_relative_path(&s.name) {
            return Err(invalid(format!("unsafe component path `{}`", s.name)));
        }
        if !seen.insert(s.name.as_str()) {
            return Err(invalid(format!("component `{}` is listed more than once", s.name)));
        }
        let hex =
            s.digest.get("sha256").ok_or_else(|| invalid(format!("component `{}` has no sha256 digest", s.name)))?;
        let digest = Digest::from_hex(hex).map_err(|e| invalid(format!("component `{}`: {e}", s.name)))?;
        out.push(SignedComponent { path: s.name.clone(), digest });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(path: &str, content: &[u8]) -> SignedComponent {
        SignedComponent { path: path.into(), digest: Digest::of(content) }
    }

    #[test]
    fn builds_and_parses_back() {
        let comps = vec![comp("vision/a.bin", b"a"), comp("vision/b.bin", b"b")];
        let st = build_statement(&comps, &["vision/**".into()]);
        let parsed = Statement::from_json(&st.to_json()).unwrap();
        assert_eq!(from_statement(&parsed).unwrap(), comps);
    }

    #[test]
    fn refuses_bad_statements() {
        let good = build_statement(&[comp("a", b"a")], &[]);
        let mut other = good.clone();
        other.predicate_type = "https://example.com/x".into();
        assert!(from_statement(&other).is_err());
        let mut empty = good.clone();
        empty.subject.clear();
        assert!(from_statement(&empty).is_err());
        for bad in ["../a", "/a", "a/./b", "a\\b", ""] {
            let mut st = good.clone();
            st.subject[0].name = bad.into();
            assert!(from_statement(&st).is_err(), "{bad}");
        }
        let mut twice = good.clone();
        twice.subject.push(twice.subject[0].clone());
        assert!(from_statement(&twice).is_err());
        let mut no_sha = good.clone();
        no_sha.subject[0].digest = [("sha512".to_string(), "00".to_string())].into();
        assert!(from_statement(&no_sha).is_err());
        let mut bad_hex = good;
        bad_hex.subject[0].digest = [("sha256".to_string(), "xyz".to_string())].into();
        assert!(from_statement(&bad_hex).is_err());
    }
}
