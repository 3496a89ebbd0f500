//! The command line: argument parsing (clap), printing, progress bars and exit codes.
//! Only this module knows them; each subcommand is one file that calls `modelsign::ops`.

mod attach;
mod attest;
mod cache;
mod card;
mod copy;
mod discover;
mod inspect;
mod keygen;
mod keyless;
mod login;
mod output;
mod progress;
mod pull;
mod push;
mod sign;
mod trust;
mod trust_update;
mod unpack_limits;
mod verify;
mod verify_blob;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use modelsign::Error;
use modelsign::progress::Progress;
use modelsign::reference::Reference;
use modelsign::store::{Notes, Target, TargetOptions};

pub use output::Format;

/// Exit codes a CI job can act on.
pub mod exit {
    /// Something failed (network, registry, file system, bad input).
    pub const FAILURE: u8 = 1;
    // 2: the command line was wrong (clap exits with it itself).
    /// Content did not match its digest or a signature: the artifact must not be trusted.
    pub const UNTRUSTED: u8 = 3;
}

const ABOUT: &str = "Sign, push, pull and verify AI models as OCI artifacts, one layer per file";
const LONG_ABOUT: &str = "\
modelsign packs a model folder as a CNCF ModelPack OCI artifact with one raw layer per file, \
so every component has its own digest (the file's SHA-256) and can be pulled on its own, from \
a registry or an OCI image-layout folder.

References:
  registry[:port]/repository[:tag][@sha256:…]   a repository on a registry
  oci:PATH[:tag|@sha256:…]                        an OCI image-layout folder

Credentials come from docker's config.json ($DOCKER_CONFIG, credHelpers, credsStore) or `modelsign login`.

Exit codes: 0 success, 1 failure, 2 usage error, 3 content or signature did not verify.";

#[derive(Parser)]
#[command(name = "modelsign", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Args, Clone)]
pub struct Global {
    /// Talk plain HTTP to registries without TLS: to every registry, or only to the hosts
    /// listed (`--plain-http=localhost:5000,reg.lan`; a host without a port means any port).
    /// Credentials go in clear text: with no host list, one warning says so the first time
    /// they go to a registry that is not on loopback.
    #[arg(
        long,
        global = true,
        value_name = "HOST,…",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        value_delimiter = ','
    )]
    pub plain_http: Option<Vec<String>>,
    /// The longest wait on a registry that sends nothing, e.g. `90s`, `5m`. A silence of a
    /// third of it (at most 30s) fails one attempt, which is retried.
    #[arg(long, global = true, value_name = "DURATION", default_value = "90s", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
    /// Also trust the CA certificates in this PEM file for registries' TLS (repeatable).
    #[arg(long = "ca-file", global = true, value_name = "PATH")]
    pub ca_files: Vec<std::path::PathBuf>,
    /// Accept any TLS certificate from registries: no verification at all (warns once).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Draw no progress bars (they are never drawn when stderr is not a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Blobs transferred at once (a blob of at most 1 MiB counts as a quarter: thousands of
    /// small files keep 4×N requests in flight).
    #[arg(long, global = true, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
}

/// `90s`, `2m`, `1m30s` (humantime); at least one second.
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 90s or 5m: {e}"))?;
    if d < std::time::Duration::from_secs(1) {
        return Err(format!("`{s}` is shorter than one second"));
    }
    Ok(d)
}

impl Global {
    pub fn target_options(&self) -> TargetOptions {
        TargetOptions {
            plain_http: self.plain_http.is_some(),
            plain_http_hosts: self.plain_http.clone().unwrap_or_default(),
            timeout: Some(self.timeout),
            ca_files: self.ca_files.clone(),
            insecure: self.insecure,
            concurrency: Some(self.concurrency),
            notes: Notes(std::sync::Arc::new(progress::Quiet)),
        }
    }

    /// Progress reporting for one command: bars on a terminal, plain notes otherwise.
    pub fn progress(&self, verb: &str) -> Reporter {
        use std::io::IsTerminal;
        if !self.no_progress && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
            Reporter::Bars(progress::Bars::new(verb))
        } else {
            Reporter::Quiet(progress::Quiet)
        }
    }
}

pub enum Reporter {
    Bars(progress::Bars),
    Quiet(progress::Quiet),
}

impl Reporter {
    pub fn get(&self) -> &dyn Progress {
        match self {
            Reporter::Bars(b) => b,
            Reporter::Quiet(q) => q,
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Reporter::Bars(b) = self {
            b.clear();
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Push a model folder (or one file) as a ModelPack artifact, one layer per file.
    Push(push::PushArgs),
    /// Pull a model's components (all, or those matching --include) into a folder; with
    /// trust flags, nothing is written unless the model verifies.
    Pull(pull::PullArgs),
    /// Show a model's components, config and referrers count.
    Inspect(inspect::InspectArgs),
    /// Copy an artifact with all its referrers between registries and layout folders; with
    /// trust flags (an ingestion gate), nothing reaches the destination unless the source verifies.
    Copy(copy::CopyArgs),
    /// Show the tree of referrers (signatures, attestations) of an artifact.
    Discover(discover::DiscoverArgs),
    /// Attach files to an artifact as a referrer of a given artifact type.
    Attach(attach::AttachArgs),
    /// Generate a signing key pair (PKCS#8 private key, SPKI public key).
    Keygen(keygen::KeygenArgs),
    /// Sign a model in a registry or layout folder (from its manifest alone), or a local folder.
    ///
    /// A reference gets two Sigstore bundle referrers: an OpenSSF model-signing (OMS v1.0)
    /// statement over every component, which `model_signing verify` accepts once written as
    /// model.sig beside a pulled model, and a statement over the manifest digest, which
    /// `cosign verify-attestation --type https://modelsign.dev/oci-manifest/v1` accepts.
    /// Nothing is downloaded. A local folder gets model.sig exactly as `model_signing sign` writes it.
    /// With --key (a file or a pkcs11: URI) the key signs; without it, keyless Sigstore: the CI's or
    /// --identity-token's OIDC identity, a Fulcio certificate, a Rekor entry (docs/CI.md).
    Sign(sign::SignArgs),
    /// Verify a model's signatures and its components' bytes (or a local folder against model.sig).
    ///
    /// Referrers that are not signed by a trusted key or root are ignored; a trusted signature
    /// that does not match the manifest exactly fails verification; no trusted signature fails
    /// verification. Then only the requested components (--component) are downloaded and
    /// checked. Exit code 0 only if every check passed, 3 if a signature or content check failed.
    Verify(verify::VerifyArgs),
    /// Verify a Sigstore bundle for any file (or a sha256: digest): keyless or with a key.
    ///
    /// Checks everything a Sigstore verifier checks: the Fulcio certificate chain to the
    /// trusted root at signing time, its SCT, the Rekor entries (v1: SET and inclusion
    /// proof; v2: checkpoint and inclusion proof) matching the signature and certificate,
    /// RFC 3161 timestamps, and the signer's identity and OIDC issuer. Works offline with
    /// the public-good Sigstore trusted root built in; --trusted-root for a private one.
    /// Exit code 0 if it verified, 3 if not.
    VerifyBlob(verify_blob::VerifyBlobArgs),
    /// Sign a model card about a model and attach it (also as a CycloneDX ML-BOM).
    ///
    /// The card (YAML, JSON, or a README.md with YAML front matter) must hold every
    /// mandatory field: name, version, developer, publisher, description,
    /// security.sensitive-data, security.considerations (blank and TODO values count as
    /// missing). format, architecture, parameters, security.encryption, security.certificate
    /// and signatures are filled in from the model and the signing key. The attestation is
    /// about the manifest digest; it describes the model, it does not sign its bytes.
    Attest(attest::AttestArgs),
    /// Model cards: show the attested cards of a model.
    Card(card::CardArgs),
    /// Store credentials for a registry in docker's config.json.
    Login(login::LoginArgs),
    /// Remove stored credentials for a registry.
    Logout(login::LogoutArgs),
    /// Sigstore trusted material: `trust update` refreshes it through TUF.
    #[command(subcommand)]
    Trust(trust_update::TrustCommand),
}

/// Parses a reference argument.
pub fn parse_reference(s: &str) -> Result<Reference, Error> {
    s.parse()
}

/// Opens the target a reference names.
pub async fn open(reference: &Reference, global: &Global, create: bool) -> Result<Target, Error> {
    Target::open(reference, &global.target_options(), create).await
}

/// Which exit code an error maps to.
fn exit_code(err: &Error) -> u8 {
    match err {
        Error::DigestMismatch { .. }
        | Error::SizeMismatch { .. }
        | Error::Verification(_)
        | Error::UnsafePath { .. }
        | Error::TufRefused { .. } => exit::UNTRUSTED,
        Error::Sign(e) => {
            use modelsign::sign::Error as S;
            match e {
                S::InvalidKey { .. }
                | S::PasswordRequired
                | S::WrongPassword
                | S::InvalidCertificate { .. }
                | S::CertificateKeyMismatch
                | S::NoTrust
                | S::InvalidPolicy(_)
                | S::TrustedRootUnreadable(_)
                | S::Pkcs11 { .. }
                | S::IdentityToken(_)
                | S::SigstoreService { .. }
                | S::Io(_) => exit::FAILURE,
                _ => exit::UNTRUSTED,
            }
        }
        _ => exit::FAILURE,
    }
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    if cli.global.insecure {
        eprintln!(
            "warning: --insecure: TLS certificates of registries are not verified; anyone on the network path can read and change what is transferred"
        );
    }
    let result = runtime.block_on(async {
        let g = &cli.global;
        match &cli.command {
            Command::Push(a) => push::run(a, g).await,
            Command::Pull(a) => pull::run(a, g).await,
            Command::Inspect(a) => inspect::run(a, g).await,
            Command::Copy(a) => copy::run(a, g).await,
            Command::Discover(a) => discover::run(a, g).await,
            Command::Attach(a) => attach::run(a, g).await,
            Command::Keygen(a) => keygen::run(a, g).await,
            Command::Sign(a) => sign::run(a, g).await,
            Command::Verify(a) => verify::run(a, g).await,
            Command::VerifyBlob(a) => verify_blob::run(a),
            Command::Attest(a) => attest::run(a, g).await,
            Command::Card(a) => card::run(a, g).await,
            Command::Login(a) => login::login(a, g).await,
            Command::Logout(a) => login::logout(a, g).await,
            Command::Trust(a) => trust_update::run(a, g).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Modelsign(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(&e))
        }
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(CliError::Output(e)) => {
            eprintln!("error: writing output: {e}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// A command's failure: the library's error, or stdout going away.
#[derive(Debug)]
pub enum CliError {
    Modelsign(Error),
    Output(std::io::Error),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Modelsign(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Output(e)
    }
}

pub type CliResult = Result<(), CliError>;

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
