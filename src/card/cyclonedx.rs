//! The same model card as a CycloneDX 1.6 ML-BOM, so SBOM tooling can read it: one
//! component of type `machine-learning-model` with a `modelCard`, and one component of type
//! `data` per training data set (carrying its license). Fields CycloneDX has no place for
//! (sensitive data, security considerations, out-of-scope uses, the signer) are kept as
//! `modelCard.properties` named `modelsign:<field>`, so nothing of the card is lost.
//! The exact shape is in `docs/FORMAT.md` ("Model cards").

use serde_json::{Map, Value, json};

use super::Card;
use crate::digest::Digest;

/// Predicate type of the CycloneDX statement (CycloneDX's own in-toto predicate type).
pub const PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";

/// Fields written as `modelCard.properties` rather than in a CycloneDX field of their own.
const AS_PROPERTIES: &[&str] = &[
    "developer",
    "use.out-of-scope",
    "languages",
    "format",
    "parameters",
    "training.methodology",
    "security.sensitive-data",
    "security.considerations",
    "security.encryption",
    "security.certificate",
    "signatures",
];

fn texts(card: &Card, name: &str) -> Vec<Value> {
    match card.field(name) {
        Some(Value::Array(items)) => items.iter().filter(|v| !super::fields::is_blank(v)).cloned().collect(),
        Some(v) if !super::fields::is_blank(v) => vec![v.clone()],
        _ => Vec::new(),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The BOM for `card`, attested about the manifest `digest` of the artifact `subject_name`.
/// `timestamp` is RFC 3339.
pub fn bom(card: &Card, subject_name: &str, digest: &Digest, timestamp: &str) -> Value {
    let model_ref = format!("{subject_name}@{digest}");
    let mut model = Map::new();
    model.insert("type".into(), json!("machine-learning-model"));
    model.insert("bom-ref".into(), json!(model_ref));
    for (cdx, field) in
        [("name", "name"), ("version", "version"), ("description", "description"), ("publisher", "publisher")]
    {
        if card.is_present(field) {
            model.insert(cdx.into(), json!(text_of(&card.field(field).cloned().unwrap_or_default())));
        }
    }
    if card.is_present("developer") {
        model.insert("manufacturer".into(), json!({"name": card.text("developer").unwrap_or_default()}));
    }
    model.insert("hashes".into(), json!([{"alg": "SHA-256", "content": digest.hex()}]));
    if let Some(license) = card.text("license").filter(|_| card.is_present("license")) {
        model.insert("licenses".into(), json!([{"license": {"name": license}}]));
    }

    let mut components = Vec::new();
    let mut params = Map::new();
    if let Some(arch) = card.text("architecture").filter(|_| card.is_present("architecture")) {
        params.insert("modelArchitecture".into(), json!(arch));
    }
    let mut dataset_refs = Vec::new();
    for (i, ds) in texts(card, "training.datasets").iter().enumerate() {
        let bom_ref = format!("{model_ref}#dataset-{i}");
        let mut data = Map::new();
        data.insert("type".into(), json!("data"));
        data.insert("bom-ref".into(), json!(bom_ref));
        data.insert("name".into(), json!(ds.get("name").map(text_of).unwrap_or_default()));
        if let Some(l) = ds.get("license") {
            data.insert("licenses".into(), json!([{"license": {"name": text_of(l)}}]));
        }
        if let Some(d) = ds.get("description") {
            data.insert("description".into(), json!(text_of(d)));
        }
        if let Some(u) = ds.get("url") {
            data.insert("externalReferences".into(), json!([{"type": "distribution", "url": text_of(u)}]));
        }
        components.push(Value::Object(data));
        dataset_refs.push(json!({"ref": bom_ref}));
    }
    if !dataset_refs.is_empty() {
        params.insert("datasets".into(), Value::Array(dataset_refs));
    }
    for (cdx, field) in [("inputs", "io.inputs"), ("outputs", "io.outputs")] {
        let formats: Vec<Value> = texts(card, field).iter().map(|t| json!({"format": text_of(t)})).collect();
        if !formats.is_empty() {
            params.insert(cdx.into(), Value::Array(formats));
        }
    }

    let mut model_card = Map::new();
    model_card.insert("bom-ref".into(), json!(format!("{model_ref}#model-card")));
    if !params.is_empty() {
        model_card.insert("modelParameters".into(), Value::Object(params));
    }
    let metrics: Vec<Value> = texts(card, "metrics")
        .iter()
        .map(|m| {
            let mut pm = Map::new();
            for (cdx, key) in [("type", "name"), ("value", "value"), ("slice", "dataset")] {
                if let Some(v) = m.get(key) {
                    pm.insert(cdx.into(), json!(text_of(v)));
                }
            }
            Value::Object(pm)
        })
        .collect();
    if !metrics.is_empty() {
        model_card.insert("quantitativeAnalysis".into(), json!({"performanceMetrics": metrics}));
    }
    let use_cases: Vec<String> = texts(card, "use.intended").iter().map(text_of).collect();
    if !use_cases.is_empty() {
        model_card.insert("considerations".into(), json!({"useCases": use_cases}));
    }
    let mut properties = Vec::new();
    for field in AS_PROPERTIES {
        for v in texts(card, field) {
            properties.push(json!({"name": format!("modelsign:{field}"), "value": text_of(&v)}));
        }
    }
    if !properties.is_empty() {
        model_card.insert("properties".into(), Value::Array(properties));
    }
    model.insert("modelCard".into(), Value::Object(model_card));
    components.insert(0, Value::Object(model));

    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": "modelsign", "version": env!("CARGO_PKG_VERSION")}]},
        },
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_card() {
        let card = Card::from_value(json!({
            "name": "tiny", "version": "1", "developer": "Vision", "publisher": "Acme", "description": "d",
            "license": "Apache-2.0", "architecture": "Llama", "languages": ["en"],
            "use": {"intended": "chat", "out-of-scope": ["medical advice"]},
            "io": {"inputs": "text", "outputs": ["text"]},
            "training": {"datasets": [{"name": "wiki", "license": "CC-BY-SA-4.0", "url": "https://example.org/wiki"}]},
            "metrics": [{"name": "accuracy", "value": 0.9, "dataset": "squad"}, "f1"],
            "security": {"sensitive-data": "none", "considerations": "reviewed",
                         "certificate": {"type": "public-key", "fingerprint": "sha256:ab"}},
        }))
        .unwrap();
        let digest = Digest::of(b"manifest");
        let bom = bom(&card, "reg/models/tiny", &digest, "2026-12-01T00:00:00Z");
        let model = &bom["components"][0];
        assert_eq!(model["type"], "machine-learning-model");
        assert_eq!(model["manufacturer"]["name"], "Vision");
        assert_eq!(model["hashes"][0]["content"], json!(digest.hex()));
        let mc = &model["modelCard"];
        assert_eq!(mc["modelParameters"]["inputs"], json!([{"format": "text"}]));
        assert_eq!(mc["modelParameters"]["datasets"][0]["ref"], bom["components"][1]["bom-ref"]);
        assert_eq!(bom["components"][1]["licenses"][0]["license"]["name"], "CC-BY-SA-4.0");
        assert_eq!(
            mc["quantitativeAnalysis"]["performanceMetrics"][0],
            json!({"type": "accuracy", "value": "0.9", "slice": "squad"})
        );
        assert_eq!(mc["quantitativeAnalysis"]["performanceMetrics"][1], json!({"type": "f1"}));
        assert_eq!(mc["considerations"]["useCases"], json!(["chat"]));
        let props = mc["properties"].as_array().unwrap();
        assert!(props.contains(&json!({"name": "modelsign:security.sensitive-data", "value": "none"})));
        assert!(props.contains(&json!({"name": "modelsign:use.out-of-scope", "value": "medical advice"})));
        assert!(props.iter().any(
            |p| p["name"] == "modelsign:security.certificate" && p["value"].as_str().unwrap().contains("sha256:ab")
        ));
    }
}
