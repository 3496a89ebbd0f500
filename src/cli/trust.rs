//! Loading signing keys and trust material named on the command line.

use std::path::{Path, PathBuf};

use modelsign::Error;
use modelsign::sign::certs::{CertChain, parse_pem_certificates};
use modelsign::sign::keyless::{CertificateIdentity, TrustedRoot};
use modelsign::sign::{PublicKey, Signer, SigningKey, TrustPolicy};

/// Environment variable holding the private key's password.
pub const PASSWORD_ENV: &str = "MODELSIGN_KEY_PASSWORD";

/// Keys and certificate files are small: a FIFO, device or huge file is refused.
const MAX_TRUST_FILE: u64 = 1 << 20;

fn read(path: &Path) -> Result<String, Error> {
    let bytes = modelsign::local_fs::read_capped(path, MAX_TRUST_FILE, "key or certificate file")?;
    String::from_utf8(bytes)
        .map_err(|_| Error::LocalFile { path: path.to_path_buf(), reason: "not UTF-8 PEM text".into() })
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
    rpassword::prompt_password(prompt).map(Some).map_err(|e| Error::Password(format!("cannot read the password: {e}")))
}

/// Environment variable holding a PKCS#11 token's user PIN (when the URI gives none).
pub const PKCS11_PIN_ENV: &str = "MODELSIGN_PKCS11_PIN";

/// A key in a PKCS#11 token: the PIN from the URI, else `MODELSIGN_PKCS11_PIN`, else a
/// prompt on the terminal (none without one: tokens that need no login still work).
fn pkcs11_key(uri: &str) -> Result<SigningKey, Error> {
    use modelsign::sign::pkcs11::{Pkcs11Key, Pkcs11Uri};
    let uri = Pkcs11Uri::parse(uri)?;
    let pin = match uri.pin()? {
        Some(pin) => Some(pin),
        None => match std::env::var(PKCS11_PIN_ENV) {
            Ok(pin) => Some(pin.into()),
            Err(_) => {
                use std::io::IsTerminal;
                if std::io::stdin().is_terminal() {
                    let pin = rpassword::prompt_password(format!("PIN for {}: ", uri.describe()))
                        .map_err(|e| Error::Password(format!("cannot read the PIN: {e}")))?;
                    Some(pin.into())
                } else {
                    None
                }
            }
        },
    };
    Ok(SigningKey::from_external(Box::new(Pkcs11Key::open(&uri, pin)?)))
}

/// The signer `sign` and `attest` use: `--key` (a file or a `pkcs11:` URI, with an
/// optional certificate chain), else keyless (see [`super::keyless`]), whose witness is
/// returned too.
pub async fn any_signer(
    key: Option<&Path>,
    certificate: Option<&Path>,
    chain: &[PathBuf],
    keyless: &super::keyless::KeylessSignArgs,
    global: &super::Global,
) -> Result<(Signer, Option<std::sync::Arc<modelsign::sigstore::KeylessWitness>>), Error> {
    match key {
        Some(key) => Ok((signer(key, certificate, chain)?, None)),
        None if certificate.is_some() || !chain.is_empty() => {
            Err(Error::InvalidArguments("--certificate and --certificate-chain need --key (their private key)".into()))
        }
        None => super::keyless::signer(keyless, global).await.map(|(s, w)| (s, Some(w))),
    }
}

/// A signer from a private key file (or a `pkcs11:` URI naming a key in a token) and an
/// optional certificate chain (leaf, then intermediates).
pub fn signer(key: &Path, certificate: Option<&Path>, chain: &[PathBuf]) -> Result<Signer, Error> {
    let signing_key = match key.to_str() {
        Some(uri) if modelsign::sign::pkcs11::is_uri(uri) => pkcs11_key(uri)?,
        _ => key_file(key)?,
    };
    signer_with(signing_key, certificate, chain)
}

fn key_file(key: &Path) -> Result<SigningKey, Error> {
    let pem = read(key)?;
    Ok(match SigningKey::from_pem(&pem, None) {
        Ok(k) => k,
        Err(modelsign::sign::Error::PasswordRequired) => {
            let password = password(&format!("Password for {}: ", key.display()))?
                .ok_or_else(|| Error::Password(format!("{} is encrypted: set {PASSWORD_ENV}", key.display())))?;
            SigningKey::from_pem(&pem, Some(&password))?
        }
        Err(e) => return Err(e.into()),
    })
}

fn signer_with(signing_key: SigningKey, certificate: Option<&Path>, chain: &[PathBuf]) -> Result<Signer, Error> {
    match certificate {
        None => {
            if !chain.is_empty() {
                return Err(Error::InvalidArguments("--certificate-chain needs --certificate (the leaf)".into()));
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
        return Err(Error::InvalidArguments(
            "nothing to trust: pass --key PUB.pem or --certificate-chain ROOT.pem".into(),
        ));
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

/// A trust policy from public keys, root certificates and keyless identities. Refuses an empty one.
pub fn policy_with_keyless(keys: &[PathBuf], roots: &[PathBuf], keyless: &KeylessArgs) -> Result<TrustPolicy, Error> {
    if keys.is_empty() && roots.is_empty() && !keyless.wants_keyless() {
        return Err(Error::InvalidArguments(
            "nothing to trust: pass --key PUB.pem, --certificate-chain ROOT.pem, or --certificate-identity[-regexp] with --certificate-oidc-issuer[-regexp]"
                .into(),
        ));
    }
    let policy = if keys.is_empty() && roots.is_empty() { TrustPolicy::new() } else { policy(keys, roots)? };
    keyless.extend(policy)
}

/// Whether a command-line target names a local model (an existing file or folder) rather than a reference.
pub fn is_local(target: &str) -> bool {
    !target.starts_with("oci:") && Path::new(target).exists()
}

/// The trust flags of `verify`, `pull` and `copy` (flattened into each): keys, root
/// certificates, a policy, a keyless signer. `pull` and `copy` write nothing unless the
/// model passes them.
#[derive(clap::Args, Clone, Default)]
pub struct TrustArgs {
    /// Trusted public key, SPKI PEM (repeatable).
    #[arg(long, value_name = "PUB.pem")]
    pub key: Vec<PathBuf>,
    /// Trusted root certificate(s), PEM (repeatable).
    #[arg(long, value_name = "ROOT.pem")]
    pub certificate_chain: Vec<PathBuf>,
    /// A trust policy (YAML, docs/POLICY.md): its rules decide instead of --key/--certificate-chain.
    #[arg(long, value_name = "POLICY.yaml")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub keyless: KeylessArgs,
}

impl TrustArgs {
    /// The trust these flags give; `None` when none was given.
    pub fn trust(&self) -> Result<Option<modelsign::ops::verify::Trust>, Error> {
        trust_with_keyless(&self.key, &self.certificate_chain, self.policy.as_deref(), &self.keyless)
    }
}

/// Keyless trust flags, named as cosign names them (flattened into [`TrustArgs`] and `verify-blob`).
#[derive(clap::Args, Clone, Default)]
pub struct KeylessArgs {
    /// Trust keyless signatures whose certificate names exactly this identity (an email,
    /// or a URI such as a GitHub workflow `https://github.com/OWNER/REPO/.github/workflows/F.yml@refs/…`).
    #[arg(long, value_name = "ID")]
    pub certificate_identity: Option<String>,
    /// Like --certificate-identity, but a regular expression that must match the whole identity.
    #[arg(long, value_name = "RE", conflicts_with = "certificate_identity")]
    pub certificate_identity_regexp: Option<String>,
    /// The OIDC issuer that must have vouched for the identity, e.g. https://token.actions.githubusercontent.com.
    #[arg(long, value_name = "URL")]
    pub certificate_oidc_issuer: Option<String>,
    /// Like --certificate-oidc-issuer, but a regular expression that must match the whole issuer.
    #[arg(long, value_name = "RE", conflicts_with = "certificate_oidc_issuer")]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys, TSAs) of a private
    /// Sigstore; default: the public-good instance's, built into modelsign (works offline).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Accept keyless certificates without a verified SCT, for a private Sigstore that runs no
    /// certificate-transparency log (as cosign's flag); the rest is still checked.
    #[arg(long, requires = "trusted_root")]
    pub insecure_ignore_sct: bool,
}

impl KeylessArgs {
    /// Whether any identity or issuer flag was given.
    pub fn wants_keyless(&self) -> bool {
        self.certificate_identity.is_some()
            || self.certificate_identity_regexp.is_some()
            || self.certificate_oidc_issuer.is_some()
            || self.certificate_oidc_issuer_regexp.is_some()
    }

    /// The trusted keyless signer, if identity flags were given (then both an identity
    /// and an issuer are required).
    pub fn identity(&self) -> Result<Option<CertificateIdentity>, Error> {
        if !self.wants_keyless() {
            return Ok(None);
        }
        Ok(Some(CertificateIdentity::from_flags(
            self.certificate_identity.as_deref(),
            self.certificate_identity_regexp.as_deref(),
            self.certificate_oidc_issuer.as_deref(),
            self.certificate_oidc_issuer_regexp.as_deref(),
        )?))
    }

    /// The `--trusted-root` file, else the built-in public-good root.
    pub fn trusted_root(&self) -> Result<TrustedRoot, Error> {
        let root = match &self.trusted_root {
            Some(path) => TrustedRoot::from_file(path)?,
            None => super::trust_update::public_good_root()?,
        };
        Ok(if self.insecure_ignore_sct { root.ignore_sct() } else { root })
    }

    /// Adds the keyless signer and trusted root (if identity flags were given) to `policy`.
    pub fn extend(&self, policy: TrustPolicy) -> Result<TrustPolicy, Error> {
        match self.identity()? {
            Some(identity) => Ok(policy.trust_identity(identity).sigstore_root(self.trusted_root()?)),
            None if self.trusted_root.is_some() => Err(Error::InvalidArguments(
                "--trusted-root needs --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]".into(),
            )),
            None => Ok(policy),
        }
    }
}

/// What `verify`, `pull` and `copy` trust: a policy file, or keys and roots; `None` when
/// nothing was given. A policy names its own signers, so it is not combined with keys.
pub fn trust(
    keys: &[PathBuf],
    roots: &[PathBuf],
    policy_file: Option<&Path>,
) -> Result<Option<modelsign::ops::verify::Trust>, Error> {
    use modelsign::ops::verify::Trust;
    match policy_file {
        Some(file) => {
            if !keys.is_empty() || !roots.is_empty() {
                return Err(Error::InvalidArguments(
                    "--policy names its own signers: give them in the policy, not with --key or --certificate-chain"
                        .into(),
                ));
            }
            Ok(Some(Trust::Policy(modelsign::policy::Policy::load(file)?)))
        }
        None if keys.is_empty() && roots.is_empty() => Ok(None),
        None => Ok(Some(Trust::Keys(policy(keys, roots)?))),
    }
}

/// [`trust`] with keyless signers too: keys, roots and keyless identities together make
/// one `Trust::Keys`; a policy file names its own signers and takes none of them.
pub fn trust_with_keyless(
    keys: &[PathBuf],
    roots: &[PathBuf],
    policy_file: Option<&Path>,
    keyless: &KeylessArgs,
) -> Result<Option<modelsign::ops::verify::Trust>, Error> {
    if !keyless.wants_keyless() && keyless.trusted_root.is_none() {
        return trust(keys, roots, policy_file);
    }
    if policy_file.is_some() {
        return Err(Error::InvalidArguments(
            "--policy names its own signers: give keyless signers in the policy, not with --certificate-identity"
                .into(),
        ));
    }
    Ok(Some(modelsign::ops::verify::Trust::Keys(policy_with_keyless(keys, roots, keyless)?)))
}
