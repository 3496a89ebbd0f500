//! `card init`: a draft model card from a model folder, as YAML a person finishes.
//!
//! Taken from the folder: the YAML front matter of its `README.md` (Hugging Face keys are
//! read as the fields they mean; keys that are not fields are left out with a warning), the
//! first paragraph of the README as the description, the folder's name as the name, the
//! architecture from `config.json`, and the weight format from the file names. Every
//! mandatory field without a value is written as `TODO: …`, which `attest` refuses as
//! empty; optional fields without a value are written as comments; the fields `attest`
//! fills in are listed as comments too.

use std::path::Path;

use serde_json::{Map, Value};

use super::fields::{FIELDS, Field, Source, is_blank};
use super::{Card, parse};
use crate::folder::{self, ScanOptions};
use crate::modelpack;

/// A drafted card: the YAML text and what could not be taken over.
#[derive(Debug, Clone)]
pub struct Draft {
    pub yaml: String,
    /// Mandatory fields left as `TODO`.
    pub todo: Vec<&'static str>,
    /// Warnings (front matter keys left out, unreadable files).
    pub warnings: Vec<String>,
}

/// The first paragraph of Markdown body text that is not a heading, an HTML comment or a
/// badge line: the README's own description of the model.
fn first_paragraph(body: &str) -> Option<String> {
    let mut para: Vec<&str> = Vec::new();
    for line in body.lines() {
        let t = line.trim();
        let skip = t.starts_with('#') || t.starts_with("<!--") || t.starts_with("[![") || t.starts_with("![");
        if t.is_empty() || skip {
            if !para.is_empty() {
                break;
            }
            continue;
        }
        para.push(t);
    }
    (!para.is_empty()).then(|| para.join(" "))
}

/// Reads the folder's README front matter as card fields, key by key; a key that does not
/// make a valid field becomes a warning.
fn readme_fields(root: &Path, warnings: &mut Vec<String>) -> (Map<String, Value>, Option<String>) {
    let path = root.join("README.md");
    let Ok(text) = parse::read_text(&path) else { return (Map::new(), None) };
    let (front, body) = match parse::front_matter(&text) {
        Some((yaml, body)) => {
            let front = parse::yaml(yaml, 1).unwrap_or_else(|e| {
                warnings.push(format!("README.md front matter left out: {e}"));
                Value::Null
            });
            (front, body)
        }
        None => (Value::Null, text.as_str()),
    };
    let mut fields = Map::new();
    if let Value::Object(map) = front {
        for (k, v) in map {
            let one: Map<String, Value> = [(k.clone(), v)].into_iter().collect();
            match Card::from_value(Value::Object(one.clone())) {
                Ok(_) => {
                    fields.extend(one);
                }
                Err(e) => warnings.push(format!("README.md front matter key `{k}` left out: {e}")),
            }
        }
    }
    (fields, first_paragraph(body))
}

/// Drafts a card for the model folder at `root`.
pub fn draft(root: &Path) -> crate::Result<Draft> {
    let mut warnings = Vec::new();
    let files = folder::scan(root, &ScanOptions::default())?;
    let (front, description) = if files.single_file { (Map::new(), None) } else { readme_fields(root, &mut warnings) };
    let mut card = Card::from_value(Value::Object(front)).map_err(|e| crate::Error::LocalFile {
        path: root.to_path_buf(),
        reason: format!("README.md front matter: {e}"),
    })?;
    let default_name = if files.single_file {
        root.file_stem().map(|s| s.to_string_lossy().into_owned())
    } else {
        std::fs::canonicalize(root).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    };
    let mut defaults: Vec<(&str, Value)> = Vec::new();
    if let Some(name) = default_name {
        defaults.push(("name", Value::String(name)));
    }
    if let Some(d) = description {
        defaults.push(("description", Value::String(d)));
    }
    if let Some(format) = modelpack::infer_format(files.files.iter().map(|f| (f.path.as_str(), f.size))) {
        defaults.push(("format", Value::String(format)));
    }
    if let Some(config) = files.files.iter().find(|f| f.path == "config.json") {
        match parse::read_text(&config.source) {
            Ok(text) => {
                if let Some(arch) = modelpack::read_hf_config(text.as_bytes()).architecture {
                    defaults.push(("architecture", Value::String(arch)));
                }
            }
            Err(e) => warnings.push(format!("config.json not read: {e}")),
        }
    }
    for (name, value) in defaults {
        if !card.is_present(name) {
            card.set(name, value);
        }
    }
    let mut todo = Vec::new();
    let yaml = render(&card, &mut todo);
    Ok(Draft { yaml, todo, warnings })
}

/// A scalar or a structure as YAML: JSON is YAML's flow style, and a JSON string is a valid
/// YAML double-quoted scalar.
fn yaml_value(v: &Value) -> String {
    serde_json::to_string(v).expect("JSON values serialise")
}

fn render(card: &Card, todo: &mut Vec<&'static str>) -> String {
    let mut out = String::from(
        "# Model card for `modelsign attest REF --model-card THIS_FILE --key KEY`.\n\
         # Replace every TODO: attest refuses to sign while a mandatory field is empty or TODO.\n\
         # Commented fields are optional: uncomment and fill in what applies.\n",
    );
    let mut section = "";
    for field in FIELDS {
        let (sec, key) = field.name.split_once('.').unwrap_or(("", field.name));
        if sec != section {
            if !sec.is_empty() {
                out.push_str(&format!("{sec}:\n"));
            }
            section = sec;
        }
        let indent = if sec.is_empty() { "" } else { "  " };
        line(&mut out, indent, key, field, card, todo);
    }
    out
}

fn line(out: &mut String, indent: &str, key: &str, field: &Field, card: &Card, todo: &mut Vec<&'static str>) {
    let value = card.field(field.name).filter(|v| !is_blank(v));
    match (field.source, value) {
        (Source::Signer, _) => out.push_str(&format!("{indent}# {key}:  # {}\n", field.help)),
        (_, Some(v)) => {
            let note =
                if field.source == Source::Artifact { "  # attest replaces it with the model's own" } else { "" };
            out.push_str(&format!("{indent}{key}: {}{note}\n", yaml_value(v)));
        }
        (_, None) if field.mandatory => {
            todo.push(field.name);
            out.push_str(&format!("{indent}{key}: {}\n", yaml_value(&Value::String(format!("TODO: {}", field.help)))));
        }
        (_, None) => out.push_str(&format!("{indent}# {key}:  # {}\n", field.help)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_from_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tiny-llm");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(
            root.join("README.md"),
            "---\nlicense: apache-2.0\nlanguage: [en]\nbogus_key: 1\ntags: [x]\n---\n# Tiny\n\n[![badge](b)](l)\n\nA tiny \"model\"\nfor tests.\n\nMore.\n",
        )
        .unwrap();
        std::fs::write(root.join("config.json"), r#"{"architectures":["TinyForCausalLM"]}"#).unwrap();
        std::fs::write(root.join("model.safetensors"), vec![0u8; 100]).unwrap();
        let d = draft(&root).unwrap();
        assert_eq!(
            d.todo,
            vec!["version", "developer", "publisher", "security.sensitive-data", "security.considerations"]
        );
        assert!(d.warnings.iter().any(|w| w.contains("`bogus_key`")), "{:?}", d.warnings);
        let card = Card::from_value(parse::yaml(&d.yaml, 0).unwrap()).unwrap();
        assert_eq!(card.text("name"), Some("tiny-llm"));
        assert_eq!(card.text("description"), Some("A tiny \"model\" for tests."));
        assert_eq!(card.text("license"), Some("apache-2.0"));
        assert_eq!(card.text("format"), Some("safetensors"));
        assert_eq!(card.text("architecture"), Some("TinyForCausalLM"));
        assert_eq!(card.field("extra").unwrap()["huggingface"]["tags"], serde_json::json!(["x"]));
        assert_eq!(card.missing_mandatory(), d.todo);
    }
}
