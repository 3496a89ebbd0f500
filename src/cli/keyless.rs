//! Keyless signing flags of `sign` and `attest` (named as cosign names them), and the
//! signer they make: an identity token from `--identity-token`, `SIGSTORE_ID_TOKEN` or the
//! GitHub Actions runner, the services of a signing config, a trusted root to check the
//! result against.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use modelsign::Error;
use modelsign::sign::Signer;
use modelsign::sign::keyless::TrustedRoot;
use modelsign::sigstore::{GithubActions, IdentityToken, KeylessWitness, SIGSTORE_AUDIENCE, Services, keyless_signer};

use super::Global;

/// Largest token file read.
const MAX_TOKEN_FILE: u64 = 64 << 10;

#[derive(clap::Args, Clone, Default)]
pub struct KeylessSignArgs {
    /// Sign keyless (no --key): an OIDC identity token (a JWT, or a file holding one) for
    /// audience `sigstore`; Fulcio certifies a fresh key for its identity and the signature
    /// is logged in Rekor. Without it, SIGSTORE_ID_TOKEN, else the token GitHub Actions gives
    /// a job with `permissions: id-token: write`.
    #[arg(long, value_name = "TOKEN|FILE", conflicts_with = "key")]
    pub identity_token: Option<String>,
    /// Sigstore signing config v0.2 (Fulcio, Rekor and TSA URLs) of a private Sigstore;
    /// default: the public-good instance's, built in. Needs --trusted-root.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub signing_config: Option<PathBuf>,
    /// The instance's trusted_root.json: every keyless signature is verified against it
    /// before anything is attached or written; default: the public-good root, built in.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub trusted_root: Option<PathBuf>,
}

/// Says on stderr who signed keyless and how many bundles were logged (nothing for a key).
pub fn report(witness: Option<&Arc<KeylessWitness>>) {
    if let Some(line) = witness.and_then(|w| describe(w)) {
        eprintln!("{line}");
    }
}

fn describe(witness: &KeylessWitness) -> Option<String> {
    let verified = witness.verified();
    let first = verified.first()?;
    let when = first.signing_times.first().map(|t| format!(" (signed at {t})")).unwrap_or_default();
    Some(format!(
        "signed keyless as {} (issuer {}); {} bundle(s), each logged and verified{when}",
        first.identity.as_deref().unwrap_or("?"),
        first.issuer.as_deref().unwrap_or("?"),
        verified.len(),
    ))
}

/// The keyless signer (and its witness, which reports what verified): token, services and
/// root from the flags, the environment or the CI.
pub async fn signer(args: &KeylessSignArgs, global: &Global) -> Result<(Signer, Arc<KeylessWitness>), Error> {
    let services = match &args.signing_config {
        Some(file) => {
            if args.trusted_root.is_none() {
                return Err(Error::InvalidArguments(
                    "--signing-config needs --trusted-root (the same instance's trusted_root.json)".into(),
                ));
            }
            Services::from_file(file)?
        }
        None => Services::public_good()?,
    };
    let root = match &args.trusted_root {
        Some(file) => TrustedRoot::from_file(file)?,
        None => super::trust_update::public_good_root()?,
    };
    let (root, note) = root.for_signing();
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let token = token(args, global).await?;
    Ok(keyless_signer(&token, &services, root, global.timeout).await?)
}

async fn token(args: &KeylessSignArgs, global: &Global) -> Result<IdentityToken, Error> {
    let given =
        args.identity_token.clone().or_else(|| std::env::var("SIGSTORE_ID_TOKEN").ok().filter(|t| !t.is_empty()));
    if let Some(value) = given {
        let path = Path::new(&value);
        if value.len() < 4096 && path.is_file() {
            let bytes = modelsign::local_fs::read_capped(path, MAX_TOKEN_FILE, "identity token file")?;
            let text = String::from_utf8(bytes).map_err(|_| Error::LocalFile {
                path: path.to_path_buf(),
                reason: "the identity token file is not text".into(),
            })?;
            return Ok(IdentityToken::parse(&text)?);
        }
        return Ok(IdentityToken::parse(&value)?);
    }
    if let Some(actions) = GithubActions::from_env() {
        let client = modelsign::sigstore::http::client(global.timeout)?;
        return Ok(actions.fetch(&client, SIGSTORE_AUDIENCE).await?);
    }
    Err(Error::InvalidArguments(
        "nothing to sign with: pass --key KEY.pem (or a pkcs11: URI), or sign keyless with --identity-token TOKEN \
         (or SIGSTORE_ID_TOKEN, or in GitHub Actions with `permissions: id-token: write`)"
            .into(),
    ))
}
