//! The signing core against the real OpenSSF `model_signing` 1.1.1: folders signed by
//! modelsign verify with `model_signing verify key|certificate`, and folders signed by
//! `model_signing sign key|certificate` verify with modelsign, for P-256, P-384, P-521 and
//! a certificate chain, with names that exercise spaces, non-ASCII and path-component order.

use std::fs;
use std::path::{Path, PathBuf};

use modelsign::folder::ScanOptions;
use modelsign::ops::keygen::write_key_pair;
use modelsign::sign::bundle::TrustPolicy;
use modelsign::sign::certs::{CertChain, parse_pem_certificates};
use modelsign::sign::keys::{Algorithm, PublicKey, SigningKey};
use modelsign::sign::local::{sign_folder, verify_folder};
use modelsign::sign::{Error as SignError, Signer};

use crate::support::*;

fn certs_dir() -> PathBuf {
    repo_root().join("testdata/sign/certs")
}

/// The tiny model plus names that sort differently by string and by path component, a
/// space, non-ASCII, and git files that both tools leave out.
fn tricky_model(parent: &Path) -> PathBuf {
    let root = write_tiny_model(parent, "tiny model", 4096);
    fs::create_dir_all(root.join("a")).unwrap();
    fs::create_dir_all(root.join("sub dir")).unwrap();
    fs::create_dir_all(root.join(".git")).unwrap();
    fs::write(root.join("a/b.txt"), "1").unwrap();
    fs::write(root.join("a-b.txt"), "2").unwrap();
    fs::write(root.join("a.txt"), "3").unwrap();
    fs::write(root.join("sub dir/poids é ü.bin"), "weights").unwrap();
    fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    fs::write(root.join(".gitattributes"), "*.bin filter=lfs\n").unwrap();
    root
}

fn key_policy(public_pem: &Path) -> TrustPolicy {
    TrustPolicy::new().trust_key(PublicKey::from_pem(&fs::read_to_string(public_pem).unwrap()).unwrap())
}

#[test]
fn model_signing_verifies_our_key_signatures() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let dir = tempfile::tempdir().unwrap();
    let model = tricky_model(dir.path());
    for algorithm in [Algorithm::P256, Algorithm::P384, Algorithm::P521] {
        // A key pair from our keygen; the signature inside the model (the default).
        let files = write_key_pair(&dir.path().join(algorithm.name()), algorithm, None).unwrap();
        let key = SigningKey::from_pem(&fs::read_to_string(&files.private_key).unwrap(), None).unwrap();
        let signed = sign_folder(&model, &Signer::from_key(key), None, &ScanOptions::default()).unwrap();
        assert_eq!(signed.signature_path, model.join("model.sig"));
        run_ok(
            peers
                .model_signing()
                .args(["verify", "key"])
                .arg(&model)
                .arg("--signature")
                .arg(&signed.signature_path)
                .arg("--public_key")
                .arg(&files.public_key),
        );
        // And model_signing reads our PKCS#8 private key: its signature verifies with us.
        let theirs = dir.path().join(format!("theirs-{algorithm}.sig"));
        run_ok(
            peers
                .model_signing()
                .args(["sign", "key"])
                .arg(&model)
                .arg("--private_key")
                .arg(&files.private_key)
                .arg("--signature")
                .arg(&theirs),
        );
        verify_folder(&model, Some(&theirs), &key_policy(&files.public_key)).unwrap();
    }
    // Sanity: model_signing notices a change in what we signed.
    fs::write(model.join("a-b.txt"), "changed").unwrap();
    let out = run_fail(
        peers
            .model_signing()
            .args(["verify", "key"])
            .arg(&model)
            .arg("--signature")
            .arg(model.join("model.sig"))
            .arg("--public_key")
            .arg(dir.path().join("p521.pub")),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("a-b.txt")
            || String::from_utf8_lossy(&out.stderr).contains("a-b.txt")
    );
}

#[test]
fn model_signing_verifies_our_certificate_signature() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let dir = tempfile::tempdir().unwrap();
    let model = tricky_model(dir.path());
    let sig = dir.path().join("model.sig");
    let key = SigningKey::from_pem(&fs::read_to_string(certs_dir().join("leaf.key")).unwrap(), None).unwrap();
    let chain = CertChain::from_pems(
        &fs::read_to_string(certs_dir().join("leaf.pem")).unwrap(),
        &[&fs::read_to_string(certs_dir().join("intermediate.pem")).unwrap()],
    )
    .unwrap();
    sign_folder(&model, &Signer::with_certificates(key, chain).unwrap(), Some(&sig), &ScanOptions::default()).unwrap();
    run_ok(
        peers
            .model_signing()
            .args(["verify", "certificate"])
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--certificate_chain")
            .arg(certs_dir().join("root.pem")),
    );
    run_fail(
        peers
            .model_signing()
            .args(["verify", "certificate"])
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--certificate_chain")
            .arg(certs_dir().join("other-root.pem")),
    );
}

#[test]
fn we_verify_fresh_model_signing_signatures() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let dir = tempfile::tempdir().unwrap();
    let model = tricky_model(dir.path());
    for curve in ["P-256", "P-384", "P-521"] {
        let (key, public) = openssl_ec_key(&peers, dir.path(), curve, curve);
        let sig = dir.path().join(format!("{curve}.sig"));
        run_ok(
            peers
                .model_signing()
                .args(["sign", "key"])
                .arg(&model)
                .arg("--private_key")
                .arg(&key)
                .arg("--signature")
                .arg(&sig),
        );
        let verified = verify_folder(&model, Some(&sig), &key_policy(&public)).unwrap();
        let names: Vec<&str> = verified.manifest.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "a/b.txt",
                "a-b.txt",
                "a.txt",
                "config.json",
                "extra/empty.txt",
                "extra/notes.txt",
                "model.safetensors",
                "sub dir/poids é ü.bin",
                "tokenizer.json"
            ],
            "{curve}"
        );
    }
    let sig = dir.path().join("certificate.sig");
    run_ok(
        peers
            .model_signing()
            .args(["sign", "certificate"])
            .arg(&model)
            .arg("--private_key")
            .arg(certs_dir().join("leaf.key"))
            .arg("--signing_certificate")
            .arg(certs_dir().join("leaf.pem"))
            .arg("--certificate_chain")
            .arg(certs_dir().join("intermediate.pem"))
            .arg("--signature")
            .arg(&sig),
    );
    let roots = |name: &str| {
        TrustPolicy::new().trust_certificates(
            parse_pem_certificates(&fs::read_to_string(certs_dir().join(name)).unwrap(), name).unwrap(),
        )
    };
    verify_folder(&model, Some(&sig), &roots("root.pem")).unwrap();
    let err = verify_folder(&model, Some(&sig), &roots("other-root.pem")).unwrap_err();
    assert!(matches!(err, modelsign::Error::Sign(SignError::UntrustedChain(_))), "{err}");
    // Tampering after model_signing signed: we name the file.
    fs::write(model.join("sub dir/poids é ü.bin"), "poison").unwrap();
    let err = verify_folder(&model, Some(&sig), &roots("root.pem")).unwrap_err();
    assert!(
        matches!(&err, modelsign::Error::Sign(SignError::HashMismatch { path, .. }) if path == "sub dir/poids é ü.bin"),
        "{err}"
    );
}

#[test]
fn openssl_reads_our_keys_and_hints_match() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let dir = tempfile::tempdir().unwrap();
    for algorithm in Algorithm::ALL {
        for password in [None, Some("s3cret")] {
            let prefix = dir.path().join(format!("{algorithm}-{}", password.is_some()));
            let files = write_key_pair(&prefix, algorithm, password).unwrap();
            let mut cmd = peers.openssl();
            cmd.args(["pkey", "-pubout", "-in"]).arg(&files.private_key);
            if let Some(password) = password {
                cmd.arg("-passin").arg(format!("pass:{password}"));
                run_fail(
                    peers.openssl().args(["pkey", "-noout", "-passin", "pass:wrong", "-in"]).arg(&files.private_key),
                );
            }
            // openssl derives the same public key PEM, byte for byte (the model_signing hint).
            assert_eq!(
                run_stdout(&mut cmd),
                fs::read_to_string(&files.public_key).unwrap(),
                "{algorithm} {password:?}"
            );
        }
    }
}
