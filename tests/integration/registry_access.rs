//! The registry target's access to real registries, by the library directly (no CLI):
//! basic and token auth, retries of 503 and 429 through the fault proxy, an interrupted
//! download resumed with a Range, an unreachable registry, and redirected downloads that
//! must not carry credentials to another host. Shared helpers are in `registry_target.rs`.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use modelsign::Error;
use modelsign::digest::Hasher;
use modelsign::store::registry::credentials::DockerConfig;
use modelsign::store::registry::login::login_with;
use modelsign::store::{BlobSource, TargetOptions};
use modelsign::verifying_reader::VerifyingReader;
use tokio::io::AsyncReadExt;

use crate::registry_target::{
    Recorder, blob, fast_retries, one_line, push_artifact, push_bytes, push_signature, read_blob, target, target_with,
};
use crate::support::*;

/// A docker config file in `dir` holding `auths` for `addr`.
fn docker_config(dir: &Path, addr: &str, entry: serde_json::Value) -> DockerConfig {
    let path = dir.join(format!("config-{}.json", sha256_digest(entry.to_string().as_bytes())));
    std::fs::write(&path, serde_json::json!({ "auths": { addr: entry } }).to_string()).unwrap();
    DockerConfig::at(path)
}

fn basic_entry(user: &str, password: &str) -> serde_json::Value {
    use base64::Engine as _;
    serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")) })
}

#[tokio::test]
async fn basic_auth_good_bad_and_missing_credentials() {
    let bed = bed!(RegistryKind::basic("alice", "wonderland"));
    let (reg, tmp) = (bed.registry(), bed.path());

    let good = target_with(reg.addr(), "private", docker_config(tmp, reg.addr(), basic_entry("alice", "wonderland")));
    let desc = push_artifact(&good, "v1", &[b"secret weights"]).await;
    assert_eq!(good.resolve("v1").await.unwrap().digest, desc.digest);

    let bad = target_with(reg.addr(), "private", docker_config(tmp, reg.addr(), basic_entry("alice", "wrong")));
    let err = bad.push_blob(&blob(b"x"), &BlobSource::Bytes(b"x"), &modelsign::progress::NoProgress).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { status: 401, .. }), "{err}");
    let msg = one_line(&err);
    assert!(msg.contains(reg.addr()) && msg.contains("repository:private:pull,push"), "{msg}");
    assert!(msg.contains("were refused") && !msg.contains("wrong"), "{msg}");

    let anonymous = target(reg.addr(), "private");
    let msg = one_line(&anonymous.resolve("v1").await.unwrap_err());
    assert!(msg.contains("repository:private:pull") && msg.contains("no credentials"), "{msg}");

    // login checks before it stores; logout removes.
    let cfg = DockerConfig::at(tmp.join("login/config.json"));
    let plain = TargetOptions { plain_http: true, ..TargetOptions::default() };
    let err = login_with(&cfg, reg.addr(), "alice", "nope", &plain).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(!cfg.path().exists());
    login_with(&cfg, reg.addr(), "alice", "wonderland", &plain).await.unwrap();
    let after_login = target_with(reg.addr(), "private", cfg.clone());
    assert_eq!(after_login.resolve("v1").await.unwrap().digest, desc.digest);
    cfg.remove(reg.addr()).unwrap();
    assert!(cfg.lookup(reg.addr()).unwrap().is_none());
}

#[tokio::test]
async fn token_auth_reuses_tokens_and_reports_refusals() {
    let _tb = require_testbed!();
    let reg = Registry::start(RegistryKind::token("bob", "builder"));
    let ts = reg.token_server().expect("token server");
    let tmp = tempfile::tempdir().unwrap();

    let good =
        target_with(reg.addr(), "tok/repo", docker_config(tmp.path(), reg.addr(), basic_entry("bob", "builder")));
    let subject = push_artifact(&good, "v1", &[b"a", b"b", b"c", b"d"]).await;
    for _ in 0..5 {
        good.resolve("v1").await.unwrap();
        good.fetch_manifest("v1").await.unwrap();
    }
    let stats = ts.stats();
    let issued = stats["issued"].as_u64().unwrap();
    // One token for pull,push and one for pull (at most a few more if two raced), not one per request.
    assert!((1..=4).contains(&issued), "tokens issued: {stats}");
    // Referrers (fallback tag on distribution) work under token auth too.
    push_signature(&good, &subject, "sig").await;
    assert_eq!(good.referrers(&subject).await.unwrap().len(), 1);

    // An identity token (docker's `identitytoken`) is exchanged through the OAuth2 POST.
    let with_identity = target_with(
        reg.addr(),
        "tok/repo",
        docker_config(tmp.path(), reg.addr(), serde_json::json!({ "identitytoken": ts.refresh_token() })),
    );
    assert_eq!(with_identity.resolve("v1").await.unwrap().digest, subject.digest);
    assert!(ts.stats()["post_refresh"].as_u64().unwrap() >= 1, "{}", ts.stats());

    let bad = target_with(reg.addr(), "tok/repo", docker_config(tmp.path(), reg.addr(), basic_entry("bob", "wrong")));
    let err = bad.resolve("v1").await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    let msg = one_line(&err);
    assert!(msg.contains(reg.addr()) && msg.contains("repository:tok/repo:pull"), "{msg}");
    assert!(msg.contains("token server") && !msg.contains("wrong"), "{msg}");

    let anonymous = target(reg.addr(), "tok/repo");
    let msg = one_line(&anonymous.resolve("v1").await.unwrap_err());
    assert!(msg.contains("no credentials"), "{msg}");
}

#[tokio::test]
async fn retries_503_and_429_then_succeeds() {
    let _tb = require_testbed!();
    let reg = Registry::start(RegistryKind::Distribution);
    let proxy = FaultProxy::with_faults(
        reg.addr(),
        vec![
            Fault::unavailable("/blobs/uploads/", 2).method("POST"),
            Fault::too_many_requests("/manifests/", 1).method("PUT"),
            Fault::status("/blobs/uploads/", 503, None).method("PUT").times(1),
        ],
    );
    let t = target(proxy.addr(), "flaky");
    let data = pseudo_random_bytes(200_000, 3);
    let desc = blob(&data);
    let rec = Recorder::default();
    let started = Instant::now();
    t.push_blob(&desc, &BlobSource::Bytes(&data), &rec).await.unwrap();
    // Two 503s with Retry-After: 1 on the POST, then a 503 on the PUT (backoff).
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After was honoured");
    let notes = rec.notes();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes[0].contains("HTTP 503") && notes[0].contains("flaky"), "{notes:?}");
    assert!(rec.events().iter().any(|e| e == "restart 0"));
    assert_eq!(*rec.advanced.lock().unwrap(), data.len() as u64);
    assert!(t.blob_exists(&desc).await.unwrap());

    push_artifact(&t, "v1", &[&data]).await;
    assert!(proxy.faults_applied("status") >= 4);
    t.resolve("v1").await.unwrap();

    // A registry that stays unavailable: bounded attempts, then one line with the status.
    proxy.add_fault(Fault::status("/manifests/", 503, Some(0)));
    let before = proxy.count("HEAD", "/manifests/v1");
    let err = t.resolve("v1").await.unwrap_err();
    assert_eq!(proxy.count("HEAD", "/manifests/v1") - before, fast_retries().max_attempts as usize);
    let msg = one_line(&err);
    assert!(msg.contains("HTTP 503") && msg.contains("flaky:v1"), "{msg}");
}

#[tokio::test]
async fn interrupted_download_resumes_with_a_range() {
    let _tb = require_testbed!();
    let reg = Registry::start(RegistryKind::Distribution);
    let proxy = FaultProxy::start(reg.addr());
    let t = target(proxy.addr(), "resume");
    let data = pseudo_random_bytes(1_500_000, 11);
    let desc = push_bytes(&t, &data).await;

    proxy.add_fault(Fault::cut_blob(&desc.digest.to_string(), 600_000).times(1));
    let mut got = Vec::new();
    let mut r = t.fetch_blob(&desc, 0).await.unwrap();
    let err = r.read_to_end(&mut got).await.unwrap_err();
    assert!(err.to_string().contains("resume"), "names the repository: {err}");
    assert!(!got.is_empty() && got.len() < data.len(), "{}", got.len());

    let mut prefix = Hasher::new();
    prefix.update(&got);
    let rest = t.fetch_blob(&desc, got.len() as u64).await.unwrap();
    let mut verified = VerifyingReader::new(rest, desc.digest.clone(), desc.size, "blob", prefix);
    verified.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, data);
    let ranged = proxy.requests().into_iter().filter(|r| r.method == "GET" && r.path.contains("/blobs/")).count();
    assert_eq!(ranged, 2);
}

#[tokio::test]
async fn unreachable_registry_fails_fast_in_one_line() {
    // No test bed needed: nothing listens on this port.
    let closed = closed_port();
    let addr = closed.addr.clone();
    let t = target(&addr, "gone");
    let started = Instant::now();
    let err = t.resolve("v1").await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let msg = one_line(&err);
    assert!(msg.contains(&addr) && msg.to_lowercase().contains("refused"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(2), "no retries for a registry never reached");
}

/// A one-trick HTTP server on `ip`: answers every request with `answer(request head)` and
/// records the heads it saw. Stops with the runtime.
async fn tiny_server(
    ip: &str,
    answer: impl Fn(&str) -> String + Send + Sync + 'static,
) -> (String, std::sync::Arc<Mutex<Vec<String>>>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0")).await.expect("bind tiny server");
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let (seen2, answer) = (seen.clone(), std::sync::Arc::new(answer));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (seen, answer) = (seen2.clone(), answer.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && sock.read_exact(&mut byte).await.is_ok() {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let reply = answer(&head);
                seen.lock().unwrap().push(head);
                let _ = sock.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn redirected_downloads_do_not_carry_credentials_to_another_host() {
    // No test bed needed: two fake servers, the registry on 127.0.0.1 and blob storage on 127.0.0.2.
    let (storage, storage_seen) = tiny_server("127.0.0.2", |_| {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_string()
    })
    .await;
    let location = format!("http://{storage}/bucket/blob?sig=1");
    let (registry, registry_seen) = tiny_server("127.0.0.1", move |head| {
        if !head.to_ascii_lowercase().contains("\r\nauthorization: basic ") {
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"fake\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string()
        } else {
            format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let t = target_with(&registry, "r", docker_config(tmp.path(), &registry, basic_entry("u", "p")));
    let desc = blob(b"hello");
    assert_eq!(read_blob(&t, &desc, 0).await.unwrap(), b"hello");
    assert_eq!(read_blob(&t, &desc, 2).await.unwrap(), b"llo", "the Range goes along, the server answered 200");
    let registry_seen = registry_seen.lock().unwrap().clone();
    assert!(registry_seen.iter().any(|h| h.to_ascii_lowercase().contains("authorization: basic")), "{registry_seen:?}");
    let storage_seen = storage_seen.lock().unwrap().clone();
    assert_eq!(storage_seen.len(), 2);
    for head in &storage_seen {
        assert!(!head.to_ascii_lowercase().contains("authorization"), "credentials leaked: {head}");
    }
    assert!(storage_seen[1].to_ascii_lowercase().contains("range: bytes=2-4"), "{storage_seen:?}");
}

/// A tagged manifest goes up in one PUT, at the tag: the registry checks its layers once,
/// and the manifest is still there by digest.
#[tokio::test]
async fn a_tagged_manifest_is_put_once_and_found_by_digest() {
    let _tb = require_testbed!();
    let reg = Registry::start(RegistryKind::Distribution);
    let proxy = FaultProxy::start(reg.addr());
    let t = target(proxy.addr(), "once");
    let pushed = push_artifact(&t, "v1", &[b"one layer".as_slice()]).await;
    let puts: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/manifests/"))
        .map(|r| r.path)
        .collect();
    assert_eq!(puts, vec!["/v2/once/manifests/v1".to_string()]);
    let by_digest = t.resolve(&pushed.digest.to_string()).await.expect("found by digest");
    assert_eq!(by_digest.digest, pushed.digest);
}
