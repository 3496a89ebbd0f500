//! Hardware keys (issue 7): `--key 'pkcs11:…'` signs through PKCS#11 with a SoftHSM2 token
//! whose keys were generated inside it (P-256 and P-384). What it signs verifies with
//! modelsign, `model_signing verify key` (folders) and `cosign verify-attestation`
//! (references) given the token's exported public key; `attest` and `sign --component`
//! take the same URIs. A missing token, object or module, or a wrong PIN, each fails with
//! one clear line, exit 1, and leaves no signature behind.

use std::path::Path;

use serde_json::Value;

use crate::support::softhsm::{SOFTHSM_MODULE, SoftHsm};
use crate::support::*;

const PIN: &str = "4711-pin";

const CARD: &str = "name: tiny\nversion: \"1.0\"\ndeveloper: Vision team\npublisher: Acme Models\n\
description: A tiny model for tests.\nsecurity:\n  sensitive-data: none\n  considerations: reviewed\n";

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn modelsign_with(peers: &Peers, hsm: &SoftHsm) -> std::process::Command {
    let mut cmd = peers.modelsign();
    cmd.env("SOFTHSM2_CONF", hsm.conf()).env_remove("MODELSIGN_PKCS11_PIN");
    cmd
}

#[test]
fn pkcs11_keys_sign_folders_that_model_signing_verifies() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let hsm = SoftHsm::new("modelsign-folders", PIN);
    let work = tempfile::tempdir().unwrap();
    for (object, id, curve) in [("release-p256", "01", "prime256v1"), ("release-p384", "02", "secp384r1")] {
        let public = hsm.generate_ec_key(object, id, curve, work.path());
        let model = write_tiny_model(work.path(), object, 10_000);
        let out = run_ok(modelsign_with(&peers, &hsm).arg("sign").arg(&model).args(["--key", &hsm.uri(object)]));
        assert!(model.join("model.sig").is_file(), "{}", stderr_text(&out));
        run_ok(peers.modelsign().arg("verify").arg(&model).arg("--key").arg(&public));
        run_ok(
            peers
                .model_signing()
                .args(["verify", "key"])
                .arg(&model)
                .arg("--signature")
                .arg(model.join("model.sig"))
                .arg("--public_key")
                .arg(&public),
        );
        // The signature is the token's key's and nobody else's.
        let (_, other) = keygen(work.path(), &format!("other-{object}"), "p256");
        run_fail(peers.modelsign().arg("verify").arg(&model).arg("--key").arg(&other));
    }
}

#[test]
fn pkcs11_keys_sign_references_attest_and_components() {
    let tb = require_testbed!();
    let registry = Registry::start(RegistryKind::Gcr);
    let peers = Peers::new(&tb);
    let hsm = SoftHsm::new("modelsign-refs", PIN);
    let work = tempfile::tempdir().unwrap();
    let p384 = hsm.generate_ec_key("ci-p384", "0a", "secp384r1", work.path());
    let p256 = hsm.generate_ec_key("ci-p256", "0b", "prime256v1", work.path());
    let model = write_tiny_model(work.path(), "tiny", 20_000);
    let tagged = format!("{}:v1", registry.reference("models/tiny"));
    let digest = run_stdout(peers.modelsign().args(["--plain-http", "push", &tagged]).arg(&model)).trim().to_string();
    let pinned = format!("{}@{digest}", registry.reference("models/tiny"));

    // The PIN from a file (pin-source), the key selected by its id as well as its label.
    // P-256: cosign 2.5 hashes every ECDSA signature with SHA-256 (docs/FORMAT.md §6).
    let pin_file = work.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let uri = format!(
        "pkcs11:token={};object=ci-p256;id=%0b?module-path={SOFTHSM_MODULE}&pin-source=file:{}",
        hsm.label,
        pin_file.display()
    );
    let signed = run_stdout(modelsign_with(&peers, &hsm).args(["--plain-http", "sign", &tagged, "--key", &uri]));
    assert_eq!(signed.lines().count(), 2, "{signed}");
    let trusted_root = empty_trusted_root(work.path());
    run_ok(&mut cosign_verify_attestation(&peers, &trusted_root, &p256, MANIFEST_PREDICATE, &pinned));
    let report = json(&run_ok(
        peers.modelsign().args(["--plain-http", "verify", "--output", "json", &tagged, "--key"]).arg(&p256),
    ));
    assert_eq!(report["verified"], true, "{report:#}");
    run_fail(peers.modelsign().args(["--plain-http", "verify", &tagged, "--key"]).arg(&p384));

    // A component signature with the P-384 key; the PIN from the environment.
    let uri = format!("pkcs11:token={};object=ci-p384?module-path={SOFTHSM_MODULE}", hsm.label);
    run_ok(modelsign_with(&peers, &hsm).env("MODELSIGN_PKCS11_PIN", PIN).args([
        "--plain-http",
        "sign",
        &pinned,
        "--component",
        "model.safetensors",
        "--key",
        &uri,
    ]));
    let tree = json(&run_ok(
        peers.modelsign().args(["--plain-http", "discover", &pinned, "--output", "json", "--key"]).arg(&p384),
    ));
    let verified: Vec<&Value> =
        tree["signatures"].as_array().unwrap().iter().filter(|s| s["verified"] == true).collect();
    assert_eq!(verified.len(), 1, "{tree:#}");
    assert_eq!(verified[0]["predicateType"], "https://modelsign.dev/components/v1", "{tree:#}");

    // A model card attested with the token's key; card show trusts that key only.
    let card = work.path().join("card.yaml");
    std::fs::write(&card, CARD).unwrap();
    run_ok(
        modelsign_with(&peers, &hsm)
            .args(["--plain-http", "attest", &pinned, "--model-card"])
            .arg(&card)
            .args(["--key", &hsm.uri("ci-p256")]),
    );
    let shown = json(&run_ok(
        peers.modelsign().args(["--plain-http", "card", "show", &pinned, "--output", "json", "--key"]).arg(&p256),
    ));
    assert!(shown.to_string().contains("Acme Models"), "{shown:#}");
}

/// A layout with the tiny model pushed: (layout reference, model folder).
fn layout_model(peers: &Peers, work: &Path) -> (String, std::path::PathBuf) {
    let model = write_tiny_model(work, "tiny", 5_000);
    let reference = format!("oci:{}:v1", work.join("layout").display());
    run_ok(peers.modelsign().args(["push", &reference]).arg(&model));
    (reference, model)
}

/// `sign` with `uri` fails with exit 1 and one line containing `expected` (never the PIN),
/// for a reference (no referrer attached) and for a folder (no model.sig written).
fn refused(uri_for: impl Fn(&SoftHsm) -> String, expected: &str) {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let hsm = SoftHsm::new("modelsign-bad", PIN);
    let work = tempfile::tempdir().unwrap();
    hsm.generate_ec_key("good", "01", "prime256v1", work.path());
    let (reference, model) = layout_model(&peers, work.path());
    let uri = uri_for(&hsm);
    let out = run_fail(modelsign_with(&peers, &hsm).args(["sign", &reference, "--key", &uri]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr_text(&out));
    let line = one_error_line(&out);
    assert!(line.contains(expected), "{line}");
    assert!(!line.contains(PIN) && !line.contains("9999"), "the PIN leaked: {line}");
    let tree = json(&run_ok(peers.modelsign().args(["discover", &reference, "--output", "json"])));
    assert_eq!(tree["referrers"].as_array().map(Vec::len), Some(0), "{tree:#}");

    let out = run_fail(modelsign_with(&peers, &hsm).arg("sign").arg(&model).args(["--key", &uri]));
    assert!(one_error_line(&out).contains(expected), "{}", stderr_text(&out));
    assert!(!model.join("model.sig").exists(), "no signature is written");
}

#[test]
fn pkcs11_missing_token_is_one_line() {
    refused(
        |h| format!("pkcs11:token=no-such-token;object=good?module-path={SOFTHSM_MODULE}&pin-value={}", h.pin),
        "no token `no-such-token` (tokens present: `modelsign-bad`)",
    );
}

#[test]
fn pkcs11_missing_object_is_one_line() {
    refused(|h| h.uri("no-such-key"), "key `no-such-key` on token `modelsign-bad`: no such private key object");
}

#[test]
fn pkcs11_wrong_pin_is_one_line() {
    refused(
        |h| format!("pkcs11:token={};object=good?module-path={SOFTHSM_MODULE}&pin-value=9999", h.label),
        "token `modelsign-bad`: wrong PIN",
    );
}

#[test]
fn pkcs11_missing_module_is_one_line() {
    refused(
        |h| format!("pkcs11:token={};object=good?module-path=/nonexistent/libpkcs11.so&pin-value={}", h.label, h.pin),
        "PKCS#11 module /nonexistent/libpkcs11.so: no such file",
    );
}
