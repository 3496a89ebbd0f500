//! X.509 certificates: the chain a signer ships in a bundle, and its validation against
//! trusted roots the way `model_signing verify certificate` validates it.
//!
//! `model_signing` (through OpenSSL's `X509_verify_cert`) checks the chain:
//! - at the leaf's notBefore time, not now: a signature stays valid after its
//!   certificate expires, but every issuer must have been valid when the leaf was issued;
//! - up to a self-signed (self-issued) root among the trusted certificates; trusted
//!   certificates that are not self-issued only help to build the path, as intermediates;
//! - and then requires the leaf to have key usage `digitalSignature` or extended key
//!   usage `codeSigning`.
//!
//! Path building and signature checks are `rustls-webpki`'s, with any extended key usage
//! accepted on the path (OpenSSL's default purpose) and the leaf's usage checked here.
//! Unlike OpenSSL, webpki refuses a leaf marked as a CA: such chains are built by
//! `ca_signer` instead.

mod ca_signer;

use std::fmt;
use std::time::Duration;

use const_oid::AssociatedOid;
use const_oid::db::rfc5280::ID_KP_CODE_SIGNING;
use der::{Decode, Encode};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use x509_cert::Certificate as X509;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};

use super::keys::PublicKey;
use super::{Error, Result};

/// One parsed X.509 certificate and its DER bytes.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    parsed: X509,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate({})", self.subject())
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

impl Certificate {
    /// Parses one DER certificate; `what` names it in errors.
    pub fn from_der(der: &[u8], what: &str) -> Result<Self> {
        let parsed =
            X509::from_der(der).map_err(|e| Error::InvalidCertificate { what: what.into(), reason: e.to_string() })?;
        Ok(Certificate { der: der.to_vec(), parsed })
    }

    /// The certificate as PEM (64-column lines, LF).
    pub fn to_pem(&self) -> String {
        super::keys::pem_encode("CERTIFICATE", &self.der)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject as an RFC 4514 string.
    pub fn subject(&self) -> String {
        self.parsed.tbs_certificate.subject.to_string()
    }

    /// Whether subject and issuer are the same name (a root, for OpenSSL's purposes).
    pub fn is_self_issued(&self) -> bool {
        self.parsed.tbs_certificate.subject == self.parsed.tbs_certificate.issuer
    }

    /// The public key the certificate certifies.
    pub fn public_key(&self) -> Result<PublicKey> {
        let spki = self
            .parsed
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| Error::InvalidCertificate { what: self.subject(), reason: e.to_string() })?;
        PublicKey::from_spki_der(&spki)
    }

    /// notBefore, seconds since the Unix epoch.
    pub fn not_before(&self) -> Duration {
        self.parsed.tbs_certificate.validity.not_before.to_unix_duration()
    }

    /// The parsed certificate.
    pub(crate) fn x509(&self) -> &X509 {
        &self.parsed
    }

    pub(crate) fn valid_at(&self, time: Duration) -> bool {
        let validity = &self.parsed.tbs_certificate.validity;
        validity.not_before.to_unix_duration() <= time && time <= validity.not_after.to_unix_duration()
    }

    /// Key usage `digitalSignature`, or extended key usage `codeSigning`.
    fn can_sign(&self) -> Result<bool> {
        let bad = |e: der::Error| Error::InvalidCertificate { what: self.subject(), reason: e.to_string() };
        let tbs = &self.parsed.tbs_certificate;
        let extension = |oid| tbs.extensions.iter().flatten().find(|e| e.extn_id == oid);
        if let Some(ext) = extension(KeyUsage::OID) {
            let usage = KeyUsage::from_der(ext.extn_value.as_bytes()).map_err(bad)?;
            if usage.0.contains(KeyUsages::DigitalSignature) {
                return Ok(true);
            }
        }
        if let Some(ext) = extension(ExtendedKeyUsage::OID) {
            let usage = ExtendedKeyUsage::from_der(ext.extn_value.as_bytes()).map_err(bad)?;
            if usage.0.contains(&ID_KP_CODE_SIGNING) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Every `CERTIFICATE` block of a PEM text, in order; `what` names the text in errors.
pub fn parse_pem_certificates(pem_text: &str, what: &str) -> Result<Vec<Certificate>> {
    let blocks = pem::parse_many(pem_text)
        .map_err(|e| Error::InvalidCertificate { what: what.into(), reason: format!("not valid PEM: {e}") })?;
    let certs: Vec<Certificate> = blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| Certificate::from_der(b.contents(), what))
        .collect::<Result<_>>()?;
    if certs.is_empty() {
        return Err(Error::InvalidCertificate {
            what: what.into(),
            reason: "no CERTIFICATE block in the PEM text".into(),
        });
    }
    Ok(certs)
}

/// The certificates a signer ships: the signing (leaf) certificate first, then the
/// certificates that lead towards a root, as `model_signing` writes them in
/// `verificationMaterial.x509CertificateChain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertChain {
    certs: Vec<Certificate>,
}

impl CertChain {
    /// A chain from a leaf and the rest; fails if empty.
    pub fn new(certs: Vec<Certificate>) -> Result<Self> {
        if certs.is_empty() {
            return Err(Error::UnsupportedMaterial("an empty certificate chain".into()));
        }
        Ok(CertChain { certs })
    }

    /// The leaf from `leaf_pem` (its first certificate) followed by every certificate of
    /// each of `chain_pems` (`model_signing sign certificate --certificate_chain`).
    pub fn from_pems(leaf_pem: &str, chain_pems: &[&str]) -> Result<Self> {
        let mut certs = vec![parse_pem_certificates(leaf_pem, "signing certificate")?.remove(0)];
        for pem_text in chain_pems {
            certs.extend(parse_pem_certificates(pem_text, "certificate chain")?);
        }
        CertChain::new(certs)
    }

    pub fn leaf(&self) -> &Certificate {
        &self.certs[0]
    }

    /// Leaf first.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certs
    }
}

/// Trusted certificates for chain validation: self-issued ones are trust anchors, the
/// others are only used to build paths (what OpenSSL does with an `X509Store`).
#[derive(Debug, Clone, Default)]
pub struct TrustRoots {
    anchors: Vec<Certificate>,
    intermediates: Vec<Certificate>,
}

impl TrustRoots {
    pub fn new() -> Self {
        TrustRoots::default()
    }

    /// Adds certificates (from `model_signing verify certificate --certificate_chain`).
    pub fn add(&mut self, certs: impl IntoIterator<Item = Certificate>) {
        for cert in certs {
            if cert.is_self_issued() {
                self.anchors.push(cert);
            } else {
                self.intermediates.push(cert);
            }
        }
    }

    /// Adds every certificate of a PEM text.
    pub fn add_pem(&mut self, pem_text: &str) -> Result<()> {
        self.add(parse_pem_certificates(pem_text, "trusted certificates")?);
        Ok(())
    }

    /// No certificate at all (with only non-self-issued ones, validation fails).
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty() && self.intermediates.is_empty()
    }

    /// Validates `chain` as `model_signing` does (see the module documentation) and
    /// returns the leaf's public key.
    pub fn validate(&self, chain: &CertChain) -> Result<PublicKey> {
        if self.anchors.is_empty() {
            return Err(Error::UntrustedChain("no self-signed root certificate is trusted".into()));
        }
        let leaf = chain.leaf();
        let time = leaf.not_before();
        let anchor_ders: Vec<CertificateDer> = self.anchors.iter().map(|c| CertificateDer::from(c.der())).collect();
        let anchors: Vec<TrustAnchor> = anchor_ders
            .iter()
            .map(|der| webpki::anchor_from_trusted_cert(der).map(|a| a.to_owned()))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::UntrustedChain(format!("a trusted root cannot be used: {e}")))?;
        let intermediates: Vec<CertificateDer> = chain.certs[1..]
            .iter()
            .chain(&self.intermediates)
            .map(|c| CertificateDer::from(c.der().to_vec()))
            .collect();
        let leaf_der = CertificateDer::from(leaf.der());
        let end_entity = webpki::EndEntityCert::try_from(&leaf_der)
            .map_err(|e| Error::InvalidCertificate { what: "signing certificate".into(), reason: e.to_string() })?;
        let verified = end_entity.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            UnixTime::since_unix_epoch(time),
            AnyExtendedKeyUsage,
            None,
            None,
        );
        match verified {
            Ok(path) => {
                // webpki does not look at the anchor's validity; OpenSSL does.
                let used = path.anchor();
                let anchor_valid = self.anchors.iter().zip(&anchors).any(|(cert, anchor)| {
                    anchor.subject == used.subject
                        && anchor.subject_public_key_info == used.subject_public_key_info
                        && cert.valid_at(time)
                });
                if !anchor_valid {
                    return Err(Error::UntrustedChain(format!(
                        "the root certificate was not valid when the signing certificate `{}` was issued",
                        leaf.subject()
                    )));
                }
            }
            // OpenSSL accepts a signing certificate marked as a CA; so does model_signing.
            Err(webpki::Error::CaUsedAsEndEntity) => {
                ca_signer::validate(chain, &self.anchors, &self.intermediates, time)?
            }
            Err(e) => return Err(Error::UntrustedChain(describe(e, leaf))),
        }
        if !leaf.can_sign()? {
            return Err(Error::CertificateUsage);
        }
        leaf.public_key()
    }
}

fn describe(error: webpki::Error, leaf: &Certificate) -> String {
    let subject = leaf.subject();
    match error {
        webpki::Error::UnknownIssuer => format!("`{subject}` does not lead to a trusted root certificate"),
        webpki::Error::CertExpired { .. } => {
            format!("a certificate in the chain of `{subject}` had expired when `{subject}` was issued")
        }
        webpki::Error::CertNotValidYet { .. } => {
            format!("a certificate in the chain of `{subject}` was not yet valid when `{subject}` was issued")
        }
        webpki::Error::CaUsedAsEndEntity => format!("the signing certificate `{subject}` is a CA certificate"),
        webpki::Error::EndEntityUsedAsCa => format!("a certificate in the chain of `{subject}` is not a CA"),
        other => format!("`{subject}`: {other}"),
    }
}

/// Accepts any extended key usage on the path, like OpenSSL's default purpose; the leaf's
/// usage is checked separately ([`Certificate::can_sign`]).
struct AnyExtendedKeyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyExtendedKeyUsage {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for id in iter {
            id?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::bundle::tests::fixture;

    #[test]
    fn validates_like_model_signing() {
        let chain = CertChain::from_pems(&fixture("certs/leaf.pem"), &[&fixture("certs/intermediate.pem")]).unwrap();
        assert_eq!(chain.certificates().len(), 2);
        assert!(!chain.leaf().is_self_issued());
        let mut roots = TrustRoots::new();
        assert!(roots.validate(&chain).is_err());
        roots.add_pem(&fixture("certs/root.pem")).unwrap();
        let key = roots.validate(&chain).unwrap();
        assert_eq!(&key, &chain.leaf().public_key().unwrap());
        let mut other = TrustRoots::new();
        other.add_pem(&fixture("certs/other-root.pem")).unwrap();
        assert!(matches!(other.validate(&chain), Err(Error::UntrustedChain(m)) if m.contains("trusted root")));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_pem_certificates("nothing here", "x").is_err());
        assert!(Certificate::from_der(b"\x30\x03\x02\x01\x00", "x").is_err());
    }
}
