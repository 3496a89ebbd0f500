//! The CNCF ModelPack artifact: media types, how a file is classified into a layer
//! media type, and the model config (`descriptor`, `config`, `modelfs`).

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.model.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.model.config.v1+json";
pub const WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";
pub const WEIGHT_CONFIG: &str = "application/vnd.cncf.model.weight.config.v1.raw";
pub const DOC: &str = "application/vnd.cncf.model.doc.v1.raw";
pub const CODE: &str = "application/vnd.cncf.model.code.v1.raw";
pub const DATASET: &str = "application/vnd.cncf.model.dataset.v1.raw";

pub const ANNOTATION_FILEPATH: &str = "org.cncf.model.filepath";
pub const ANNOTATION_UNTESTED: &str = "org.cncf.model.file.mediatype.untested";

/// A layer media type chosen for a file, and whether it was a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub media_type: &'static str,
    pub guessed: bool,
}

const WEIGHT_EXTENSIONS: &[&str] = &[
    "safetensors",
    "gguf",
    "ggml",
    "onnx",
    "pt",
    "pth",
    "ckpt",
    "h5",
    "keras",
    "pb",
    "tflite",
    "msgpack",
    "npz",
    "ot",
    "mlmodel",
    "nemo",
    "engine",
    "trt",
];
const WEIGHT_CONFIG_NAMES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "preprocessor_config.json",
    "processor_config.json",
    "adapter_config.json",
    "params.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
];
const CODE_EXTENSIONS: &[&str] = &[
    "py", "ipynb", "sh", "js", "ts", "go", "rs", "c", "cc", "cpp", "h", "hpp", "cu", "java", "jl", "r", "lua", "toml",
    "yaml", "yml", "jinja",
];
const DOC_EXTENSIONS: &[&str] =
    &["md", "markdown", "rst", "txt", "pdf", "html", "png", "jpg", "jpeg", "gif", "svg", "webp"];
const DATASET_EXTENSIONS: &[&str] = &["csv", "tsv", "parquet", "jsonl", "arrow", "tfrecord"];

/// Classifies a model file by its path, the way modctl and kit do: weights, weight
/// configs (model and tokenizer configuration), docs, code, datasets. A name that fits
/// no rule is a guess: a weight when it is large, a doc otherwise.
pub fn classify(path: &str, size: u64) -> Classification {
    let name = path.rsplit('/').next().unwrap_or(path);
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let sure = |media_type| Classification { media_type, guessed: false };
    let guess = |media_type| Classification { media_type, guessed: true };
    if WEIGHT_EXTENSIONS.contains(&ext) {
        return sure(WEIGHT);
    }
    if WEIGHT_CONFIG_NAMES.contains(&lower.as_str())
        || lower.ends_with(".index.json")
        || lower.starts_with("vocab.")
        || ext == "tiktoken"
        || (ext == "model" && lower.contains("tokenizer"))
    {
        return sure(WEIGHT_CONFIG);
    }
    if lower.starts_with("readme")
        || lower.starts_with("license")
        || lower.starts_with("notice")
        || lower.starts_with("model_card")
    {
        return sure(DOC);
    }
    if DATASET_EXTENSIONS.contains(&ext) {
        return sure(DATASET);
    }
    if CODE_EXTENSIONS.contains(&ext) || lower == "requirements.txt" || lower == "dockerfile" {
        return sure(CODE);
    }
    if DOC_EXTENSIONS.contains(&ext) {
        return sure(DOC);
    }
    if ext == "bin" || ext == "model" {
        return guess(WEIGHT);
    }
    if ext == "json" {
        return guess(WEIGHT_CONFIG);
    }
    if size >= 1 << 20 { guess(WEIGHT) } else { guess(DOC) }
}

/// The weight format of a model, from its weight files' extensions (the one holding most bytes).
pub fn infer_format<'a>(files: impl IntoIterator<Item = (&'a str, u64)>) -> Option<String> {
    let mut totals: Vec<(&'static str, u64)> = Vec::new();
    for (path, size) in files {
        let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        let format = match ext.as_str() {
            "safetensors" => "safetensors",
            "gguf" => "gguf",
            "ggml" => "ggml",
            "onnx" => "onnx",
            "pt" | "pth" | "ckpt" | "bin" => "pytorch",
            "h5" | "keras" => "keras",
            "pb" => "tensorflow",
            "tflite" => "tflite",
            "msgpack" => "flax",
            "mlmodel" => "coreml",
            "nemo" => "nemo",
            _ => continue,
        };
        match totals.iter_mut().find(|(f, _)| *f == format) {
            Some((_, t)) => *t += size,
            None => totals.push((format, size)),
        }
    }
    totals.into_iter().max_by_key(|(_, t)| *t).map(|(f, _)| f.to_string())
}

/// `descriptor` of the ModelPack config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `config` of the ModelPack config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelFs {
    #[serde(rename = "type")]
    pub fs_type: String,
    pub diff_ids: Vec<Digest>,
}

/// The whole ModelPack config blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPackConfig {
    pub descriptor: ModelDescriptor,
    pub config: ModelConfig,
    pub modelfs: ModelFs,
}

impl ModelPackConfig {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("config serialises")
    }
}

/// What can be read from a Hugging Face style `config.json`: architecture and precision.
pub fn read_hf_config(bytes: &[u8]) -> ModelConfig {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else { return ModelConfig::default() };
    let architecture = v
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
        .or_else(|| v.get("model_type").and_then(|m| m.as_str()))
        .map(str::to_string);
    let precision = v.get("torch_dtype").or_else(|| v.get("dtype")).and_then(|d| d.as_str()).map(str::to_string);
    let quantization =
        v.get("quantization_config").and_then(|q| q.get("quant_method")).and_then(|m| m.as_str()).map(str::to_string);
    ModelConfig { architecture, precision, quantization, ..ModelConfig::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_common_files() {
        assert_eq!(classify("model.safetensors", 10), Classification { media_type: WEIGHT, guessed: false });
        assert_eq!(classify("sub/config.json", 10).media_type, WEIGHT_CONFIG);
        assert_eq!(classify("model.safetensors.index.json", 10).media_type, WEIGHT_CONFIG);
        assert_eq!(classify("README.md", 10).media_type, DOC);
        assert_eq!(classify("modeling.py", 10).media_type, CODE);
        assert_eq!(classify("train.parquet", 10).media_type, DATASET);
        assert_eq!(classify("pytorch_model.bin", 10), Classification { media_type: WEIGHT, guessed: true });
        assert!(classify("odd", 10).guessed);
    }

    #[test]
    fn infers_format_by_bytes() {
        assert_eq!(
            infer_format([("a.safetensors", 10), ("b.gguf", 5), ("c.txt", 100)]).as_deref(),
            Some("safetensors")
        );
        assert_eq!(infer_format([("c.txt", 100)]), None);
    }

    #[test]
    fn reads_hf_config() {
        let c = read_hf_config(br#"{"architectures":["LlamaForCausalLM"],"torch_dtype":"bfloat16"}"#);
        assert_eq!(c.architecture.as_deref(), Some("LlamaForCausalLM"));
        assert_eq!(c.precision.as_deref(), Some("bfloat16"));
    }
}
