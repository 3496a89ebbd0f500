//! Keyless signing checks what it can before and after the network (issue 7 leftovers):
//! mistyped arguments and an unreachable or missing model fail before a Fulcio certificate is
//! requested (a proxy in the Fulcio URL counts the requests), and a timestamp authority's
//! answer made for another request (a replayed one, from the real local TSA) is refused by its
//! nonce, with no `model.sig` written.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;

use crate::support::sigstore_stack::{self, DEFAULT_WORKFLOW};
use crate::support::*;

/// A signing config naming `fulcio` (and a Rekor v1 at the same place; never reached here).
fn signing_config(dir: &Path, fulcio: &str) -> std::path::PathBuf {
    let service = |url: &str| serde_json::json!({"url": url, "majorApiVersion": 1, "validFor": {"start": "2020-01-01T00:00:00Z"}, "operator": "test"});
    let config = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
        "caUrls": [service(fulcio)],
        "oidcUrls": [],
        "rekorTlogUrls": [service(fulcio)],
        "tsaUrls": [],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    });
    let path = dir.join("signing_config.json");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    path
}

/// An unsigned token the client accepts as well-formed (Fulcio would check its signature).
fn token() -> String {
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    format!(
        "{}.{}.c2ln",
        b64(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        b64(
            serde_json::json!({"iss": "https://issuer.example", "sub": "a@example.com", "email": "a@example.com", "aud": "sigstore", "iat": now, "exp": now + 600})
        )
    )
}

#[test]
fn argument_and_target_mistakes_fail_before_fulcio_is_asked() {
    // Fulcio's URL is a proxy to a closed port: every request is counted, none answered.
    let fulcio = FaultProxy::start("127.0.0.1:9");
    let work = tempfile::tempdir().unwrap();
    let config = signing_config(work.path(), &fulcio.url());
    let root = repo_root().join("testdata/sigstore-conformance/bundle-verify/rekor2-dsse-happy-path/trusted_root.json");
    let model = write_tiny_model(work.path(), "tiny", 1000);
    std::fs::create_dir(work.path().join("layout")).unwrap();
    let token = token();
    let sign = |args: &[&str]| {
        let mut cmd: Command = modelsign();
        cmd.args(["--plain-http", "--timeout", "5s"]).args(args).args(["--identity-token", &token]);
        cmd.arg("--signing-config").arg(&config).arg("--trusted-root").arg(&root);
        cmd.env_remove("ACTIONS_ID_TOKEN_REQUEST_URL").env_remove("SIGSTORE_ID_TOKEN");
        cmd.output().unwrap()
    };
    let layout = format!("oci:{}:v1", work.path().join("layout").display());
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["sign", model.to_str().unwrap(), "--component", "*.bin"], "--component applies to references only"),
        (vec!["sign", "127.0.0.1:9/models/tiny:v1", "--signature", "s.json"], "apply to local folders only"),
        (vec!["sign", "127.0.0.1:9/models/tiny:v1"], "cannot reach registry 127.0.0.1:9"),
        (vec!["sign", &layout], "layout"),
    ];
    for (args, expected) in cases {
        let out = sign(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr_text(&out));
        let line = one_error_line(&out);
        assert!(line.contains(expected), "{args:?}: expected `{expected}` in: {line}");
        assert_eq!(fulcio.requests().len(), 0, "{args:?} asked Fulcio before checking: {line}");
    }
    assert!(!model.join("model.sig").exists());
    // The control: a good folder does reach Fulcio (so the count above can fail).
    let out = sign(&["sign", model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_text(&out));
    assert!(one_error_line(&out).contains("Fulcio"), "{}", stderr_text(&out));
    assert_eq!(fulcio.count("POST", "/api/v2/signingCert"), 1);
    assert!(!model.join("model.sig").exists());
}

#[test]
fn a_timestamp_made_for_another_request_is_refused_by_its_nonce() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let work = tempfile::tempdir().unwrap();
    // A real answer of the local TSA to another request (openssl's, with its own nonce) ...
    let data = work.path().join("other.txt");
    std::fs::write(&data, b"another signature").unwrap();
    let query = work.path().join("q.tsq");
    let status = Command::new("openssl")
        .args(["ts", "-query", "-sha256", "-cert", "-data"])
        .arg(&data)
        .arg("-out")
        .arg(&query)
        .status()
        .unwrap();
    assert!(status.success());
    let answer = work.path().join("a.tsr");
    let status = Command::new("curl")
        .args(["-sSf", "-H", "Content-Type: application/timestamp-query", "--data-binary"])
        .arg(format!("@{}", query.display()))
        .arg("-o")
        .arg(&answer)
        .arg(&stack.tsa_timestamp_url)
        .status()
        .unwrap();
    assert!(status.success());
    let replayed = std::fs::read(&answer).unwrap();
    // ... replayed by a proxy in front of the TSA for every timestamp request.
    let tsa_addr = stack.tsa_url.trim_start_matches("http://").to_string();
    let proxy = FaultProxy::with_faults(
        &tsa_addr,
        vec![Fault::canned("/api/v1/timestamp", 200, &[("Content-Type", "application/timestamp-reply")], &replayed)],
    );
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stack.signing_config_path).unwrap()).unwrap();
    for tsa in config["tsaUrls"].as_array_mut().unwrap() {
        tsa["url"] = format!("{}/api/v1/timestamp", proxy.url()).into();
    }
    let config_path = work.path().join("signing_config.json");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();

    let model = write_tiny_model(work.path(), "tiny", 1000);
    let peers = Peers::new(&tb);
    let out = peers
        .modelsign()
        .arg("sign")
        .arg(&model)
        .args(["--identity-token", &stack.github_token(DEFAULT_WORKFLOW, "sigstore")])
        .arg("--signing-config")
        .arg(&config_path)
        .arg("--trusted-root")
        .arg(&stack.trusted_root_path)
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env_remove("SIGSTORE_ID_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_text(&out));
    let line = one_error_line(&out);
    assert!(line.contains("a timestamp for another request (nonce"), "{line}");
    assert_eq!(proxy.count("POST", "/api/v1/timestamp"), 1);
    assert!(!model.join("model.sig").exists());
}
