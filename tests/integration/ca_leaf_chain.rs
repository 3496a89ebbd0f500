//! Certificate chains whose signing certificate is itself a CA (`CA:TRUE`), which OpenSSL
//! and so `model_signing` accept and webpki refuses: modelsign validates those paths itself
//! (`sign/certs/ca_signer.rs`). The same folder, signed by `model_signing` with such a leaf,
//! must get the same answer from both tools — including when a CA on the path forbids the
//! certificates below it (`pathlen`), which OpenSSL enforces.

use std::path::{Path, PathBuf};

use crate::support::*;

/// root (with `root_constraints`) → intermediate CA → leaf marked `CA:TRUE`; returns
/// (root.pem, intermediate.pem, leaf.pem, leaf.key).
fn chain_with_ca_leaf(peers: &Peers, dir: &Path, root_constraints: &str) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let file = |name: &str| dir.join(name);
    std::fs::write(
        file("ext.cnf"),
        "[ca]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n\
         [leaf]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, digitalSignature, keyCertSign\n",
    )
    .unwrap();
    for name in ["root", "intermediate", "leaf"] {
        run_ok(
            peers
                .openssl()
                .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
                .arg(file(&format!("{name}.key"))),
        );
    }
    run_ok(
        peers
            .openssl()
            .args(["req", "-x509", "-new", "-sha256", "-days", "3650", "-key"])
            .arg(file("root.key"))
            .args(["-subj", "/CN=pathlen test root", "-addext", root_constraints])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out"])
            .arg(file("root.pem")),
    );
    let issue = |name: &str, ca: &str, extensions: &str, serial: &str| {
        let csr = file(&format!("{name}.csr"));
        run_ok(
            peers
                .openssl()
                .args(["req", "-new", "-key"])
                .arg(file(&format!("{name}.key")))
                .args(["-subj", &format!("/CN=pathlen test {name}"), "-out"])
                .arg(&csr),
        );
        run_ok(
            peers
                .openssl()
                .args(["x509", "-req", "-sha256", "-days", "3650", "-set_serial", serial, "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(file(&format!("{ca}.pem")))
                .arg("-CAkey")
                .arg(file(&format!("{ca}.key")))
                .arg("-extfile")
                .arg(file("ext.cnf"))
                .args(["-extensions", extensions, "-out"])
                .arg(file(&format!("{name}.pem"))),
        );
    };
    issue("intermediate", "root", "ca", "2");
    issue("leaf", "intermediate", "leaf", "3");
    (file("root.pem"), file("intermediate.pem"), file("leaf.pem"), file("leaf.key"))
}

/// Signs a tiny model with `model_signing sign certificate` under `dir`, then returns the
/// exit codes of `model_signing verify certificate` and `modelsign verify DIR` against `root`.
fn both_verdicts(peers: &Peers, dir: &Path, root_constraints: &str) -> (bool, Option<i32>, String) {
    let (root, intermediate, leaf, leaf_key) = chain_with_ca_leaf(peers, dir, root_constraints);
    let model = write_tiny_model(dir, "tiny", 4096);
    let sig = dir.join("model.sig");
    run_ok(
        peers
            .model_signing()
            .args(["sign", "certificate"])
            .arg(&model)
            .arg("--private_key")
            .arg(&leaf_key)
            .arg("--signing_certificate")
            .arg(&leaf)
            .arg("--certificate_chain")
            .arg(&intermediate)
            .arg("--signature")
            .arg(&sig),
    );
    let theirs = peers
        .model_signing()
        .args(["verify", "certificate"])
        .arg(&model)
        .arg("--signature")
        .arg(&sig)
        .arg("--certificate_chain")
        .arg(&root)
        .output()
        .unwrap();
    let ours = peers
        .modelsign()
        .arg("verify")
        .arg(&model)
        .arg("--signature")
        .arg(&sig)
        .arg("--certificate-chain")
        .arg(&root)
        .output()
        .unwrap();
    (theirs.status.success(), ours.status.code(), String::from_utf8_lossy(&ours.stderr).into_owned())
}

#[test]
fn a_ca_leaf_under_an_unconstrained_root_verifies_with_both_tools() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let (theirs, ours, stderr) = both_verdicts(&peers, work.path(), "basicConstraints=critical,CA:TRUE");
    assert!(theirs, "model_signing accepts a CA:TRUE signing certificate");
    assert_eq!(ours, Some(0), "modelsign agrees: {stderr}");
}

#[test]
fn a_root_whose_path_length_forbids_the_intermediate_fails_with_both_tools() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let (theirs, ours, stderr) = both_verdicts(&peers, work.path(), "basicConstraints=critical,CA:TRUE,pathlen:0");
    assert!(!theirs, "OpenSSL enforces pathlen:0 on the root");
    assert_eq!(ours, Some(3), "did not verify: {stderr}");
    assert!(stderr.contains("may not issue certificates"), "{stderr}");
}
