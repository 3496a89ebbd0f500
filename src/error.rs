//! The crate's one error type. Every variant names what failed (registry, reference,
//! component, digest) so that the CLI can print it as a single line.

use std::path::PathBuf;

use crate::digest::Digest;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("invalid digest `{0}` (expected sha256:<64 lowercase hex>)")]
    InvalidDigest(String),

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

    #[error("{0}")]
    InvalidInput(String),

    #[error("credentials: {0}")]
    Credentials(String),

    #[error("verification failed: {0}")]
    Verification(String),

    /// Signing or signature verification failed (see [`crate::sign::Error`]).
    #[error(transparent)]
    Sign(#[from] crate::sign::Error),
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
            return Error::InvalidInput("lost error".into());
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
