//! `modelsign inspect REF`

use clap::Args;
use modelsign::digest::Digest;
use modelsign::modelpack::{self, ModelPackConfig};
use modelsign::ops::{components, discover, model};
use serde::Serialize;

use super::output::outln;
use super::{CliResult, Format, Global, output};

#[derive(Args)]
pub struct InspectArgs {
    /// What to inspect: registry/repository[:tag|@digest] or oci:PATH[:tag|@digest].
    pub reference: String,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    path: String,
    media_type: String,
    size: u64,
    digest: Digest,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inspection {
    reference: String,
    digest: Digest,
    artifact_type: String,
    config_media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<ModelPackConfig>,
    components: Vec<Component>,
    total_size: u64,
    referrers: usize,
}

pub async fn run(args: &InspectArgs, global: &Global) -> CliResult {
    let reference = super::parse_reference(&args.reference)?;
    let target = super::open(&reference, global, false).await?;
    let (desc, manifest) = model::fetch_model_manifest(&target, &reference.selector()).await?;
    let comps = components::components(&manifest, &format!("{reference} ({})", desc.digest))?;
    let config = if manifest.config.media_type == modelpack::CONFIG_MEDIA_TYPE {
        let bytes = target.fetch_small_blob(&manifest.config, modelsign::store::MAX_MANIFEST_SIZE).await?;
        serde_json::from_slice::<ModelPackConfig>(&bytes).ok()
    } else {
        None
    };
    let referrers = discover::referrers_tree(&target, &desc, 7).await?.len();
    let inspection = Inspection {
        reference: reference.to_string(),
        digest: desc.digest.clone(),
        artifact_type: manifest.effective_artifact_type().to_string(),
        config_media_type: manifest.config.media_type.clone(),
        config,
        total_size: comps.iter().map(|c| c.descriptor.size).sum(),
        components: comps
            .into_iter()
            .map(|c| Component {
                path: c.path,
                media_type: c.descriptor.media_type,
                size: c.descriptor.size,
                digest: c.descriptor.digest,
            })
            .collect(),
        referrers,
    };
    match args.output {
        Format::Json => output::json(&inspection)?,
        Format::Text => {
            outln!("Reference:     {}", inspection.reference)?;
            outln!("Digest:        {}", inspection.digest)?;
            outln!("Artifact type: {}", inspection.artifact_type)?;
            if let Some(c) = &inspection.config {
                let d = &c.descriptor;
                outln!("Name:          {}", d.name.as_deref().unwrap_or("-"))?;
                outln!("Version:       {}", d.version.as_deref().unwrap_or("-"))?;
                outln!("Created:       {}", d.created_at.as_deref().unwrap_or("-"))?;
                outln!("Format:        {}", c.config.format.as_deref().unwrap_or("-"))?;
                if let Some(a) = &c.config.architecture {
                    outln!("Architecture:  {a}")?;
                }
            }
            outln!("Referrers:     {}", inspection.referrers)?;
            outln!("Components:    {} ({})", inspection.components.len(), output::bytes(inspection.total_size))?;
            for c in &inspection.components {
                let kind = c.media_type.strip_prefix("application/vnd.cncf.model.").unwrap_or(&c.media_type);
                outln!("  {:>10}  {:<18} {}  {}", output::bytes(c.size), kind, c.digest, c.path)?;
            }
        }
    }
    Ok(())
}
