//! `modelsign inspect REF`

use clap::Args;
use modelsign::ops::inspect;

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

pub async fn run(args: &InspectArgs, global: &Global) -> CliResult {
    let reference = super::parse_reference(&args.reference)?;
    let target = super::open(&reference, global, false).await?;
    let inspection = inspect::inspect(&target, &reference).await?;
    match args.output {
        Format::Json => output::json(&inspection)?,
        Format::Text => {
            outln!("Reference:     {}", inspection.reference)?;
            outln!("Digest:        {}", inspection.digest)?;
            outln!("Artifact type: {}", inspection.artifact_type)?;
            outln!("Kind:          {}", inspection.kind.name())?;
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
                let path = match c.storage {
                    "raw" => c.path.clone(),
                    storage => format!("{} ({storage}, unpacked on pull)", c.path),
                };
                outln!("  {:>10}  {:<18} {}  {}", output::bytes(c.size), kind, c.digest, path)?;
            }
        }
    }
    Ok(())
}
