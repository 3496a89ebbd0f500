//! `modelsign keygen -o PREFIX`

use std::path::PathBuf;

use clap::Args;
use modelsign::ops::keygen::write_key_pair;
use modelsign::sign::Algorithm;

use super::output::outln;
use super::{CliResult, Global};

#[derive(Args)]
pub struct KeygenArgs {
    /// Write PREFIX.key (PKCS#8 private key, mode 0600) and PREFIX.pub (SPKI public key).
    #[arg(short = 'o', long = "output", value_name = "PREFIX")]
    pub prefix: PathBuf,
    /// Key algorithm: p256, p384, p521 or ed25519 (model_signing accepts only ECDSA keys).
    #[arg(long, default_value = "p256")]
    pub algorithm: Algorithm,
    /// Encrypt the private key with a password (from MODELSIGN_KEY_PASSWORD, else a prompt).
    #[arg(long)]
    pub encrypt: bool,
}

pub async fn run(args: &KeygenArgs, _global: &Global) -> CliResult {
    let password = if args.encrypt {
        let p = super::trust::password("New key password: ")?.ok_or_else(|| {
            modelsign::Error::Password(format!("--encrypt needs {} or a terminal", super::trust::PASSWORD_ENV))
        })?;
        if p.is_empty() {
            return Err(modelsign::Error::Password("empty password".into()).into());
        }
        Some(p)
    } else {
        None
    };
    let files = write_key_pair(&args.prefix, args.algorithm, password.as_deref())?;
    eprintln!("wrote {} and {}", files.private_key.display(), files.public_key.display());
    outln!("{}", files.public_key.display())?;
    Ok(())
}
