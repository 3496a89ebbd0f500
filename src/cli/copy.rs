//! `modelsign copy SRC DST`

use clap::Args;
use modelsign::ops::copy;

use super::output::outln;
use super::{CliResult, Format, Global, output};

#[derive(Args)]
pub struct CopyArgs {
    /// Source: registry/repository[:tag|@digest] or oci:PATH[:tag|@digest].
    pub source: String,
    /// Destination: registry/repository[:tag] or oci:PATH[:tag] (tag defaults to the source's).
    pub destination: String,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub async fn run(args: &CopyArgs, global: &Global) -> CliResult {
    let src_ref = super::parse_reference(&args.source)?;
    let dst_ref = super::parse_reference(&args.destination)?;
    let src = super::open(&src_ref, global, false).await?;
    let dst = super::open(&dst_ref, global, true).await?;
    let tag = dst_ref
        .tag
        .clone()
        .or_else(|| src_ref.tag.clone())
        .or_else(|| src_ref.digest.is_none().then(|| "latest".to_string()));
    let reporter = global.progress("copy");
    let report =
        copy::copy(&src, &dst, &src_ref.selector(), tag.as_deref(), global.concurrency, reporter.get()).await?;
    drop(reporter);
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Text => {
            eprintln!(
                "copied {} manifests ({} referrers); blobs: {} copied ({}), {} mounted, {} already there",
                report.manifests,
                report.referrers,
                report.blobs_copied,
                output::bytes(report.bytes_copied),
                report.blobs_mounted,
                report.blobs_skipped
            );
            if let Some(d) = &report.digest {
                outln!("{d}")?;
            }
        }
    }
    Ok(())
}
