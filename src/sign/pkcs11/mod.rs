//! Signing with a key held in a hardware token or HSM, through PKCS#11.
//!
//! The key is named by an RFC 7512 URI, as cosign and `model_signing` take it:
//! `pkcs11:token=LABEL;object=KEY?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234`.
//! Path attributes select the token (`token`, `serial`, `manufacturer`, `model`,
//! `slot-id`) and the private key (`object` = its label, `id` = its CKA_ID, `type=private`);
//! query attributes name the module (`module-path`, absolute) and the user PIN
//! (`pin-value`, or `pin-source` = an absolute path or `file:` URI whose content is the
//! PIN, a final line end dropped). Values are percent-decoded. Unknown attributes are
//! refused rather than ignored: an ignored constraint could select another key.
//!
//! Only ECDSA keys on P-256, P-384 and P-521 sign: the message is hashed here with the
//! curve's hash (what [`super::keys::SigningKey`] does for a key file), the token signs
//! the digest (`CKM_ECDSA`), and the raw `r‖s` it returns is DER-encoded. The public key
//! comes from the token's public-key object with the same label/id; every signature is
//! checked with it before it is used, so a token that signs with another key than the one
//! it reports fails here, not at verification.
//!
//! Errors never show the URI's query (it may hold the PIN) nor the PIN itself.

use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, SECP_256_R_1, SECP_384_R_1, SECP_521_R_1};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::{Decode as _, Encode as _};
use sha2::Digest as _;

use super::keys::{Algorithm, ExternalKey, PublicKey};
use super::{Error, Result};

mod uri;

pub use uri::{Pkcs11Uri, SCHEME, is_uri};

fn error(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Pkcs11 { what: what.into(), reason: reason.into() }
}

/// A private key in a PKCS#11 token, with a logged-in session. `Debug` shows no secret.
pub struct Pkcs11Key {
    session: Mutex<Session>,
    key: ObjectHandle,
    algorithm: Algorithm,
    public: PublicKey,
    describe: String,
}

impl fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Key").field("key", &self.describe).field("algorithm", &self.algorithm).finish()
    }
}

fn ck(what: &str, e: CkError) -> Error {
    error(what, e.to_string())
}

impl Pkcs11Key {
    /// Loads the module, finds the one token and the one private key the URI names, and
    /// logs in with `pin` (the URI's own, else the caller's: environment or prompt).
    pub fn open(uri: &Pkcs11Uri, pin: Option<AuthPin>) -> Result<Self> {
        let module = uri.module_path.as_deref().ok_or_else(|| {
            error("URI", "no module-path: add ?module-path=/path/to/module.so (e.g. /usr/lib/softhsm/libsofthsm2.so)")
        })?;
        let context = load_module(module)?;
        let describe = uri.describe();
        let (slot, label) = find_token(&context, uri, module)?;
        let session = context.open_ro_session(slot).map_err(|e| ck(&format!("token `{label}`"), e))?;
        let info = context.get_token_info(slot).map_err(|e| ck(&format!("token `{label}`"), e))?;
        let pin = match pin {
            Some(pin) => Some(pin),
            None => uri.pin()?,
        };
        match pin {
            Some(pin) => session.login(UserType::User, Some(&pin)).map_err(|e| login_error(&label, e))?,
            None if info.login_required() => {
                return Err(error(
                    format!("token `{label}`"),
                    "needs a PIN: add &pin-value=… or &pin-source=/path to the URI, or set MODELSIGN_PKCS11_PIN",
                ));
            }
            None => {}
        }
        let key = find_key(&session, uri, &describe, &label)?;
        let (algorithm, public) = public_key(&session, key, uri, &describe)?;
        let signer = Pkcs11Key { session: Mutex::new(session), key, algorithm, public, describe };
        // A first signature proves the token signs with the key it reported.
        signer.sign(b"modelsign PKCS#11 self-check")?;
        Ok(signer)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The token and key, for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// A DER ECDSA signature over `message` hashed with the curve's hash, checked with the
    /// public key before it is returned.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let digest = match self.algorithm {
            Algorithm::P256 => sha2::Sha256::digest(message).to_vec(),
            Algorithm::P384 => sha2::Sha384::digest(message).to_vec(),
            Algorithm::P521 => sha2::Sha512::digest(message).to_vec(),
            Algorithm::Ed25519 => return Err(error(&self.describe, "Ed25519 keys in tokens are not supported")),
        };
        let raw = {
            let session = self.session.lock().map_err(|_| error(&self.describe, "a previous signature panicked"))?;
            session.sign(&Mechanism::Ecdsa, self.key, &digest).map_err(|e| ck(&self.describe, e))?
        };
        let der = raw_to_der(&raw).ok_or_else(|| {
            error(&self.describe, format!("the token returned a {}-byte signature, not r‖s", raw.len()))
        })?;
        self.public.verify(message, &der).map_err(|_| {
            error(&self.describe, "the token's signature does not verify with the key's public-key object")
        })?;
        Ok(der)
    }
}

impl ExternalKey for Pkcs11Key {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn describe(&self) -> &str {
        &self.describe
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        Pkcs11Key::sign(self, message)
    }
}

fn load_module(module: &Path) -> Result<Pkcs11> {
    let what = format!("module {}", module.display());
    if !module.is_file() {
        return Err(error(what, "no such file"));
    }
    let context = Pkcs11::new(module).map_err(|e| error(&what, format!("cannot load it: {e}")))?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(context),
        Err(e) => Err(ck(&what, e)),
    }
}

fn find_token(context: &Pkcs11, uri: &Pkcs11Uri, module: &Path) -> Result<(Slot, String)> {
    let module_name = format!("module {}", module.display());
    let slots = context.get_slots_with_token().map_err(|e| ck(&module_name, e))?;
    let mut seen = Vec::new();
    let mut matching = Vec::new();
    for slot in slots {
        let info = context.get_token_info(slot).map_err(|e| ck(&module_name, e))?;
        let label = info.label().trim_end().to_string();
        let ok = uri.token.as_deref().is_none_or(|t| t == label)
            && uri.serial.as_deref().is_none_or(|s| s == info.serial_number().trim_end())
            && uri.manufacturer.as_deref().is_none_or(|m| m == info.manufacturer_id().trim_end())
            && uri.model.as_deref().is_none_or(|m| m == info.model().trim_end())
            && uri.slot_id.is_none_or(|id| id == slot.id())
            && info.token_initialized();
        if ok {
            matching.push((slot, label.clone()));
        }
        if info.token_initialized() {
            seen.push(format!("`{label}`"));
        }
    }
    let wanted = uri.describe();
    let token = wanted.split(" on ").nth(1).unwrap_or("the token").to_string();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(error(
            &module_name,
            format!(
                "no {token} (tokens present: {})",
                if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
            ),
        )),
        n => Err(error(&module_name, format!("{n} tokens match {token}; add serial= or slot-id= to the URI"))),
    }
}

fn login_error(label: &str, e: CkError) -> Error {
    let what = format!("token `{label}`");
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => error(what, "wrong PIN"),
        CkError::Pkcs11(RvError::PinLocked, _) => error(what, "the PIN is locked (too many wrong PINs)"),
        CkError::Pkcs11(RvError::PinLenRange, _) => error(what, "wrong PIN (not a length this token accepts)"),
        CkError::Pkcs11(RvError::UserPinNotInitialized, _) => error(what, "its user PIN was never set"),
        other => error(what, format!("login failed: {other}")),
    }
}

fn key_template(class: ObjectClass, uri: &Pkcs11Uri) -> Vec<Attribute> {
    let mut template = vec![Attribute::Class(class)];
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    template
}

fn find_key(session: &Session, uri: &Pkcs11Uri, describe: &str, label: &str) -> Result<ObjectHandle> {
    let found = session
        .find_objects(&key_template(ObjectClass::PRIVATE_KEY, uri))
        .map_err(|e| ck(&format!("token `{label}`"), e))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(error(describe, "no such private key object on the token")),
        many => Err(error(describe, format!("{} private keys match; add id= to the URI", many.len()))),
    }
}

fn public_key(session: &Session, key: ObjectHandle, uri: &Pkcs11Uri, describe: &str) -> Result<(Algorithm, PublicKey)> {
    let attrs =
        session.get_attributes(key, &[AttributeType::KeyType, AttributeType::EcParams]).map_err(|e| ck(describe, e))?;
    let mut key_type = None;
    let mut params = None;
    for attr in attrs {
        match attr {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(p) => params = Some(p),
            _ => {}
        }
    }
    if key_type != Some(KeyType::EC) {
        return Err(error(describe, "not an elliptic-curve key (ECDSA P-256, P-384 and P-521 are supported)"));
    }
    let curve = params
        .and_then(|p| ObjectIdentifier::from_der(&p).ok())
        .ok_or_else(|| error(describe, "the key names no curve (CKA_EC_PARAMS)"))?;
    let algorithm = match curve {
        SECP_256_R_1 => Algorithm::P256,
        SECP_384_R_1 => Algorithm::P384,
        SECP_521_R_1 => Algorithm::P521,
        other => return Err(error(describe, format!("unsupported curve {other} (P-256, P-384, P-521 are)"))),
    };
    let found = session.find_objects(&key_template(ObjectClass::PUBLIC_KEY, uri)).map_err(|e| ck(describe, e))?;
    let [public] = found.as_slice() else {
        return Err(error(
            describe,
            format!(
                "expected one public-key object with the same label/id beside the private key, found {}",
                found.len()
            ),
        ));
    };
    let point = session
        .get_attributes(*public, &[AttributeType::EcPoint])
        .map_err(|e| ck(describe, e))?
        .into_iter()
        .find_map(|a| if let Attribute::EcPoint(p) = a { Some(p) } else { None })
        .ok_or_else(|| error(describe, "the public-key object has no CKA_EC_POINT"))?;
    let point =
        ec_point(&point, algorithm).ok_or_else(|| error(describe, "the public key's CKA_EC_POINT is malformed"))?;
    let spki = spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned { oid: ID_EC_PUBLIC_KEY, parameters: Some(der::Any::from(curve)) },
        subject_public_key: der::asn1::BitString::from_bytes(&point)
            .map_err(|e| error(describe, format!("public key: {e}")))?,
    };
    let der = spki.to_der().map_err(|e| error(describe, format!("public key: {e}")))?;
    Ok((algorithm, PublicKey::from_spki_der(&der)?))
}

/// The uncompressed point from CKA_EC_POINT: a DER OCTET STRING (the standard), or the
/// bare point (some tokens).
fn ec_point(value: &[u8], algorithm: Algorithm) -> Option<Vec<u8>> {
    let len = match algorithm {
        Algorithm::P256 => 65,
        Algorithm::P384 => 97,
        Algorithm::P521 => 133,
        Algorithm::Ed25519 => return None,
    };
    let point = if value.len() == len && value[0] == 0x04 {
        value.to_vec()
    } else {
        der::asn1::OctetString::from_der(value).ok()?.into_bytes()
    };
    (point.len() == len && point[0] == 0x04).then_some(point)
}

#[derive(der::Sequence)]
struct EcdsaSignature<'a> {
    r: der::asn1::UintRef<'a>,
    s: der::asn1::UintRef<'a>,
}

/// PKCS#11's `r‖s` (two equal halves) as a DER `ECDSA-Sig-Value`.
fn raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    EcdsaSignature { r: der::asn1::UintRef::new(r).ok()?, s: der::asn1::UintRef::new(s).ok()? }.to_der().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_signatures_become_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero in DER
        raw[63] = 1;
        let der = raw_to_der(&raw).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x26, 0x02, 0x21]);
        assert!(raw_to_der(&[1, 2, 3]).is_none());
    }

    #[test]
    fn ec_points_in_both_forms() {
        let mut point = vec![4u8; 65];
        point[1] = 9;
        assert_eq!(ec_point(&point, Algorithm::P256).unwrap(), point);
        let wrapped = der::asn1::OctetString::new(point.clone()).unwrap().to_der().unwrap();
        assert_eq!(ec_point(&wrapped, Algorithm::P256).unwrap(), point);
        assert!(ec_point(&wrapped, Algorithm::P384).is_none());
    }
}
