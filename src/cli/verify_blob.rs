//! `modelsign verify-blob FILE|sha256:HEX --bundle BUNDLE (--key PUB | --certificate-identity ID
//! --certificate-oidc-issuer URL) [--trusted-root FILE]`: any Sigstore bundle for any file.
//! Parses, calls `ops::verify_blob::verify_blob`, prints.

use std::path::PathBuf;

use clap::Args;
use modelsign::ops::verify_blob;
use modelsign::sign::keyless::Expected;

use super::output::outln;
use super::trust::KeylessArgs;
use super::{CliResult, Format, output};

#[derive(Args)]
pub struct VerifyBlobArgs {
    /// The file the bundle signs, or its digest as `sha256:<64 hex>` (a DSSE bundle: a
    /// subject of its in-toto statement). A `sha256:…` that names an existing file is the file.
    #[arg(value_name = "FILE|sha256:HEX")]
    pub artifact: String,
    /// The Sigstore bundle (v0.1–v0.3 JSON, as cosign, sigstore-python and model_signing write it).
    #[arg(long, value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Verify with this public key (PEM) instead of a keyless identity.
    #[arg(long, value_name = "PUB.pem", conflicts_with_all = ["certificate_identity", "certificate_identity_regexp", "certificate_oidc_issuer", "certificate_oidc_issuer_regexp"])]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub keyless: KeylessArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn run(args: &VerifyBlobArgs) -> CliResult {
    let key = args.key.as_deref().map(verify_blob::read_public_key).transpose()?;
    let identities: Vec<_> = args.keyless.identity()?.into_iter().collect();
    let expected = match &key {
        Some(key) => Expected::Key(key),
        None if identities.is_empty() => {
            return Err(modelsign::Error::InvalidArguments(
                "nothing to trust: pass --key PUB.pem, or --certificate-identity[-regexp] with --certificate-oidc-issuer[-regexp]"
                    .into(),
            )
            .into());
        }
        None => Expected::Identities(&identities),
    };
    let root = args.keyless.trusted_root()?;
    let report = verify_blob::verify_blob(&args.artifact, &args.bundle, expected, &root)?;
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Text => match (&report.details.identity, &report.details.issuer) {
            (Some(id), Some(iss)) => outln!("Verified OK: signed by {id} (issuer {iss})")?,
            _ => outln!("Verified OK: signed by the trusted key")?,
        },
    }
    Ok(())
}
