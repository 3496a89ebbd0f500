//! `modelsign attest REF --model-card CARD --key KEY.pem`: signs a model card about a model
//! and attaches it (and the same card as a CycloneDX ML-BOM) as Sigstore bundle referrers.

use std::path::PathBuf;

use clap::Args;
use modelsign::card::Card;
use modelsign::ops::attest::{attest, check_mandatory};

use super::output::outln;
use super::{CliResult, Format, Global, output, trust};

#[derive(Args)]
pub struct AttestArgs {
    /// The model: registry/repository[:tag|@digest] or oci:PATH[:tag|@digest].
    pub reference: String,
    /// The model card: YAML, JSON, or a Markdown file (a Hugging Face README.md) whose YAML front matter holds the fields.
    #[arg(long, value_name = "CARD")]
    pub model_card: PathBuf,
    /// Private key: a PEM file (PKCS#8 or SEC1; encrypted keys read MODELSIGN_KEY_PASSWORD or
    /// prompt), or a key in a hardware token as an RFC 7512 URI,
    /// 'pkcs11:token=T;object=K?module-path=/path/module.so&pin-value=PIN' (or pin-source=FILE;
    /// without either, MODELSIGN_PKCS11_PIN or a prompt).
    /// Without --key: keyless (see --identity-token).
    #[arg(long, value_name = "KEY.pem|pkcs11:URI")]
    pub key: Option<PathBuf>,
    /// Signing certificate for the key (the bundle then carries the chain instead of a key hint).
    #[arg(long, value_name = "LEAF.pem")]
    pub certificate: Option<PathBuf>,
    /// Intermediate certificates after the leaf (repeatable).
    #[arg(long, value_name = "CHAIN.pem")]
    pub certificate_chain: Vec<PathBuf>,
    #[command(flatten)]
    pub keyless: super::keyless::KeylessSignArgs,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub async fn run(args: &AttestArgs, global: &Global) -> CliResult {
    // The card first: a card that cannot be attested needs no key, password or network.
    let card = Card::load(&args.model_card)?;
    let card_name = args.model_card.display().to_string();
    check_mandatory(&card, &card_name)?;
    // And the target before the signer: an unreachable registry must not cost a Fulcio certificate.
    let reference = super::parse_reference(&args.reference)?;
    let target = super::open(&reference, global, false).await?;
    target.resolve(&reference.selector()).await?;
    let (signer, witness) = trust::any_signer(
        args.key.as_deref(),
        args.certificate.as_deref(),
        &args.certificate_chain,
        &args.keyless,
        global,
    )
    .await?;
    let report = attest(&target, &reference, card, &card_name, &signer).await?;
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Text => {
            super::keyless::report(witness.as_ref());
            eprintln!("attested model card about {} by {}", report.digest, report.signer.describe());
            for f in &report.filled {
                if let Some(old) = &f.replaced {
                    eprintln!(
                        "note: `{}` was replaced by what the artifact or signer says (the card said {old})",
                        f.field
                    );
                }
            }
            outln!("{}", report.card_attestation.digest)?;
            outln!("{}", report.cyclonedx_attestation.digest)?;
        }
    }
    Ok(())
}
