//! Keyless signing (issue 7) end to end against the real local Sigstore stack
//! (`support/sigstore_stack.rs`: OIDC issuer, Fulcio, Rekor v2, timestamp authority): a token
//! shaped like GitHub Actions', a Fulcio certificate, a Rekor entry and an RFC 3161 timestamp
//! in every bundle; what modelsign signs keyless verifies with `modelsign verify`, cosign 3
//! and `model_signing`, given the stack's trusted root. Bad tokens attach nothing.
//! The stack has a certificate-transparency log, so certificates carry an SCT and nothing
//! is skipped; `--insecure-ignore-sct` is checked with a copy of the trusted root that
//! lists no CT log.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::sigstore_stack::{self, DEFAULT_WORKFLOW, Stack};
use crate::support::*;

const REPO: &str = "models/tiny";

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `modelsign` with the stack's signing config and trusted root for signing.
fn sign_cmd(peers: &Peers, stack: &Stack, args: &[&str]) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http"]).args(args).arg("--signing-config").arg(&stack.signing_config_path);
    cmd.arg("--trusted-root").arg(&stack.trusted_root_path);
    cmd.env_remove("ACTIONS_ID_TOKEN_REQUEST_URL").env_remove("SIGSTORE_ID_TOKEN");
    cmd
}

/// `modelsign verify` trusting `identity` from the stack's GitHub-shaped issuer.
fn verify_cmd(peers: &Peers, stack: &Stack, reference: &str, identity_flags: &[&str]) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "verify", "--output", "json", reference])
        .args(identity_flags)
        .args(["--certificate-oidc-issuer", &stack.oidc_issuer, "--trusted-root"])
        .arg(&stack.trusted_root_path);
    cmd
}

fn push(peers: &Peers, reference: &str, dir: &Path) -> String {
    run_stdout(peers.modelsign().args(["--plain-http", "push", reference]).arg(dir)).trim().to_string()
}

#[test]
fn keyless_sign_reference_verifies_with_modelsign_cosign_and_model_signing() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let registry = Registry::start(RegistryKind::Gcr);
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let model = write_tiny_model(work.path(), "tiny", 20_000);
    let tagged = format!("{}:v1", registry.reference(REPO));
    let digest = push(&peers, &tagged, &model);
    let pinned = format!("{}@{digest}", registry.reference(REPO));
    let token = stack.github_token(DEFAULT_WORKFLOW, "sigstore");
    let identity = Stack::github_identity(DEFAULT_WORKFLOW);

    let out = run_ok(&mut sign_cmd(&peers, &stack, &["sign", &tagged, "--identity-token", &token]));
    let stderr = stderr_text(&out);
    assert!(stderr.contains(&format!("signed keyless as {identity}")), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "{stderr}");

    let report = json(&run_ok(&mut verify_cmd(&peers, &stack, &tagged, &["--certificate-identity", &identity])));
    assert_eq!(report["verified"], true, "{report:#}");
    // Each bundle carries the certificate, a Rekor v2 entry and a timestamp.
    let found = bundles(&pinned);
    assert_eq!(found.len(), 2, "{found:#?}");
    for (_, bundle) in &found {
        let material = &bundle["verificationMaterial"];
        assert!(material["certificate"]["rawBytes"].is_string(), "{bundle:#}");
        assert_eq!(material["tlogEntries"].as_array().map(Vec::len), Some(1), "{bundle:#}");
        assert_eq!(material["tlogEntries"][0]["kindVersion"]["kind"], "hashedrekord", "{bundle:#}");
        let stamps = &material["timestampVerificationData"]["rfc3161Timestamps"];
        assert_eq!(stamps.as_array().map(Vec::len), Some(1), "{bundle:#}");
    }

    // pull verifies first, then writes the files and model.sig, which model_signing accepts.
    let pulled = work.path().join("pulled");
    run_ok(
        peers
            .modelsign()
            .args(["--plain-http", "pull", &pinned, "-o"])
            .arg(&pulled)
            .args(["--certificate-identity", &identity, "--certificate-oidc-issuer", &stack.oidc_issuer])
            .arg("--trusted-root")
            .arg(&stack.trusted_root_path),
    );
    run_ok(
        peers
            .model_signing()
            .args(["verify", "sigstore"])
            .arg(&pulled)
            .arg("--signature")
            .arg(pulled.join("model.sig"))
            .arg("--trust_config")
            .arg(&stack.trust_config_path)
            .args(["--identity", &identity, "--identity_provider", &stack.oidc_issuer]),
    );

    // cosign 3 verifies the manifest statement keyless with the same trusted root.
    run_ok(
        peers
            .command("cosign3")
            .args(["verify-attestation", "--new-bundle-format", "--allow-http-registry"])
            .arg("--trusted-root")
            .arg(&stack.trusted_root_path)
            .args(["--certificate-identity", &identity, "--certificate-oidc-issuer", &stack.oidc_issuer])
            .args(["--type", MANIFEST_PREDICATE, &pinned]),
    );
}

/// The bundles attached to `reference`, with their predicate types.
fn bundles(reference: &str) -> Vec<(String, Value)> {
    block_on(async {
        let target = open_target(reference).await;
        let (subject, _) = manifest_json(&target, reference.rsplit_once('@').map_or("v1", |(_, d)| d)).await;
        let mut found = Vec::new();
        for (_, referrer) in referrer_manifests(&target, &subject).await {
            let predicate =
                referrer["annotations"]["dev.sigstore.bundle.predicateType"].as_str().unwrap_or("").to_string();
            let bundle = referrer_bundle(&target, &referrer).await;
            found.push((predicate, serde_json::from_slice(&bundle).unwrap()));
        }
        found
    })
}

/// `sign DIR` keyless writes a model.sig that modelsign and `model_signing verify sigstore`
/// (given the stack's trust config) verify. A Sigstore without a CT log: with a trusted root
/// that lists none, the SCT cannot be checked; only `--insecure-ignore-sct` accepts it then.
#[test]
fn keyless_sign_folder_verifies_with_modelsign_and_model_signing() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let model = write_tiny_model(work.path(), "tiny", 20_000);
    let token = stack.github_token(DEFAULT_WORKFLOW, "sigstore");
    let identity = Stack::github_identity(DEFAULT_WORKFLOW);
    run_ok(&mut sign_cmd(&peers, &stack, &["sign", model.to_str().unwrap(), "--identity-token", &token]));
    let sig = model.join("model.sig");
    let bundle: Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    assert!(bundle["verificationMaterial"]["certificate"].is_object(), "{bundle:#}");

    let verify = |root: &Path, extra: &[&str]| {
        let mut cmd = peers.modelsign();
        cmd.arg("verify").arg(&model).args(["--certificate-identity", &identity]);
        cmd.args(["--certificate-oidc-issuer", &stack.oidc_issuer]).arg("--trusted-root").arg(root).args(extra);
        cmd
    };
    run_ok(&mut verify(&stack.trusted_root_path, &[]));
    run_ok(
        peers
            .model_signing()
            .args(["verify", "sigstore"])
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--trust_config")
            .arg(&stack.trust_config_path)
            .args(["--identity", &identity, "--identity_provider", &stack.oidc_issuer]),
    );
    // model_signing checks the identity too.
    run_fail(
        peers
            .model_signing()
            .args(["verify", "sigstore"])
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--trust_config")
            .arg(&stack.trust_config_path)
            .args(["--identity", "https://github.com/someone/else", "--identity_provider", &stack.oidc_issuer]),
    );

    // The same root without its CT log: the SCT cannot be verified (exit 3) unless told.
    let mut no_ct = stack.trusted_root().clone();
    no_ct["ctlogs"] = serde_json::json!([]);
    let no_ct_path = work.path().join("no-ct-root.json");
    std::fs::write(&no_ct_path, serde_json::to_vec(&no_ct).unwrap()).unwrap();
    let out = run_fail(&mut verify(&no_ct_path, &[]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    run_ok(&mut verify(&no_ct_path, &["--insecure-ignore-sct"]));
    // Signing against such a root says so: its own check cannot verify an SCT either.
    let out = run_ok(
        peers
            .modelsign()
            .arg("sign")
            .arg(&model)
            .args(["--identity-token", &token, "--signing-config"])
            .arg(&stack.signing_config_path)
            .arg("--trusted-root")
            .arg(&no_ct_path),
    );
    assert!(stderr_text(&out).contains("lists no certificate-transparency log"), "{}", stderr_text(&out));
    run_ok(&mut verify(&no_ct_path, &["--insecure-ignore-sct"]));
}

/// A token for another audience: refused before Fulcio is asked, one line, nothing attached.
#[test]
fn keyless_token_for_another_audience_attaches_nothing() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let model = write_tiny_model(work.path(), "tiny", 5_000);
    let layout = format!("oci:{}:v1", work.path().join("layout").display());
    run_ok(peers.modelsign().args(["push", &layout]).arg(&model));
    let token = stack.github_token(DEFAULT_WORKFLOW, "not-sigstore");
    let out = run_fail(&mut sign_cmd(&peers, &stack, &["sign", &layout, "--identity-token", &token]));
    assert_eq!(out.status.code(), Some(1));
    let line = one_error_line(&out);
    assert!(line.contains("audience `not-sigstore`, not `sigstore`"), "{line}");
    let tree = json(&run_ok(peers.modelsign().args(["discover", &layout, "--output", "json"])));
    assert_eq!(tree["referrers"].as_array().map(Vec::len), Some(0), "{tree:#}");
    // An expired token is refused here too; a token from an issuer Fulcio does not know
    // passes our checks and is refused by Fulcio: one line naming it, nothing attached.
    let expired = stack.token_with("/token", &[("job_workflow_ref", DEFAULT_WORKFLOW), ("exp_in", "-120")]);
    let out = run_fail(&mut sign_cmd(&peers, &stack, &["sign", &layout, "--identity-token", &expired]));
    assert!(one_error_line(&out).contains("identity token: expired at"), "{}", stderr_text(&out));
    let unknown = stack.token_with("/token", &[("job_workflow_ref", DEFAULT_WORKFLOW), ("iss", "http://127.0.0.1:9/")]);
    let out = run_fail(&mut sign_cmd(&peers, &stack, &["sign", &layout, "--identity-token", &unknown]));
    let line = one_error_line(&out);
    assert!(line.starts_with("error: Fulcio ") && line.contains("refused the identity token"), "{line}");
    let tree = json(&run_ok(peers.modelsign().args(["discover", &layout, "--output", "json"])));
    assert_eq!(tree["referrers"].as_array().map(Vec::len), Some(0), "{tree:#}");
}

/// Verification attacks that keyless signing makes easy to produce: a signature by another
/// workflow (identity) is refused, and a regexp that matches only a prefix of the identity
/// does not accept it (regexps are anchored at both ends); the anchored whole one does.
#[test]
fn keyless_other_identity_and_prefix_regexp_are_refused() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let model = write_tiny_model(work.path(), "tiny", 5_000);
    let layout = format!("oci:{}:v1", work.path().join("layout").display());
    run_ok(peers.modelsign().args(["push", &layout]).arg(&model));
    let evil = "modelsign-test/models-evil/.github/workflows/release.yml@refs/heads/main";
    let token = stack.github_token(evil, "sigstore");
    run_ok(&mut sign_cmd(&peers, &stack, &["sign", &layout, "--identity-token", &token]));

    let trusted = Stack::github_identity(DEFAULT_WORKFLOW);
    let out = run_fail(&mut verify_cmd(&peers, &stack, &layout, &["--certificate-identity", &trusted]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    // `https://github.com/modelsign-test/models` is a prefix of the evil identity.
    let prefix = "https://github.com/modelsign-test/models";
    let out = run_fail(&mut verify_cmd(&peers, &stack, &layout, &["--certificate-identity-regexp", prefix]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    // The same issuer, another identity string: refused; the right issuer regexp and a
    // whole-identity regexp for the evil workflow: accepted (the check is not a blanket refusal).
    let whole = "https://github\\.com/modelsign-test/models-evil/\\.github/workflows/release\\.yml@refs/heads/main";
    run_ok(&mut verify_cmd(&peers, &stack, &layout, &["--certificate-identity-regexp", whole]));
}

/// GitHub Actions: no --identity-token, the token comes from the runner's endpoint
/// (ACTIONS_ID_TOKEN_REQUEST_URL + bearer ACTIONS_ID_TOKEN_REQUEST_TOKEN, audience sigstore).
#[test]
fn keyless_sign_with_the_github_actions_ambient_token() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let model = write_tiny_model(work.path(), "tiny", 5_000);
    let layout = format!("oci:{}:v1", work.path().join("layout").display());
    run_ok(peers.modelsign().args(["push", &layout]).arg(&model));
    let runner = ActionsTokenEndpoint::start(stack.github_token(DEFAULT_WORKFLOW, "sigstore"));
    let mut cmd = sign_cmd(&peers, &stack, &["sign", &layout]);
    cmd.env("ACTIONS_ID_TOKEN_REQUEST_URL", runner.url()).env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-secret");
    run_ok(&mut cmd);
    let request = runner.request();
    assert!(request.starts_with("GET /token?api-version=2.0&audience=sigstore "), "{request}");
    assert!(request.to_lowercase().contains("authorization: bearer runner-secret"), "{request}");
    let identity = Stack::github_identity(DEFAULT_WORKFLOW);
    run_ok(&mut verify_cmd(&peers, &stack, &layout, &["--certificate-identity", &identity]));
}

/// A stand-in for the GitHub Actions runner's token endpoint (not Sigstore: it only hands
/// out the token the stack's issuer minted), recording the request it got.
pub(crate) struct ActionsTokenEndpoint {
    addr: String,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ActionsTokenEndpoint {
    pub(crate) fn start(token: String) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 8192];
                let n = stream.read(&mut buf).unwrap_or(0);
                *record.lock().unwrap() = String::from_utf8_lossy(&buf[..n]).into_owned();
                let body = serde_json::json!({"value": token}).to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        ActionsTokenEndpoint { addr, seen }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/token?api-version=2.0", self.addr)
    }

    fn request(&self) -> String {
        self.seen.lock().unwrap().clone()
    }
}
