//! `modelsign pull REF -o DIR`

use std::path::PathBuf;

use clap::Args;
use modelsign::ops::{components, model, pull, verify};

use super::output::outln;
use super::{CliResult, Format, Global, output};

#[derive(Args)]
pub struct PullArgs {
    /// What to pull: registry/repository[:tag|@digest] or oci:PATH[:tag|@digest].
    pub reference: String,
    /// Folder to write the components into (created if missing; may already exist).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub dir: PathBuf,
    /// Pull only components whose path matches this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Verify signatures with this trusted public key before writing anything (repeatable).
    #[arg(long, value_name = "PUB.pem")]
    pub key: Vec<PathBuf>,
    /// Verify signatures against these trusted root certificates before writing anything (repeatable).
    #[arg(long, value_name = "ROOT.pem")]
    pub certificate_chain: Vec<PathBuf>,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn run(args: &PullArgs, global: &Global) -> CliResult {
    let reference = super::parse_reference(&args.reference)?;
    let target = super::open(&reference, global, false).await?;
    let (desc, manifest) = model::fetch_model_manifest(&target, &reference.selector()).await?;
    let what = format!("{} ({})", reference, desc.digest);
    let all = components::components(&manifest, &what)?;
    let selected = components::select(all.clone(), &args.include)?;
    let verdict = if args.key.is_empty() && args.certificate_chain.is_empty() {
        None
    } else {
        let policy = super::trust::policy(&args.key, &args.certificate_chain)?;
        let verdict = verify::verify_signatures(&target, &desc, &all, &policy).await?;
        if let Some(reason) = verdict.failure() {
            return Err(modelsign::Error::Verification(format!("{reference}: {reason}; nothing was written")).into());
        }
        Some(verdict)
    };
    let reporter = global.progress("pull");
    let pulled = pull::pull_components(&target, &args.dir, &selected, global.concurrency, reporter.get()).await?;
    drop(reporter);
    // Beside a complete, verified pull, the OMS signature lets `model_signing verify` check the folder.
    if let Some(verdict) = &verdict {
        match (&verdict.oms_bundle, args.include.is_empty()) {
            (Some(bundle), true) => {
                let path = args.dir.join(modelsign::sign::local::SIGNATURE_FILE);
                modelsign::atomic_file::write(&path, bundle)?;
                eprintln!("verified; wrote {}", path.display());
            }
            (Some(_), false) => eprintln!("verified; model.sig not written: --include pulled only part of the model"),
            (None, _) => {
                eprintln!("verified; model.sig not written: no trusted OMS signature (only manifest signatures)")
            }
        }
    }
    let report = pull::PullReport {
        reference: reference.to_string(),
        digest: desc.digest,
        output: args.dir.clone(),
        bytes_downloaded: pulled.iter().filter(|c| c.downloaded).map(|c| c.size).sum(),
        components: pulled,
    };
    match args.format {
        Format::Json => output::json(&report)?,
        Format::Text => {
            for c in &report.components {
                outln!("{}  {}  {}", if c.downloaded { "pulled " } else { "present" }, c.digest, c.path)?;
            }
            eprintln!(
                "pulled {} of {} components ({}) into {}",
                report.components.iter().filter(|c| c.downloaded).count(),
                report.components.len(),
                output::bytes(report.bytes_downloaded),
                args.dir.display()
            );
        }
    }
    Ok(())
}
