//! `modelsign card show REF --key PUB.pem` (the attested cards of a model and who signed
//! them) and `modelsign card init PATH -o CARD.yaml` (a draft card from a model folder).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use modelsign::card::provenance::SignerInfo;
use modelsign::ops::attest::show_cards;
use serde_json::Value;

use super::output::outln;
use super::{CliError, CliResult, Format, Global, output, trust};

#[derive(Args)]
pub struct CardArgs {
    #[command(subcommand)]
    pub command: CardCommand,
}

#[derive(Subcommand)]
pub enum CardCommand {
    /// Show the model cards attested about a model by trusted signers, and who signed each.
    ///
    /// A card is shown only if its attestation verifies with the given keys or roots and its
    /// subject is this very manifest. No such card exits with 3.
    Show(ShowArgs),
    /// Draft a model card from a model folder (README.md front matter, config.json, file formats).
    ///
    /// Mandatory fields it cannot know are written as `TODO: …`, which `attest` refuses;
    /// optional ones as comments.
    Init(InitArgs),
}

#[derive(Args)]
pub struct InitArgs {
    /// The model folder (or single file).
    pub path: PathBuf,
    /// Where to write the draft (default: stdout). An existing file is not overwritten without --force.
    #[arg(short, long, value_name = "CARD.yaml")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    /// The model: registry/repository[:tag|@digest] or oci:PATH[:tag|@digest].
    pub reference: String,
    /// Trusted public key, SPKI PEM (repeatable).
    #[arg(long, value_name = "PUB.pem")]
    pub key: Vec<PathBuf>,
    /// Trusted root certificate(s), PEM (repeatable).
    #[arg(long, value_name = "ROOT.pem")]
    pub certificate_chain: Vec<PathBuf>,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub async fn run(args: &CardArgs, global: &Global) -> CliResult {
    match &args.command {
        CardCommand::Show(a) => show(a, global).await,
        CardCommand::Init(a) => init(a),
    }
}

fn init(args: &InitArgs) -> CliResult {
    let draft = modelsign::card::draft::draft(&args.path)?;
    for w in &draft.warnings {
        eprintln!("warning: {w}");
    }
    match &args.output {
        None => outln!("{}", draft.yaml.trim_end())?,
        Some(path) => {
            if path.exists() && !args.force {
                return Err(modelsign::Error::WouldOverwrite { path: path.to_path_buf(), force_flag: true }.into());
            }
            modelsign::atomic_file::write(path, draft.yaml.as_bytes())?;
            eprintln!("wrote {}", path.display());
        }
    }
    if !draft.todo.is_empty() {
        eprintln!("to fill in before attest: {}", draft.todo.join(", "));
    }
    Ok(())
}

/// Prints a card's fields as `dotted.name: value` lines.
fn print_fields(prefix: &str, value: &Value) -> std::io::Result<()> {
    match value {
        Value::Object(map) if prefix.is_empty() || !map.is_empty() => {
            for (k, v) in map {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                print_fields(&name, v)?;
            }
            Ok(())
        }
        Value::String(s) => {
            // Escape control characters (a signed card is still not terminal input), keep lines.
            let shown: String = s
                .chars()
                .flat_map(|c| if c.is_control() && c != '\n' { c.escape_default().collect() } else { vec![c] })
                .collect();
            outln!("  {prefix}: {}", shown.replace('\n', "\n    "))
        }
        other => outln!("  {prefix}: {other}"),
    }
}

async fn show(args: &ShowArgs, global: &Global) -> CliResult {
    let policy = trust::policy(&args.key, &args.certificate_chain)?;
    let reference = super::parse_reference(&args.reference)?;
    let target = super::open(&reference, global, false).await?;
    let report = show_cards(&target, &reference, &policy).await?;
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Text => {
            for c in &report.found.cards {
                outln!("model card {} signed by {}", c.referrer, c.signer.describe())?;
                if let SignerInfo::X509 { fingerprint, .. } = &c.signer {
                    outln!("  (certificate {fingerprint})")?;
                }
                print_fields("", &c.card.to_predicate())?;
            }
            if !report.found.cards.is_empty() {
                for r in &report.found.rejected {
                    eprintln!("not shown: card {}: {}", r.referrer, r.reason);
                }
            }
        }
    }
    if let Some(why) = report.found.failure() {
        return Err(CliError::Modelsign(modelsign::Error::Verification(format!(
            "no trusted model card for {}@{}: {why}",
            report.reference, report.digest
        ))));
    }
    Ok(())
}
