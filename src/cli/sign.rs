//! `modelsign sign TARGET --key KEY.pem`: a model in a registry or layout (from its
//! manifest alone), or a local folder (as `model_signing sign` does).

use std::path::PathBuf;

use clap::Args;
use modelsign::folder::ScanOptions;
use modelsign::ops::sign;

use super::output::outln;
use super::{CliResult, Format, Global, output, trust};

#[derive(Args)]
pub struct SignArgs {
    /// A reference (registry/repository[:tag|@digest], oci:PATH[:tag]) or a local model folder or file.
    pub target: String,
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
    /// Sign only the components whose path matches this glob (repeatable): one component
    /// signature listing each one's path and digest. It stays valid for later versions that
    /// carry the same components unchanged, and never verifies a whole model on its own.
    #[arg(long, value_name = "GLOB")]
    pub component: Vec<String>,
    /// Local folder only: where to write the signature (default PATH/model.sig, left out of the signed files).
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// Local folder only: leave out files matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub ignore: Vec<String>,
    /// Local folder only: follow symlinks instead of refusing them.
    #[arg(long)]
    pub allow_symlinks: bool,
    #[command(flatten)]
    pub cache: super::cache::CacheArgs,
    #[command(flatten)]
    pub keyless: super::keyless::KeylessSignArgs,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub async fn run(args: &SignArgs, global: &Global) -> CliResult {
    // The arguments and the target first: a keyless signer costs a Fulcio certificate (and
    // a key signer a password), which a mistyped flag or an unreachable registry must not.
    if trust::is_local(&args.target) {
        if !args.component.is_empty() {
            return Err(modelsign::Error::InvalidArguments("--component applies to references only".into()).into());
        }
        let path = PathBuf::from(&args.target);
        std::fs::metadata(&path).map_err(|e| modelsign::Error::io(&path, e))?;
        let (signer, witness) = signer(args, global).await?;
        let options =
            ScanOptions { ignore: args.ignore.clone(), allow_symlinks: args.allow_symlinks, ..ScanOptions::default() };
        let cache = args.cache.open();
        let report = {
            let hashing = global.progress("hash");
            tokio::task::block_in_place(|| {
                sign::sign_folder(&path, &signer, args.signature.as_deref(), &options, hashing.get(), cache.as_deref())
            })?
        };
        match args.output {
            Format::Json => output::json(&report)?,
            Format::Text => {
                super::keyless::report(witness.as_ref());
                eprintln!("{}", super::cache::describe(&report.hashing));
                eprintln!("signed {} files", report.files);
                outln!("{}", report.signature.display())?;
            }
        }
        return Ok(());
    }
    if args.signature.is_some() || !args.ignore.is_empty() || args.allow_symlinks || args.cache.no_cache {
        return Err(modelsign::Error::InvalidArguments(
            "--signature, --ignore, --allow-symlinks and --no-cache apply to local folders only".into(),
        )
        .into());
    }
    let reference = super::parse_reference(&args.target)?;
    let target = super::open(&reference, global, false).await?;
    target.resolve(&reference.selector()).await?; // the model is there before a signer is made
    let (signer, witness) = signer(args, global).await?;
    if !args.component.is_empty() {
        let report = sign::sign_components(&target, &reference.selector(), &args.component, &signer).await?;
        match args.output {
            Format::Json => output::json(&report)?,
            Format::Text => {
                super::keyless::report(witness.as_ref());
                eprintln!(
                    "signed {} component(s) of {}: {}",
                    report.components.len(),
                    report.digest,
                    report.components.join(", ")
                );
                outln!("{}", report.signature.digest)?;
            }
        }
        return Ok(());
    }
    let report = sign::sign(&target, &reference, &signer).await?;
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Text => {
            super::keyless::report(witness.as_ref());
            eprintln!("signed {} ({} components)", report.digest, report.components);
            outln!("{}", report.oms_signature.digest)?;
            outln!("{}", report.manifest_signature.digest)?;
        }
    }
    Ok(())
}

/// The key or keyless signer the flags name.
async fn signer(
    args: &SignArgs,
    global: &Global,
) -> Result<(modelsign::sign::Signer, Option<std::sync::Arc<modelsign::sigstore::KeylessWitness>>), modelsign::Error> {
    trust::any_signer(args.key.as_deref(), args.certificate.as_deref(), &args.certificate_chain, &args.keyless, global)
        .await
}
