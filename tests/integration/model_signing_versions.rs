//! Every `model.sig` that `model_signing` 1.1.1 accepts verifies with `modelsign verify`:
//! the signed folders that sigstore/model-transparency publishes for each release (0.2.0,
//! 0.3.1, 1.0.0, 1.0.1, 1.1.0) and kind (elliptic key, certificate chain, keyless Sigstore),
//! vendored in `testdata/model-signing-versions/`. Where `model_signing` verifies offline (key
//! and certificate), both tools run on the same inputs and must agree, on the intact folder
//! and on a tampered copy. Keyless signatures are verified offline against the built-in
//! public-good Sigstore root, also through an OCI layout (`push`, `verify REF`, `pull`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

const IDENTITY: &str = "stefanb@us.ibm.com";
const ISSUER: &str = "https://sigstore.verify.ibm.com/oauth2";

fn versions_dir() -> PathBuf {
    repo_root().join("testdata/model-signing-versions")
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Key,
    Certificate,
    Sigstore,
}

/// One published signed model: the folder (or single file) and its signature.
struct Fixture {
    name: String,
    kind: Kind,
    /// The model: the folder, or `signme-1` for the single-file signatures.
    model: PathBuf,
    signature: PathBuf,
    /// `ignore-me` beside the model: not signed, left out with `--ignore-paths`.
    ignore: Option<PathBuf>,
}

fn fixtures_in(root: &Path) -> Vec<Fixture> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('v') && root.join(n).is_dir())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let dir = root.join(&name);
            let kind = if name.ends_with("-elliptic-key") {
                Kind::Key
            } else if name.ends_with("-certificate") {
                Kind::Certificate
            } else {
                assert!(name.ends_with("-sigstore"), "{name}");
                Kind::Sigstore
            };
            let single_file = !dir.join("signme-2").exists();
            Fixture {
                kind,
                model: if single_file { dir.join("signme-1") } else { dir.clone() },
                signature: dir.join("model.sig"),
                ignore: Some(dir.join("ignore-me")).filter(|p| p.exists()),
                name,
            }
        })
        .collect()
}

fn keys() -> PathBuf {
    versions_dir().join("keys/certificate")
}

fn modelsign_verify(f: &Fixture) -> Command {
    let mut cmd = modelsign();
    cmd.arg("verify").arg(&f.model).arg("--signature").arg(&f.signature);
    if let Some(ignore) = &f.ignore {
        cmd.arg("--ignore-paths").arg(ignore);
    }
    match f.kind {
        Kind::Key => cmd.arg("--key").arg(keys().join("signing-key-pub.pem")),
        Kind::Certificate => cmd.arg("--certificate-chain").arg(keys().join("ca-cert.pem")),
        Kind::Sigstore => cmd.args(["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER]),
    };
    cmd
}

fn model_signing_verify(peers: &Peers, f: &Fixture) -> Command {
    let mut cmd = peers.model_signing();
    match f.kind {
        Kind::Key => cmd.args(["verify", "key", "--public_key"]).arg(keys().join("signing-key-pub.pem")),
        Kind::Certificate => cmd.args(["verify", "certificate", "--certificate_chain"]).arg(keys().join("ca-cert.pem")),
        Kind::Sigstore => unreachable!("model_signing verify sigstore needs the network"),
    };
    cmd.arg("--signature").arg(&f.signature);
    if let Some(ignore) = &f.ignore {
        cmd.arg("--ignore-paths").arg(ignore);
    }
    cmd.arg(&f.model);
    cmd
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A copy of every fixture with one signed byte changed in `signme-1`.
fn tampered_copy(tmp: &Path) -> Vec<Fixture> {
    for f in fixtures_in(&versions_dir()) {
        let dir = tmp.join(&f.name);
        copy_dir(&versions_dir().join(&f.name), &dir);
        let mut bytes = std::fs::read(dir.join("signme-1")).unwrap();
        bytes[0] ^= 1;
        std::fs::write(dir.join("signme-1"), bytes).unwrap();
    }
    fixtures_in(tmp)
}

#[test]
fn every_published_model_sig_verifies() {
    let fixtures = fixtures_in(&versions_dir());
    assert_eq!(fixtures.len(), 13, "the 13 published signatures");
    for f in &fixtures {
        let out = modelsign_verify(f).output().unwrap();
        assert!(out.status.success(), "{}: {}", f.name, stderr_text(&out));
    }
}

#[test]
fn every_tampered_published_model_fails() {
    let tmp = tempfile::tempdir().unwrap();
    for f in &tampered_copy(tmp.path()) {
        let out = modelsign_verify(f).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{}: {}", f.name, stderr_text(&out));
        let line = one_error_line(&out);
        assert!(line.contains("hash mismatch for `"), "{}: {line}", f.name);
    }
}

#[test]
fn same_result_as_model_signing_on_published_signatures() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let tmp = tempfile::tempdir().unwrap();
    // model_signing is a Python program (about 2 s to start): run all of them at once.
    let mut runs = Vec::new();
    for (fixtures, intact) in [(fixtures_in(&versions_dir()), true), (tampered_copy(tmp.path()), false)] {
        for f in fixtures.into_iter().filter(|f| f.kind != Kind::Sigstore) {
            let theirs = model_signing_verify(&peers, &f)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            runs.push((f, intact, theirs));
        }
    }
    assert_eq!(runs.len(), 18, "9 key and certificate signatures, intact and tampered");
    for (f, intact, theirs) in runs {
        let theirs = theirs.wait_with_output().unwrap();
        let ours = modelsign_verify(&f).output().unwrap();
        assert_eq!(
            theirs.status.success(),
            intact,
            "model_signing on {} (intact: {intact}): {}",
            f.name,
            stderr_text(&theirs)
        );
        assert_eq!(ours.status.success(), intact, "modelsign on {} (intact: {intact}): {}", f.name, stderr_text(&ours));
    }
}

#[test]
fn attack_keyless_model_sig_for_another_identity_or_issuer() {
    let f = fixtures_in(&versions_dir()).into_iter().find(|f| f.name == "v1.1.0-sigstore").unwrap();
    for (id_flag, id, iss_flag, iss) in [
        ("--certificate-identity", "eve@us.ibm.com", "--certificate-oidc-issuer", ISSUER),
        ("--certificate-identity", IDENTITY, "--certificate-oidc-issuer", "https://accounts.google.com"),
        // Regexps that match only part of the identity or issuer.
        ("--certificate-identity-regexp", "stefanb@", "--certificate-oidc-issuer", ISSUER),
        ("--certificate-identity", IDENTITY, "--certificate-oidc-issuer-regexp", r"https://sigstore\.verify\.ibm\.com"),
    ] {
        let mut cmd = modelsign();
        cmd.arg("verify").arg(&f.model).arg("--ignore-paths").arg(f.ignore.as_ref().unwrap());
        let out = cmd.args([id_flag, id, iss_flag, iss]).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{id} {iss}: {}", stderr_text(&out));
        assert!(one_error_line(&out).contains("certificate identity not trusted"), "{}", stderr_text(&out));
    }
    // The whole identity as a regexp is accepted.
    let mut cmd = modelsign();
    cmd.arg("verify").arg(&f.model).arg("--ignore-paths").arg(f.ignore.as_ref().unwrap());
    run_ok(cmd.args(["--certificate-identity-regexp", r"[a-z]+@us\.ibm\.com", "--certificate-oidc-issuer", ISSUER]));
}

/// Trust flags for a fixture's kind.
fn trust_flags(kind: Kind) -> Vec<String> {
    let path = |p: &str| keys().join(p).display().to_string();
    match kind {
        Kind::Key => vec!["--key".into(), path("signing-key-pub.pem")],
        Kind::Certificate => vec!["--certificate-chain".into(), path("ca-cert.pem")],
        Kind::Sigstore => {
            ["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER].map(String::from).to_vec()
        }
    }
}

/// Every published folder signature, pushed with its files (`push` attaches a `model.sig` it
/// finds), verifies as a reference too: the same rule applies to what a registry holds.
#[test]
fn every_published_folder_signature_verifies_through_an_oci_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for f in fixtures_in(&versions_dir()).iter().filter(|f| f.model.is_dir()) {
        let model = tmp.path().join(&f.name);
        std::fs::create_dir_all(&model).unwrap();
        for name in ["signme-1", "signme-2", "model.sig"] {
            std::fs::copy(f.model.join(name), model.join(name)).unwrap();
        }
        let layout = format!("oci:{}:v1", tmp.path().join(format!("{}-layout", f.name)).display());
        run_ok(modelsign().args(["push", &layout]).arg(&model));
        let out = modelsign().args(["verify", "--offline", &layout]).args(trust_flags(f.kind)).output().unwrap();
        assert!(out.status.success(), "{}: {}", f.name, stderr_text(&out));
        checked += 1;
    }
    assert_eq!(checked, 11);
}

/// A keyless `model.sig` pushed with its model to an OCI layout: `verify REF` and `pull`
/// take the identity flags and verify offline against the built-in root.
#[test]
fn keyless_signature_through_an_oci_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    let src = versions_dir().join("v1.1.0-sigstore");
    for name in ["signme-1", "signme-2", "model.sig"] {
        std::fs::copy(src.join(name), model.join(name)).unwrap();
    }
    let layout = format!("oci:{}:v1", tmp.path().join("layout").display());
    run_ok(modelsign().args(["push", &layout]).arg(&model));
    let keyless = ["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER];

    let out = run_ok(modelsign().args(["verify", "--offline", &layout, "--output", "json"]).args(keyless));
    let report = stdout_json(&out);
    assert_eq!(report["verified"], true);
    let signer = report["signatures"]["checks"][0]["signer"].as_str().unwrap_or_default().to_string();
    assert!(signer.contains(IDENTITY), "{report}");

    // Another identity: no trusted signature, exit 3.
    let out = modelsign()
        .args([
            "verify",
            "--offline",
            &layout,
            "--certificate-identity",
            "eve@us.ibm.com",
            "--certificate-oidc-issuer",
            ISSUER,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));

    // pull verifies first, then writes the files and model.sig.
    let dest = tmp.path().join("pulled");
    run_ok(modelsign().args(["pull", &layout, "-o"]).arg(&dest).args(keyless));
    assert_eq!(std::fs::read(dest.join("signme-2")).unwrap(), std::fs::read(src.join("signme-2")).unwrap());
    assert_eq!(std::fs::read(dest.join("model.sig")).unwrap(), std::fs::read(src.join("model.sig")).unwrap());
    // And refuses to write anything for an untrusted identity.
    let dest = tmp.path().join("refused");
    let out = modelsign()
        .args(["pull", &layout, "-o"])
        .arg(&dest)
        .args(["--certificate-identity-regexp", "stefanb", "--certificate-oidc-issuer", ISSUER])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    assert!(files_under(&dest).is_empty(), "{:?}", files_under(&dest).keys());

    // copy gates on the keyless signer too: the right one copies, another copies nothing.
    let copied = format!("oci:{}:v1", tmp.path().join("copied").display());
    run_ok(modelsign().args(["copy", &layout, &copied]).args(keyless));
    run_ok(modelsign().args(["verify", "--offline", &copied]).args(keyless));
    let refused = tmp.path().join("copy-refused");
    let out = modelsign()
        .args(["copy", &layout, &format!("oci:{}:v1", refused.display())])
        .args(["--certificate-identity", "eve@us.ibm.com", "--certificate-oidc-issuer", ISSUER])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    assert!(!refused.exists(), "nothing is written for an untrusted signer");
}
