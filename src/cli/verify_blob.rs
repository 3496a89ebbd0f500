//! `modelsign verify-blob FILE|sha256:HEX --bundle BUNDLE (--key PUB | --certificate-identity ID
//! --certificate-oidc-issuer URL) [--trusted-root FILE]`: any Sigstore bundle for any file.

use std::path::{Path, PathBuf};

use clap::Args;
use modelsign::digest::Digest;
use modelsign::sign::PublicKey;
use modelsign::sign::keyless::{self, Expected, Subject};
use serde::Serialize;

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    verified: bool,
    artifact: String,
    bundle: PathBuf,
    #[serde(flatten)]
    details: keyless::SigstoreVerified,
}

/// `sha256:` followed by 64 hex digits, and not a path on disk (the conformance suite's rule).
fn as_digest(artifact: &str) -> Option<Digest> {
    let hex = artifact.strip_prefix("sha256:")?;
    if hex.len() != 64 || Path::new(artifact).exists() {
        return None;
    }
    Digest::from_hex(hex).ok()
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, modelsign::Error> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| modelsign::Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(modelsign::Error::LocalFile {
            path: path.to_path_buf(),
            reason: format!("larger than {limit} bytes"),
        });
    }
    Ok(bytes)
}

pub fn run(args: &VerifyBlobArgs) -> CliResult {
    let key = match &args.key {
        Some(path) => {
            let pem = String::from_utf8(read_limited(path, 1 << 20)?).map_err(|_| modelsign::Error::LocalFile {
                path: path.to_path_buf(),
                reason: "not a PEM file".into(),
            })?;
            Some(PublicKey::from_pem(&pem).map_err(modelsign::Error::from)?)
        }
        None => None,
    };
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
    let bundle_bytes = read_limited(&args.bundle, modelsign::sign::bundle::MAX_BUNDLE_SIZE as u64)?;
    let bundle = keyless::parse_bundle(&bundle_bytes)
        .map_err(|e| modelsign::Error::Verification(format!("{}: {e}", args.bundle.display())))?;
    let result = match as_digest(&args.artifact) {
        Some(digest) => keyless::verify(&bundle, Subject::Digest(digest), expected, &root),
        None => {
            let path = Path::new(&args.artifact);
            let mut file = std::fs::File::open(path).map_err(|e| modelsign::Error::io(path, e))?;
            keyless::verify(&bundle, Subject::Reader(&mut file), expected, &root)
        }
    };
    let details = result.map_err(|e| match e {
        // What did not verify says so with the bundle's name; reading failures stay failures.
        modelsign::sign::Error::Io(m) => modelsign::Error::LocalFile { path: args.artifact.clone().into(), reason: m },
        modelsign::sign::Error::InvalidPolicy(_) | modelsign::sign::Error::TrustedRootUnreadable(_) => e.into(),
        e => modelsign::Error::Verification(format!("{} (bundle {}): {e}", args.artifact, args.bundle.display())),
    })?;
    let report = Report { verified: true, artifact: args.artifact.clone(), bundle: args.bundle.clone(), details };
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Text => match (&report.details.identity, &report.details.issuer) {
            (Some(id), Some(iss)) => outln!("Verified OK: signed by {id} (issuer {iss})")?,
            _ => outln!("Verified OK: signed by the trusted key")?,
        },
    }
    Ok(())
}
