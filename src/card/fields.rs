//! The model-card fields: which keys a card may hold, what shape each value has, and the
//! normalisation every card goes through (author input and attested predicates alike).
//!
//! The names follow the OpenSSF AI/ML working group's list. A card is a tree of maps:
//! dotted names (`security.sensitive-data`) are paths into it; an author may also write a
//! dotted name as one top-level key. Keys that are neither a field below, `extra` (free
//! form), nor a Hugging Face metadata key are **refused**: a signed document must not carry
//! a misspelt field that a reader would take as absent.
//!
//! Hugging Face front matter keys are read as the fields they mean (`language` →
//! `languages`, `datasets` → `training.datasets`, `model-index` → `metrics`); the rest of
//! Hugging Face's own metadata (`tags`, `base_model`, `pipeline_tag`, …) is kept under
//! `extra.huggingface`.

use serde_json::{Map, Value};

/// What a field's value looks like after normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string (a number or boolean is turned into its text).
    Text,
    /// A list of strings (a single string becomes a list of one).
    TextList,
    /// A string or a number.
    TextOrNumber,
    /// A list of `{name, license, url, description}` (a string item is a name).
    Datasets,
    /// A list of `{name, value, dataset, description}` (a string item is a name).
    Metrics,
    /// Written by modelsign from the signing material; any JSON.
    Generated,
    /// A free-form map.
    Extra,
}

/// Who supplies a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The card's author.
    Author,
    /// modelsign, from the artifact, when the artifact knows it (else the author's value stays).
    Artifact,
    /// modelsign, from the signing material, always (an author's value is replaced).
    Signer,
}

/// One field of a model card.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Dotted name.
    pub name: &'static str,
    pub kind: Kind,
    pub mandatory: bool,
    pub source: Source,
    /// One line for `card init` and the documentation.
    pub help: &'static str,
}

const fn f(name: &'static str, kind: Kind, mandatory: bool, source: Source, help: &'static str) -> Field {
    Field { name, kind, mandatory, source, help }
}

use Kind::*;
use Source::*;

/// Every field, in the order a card lists them.
pub const FIELDS: &[Field] = &[
    f("name", Text, true, Author, "the model's name"),
    f("version", Text, true, Author, "the model's version (quote it: '1.10' is not 1.1)"),
    f("developer", Text, true, Author, "who trained or built the model"),
    f("publisher", Text, true, Author, "who releases it"),
    f("description", Text, true, Author, "what the model is and does"),
    f("license", Text, false, Author, "SPDX license identifier of the model"),
    f("use.intended", TextList, false, Author, "intended uses"),
    f("use.out-of-scope", TextList, false, Author, "uses the model is not meant for"),
    f("io.inputs", TextList, false, Author, "input types (text, image, audio, …)"),
    f("io.outputs", TextList, false, Author, "output types"),
    f("languages", TextList, false, Author, "supported natural languages (ISO 639)"),
    f("format", Text, false, Artifact, "file format of the weights (from the ModelPack config)"),
    f("architecture", Text, false, Artifact, "model architecture (from the ModelPack config)"),
    f("parameters", TextOrNumber, false, Artifact, "number of parameters (e.g. 7B)"),
    f("training.methodology", Text, false, Author, "how the model was trained"),
    f("training.datasets", Datasets, false, Author, "training data sets, each with name, license, url"),
    f("metrics", Metrics, false, Author, "performance metrics, each with name, value, dataset"),
    f("security.sensitive-data", Text, true, Author, "how sensitive data was handled in training and output"),
    f("security.considerations", Text, true, Author, "security considerations: risks, mitigations, reviews"),
    f("security.encryption", Text, false, Artifact, "whether the components are encrypted (from the layers)"),
    f("security.certificate", Generated, false, Signer, "the signer's certificate or key (filled in by attest)"),
    f("signatures", Generated, false, Signer, "how this card is signed (filled in by attest)"),
    f("extra", Extra, false, Author, "anything else, free form"),
];

/// Dotted names of the fields `attest` refuses to sign without.
pub const MANDATORY_FIELDS: &[&str] =
    &["name", "version", "developer", "publisher", "description", "security.sensitive-data", "security.considerations"];

/// The field named `name`, if it is one.
pub fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// Whether `name` is a section holding fields (`use`, `io`, `training`, `security`).
fn is_section(name: &str) -> bool {
    FIELDS.iter().any(|f| f.name.strip_prefix(name).is_some_and(|rest| rest.starts_with('.')))
}

/// Hugging Face metadata keys kept under `extra.huggingface` (those not read as fields).
const HF_KEPT: &[&str] = &[
    "tags",
    "base_model",
    "base_model_relation",
    "pipeline_tag",
    "library_name",
    "license_name",
    "license_link",
    "inference",
    "widget",
    "thumbnail",
    "co2_eq_emissions",
    "new_version",
    "model_name",
    "model_type",
];

/// A value that says nothing: null, blank text, a `TODO` placeholder, or an empty (or
/// all-blank) list or map.
pub fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => is_placeholder(s),
        Value::Array(items) => items.iter().all(is_blank),
        Value::Object(map) => map.values().all(is_blank),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Blank text or a `TODO` placeholder (what `card init` writes for a person to fill in).
pub fn is_placeholder(text: &str) -> bool {
    let t = text.trim();
    let todo = t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("todo"));
    t.is_empty() || (todo && (t.len() == 4 || t[4..].starts_with(':')))
}

/// Normalises a card read from an author's file or from a predicate: expands dotted keys,
/// maps Hugging Face keys, refuses unknown keys, and gives every value its field's shape.
/// `Err` is one line naming the offending key.
pub fn normalize(input: Value) -> Result<Map<String, Value>, String> {
    let Value::Object(top) = input else {
        return Err(format!("a model card is a map of fields, not {}", type_name(&input)));
    };
    let mut tree = Map::new();
    let mut hf = Map::new();
    let mut model_index = None;
    for (key, value) in top {
        match key.as_str() {
            "language" => put(&mut tree, "languages", value, "language")?,
            "datasets" => put(&mut tree, "training.datasets", value, "datasets")?,
            "model-index" => model_index = Some(value),
            k if HF_KEPT.contains(&k) || k.starts_with("extra_gated") => {
                hf.insert(key, value);
            }
            _ => put(&mut tree, &key, value, &key)?,
        }
    }
    if let Some(index) = model_index {
        let mut metrics = hf_metrics(&index)?;
        if let Some(existing) = tree.remove("metrics") {
            // HF's own `metrics` is a list of metric names: keep the names not measured above.
            for m in as_list(existing) {
                let name = m
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| m.get("name").and_then(Value::as_str).map(str::to_string));
                if !metrics.iter().any(|x| name.is_some() && x.get("name").and_then(Value::as_str) == name.as_deref()) {
                    metrics.push(m);
                }
            }
        }
        tree.insert("metrics".into(), Value::Array(metrics));
    }
    if !hf.is_empty() {
        let extra = tree.entry("extra").or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(extra) = extra else { return Err("`extra` must be a map".into()) };
        if extra.contains_key("huggingface") {
            return Err("`extra.huggingface` is given twice: in `extra` and as Hugging Face keys".into());
        }
        extra.insert("huggingface".into(), Value::Object(hf));
    }
    let mut out = Map::new();
    shape_tree("", tree, &mut out)?;
    Ok(out)
}

/// Inserts `value` at dotted `path` (expanding a map under a section), refusing duplicates.
fn put(tree: &mut Map<String, Value>, path: &str, value: Value, written: &str) -> Result<(), String> {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    match rest {
        None => {
            if let Some(old) = tree.get_mut(head) {
                // A section given both as a map and through dotted keys: merge.
                if let (Value::Object(old), Value::Object(new)) = (old, value) {
                    for (k, v) in new {
                        put(old, &k, v, &format!("{written}.{k}"))?;
                    }
                    return Ok(());
                }
                return Err(format!("`{written}` is given twice"));
            }
            tree.insert(head.to_string(), value);
            Ok(())
        }
        Some(rest) => {
            let entry = tree.entry(head).or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(section) = entry else {
                return Err(format!("`{head}` is given both as a value and as a section (`{written}`)"));
            };
            put(section, rest, value, written)
        }
    }
}

/// Checks each key of `tree` (under dotted `prefix`) and shapes its value into `out`.
fn shape_tree(prefix: &str, tree: Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), String> {
    for (key, value) in tree {
        let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        if let Some(spec) = field(&name) {
            if !value.is_null() {
                out.insert(key, shape(spec, value)?);
            }
        } else if is_section(&name) {
            match value {
                Value::Object(section) => {
                    let mut shaped = Map::new();
                    shape_tree(&name, section, &mut shaped)?;
                    if !shaped.is_empty() {
                        out.insert(key, Value::Object(shaped));
                    }
                }
                Value::Null => {}
                other => return Err(format!("`{name}` must be a map of fields, not {}", type_name(&other))),
            }
        } else {
            return Err(unknown_key(&name));
        }
    }
    Ok(())
}

fn unknown_key(name: &str) -> String {
    let close: Vec<&str> = FIELDS.iter().map(|f| f.name).filter(|f| edit_distance(f, name) <= 2).collect();
    let hint = if close.is_empty() { String::new() } else { format!(" (did you mean `{}`?)", close.join("` or `")) };
    format!("unknown model-card field `{name}`{hint}: put free-form data under `extra`")
}

/// Levenshtein distance, for suggesting the field a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn as_list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn text(name: &str, v: Value) -> Result<Value, String> {
    match v {
        Value::String(_) => Ok(v),
        Value::Number(n) => Ok(Value::String(n.to_string())),
        Value::Bool(b) => Ok(Value::String(b.to_string())),
        other => Err(format!("`{name}` must be text, not {}", type_name(&other))),
    }
}

fn shape(spec: &Field, value: Value) -> Result<Value, String> {
    let name = spec.name;
    match spec.kind {
        Text => text(name, value),
        TextOrNumber => match value {
            Value::Number(_) => Ok(value),
            other => text(name, other),
        },
        TextList => as_list(value)
            .into_iter()
            .enumerate()
            .map(|(i, v)| text(&format!("{name}[{i}]"), v))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Datasets => records(name, value, &["name", "license", "url", "description"], &[]),
        Metrics => records(name, value, &["name", "value", "dataset", "description"], &["value"]),
        Generated => Ok(value),
        Extra => match value {
            Value::Object(_) => Ok(value),
            other => Err(format!("`extra` must be a map, not {}", type_name(&other))),
        },
    }
}

/// A list of records with the given keys (a string item is `{name: item}`); `numeric`
/// keys may hold numbers.
fn records(name: &str, value: Value, keys: &[&str], numeric: &[&str]) -> Result<Value, String> {
    let mut out = Vec::new();
    for (i, item) in as_list(value).into_iter().enumerate() {
        let at = format!("{name}[{i}]");
        let record = match item {
            Value::Object(map) => {
                let mut rec = Map::new();
                for (k, v) in map {
                    if !keys.contains(&k.as_str()) {
                        return Err(format!("unknown key `{k}` in `{at}` (known: {})", keys.join(", ")));
                    }
                    if v.is_null() {
                        continue;
                    }
                    let v = match v {
                        Value::Number(_) if numeric.contains(&k.as_str()) => v,
                        v => text(&format!("{at}.{k}"), v)?,
                    };
                    rec.insert(k, v);
                }
                rec
            }
            other => {
                let mut rec = Map::new();
                rec.insert("name".into(), text(&at, other)?);
                rec
            }
        };
        out.push(Value::Object(record));
    }
    Ok(Value::Array(out))
}

/// Metrics from Hugging Face `model-index`: `[{results: [{dataset: {name}, metrics: [{type, name, value}]}]}]`.
fn hf_metrics(index: &Value) -> Result<Vec<Value>, String> {
    let bad =
        || "`model-index` is not Hugging Face's shape (a list of {name, results: [{dataset, metrics}]})".to_string();
    let mut out = Vec::new();
    for model in index.as_array().ok_or_else(bad)? {
        for result in model.get("results").and_then(Value::as_array).into_iter().flatten() {
            let dataset = result.pointer("/dataset/name").or_else(|| result.pointer("/dataset/type")).cloned();
            for m in result.get("metrics").and_then(Value::as_array).ok_or_else(bad)? {
                let name = m.get("name").or_else(|| m.get("type")).cloned().ok_or_else(bad)?;
                let mut rec = Map::new();
                rec.insert("name".into(), name);
                if let Some(v) = m.get("value") {
                    rec.insert("value".into(), v.clone());
                }
                if let Some(d) = &dataset {
                    rec.insert("dataset".into(), d.clone());
                }
                out.push(Value::Object(rec));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn mandatory_fields_are_fields() {
        for name in MANDATORY_FIELDS {
            assert!(field(name).is_some_and(|f| f.mandatory), "{name}");
        }
        assert_eq!(FIELDS.iter().filter(|f| f.mandatory).count(), MANDATORY_FIELDS.len());
    }

    #[test]
    fn dotted_keys_expand_and_merge_with_sections() {
        let card = normalize(json!({
            "security.sensitive-data": "none",
            "security": {"considerations": "reviewed"},
            "use": {"intended": "chat"},
        }))
        .unwrap();
        assert_eq!(card["security"], json!({"sensitive-data": "none", "considerations": "reviewed"}));
        assert_eq!(card["use"]["intended"], json!(["chat"]));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = normalize(json!({"nmae": "x"})).unwrap_err();
        assert!(e.contains("`nmae`") && e.contains("did you mean `name`?"), "{e}");
        let e = normalize(json!({"owner": "x"})).unwrap_err();
        assert_eq!(e, "unknown model-card field `owner`: put free-form data under `extra`");
        let e = normalize(json!({"security": {"sensitve-data": "x"}})).unwrap_err();
        assert!(e.contains("`security.sensitve-data` (did you mean `security.sensitive-data`?)"), "{e}");
        let e = normalize(json!({"training": {"datasets": [{"name": "a", "licence": "MIT"}]}})).unwrap_err();
        assert!(e.contains("`licence`") && e.contains("training.datasets[0]"), "{e}");
        assert!(normalize(json!({"name": "a", "name.x": 1})).is_err());
        assert!(normalize(json!({"security": "x"})).is_err());
        assert!(normalize(json!(["x"])).is_err());
        assert!(normalize(json!({"extra": {"anything": {"goes": 1}}})).is_ok());
    }

    #[test]
    fn values_take_their_field_shape() {
        let card = normalize(json!({
            "version": 2,
            "languages": "en",
            "parameters": 7000000000u64,
            "training": {"datasets": ["wiki", {"name": "books", "license": "CC-BY-4.0"}]},
            "metrics": [{"name": "accuracy", "value": 0.93}],
        }))
        .unwrap();
        assert_eq!(card["version"], json!("2"));
        assert_eq!(card["languages"], json!(["en"]));
        assert_eq!(card["parameters"], json!(7000000000u64));
        assert_eq!(card["training"]["datasets"], json!([{"name": "wiki"}, {"name": "books", "license": "CC-BY-4.0"}]));
        assert_eq!(card["metrics"][0]["value"], json!(0.93));
        assert!(normalize(json!({"name": {"a": 1}})).unwrap_err().contains("`name` must be text"));
        assert!(normalize(json!({"languages": [["en"]]})).unwrap_err().contains("languages[0]"));
    }

    #[test]
    fn hugging_face_keys_are_read() {
        let card = normalize(json!({
            "license": "apache-2.0",
            "language": ["en", "fr"],
            "datasets": ["squad"],
            "tags": ["text-generation"],
            "base_model": "meta/llama",
            "metrics": ["accuracy", "f1"],
            "model-index": [{"name": "m", "results": [{"dataset": {"name": "SQuAD", "type": "squad"},
                "metrics": [{"type": "f1", "value": 88.5}]}]}],
        }))
        .unwrap();
        assert_eq!(card["languages"], json!(["en", "fr"]));
        assert_eq!(card["training"]["datasets"], json!([{"name": "squad"}]));
        assert_eq!(card["extra"]["huggingface"], json!({"tags": ["text-generation"], "base_model": "meta/llama"}));
        assert_eq!(card["metrics"], json!([{"name": "f1", "value": 88.5, "dataset": "SQuAD"}, {"name": "accuracy"}]));
        assert!(normalize(json!({"language": "en", "languages": ["de"]})).unwrap_err().contains("twice"));
    }

    #[test]
    fn blank_and_placeholders() {
        for v in [
            json!(null),
            json!(""),
            json!("  "),
            json!("TODO"),
            json!("todo: fill in"),
            json!([]),
            json!(["TODO"]),
            json!({}),
        ] {
            assert!(is_blank(&v), "{v}");
        }
        for v in [json!("x"), json!(0), json!(false), json!(["a", "TODO"]), json!("Todd"), json!("todos app")] {
            assert!(!is_blank(&v), "{v}");
        }
    }
}
