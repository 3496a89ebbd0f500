//! Encrypted PKCS#8 (RFC 5958 `EncryptedPrivateKeyInfo`) with PBES2 (RFC 8018):
//! PBKDF2 with HMAC-SHA1/256/384/512 and AES-128/256-CBC. That covers what
//! `openssl genpkey -aes256`, `openssl pkcs8 -topk8` and Python `cryptography` write.
//! Written here on top of `aws-lc-rs` and `der` (both already in the tree) rather than
//! with `pkcs8`'s `encryption` feature: that pulls `pkcs5` 0.7 and with it the RustCrypto
//! cipher stack on `sha2` 0.10, a second `sha2`, `digest`, `crypto-common`, `block-buffer`
//! and `cpufeatures` beside the 0.11 generation the crate uses (checked with `cargo tree -d`).

use std::num::NonZeroU32;

use aws_lc_rs::cipher::{
    AES_128, AES_256, DecryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::pbkdf2;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, OctetStringRef};
use der::{Decode, Encode, Sequence, Tagged};
use spki::AlgorithmIdentifierRef;

use super::{Error, Result};

const ID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const ID_PBKDF2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.12");
const HMAC_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.7");
const HMAC_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.9");
const HMAC_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.10");
const HMAC_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.2.11");
const AES128_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
const AES256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");

/// Iterations used when encrypting; reading accepts up to [`MAX_ITERATIONS`].
const ITERATIONS: u32 = 100_000;
const MAX_ITERATIONS: u32 = 10_000_000;

#[derive(Sequence)]
struct EncryptedPrivateKeyInfo<'a> {
    encryption_algorithm: AlgorithmIdentifierRef<'a>,
    encrypted_data: OctetStringRef<'a>,
}

#[derive(Sequence)]
struct Pbes2Params<'a> {
    key_derivation_func: AlgorithmIdentifierRef<'a>,
    encryption_scheme: AlgorithmIdentifierRef<'a>,
}

#[derive(Sequence)]
struct Pbkdf2Params<'a> {
    salt: OctetStringRef<'a>,
    iteration_count: u32,
    #[asn1(optional = "true")]
    key_length: Option<u32>,
    #[asn1(optional = "true")]
    prf: Option<AlgorithmIdentifierRef<'a>>,
}

fn unsupported(reason: impl Into<String>) -> Error {
    Error::InvalidKey { what: "encrypted private key".into(), reason: reason.into() }
}

/// Decrypts a DER `EncryptedPrivateKeyInfo` into the DER `PrivateKeyInfo` it holds.
pub(crate) fn decrypt(der: &[u8], password: &[u8]) -> Result<Vec<u8>> {
    let bad = |e: der::Error| unsupported(format!("malformed: {e}"));
    let info = EncryptedPrivateKeyInfo::from_der(der).map_err(bad)?;
    if info.encryption_algorithm.oid != ID_PBES2 {
        return Err(unsupported(format!(
            "unsupported encryption {} (only PBES2 is supported)",
            info.encryption_algorithm.oid
        )));
    }
    let params: Pbes2Params = info
        .encryption_algorithm
        .parameters
        .ok_or_else(|| unsupported("PBES2 without parameters"))?
        .decode_as()
        .map_err(bad)?;
    if params.key_derivation_func.oid != ID_PBKDF2 {
        return Err(unsupported(format!(
            "unsupported key derivation {} (only PBKDF2 is supported)",
            params.key_derivation_func.oid
        )));
    }
    let kdf: Pbkdf2Params = params
        .key_derivation_func
        .parameters
        .ok_or_else(|| unsupported("PBKDF2 without parameters"))?
        .decode_as()
        .map_err(bad)?;
    let prf = match kdf.prf.as_ref().map(|p| p.oid) {
        None | Some(HMAC_SHA1) => pbkdf2::PBKDF2_HMAC_SHA1,
        Some(HMAC_SHA256) => pbkdf2::PBKDF2_HMAC_SHA256,
        Some(HMAC_SHA384) => pbkdf2::PBKDF2_HMAC_SHA384,
        Some(HMAC_SHA512) => pbkdf2::PBKDF2_HMAC_SHA512,
        Some(other) => return Err(unsupported(format!("unsupported PBKDF2 hash {other}"))),
    };
    let (cipher, key_len) = match params.encryption_scheme.oid {
        AES128_CBC => (&AES_128, 16),
        AES256_CBC => (&AES_256, 32),
        other => return Err(unsupported(format!("unsupported cipher {other} (AES-128-CBC or AES-256-CBC expected)"))),
    };
    if kdf.key_length.is_some_and(|l| l as usize != key_len) {
        return Err(unsupported("PBKDF2 key length does not match the cipher"));
    }
    let iterations = NonZeroU32::new(kdf.iteration_count)
        .filter(|n| n.get() <= MAX_ITERATIONS)
        .ok_or_else(|| unsupported("unreasonable PBKDF2 iteration count"))?;
    let iv: OctetStringRef = params
        .encryption_scheme
        .parameters
        .ok_or_else(|| unsupported("AES-CBC without an IV"))?
        .decode_as()
        .map_err(bad)?;
    let iv: [u8; 16] = iv.as_bytes().try_into().map_err(|_| unsupported("AES-CBC IV is not 16 bytes"))?;

    let mut key = vec![0u8; key_len];
    pbkdf2::derive(prf, iterations, kdf.salt.as_bytes(), password, &mut key);
    let key = UnboundCipherKey::new(cipher, &key).map_err(|_| unsupported("cannot set up the cipher"))?;
    let decrypting = PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| unsupported("cannot set up the cipher"))?;
    let mut data = info.encrypted_data.as_bytes().to_vec();
    let plain = decrypting
        .decrypt(&mut data, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| Error::WrongPassword)?;
    // A wrong password passes the padding check one time in 256: the result must still be DER.
    if AnyRef::from_der(plain).map(|a| a.tag() != der::Tag::Sequence).unwrap_or(true) {
        return Err(Error::WrongPassword);
    }
    Ok(plain.to_vec())
}

/// Encrypts a DER `PrivateKeyInfo` with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC).
pub(crate) fn encrypt(private_key_info: &[u8], password: &[u8]) -> Result<Vec<u8>> {
    let fail = |what: &str| unsupported(format!("cannot encrypt: {what}"));
    let rng = SystemRandom::new();
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| fail("no randomness"))?;
    let mut key = [0u8; 32];
    let iterations = NonZeroU32::new(ITERATIONS).expect("non-zero");
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, &salt, password, &mut key);
    let key = UnboundCipherKey::new(&AES_256, &key).map_err(|_| fail("cipher"))?;
    let encrypting = PaddedBlockEncryptingKey::cbc_pkcs7(key).map_err(|_| fail("cipher"))?;
    let mut data = private_key_info.to_vec();
    let context = encrypting.encrypt(&mut data).map_err(|_| fail("cipher"))?;
    let iv: &[u8] = (&context).try_into().map_err(|_| fail("IV"))?;

    let der_err = |e: der::Error| fail(&e.to_string());
    let null = AnyRef::from(der::asn1::Null);
    let prf = AlgorithmIdentifierRef { oid: HMAC_SHA256, parameters: Some(null) };
    let kdf_params = Pbkdf2Params {
        salt: OctetStringRef::new(&salt).map_err(der_err)?,
        iteration_count: ITERATIONS,
        key_length: None,
        prf: Some(prf),
    }
    .to_der()
    .map_err(der_err)?;
    let iv_der = OctetStringRef::new(iv).map_err(der_err)?.to_der().map_err(der_err)?;
    let pbes2_params = Pbes2Params {
        key_derivation_func: AlgorithmIdentifierRef {
            oid: ID_PBKDF2,
            parameters: Some(AnyRef::from_der(&kdf_params).map_err(der_err)?),
        },
        encryption_scheme: AlgorithmIdentifierRef {
            oid: AES256_CBC,
            parameters: Some(AnyRef::from_der(&iv_der).map_err(der_err)?),
        },
    }
    .to_der()
    .map_err(der_err)?;
    EncryptedPrivateKeyInfo {
        encryption_algorithm: AlgorithmIdentifierRef {
            oid: ID_PBES2,
            parameters: Some(AnyRef::from_der(&pbes2_params).map_err(der_err)?),
        },
        encrypted_data: OctetStringRef::new(&data).map_err(der_err)?,
    }
    .to_der()
    .map_err(der_err)
}
