//! The registry target against real registries: distribution 2.8 (anonymous, basic auth,
//! token auth), go-containerregistry and cue-labs ociserver, with the fault proxy for
//! retries and interrupted downloads. Calls the library directly (no CLI).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use modelsign::Error;
use modelsign::digest::{Digest, Hasher};
use modelsign::oci::{self, Annotations, Descriptor, Manifest};
use modelsign::progress::Progress;
use modelsign::store::registry::credentials::DockerConfig;
use modelsign::store::registry::login::login_with;
use modelsign::store::registry::{Registry as RegistryTarget, RetryPolicy};
use modelsign::store::{BlobSource, Target, TargetOptions};
use modelsign::verifying_reader::VerifyingReader;
use tokio::io::AsyncReadExt;

use crate::support::*;

const ARTIFACT_TYPE: &str = "application/vnd.example.model.v1";
const SIGNATURE_TYPE: &str = "application/vnd.example.signature.v1+json";

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(2),
    }
}

/// A registry target on `addr` (plain HTTP) reading credentials from `config` only (a file
/// that does not exist by default, so the developer's own docker config never interferes).
fn target_with(addr: &str, repo: &str, config: DockerConfig) -> Target {
    let options = TargetOptions { plain_http: true, ..TargetOptions::default() };
    let mut r = RegistryTarget::new(addr, repo, &options).expect("registry target");
    r.set_retry_policy(fast_retries());
    r.set_docker_config(config);
    Target::Registry(r)
}

fn target(addr: &str, repo: &str) -> Target {
    target_with(addr, repo, DockerConfig::at("/nonexistent/modelsign-test/config.json"))
}

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

/// Records progress events as text.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    advanced: Mutex<u64>,
}

impl Recorder {
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
    fn notes(&self) -> Vec<String> {
        self.events().into_iter().filter(|e| e.starts_with("note ")).collect()
    }
}

impl Progress for Recorder {
    fn start(&self, id: &Digest, _label: &str, total: u64) {
        self.events.lock().unwrap().push(format!("start {id} {total}"));
    }
    fn advance(&self, _id: &Digest, bytes: u64) {
        *self.advanced.lock().unwrap() += bytes;
    }
    fn restart(&self, _id: &Digest, position: u64) {
        *self.advanced.lock().unwrap() = position;
        self.events.lock().unwrap().push(format!("restart {position}"));
    }
    fn finish(&self, id: &Digest) {
        self.events.lock().unwrap().push(format!("finish {id}"));
    }
    fn note(&self, message: &str) {
        self.events.lock().unwrap().push(format!("note {message}"));
    }
}

fn blob(data: &[u8]) -> Descriptor {
    Descriptor::of_bytes("application/octet-stream", data)
}

fn empty_config() -> Descriptor {
    Descriptor::of_bytes(oci::MEDIA_TYPE_EMPTY, oci::EMPTY_JSON)
}

async fn push_bytes(t: &Target, data: &[u8]) -> Descriptor {
    let desc = blob(data);
    t.push_blob(&desc, &BlobSource::Bytes(data), &modelsign::progress::NoProgress).await.expect("push blob");
    desc
}

/// Pushes an artifact (empty config + the given layers) tagged `tag`; returns its descriptor.
async fn push_artifact(t: &Target, tag: &str, layers: &[&[u8]]) -> Descriptor {
    let config = push_bytes(t, oci::EMPTY_JSON).await;
    assert_eq!(config.digest, empty_config().digest);
    let mut descs = Vec::new();
    for l in layers {
        descs.push(push_bytes(t, l).await);
    }
    let manifest = Manifest::new(Some(ARTIFACT_TYPE.into()), empty_config(), descs);
    let bytes = manifest.to_bytes();
    t.push_manifest(&bytes, oci::MEDIA_TYPE_IMAGE_MANIFEST, Some(tag)).await.expect("push manifest").descriptor
}

/// A signature-like referrer of `subject`: its own small layer, annotated with `name`.
async fn push_signature(t: &Target, subject: &Descriptor, name: &str) -> Descriptor {
    let layer = push_bytes(t, format!("{{\"signature\":\"{name}\"}}").as_bytes()).await;
    push_bytes(t, oci::EMPTY_JSON).await;
    let mut m = Manifest::new(Some(SIGNATURE_TYPE.into()), empty_config(), vec![layer]);
    m.subject = Some(subject.plain());
    m.annotations = Annotations::from([("test.name".to_string(), name.to_string())]);
    let bytes = m.to_bytes();
    let desc = t.push_referrer(&bytes, &m).await.expect("push referrer");
    assert_eq!(desc.digest, Digest::of(&bytes));
    assert_eq!(desc.artifact_type.as_deref(), Some(SIGNATURE_TYPE));
    desc
}

async fn read_blob(t: &Target, desc: &Descriptor, offset: u64) -> Result<Vec<u8>, std::io::Error> {
    let mut r = t.fetch_blob(desc, offset).await.expect("fetch blob");
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out)
}

fn one_line(e: &Error) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "error is not one line: {s}");
    s
}

#[tokio::test]
async fn blobs_and_manifests_round_trip_on_each_registry() {
    let _tb = require_testbed!();
    for kind in RegistryKind::anonymous_kinds() {
        let reg = Registry::start(kind.clone());
        let t = target(reg.addr(), "models/tiny");
        let small = b"tokenizer bytes".to_vec();
        let big = pseudo_random_bytes(3 * 1024 * 1024 + 17, 7);
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("weights.bin");
        std::fs::write(&file, &big).unwrap();

        // A file source, with progress.
        let big_desc = blob(&big);
        assert!(!t.blob_exists(&big_desc).await.unwrap(), "{kind:?}");
        let rec = Recorder::default();
        t.push_blob(&big_desc, &BlobSource::File(&file), &rec).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert!(t.blob_exists(&big_desc).await.unwrap());
        assert_eq!(*rec.advanced.lock().unwrap(), big.len() as u64, "{kind:?}");
        assert_eq!(
            rec.events(),
            vec![format!("start {} {}", big_desc.digest, big.len()), format!("finish {}", big_desc.digest)]
        );

        let manifest_desc = push_artifact(&t, "v1", &[&small, &big]).await;
        let resolved = t.resolve("v1").await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(
            resolved,
            Descriptor::new(oci::MEDIA_TYPE_IMAGE_MANIFEST, manifest_desc.digest.clone(), manifest_desc.size)
        );
        assert_eq!(t.resolve(&manifest_desc.digest.to_string()).await.unwrap().digest, manifest_desc.digest);
        let (by_tag, bytes) = t.fetch_manifest("v1").await.unwrap();
        assert_eq!(by_tag.digest, manifest_desc.digest);
        let (by_digest, _) = t.fetch_manifest(&manifest_desc.digest.to_string()).await.unwrap();
        assert_eq!(by_digest.media_type, oci::MEDIA_TYPE_IMAGE_MANIFEST, "{kind:?}");
        let m = Manifest::parse(&bytes, "m").unwrap();
        assert_eq!(m.layers[1], big_desc);

        assert_eq!(read_blob(&t, &big_desc, 0).await.unwrap(), big, "{kind:?}");
        assert_eq!(t.fetch_small_blob(&m.layers[0], 1024).await.unwrap(), small);
        // Resume: a closed Range (go-containerregistry refuses open ones).
        for offset in [1, 1_000_000, big.len() as u64 - 1, big.len() as u64] {
            let tail = read_blob(&t, &big_desc, offset).await.unwrap();
            assert_eq!(tail, &big[offset as usize..], "{kind:?} from {offset}");
        }

        // Not found: one line naming the tag and the repository.
        let err = t.fetch_manifest("nope").await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{kind:?}: {err}");
        let msg = one_line(&err);
        assert!(msg.contains("nope") && msg.contains("models/tiny") && msg.contains(reg.addr()), "{msg}");
        assert!(matches!(t.resolve("nope").await, Err(Error::NotFound { .. })));
        let missing = blob(b"never pushed");
        assert!(!t.blob_exists(&missing).await.unwrap());
        assert!(matches!(t.fetch_blob(&missing, 0).await.err(), Some(Error::NotFound { .. })), "{kind:?}");

        // Copying between repositories: a mount on distribution, an upload from the other target elsewhere.
        let other = target(reg.addr(), "models/copy");
        let mounted = other.mount_blob(&big_desc, &t).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        if kind == RegistryKind::Distribution {
            assert!(mounted, "distribution mounts blobs across repositories");
        }
        if !mounted {
            other.push_blob(&big_desc, &BlobSource::Target(&t), &modelsign::progress::NoProgress).await.unwrap();
        }
        assert_eq!(read_blob(&other, &big_desc, 0).await.unwrap(), big, "{kind:?}");
    }
}

#[tokio::test]
async fn manifests_over_the_size_limit_are_refused() {
    let _tb = require_testbed!();
    let reg = Registry::start(RegistryKind::Gcr); // accepts manifests naming missing blobs
    let t = target(reg.addr(), "big");
    let layers: Vec<Descriptor> = (0..30_000u32)
        .map(|i| {
            let mut d = blob(&i.to_le_bytes());
            d.annotations.insert("pad".into(), "x".repeat(100));
            d
        })
        .collect();
    let bytes = Manifest::new(None, empty_config(), layers).to_bytes();
    assert!(bytes.len() as u64 > modelsign::store::MAX_MANIFEST_SIZE);
    t.push_manifest(&bytes, oci::MEDIA_TYPE_IMAGE_MANIFEST, Some("huge")).await.unwrap();
    let err = t.fetch_manifest("huge").await.unwrap_err();
    assert!(one_line(&err).contains("limit"), "{err}");
}

#[tokio::test]
async fn referrers_through_the_api_or_the_fallback_tag() {
    let _tb = require_testbed!();
    for kind in RegistryKind::anonymous_kinds() {
        let reg = Registry::start(kind.clone());
        let t = target(reg.addr(), "signed");
        let subject = push_artifact(&t, "v1", &[b"weights"]).await;
        assert!(t.referrers(&subject).await.unwrap().is_empty(), "{kind:?}");
        let a = push_signature(&t, &subject, "a").await;
        let b = push_signature(&t, &subject, "b").await;
        // A fresh target (no cached API state) sees the same.
        for reader in [&t, &target(reg.addr(), "signed")] {
            let mut listed = reader.referrers(&subject).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            listed.sort_by(|x, y| x.digest.cmp(&y.digest));
            let mut want = vec![a.digest.clone(), b.digest.clone()];
            want.sort();
            assert_eq!(listed.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(), want, "{kind:?}");
            for d in &listed {
                assert_eq!(d.media_type, oci::MEDIA_TYPE_IMAGE_MANIFEST);
                // cue-labs leaves artifactType out of its API answers.
                if kind != RegistryKind::Cue {
                    assert!(d.artifact_type.is_some(), "{kind:?}: {d:?}");
                }
            }
        }
        let fallback = t.fetch_manifest(&subject.digest.fallback_tag()).await;
        if kind.supports_referrers_api() {
            assert!(matches!(fallback, Err(Error::NotFound { .. })), "{kind:?}: the API was there, no fallback tag");
        } else {
            let (desc, bytes) = fallback.expect("the fallback index tag");
            assert_eq!(desc.media_type, oci::MEDIA_TYPE_IMAGE_INDEX);
            let index = oci::Index::parse(&bytes, "fallback").unwrap();
            assert_eq!(index.manifests, vec![a.clone(), b.clone()], "entries keep artifactType and annotations");
            // Pushing the same referrer again does not duplicate it.
            push_signature(&t, &subject, "a").await;
            assert_eq!(t.referrers(&subject).await.unwrap().len(), 2);
        }
    }
}

#[tokio::test]
async fn concurrent_referrers_both_land_in_the_fallback_index() {
    let _tb = require_testbed!();
    let reg = Registry::start(RegistryKind::Distribution);
    let t = target(reg.addr(), "race");
    for round in 0..3 {
        let subject = push_artifact(&t, &format!("v{round}"), &[format!("weights {round}").as_bytes()]).await;
        // Two writers with their own state, as two processes would be.
        let (w1, w2) = (target(reg.addr(), "race"), target(reg.addr(), "race"));
        let (a, b) = tokio::join!(push_signature(&w1, &subject, "one"), push_signature(&w2, &subject, "two"));
        let listed: Vec<Digest> = t.referrers(&subject).await.unwrap().into_iter().map(|d| d.digest).collect();
        assert!(listed.contains(&a.digest) && listed.contains(&b.digest), "round {round}: {listed:?}");
        assert_eq!(listed.len(), 2);
    }
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
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let t = target(&addr, "gone");
    let started = Instant::now();
    let err = t.resolve("v1").await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let msg = one_line(&err);
    assert!(msg.contains(&addr) && msg.to_lowercase().contains("refused"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(2), "no retries for a registry never reached");
}

/// Every `"digest"` value in a JSON document.
fn digests_in(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("digest", serde_json::Value::String(d)) => out.push(d.clone()),
                    _ => digests_in(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| digests_in(i, out)),
        _ => {}
    }
}

#[tokio::test]
async fn referrers_interoperate_with_oras() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    for kind in RegistryKind::anonymous_kinds() {
        let reg = Registry::start(kind.clone());
        let t = target(reg.addr(), "interop");
        let subject = push_artifact(&t, "v1", &[b"weights"]).await;
        let subject_ref = format!("{}@{}", reg.reference("interop"), subject.digest);
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("note.txt"), b"attached by oras").unwrap();
        let oras_attach = |artifact_type: &str| {
            run_ok(peers.oras().current_dir(work.path()).args([
                "attach",
                "--plain-http",
                "--artifact-type",
                artifact_type,
                &subject_ref,
                "note.txt",
            ]));
        };
        oras_attach("application/vnd.example.oras.first");
        let ours = push_signature(&t, &subject, "ours").await;
        oras_attach("application/vnd.example.oras.second");

        let listed = target(reg.addr(), "interop").referrers(&subject).await.unwrap();
        assert_eq!(listed.len(), 3, "{kind:?}: {listed:?}");
        assert!(listed.iter().any(|d| d.digest == ours.digest), "{kind:?}");

        let out = run_ok(peers.oras().args(["discover", "--plain-http", "--format", "json", &subject_ref]));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut seen = Vec::new();
        digests_in(&json, &mut seen);
        for d in &listed {
            assert!(seen.contains(&d.digest.to_string()), "{kind:?}: oras does not list {}: {json}", d.digest);
        }
    }
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
