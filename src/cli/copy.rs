//! `modelsign copy SRC DST`: parses, calls `ops::copy` (gated by `ops::copy::approve`
//! when given trust: nothing reaches DST unless it passes), prints.

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
    #[command(flatten)]
    pub trust: super::trust::TrustArgs,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub async fn run(args: &CopyArgs, global: &Global) -> CliResult {
    let src_ref = super::parse_reference(&args.source)?;
    let dst_ref = super::parse_reference(&args.destination)?;
    let trust = args.trust.trust()?;
    let src = super::open(&src_ref, global, false).await?;
    let tag = copy::destination_tag(&src_ref, &dst_ref);
    let report = match &trust {
        None => {
            let dst = super::open(&dst_ref, global, true).await?;
            let reporter = global.progress("copy");
            copy::copy(&src, &dst, &src_ref.selector(), tag.as_deref(), global.concurrency, reporter.get()).await?
        }
        Some(trust) => {
            // The gate decides before the destination is even opened (a layout folder is created on open).
            let approved = copy::approve(&src, &src_ref.selector(), trust).await?;
            let dst = super::open(&dst_ref, global, true).await?;
            let reporter = global.progress("copy");
            copy::copy_approved(approved, &dst, tag.as_deref(), global.concurrency, reporter.get()).await?
        }
    };
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Text => {
            if let Some(d) = &report.verification {
                match &d.policy {
                    Some(p) => super::verify::print_policy(p)?,
                    None => eprintln!("verified: {} signature(s)", d.signatures.verified()),
                }
            }
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
