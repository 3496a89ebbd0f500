//! The local Sigstore stack (support/sigstore_stack.rs) proven with real peers: cosign 3 and
//! model_signing sign keyless against it (Fulcio certificate with an SCT, Rekor v2 entry, RFC 3161
//! timestamp) with tokens from the local OIDC issuer and verify with the stack's trusted root, and
//! so does modelsign (`verify-blob`, `verify DIR`) — "modelsign accepts theirs" of issue 7. The
//! servers refuse what they must (a token for another audience, an expired one, one from an
//! issuer Fulcio does not trust).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::sigstore_stack::{self, DEFAULT_WORKFLOW, Stack};
use crate::support::*;

/// `cosign3 sign-blob` of `file` with `token` against the stack; the command's output (any exit).
fn cosign_sign_blob(peers: &Peers, stack: &Stack, token: &str, file: &Path, bundle: &Path) -> Output {
    peers
        .command("cosign3")
        .args(["sign-blob", "--yes", "--identity-token", token])
        .arg("--signing-config")
        .arg(&stack.signing_config_path)
        .arg("--trusted-root")
        .arg(&stack.trusted_root_path)
        .arg("--bundle")
        .arg(bundle)
        .arg(file)
        .output()
        .expect("run cosign3")
}

/// `cosign3 verify-blob` with the stack's trusted root (SCT, Rekor v2 entry and timestamp checked).
fn cosign_verify_blob(
    peers: &Peers,
    trusted_root: &Path,
    identity: &str,
    issuer: &str,
    file: &Path,
    bundle: &Path,
) -> Output {
    peers
        .command("cosign3")
        .args(["verify-blob", "--certificate-identity", identity, "--certificate-oidc-issuer", issuer])
        .arg("--trusted-root")
        .arg(trusted_root)
        .arg("--bundle")
        .arg(bundle)
        .arg(file)
        .output()
        .expect("run cosign3")
}

/// `modelsign verify-blob` with the stack's trusted root.
fn modelsign_verify_blob(
    peers: &Peers,
    stack: &Stack,
    artifact: &str,
    bundle: &Path,
    identity: &str,
    issuer: &str,
) -> Output {
    peers
        .modelsign()
        .args(["verify-blob", artifact, "--certificate-identity", identity, "--certificate-oidc-issuer", issuer])
        .arg("--bundle")
        .arg(bundle)
        .arg("--trusted-root")
        .arg(&stack.trusted_root_path)
        .output()
        .expect("run modelsign")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        stderr_text(out)
    )
}

fn blob(stack: &Stack, name: &str, text: &str) -> (PathBuf, PathBuf) {
    let file = stack.dir().join(name);
    std::fs::write(&file, text).unwrap();
    (file.clone(), stack.dir().join(format!("{name}.sigstore.json")))
}

#[test]
fn cosign3_signs_keyless_as_a_github_workflow_and_verifies_with_the_stack_trusted_root() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let peers = Peers::new(&tb);
    let (file, bundle) = blob(&stack, "model-card.md", "# a model card signed in CI\n");

    let token = stack.github_token(DEFAULT_WORKFLOW, "sigstore");
    let out = cosign_sign_blob(&peers, &stack, &token, &file, &bundle);
    assert!(out.status.success(), "cosign3 sign-blob: {}\n{}", describe(&out), stack.logs());

    // The bundle carries all three services' work.
    let b: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(b["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json");
    assert!(b["verificationMaterial"]["certificate"]["rawBytes"].is_string(), "no Fulcio certificate: {b:#}");
    let entry = &b["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(entry["kindVersion"]["version"], "0.0.2", "not a Rekor v2 entry: {entry:#}");
    assert!(
        entry["inclusionProof"]["checkpoint"]["envelope"].as_str().is_some_and(|c| c.starts_with("127.0.0.1\n")),
        "{entry:#}"
    );
    assert_eq!(
        entry["logId"]["keyId"],
        stack.trusted_root()["tlogs"][0]["logId"]["keyId"],
        "the entry's log is not the stack's Rekor"
    );
    let timestamps = &b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"];
    assert_eq!(timestamps.as_array().map(Vec::len), Some(1), "no RFC 3161 timestamp: {b:#}");

    let identity = Stack::github_identity(DEFAULT_WORKFLOW);
    let ok = cosign_verify_blob(&peers, &stack.trusted_root_path, &identity, &stack.oidc_issuer, &file, &bundle);
    assert!(ok.status.success(), "cosign3 verify-blob: {}", describe(&ok));

    // modelsign accepts cosign's keyless bundle, as the file and as its digest.
    let digest = sha256_digest(&std::fs::read(&file).unwrap());
    for artifact in [file.to_str().unwrap(), digest.as_str()] {
        let out = modelsign_verify_blob(&peers, &stack, artifact, &bundle, &identity, &stack.oidc_issuer);
        assert_eq!(out.status.code(), Some(0), "modelsign verify-blob {artifact}: {}", describe(&out));
    }
    let wrong = Stack::github_identity("modelsign-test/models/.github/workflows/release.yml@refs/heads/evil");
    let out = modelsign_verify_blob(&peers, &stack, file.to_str().unwrap(), &bundle, &wrong, &stack.oidc_issuer);
    assert_eq!(out.status.code(), Some(3), "modelsign verified for another ref: {}", describe(&out));

    // The same bundle does not verify for another workflow, another issuer, or other bytes.
    let other = Stack::github_identity("modelsign-test/models/.github/workflows/other.yml@refs/heads/main");
    let out = cosign_verify_blob(&peers, &stack.trusted_root_path, &other, &stack.oidc_issuer, &file, &bundle);
    assert!(!out.status.success(), "verified for another workflow: {}", describe(&out));
    let out = cosign_verify_blob(
        &peers,
        &stack.trusted_root_path,
        &identity,
        "https://token.actions.githubusercontent.com",
        &file,
        &bundle,
    );
    assert!(!out.status.success(), "verified for another issuer: {}", describe(&out));
    let tampered = stack.dir().join("tampered.md");
    std::fs::write(&tampered, "# a model card signed in CI!\n").unwrap();
    let out = cosign_verify_blob(&peers, &stack.trusted_root_path, &identity, &stack.oidc_issuer, &tampered, &bundle);
    assert!(!out.status.success(), "verified other bytes: {}", describe(&out));
}

#[test]
fn cosign3_signs_keyless_with_an_email_identity() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let peers = Peers::new(&tb);
    let (file, bundle) = blob(&stack, "sbom.json", "{\"bomFormat\":\"CycloneDX\"}\n");

    let token = stack.token("release-bot@example.com", "sigstore");
    let out = cosign_sign_blob(&peers, &stack, &token, &file, &bundle);
    assert!(out.status.success(), "cosign3 sign-blob: {}\n{}", describe(&out), stack.logs());
    let ok = cosign_verify_blob(
        &peers,
        &stack.trusted_root_path,
        "release-bot@example.com",
        &stack.oidc_email_issuer,
        &file,
        &bundle,
    );
    assert!(ok.status.success(), "cosign3 verify-blob: {}", describe(&ok));
    let out = cosign_verify_blob(
        &peers,
        &stack.trusted_root_path,
        "release-bot@example.com",
        &stack.oidc_issuer,
        &file,
        &bundle,
    );
    assert!(!out.status.success(), "verified for the other issuer: {}", describe(&out));
}

#[test]
fn another_stack_trusted_root_does_not_verify_this_stack_signature() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let Some(other) = sigstore_stack::start(&tb) else { return };
    let peers = Peers::new(&tb);
    let (file, bundle) = blob(&stack, "weights.bin", "not really weights\n");
    let token = stack.github_token(DEFAULT_WORKFLOW, "sigstore");
    let out = cosign_sign_blob(&peers, &stack, &token, &file, &bundle);
    assert!(out.status.success(), "cosign3 sign-blob: {}\n{}", describe(&out), stack.logs());
    let identity = Stack::github_identity(DEFAULT_WORKFLOW);
    let out = cosign_verify_blob(&peers, &other.trusted_root_path, &identity, &stack.oidc_issuer, &file, &bundle);
    assert!(!out.status.success(), "verified with another stack's trusted root: {}", describe(&out));
}

#[test]
fn fulcio_refuses_tokens_for_another_audience_expired_or_from_an_unknown_issuer() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let peers = Peers::new(&tb);
    let (file, bundle) = blob(&stack, "config.json", "{}\n");
    let cases = [
        ("another audience", stack.github_token(DEFAULT_WORKFLOW, "not-sigstore")),
        ("expired", stack.token_with("/token", &[("job_workflow_ref", DEFAULT_WORKFLOW), ("exp_in", "-120")])),
        (
            "unknown issuer",
            stack.token_with("/token", &[("job_workflow_ref", DEFAULT_WORKFLOW), ("iss", "https://issuer.invalid")]),
        ),
    ];
    for (what, token) in cases {
        let out = cosign_sign_blob(&peers, &stack, &token, &file, &bundle);
        assert!(!out.status.success(), "signed with a token ({what}): {}", describe(&out));
        // Refused by Fulcio itself (cosign does not check the token before sending it).
        assert!(stderr_text(&out).contains("Fulcio returned 400"), "{what}: {}", describe(&out));
        assert!(!bundle.exists(), "a bundle was written for a refused token ({what})");
    }
}

#[test]
fn model_signing_signs_a_folder_keyless_against_the_stack_and_modelsign_verifies_it() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let peers = Peers::new(&tb);
    let model = write_tiny_model(stack.dir(), "model", 4096);
    let signature = stack.dir().join("model.sig");
    let token = stack.github_token(DEFAULT_WORKFLOW, "sigstore");
    let out = peers
        .model_signing()
        .args(["sign", "sigstore", "--identity_token", &token])
        .arg("--trust_config")
        .arg(&stack.trust_config_path)
        .arg("--signature")
        .arg(&signature)
        .arg(&model)
        .output()
        .expect("run model_signing");
    assert!(out.status.success(), "model_signing sign sigstore: {}\n{}", describe(&out), stack.logs());

    let identity = Stack::github_identity(DEFAULT_WORKFLOW);
    let out = peers
        .model_signing()
        .args(["verify", "sigstore", "--identity", &identity, "--identity_provider", &stack.oidc_issuer])
        .arg("--trust_config")
        .arg(&stack.trust_config_path)
        .arg("--signature")
        .arg(&signature)
        .arg(&model)
        .output()
        .expect("run model_signing");
    assert!(out.status.success(), "model_signing verify sigstore: {}", describe(&out));

    let verify = |identity: &str, issuer: &str| {
        peers
            .modelsign()
            .arg("verify")
            .arg(&model)
            .arg("--signature")
            .arg(&signature)
            .arg("--trusted-root")
            .arg(&stack.trusted_root_path)
            .args(["--certificate-identity", identity, "--certificate-oidc-issuer", issuer])
            .output()
            .expect("run modelsign")
    };
    let out = verify(&identity, &stack.oidc_issuer);
    assert_eq!(out.status.code(), Some(0), "modelsign verify DIR: {}", describe(&out));
    let out = verify(&identity, &stack.oidc_email_issuer);
    assert_eq!(out.status.code(), Some(3), "modelsign verified for another issuer: {}", describe(&out));

    // A changed weights file is caught.
    let weights = model.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let out = verify(&identity, &stack.oidc_issuer);
    assert_eq!(out.status.code(), Some(3), "modelsign verified a changed folder: {}", describe(&out));
}
