//! Signing keys and public keys: generation, PEM loading, signing, verification, hints.
//!
//! Supported: ECDSA on P-256, P-384 and P-521, and Ed25519. ECDSA signatures are DER
//! encoded and hash the message with the curve's hash (SHA-256, SHA-384, SHA-512), as
//! `model_signing` and Sigstore do. Ed25519 signs the message itself. Note that
//! `model_signing` 1.1.1 refuses Ed25519 keys: use an ECDSA key for signatures meant for it.
//!
//! Private keys are read from PEM: PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8
//! (`ENCRYPTED PRIVATE KEY`, PBES2 with PBKDF2 and AES-CBC, what `openssl genpkey
//! -aes256` and Python `cryptography` write) and SEC1 (`EC PRIVATE KEY`, what `openssl
//! ecparam -genkey` writes, its `EC PARAMETERS` block being skipped).
//!
//! Two key hints exist in the wild, and neither is proof of anything:
//! [`PublicKey::model_signing_hint`] (hex SHA-256 of the SPKI PEM text, what
//! `model_signing` writes and insists on when present) and [`PublicKey::cosign_hint`]
//! (base64 SHA-256 of the DER SPKI).

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as lc, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, SECP_256_R_1, SECP_384_R_1, SECP_521_R_1};
use sha2::{Digest as _, Sha256};

use super::{Error, Result, pbes2};

/// id-Ed25519 (RFC 8410).
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A signature algorithm, named after its key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA on NIST P-256 with SHA-256.
    P256,
    /// ECDSA on NIST P-384 with SHA-384.
    P384,
    /// ECDSA on NIST P-521 with SHA-512.
    P521,
    /// Ed25519 (not accepted by `model_signing` 1.1.1).
    Ed25519,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 4] = [Algorithm::P256, Algorithm::P384, Algorithm::P521, Algorithm::Ed25519];

    /// The name used on the command line: `p256`, `p384`, `p521`, `ed25519`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::P256 => "p256",
            Algorithm::P384 => "p384",
            Algorithm::P521 => "p521",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    fn ecdsa_signing(self) -> Option<&'static lc::EcdsaSigningAlgorithm> {
        match self {
            Algorithm::P256 => Some(&lc::ECDSA_P256_SHA256_ASN1_SIGNING),
            Algorithm::P384 => Some(&lc::ECDSA_P384_SHA384_ASN1_SIGNING),
            Algorithm::P521 => Some(&lc::ECDSA_P521_SHA512_ASN1_SIGNING),
            Algorithm::Ed25519 => None,
        }
    }

    fn verification(self) -> &'static dyn lc::VerificationAlgorithm {
        match self {
            Algorithm::P256 => &lc::ECDSA_P256_SHA256_ASN1,
            Algorithm::P384 => &lc::ECDSA_P384_SHA384_ASN1,
            Algorithm::P521 => &lc::ECDSA_P521_SHA512_ASN1,
            Algorithm::Ed25519 => &lc::ED25519,
        }
    }

    /// Length of the raw public key (the uncompressed point for ECDSA).
    fn raw_public_len(self) -> usize {
        match self {
            Algorithm::P256 => 65,
            Algorithm::P384 => 97,
            Algorithm::P521 => 133,
            Algorithm::Ed25519 => 32,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "p256" | "ecdsap256" | "secp256r1" | "prime256v1" => Ok(Algorithm::P256),
            "p384" | "ecdsap384" | "secp384r1" => Ok(Algorithm::P384),
            "p521" | "ecdsap521" | "secp521r1" => Ok(Algorithm::P521),
            "ed25519" => Ok(Algorithm::Ed25519),
            _ => Err(Error::InvalidKey {
                what: format!("key algorithm `{s}`"),
                reason: "unknown (expected p256, p384, p521 or ed25519)".into(),
            }),
        }
    }
}

/// A freshly generated key pair, as PEM text.
pub struct GeneratedKey {
    /// PKCS#8 private key; encrypted (`ENCRYPTED PRIVATE KEY`) when a password was given.
    pub private_pem: String,
    /// SPKI public key (`PUBLIC KEY`), in the exact form `openssl` writes.
    pub public_pem: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey").field("public_pem", &self.public_pem).finish_non_exhaustive()
    }
}

/// Generates a key pair. With a password, the private key is encrypted PKCS#8 (PBES2,
/// PBKDF2-HMAC-SHA256, AES-256-CBC), readable by `openssl` and Python `cryptography`.
pub fn generate(algorithm: Algorithm, password: Option<&str>) -> Result<GeneratedKey> {
    let key = SigningKey::generate(algorithm)?;
    Ok(GeneratedKey { private_pem: key.to_pkcs8_pem(password)?, public_pem: key.public_key().to_pem() })
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    /// Held elsewhere (a hardware token): signs through it and cannot be exported.
    External(Box<dyn ExternalKey>),
}

/// A private key held outside this process (a PKCS#11 token, see [`super::pkcs11`]): it
/// signs and reports its public key, and its key material never leaves it.
pub trait ExternalKey: Send + Sync {
    fn algorithm(&self) -> Algorithm;
    fn public_key(&self) -> &PublicKey;
    /// How messages name the key (never a secret).
    fn describe(&self) -> &str;
    /// A signature in the form [`SigningKey::sign`] returns (DER ECDSA over the curve's hash).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
}

/// A private key that signs. Its `Debug` output never shows key material.
pub struct SigningKey {
    inner: Inner,
    algorithm: Algorithm,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

fn private_key_error(reason: impl Into<String>) -> Error {
    Error::InvalidKey { what: "private key".into(), reason: reason.into() }
}

impl SigningKey {
    /// A new random key.
    pub fn generate(algorithm: Algorithm) -> Result<Self> {
        let inner = match algorithm.ecdsa_signing() {
            Some(alg) => {
                Inner::Ecdsa(EcdsaKeyPair::generate(alg).map_err(|_| private_key_error("key generation failed"))?)
            }
            None => Inner::Ed25519(Ed25519KeyPair::generate().map_err(|_| private_key_error("key generation failed"))?),
        };
        Self::from_inner(inner, algorithm)
    }

    /// A key held elsewhere, e.g. in a PKCS#11 token (see [`super::pkcs11`]).
    pub fn from_external(key: Box<dyn ExternalKey>) -> Self {
        let (algorithm, public) = (key.algorithm(), key.public_key().clone());
        SigningKey { inner: Inner::External(key), algorithm, public }
    }

    fn from_inner(inner: Inner, algorithm: Algorithm) -> Result<Self> {
        let der = match &inner {
            Inner::Ecdsa(k) => AsDer::<PublicKeyX509Der>::as_der(k.public_key()).map(|d| d.as_ref().to_vec()),
            Inner::Ed25519(k) => AsDer::<PublicKeyX509Der>::as_der(k.public_key()).map(|d| d.as_ref().to_vec()),
            Inner::External(k) => return Ok(SigningKey { public: k.public_key().clone(), inner, algorithm }),
        }
        .map_err(|_| private_key_error("cannot encode its public key"))?;
        let public = PublicKey::from_spki_der(&der)?;
        if public.algorithm != algorithm {
            return Err(private_key_error("public key algorithm does not match the private key"));
        }
        Ok(SigningKey { inner, algorithm, public })
    }

    /// Reads a private key from PEM: PKCS#8, encrypted PKCS#8 (needs `password`) or SEC1
    /// `EC PRIVATE KEY`. Other PEM blocks before the key (`EC PARAMETERS`) are skipped.
    pub fn from_pem(pem_text: &str, password: Option<&str>) -> Result<Self> {
        let blocks = pem::parse_many(pem_text).map_err(|e| private_key_error(format!("not valid PEM: {e}")))?;
        let block = blocks
            .iter()
            .find(|b| b.tag().ends_with("PRIVATE KEY"))
            .ok_or_else(|| private_key_error("no PRIVATE KEY block in the PEM text"))?;
        match block.tag() {
            "PRIVATE KEY" => Self::from_der(block.contents()),
            "EC PRIVATE KEY" => {
                if block.headers().get("Proc-Type").is_some_and(|v| v.contains("ENCRYPTED")) {
                    return Err(private_key_error(
                        "legacy encrypted PEM is not supported; convert it with `openssl pkcs8 -topk8 -in KEY -out NEW`",
                    ));
                }
                Self::from_der(block.contents())
            }
            "ENCRYPTED PRIVATE KEY" => {
                let password = password.ok_or(Error::PasswordRequired)?;
                let der = pbes2::decrypt(block.contents(), password.as_bytes())?;
                Self::from_der(&der)
            }
            "RSA PRIVATE KEY" => {
                Err(private_key_error("RSA keys are not supported (use ECDSA P-256, P-384, P-521 or Ed25519)"))
            }
            other => Err(private_key_error(format!("unsupported PEM block `{other}`"))),
        }
    }

    /// Reads an unencrypted PKCS#8 or SEC1 (RFC 5915) DER private key.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        if let Ok(key) = Ed25519KeyPair::from_pkcs8(der) {
            return Self::from_inner(Inner::Ed25519(key), Algorithm::Ed25519);
        }
        for algorithm in [Algorithm::P256, Algorithm::P384, Algorithm::P521] {
            let alg = algorithm.ecdsa_signing().expect("ECDSA algorithm");
            if let Ok(key) = EcdsaKeyPair::from_private_key_der(alg, der) {
                return Self::from_inner(Inner::Ecdsa(key), algorithm);
            }
        }
        Err(private_key_error(
            "not a supported key (expected ECDSA P-256, P-384, P-521 or Ed25519, in PKCS#8 or SEC1 form)",
        ))
    }

    /// The key as PKCS#8 PEM, encrypted with `password` if one is given.
    pub fn to_pkcs8_pem(&self, password: Option<&str>) -> Result<String> {
        let der = match &self.inner {
            Inner::Ecdsa(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            Inner::Ed25519(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            Inner::External(k) => {
                return Err(Error::InvalidKey {
                    what: k.describe().to_string(),
                    reason: "held in a token: it cannot be exported".into(),
                });
            }
        }
        .map_err(|_| private_key_error("cannot encode it as PKCS#8"))?;
        Ok(match password {
            None => pem_encode("PRIVATE KEY", &der),
            Some(password) => pem_encode("ENCRYPTED PRIVATE KEY", &pbes2::encrypt(&der, password.as_bytes())?),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message`: DER ECDSA over the curve's hash, or Ed25519.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match &self.inner {
            Inner::Ecdsa(k) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| private_key_error("signing failed")),
            Inner::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            Inner::External(k) => k.sign(message),
        }
    }
}

/// A public key (SubjectPublicKeyInfo), compared by its DER encoding.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    algorithm: Algorithm,
    spki_der: Vec<u8>,
    /// The raw key: the uncompressed point for ECDSA, 32 bytes for Ed25519.
    raw: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.algorithm, self.model_signing_hint())
    }
}

impl PublicKey {
    /// Reads the first `PUBLIC KEY` block of a PEM text.
    pub fn from_pem(pem_text: &str) -> Result<Self> {
        let blocks = pem::parse_many(pem_text)
            .map_err(|e| Error::InvalidKey { what: "public key".into(), reason: format!("not valid PEM: {e}") })?;
        let block = blocks.iter().find(|b| b.tag() == "PUBLIC KEY").ok_or_else(|| Error::InvalidKey {
            what: "public key".into(),
            reason: "no PUBLIC KEY block in the PEM text".into(),
        })?;
        Self::from_spki_der(block.contents())
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidKey { what: "public key".into(), reason };
        let spki = spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| invalid(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
        let algorithm = match spki.algorithm.oid {
            ID_EC_PUBLIC_KEY => match spki.algorithm.parameters_oid() {
                Ok(SECP_256_R_1) => Algorithm::P256,
                Ok(SECP_384_R_1) => Algorithm::P384,
                Ok(SECP_521_R_1) => Algorithm::P521,
                Ok(other) => return Err(invalid(format!("unsupported elliptic curve {other}"))),
                Err(_) => return Err(invalid("EC key without a named curve".into())),
            },
            ID_ED25519 if spki.algorithm.parameters.is_none() => Algorithm::Ed25519,
            other => return Err(invalid(format!("unsupported key algorithm {other} (expected ECDSA or Ed25519)"))),
        };
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| invalid("public key bit string has unused bits".into()))?;
        if raw.len() != algorithm.raw_public_len() || (algorithm != Algorithm::Ed25519 && raw[0] != 0x04) {
            return Err(invalid(format!("malformed {algorithm} public key (compressed points are not supported)")));
        }
        Ok(PublicKey { algorithm, spki_der: der.to_vec(), raw: raw.to_vec() })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The SPKI as PEM: 64-column base64 lines, LF line ends, a final LF (as `openssl`
    /// and Python `cryptography` write it).
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.spki_der)
    }

    /// `model_signing`'s hint: hex SHA-256 of [`PublicKey::to_pem`].
    pub fn model_signing_hint(&self) -> String {
        hex::encode(Sha256::digest(self.to_pem().as_bytes()))
    }

    /// cosign's hint: standard base64 of SHA-256 of the DER SPKI.
    pub fn cosign_hint(&self) -> String {
        BASE64.encode(Sha256::digest(&self.spki_der))
    }

    /// Whether `hint` names this key in either form. Informational only.
    pub fn matches_hint(&self, hint: &str) -> bool {
        hint == self.model_signing_hint() || hint == self.cosign_hint()
    }

    /// Checks an ECDSA `signature` over `message` hashed with SHA-256 whatever the curve
    /// (what `model_signing` 0.2 did for certificates); never for Ed25519.
    pub(crate) fn verify_ecdsa_sha256(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        let alg: &'static dyn lc::VerificationAlgorithm = match self.algorithm {
            Algorithm::P256 => &lc::ECDSA_P256_SHA256_ASN1,
            Algorithm::P384 => &lc::ECDSA_P384_SHA256_ASN1,
            Algorithm::P521 => &lc::ECDSA_P521_SHA256_ASN1,
            Algorithm::Ed25519 => return Err(Error::BadSignature("Ed25519 has no SHA-256 variant".into())),
        };
        UnparsedPublicKey::new(alg, &self.raw).verify(message, signature).map_err(|_| {
            Error::BadSignature(format!("{} signature invalid for key {}", self.algorithm, self.model_signing_hint()))
        })
    }

    /// Checks `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        UnparsedPublicKey::new(self.algorithm.verification(), &self.raw).verify(message, signature).map_err(|_| {
            Error::BadSignature(format!("{} signature invalid for key {}", self.algorithm, self.model_signing_hint()))
        })
    }
}

/// PEM with 64-column base64 lines and LF line ends, final LF included.
pub(crate) fn pem_encode(tag: &str, der: &[u8]) -> String {
    // 64-character lines and LF, as openssl writes: `model_signing`'s key hint hashes this text.
    pem::encode_config(&pem::Pem::new(tag, der), pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_verifies() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let sig = key.sign(b"hello").unwrap();
            key.public_key().verify(b"hello", &sig).unwrap();
            assert!(key.public_key().verify(b"hellp", &sig).is_err(), "{alg}");
            let other = SigningKey::generate(alg).unwrap();
            assert!(other.public_key().verify(b"hello", &sig).is_err(), "{alg}");
        }
    }

    #[test]
    fn generated_pems_round_trip_with_and_without_password() {
        for alg in Algorithm::ALL {
            let plain = generate(alg, None).unwrap();
            assert!(plain.private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let key = SigningKey::from_pem(&plain.private_pem, None).unwrap();
            assert_eq!(key.algorithm(), alg);
            assert_eq!(key.public_key(), &PublicKey::from_pem(&plain.public_pem).unwrap());
            assert_eq!(key.public_key().to_pem(), plain.public_pem);

            let enc = generate(alg, Some("correct horse")).unwrap();
            assert!(enc.private_pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
            assert!(matches!(SigningKey::from_pem(&enc.private_pem, None), Err(Error::PasswordRequired)));
            assert!(matches!(SigningKey::from_pem(&enc.private_pem, Some("wrong")), Err(Error::WrongPassword)));
            let key = SigningKey::from_pem(&enc.private_pem, Some("correct horse")).unwrap();
            assert_eq!(key.public_key().to_pem(), enc.public_pem);
        }
    }

    #[test]
    fn reads_sec1_with_ec_parameters_block() {
        // `openssl ecparam -name prime256v1 -genkey` output.
        let pem = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n\
-----BEGIN EC PRIVATE KEY-----\n\
MHcCAQEEIK2YZWRdjEkWUNa1ndHOYjmnqqQNYvTs4/1qRSFWwg2AoAoGCCqGSM49\n\
AwEHoUQDQgAEui/ZtkxnGByoD+AiUaHW0cLiivaS2Tlo7ayYgy5T983oiVL2Pc9y\n\
FJmf69gm9VXesnhCtAFZxKpNkeOfKDBCSA==\n\
-----END EC PRIVATE KEY-----\n";
        let key = SigningKey::from_pem(pem, None).unwrap();
        assert_eq!(key.algorithm(), Algorithm::P256);
    }

    #[test]
    fn hints() {
        let key = SigningKey::generate(Algorithm::P256).unwrap();
        let public = key.public_key();
        assert_eq!(public.model_signing_hint(), hex::encode(Sha256::digest(public.to_pem())));
        assert!(public.matches_hint(&public.cosign_hint()));
        assert!(public.matches_hint(&public.model_signing_hint()));
        assert!(!public.matches_hint(""));
    }

    #[test]
    fn rejects_unsupported_keys() {
        assert!(
            SigningKey::from_pem("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", None)
                .is_err()
        );
        assert!(SigningKey::from_pem("nothing", None).is_err());
        assert!(PublicKey::from_spki_der(b"\x30\x00").is_err());
        assert!("rsa".parse::<Algorithm>().is_err());
        assert_eq!("P-384".parse::<Algorithm>().unwrap(), Algorithm::P384);
    }
}
