//! Which TLS certificates registries may present: the system's roots (reqwest's default),
//! plus the CA certificates of `--ca-file` PEM files.
//!
//! With CA files the TLS configuration is built here, because of one case webpki refuses and
//! OpenSSL, Go (oras, docker) and curl accept: a self-signed server certificate marked
//! `CA:TRUE`, which `openssl req -x509` makes by default (and distribution's "deploy a
//! registry" recipe uses). A server certificate that is byte for byte one of the CA files'
//! is accepted when it is valid for the host name and today; everything else is checked by
//! the platform verifier (system roots + the CA files), exactly as reqwest would.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::{Error, Result};

/// The TLS configuration that trusts the CA files besides the system's roots; `None` without
/// CA files (reqwest's own configuration is then used). Errors name the file.
pub(crate) fn client_config(ca_files: &[PathBuf]) -> Result<Option<rustls::ClientConfig>> {
    if ca_files.is_empty() {
        return Ok(None);
    }
    let cas = ca_certificates(ca_files)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let unusable = |e: &dyn std::fmt::Display| Error::InvalidCaFile { path: None, reason: e.to_string() };
    let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(cas.clone(), provider.clone())
        .map_err(|e| unusable(&e))?;
    let verifier = CaFiles { platform, cas };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(&e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // What reqwest offers with HTTP/2 on.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(config))
}

/// Largest CA file read (a bundle of every public root is ~250 KB).
const MAX_CA_FILE: u64 = 4 << 20;

/// The certificates of the CA files (PEM, any number of certificates each), each checked to
/// be a usable trust anchor. Errors name the file.
fn ca_certificates(files: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |path: &Path, reason: String| Error::InvalidCaFile { path: Some(path.to_path_buf()), reason };
    let mut certificates = Vec::new();
    for path in files {
        let pem = crate::local_fs::read_capped(path, MAX_CA_FILE, "CA file").map_err(|e| match e {
            Error::Io { source, .. } => bad(path, format!("cannot read it: {source}")),
            other => other,
        })?;
        let ders = CertificateDer::pem_slice_iter(&pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(path, format!("not valid PEM: {}", pem_problem(&e))))?;
        if ders.is_empty() {
            return Err(bad(path, "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into()));
        }
        for (i, der) in ders.into_iter().enumerate() {
            webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| bad(path, format!("certificate {} is not a usable X.509 certificate: {e}", i + 1)))?;
            certificates.push(der);
        }
    }
    Ok(certificates)
}

fn pem_problem(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => {
            format!("no `-----END {}-----` line", String::from_utf8_lossy(end_marker))
        }
        E::IllegalSectionStart { line } => format!("bad section start `{}`", String::from_utf8_lossy(line).trim()),
        other => other.to_string(),
    }
}

/// The platform verifier with the CA files as extra roots, which also accepts a server
/// certificate that is itself one of the CA files (see the module documentation).
#[derive(Debug)]
struct CaFiles {
    platform: rustls_platform_verifier::Verifier,
    cas: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaFiles {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.platform.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(_) if self.cas.iter().any(|ca| ca.as_ref() == end_entity.as_ref()) => {
                check_given_certificate(end_entity, server_name, now)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.platform.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.platform.supported_verify_schemes()
    }
}

/// What is left to check of a server certificate the user gave as trusted: that it names
/// the host and is valid now. (The handshake still proves the server holds its key.)
fn check_given_certificate(
    der: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> std::result::Result<(), rustls::Error> {
    use der::Decode;
    let bad = rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let parsed = x509_cert::Certificate::from_der(der.as_ref()).map_err(|_| bad.clone())?;
    let validity = &parsed.tbs_certificate.validity;
    if now.as_secs() < validity.not_before.to_unix_duration().as_secs() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now.as_secs() > validity.not_after.to_unix_duration().as_secs() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    webpki::EndEntityCert::try_from(der)
        .map_err(|_| bad)?
        .verify_is_valid_for_subject_name(server_name)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
}
