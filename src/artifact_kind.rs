//! Models packed by other tools: which tool made an artifact, and which of its layers are
//! archives to unpack rather than single files.
//!
//! - CNCF ModelPack (modctl): layers `application/vnd.cncf.model.{weight,weight.config,
//!   doc,code,dataset}.v1.{raw,tar,tar+gzip,tar+zstd}`; `.raw` is one file, the others
//!   are archives.
//! - `oras push` of a folder: one `application/vnd.oci.image.layer.v1.tar+gzip` layer
//!   annotated `io.deis.oras.content.unpack: "true"`, titled with the folder's name (its
//!   entries are under that name). A tar layer without the annotation is a file that
//!   happens to be a tarball, and is pulled as such, as oras does.
//! - KitOps ModelKits: config `application/vnd.kitops.modelkit.config.v1+json` (the
//!   Kitfile), layers `application/vnd.kitops.modelkit.{model,modelpart,code,dataset,
//!   docs,prompts}.v1.tar[+gzip]`.
//! - Docker model runner: config `application/vnd.docker.ai.model.config.v0.1+json`,
//!   layers `application/vnd.docker.ai.{gguf.v3,safetensors,license,…}` (single files) and
//!   `application/vnd.docker.ai.*.tar` (folders packed as tar).

use serde::Serialize;

use crate::digest::Digest;
use crate::modelpack;
use crate::oci::{Descriptor, Manifest};
use crate::unpack::Compression;

pub const ORAS_UNPACK_ANNOTATION: &str = "io.deis.oras.content.unpack";
pub const KITOPS_CONFIG: &str = "application/vnd.kitops.modelkit.config.v1+json";
pub const KITOPS_PREFIX: &str = "application/vnd.kitops.modelkit.";
pub const DOCKER_AI_PREFIX: &str = "application/vnd.docker.ai.";
pub const DOCKER_MODEL_CONFIG_PREFIX: &str = "application/vnd.docker.ai.model.config";
pub const CNCF_MODEL_PREFIX: &str = "application/vnd.cncf.model.";
const OCI_LAYER_PREFIX: &str = "application/vnd.oci.image.layer.v1.";

/// Which tool's layout a manifest follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// CNCF ModelPack (modelsign, modctl).
    ModelPack,
    /// KitOps ModelKit.
    ModelKit,
    /// Docker model runner.
    Docker,
    /// Files pushed with `oras push` (or anything else with titled layers).
    Oras,
}

impl ArtifactKind {
    pub fn name(self) -> &'static str {
        match self {
            ArtifactKind::ModelPack => "modelpack",
            ArtifactKind::ModelKit => "modelkit",
            ArtifactKind::Docker => "docker",
            ArtifactKind::Oras => "oras",
        }
    }

    pub fn of(manifest: &Manifest) -> ArtifactKind {
        let config = manifest.config.media_type.as_str();
        let any_layer = |prefix: &str| manifest.layers.iter().any(|l| l.media_type.starts_with(prefix));
        if config == modelpack::CONFIG_MEDIA_TYPE || manifest.effective_artifact_type() == modelpack::ARTIFACT_TYPE {
            ArtifactKind::ModelPack
        } else if config == KITOPS_CONFIG || any_layer(KITOPS_PREFIX) {
            ArtifactKind::ModelKit
        } else if config.starts_with(DOCKER_MODEL_CONFIG_PREFIX) || any_layer(DOCKER_AI_PREFIX) {
            ArtifactKind::Docker
        } else if any_layer(CNCF_MODEL_PREFIX) {
            ArtifactKind::ModelPack
        } else {
            ArtifactKind::Oras
        }
    }
}

/// How a layer is unpacked: `None` for a single file, else the archive's compression.
pub fn archive_compression(desc: &Descriptor) -> Option<Compression> {
    let mt = desc.media_type.as_str();
    let by_suffix = || {
        if mt.ends_with(".tar") {
            Some(Compression::None)
        } else if mt.ends_with(".tar+gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with(".tar+zstd") {
            Some(Compression::Zstd)
        } else {
            None
        }
    };
    if mt.starts_with(CNCF_MODEL_PREFIX) || mt.starts_with(KITOPS_PREFIX) || mt.starts_with(DOCKER_AI_PREFIX) {
        return by_suffix();
    }
    let oras_unpack = desc.annotations.get(ORAS_UNPACK_ANNOTATION).is_some_and(|v| v == "true");
    if oras_unpack && mt.starts_with(OCI_LAYER_PREFIX) {
        return by_suffix();
    }
    None
}

/// The name of a layer that has no `org.cncf.model.filepath` or title annotation (KitOps
/// and older Docker model layers): `sha256-<first 16 hex digits of its digest>` with an
/// extension from its media type. Deterministic, so a signature can name it.
pub fn unnamed_layer_path(desc: &Descriptor) -> String {
    let mt = desc.media_type.as_str();
    let ext = match archive_compression(desc) {
        Some(Compression::None) => ".tar",
        Some(Compression::Gzip) => ".tar.gz",
        Some(Compression::Zstd) => ".tar.zst",
        None if mt.contains(".gguf") => ".gguf",
        None if mt.contains(".safetensors") => ".safetensors",
        None if mt.contains(".license") => ".license",
        None => "",
    };
    format!("sha256-{}{ext}", &short_hex(&desc.digest))
}

fn short_hex(d: &Digest) -> String {
    d.hex()[..16].to_string()
}

/// A short label of how a layer is stored (`raw`, `tar`, `tar+gzip`, `tar+zstd`).
pub fn storage_label(desc: &Descriptor) -> &'static str {
    match archive_compression(desc) {
        None => "raw",
        Some(Compression::None) => "tar",
        Some(Compression::Gzip) => "tar+gzip",
        Some(Compression::Zstd) => "tar+zstd",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(mt: &str, annotations: &[(&str, &str)]) -> Descriptor {
        let mut d = Descriptor::new(mt, Digest::of(mt.as_bytes()), 1);
        for (k, v) in annotations {
            d.annotations.insert(k.to_string(), v.to_string());
        }
        d
    }

    #[test]
    fn recognises_archive_layers() {
        for (mt, c) in [
            ("application/vnd.cncf.model.weight.v1.tar", Some(Compression::None)),
            ("application/vnd.cncf.model.weight.config.v1.tar+gzip", Some(Compression::Gzip)),
            ("application/vnd.cncf.model.dataset.v1.tar+zstd", Some(Compression::Zstd)),
            ("application/vnd.cncf.model.weight.v1.raw", None),
            ("application/vnd.kitops.modelkit.model.v1.tar+gzip", Some(Compression::Gzip)),
            ("application/vnd.kitops.modelkit.code.v1.tar", Some(Compression::None)),
            ("application/vnd.docker.ai.gguf.v3", None),
            ("application/vnd.docker.ai.dir.tar", Some(Compression::None)),
            ("application/vnd.oci.image.layer.v1.tar+gzip", None),
        ] {
            assert_eq!(archive_compression(&layer(mt, &[])), c, "{mt}");
        }
        let oras = layer("application/vnd.oci.image.layer.v1.tar+gzip", &[(ORAS_UNPACK_ANNOTATION, "true")]);
        assert_eq!(archive_compression(&oras), Some(Compression::Gzip));
        assert_eq!(unnamed_layer_path(&oras).len(), "sha256-".len() + 16 + ".tar.gz".len());
        assert!(unnamed_layer_path(&layer("application/vnd.docker.ai.gguf.v3", &[])).ends_with(".gguf"));
    }
}
