//! Bundle writing and verification against keys, chains and `model_signing` fixtures.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::sign::Error;
use crate::sign::certs::CertChain;
use crate::sign::certs::parse_pem_certificates;
use crate::sign::keys::Algorithm;
use crate::sign::keys::SigningKey;
use crate::sign::oms::{self, Resource};
use crate::sign::statement::Statement;
use serde_json::Value;

pub(crate) fn fixture(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sign").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn statement() -> Statement {
    let resources = vec![Resource { name: "w.bin".into(), digest: crate::digest::Digest::of(b"w") }];
    oms::build_statement("m", &resources, &[".git".into()], false)
}

fn edit(bundle: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bundle).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn key_signed() -> (SigningKey, Vec<u8>) {
    let key = SigningKey::generate(Algorithm::P256).unwrap();
    let bundle = Signer::from_key(SigningKey::from_pem(&key.to_pkcs8_pem(None).unwrap(), None).unwrap())
        .sign_statement(&statement())
        .unwrap();
    (key, bundle)
}

fn trusting(key: &SigningKey) -> TrustPolicy {
    TrustPolicy::new().trust_key(key.public_key().clone())
}

#[test]
fn writes_what_model_signing_writes() {
    let (key, bundle) = key_signed();
    let text = String::from_utf8(bundle).unwrap();
    assert!(!text.contains('\n'));
    let prefix = format!(
        r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{{"publicKey":{{"hint":"{}"}},"tlogEntries":[]}},"dsseEnvelope":{{"payload":""#,
        key.public_key().model_signing_hint()
    );
    assert!(text.starts_with(&prefix), "{text}");
    assert!(text.contains(r#""payloadType":"application/vnd.in-toto+json","signatures":[{"sig":""#));
    assert!(text.ends_with(r#","keyid":""}]}}"#));
}

#[test]
fn round_trips_for_every_algorithm_and_hint_style() {
    for alg in Algorithm::ALL {
        for hint in [HintStyle::ModelSigning, HintStyle::Cosign, HintStyle::None] {
            let key = SigningKey::generate(alg).unwrap();
            let policy = trusting(&key);
            let bundle = Signer::from_key(key).hint_style(hint).sign_statement(&statement()).unwrap();
            let verified = verify_bundle(&bundle, &policy).unwrap();
            assert_eq!(verified.statement(), &statement());
            assert!(matches!(verified.verified_by(), VerifiedBy::Key(k) if k == &policy.keys()[0]));
        }
    }
}

#[test]
fn attack_flipped_payload_byte() {
    let (key, bundle) = key_signed();
    let tampered = edit(&bundle, |v| {
        let mut payload = STANDARD.decode(v["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
        let i = payload.len() / 2;
        payload[i] ^= 1;
        v["dsseEnvelope"]["payload"] = Value::String(STANDARD.encode(payload));
    });
    assert!(matches!(verify_bundle(&tampered, &trusting(&key)), Err(Error::BadSignature(_))));
}

#[test]
fn attack_signature_over_a_different_payload() {
    let (key, bundle) = key_signed();
    let signer = Signer::from_key(SigningKey::from_pem(&key.to_pkcs8_pem(None).unwrap(), None).unwrap());
    let other = signer
        .sign_payload(br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"x","predicate":{}}"#)
        .unwrap();
    let other: Value = serde_json::from_slice(&other).unwrap();
    let spliced = edit(&bundle, |v| v["dsseEnvelope"]["signatures"] = other["dsseEnvelope"]["signatures"].clone());
    assert!(matches!(verify_bundle(&spliced, &trusting(&key)), Err(Error::BadSignature(_))));
    // And the other way round: the other payload with this bundle's signature.
    let spliced = edit(&bundle, |v| v["dsseEnvelope"]["payload"] = other["dsseEnvelope"]["payload"].clone());
    assert!(matches!(verify_bundle(&spliced, &trusting(&key)), Err(Error::BadSignature(_))));
}

#[test]
fn attack_untrusted_key_even_with_a_trusted_hint() {
    let (key, bundle) = key_signed();
    let trusted = SigningKey::generate(Algorithm::P256).unwrap();
    let err = verify_bundle(&bundle, &trusting(&trusted)).unwrap_err();
    assert!(matches!(err, Error::BadSignature(ref m) if m.contains("signed by another key")), "{err}");
    // The attacker writes the trusted key's hint: still refused.
    let lying = edit(&bundle, |v| {
        v["verificationMaterial"]["publicKey"]["hint"] = Value::String(trusted.public_key().model_signing_hint())
    });
    assert!(matches!(verify_bundle(&lying, &trusting(&trusted)), Err(Error::BadSignature(_))));
    // A wrong hint does not stop a trusted key from verifying.
    let wrong_hint = edit(&bundle, |v| v["verificationMaterial"]["publicKey"]["hint"] = Value::String("00".into()));
    verify_bundle(
        &wrong_hint,
        &TrustPolicy::new().trust_key(trusted.public_key().clone()).trust_key(key.public_key().clone()),
    )
    .unwrap();
    assert!(matches!(verify_bundle(&bundle, &TrustPolicy::new()), Err(Error::NoTrust)));
}

#[test]
fn fails_closed_on_envelope_shape() {
    let (key, bundle) = key_signed();
    let policy = trusting(&key);
    type Expect = fn(&Error) -> bool;
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        (edit(&bundle, |v| v["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.4+json".into()), |e| {
            matches!(e, Error::UnsupportedMediaType(_))
        }),
        (edit(&bundle, |v| v.as_object_mut().unwrap().remove("mediaType").map(|_| ()).unwrap()), |e| {
            matches!(e, Error::MalformedBundle(_))
        }),
        (edit(&bundle, |v| v["dsseEnvelope"]["payloadType"] = "text/plain".into()), |e| {
            matches!(e, Error::PayloadType(_))
        }),
        (edit(&bundle, |v| v["dsseEnvelope"]["signatures"] = Value::Array(vec![])), |e| {
            matches!(e, Error::SignatureCount(0))
        }),
        (
            edit(&bundle, |v| {
                let s = v["dsseEnvelope"]["signatures"][0].clone();
                v["dsseEnvelope"]["signatures"] = Value::Array(vec![s.clone(), s]);
            }),
            |e| matches!(e, Error::SignatureCount(2)),
        ),
        (edit(&bundle, |v| v["dsseEnvelope"]["payload"] = "!!!not base64!!!".into()), |e| {
            matches!(e, Error::MalformedBundle(_))
        }),
        (edit(&bundle, |v| v["dsseEnvelope"]["signatures"][0]["sig"] = "%%%".into()), |e| {
            matches!(e, Error::MalformedBundle(_))
        }),
        (edit(&bundle, |v| v["messageSignature"] = serde_json::json!({})), |e| matches!(e, Error::MalformedBundle(_))),
        (
            edit(&bundle, |v| {
                v["verificationMaterial"]["x509CertificateChain"] = serde_json::json!({"certificates": []});
            }),
            |e| matches!(e, Error::MalformedBundle(_)),
        ),
        (b"not json".to_vec(), |e| matches!(e, Error::MalformedBundle(_))),
    ];
    for (i, (bytes, expected)) in cases.into_iter().enumerate() {
        let err = verify_bundle(&bytes, &policy).unwrap_err();
        assert!(expected(&err), "case {i}: {err}");
    }
}

#[test]
fn signed_garbage_is_not_a_statement() {
    let key = SigningKey::generate(Algorithm::P256).unwrap();
    let policy = trusting(&key);
    let bundle = Signer::from_key(key).sign_payload(b"[1,2,3]").unwrap();
    assert!(matches!(verify_bundle(&bundle, &policy), Err(Error::InvalidStatement(_))));
}

fn leaf_signer(name: &str, chain: &[&str]) -> Signer {
    let key = SigningKey::from_pem(&fixture(&format!("certs/{name}.key")), None).unwrap();
    let chain_pems: Vec<String> = chain.iter().map(|c| fixture(&format!("certs/{c}.pem"))).collect();
    let chain_refs: Vec<&str> = chain_pems.iter().map(String::as_str).collect();
    let chain = CertChain::from_pems(&fixture(&format!("certs/{name}.pem")), &chain_refs).unwrap();
    Signer::with_certificates(key, chain).unwrap()
}

fn trusting_roots(names: &[&str]) -> TrustPolicy {
    names.iter().fold(TrustPolicy::new(), |p, n| {
        p.trust_certificates(parse_pem_certificates(&fixture(&format!("certs/{n}.pem")), n).unwrap())
    })
}

#[test]
fn certificate_chain_round_trip() {
    let bundle = leaf_signer("leaf", &["intermediate"]).sign_statement(&statement()).unwrap();
    let v: Value = serde_json::from_slice(&bundle).unwrap();
    assert_eq!(v["verificationMaterial"]["x509CertificateChain"]["certificates"].as_array().unwrap().len(), 2);
    assert!(v["verificationMaterial"].get("publicKey").is_none());
    let verified = verify_bundle(&bundle, &trusting_roots(&["root"])).unwrap();
    assert!(
        matches!(verified.verified_by(), VerifiedBy::Certificate(c) if c.leaf().subject() == "CN=modelsign test signer")
    );
    // EKU codeSigning without key usage is enough.
    let bundle = leaf_signer("leaf-eku-only", &["intermediate"]).sign_statement(&statement()).unwrap();
    verify_bundle(&bundle, &trusting_roots(&["root"])).unwrap();
    // The intermediate may come from the trusted set instead of the bundle.
    let bundle = leaf_signer("leaf", &[]).sign_statement(&statement()).unwrap();
    verify_bundle(&bundle, &trusting_roots(&["root", "intermediate"])).unwrap();
}

#[test]
fn attack_chain_from_another_root() {
    let bundle = leaf_signer("other-leaf", &[]).sign_statement(&statement()).unwrap();
    assert!(matches!(verify_bundle(&bundle, &trusting_roots(&["root"])), Err(Error::UntrustedChain(_))));
    // Trusting only the intermediate (not self-signed) is not enough, as with OpenSSL.
    let bundle = leaf_signer("leaf", &["intermediate"]).sign_statement(&statement()).unwrap();
    assert!(matches!(verify_bundle(&bundle, &trusting_roots(&["intermediate"])), Err(Error::UntrustedChain(_))));
    // A chain without its intermediate does not reach the root.
    let bundle = leaf_signer("leaf", &[]).sign_statement(&statement()).unwrap();
    assert!(matches!(verify_bundle(&bundle, &trusting_roots(&["root"])), Err(Error::UntrustedChain(_))));
}

#[test]
fn attack_intermediate_expired_before_the_leaf_was_issued() {
    let bundle = leaf_signer("leaf-of-expired", &["expired-intermediate"]).sign_statement(&statement()).unwrap();
    let err = verify_bundle(&bundle, &trusting_roots(&["root"])).unwrap_err();
    assert!(matches!(err, Error::UntrustedChain(ref m) if m.contains("expired")), "{err}");
}

#[test]
fn attack_certificate_that_may_not_sign() {
    let bundle = leaf_signer("leaf-no-signing", &["intermediate"]).sign_statement(&statement()).unwrap();
    assert!(matches!(verify_bundle(&bundle, &trusting_roots(&["root"])), Err(Error::CertificateUsage)));
}

#[test]
fn attack_swapped_leaf_certificate() {
    // Signed by the no-signing leaf's key, but the bundle shows the good leaf.
    let bundle = leaf_signer("leaf-no-signing", &["intermediate"]).sign_statement(&statement()).unwrap();
    let good = leaf_signer("leaf", &["intermediate"]).sign_statement(&statement()).unwrap();
    let good: Value = serde_json::from_slice(&good).unwrap();
    let swapped = edit(&bundle, |v| v["verificationMaterial"] = good["verificationMaterial"].clone());
    assert!(matches!(verify_bundle(&swapped, &trusting_roots(&["root"])), Err(Error::BadSignature(_))));
}

#[test]
fn certificate_must_match_the_key() {
    let key = SigningKey::generate(Algorithm::P256).unwrap();
    let chain = CertChain::from_pems(&fixture("certs/leaf.pem"), &[]).unwrap();
    assert!(matches!(Signer::with_certificates(key, chain), Err(Error::CertificateKeyMismatch)));
}

#[test]
fn a_trusted_key_verifies_a_certificate_bundle() {
    // `model_signing verify key` accepts a certificate-signed bundle if the key matches.
    let bundle = leaf_signer("leaf", &["intermediate"]).sign_statement(&statement()).unwrap();
    let key = SigningKey::from_pem(&fixture("certs/leaf.key"), None).unwrap();
    let verified = verify_bundle(&bundle, &trusting(&key)).unwrap();
    assert!(matches!(verified.verified_by(), VerifiedBy::Key(_)));
    // A key-signed bundle and only roots trusted: refused.
    let (_, bundle) = key_signed();
    assert!(matches!(verify_bundle(&bundle, &trusting_roots(&["root"])), Err(Error::BadSignature(_))));
}
