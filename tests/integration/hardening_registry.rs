//! A hostile or broken registry, through the CLI, with the fault proxy in front of real
//! registries: credentials never follow a redirect to another host, a registry that stops
//! answering a download or an upload fails within `--timeout` (and a single stall is retried), referrer listings
//! and failures are capped (verify gives up past ten failed referrer fetches), a garbage fallback index does not verify, and `--plain-http`
//! names its hosts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

const USER: &str = "mallory-target";
const PASSWORD: &str = "s3cret-do-not-leak";

fn ms(peers: &Peers) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "--no-progress"]);
    cmd
}

/// Pushes a small model to `reg` as `repo:v1`; returns the reference through `proxy`.
fn push_model(peers: &Peers, reg: &Registry, proxy: &FaultProxy, dir: &Path, repo: &str) -> String {
    let model = write_tiny_model(dir, "tiny", 200_000);
    run_ok(ms(peers).args(["push", &format!("{}/{repo}:v1", reg.addr())]).arg(&model));
    format!("{}/{repo}:v1", proxy.addr())
}

#[test]
fn credentials_never_follow_a_redirect_to_another_host() {
    let bed = bed!(RegistryKind::basic(USER, PASSWORD));
    let (reg, peers) = (bed.registry(), &bed.peers);
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
    let reference = push_model(peers, reg, &proxy, tmp.path(), "private/tiny");

    let out = tmp.path().join("out");
    let output = run_fail(ms(peers).args(["pull", &reference, "-o"]).arg(&out));
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
    let bed = proxied_bed!(RegistryKind::Distribution);
    let (reference, public) = bed.push_signed_model("models/stall");

    // No answer at all to GETs of the weights: verify (after the signatures) and pull.
    let weights = file_digest(&bed.path().join("tiny/model.safetensors")).to_string();
    bed.proxy.add_fault(Fault::stall(&format!("/blobs/{weights}")).method("GET"));
    let started = Instant::now();
    let output = run_within(
        bed.ms().args(["--timeout", "4s", "verify", &reference, "--key"]).arg(&public),
        Duration::from_secs(60),
    )
    .expect("verify hung on a registry that does not answer");
    let took = started.elapsed();
    // A component that cannot be read did not verify (3); the registry is named either way.
    assert!(!output.status.success(), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(
        line.contains(bed.proxy.addr()) && line.contains("sent nothing for 4s") && line.contains("--timeout"),
        "{line}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");

    let out = bed.path().join("out");
    let output =
        run_within(bed.ms().args(["--timeout", "4s", "pull", &reference, "-o"]).arg(&out), Duration::from_secs(60))
            .expect("pull hung on a registry that does not answer");
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    assert!(one_error_line(&output).contains("--timeout"), "{}", stderr_text(&output));
}

#[test]
fn a_blob_that_stops_midway_fails_and_a_single_stall_is_retried() {
    let bed = proxied_bed!(RegistryKind::Distribution);
    let reference = bed.push_model("models/midway");

    // Every download stops after 1000 bytes and stays open.
    bed.proxy.add_fault(Fault::stall_any_blob(1000));
    let out = bed.path().join("out");
    let output =
        run_within(bed.ms().args(["--timeout", "3s", "pull", &reference, "-o"]).arg(&out), Duration::from_secs(60))
            .expect("pull hung on a body that stopped");
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    assert!(stderr_text(&output).contains("no data for 1s"), "{}", stderr_text(&output));

    // One stalled answer, then a healthy registry: retried, and the pull succeeds.
    bed.proxy.clear_faults();
    bed.proxy.add_fault(Fault::stall("/blobs/sha256:").method("GET").times(1));
    let out = bed.path().join("out2");
    let output =
        run_within(bed.ms().args(["--timeout", "6s", "pull", &reference, "-o"]).arg(&out), Duration::from_secs(60))
            .expect("pull hung");
    assert!(output.status.success(), "{}", stderr_text(&output));
    assert!(stderr_text(&output).contains("no answer for 2s"), "the retry is not reported: {}", stderr_text(&output));
    assert_eq!(files_under(&out), files_under(&bed.path().join("tiny")));
}

#[test]
fn a_stalled_error_body_does_not_hold_the_error_up() {
    let bed = proxied_bed!(RegistryKind::Distribution);
    let reference = bed.push_model("models/errbody");
    let body = br#"{"errors":[{"code":"DENIED","message":"this message never ends .................."}]}"#;
    bed.proxy.add_fault(
        Fault::canned("/blobs/sha256:", 400, &[("Content-Type", "application/json")], body)
            .method("GET")
            .stalled_body(),
    );
    let out = bed.path().join("out");
    let started = Instant::now();
    let output = run_within(bed.ms().args(["pull", &reference, "-o"]).arg(&out), Duration::from_secs(60))
        .expect("pull hung on an error body that never ends");
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(line.contains("HTTP 400") && line.contains(bed.proxy.addr()), "{line}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

#[test]
fn referrer_listings_and_fetches_are_capped() {
    let bed = proxied_bed!(RegistryKind::Distribution);
    let (reference, public) = bed.push_signed_model("models/flood");

    // Pages of 300 entries, forever: stops past 1000 entries, after 4 pages.
    bed.proxy.add_fault(Fault::referrer_flood(300));
    for args in [vec!["verify", &reference, "--key", public.to_str().unwrap()], vec!["discover", &reference]] {
        let started = Instant::now();
        let output = run_within(bed.ms().args(&args), Duration::from_secs(60))
            .expect("an endless referrer listing was followed");
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr_text(&output));
        let line = one_error_line(&output);
        assert!(line.contains("more than 1000 referrers") && line.contains("models/flood"), "{line}");
        assert!(started.elapsed() < Duration::from_secs(30), "{args:?} took {:?}", started.elapsed());
    }
    assert!(bed.proxy.faults_applied("flood") <= 8, "{} pages read", bed.proxy.faults_applied("flood"));

    // One entry a page, forever: stops after 100 pages.
    bed.proxy.clear_faults();
    bed.proxy.add_fault(Fault::referrer_flood(1));
    let output = run_within(bed.ms().args(["discover", &reference]), Duration::from_secs(60))
        .expect("an endless referrer listing was followed");
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    assert!(one_error_line(&output).contains("more than 100 pages of referrers"), "{}", stderr_text(&output));
}

#[test]
fn verify_gives_up_on_a_registry_past_ten_failed_referrer_fetches() {
    let bed = proxied_bed!(RegistryKind::Distribution);
    let (reference, public) = bed.push_signed_model("models/failing");
    let listed = || -> Vec<String> {
        let out = run_ok(bed.ms().args(["discover", "--output", "json", &reference]));
        let tree = stdout_json(&out);
        tree["referrers"].as_array().unwrap().iter().map(|r| r["digest"].as_str().unwrap().to_string()).collect()
    };
    let good = listed();
    assert!(!good.is_empty());
    // More signatures (each `sign` attaches two referrers), whose manifests the registry will
    // refuse to serve (403: not retried, so the test is quick; 503s are retried, then charged alike).
    let (key, _) = keygen(bed.path(), "other", "p256");
    for _ in 0..6 {
        run_ok(bed.ms().args(["sign", &bed.direct("models/failing"), "--key"]).arg(&key));
    }
    let failing: Vec<String> = listed().into_iter().filter(|d| !good.contains(d)).collect();
    assert!(failing.len() >= 11, "{failing:?}");

    // Ten failures are tolerated: the trusted signature still verifies.
    for digest in &failing[..10] {
        bed.proxy.add_fault(Fault::status(&format!("/manifests/{digest}"), 403, None).method("GET"));
    }
    let output = run_ok(bed.ms().args(["verify", &reference, "--key"]).arg(&public));
    assert!(output.status.success());

    // The eleventh is one too many: a registry error (exit 1) naming the cap, not "no signature".
    for digest in &failing[10..] {
        bed.proxy.add_fault(Fault::status(&format!("/manifests/{digest}"), 403, None).method("GET"));
    }
    let started = Instant::now();
    let output = run_within(bed.ms().args(["verify", &reference, "--key"]).arg(&public), Duration::from_secs(60))
        .expect("verify hung");
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(line.contains("more than 10 referrers could not be fetched") && line.contains("403"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

#[test]
fn a_registry_that_never_answers_an_upload_fails_within_the_timeout() {
    let bed = proxied_bed!(RegistryKind::Distribution);
    // A small model (one streamed PUT per blob) and one with a 9 MiB file (chunked: PATCHes,
    // then an empty PUT): every PUT is taken, body and all, and never answered.
    let small = write_tiny_model(bed.path(), "small", 50_000);
    let big = write_tiny_model(bed.path(), "big", 9 << 20);
    bed.proxy.add_fault(Fault::stall("/blobs/uploads/").method("PUT"));
    for (model, repo) in [(&small, "models/put-small"), (&big, "models/put-big")] {
        let started = Instant::now();
        let output = run_within(
            bed.ms().args(["--timeout", "3s", "push", &bed.via_proxy(repo)]).arg(model),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|| panic!("push of {repo} hung on an upload never answered"));
        assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
        let line = one_error_line(&output);
        assert!(
            line.contains("push blob")
                && line.contains("has not answered the upload for 3s")
                && line.contains("--timeout"),
            "{line}"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{repo} took {:?}", started.elapsed());
    }
    assert!(bed.proxy.faults_applied("stall") >= 2);

    // Nothing was left half-pushed under the tags: the registry has no manifest for them.
    for repo in ["models/put-small", "models/put-big"] {
        let (status, _) = http_get(
            &format!("http://{}/v2/{repo}/manifests/v1", bed.registry.addr()),
            "application/vnd.oci.image.manifest.v1+json",
        );
        assert_eq!(status, 404, "{repo}");
    }
}

#[test]
fn a_garbage_fallback_index_does_not_verify() {
    let bed = proxied_bed!(RegistryKind::Distribution);
    let (reference, public) = bed.push_signed_model("models/garbage");
    run_ok(bed.ms().args(["verify", &reference, "--key"]).arg(&public));

    bed.proxy.add_fault(Fault::canned(
        "/manifests/sha256-",
        200,
        &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
        b"{\"schemaVersion\":2,\"manifests\":\"junk",
    ));
    let output = run_fail(bed.ms().args(["verify", &reference, "--key"]).arg(&public));
    assert_eq!(output.status.code(), Some(3), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(line.contains("referrers index sha256-") && line.contains("cannot be read"), "{line}");
    assert!(bed.proxy.faults_applied("canned") >= 1);
}

/// An address of this machine that is not loopback (the one its default route leaves
/// from), if it has one. No packet is sent.
fn non_loopback_ip() -> Option<String> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified() && ip.is_ipv4()).then(|| ip.to_string())
}

#[test]
fn plain_http_names_its_hosts_and_warns_about_clear_text_credentials() {
    let bed = bed!(RegistryKind::basic(USER, PASSWORD));
    let (reg, peers) = (bed.registry(), &bed.peers);
    let other = Registry::start(RegistryKind::Distribution);
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 10_000);
    peers.docker_login(reg.addr(), USER, PASSWORD);
    let warning = "warning: --plain-http: credentials for";

    // A host list: plain HTTP for the registries named, HTTPS for the others.
    let listed = format!("--plain-http={}", reg.addr());
    let out = run_ok(peers.modelsign().args([&listed, "push", &format!("{}/m/tiny:v1", reg.addr())]).arg(&model));
    assert!(!stderr_text(&out).contains(warning), "{}", stderr_text(&out));
    let output =
        run_fail(peers.modelsign().args([&listed, "push", &format!("{}/m/tiny:v1", other.addr())]).arg(&model));
    let line = one_error_line(&output);
    assert!(line.contains(other.addr()) && line.contains("TLS"), "HTTPS was not tried: {line}");
    // Loopback: no warning.
    let out = run_ok(peers.modelsign().args(["--plain-http", "inspect", &format!("{}/m/tiny:v1", reg.addr())]));
    assert!(!stderr_text(&out).contains(warning), "{}", stderr_text(&out));

    let Some(ip) = non_loopback_ip() else {
        eprintln!("SKIPPED part: this machine has no non-loopback address");
        return;
    };
    // The same registry reached on a non-loopback address: one warning with plain HTTP for
    // everyone, none when the host is named.
    let proxy = FaultProxy::with_faults_on(&ip, reg.addr(), Vec::new());
    peers.docker_login(proxy.addr(), USER, PASSWORD);
    let remote = format!("{}/m/tiny:v1", proxy.addr());
    let out = run_ok(peers.modelsign().args(["--plain-http", "pull", &remote, "-o"]).arg(tmp.path().join("a")));
    let err = stderr_text(&out);
    assert_eq!(err.matches(warning).count(), 1, "{err}");
    assert!(err.contains(&format!("--plain-http={}", proxy.addr())), "{err}");
    let out = run_ok(
        peers
            .modelsign()
            .args([&format!("--plain-http={}", proxy.addr()), "pull", &remote, "-o"])
            .arg(tmp.path().join("b")),
    );
    assert!(!stderr_text(&out).contains(warning), "{}", stderr_text(&out));

    // A token realm in clear text on another, non-loopback host gets no credentials.
    let evil = FaultProxy::with_faults_on(
        &ip,
        reg.addr(),
        vec![Fault::canned("/token", 200, &[("Content-Type", "application/json")], br#"{"token":"t"}"#)],
    );
    let challenge = format!(r#"Bearer realm="http://{}/token",service="x""#, evil.addr());
    let front =
        FaultProxy::with_faults(reg.addr(), vec![Fault::canned("/v2/", 401, &[("WWW-Authenticate", &challenge)], b"")]);
    peers.docker_login(front.addr(), USER, PASSWORD);
    let output = run_fail(peers.modelsign().args(["--plain-http", "inspect", &format!("{}/m/tiny:v1", front.addr())]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(line.contains("not HTTPS") && line.contains(evil.addr()), "{line}");
    for r in evil.requests() {
        assert_eq!(r.header("Authorization"), None, "credentials went to a clear-text token realm: {r:?}");
    }
}
