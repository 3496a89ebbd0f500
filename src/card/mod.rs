//! Model cards: what a model is, who made and published it, and its security facts, as a
//! signed in-toto statement attached to the model (`modelsign attest`).
//!
//! A [`Card`] is a normalised tree of the fields in [`fields::FIELDS`] (the OpenSSF AI/ML
//! working group's list), read from YAML, JSON or a Hugging Face `README.md` front matter
//! ([`Card::load`]), or from an attested statement's predicate ([`Card::from_predicate`]).
//! Fields are named by dotted paths (`security.sensitive-data`). A field holding nothing,
//! blank text or a `TODO` placeholder counts as absent ([`Card::is_present`]);
//! `attest` refuses a card whose [`MANDATORY_FIELDS`] are absent.
//!
//! The statement's predicate type is [`PREDICATE_TYPE`]; its exact shape is in
//! `docs/FORMAT.md` ("Model cards").

pub mod cyclonedx;
pub mod draft;
pub mod fields;
pub mod parse;
pub mod provenance;

use std::path::Path;

use serde_json::{Map, Value};

pub use fields::MANDATORY_FIELDS;

/// Predicate type of the model-card statement.
pub const PREDICATE_TYPE: &str = "https://modelsign.dev/model-card/v1";

/// A model card, normalised: only known fields (plus `extra`), each in its field's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    fields: Map<String, Value>,
}

impl Card {
    /// Reads a card file: `.json`, `.md`/`.markdown` (YAML front matter), else YAML.
    /// Unknown fields are refused; mandatory fields are **not** checked here (see
    /// [`Card::missing_mandatory`]).
    pub fn load(path: &Path) -> crate::Result<Card> {
        let text = parse::read_text(path)?;
        let invalid = |reason: String| crate::Error::InvalidCard { what: path.display().to_string(), reason };
        let value = parse::parse(&text, parse::Syntax::of_path(path)).map_err(invalid)?;
        Card::from_value(value).map_err(invalid)
    }

    /// A card from a JSON value of its fields (what an author wrote, parsed).
    pub fn from_value(value: Value) -> Result<Card, String> {
        Ok(Card { fields: fields::normalize(value)? })
    }

    /// The card an attested statement carries (its `predicate`).
    pub fn from_predicate(predicate: &Value) -> crate::Result<Card> {
        Card::from_value(predicate.clone()).map_err(|reason| crate::Error::InvalidContent {
            what: format!("model-card predicate ({PREDICATE_TYPE})"),
            reason,
        })
    }

    /// The predicate of the model-card statement: the normalised fields.
    pub fn to_predicate(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    /// The value at a dotted name (`security.sensitive-data`), as stored (possibly blank).
    pub fn field(&self, name: &str) -> Option<&Value> {
        let mut parts = name.split('.');
        let mut value = self.fields.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some(value)
    }

    /// The text at a dotted name, if it is text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.field(name).and_then(Value::as_str)
    }

    /// Whether the field holds something: not absent, null, blank, a `TODO` placeholder,
    /// or an empty (or all-blank) list or map.
    pub fn is_present(&self, name: &str) -> bool {
        self.field(name).is_some_and(|v| !fields::is_blank(v))
    }

    /// The mandatory fields that are not present, in [`MANDATORY_FIELDS`] order.
    pub fn missing_mandatory(&self) -> Vec<&'static str> {
        MANDATORY_FIELDS.iter().copied().filter(|f| !self.is_present(f)).collect()
    }

    /// Sets the field at a dotted name (creating its section).
    pub fn set(&mut self, name: &str, value: Value) {
        let mut parts: Vec<&str> = name.split('.').collect();
        let Some(last) = parts.pop() else { return };
        let mut map = &mut self.fields;
        for part in parts {
            let entry = map.entry(part).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(next) = entry else { return };
            map = next;
        }
        map.insert(last.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn complete() -> Value {
        json!({
            "name": "tiny", "version": "1.0", "developer": "Vision team", "publisher": "Acme",
            "description": "A tiny model.",
            "security": {"sensitive-data": "No personal data.", "considerations": "Reviewed."},
        })
    }

    #[test]
    fn mandatory_fields() {
        let card = Card::from_value(complete()).unwrap();
        assert!(card.missing_mandatory().is_empty());
        let mut v = complete();
        v["developer"] = json!("TODO: who trained it");
        v["security"]["considerations"] = json!("");
        v.as_object_mut().unwrap().remove("name");
        let card = Card::from_value(v).unwrap();
        assert_eq!(card.missing_mandatory(), vec!["name", "developer", "security.considerations"]);
        assert!(!card.is_present("developer"));
        assert_eq!(card.text("developer"), Some("TODO: who trained it"));
    }

    #[test]
    fn fields_by_dotted_name() {
        let card = Card::from_value(complete()).unwrap();
        assert_eq!(card.text("security.sensitive-data"), Some("No personal data."));
        assert!(card.is_present("security"));
        assert!(!card.is_present("license"));
        assert!(card.field("name.x").is_none());
        assert!(card.field("").is_none());
        let again = Card::from_predicate(&card.to_predicate()).unwrap();
        assert_eq!(again, card);
        assert!(Card::from_predicate(&json!({"bogus": 1})).is_err());
    }

    #[test]
    fn set_creates_sections() {
        let mut card = Card::from_value(complete()).unwrap();
        card.set("security.certificate", json!({"type": "public-key"}));
        card.set("format", json!("safetensors"));
        assert_eq!(card.field("security.certificate"), Some(&json!({"type": "public-key"})));
        assert_eq!(card.text("format"), Some("safetensors"));
        assert!(card.missing_mandatory().is_empty());
    }

    #[test]
    fn load_files() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("card.yaml");
        std::fs::write(&yaml, "name: tiny\nsecurity.sensitive-data: none\n").unwrap();
        let card = Card::load(&yaml).unwrap();
        assert_eq!(card.text("security.sensitive-data"), Some("none"));
        let md = dir.path().join("README.md");
        std::fs::write(&md, "---\nlicense: mit\nlanguage: en\n---\n# Tiny\n").unwrap();
        assert_eq!(Card::load(&md).unwrap().field("languages"), Some(&json!(["en"])));
        let bad = dir.path().join("bad.yml");
        std::fs::write(&bad, "name: tiny\nowner: me\n").unwrap();
        let e = Card::load(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.yml") && e.contains("`owner`"), "{e}");
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; (parse::MAX_CARD_FILE + 1) as usize]).unwrap();
        assert!(Card::load(&big).unwrap_err().to_string().contains("at most"));
    }
}
