//! `modelsign verify TARGET (--key PUB.pem | --certificate-chain ROOT.pem)`: parses, calls
//! `ops::verify::verify` (which decides), prints.

use std::path::PathBuf;

use clap::Args;
use modelsign::ops::verify::{self, PolicyReport, SignatureOutcome, SignatureVerdict, VerifyReport};
use modelsign::reference::Location;

use super::output::outln;
use super::{CliError, CliResult, Format, Global, output, trust};

#[derive(Args)]
pub struct VerifyArgs {
    /// A reference (registry/repository[:tag|@digest], oci:PATH[:tag|@digest]) or a local model folder or file.
    pub target: String,
    #[command(flatten)]
    pub trust: super::trust::TrustArgs,
    #[command(flatten)]
    pub unpack_limits: super::unpack_limits::UnpackLimitArgs,
    /// Check only this component's bytes (repeatable; default: every component). A path
    /// inside an archive layer (ModelPack tar, oras folder, KitOps) checks the layer that holds it.
    #[arg(long, value_name = "PATH")]
    pub component: Vec<String>,
    /// Refuse to touch the network: TARGET must be an oci: layout folder.
    #[arg(long)]
    pub offline: bool,
    /// Local folder only: the signature file (default PATH/model.sig).
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// Local folder only: also leave out this path (repeatable; as `model_signing verify --ignore-paths`).
    #[arg(long = "ignore-paths", value_name = "PATH")]
    pub ignore_paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// Prints what became of each referrer.
pub fn print_signatures(verdict: &SignatureVerdict) -> std::io::Result<()> {
    for c in &verdict.checks {
        match &c.outcome {
            SignatureOutcome::Verified { predicate_type, signer } => {
                outln!("ok       signature {} ({predicate_type}) by {signer}", c.referrer)?
            }
            SignatureOutcome::Mismatch { predicate_type, signer, reason } => {
                outln!("FAILED   signature {} ({predicate_type}) by {signer}: {reason}", c.referrer)?
            }
            SignatureOutcome::ComponentSignature { signer, components, .. } => outln!(
                "info     component signature {} by {signer} covers {} component(s) of this model",
                c.referrer,
                components.len()
            )?,
            SignatureOutcome::Attestation { predicate_type, signer } => {
                outln!("info     attestation {} ({predicate_type}) by {signer}: not a signature", c.referrer)?
            }
            SignatureOutcome::Ignored { reason } => outln!("ignored  referrer {}: {reason}", c.referrer)?,
        }
    }
    Ok(())
}

/// Prints every rule of a policy with pass or fail and why (warnings on stderr).
pub fn print_policy(report: &PolicyReport) -> std::io::Result<()> {
    for r in &report.rules {
        let status = if r.passed { "ok      " } else { "FAILED  " };
        if r.line == 0 {
            outln!("{status} policy: {}: {}", r.rule, r.reason)?;
        } else {
            outln!("{status} policy line {}: {}: {}", r.line, r.rule, r.reason)?;
        }
    }
    Ok(())
}

fn print_report(report: &VerifyReport, format: Format) -> std::io::Result<()> {
    match format {
        Format::Json => output::json(report),
        Format::Text => {
            outln!("manifest {}", report.digest)?;
            print_signatures(&report.signatures)?;
            if let Some(policy) = &report.policy {
                print_policy(policy)?;
            }
            for c in &report.components {
                match &c.error {
                    None => outln!("ok       component {} ({})", c.path, output::bytes(c.size))?,
                    Some(e) => outln!("FAILED   component {}: {e}", c.path)?,
                }
            }
            Ok(())
        }
    }
}

pub async fn run(args: &VerifyArgs, global: &Global) -> CliResult {
    if trust::is_local(&args.target) {
        if !args.component.is_empty() || args.offline || args.trust.policy.is_some() {
            return Err(modelsign::Error::InvalidArguments(
                "--component, --offline and --policy apply to references only".into(),
            )
            .into());
        }
        let policy = trust::policy_with_keyless(&args.trust.key, &args.trust.certificate_chain, &args.trust.keyless)?;
        let path = PathBuf::from(&args.target);
        let report = tokio::task::block_in_place(|| {
            verify::verify_folder(
                &path,
                args.signature.as_deref(),
                &policy,
                &args.ignore_paths,
                &modelsign::progress::NoProgress,
            )
        })?;
        match args.output {
            Format::Json => output::json(&report)?,
            Format::Text => outln!("ok       {} files match the signature", report.files)?,
        }
        return Ok(());
    }
    if args.signature.is_some() || !args.ignore_paths.is_empty() {
        return Err(modelsign::Error::InvalidArguments(
            "--signature and --ignore-paths apply to local folders only".into(),
        )
        .into());
    }
    let reference = super::parse_reference(&args.target)?;
    if args.offline && !matches!(reference.location, Location::Layout { .. }) {
        return Err(modelsign::Error::InvalidArguments(format!(
            "--offline needs an oci: layout folder, not {reference}"
        ))
        .into());
    }
    let trust = args.trust.trust()?
        .ok_or_else(|| {
            modelsign::Error::InvalidArguments(
                "nothing to trust: pass --key PUB.pem, --certificate-chain ROOT.pem, --certificate-identity[-regexp] with --certificate-oidc-issuer[-regexp], or --policy POLICY.yaml".into(),
            )
        })?;
    let target = super::open(&reference, global, false).await?;
    let reporter = global.progress("verify");
    let limits = args.unpack_limits.limits()?;
    let report = verify::verify_with_limits(
        &target,
        &reference,
        &trust,
        &args.component,
        &limits,
        global.concurrency,
        reporter.get(),
    )
    .await?;
    drop(reporter);
    for w in report.policy.iter().flat_map(|p| &p.warnings) {
        eprintln!("warning: {w}");
    }
    // A closed stdout must never hide a failed verification (a broken pipe exits 0).
    let printed = print_report(&report, args.output);
    match &report.failure {
        None => {
            printed?;
            if args.output == Format::Text {
                match &report.policy {
                    Some(p) => eprintln!(
                        "verified: all {} policy rule(s) passed, {} component(s)",
                        p.rules.len(),
                        report.components.len()
                    ),
                    None => eprintln!(
                        "verified: {} signature(s), {} component(s)",
                        report.signatures.verified(),
                        report.components.len()
                    ),
                }
            }
            Ok(())
        }
        Some(reason) => Err(CliError::Modelsign(modelsign::Error::Verification(format!("{reference}: {reason}")))),
    }
}
