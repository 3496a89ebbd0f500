//! Loading signing keys and trust material named on the command line.

use std::path::{Path, PathBuf};

use modelsign::Error;
use modelsign::sign::certs::{CertChain, parse_pem_certificates};
use modelsign::sign::{PublicKey, Signer, SigningKey, TrustPolicy};

/// Environment variable holding the private key's password.
pub const PASSWORD_ENV: &str = "MODELSIGN_KEY_PASSWORD";

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// The key password from `MODELSIGN_KEY_PASSWORD`, else a prompt on the terminal.
pub fn password(prompt: &str) -> Result<Option<String>, Error> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(Some(p));
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    rpassword::prompt_password(prompt)
        .map(Some)
        .map_err(|e| Error::InvalidInput(format!("cannot read the password: {e}")))
}

/// A signer from a private key file and an optional certificate chain (leaf, then intermediates).
pub fn signer(key: &Path, certificate: Option<&Path>, chain: &[PathBuf]) -> Result<Signer, Error> {
    let pem = read(key)?;
    let signing_key = match SigningKey::from_pem(&pem, None) {
        Ok(k) => k,
        Err(modelsign::sign::Error::PasswordRequired) => {
            let password = password(&format!("Password for {}: ", key.display()))?
                .ok_or_else(|| Error::InvalidInput(format!("{} is encrypted: set {PASSWORD_ENV}", key.display())))?;
            SigningKey::from_pem(&pem, Some(&password))?
        }
        Err(e) => return Err(e.into()),
    };
    match certificate {
        None => {
            if !chain.is_empty() {
                return Err(Error::InvalidInput("--certificate-chain needs --certificate (the leaf)".into()));
            }
            Ok(Signer::from_key(signing_key))
        }
        Some(leaf) => {
            let leaf_pem = read(leaf)?;
            let chain_pems: Vec<String> = chain.iter().map(|p| read(p)).collect::<Result<_, _>>()?;
            let refs: Vec<&str> = chain_pems.iter().map(String::as_str).collect();
            let chain = CertChain::from_pems(&leaf_pem, &refs)?;
            Ok(Signer::with_certificates(signing_key, chain)?)
        }
    }
}

/// A trust policy from public keys and root certificates. Refuses an empty one.
pub fn policy(keys: &[PathBuf], roots: &[PathBuf]) -> Result<TrustPolicy, Error> {
    if keys.is_empty() && roots.is_empty() {
        return Err(Error::InvalidInput("nothing to trust: pass --key PUB.pem or --certificate-chain ROOT.pem".into()));
    }
    let mut policy = TrustPolicy::new();
    for k in keys {
        policy = policy.trust_key(PublicKey::from_pem(&read(k)?)?);
    }
    for r in roots {
        let certs = parse_pem_certificates(&read(r)?, &r.display().to_string())?;
        policy = policy.trust_certificates(certs);
    }
    Ok(policy)
}

/// Whether a command-line target names a local model (an existing file or folder) rather than a reference.
pub fn is_local(target: &str) -> bool {
    !target.starts_with("oci:") && Path::new(target).exists()
}
