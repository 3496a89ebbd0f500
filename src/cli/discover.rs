//! `modelsign discover REF`

use clap::Args;
use modelsign::ops::discover::{self, ReferrerNode};

use super::output::outln;
use super::{CliResult, Format, Global, output};

#[derive(Args)]
pub struct DiscoverArgs {
    /// The artifact: registry/repository[:tag|@digest] or oci:PATH[:tag|@digest].
    pub reference: String,
    /// Check who signed against this trusted public key (repeatable; without trust material every signer is "unverified").
    #[arg(long, value_name = "PUB.pem")]
    pub key: Vec<std::path::PathBuf>,
    /// Check who signed against these trusted root certificates (repeatable).
    #[arg(long, value_name = "ROOT.pem")]
    pub certificate_chain: Vec<std::path::PathBuf>,
    /// Name signers as this trust policy does (docs/POLICY.md).
    #[arg(long, value_name = "POLICY.yaml")]
    pub policy: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

fn print_nodes(nodes: &[ReferrerNode], indent: &str) -> std::io::Result<()> {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        outln!(
            "{indent}{} {}  {}",
            if last { "└──" } else { "├──" },
            n.artifact_type.as_deref().unwrap_or("-"),
            n.digest
        )?;
        let child_indent = format!("{indent}{}", if last { "    " } else { "│   " });
        for (k, v) in &n.annotations {
            outln!("{child_indent}  {k}: {v}")?;
        }
        print_nodes(&n.referrers, &child_indent)?;
    }
    Ok(())
}

pub async fn run(args: &DiscoverArgs, global: &Global) -> CliResult {
    let reference = super::parse_reference(&args.reference)?;
    let trust = super::trust::trust(&args.key, &args.certificate_chain, args.policy.as_deref())?;
    let target = super::open(&reference, global, false).await?;
    let tree = discover::discover(&target, &reference, trust.as_ref()).await?;
    match args.output {
        Format::Json => output::json(&tree)?,
        Format::Text => {
            outln!("{}@{}", tree.reference, tree.digest)?;
            print_nodes(&tree.referrers, "")?;
            if !tree.signatures.is_empty() {
                outln!("signatures and attestations:")?;
            }
            for s in &tree.signatures {
                outln!("  {}  {}  by {}  covers {}", s.referrer, s.predicate_type, s.signer, s.covers)?;
                if let Some(note) = &s.note {
                    outln!("      {note}")?;
                }
            }
            eprintln!("{} referrers", discover::count(&tree.referrers));
        }
    }
    Ok(())
}
