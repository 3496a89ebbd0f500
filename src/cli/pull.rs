//! `modelsign pull REF -o DIR`: parses, calls `ops::pull::pull` (which decides before
//! writing anything when given trust), prints.

use std::path::PathBuf;

use clap::Args;
use modelsign::ops::pull;

use super::output::outln;
use super::{CliResult, Format, Global, output};

#[derive(Args)]
pub struct PullArgs {
    /// What to pull: registry/repository[:tag|@digest] or oci:PATH[:tag|@digest].
    pub reference: String,
    /// Folder to write the components into (created if missing; may already exist).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub dir: PathBuf,
    /// Pull only components whose path matches this glob (repeatable); inside archive
    /// layers (ModelPack tar, oras folders, KitOps), only the files that match.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    #[command(flatten)]
    pub trust: super::trust::TrustArgs,
    #[command(flatten)]
    pub unpack_limits: super::unpack_limits::UnpackLimitArgs,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn run(args: &PullArgs, global: &Global) -> CliResult {
    let reference = super::parse_reference(&args.reference)?;
    let trust = args.trust.trust()?;
    let target = super::open(&reference, global, false).await?;
    let reporter = global.progress("pull");
    let limits = args.unpack_limits.limits()?;
    let report = pull::pull_with_limits(
        &target,
        &reference,
        &args.dir,
        &args.include,
        trust.as_ref(),
        &limits,
        global.concurrency,
        reporter.get(),
    )
    .await?;
    drop(reporter);
    if let (Some(v), Format::Text) = (&report.verification, args.format)
        && let Some(policy) = &v.decision.policy
    {
        super::verify::print_policy(policy)?;
    }
    if let Some(v) = &report.verification {
        match (&v.signature_file, &v.signature_note) {
            (Some(path), _) => eprintln!("verified; wrote {}", path.display()),
            (None, Some(note)) => eprintln!("verified; model.sig not written: {note}"),
            (None, None) => eprintln!("verified"),
        }
    }
    match args.format {
        Format::Json => output::json(&report)?,
        Format::Text => {
            for c in &report.components {
                outln!("{}  {}  {}", if c.downloaded { "pulled " } else { "present" }, c.digest, c.path)?;
            }
            for a in &report.archives {
                outln!("unpacked {}  {} ({} files)", a.digest, a.path, a.files.len())?;
            }
            let present = report.components.iter().filter(|c| !c.downloaded).count();
            let mut skipped = String::new();
            if present > 0 {
                skipped.push_str(&format!(
                    "; {present} already there ({} not downloaded)",
                    output::bytes(report.bytes_present)
                ));
            }
            if report.bytes_resumed > 0 {
                skipped.push_str(&format!(
                    "; resumed {} kept by an interrupted pull",
                    output::bytes(report.bytes_resumed)
                ));
            }
            eprintln!(
                "pulled {} of {} components ({}) into {}{skipped}",
                report.components.len() - present + report.archives.len(),
                report.components.len() + report.archives.len(),
                output::bytes(report.bytes_downloaded),
                args.dir.display()
            );
        }
    }
    Ok(())
}
