//! `modelsign attach REF --artifact-type T FILE…`

use std::path::PathBuf;

use clap::Args;
use modelsign::oci::Annotations;
use modelsign::ops::attach;

use super::output::outln;
use super::{CliResult, Format, Global, output};

#[derive(Args)]
pub struct AttachArgs {
    /// The artifact to attach to.
    pub reference: String,
    /// Artifact type of the new referrer (a media type).
    #[arg(long, value_name = "TYPE")]
    pub artifact_type: String,
    /// Annotation of the referrer manifest, KEY=VALUE (repeatable).
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Files to attach, one layer each.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub async fn run(args: &AttachArgs, global: &Global) -> CliResult {
    let reference = super::parse_reference(&args.reference)?;
    let target = super::open(&reference, global, false).await?;
    let subject = target.resolve(&reference.selector()).await?;
    let mut annotations = Annotations::new();
    for a in &args.annotations {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| modelsign::Error::InvalidArguments(format!("annotation `{a}` is not KEY=VALUE")))?;
        annotations.insert(k.to_string(), v.to_string());
    }
    let reporter = global.progress("attach");
    let desc = attach::attach(&target, &subject, &args.artifact_type, &args.files, annotations, reporter.get()).await?;
    drop(reporter);
    match args.output {
        Format::Json => output::json(&desc)?,
        Format::Text => outln!("{}", desc.digest)?,
    }
    Ok(())
}
