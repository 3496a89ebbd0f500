//! Issue 9, the local half: output folders and layout folders prepared by someone else,
//! crafted manifests on a real registry, files that are FIFOs or change while read. Each
//! test sets a trap that the pull (or copy, or verify) must not walk into: no write outside
//! `-o DIR`, no wrong bytes under a verified name, no hang, no crash, no folder left behind.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Output;

use modelsign::oci::{Descriptor, Manifest};
use modelsign::ops::components::Component;
use modelsign::sign::{Signer, SigningKey, oms};
use modelsign::store::Target;
use serde_json::Value;

use crate::support::*;

const FILEPATH: &str = "org.cncf.model.filepath";
const TITLE: &str = "org.opencontainers.image.title";
const PARTIAL: &str = ".modelsign-partial";

/// A tiny model pushed to a real registry and signed there with a fresh key.
struct Signed {
    _registry: Registry,
    peers: Peers,
    work: tempfile::TempDir,
    model: PathBuf,
    repo: String,
    key: PathBuf,
    public: PathBuf,
}

impl Signed {
    /// `extra` files (relative path, bytes) are added to the tiny model before it is pushed.
    fn new(tb: &Testbed, weights_len: usize, extra: &[(&str, Vec<u8>)]) -> Signed {
        let registry = Registry::start(RegistryKind::Distribution);
        let peers = Peers::new(tb);
        let work = tempfile::tempdir().unwrap();
        let model = write_tiny_model(work.path(), "tiny", weights_len);
        for (path, bytes) in extra {
            std::fs::write(model.join(path), bytes).unwrap();
        }
        let repo = registry.reference("models/tiny");
        let (key, public) = keygen(work.path(), "signer", "p256");
        let signed = Signed { _registry: registry, peers, work, model, repo, key, public };
        run_ok(signed.modelsign().args(["push", &signed.reference("v1")]).arg(&signed.model));
        signed.sign("v1");
        signed
    }

    fn reference(&self, tag: &str) -> String {
        format!("{}:{tag}", self.repo)
    }

    fn modelsign(&self) -> std::process::Command {
        let mut cmd = self.peers.modelsign();
        cmd.arg("--plain-http");
        cmd
    }

    fn sign(&self, tag: &str) {
        run_ok(self.modelsign().args(["sign", &self.reference(tag), "--key"]).arg(&self.key));
    }

    /// `pull TAG -o DIR --key PUB`, any exit status.
    fn pull(&self, tag: &str, dir: &Path) -> Output {
        let mut cmd = self.modelsign();
        cmd.args(["pull", &self.reference(tag), "--key"]).arg(&self.public).arg("-o").arg(dir);
        run_within_secs(&mut cmd, 120)
    }

    fn path(&self) -> &Path {
        self.work.path()
    }

    fn weights_hex(&self) -> String {
        file_digest(&self.model.join("model.safetensors")).hex().to_string()
    }

    /// Stores v1's manifest with `added` layers (bytes, path) as `tag`, signed with the
    /// same key as `modelsign sign` would (which itself refuses unsafe paths): the signer
    /// is trusted, the paths it signed are what the pull must still refuse.
    fn craft_and_sign(&self, tag: &str, added: &[(&[u8], &str)]) {
        block_on(async {
            let target = open_target(&self.reference("v1")).await;
            let (_, mut manifest) = manifest_json(&target, "v1").await;
            for (bytes, path) in added {
                let layer = named_blob(&target, bytes, path).await;
                manifest["layers"].as_array_mut().unwrap().push(layer);
            }
            let desc = put_manifest_json(&target, &manifest, Some(tag)).await;
            sign_without_path_checks(&target, &desc, &manifest, &self.key).await;
        });
    }
}

/// Runs a command (stdin closed) and kills it after `secs`: a hang is a failure, not a stuck suite.
pub fn run_within_secs(cmd: &mut std::process::Command, secs: u64) -> Output {
    run_within(cmd, std::time::Duration::from_secs(secs))
        .unwrap_or_else(|| panic!("{cmd:?} still running after {secs} s"))
}

/// Attaches both modelsign signatures (OMS and manifest statement) of `manifest`.
async fn sign_without_path_checks(target: &Target, desc: &Descriptor, manifest: &Value, key: &Path) {
    use modelsign::ops::sign as ops;
    let parsed = Manifest::parse(&serde_json::to_vec(manifest).unwrap(), "crafted").unwrap();
    let comps: Vec<Component> = parsed
        .layers
        .iter()
        .map(|l| Component { path: l.annotations[FILEPATH].clone(), descriptor: l.clone() })
        .collect();
    let key = SigningKey::from_pem(&std::fs::read_to_string(key).unwrap(), None).unwrap();
    let signer = Signer::from_key(key);
    let oms = ops::oms_statement("tiny", &comps);
    let root = modelsign::ops::model::oms_root_digest(&comps);
    let manifest_st = ops::manifest_statement("models/tiny", desc, &parsed, &root);
    ops::attach_bundle(target, desc, &signer.sign_statement(&oms).unwrap(), oms::PREDICATE_TYPE).await.unwrap();
    let bundle = signer.sign_statement(&manifest_st).unwrap();
    ops::attach_bundle(target, desc, &bundle, modelsign::ops::model::MANIFEST_PREDICATE_TYPE).await.unwrap();
}

/// A layer descriptor for `bytes` stored as a blob, named `path`.
async fn named_blob(target: &Target, bytes: &[u8], path: &str) -> Value {
    let desc = put_blob(target, bytes).await;
    serde_json::json!({
        "mediaType": "application/vnd.cncf.model.weight.v1.raw",
        "digest": desc.digest.to_string(),
        "size": desc.size,
        "annotations": {FILEPATH: path, TITLE: path.rsplit('/').next().unwrap()},
    })
}

/// Nothing under `dir` is a symlink except those listed (the traps the test set itself).
fn assert_no_symlink_but(dir: &Path, traps: &[&str]) {
    for (path, bytes) in files_under(dir) {
        if bytes == b"<symlink>" {
            assert!(traps.contains(&path.as_str()), "{path} under {} is a symlink", dir.display());
        }
    }
}

/// A folder someone else prepared: `DIR/.modelsign-partial` made in advance.
fn prepared_partial_dir(parent: &Path) -> (PathBuf, PathBuf) {
    let dir = parent.join("out");
    let partial = dir.join(PARTIAL);
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o700)).unwrap();
    (dir, partial)
}

// ----- item 1: writes outside -o DIR ------------------------------------------------

#[test]
fn dangling_symlink_in_the_resume_folder_is_not_written_through() {
    let tb = require_testbed!();
    let signed = Signed::new(&tb, 300_000, &[]);
    let outside = signed.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let (dir, partial) = prepared_partial_dir(signed.path());
    symlink(outside.join("planted"), partial.join(signed.weights_hex())).unwrap();

    let out = signed.pull("v1", &dir);
    assert!(!outside.join("planted").exists(), "pull created a file through a symlink: {}", stderr_text(&out));
    assert_no_symlink_but(&dir, &[&format!("{PARTIAL}/{}", signed.weights_hex())]);
    assert!(!out.status.success(), "pull went on past a symlink in its resume folder");
    let line = one_error_line(&out);
    assert!(line.contains("symlink") && line.contains(&signed.weights_hex()), "{line}");
}

#[test]
fn symlink_to_an_existing_file_is_neither_appended_to_nor_truncated() {
    let tb = require_testbed!();
    let signed = Signed::new(&tb, 300_000, &[]);
    let victim = signed.path().join("victim.txt");
    std::fs::write(&victim, b"precious\n").unwrap();
    let (dir, partial) = prepared_partial_dir(signed.path());
    for name in [signed.weights_hex(), file_digest(&signed.model.join("config.json")).hex().to_string()] {
        symlink(&victim, partial.join(name)).unwrap();
    }
    let out = signed.pull("v1", &dir);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n", "{}", stderr_text(&out));
    assert!(!out.status.success());
    assert!(!dir.join("model.safetensors").exists());
}

#[test]
fn symlinked_resume_folder_is_refused() {
    let tb = require_testbed!();
    let signed = Signed::new(&tb, 300_000, &[]);
    let elsewhere = signed.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let dir = signed.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    symlink(&elsewhere, dir.join(PARTIAL)).unwrap();

    let out = signed.pull("v1", &dir);
    assert!(files_under(&elsewhere).is_empty(), "pull wrote through a symlinked resume folder");
    assert!(!out.status.success());
    let line = one_error_line(&out);
    assert!(line.contains(PARTIAL) && line.contains("symlink"), "{line}");
}

#[test]
fn resume_folder_others_can_write_to_is_refused() {
    let tb = require_testbed!();
    let signed = Signed::new(&tb, 30_000, &[]);
    let (dir, partial) = prepared_partial_dir(signed.path());
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = signed.pull("v1", &dir);
    assert!(!out.status.success());
    let line = one_error_line(&out);
    assert!(line.contains(PARTIAL) && line.contains("writable by others"), "{line}");
    assert!(!dir.join("model.safetensors").exists());
}

#[test]
fn symlinked_copy_file_for_a_duplicate_layer_is_not_written_through() {
    let tb = require_testbed!();
    let weights = pseudo_random_bytes(200_000, 0x5eed);
    let signed = Signed::new(&tb, 200_000, &[("copy.safetensors", weights.clone())]);
    let victim = signed.path().join("victim.txt");
    std::fs::write(&victim, b"precious\n").unwrap();
    let (dir, partial) = prepared_partial_dir(signed.path());
    symlink(&victim, partial.join(format!("{}.copy", signed.weights_hex()))).unwrap();

    let out = signed.pull("v1", &dir);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n", "{}", stderr_text(&out));
    assert!(out.status.success(), "{}", stderr_text(&out));
    for name in ["model.safetensors", "copy.safetensors"] {
        let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
        assert!(meta.file_type().is_file(), "{name} is not a regular file");
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), weights, "{name}");
    }
    assert!(!dir.join(PARTIAL).exists(), "the resume folder was left behind");
}

// ----- item 2: wrong bytes under a verified name --------------------------------------

#[test]
fn component_inside_the_resume_folder_is_refused() {
    let tb = require_testbed!();
    let signed = Signed::new(&tb, 32 << 20, &[]);
    let planted = format!("{PARTIAL}/{}", signed.weights_hex());
    signed.craft_and_sign("bad", &[(b"attacker bytes\n", &planted)]);
    let dir = signed.path().join("out");
    let out = signed.pull("bad", &dir);
    let weights = std::fs::read(dir.join("model.safetensors")).ok();
    assert!(
        weights.is_none() || weights.as_deref() == Some(&pseudo_random_bytes(32 << 20, 0x5eed)[..]),
        "model.safetensors holds bytes that are not the signed weights"
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    let line = one_error_line(&out);
    assert!(line.contains(&planted) && line.contains("resume folder"), "{line}");
    assert!(files_under(&dir).is_empty(), "nothing may be written for a manifest naming such a path");

    let verify =
        run_within_secs(signed.modelsign().args(["verify", &signed.reference("bad"), "--key"]).arg(&signed.public), 60);
    assert_eq!(verify.status.code(), Some(3), "{}", stderr_text(&verify));
}

// ----- item 1 for layout folders: copy into a prepared layout ---------------------------

/// A model pushed into a fresh layout `src`, and a prepared destination layout folder
/// (`oci-layout` and an empty `index.json`, no blobs yet).
fn prepared_layout(parent: &Path) -> (String, PathBuf) {
    let model = write_tiny_model(parent, "tiny", 100_000);
    let src = format!("oci:{}:v1", parent.join("src").display());
    run_ok(modelsign().args(["push", &src]).arg(&model));
    let dest = parent.join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dest.join("index.json"), br#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
    (src, dest)
}

#[test]
fn copy_into_a_layout_with_a_symlinked_blobs_folder_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let (src, dest) = prepared_layout(work.path());
    let elsewhere = work.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("sha256")).unwrap();
    symlink(&elsewhere, dest.join("blobs")).unwrap();
    let out = run_within_secs(modelsign().args(["copy", &src, &format!("oci:{}:v1", dest.display())]), 60);
    assert!(files_under(&elsewhere).is_empty(), "copy wrote through a symlinked blobs folder");
    assert!(!out.status.success());
    let line = one_error_line(&out);
    assert!(line.contains("blobs") && line.contains("symlink"), "{line}");
}

#[test]
fn copy_into_a_layout_does_not_follow_a_planted_lock_file() {
    let work = tempfile::tempdir().unwrap();
    let (src, dest) = prepared_layout(work.path());
    std::fs::create_dir_all(dest.join("blobs/sha256")).unwrap();
    let outside = work.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    symlink(outside.join("lock"), dest.join("index.json.lock")).unwrap();
    let out = run_within_secs(modelsign().args(["copy", &src, &format!("oci:{}:v1", dest.display())]), 60);
    assert!(files_under(&outside).is_empty(), "copy created a file through the planted lock symlink");
    assert!(!out.status.success());
    let line = one_error_line(&out);
    assert!(line.contains("index.json.lock") && line.contains("symlink"), "{line}");
}

// ----- item 6: FIFOs and devices are never read --------------------------------------

fn mkfifo(path: &Path) {
    run_ok(std::process::Command::new("mkfifo").arg(path));
}

#[test]
fn fifo_or_device_in_a_layout_is_refused_without_hanging() {
    let work = tempfile::tempdir().unwrap();
    let model = write_tiny_model(work.path(), "tiny", 100_000);
    let layout = work.path().join("layout");
    let reference = format!("oci:{}:v1", layout.display());
    let manifest = run_stdout(modelsign().args(["push", &reference]).arg(&model)).trim().to_string();
    let manifest_blob = layout.join("blobs/sha256").join(manifest.trim_start_matches("sha256:"));
    let saved_index = std::fs::read(layout.join("index.json")).unwrap();

    std::fs::remove_file(layout.join("index.json")).unwrap();
    mkfifo(&layout.join("index.json"));
    let out = run_within_secs(modelsign().args(["inspect", &reference]), 30);
    assert!(!out.status.success());
    assert!(one_error_line(&out).contains("not a regular file"), "{}", stderr_text(&out));

    std::fs::remove_file(layout.join("index.json")).unwrap();
    symlink("/dev/zero", layout.join("index.json")).unwrap();
    let out = run_within_secs(modelsign().args(["inspect", &reference]), 30);
    assert!(!out.status.success());
    assert!(one_error_line(&out).contains("not a regular file"), "{}", stderr_text(&out));

    std::fs::remove_file(layout.join("index.json")).unwrap();
    std::fs::write(layout.join("index.json"), &saved_index).unwrap();
    std::fs::remove_file(&manifest_blob).unwrap();
    mkfifo(&manifest_blob);
    let out = run_within_secs(modelsign().args(["inspect", &reference]), 30);
    assert!(!out.status.success());
    one_error_line(&out);
}

// ----- item 9, local parts -------------------------------------------------------------

#[test]
fn stale_partial_file_is_discarded_and_downloaded_afresh() {
    let tb = require_testbed!();
    let signed = Signed::new(&tb, 300_000, &[]);
    let (dir, partial) = prepared_partial_dir(signed.path());
    // Left by an earlier pull, then corrupted: the right length, the wrong bytes.
    std::fs::write(partial.join(signed.weights_hex()), vec![0x55u8; 120_000]).unwrap();
    let out = signed.pull("v1", &dir);
    let stderr = stderr_text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("did not match") && stderr.contains("afresh"), "no note about the stale file:\n{stderr}");
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), pseudo_random_bytes(300_000, 0x5eed));
    assert!(!partial.exists(), "the resume folder was left behind");
}

#[test]
fn failed_pull_leaves_no_partial_file_and_no_folder_it_created() {
    let tb = require_testbed!();
    let signed = Signed::new(&tb, 300_000, &[]);
    let proxy = FaultProxy::with_faults(signed._registry.addr(), vec![Fault::status("/blobs/sha256:", 404, None)]);
    let dir = signed.path().join("new/out");
    // Every component but the empty one, which needs no download and would be written.
    let out = run_within_secs(
        signed
            .modelsign()
            .args(["pull", &format!("{}/models/tiny:v1", proxy.addr()), "--concurrency", "8"])
            .args(["--include", "*.json", "--include", "*.safetensors", "--include", "extra/notes.txt", "-o"])
            .arg(&dir),
        60,
    );
    assert!(!out.status.success());
    one_error_line(&out);
    assert!(!dir.exists(), "left behind: {:?}", files_under(&dir).keys().collect::<Vec<_>>());
    assert!(!signed.path().join("new").exists(), "the parent folder the pull created was left behind");
}

#[test]
fn overlong_component_name_writes_nothing() {
    let tb = require_testbed!();
    let signed = Signed::new(&tb, 30_000, &[]);
    let long = "n".repeat(5000);
    signed.craft_and_sign("long", &[(b"long name\n", &long)]);
    let dir = signed.path().join("out");
    let mut cmd = signed.modelsign();
    let out = run_within_secs(cmd.args(["pull", &signed.reference("long"), "-o"]).arg(&dir), 60);
    assert!(!out.status.success());
    let line = one_error_line(&out);
    assert!(line.contains("longer than 255 bytes"), "{line}");
    assert!(!dir.exists(), "pull created {} for a manifest it refused", dir.display());
}

/// A model folder signed locally (`sign DIR --key`), and the public key.
fn signed_folder(parent: &Path) -> (PathBuf, PathBuf) {
    let model = write_tiny_model(parent, "tiny", 50_000);
    let (key, public) = keygen(parent, "local", "p256");
    run_ok(modelsign().arg("sign").arg(&model).arg("--key").arg(&key));
    (model, public)
}

#[test]
fn verify_folder_with_a_symlink_or_fifo_does_not_verify() {
    let work = tempfile::tempdir().unwrap();
    let (model, public) = signed_folder(work.path());
    run_ok(modelsign().arg("verify").arg(&model).arg("--key").arg(&public));

    symlink(model.join("config.json"), model.join("extra/link.json")).unwrap();
    let out = run_within_secs(modelsign().arg("verify").arg(&model).arg("--key").arg(&public), 30);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    assert!(one_error_line(&out).contains("symlink"));
    std::fs::remove_file(model.join("extra/link.json")).unwrap();

    mkfifo(&model.join("extra/pipe"));
    let out = run_within_secs(modelsign().arg("verify").arg(&model).arg("--key").arg(&public), 30);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    assert!(one_error_line(&out).contains("not a regular file"));
}

#[test]
fn signature_or_key_that_is_a_fifo_or_device_is_refused_without_hanging() {
    let work = tempfile::tempdir().unwrap();
    let (model, public) = signed_folder(work.path());
    std::fs::remove_file(model.join("model.sig")).unwrap();
    mkfifo(&model.join("model.sig"));
    let out = run_within_secs(modelsign().arg("verify").arg(&model).arg("--key").arg(&public), 30);
    assert!(!out.status.success());
    assert!(one_error_line(&out).contains("not a regular file"), "{}", stderr_text(&out));

    for key in [Path::new("/dev/zero").to_path_buf(), work.path().join("key.fifo")] {
        if !key.starts_with("/dev") {
            mkfifo(&key);
        }
        let out = run_within_secs(modelsign().arg("verify").arg(&model).arg("--key").arg(&key), 30);
        assert!(!out.status.success());
        assert!(one_error_line(&out).contains("not a regular file"), "{}", stderr_text(&out));
    }
}
