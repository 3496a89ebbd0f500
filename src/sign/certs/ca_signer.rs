//! Chain validation for a signing certificate that is itself marked `CA:TRUE`, which
//! `model_signing` (OpenSSL) accepts and `rustls-webpki` refuses (`CaUsedAsEndEntity`):
//! the published signatures of `model_signing` 0.2–1.1 made with a certificate carry such a
//! leaf. Everything else goes through webpki ([`super::TrustRoots::validate`]).
//!
//! The path is built here, one link at a time, from the leaf to a trusted self-issued root,
//! with the same rules as OpenSSL's default verification at the leaf's notBefore time:
//! each issuer's subject equals the child's issuer name, its key verifies the child's
//! signature (webpki's signature algorithms, matched by algorithm identifier), it is a CA
//! (basic constraints `cA`), it may sign certificates (key usage `keyCertSign` when key
//! usage is present), its path length constraint admits the CA certificates below it,
//! each certificate names the same signature algorithm inside and outside its signed part,
//! and every certificate, the root included, is valid at that time.
//! Chains are at most [`MAX_DEPTH`] long; no certificate is used twice.

use std::time::Duration;

use const_oid::AssociatedOid;
use der::{Decode, Encode};
use rustls_pki_types::SignatureVerificationAlgorithm;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};

use super::{CertChain, Certificate};
use super::{Error, Result};

/// Longest chain built, leaf and root included.
pub const MAX_DEPTH: usize = 8;

/// Validates `chain` (its leaf a CA certificate) up to one of `anchors` (trusted,
/// self-issued), with `intermediates` (from the chain and the trusted set) to build the
/// path, at `time`. Usage of the leaf itself is checked by the caller.
pub fn validate(
    chain: &CertChain,
    anchors: &[Certificate],
    intermediates: &[Certificate],
    time: Duration,
) -> Result<()> {
    let leaf = chain.leaf();
    let untrusted = |why: String| Error::UntrustedChain(format!("`{}`: {why}", leaf.subject()));
    let mut used: Vec<&Certificate> = vec![leaf];
    let mut current = leaf;
    for depth in 0..MAX_DEPTH {
        if !current.valid_at(time) {
            return Err(untrusted(format!(
                "`{}` was not valid when the signing certificate was issued",
                current.subject()
            )));
        }
        if anchors.contains(current) {
            return Ok(());
        }
        let issuer = chain.certificates()[1..]
            .iter()
            .chain(intermediates)
            .chain(anchors)
            .filter(|c| !used.contains(c))
            .find(|c| issued(current, c))
            .ok_or_else(|| untrusted(format!("no trusted issuer signed `{}`", current.subject())))?;
        // `depth` CA certificates lie between `issuer` and the leaf (the end entity here).
        if !may_issue(issuer, depth)? {
            return Err(untrusted(format!("`{}` may not issue certificates", issuer.subject())));
        }
        used.push(issuer);
        current = issuer;
    }
    Err(untrusted(format!("no trusted root within {MAX_DEPTH} certificates")))
}

/// Whether `issuer`'s subject is `child`'s issuer and its key verifies `child`'s signature.
fn issued(child: &Certificate, issuer: &Certificate) -> bool {
    let (child, parent) = (child.x509(), issuer.x509());
    if child.tbs_certificate.issuer != parent.tbs_certificate.subject
        || child.tbs_certificate.signature != child.signature_algorithm
    {
        return false;
    }
    let (Ok(tbs), Ok(sig_alg_der), Ok(key_alg_der)) = (
        child.tbs_certificate.to_der(),
        child.signature_algorithm.to_der(),
        parent.tbs_certificate.subject_public_key_info.algorithm.to_der(),
    ) else {
        return false;
    };
    let (Some(signature), Some(public_key)) =
        (child.signature.as_bytes(), parent.tbs_certificate.subject_public_key_info.subject_public_key.as_bytes())
    else {
        return false;
    };
    let (Some(sig_alg), Some(key_alg)) = (sequence_contents(&sig_alg_der), sequence_contents(&key_alg_der)) else {
        return false;
    };
    webpki::ALL_VERIFICATION_ALGS.iter().any(|alg: &&dyn SignatureVerificationAlgorithm| {
        alg.signature_alg_id().as_ref() == sig_alg
            && alg.public_key_alg_id().as_ref() == key_alg
            && alg.verify_signature(public_key, &tbs, signature).is_ok()
    })
}

/// The contents of a DER SEQUENCE (an AlgorithmIdentifier without its tag and length),
/// as webpki's algorithm identifiers are written.
fn sequence_contents(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, body) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize), &rest[n..])
    };
    (body.len() == len).then_some(body)
}

/// A CA certificate (basic constraints `cA`) whose path length constraint, if any, admits
/// `below` CA certificates under it before the leaf, with `keyCertSign` if it has key usage.
fn may_issue(cert: &Certificate, below: usize) -> Result<bool> {
    let bad = |e: der::Error| Error::InvalidCertificate { what: cert.subject(), reason: e.to_string() };
    let tbs = &cert.x509().tbs_certificate;
    let extension = |oid| tbs.extensions.iter().flatten().find(|e| e.extn_id == oid);
    let is_ca = match extension(BasicConstraints::OID) {
        Some(ext) => {
            let constraints = BasicConstraints::from_der(ext.extn_value.as_bytes()).map_err(bad)?;
            constraints.ca && constraints.path_len_constraint.is_none_or(|max| below <= usize::from(max))
        }
        None => false,
    };
    let can_sign_certs = match extension(KeyUsage::OID) {
        Some(ext) => KeyUsage::from_der(ext.extn_value.as_bytes()).map_err(bad)?.0.contains(KeyUsages::KeyCertSign),
        None => true,
    };
    Ok(is_ca && can_sign_certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_contents_reads_short_and_long_lengths() {
        assert_eq!(sequence_contents(&[0x30, 0x02, 0x05, 0x00]), Some(&[0x05, 0x00][..]));
        assert_eq!(sequence_contents(&[0x30, 0x03, 0x05, 0x00]), None);
        assert_eq!(sequence_contents(&[0x31, 0x02, 0x05, 0x00]), None);
        let mut long = vec![0x30, 0x81, 0x80];
        long.extend([0u8; 0x80]);
        assert_eq!(sequence_contents(&long).map(<[u8]>::len), Some(0x80));
    }
}
