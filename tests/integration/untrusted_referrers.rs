//! Referrers anyone can push (issue 3, the reverse of "Attacks that must fail"): none is a
//! signature, alone they fail closed (exit 3, nothing written), and garbage, foreign keys'
//! bundles and a stranger's cosign attestation next to a valid signature change nothing.
//! Against real registries.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

fn push_model(reference: &str, model: &Path) -> String {
    run_stdout(modelsign().args(["--plain-http", "push", reference]).arg(model)).trim().to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn zero_signatures() {
    let bed = bed!(RegistryKind::Distribution);
    let (registry, peers, work) = (bed.registry(), &bed.peers, bed.path());
    let tagged = format!("{}:v1", registry.reference("models/tiny"));
    push_model(&tagged, &write_tiny_model(work, "tiny", 1000));
    let (_, public) = keygen(work, "signer", "p256");
    let out = run_fail(peers.modelsign().args(["--plain-http", "verify", &tagged, "--key"]).arg(&public));
    assert_untrusted(&out, &["no signature: the model has no signature referrers"]);
    let pulled = work.join("pulled");
    let out = run_fail(
        peers.modelsign().args(["--plain-http", "pull", &tagged, "-o"]).arg(&pulled).arg("--key").arg(&public),
    );
    assert_untrusted(&out, &["no signature", "nothing was written"]);
    assert!(!pulled.exists() || std::fs::read_dir(&pulled).unwrap().next().is_none());
    // A referrer that is no signature at all (an SBOM) is still no signature.
    let sbom = work.join("sbom.json");
    std::fs::write(&sbom, r#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    run_ok(
        peers
            .modelsign()
            .args(["--plain-http", "attach", &tagged, "--artifact-type", "application/spdx+json"])
            .arg(&sbom),
    );
    let out = run_fail(peers.modelsign().args(["--plain-http", "verify", &tagged, "--key"]).arg(&public));
    assert_untrusted(&out, &["no signature from a trusted signer (1 referrers ignored)"]);
}

/// Pushes referrers of `reference` that claim the right subject but hold garbage, and a
/// foreign signer's genuine bundles about other content. Returns how many.
fn attach_garbage(peers: &Peers, work: &Path, reference: &str, dangling_blobs: bool) -> usize {
    // A stranger signs another model with their key, and attaches copies of those bundles.
    let other = write_tiny_model(work, "stranger-model", 7000);
    let repo = reference.rsplit_once(':').unwrap().0;
    let other_ref = format!("{repo}:stranger");
    push_model(&other_ref, &other);
    let (stranger_key, _) = keygen(work, "stranger", "p256");
    run_ok(peers.modelsign().args(["--plain-http", "sign", &other_ref, "--key"]).arg(&stranger_key));
    // And a cosign attestation by a stranger's cosign key.
    let (cosign_key, _) = cosign_key_pair(peers, work, "pw");
    let predicate = work.join("p.json");
    std::fs::write(&predicate, r#"{"approved":true}"#).unwrap();
    let digest = run_stdout(peers.modelsign().args(["--plain-http", "inspect", "--output", "json", reference]));
    let digest: Value = serde_json::from_str(&digest).unwrap();
    run_ok(
        peers
            .cosign()
            .env("COSIGN_PASSWORD", "pw")
            .args([
                "attest",
                "--new-bundle-format",
                "--tlog-upload=false",
                "--allow-http-registry",
                "--type",
                MANIFEST_PREDICATE,
                "--key",
            ])
            .arg(&cosign_key)
            .arg("--predicate")
            .arg(&predicate)
            .arg(format!("{repo}@{}", digest["digest"].as_str().unwrap())),
    );
    let mut count = 1;
    runtime().block_on(async {
        let target = open_target(reference).await;
        let (subject, _) = manifest_json(&target, reference.rsplit_once(':').unwrap().1).await;
        let (stranger, _) = manifest_json(&target, "stranger").await;
        count += repoint_referrers(&target, &stranger, &subject, |_| true).await.len();
        let garbage: [(&str, &str, &[u8]); 5] = [
            ("not JSON", BUNDLE_MEDIA_TYPE, b"\x00\x01\x02 not json at all \xff"),
            ("JSON, not a bundle", BUNDLE_MEDIA_TYPE, br#"{"hello":"world"}"#),
            ("bundle without envelope", BUNDLE_MEDIA_TYPE, br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":""}}}"#),
            ("empty bundle layer", BUNDLE_MEDIA_TYPE, b""),
            ("not a bundle type", "application/vnd.example.unrelated", b"{}"),
        ];
        for (_, media_type, bytes) in garbage {
            attach_raw_referrer(&target, &subject, BUNDLE_MEDIA_TYPE, media_type, bytes, true).await;
            count += 1;
        }
        if dangling_blobs {
            // The layer digest names no blob.
            attach_raw_referrer(&target, &subject, BUNDLE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE, b"never uploaded", false).await;
            count += 1;
        }
    });
    count
}

fn garbage_referrers(kind: RegistryKind) {
    // distribution refuses manifests that name missing blobs: no dangling layer there.
    let dangling_blobs = kind != RegistryKind::Distribution;
    let bed = bed!(kind);
    let (registry, peers, work) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(work, "tiny", 9000);
    let tagged = format!("{}:v1", registry.reference("models/tiny"));
    push_model(&tagged, &model);
    let (key, public) = keygen(work, "signer", "p256");
    let attached = attach_garbage(peers, work, &tagged, dangling_blobs);

    // Alone, garbage is no signature.
    let out = run_fail(peers.modelsign().args(["--plain-http", "verify", &tagged, "--key"]).arg(&public));
    assert_untrusted(&out, &[&format!("no signature from a trusted signer ({attached} referrers ignored)")]);
    let pulled = work.join("refused");
    let out = run_fail(
        peers.modelsign().args(["--plain-http", "pull", &tagged, "-o"]).arg(&pulled).arg("--key").arg(&public),
    );
    assert_untrusted(&out, &["nothing was written"]);

    // Next to a valid signature, it changes nothing.
    run_ok(peers.modelsign().args(["--plain-http", "sign", &tagged, "--key"]).arg(&key));
    let out =
        run_ok(peers.modelsign().args(["--plain-http", "verify", "--output", "json", &tagged, "--key"]).arg(&public));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = report["signatures"]["checks"].as_array().unwrap();
    assert_eq!(checks.iter().filter(|c| c["outcome"] == "verified").count(), 2, "{report:#}");
    assert_eq!(checks.iter().filter(|c| c["outcome"] == "ignored").count(), attached, "{report:#}");
    assert_eq!(report["verified"], true);
    let pulled = work.join("pulled");
    run_ok(peers.modelsign().args(["--plain-http", "pull", &tagged, "-o"]).arg(&pulled).arg("--key").arg(&public));
    assert!(pulled.join("model.sig").is_file());
    run_ok(
        peers
            .model_signing()
            .args(["verify", "key"])
            .arg(&pulled)
            .arg("--signature")
            .arg(pulled.join("model.sig"))
            .arg("--public_key")
            .arg(&public),
    );
}

registry_cases! {
    garbage_referrers: [distribution, gcr];
}
