//! A hostile or broken registry, through the CLI, with the fault proxy in front of real
//! registries: credentials never follow a redirect to another host, a registry that stops
//! answering fails within `--timeout` (and a single stall is retried), referrer listings
//! and failures are capped, a garbage fallback index does not verify, and `--plain-http`
//! names its hosts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const USER: &str = "mallory-target";
const PASSWORD: &str = "s3cret-do-not-leak";

fn ms(peers: &Peers) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "--no-progress"]);
    cmd
}

/// Runs `cmd`, killing it after `limit`: `None` when it had to be killed (it hung).
fn run_within(cmd: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Some(child.wait_with_output().expect("output"));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pushes a small model to `reg` as `repo:v1`; returns the reference through `proxy`.
fn push_model(peers: &Peers, reg: &Registry, proxy: &FaultProxy, dir: &Path, repo: &str) -> String {
    let model = write_tiny_model(dir, "tiny", 200_000);
    run_ok(ms(peers).args(["push", &format!("{}/{repo}:v1", reg.addr())]).arg(&model));
    format!("{}/{repo}:v1", proxy.addr())
}

/// Pushes and signs a small model; returns (reference through `proxy`, public key).
fn push_signed_model(peers: &Peers, reg: &Registry, proxy: &FaultProxy, dir: &Path, repo: &str) -> (String, PathBuf) {
    let reference = push_model(peers, reg, proxy, dir, repo);
    let (key, public) = keygen(dir, "signer", "p256");
    run_ok(ms(peers).args(["sign", &format!("{}/{repo}:v1", reg.addr()), "--key"]).arg(&key));
    (reference, public)
}

#[test]
fn credentials_never_follow_a_redirect_to_another_host() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::basic(USER, PASSWORD));
    // Blob storage on another origin that asks for credentials with a token realm on itself.
    let storage = FaultProxy::with_faults(
        reg.addr(),
        vec![
            Fault::canned("/token", 200, &[("Content-Type", "application/json")], br#"{"token":"stolen"}"#),
            Fault::canned(
                "/",
                401,
                &[("WWW-Authenticate", r#"Bearer realm="http://{self}/token",service="evil""#)],
                b"",
            ),
        ],
    );
    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::redirect_blobs(&storage.url())]);
    let tmp = tempfile::tempdir().unwrap();
    peers.docker_login(reg.addr(), USER, PASSWORD);
    peers.docker_login(proxy.addr(), USER, PASSWORD);
    let reference = push_model(&peers, &reg, &proxy, tmp.path(), "private/tiny");

    let out = tmp.path().join("out");
    let output = run_fail(ms(&peers).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(line.contains("never sent to another host") && line.contains(storage.addr()), "{line}");
    assert!(!line.contains(PASSWORD), "{line}");

    let seen = storage.requests();
    assert!(!seen.is_empty(), "the blob was not redirected");
    for r in &seen {
        assert_eq!(r.header("Authorization"), None, "credentials reached the redirect target: {r:?}");
    }
    assert_eq!(storage.count("GET", "/token"), 0, "a token was asked of the redirect target: {seen:?}");
    assert!(
        proxy.requests().iter().any(|r| r.header("Authorization").is_some()),
        "the registry itself got no credentials"
    );
}

#[test]
fn a_registry_that_never_answers_a_blob_fails_within_the_timeout() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let proxy = FaultProxy::start(reg.addr());
    let tmp = tempfile::tempdir().unwrap();
    let (reference, public) = push_signed_model(&peers, &reg, &proxy, tmp.path(), "models/stall");

    // No answer at all to GETs of the weights: verify (after the signatures) and pull.
    let weights = file_digest(&tmp.path().join("tiny/model.safetensors")).to_string();
    proxy.add_fault(Fault::stall(&format!("/blobs/{weights}")).method("GET"));
    let started = Instant::now();
    let output = run_within(
        ms(&peers).args(["--timeout", "4s", "verify", &reference, "--key"]).arg(&public),
        Duration::from_secs(60),
    )
    .expect("verify hung on a registry that does not answer");
    let took = started.elapsed();
    // A component that cannot be read did not verify (3); the registry is named either way.
    assert!(!output.status.success(), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(
        line.contains(proxy.addr()) && line.contains("sent nothing for 4s") && line.contains("--timeout"),
        "{line}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");

    let out = tmp.path().join("out");
    let output =
        run_within(ms(&peers).args(["--timeout", "4s", "pull", &reference, "-o"]).arg(&out), Duration::from_secs(60))
            .expect("pull hung on a registry that does not answer");
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    assert!(one_error_line(&output).contains("--timeout"), "{}", stderr_text(&output));
}

#[test]
fn a_blob_that_stops_midway_fails_and_a_single_stall_is_retried() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let proxy = FaultProxy::start(reg.addr());
    let tmp = tempfile::tempdir().unwrap();
    let reference = push_model(&peers, &reg, &proxy, tmp.path(), "models/midway");

    // Every download stops after 1000 bytes and stays open.
    proxy.add_fault(Fault::stall_any_blob(1000));
    let out = tmp.path().join("out");
    let output =
        run_within(ms(&peers).args(["--timeout", "3s", "pull", &reference, "-o"]).arg(&out), Duration::from_secs(60))
            .expect("pull hung on a body that stopped");
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    assert!(stderr_text(&output).contains("no data for 1s"), "{}", stderr_text(&output));

    // One stalled answer, then a healthy registry: retried, and the pull succeeds.
    proxy.clear_faults();
    proxy.add_fault(Fault::stall("/blobs/sha256:").method("GET").times(1));
    let out = tmp.path().join("out2");
    let output =
        run_within(ms(&peers).args(["--timeout", "6s", "pull", &reference, "-o"]).arg(&out), Duration::from_secs(60))
            .expect("pull hung");
    assert!(output.status.success(), "{}", stderr_text(&output));
    assert!(stderr_text(&output).contains("no answer for 2s"), "the retry is not reported: {}", stderr_text(&output));
    assert_eq!(files_under(&out), files_under(&tmp.path().join("tiny")));
}

#[test]
fn a_stalled_error_body_does_not_hold_the_error_up() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let proxy = FaultProxy::start(reg.addr());
    let tmp = tempfile::tempdir().unwrap();
    let reference = push_model(&peers, &reg, &proxy, tmp.path(), "models/errbody");
    let body = br#"{"errors":[{"code":"DENIED","message":"this message never ends .................."}]}"#;
    proxy.add_fault(
        Fault::canned("/blobs/sha256:", 400, &[("Content-Type", "application/json")], body)
            .method("GET")
            .stalled_body(),
    );
    let out = tmp.path().join("out");
    let started = Instant::now();
    let output = run_within(ms(&peers).args(["pull", &reference, "-o"]).arg(&out), Duration::from_secs(60))
        .expect("pull hung on an error body that never ends");
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(line.contains("HTTP 400") && line.contains(proxy.addr()), "{line}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}
