//! TUF metadata (specification 1.0): the four top-level roles' documents, parsed from JSON,
//! and the threshold signature check over the canonical form of their `signed` part.
//!
//! Keys: `ecdsa` / `ecdsa-sha2-nistp256` with a PEM SubjectPublicKeyInfo (what Sigstore's
//! repository uses) and `ed25519` with a hex key. A key of another type never counts
//! towards a threshold. Key IDs are taken as the root lists them (as python-tuf does);
//! each key ID counts once however many signatures carry it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use super::canonical;

/// A metadata document as downloaded: its `signed` part (raw and canonical) and signatures.
pub struct Envelope {
    signed: Value,
    canonical: Vec<u8>,
    signatures: Vec<Signature>,
}

#[derive(Deserialize)]
struct Signature {
    keyid: String,
    sig: String,
}

/// What every role's `signed` part has.
#[derive(Deserialize, Clone, Debug)]
pub struct Common {
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
}

#[derive(Deserialize, Clone, Debug)]
pub struct Key {
    pub keytype: String,
    pub scheme: String,
    pub keyval: KeyVal,
}

#[derive(Deserialize, Clone, Debug)]
pub struct KeyVal {
    pub public: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct Role {
    pub keyids: Vec<String>,
    pub threshold: u64,
}

#[derive(Deserialize, Clone, Debug)]
pub struct Root {
    #[serde(flatten)]
    pub common: Common,
    pub consistent_snapshot: bool,
    pub keys: BTreeMap<String, Key>,
    pub roles: BTreeMap<String, Role>,
}

/// A `meta` entry of the timestamp or snapshot role.
#[derive(Deserialize, Clone, Debug)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default)]
    pub length: Option<u64>,
    #[serde(default)]
    pub hashes: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Clone, Debug)]
pub struct Timestamp {
    #[serde(flatten)]
    pub common: Common,
    pub meta: BTreeMap<String, MetaFile>,
}

#[derive(Deserialize, Clone, Debug)]
pub struct Snapshot {
    #[serde(flatten)]
    pub common: Common,
    pub meta: BTreeMap<String, MetaFile>,
}

#[derive(Deserialize, Clone, Debug)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
}

#[derive(Deserialize, Clone, Debug)]
pub struct Targets {
    #[serde(flatten)]
    pub common: Common,
    pub targets: BTreeMap<String, TargetFile>,
}

impl Envelope {
    /// Parses a downloaded document (`what` names it in messages).
    pub fn parse(bytes: &[u8], what: &str) -> Result<Envelope, String> {
        #[derive(Deserialize)]
        struct Doc {
            signed: Value,
            signatures: Vec<Signature>,
        }
        let doc: Doc = serde_json::from_slice(bytes).map_err(|e| format!("{what} is not TUF metadata JSON: {e}"))?;
        let canonical = canonical::to_vec(&doc.signed).map_err(|e| format!("{what}: {e}"))?;
        Ok(Envelope { signed: doc.signed, canonical, signatures: doc.signatures })
    }

    /// The `signed` part as role `T`, after checking its `_type` and specification version.
    pub fn signed<T: serde::de::DeserializeOwned + HasCommon>(&self, kind: &str, what: &str) -> Result<T, String> {
        let doc: T = serde_json::from_value(self.signed.clone())
            .map_err(|e| format!("{what} is not valid {kind} metadata: {e}"))?;
        let common = doc.common();
        if common.kind != kind {
            return Err(format!("{what} is `{}` metadata, not `{kind}`", common.kind));
        }
        if common.spec_version.split('.').next() != Some("1") {
            return Err(format!(
                "{what} has TUF specification version {} (this client speaks 1.x)",
                common.spec_version
            ));
        }
        Ok(doc)
    }

    /// Checks that at least the threshold of `role`'s keys in `root` signed this document.
    pub fn verify(&self, root: &Root, role: &str, what: &str) -> Result<(), String> {
        let Some(spec) = root.roles.get(role) else {
            return Err(format!("the root (version {}) has no `{role}` role", root.common.version));
        };
        if spec.threshold == 0 {
            return Err(format!("the root's `{role}` role has threshold 0"));
        }
        let allowed: BTreeSet<&str> = spec.keyids.iter().map(String::as_str).collect();
        let mut good = BTreeSet::new();
        for signature in &self.signatures {
            let id = signature.keyid.as_str();
            if !allowed.contains(id) || good.contains(id) {
                continue;
            }
            let Some(key) = root.keys.get(id) else { continue };
            if key_verifies(key, &self.canonical, &signature.sig) {
                good.insert(id);
            }
        }
        if (good.len() as u64) < spec.threshold {
            return Err(format!(
                "{what} is signed by {} of the `{role}` role's keys in root version {}; {} needed",
                good.len(),
                root.common.version,
                spec.threshold
            ));
        }
        Ok(())
    }
}

/// Access to the fields every role has.
pub trait HasCommon {
    fn common(&self) -> &Common;
}

macro_rules! has_common {
    ($($t:ty),*) => {$(impl HasCommon for $t { fn common(&self) -> &Common { &self.common } })*};
}
has_common!(Root, Timestamp, Snapshot, Targets);

/// Whether `key` made `sig_hex` over `message`; false for key types this client does not know.
fn key_verifies(key: &Key, message: &[u8], sig_hex: &str) -> bool {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey};
    let Ok(sig) = hex::decode(sig_hex) else { return false };
    match (key.keytype.as_str(), key.scheme.as_str()) {
        ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => match p256_point(&key.keyval.public) {
            Some(point) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point).verify(message, &sig).is_ok(),
            None => false,
        },
        ("ed25519", "ed25519") => match hex::decode(&key.keyval.public) {
            Ok(raw) if raw.len() == 32 => UnparsedPublicKey::new(&ED25519, &raw).verify(message, &sig).is_ok(),
            _ => false,
        },
        _ => false,
    }
}

/// The uncompressed P-256 point of a PEM SubjectPublicKeyInfo, if it is one.
fn p256_point(pem_text: &str) -> Option<Vec<u8>> {
    const ID_EC_PUBLIC_KEY: const_oid::ObjectIdentifier = const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const PRIME256V1: const_oid::ObjectIdentifier = const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    let block = pem::parse(pem_text).ok().filter(|b| b.tag() == "PUBLIC KEY")?;
    let spki = spki::SubjectPublicKeyInfoRef::try_from(block.contents()).ok()?;
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY || spki.algorithm.parameters_oid().ok()? != PRIME256V1 {
        return None;
    }
    let point = spki.subject_public_key.as_bytes()?;
    (point.len() == 65 && point[0] == 0x04).then(|| point.to_vec())
}

impl Root {
    /// The key IDs and threshold of `role`, to tell whether a new root changed them.
    pub fn role_keys(&self, role: &str) -> Option<(BTreeSet<String>, u64)> {
        self.roles.get(role).map(|r| (r.keyids.iter().cloned().collect(), r.threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &[u8] = include_bytes!("public_good_root.json");

    #[test]
    fn sigstore_public_good_root_is_signed_by_its_own_threshold() {
        let env = Envelope::parse(ROOT, "root.json").unwrap();
        let root: Root = env.signed("root", "root.json").unwrap();
        assert_eq!(root.common.version, 15);
        assert!(root.consistent_snapshot);
        env.verify(&root, "root", "root.json").unwrap();
        // The same document does not pass as the timestamp role (another key, threshold 1).
        assert!(env.verify(&root, "timestamp", "root.json").is_err());
    }

    #[test]
    fn a_changed_byte_or_a_repeated_signature_does_not_count() {
        let mut doc: Value = serde_json::from_slice(ROOT).unwrap();
        doc["signed"]["version"] = 16.into();
        let env = Envelope::parse(&serde_json::to_vec(&doc).unwrap(), "root.json").unwrap();
        let root: Root = serde_json::from_slice::<Value>(ROOT)
            .map(|v| serde_json::from_value(v["signed"].clone()).unwrap())
            .unwrap();
        let err = env.verify(&root, "root", "16.root.json").unwrap_err();
        assert!(err.contains("signed by 0 of"), "{err}");

        let mut doc: Value = serde_json::from_slice(ROOT).unwrap();
        let first = doc["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| !s["sig"].as_str().unwrap().is_empty())
            .unwrap()
            .clone();
        doc["signatures"] = Value::Array(vec![first.clone(), first.clone(), first]);
        let env = Envelope::parse(&serde_json::to_vec(&doc).unwrap(), "root.json").unwrap();
        let err = env.verify(&root, "root", "root.json").unwrap_err();
        assert!(err.contains("signed by 1 of"), "{err}");
    }
}
