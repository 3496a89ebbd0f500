//! The crate's error types: [`Error`], and [`SignError`] (known as `sign::Error`), which
//! `Error::Sign` wraps. Every variant names what failed (registry, reference, component,
//! digest) so that the CLI can print it as a single line. `SignError` is defined here, not
//! in `sign`, so that `error` imports nothing but `digest` and no module circle forms.

use std::path::PathBuf;

use crate::digest::Digest;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("invalid digest `{0}` (expected sha256:<64 lowercase hex>)")]
    InvalidDigest(String),

    /// A TUF repository's metadata or a target was refused (signature, threshold, rollback,
    /// expiry, version, length or hash): nothing was stored.
    #[error("TUF repository {repo}: {reason}")]
    TufRefused { repo: String, reason: String },

    /// A TUF update could not run (network, local folder): nothing was stored.
    #[error("TUF repository {repo}: {reason}")]
    TufUnavailable { repo: String, reason: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{what}: expected {expected} bytes, got {actual}")]
    SizeMismatch { what: String, expected: u64, actual: u64 },

    #[error("{what}: content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { what: String, expected: Digest, actual: Digest },

    #[error("{what}: not found in {target}")]
    NotFound { target: String, what: String },

    #[error("cannot reach registry {registry}: {reason}")]
    Unreachable { registry: String, reason: String },

    #[error("registry {registry} refused {action} (HTTP {status}): {reason}")]
    Unauthorized { registry: String, action: String, status: u16, reason: String },

    #[error("registry {registry}: {operation} failed: HTTP {status}{}", code_message(.code, .message))]
    Registry { registry: String, operation: String, status: u16, code: Option<String>, message: Option<String> },

    #[error("{what}: invalid content: {reason}")]
    InvalidContent { what: String, reason: String },

    #[error("unsafe path `{path}` in {what}: {reason}")]
    UnsafePath { what: String, path: String, reason: String },

    /// Options that do not go together, or one that needs another (exit code 1; clap's
    /// own usage errors are the ones with code 2).
    #[error("{0}")]
    InvalidArguments(String),

    /// A password or PIN that cannot be had: no terminal, empty, unreadable, or not given.
    #[error("{0}")]
    Password(String),

    /// A glob (`--include`, `--component`, `--ignore`) that does not parse.
    #[error("{}", pattern_message(.what, .pattern.as_deref(), .reason))]
    InvalidPattern { what: &'static str, pattern: Option<String>, reason: String },

    /// A component path or glob that names nothing in the model.
    #[error("`{pattern}` {reason}")]
    NoSuchComponent { pattern: String, reason: &'static str },

    /// A local file or folder that cannot be used as given: its name, kind, size or text.
    #[error("{}: {reason}", .path.display())]
    LocalFile { path: PathBuf, reason: String },

    /// A file read under a cap that refused it (`what` says which file it was to be).
    #[error("{what} {}: {reason}", .path.display())]
    RefusedFile { what: String, path: PathBuf, reason: String },

    /// A symlink (unless allowed), FIFO, socket or device in a model folder to push or sign.
    #[error("{0}")]
    UnexpectedEntry(String),

    /// A local file that changed while it was hashed (`listed` bytes when the folder was
    /// scanned, `read` bytes read).
    #[error(
        "{} changed while it was being read ({listed} bytes when listed, {read} read); try again once nothing writes to it",
        .path.display()
    )]
    FileChanged { path: PathBuf, listed: u64, read: u64 },

    /// A file that is there already and is not overwritten.
    #[error("{}", overwrite_message(.path, *.force_flag))]
    WouldOverwrite { path: PathBuf, force_flag: bool },

    /// A policy file (docs/POLICY.md) that cannot be read or is wrong.
    #[error("policy {}: {reason}", .path.display())]
    InvalidPolicy { path: PathBuf, reason: String },

    /// A model card that cannot be read or lacks mandatory fields.
    #[error("model card {what}: {reason}")]
    InvalidCard { what: String, reason: String },

    /// A `--ca-file` that cannot be read or used (`path` is none when the set as a whole fails).
    #[error("{}", ca_file_message(.path.as_deref(), .reason))]
    InvalidCaFile { path: Option<PathBuf>, reason: String },

    /// A reference that names an image index where one model manifest is needed.
    #[error("`{selector}` in {target} is an image index, not a model manifest{note}")]
    NotAModel { selector: String, target: String, note: &'static str },

    /// A push whose reference names a digest other than the packed manifest's.
    #[error("the packed manifest is {actual}, not the {expected} the reference names")]
    ReferenceDigestMismatch { actual: Digest, expected: Digest },

    /// Referrer manifests that cannot be pushed as given.
    #[error("{0}")]
    InvalidReferrers(&'static str),

    /// A ranged read past the end of a blob.
    #[error("cannot resume blob {digest} at byte {offset}: it has {size} bytes")]
    ResumeOutOfRange { digest: Digest, offset: u64, size: u64 },

    /// A failure of modelsign itself (a worker thread that died, a lost error).
    #[error("{0}")]
    Internal(String),

    #[error("credentials: {0}")]
    Credentials(String),

    #[error("verification failed: {0}")]
    Verification(String),

    /// Signing or signature verification failed (see [`SignError`]).
    #[error(transparent)]
    Sign(#[from] SignError),
}

fn pattern_message(what: &str, pattern: Option<&str>, reason: &str) -> String {
    match pattern {
        Some(p) => format!("invalid {what} `{p}`: {reason}"),
        None if what.is_empty() => reason.to_string(),
        None => format!("invalid {what}: {reason}"),
    }
}

fn overwrite_message(path: &std::path::Path, force_flag: bool) -> String {
    if force_flag {
        format!("{} exists: pass --force to overwrite it", path.display())
    } else {
        format!("{} already exists; not overwriting it", path.display())
    }
}

fn ca_file_message(path: Option<&std::path::Path>, reason: &str) -> String {
    match path {
        Some(p) => format!("CA file {}: {reason}", p.display()),
        None => format!("CA files: {reason}"),
    }
}

fn code_message(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" {c}: {m}"),
        (Some(c), None) => format!(" {c}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

impl Error {
    /// An I/O error on `path`; a typed error that travelled inside the io::Error (a failed
    /// digest check while streaming) is returned as itself, being more precise.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if source.get_ref().is_some_and(|e| e.is::<Error>()) {
            if let Some(inner) = unwrap_io_error(source) {
                return inner;
            }
            return Error::Internal("lost error".into());
        }
        Error::Io { path: path.into(), source }
    }
}

/// Recovers a typed error that travelled through `std::io::Error`.
pub fn unwrap_io_error(err: std::io::Error) -> Option<Error> {
    if err.get_ref().is_some_and(|e| e.is::<Error>()) {
        err.into_inner().and_then(|e| e.downcast::<Error>().ok()).map(|e| *e)
    } else {
        None
    }
}

impl From<crate::digest::InvalidDigest> for Error {
    fn from(e: crate::digest::InvalidDigest) -> Self {
        Error::InvalidDigest(e.0)
    }
}

/// Why signing or signature verification failed. Each message is one line and says
/// what was wrong; none of them leaks key material.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A key could not be read or is not usable.
    #[error("{what}: {reason}")]
    InvalidKey { what: String, reason: String },

    /// The private key is encrypted and no password was given.
    #[error("the private key is encrypted: a password is needed")]
    PasswordRequired,

    /// The password does not decrypt the private key.
    #[error("cannot decrypt the private key: wrong password or corrupt key")]
    WrongPassword,

    /// A PKCS#11 URI, module, token or key cannot be used (never shows the PIN).
    #[error("PKCS#11 {what}: {reason}")]
    Pkcs11 { what: String, reason: String },

    /// An OIDC identity token for keyless signing is missing, malformed or not usable.
    #[error("identity token: {0}")]
    IdentityToken(String),

    /// A Sigstore service (Fulcio, Rekor, a timestamp authority) failed or answered
    /// something unusable while signing; nothing was signed.
    #[error("{service}: {reason}")]
    SigstoreService { service: String, reason: String },

    /// A certificate could not be parsed.
    #[error("{what}: invalid certificate: {reason}")]
    InvalidCertificate { what: String, reason: String },

    /// The signing certificate does not match the private key.
    #[error("the signing certificate's public key does not match the private key")]
    CertificateKeyMismatch,

    /// The certificate chain does not lead to a trusted root.
    #[error("certificate chain not trusted: {0}")]
    UntrustedChain(String),

    /// The signing certificate may not sign.
    #[error(
        "the signing certificate cannot be used for signing (it needs key usage digitalSignature or extended key usage codeSigning)"
    )]
    CertificateUsage,

    /// The bundle is not well-formed JSON of the expected shape.
    #[error("malformed signature bundle: {0}")]
    MalformedBundle(String),

    /// The bundle declares a media type this verifier does not know.
    #[error("unsupported bundle media type `{0}` (expected application/vnd.dev.sigstore.bundle.v0.3+json)")]
    UnsupportedMediaType(String),

    /// The bundle's verification material is of a kind this verifier does not handle.
    #[error("unsupported verification material: {0}")]
    UnsupportedMaterial(String),

    /// The DSSE payload is not an in-toto statement.
    #[error("unsupported DSSE payload type `{0}` (expected application/vnd.in-toto+json)")]
    PayloadType(String),

    /// The DSSE envelope does not carry exactly one signature.
    #[error("the DSSE envelope carries {0} signatures; exactly one is required")]
    SignatureCount(usize),

    /// No trusted key verified the signature.
    #[error("signature does not verify with any trusted key ({0})")]
    BadSignature(String),

    /// The trust policy is empty.
    #[error("no trusted public key or root certificate was given")]
    NoTrust,

    /// The statement (payload) is not valid.
    #[error("invalid statement: {0}")]
    InvalidStatement(String),

    /// A sharded OMS statement (`sha256-sharded-*`, `method: shards`).
    #[error("sharded OMS signatures are not supported yet")]
    Sharded,

    /// The subject digest is not the digest of the listed resources.
    #[error("the statement's subject digest {claimed} does not match its resources, which hash to {computed}")]
    RootDigestMismatch { claimed: String, computed: Digest },

    /// The same resource is listed twice.
    #[error("resource `{0}` is listed more than once")]
    DuplicateResource(String),

    /// The model has files the signature does not cover.
    #[error("extra files found in model (not covered by the signature): {}", list(.0))]
    ExtraFiles(Vec<String>),

    /// Files the signature covers are absent.
    #[error("missing files in model: {}", list(.0))]
    MissingFiles(Vec<String>),

    /// A keyless trust rule (identity, issuer, regular expression) is not usable.
    #[error("{0}")]
    InvalidPolicy(String),

    /// A Sigstore trusted root cannot be used.
    #[error("invalid trusted root: {0}")]
    InvalidTrustedRoot(String),

    /// A Sigstore trusted root file cannot be read.
    #[error("cannot read the trusted root {0}")]
    TrustedRootUnreadable(String),

    /// Sigstore verification (certificate chain, SCT, log entry, timestamp, signature) failed.
    #[error("Sigstore verification failed: {0}")]
    Sigstore(String),

    /// A keyless signature verified, but for an identity or issuer that is not trusted.
    #[error("certificate identity not trusted: {0}")]
    IdentityMismatch(String),

    /// Reading the artifact failed.
    #[error("{0}")]
    Io(String),

    /// A file's content differs from what was signed.
    #[error("hash mismatch for `{path}`: signed {expected}, found {actual}")]
    HashMismatch { path: String, expected: Digest, actual: Digest },
}

/// Shows at most ten names, then how many more.
fn list(names: &[String]) -> String {
    let mut out: Vec<String> = names.iter().take(10).map(|n| format!("`{n}`")).collect();
    if names.len() > 10 {
        out.push(format!("and {} more", names.len() - 10));
    }
    out.join(", ")
}
