//! The registry target against real registries (distribution 2.8, go-containerregistry and
//! cue-labs ociserver), by the library directly (no CLI): blobs, manifests and referrers
//! round trip, the manifest size limit, referrers through the API or the fallback tag, oras
//! reading what it wrote. Auth, retries, resumes and redirects are in `registry_access.rs`,
//! which shares the helpers here.

use std::sync::Mutex;
use std::time::Duration;

use modelsign::Error;
use modelsign::digest::Digest;
use modelsign::oci::{self, Annotations, Descriptor, Manifest};
use modelsign::progress::Progress;
use modelsign::store::registry::credentials::DockerConfig;
use modelsign::store::registry::{Registry as RegistryTarget, RetryPolicy};
use modelsign::store::{BlobSource, Target, TargetOptions};
use tokio::io::AsyncReadExt;

use crate::support::*;

const ARTIFACT_TYPE: &str = "application/vnd.example.model.v1";
const SIGNATURE_TYPE: &str = "application/vnd.example.signature.v1+json";

pub(super) fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(2),
    }
}

/// A registry target on `addr` (plain HTTP) reading credentials from `config` only (a file
/// that does not exist by default, so the developer's own docker config never interferes).
pub(super) fn target_with(addr: &str, repo: &str, config: DockerConfig) -> Target {
    let options = TargetOptions { plain_http: true, ..TargetOptions::default() };
    let mut r = RegistryTarget::new(addr, repo, &options).expect("registry target");
    r.set_retry_policy(fast_retries());
    r.set_docker_config(config);
    Target::Registry(r)
}

pub(super) fn target(addr: &str, repo: &str) -> Target {
    target_with(addr, repo, DockerConfig::at("/nonexistent/modelsign-test/config.json"))
}

/// Records progress events as text.
#[derive(Default)]
pub(super) struct Recorder {
    events: Mutex<Vec<String>>,
    pub(super) advanced: Mutex<u64>,
}

impl Recorder {
    pub(super) fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
    pub(super) fn notes(&self) -> Vec<String> {
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

pub(super) fn blob(data: &[u8]) -> Descriptor {
    Descriptor::of_bytes("application/octet-stream", data)
}

fn empty_config() -> Descriptor {
    Descriptor::of_bytes(oci::MEDIA_TYPE_EMPTY, oci::EMPTY_JSON)
}

pub(super) async fn push_bytes(t: &Target, data: &[u8]) -> Descriptor {
    let desc = blob(data);
    t.push_blob(&desc, &BlobSource::Bytes(data), &modelsign::progress::NoProgress).await.expect("push blob");
    desc
}

/// Pushes an artifact (empty config + the given layers) tagged `tag`; returns its descriptor.
pub(super) async fn push_artifact(t: &Target, tag: &str, layers: &[&[u8]]) -> Descriptor {
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
pub(super) async fn push_signature(t: &Target, subject: &Descriptor, name: &str) -> Descriptor {
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

pub(super) async fn read_blob(t: &Target, desc: &Descriptor, offset: u64) -> Result<Vec<u8>, std::io::Error> {
    let mut r = t.fetch_blob(desc, offset).await.expect("fetch blob");
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out)
}

pub(super) fn one_line(e: &Error) -> String {
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
