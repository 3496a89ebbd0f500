//! Signing models in registries and layouts, both directions with the real tools (issue 3,
//! "Interop tests"): `modelsign sign REF` is accepted by `cosign verify-attestation`, by
//! `modelsign verify` and, once pulled with its `model.sig`, by `model_signing verify`;
//! what `cosign attest` and `model_signing sign` made verifies with modelsign; on
//! distribution 2.8 (fallback tag) and on the referrers-API registries alike. Also: offline
//! verification of a copied layout, and `verify --component` fetching one layer only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

/// Two path segments: cosign refuses one-letter repository names.
const REPO: &str = "models/tiny";

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `modelsign --plain-http push REF DIR`; returns the manifest digest.
fn push(peers: &Peers, reference: &str, dir: &Path) -> String {
    run_stdout(peers.modelsign().args(["--plain-http", "push", reference]).arg(dir)).trim().to_string()
}

/// `modelsign --plain-http verify REF --output json` with extra arguments (trust, components).
fn verify_json(peers: &Peers, reference: &str, extra: &[&str]) -> Value {
    json(&run_ok(peers.modelsign().args(["--plain-http", "verify", "--output", "json", reference]).args(extra)))
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["signatures"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["outcome"].as_str().unwrap().to_string(), c["predicateType"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn assert_all_components_ok(report: &Value, expected: usize) {
    let components = report["components"].as_array().unwrap();
    assert_eq!(components.len(), expected, "{report:#}");
    assert!(components.iter().all(|c| c["ok"] == true), "{report:#}");
    assert_eq!(report["verified"], true, "{report:#}");
}

fn same_files(a: &Path, b: &Path, paths: &[&str]) {
    for p in paths {
        assert_eq!(std::fs::read(a.join(p)).unwrap(), std::fs::read(b.join(p)).unwrap(), "{p}");
    }
}

const TINY_FILES: [&str; 5] =
    ["config.json", "extra/empty.txt", "extra/notes.txt", "model.safetensors", "tokenizer.json"];

fn model_signing_verify_key(peers: &Peers, dir: &Path, public: &Path) {
    run_ok(
        peers
            .model_signing()
            .args(["verify", "key"])
            .arg(dir)
            .arg("--signature")
            .arg(dir.join("model.sig"))
            .arg("--public_key")
            .arg(public),
    );
}

fn model_signing_verify_certificate(peers: &Peers, dir: &Path, root: &Path) {
    run_ok(
        peers
            .model_signing()
            .args(["verify", "certificate"])
            .arg(dir)
            .arg("--signature")
            .arg(dir.join("model.sig"))
            .arg("--certificate_chain")
            .arg(root),
    );
}

/// `sign REF` → cosign accepts the manifest statement, modelsign verifies, and the pulled
/// folder with its `model.sig` verifies with `model_signing verify key`.
fn sign_reference_then_every_tool_accepts(kind: RegistryKind) {
    let bed = bed!(kind);
    let (registry, peers, work) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(work, "tiny", 20_000);
    let tagged = format!("{}:v1", registry.reference(REPO));
    let digest = push(peers, &tagged, &model);
    let pinned = format!("{}@{digest}", registry.reference(REPO));
    let (key, public) = keygen(work, "signer", "p256");

    let signed = run_stdout(peers.modelsign().args(["--plain-http", "sign", &tagged, "--key"]).arg(&key));
    assert_eq!(signed.lines().count(), 2, "two referrers (OMS and manifest statements): {signed}");

    // cosign: the manifest statement, offline, with an empty trusted root.
    let trusted_root = empty_trusted_root(work);
    let out = run_stdout(&mut cosign_verify_attestation(peers, &trusted_root, &public, MANIFEST_PREDICATE, &pinned));
    let envelope: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let statement: Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD.decode(envelope["payload"].as_str().unwrap()).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.trim_start_matches("sha256:"), "{statement:#}");
    assert_eq!(statement["subject"][0]["name"], registry.reference(REPO), "{statement:#}");
    assert_eq!(statement["predicate"]["oms"]["predicateType"], OMS_PREDICATE);
    // cosign with another key refuses.
    let (_, other_public) = keygen(work, "other", "p256");
    run_fail(&mut cosign_verify_attestation(peers, &trusted_root, &other_public, MANIFEST_PREDICATE, &pinned));

    // modelsign: both signatures verified, every component checked.
    let report = verify_json(peers, &tagged, &["--key", public.to_str().unwrap()]);
    assert_eq!(report["digest"], digest.as_str());
    let mut found = outcomes(&report);
    found.sort();
    let mut expected =
        [("verified".to_string(), MANIFEST_PREDICATE.to_string()), ("verified".to_string(), OMS_PREDICATE.to_string())];
    expected.sort();
    assert_eq!(found, expected, "{report:#}");
    assert_all_components_ok(&report, TINY_FILES.len());

    // pull --key: verified first, then the files and model.sig; model_signing agrees.
    let pulled = work.join("pulled");
    run_ok(peers.modelsign().args(["--plain-http", "pull", &tagged, "-o"]).arg(&pulled).arg("--key").arg(&public));
    same_files(&model, &pulled, &TINY_FILES);
    assert!(pulled.join("model.sig").is_file(), "pull --key writes model.sig");
    model_signing_verify_key(peers, &pulled, &public);
    // And our own folder verification reads it too.
    run_ok(peers.modelsign().args(["verify"]).arg(&pulled).arg("--key").arg(&public));
}

/// Ed25519 (which `model_signing` does not support) still satisfies cosign and modelsign.
#[test]
fn ed25519_manifest_signature_verifies_with_cosign() {
    let bed = bed!(RegistryKind::Gcr);
    let (registry, peers, work) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(work, "tiny", 1000);
    let digest = push(peers, &format!("{}:v1", registry.reference(REPO)), &model);
    let pinned = format!("{}@{digest}", registry.reference(REPO));
    let (key, public) = keygen(work, "ed", "ed25519");
    run_ok(peers.modelsign().args(["--plain-http", "sign", &pinned, "--key"]).arg(&key));
    let trusted_root = empty_trusted_root(work);
    run_ok(&mut cosign_verify_attestation(peers, &trusted_root, &public, MANIFEST_PREDICATE, &pinned));
    let report = verify_json(peers, &pinned, &["--key", public.to_str().unwrap()]);
    assert_all_components_ok(&report, TINY_FILES.len());
}

/// A certificate chain made with openssl: sign REF with leaf + intermediate, verify with
/// the root, and the pulled folder verifies with `model_signing verify certificate`.
fn certificate_chain_round_trip(kind: RegistryKind) {
    let bed = bed!(kind);
    let (registry, peers, work) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(work, "tiny", 5000);
    let tagged = format!("{}:v1", registry.reference(REPO));
    push(peers, &tagged, &model);
    let chain = make_certificate_chain(peers, work, "ours");
    let theirs = make_certificate_chain(peers, work, "theirs");
    run_ok(
        peers
            .modelsign()
            .args(["--plain-http", "sign", &tagged, "--key"])
            .arg(&chain.leaf_key)
            .arg("--certificate")
            .arg(&chain.leaf)
            .arg("--certificate-chain")
            .arg(&chain.intermediate),
    );
    let report = verify_json(peers, &tagged, &["--certificate-chain", chain.root.to_str().unwrap()]);
    assert_eq!(outcomes(&report).iter().filter(|(o, _)| o == "verified").count(), 2, "{report:#}");
    assert!(report["signatures"]["checks"][0]["signer"].as_str().unwrap().contains("ours test signer"), "{report:#}");
    assert_all_components_ok(&report, TINY_FILES.len());

    // Another root: nothing trusted.
    let out =
        run_fail(peers.modelsign().args(["--plain-http", "verify", &tagged, "--certificate-chain"]).arg(&theirs.root));
    assert_untrusted(&out, &["no signature from a trusted signer"]);

    let pulled = work.join("pulled");
    run_ok(
        peers
            .modelsign()
            .args(["--plain-http", "pull", &tagged, "-o"])
            .arg(&pulled)
            .arg("--certificate-chain")
            .arg(&chain.root),
    );
    same_files(&model, &pulled, &TINY_FILES);
    model_signing_verify_certificate(peers, &pulled, &chain.root);
}

/// `cosign attest --new-bundle-format --key` (a statement about the manifest digest with
/// another predicate) is an attestation, not a signature (FORMAT.md §6): by a trusted key it
/// is shown but verifies nothing on its own, and `pull --key` writes nothing; beside
/// modelsign's signatures by another key, those verify and the attestation changes nothing.
fn cosign_attestation_verifies_with_modelsign(kind: RegistryKind) {
    let bed = bed!(kind);
    let (registry, peers, work) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(work, "tiny", 3000);
    let digest = push(peers, &format!("{}:v1", registry.reference(REPO)), &model);
    let pinned = format!("{}@{digest}", registry.reference(REPO));
    let (cosign_key, cosign_pub) = cosign_key_pair(peers, work, "cosign-password");
    let predicate = work.join("review.json");
    std::fs::write(&predicate, r#"{"reviewed":true,"by":"integration test"}"#).unwrap();
    run_ok(
        peers
            .cosign()
            .env("COSIGN_PASSWORD", "cosign-password")
            .args([
                "attest",
                "--new-bundle-format",
                "--tlog-upload=false",
                "--allow-http-registry",
                "--type",
                "https://example.com/review/v1",
                "--key",
            ])
            .arg(&cosign_key)
            .arg("--predicate")
            .arg(&predicate)
            .arg(&pinned),
    );
    let out = run_fail(
        peers.modelsign().args(["--plain-http", "verify", "--output", "json", &pinned, "--key"]).arg(&cosign_pub),
    );
    assert_untrusted(&out, &["attestations or component signatures, which never verify a model on their own"]);
    let report = json(&out);
    assert_eq!(
        outcomes(&report),
        [("attestation".to_string(), "https://example.com/review/v1".to_string())],
        "{report:#}"
    );
    assert_eq!(report["components"].as_array().unwrap().len(), 0, "no bytes checked: {report:#}");

    // Pull trusting only cosign's key: nothing is written.
    let pulled = work.join("pulled");
    let out = run_fail(
        peers.modelsign().args(["--plain-http", "pull", &pinned, "-o"]).arg(&pulled).arg("--key").arg(&cosign_pub),
    );
    assert_untrusted(&out, &["nothing was written"]);
    assert!(!pulled.exists());

    // modelsign's own signatures beside cosign's attestation: they verify, it is shown.
    let (key, public) = keygen(work, "signer", "p256");
    run_ok(peers.modelsign().args(["--plain-http", "sign", &pinned, "--key"]).arg(&key));
    let report =
        verify_json(peers, &pinned, &["--key", public.to_str().unwrap(), "--key", cosign_pub.to_str().unwrap()]);
    assert_eq!(outcomes(&report).iter().filter(|(o, _)| o == "verified").count(), 2, "{report:#}");
    assert_eq!(outcomes(&report).iter().filter(|(o, _)| o == "attestation").count(), 1, "{report:#}");
    assert_all_components_ok(&report, TINY_FILES.len());
    let report = verify_json(peers, &pinned, &["--key", public.to_str().unwrap()]);
    assert_eq!(outcomes(&report).iter().filter(|(o, _)| o == "verified").count(), 2, "{report:#}");
    assert_eq!(
        outcomes(&report).iter().filter(|(o, _)| o == "ignored").count(),
        1,
        "cosign's, by a key not trusted now: {report:#}"
    );
    run_ok(peers.modelsign().args(["--plain-http", "pull", &pinned, "-o"]).arg(&pulled).arg("--key").arg(&public));
    same_files(&model, &pulled, &TINY_FILES);
    // And cosign still reads its own attestation next to ours.
    let trusted_root = empty_trusted_root(work);
    run_ok(&mut cosign_verify_attestation(peers, &trusted_root, &cosign_pub, "https://example.com/review/v1", &pinned));
}

/// How `model_signing` signs a folder in a test.
enum FolderSigner {
    Key { curve: &'static str },
    Certificate,
}

/// Folders signed by `model_signing` (P-256, P-384, P-521, certificate chain) → `modelsign
/// push` attaches their `model.sig` → `modelsign verify` of the registry artifact passes
/// with that key or root; the pulled folder's `model.sig` is the same signature.
fn model_signing_folders_push_and_verify(kind: RegistryKind) {
    let bed = bed!(kind);
    let (registry, peers, work) = (bed.registry(), &bed.peers, bed.path());
    let chain = make_certificate_chain(peers, work, "ms");
    let signers = [
        ("p256", FolderSigner::Key { curve: "P-256" }),
        ("p384", FolderSigner::Key { curve: "P-384" }),
        ("p521", FolderSigner::Key { curve: "P-521" }),
        ("cert", FolderSigner::Certificate),
    ];
    for (name, signer) in signers {
        let dir = work.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let model = write_tiny_model(&dir, "tiny", 4000 + name.len());
        let sig = model.join("model.sig");
        let is_certificate = matches!(signer, FolderSigner::Certificate);
        let trust: (String, PathBuf) = match signer {
            FolderSigner::Key { curve } => {
                let (key, public) = openssl_ec_key(peers, &dir, name, curve);
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
                ("--key".into(), public)
            }
            FolderSigner::Certificate => {
                run_ok(
                    peers
                        .model_signing()
                        .args(["sign", "certificate"])
                        .arg(&model)
                        .arg("--private_key")
                        .arg(&chain.leaf_key)
                        .arg("--signing_certificate")
                        .arg(&chain.leaf)
                        .arg("--certificate_chain")
                        .arg(&chain.intermediate)
                        .arg("--signature")
                        .arg(&sig),
                );
                ("--certificate-chain".into(), chain.root.clone())
            }
        };
        let tagged = format!("{}:{name}", registry.reference(REPO));
        let out = run_ok(peers.modelsign().args(["--plain-http", "push", "--output", "json", &tagged]).arg(&model));
        let pushed = json(&out);
        let paths: Vec<&str> =
            pushed["components"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
        assert!(!paths.contains(&"model.sig"), "{name}: model.sig is a referrer, not a component: {paths:?}");
        assert!(pushed["signature"]["digest"].is_string(), "{name}: signature attached: {pushed:#}");

        let report = verify_json(peers, &tagged, &[&trust.0, trust.1.to_str().unwrap()]);
        assert_eq!(outcomes(&report), [("verified".to_string(), OMS_PREDICATE.to_string())], "{name}: {report:#}");
        assert_all_components_ok(&report, TINY_FILES.len());
        // One component only, too.
        let report =
            verify_json(peers, &tagged, &[&trust.0, trust.1.to_str().unwrap(), "--component", "extra/notes.txt"]);
        assert_all_components_ok(&report, 1);

        let pulled = dir.join("pulled");
        run_ok(
            peers.modelsign().args(["--plain-http", "pull", &tagged, "-o"]).arg(&pulled).arg(&trust.0).arg(&trust.1),
        );
        assert_eq!(
            std::fs::read(pulled.join("model.sig")).unwrap(),
            std::fs::read(&sig).unwrap(),
            "{name}: the same signature comes back"
        );
        same_files(&model, &pulled, &TINY_FILES);
        // model_signing reads the pulled folder (spot checks: each call costs a second).
        if is_certificate {
            model_signing_verify_certificate(peers, &pulled, &chain.root);
        } else if name == "p384" {
            model_signing_verify_key(peers, &pulled, &trust.1);
        }
    }
}

/// A `model.sig` that does not match the folder's files is refused by push.
#[test]
fn push_refuses_a_model_sig_that_does_not_match() {
    let bed = bed!(RegistryKind::Gcr);
    let (registry, peers, work) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(work, "tiny", 3000);
    let (key, _) = openssl_ec_key(peers, work, "k", "P-256");
    run_ok(
        peers
            .model_signing()
            .args(["sign", "key"])
            .arg(&model)
            .arg("--private_key")
            .arg(&key)
            .arg("--signature")
            .arg(model.join("model.sig")),
    );
    std::fs::write(model.join("extra/notes.txt"), "changed after signing\n").unwrap();
    let tagged = format!("{}:v1", registry.reference(REPO));
    let out = run_fail(peers.modelsign().args(["--plain-http", "push", &tagged]).arg(&model));
    let line = assert_untrusted(&out, &["model.sig", "extra/notes.txt"]);
    assert!(line.contains("does not match"), "{line}");
    // Nothing was published under the tag.
    let out = run_fail(peers.modelsign().args(["--plain-http", "inspect", &tagged]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `copy` of a signed artifact into a layout carries its signatures; `verify --offline`
/// then needs no registry at all (the registry is stopped first).
#[test]
fn offline_verify_of_a_copied_layout() {
    let tb = require_testbed!();
    let registry = Registry::start(RegistryKind::Distribution);
    let peers = &Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let model = write_tiny_model(work, "tiny", 8000);
    let tagged = format!("{}:v1", registry.reference(REPO));
    let digest = push(peers, &tagged, &model);
    let (key, public) = keygen(work, "signer", "p384");
    run_ok(peers.modelsign().args(["--plain-http", "sign", &tagged, "--key"]).arg(&key));
    let layout = work.join("layout");
    let layout_ref = format!("oci:{}:v1", layout.display());
    run_ok(peers.modelsign().args(["--plain-http", "copy", &tagged, &layout_ref]));
    drop(registry);

    let report = json(&run_ok(
        peers.modelsign().args(["verify", "--offline", "--output", "json", &layout_ref, "--key"]).arg(&public),
    ));
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(outcomes(&report).iter().filter(|(o, _)| o == "verified").count(), 2, "{report:#}");
    assert_all_components_ok(&report, TINY_FILES.len());
    // --offline refuses a registry reference before touching the network.
    let out = run_fail(peers.modelsign().args(["verify", "--offline", &tagged, "--key"]).arg(&public));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--offline"), "{}", String::from_utf8_lossy(&out.stderr));
    // The layout pulls into a folder model_signing accepts.
    let pulled = work.join("pulled");
    run_ok(peers.modelsign().args(["pull", &layout_ref, "-o"]).arg(&pulled).arg("--key").arg(&public));
    model_signing_verify_key(peers, &pulled, &public);
}

/// `verify --component F` downloads F's layer once, plus the small bundle blobs of the
/// signature referrers, and never any other layer (counted at a pass-through proxy).
fn one_component_fetches_one_layer(kind: RegistryKind) {
    let bed = bed!(kind);
    let (registry, peers, work) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(work, "tiny", 200_000);
    let tagged = format!("{}:v1", registry.reference(REPO));
    push(peers, &tagged, &model);
    let (key, public) = keygen(work, "signer", "p256");
    let referrers: Vec<String> =
        run_stdout(peers.modelsign().args(["--plain-http", "sign", &tagged, "--key"]).arg(&key))
            .lines()
            .map(str::to_string)
            .collect();

    let proxy = FaultProxy::start(registry.addr());
    let through_proxy = format!("{}/{REPO}:v1", proxy.addr());
    let report =
        verify_json(peers, &through_proxy, &["--key", public.to_str().unwrap(), "--component", "tokenizer.json"]);
    assert_all_components_ok(&report, 1);
    assert_eq!(report["components"][0]["path"], "tokenizer.json");

    let layer_digests: BTreeMap<String, &str> =
        TINY_FILES.iter().map(|p| (file_digest(&model.join(p)).to_string(), *p)).collect();
    let wanted = file_digest(&model.join("tokenizer.json")).to_string();
    let blob_gets: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/sha256:"))
        .map(|r| r.path.rsplit('/').next().unwrap().split('?').next().unwrap().to_string())
        .collect();
    let layer_gets: Vec<&String> = blob_gets.iter().filter(|d| layer_digests.contains_key(*d)).collect();
    assert_eq!(layer_gets, [&wanted], "only tokenizer.json's layer, once: {:?}", proxy.requests());
    // The rest are the two bundle blobs (each referrer's only layer), nothing else.
    assert_eq!(blob_gets.len(), 1 + referrers.len(), "{blob_gets:?}");
    // Those bundle blobs are the referrers' layers, and small.
    let bytes_outside_layer: u64 = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let target = open_target(&tagged).await;
        let mut sizes = 0;
        for r in &referrers {
            let (_, m) = manifest_json(&target, r).await;
            sizes += m["layers"][0]["size"].as_u64().unwrap();
            assert!(blob_gets.contains(&m["layers"][0]["digest"].as_str().unwrap().to_string()), "{blob_gets:?}");
        }
        sizes
    });
    assert!(bytes_outside_layer < 64 * 1024, "signature metadata stays small: {bytes_outside_layer}");
}

registry_cases! {
    sign_reference_then_every_tool_accepts: [distribution, gcr, cue];
    certificate_chain_round_trip: [distribution, gcr];
    cosign_attestation_verifies_with_modelsign: [distribution, cue];
    model_signing_folders_push_and_verify: [distribution, cue];
    one_component_fetches_one_layer: [distribution, gcr];
}
