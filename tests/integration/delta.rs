//! Delta updates: the digest cache behind `push` and `sign DIR` (an unchanged file is not
//! read again, a changed one always is, the result is byte-identical to a fresh run), and
//! `verify`, which never trusts the cache.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// How long a file must have been left alone before its digest is cached (the library's
/// `RACY_WINDOW`, plus a margin).
const SETTLE: Duration = Duration::from_millis(2_200);

struct Bed {
    peers: Peers,
    dir: tempfile::TempDir,
    model: PathBuf,
    key: PathBuf,
    public: PathBuf,
}

impl Bed {
    /// A model of six files, settled so the cache may record them, and an Ed25519 key
    /// (deterministic signatures: two signatures of one statement are the same bytes).
    fn new(tb: &Testbed) -> Bed {
        let peers = Peers::new(tb);
        let dir = tempfile::tempdir().unwrap();
        let model = write_tiny_model(dir.path(), "model", 300_000);
        fs::write(model.join("adapter.bin"), pseudo_random_bytes(70_000, 7)).unwrap();
        let prefix = dir.path().join("signer");
        run_ok(peers.modelsign().args(["keygen", "--algorithm", "ed25519", "-o"]).arg(&prefix));
        std::thread::sleep(SETTLE);
        Bed { peers, dir, model, key: prefix.with_extension("key"), public: prefix.with_extension("pub") }
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn ms(&self) -> Command {
        let mut cmd = self.peers.modelsign();
        cmd.args(["--plain-http", "--no-progress"]).env("MODELSIGN_CACHE_DIR", self.cache_dir());
        cmd
    }

    /// `sign DIR --output json` into `name` beside the model; returns (report, signature bytes).
    fn sign(&self, name: &str, extra: &[&str]) -> (Value, Vec<u8>) {
        let signature = self.dir.path().join(name);
        let out = run_ok(
            self.ms()
                .arg("sign")
                .arg(&self.model)
                .arg("--key")
                .arg(&self.key)
                .arg("--signature")
                .arg(&signature)
                .args(["--output", "json"])
                .args(extra),
        );
        (stdout_json(&out), fs::read(&signature).unwrap())
    }

    fn verify(&self, name: &str) -> std::process::Output {
        self.ms()
            .arg("verify")
            .arg(&self.model)
            .arg("--key")
            .arg(&self.public)
            .arg("--signature")
            .arg(self.dir.path().join(name))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }
}

fn hashed(report: &Value) -> (u64, u64) {
    let h = &report["hashing"];
    (h["hashed"].as_u64().unwrap(), h["fromCache"].as_u64().unwrap())
}

/// Rewrites `path` with new bytes of the same length and puts its modification time back:
/// only the change time (which no one can set) tells the difference.
fn change_behind_same_size_and_mtime(path: &Path) {
    let mtime = fs::metadata(path).unwrap().modified().unwrap();
    let mut bytes = fs::read(path).unwrap();
    for b in bytes.iter_mut().take(64) {
        *b ^= 0x5a;
    }
    fs::write(path, &bytes).unwrap();
    fs::File::options().write(true).open(path).unwrap().set_modified(mtime).unwrap();
    assert_eq!(fs::metadata(path).unwrap().modified().unwrap(), mtime);
}

#[test]
fn sign_dir_rehashes_only_the_changed_file_and_matches_a_fresh_sign() {
    let tb = require_testbed!();
    let bed = Bed::new(&tb);
    let (first, _) = bed.sign("first.sig", &[]);
    assert_eq!(hashed(&first), (6, 0), "{first}");
    let (again, again_sig) = bed.sign("again.sig", &[]);
    assert_eq!(hashed(&again), (0, 6), "nothing changed, nothing read: {again}");
    assert_eq!(again_sig, bed.sign("fresh0.sig", &["--no-cache"]).1, "cached and fresh signatures differ");

    change_behind_same_size_and_mtime(&bed.model.join("adapter.bin"));
    std::thread::sleep(SETTLE);
    let (delta, delta_sig) = bed.sign("delta.sig", &[]);
    assert_eq!(hashed(&delta), (1, 5), "only the changed file is read: {delta}");
    let (fresh, fresh_sig) = bed.sign("fresh.sig", &["--no-cache"]);
    assert_eq!(hashed(&fresh), (6, 0));
    assert_eq!(delta_sig, fresh_sig, "an incremental signature must be byte-identical to a fresh one");
    assert_ne!(delta_sig, again_sig);
    assert!(bed.verify("delta.sig").status.success());
}

#[test]
fn verify_hashes_what_it_checks_whatever_the_cache_says() {
    let tb = require_testbed!();
    let bed = Bed::new(&tb);
    let (first, _) = bed.sign("model.sig", &[]);
    assert_eq!(hashed(&first), (6, 0));

    // A file changed behind the same size and modification time: verify reads it and fails.
    let weights = bed.model.join("model.safetensors");
    change_behind_same_size_and_mtime(&weights);
    let out = bed.verify("model.sig");
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    assert!(one_error_line(&out).contains("model.safetensors"), "{}", stderr_text(&out));
    // And sign notices it too (the change time moved): a fresh signature verifies again.
    std::thread::sleep(SETTLE);
    let (second, _) = bed.sign("model.sig", &[]);
    assert_eq!(hashed(&second), (1, 5), "{second}");
    assert!(bed.verify("model.sig").status.success());

    // A poisoned entry (well-formed, for the file's current identity, with another digest)
    // fools sign, which trusts the cache; verify reads the file and refuses.
    poison_entry(&bed.cache_dir(), &weights, &sha256_digest(b"not these weights"));
    let (poisoned, _) = bed.sign("poisoned.sig", &[]);
    assert_eq!(hashed(&poisoned), (0, 6));
    let out = bed.verify("poisoned.sig");
    assert_eq!(out.status.code(), Some(3), "verify must not trust the cache: {}", stderr_text(&out));
    assert!(one_error_line(&out).contains("model.safetensors"), "{}", stderr_text(&out));
}

/// Writes the cache entry for `file` as the library would, with `digest` in it.
fn poison_entry(cache: &Path, file: &Path, digest: &str) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(file).unwrap();
    let path = hex::encode(std::path::absolute(file).unwrap().as_os_str().as_encoded_bytes());
    let body = format!(
        "modelsign-digest-v2 {} {} {} {} {} {} {} {digest} {path}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    );
    let check = sha256_digest(body.as_bytes());
    let entry = cache.join("digests-v2").join(format!("{:x}-{:x}", m.dev(), m.ino()));
    assert!(entry.is_file(), "no cache entry at {}", entry.display());
    fs::write(entry, format!("{body} {}\n", check.trim_start_matches("sha256:"))).unwrap();
}

#[test]
fn damaged_cache_entries_are_rebuilt_and_concurrent_runs_agree() {
    let tb = require_testbed!();
    let bed = Bed::new(&tb);
    let (first, first_sig) = bed.sign("first.sig", &[]);
    assert_eq!(hashed(&first), (6, 0));
    // Garbage, truncation and an empty file in place of entries.
    let entries: Vec<PathBuf> =
        fs::read_dir(bed.cache_dir().join("digests-v2")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 6, "{entries:?}");
    for (i, entry) in entries.iter().enumerate() {
        let text = fs::read_to_string(entry).unwrap();
        match i % 3 {
            0 => fs::write(entry, b"\xff\x00 garbage").unwrap(),
            1 => fs::write(entry, &text[..text.len() / 2]).unwrap(),
            _ => fs::write(entry, b"").unwrap(),
        }
    }
    let (rebuilt, rebuilt_sig) = bed.sign("rebuilt.sig", &[]);
    assert_eq!(hashed(&rebuilt), (6, 0), "damaged entries must not be trusted: {rebuilt}");
    assert_eq!(rebuilt_sig, first_sig);
    // Four runs at once on one cache: no lock, no torn entry, the same signature.
    let children: Vec<_> = (0..4)
        .map(|i| {
            bed.ms()
                .arg("sign")
                .arg(&bed.model)
                .arg("--key")
                .arg(&bed.key)
                .arg("--signature")
                .arg(bed.dir.path().join(format!("par{i}.sig")))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    for i in 0..4 {
        assert_eq!(fs::read(bed.dir.path().join(format!("par{i}.sig"))).unwrap(), first_sig);
    }
    let (last, _) = bed.sign("last.sig", &[]);
    assert_eq!(hashed(&last), (0, 6));
}

#[test]
fn repush_reads_nothing_and_a_changed_file_is_read_again() {
    let tb = require_testbed!();
    let bed = Bed::new(&tb);
    let registry = Registry::start_in(&tb, RegistryKind::Distribution);
    let reference = registry.reference("delta/model:v1");
    let push = |extra: &[&str]| -> Value {
        let out = run_ok(
            bed.ms()
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["push", &reference])
                .arg(&bed.model)
                .args(["--output", "json"].iter().chain(extra)),
        );
        stdout_json(&out)
    };
    let first = push(&[]);
    assert_eq!(hashed(&first), (6, 0));
    let again = push(&[]);
    assert_eq!(hashed(&again), (0, 6), "{again}");
    assert_eq!(again["bytesUploaded"], 0);
    assert_eq!(again["digest"], first["digest"]);

    change_behind_same_size_and_mtime(&bed.model.join("model.safetensors"));
    let changed = push(&[]);
    assert_eq!(hashed(&changed), (1, 5), "{changed}");
    assert_eq!(changed["bytesUploaded"], 300_000);
    let fresh = push(&["--no-cache"]);
    assert_eq!(hashed(&fresh), (6, 0));
    assert_eq!(fresh["digest"], changed["digest"]);
    assert_ne!(changed["digest"], first["digest"]);
    // What the registry holds is what is on disk.
    let pulled = bed.dir.path().join("pulled");
    run_ok(bed.ms().args(["pull", &reference, "-o"]).arg(&pulled));
    assert_eq!(files_under(&pulled), files_under(&bed.model));
}

/// A 16 MiB file cut at 60 % of its upload: where the registry can say how much it holds
/// (cue-labs), the push goes on from there and sends at most half of the blob again; where
/// it cannot (go-containerregistry: 400 on upload status) or dropped the session, the blob is
/// sent again whole, once. Distribution 2.8 drops it itself: the bytes of the cut `PATCH`
/// that reached it are on its disk but not in the session's signed `_state` offset, and the
/// next request on the session (status `GET` or `PATCH` alike) finds the two differ, logs
/// "upload resumed at wrong offest" and cancels the upload. No client can resume that
/// session, so the cost of the cut there is what went before it (60 %), never more.
/// Either way the registry ends up with the right bytes.
#[test]
fn a_cut_upload_resumes_where_the_registry_can_say_and_restarts_where_not() {
    const SIZE: usize = 16 << 20;
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("big");
    fs::create_dir_all(&model).unwrap();
    let weights = pseudo_random_bytes(SIZE, 0xb16);
    fs::write(model.join("model.safetensors"), &weights).unwrap();
    for kind in RegistryKind::anonymous_kinds() {
        let registry = Registry::start_in(&tb, kind.clone());
        let proxy = FaultProxy::with_faults(registry.addr(), vec![Fault::cut_upload(SIZE as u64 * 6 / 10)]);
        let reference = format!("{}/delta/big:v1", proxy.addr());
        let out =
            run_ok(peers.modelsign().args(["--plain-http", "--no-progress", "push", &reference]).arg(&model).args([
                "--no-cache",
                "--output",
                "json",
            ]));
        let report = stdout_json(&out);
        let stderr = stderr_text(&out);
        assert_eq!(proxy.faults_applied("cut-upload"), 1, "{}: the cut did not happen", kind.name());
        let needed = SIZE as u64 + report["config"]["size"].as_u64().unwrap();
        let resent = proxy.upload_bytes() - needed;
        eprintln!(
            "{}: {resent} of {SIZE} bytes sent again ({:.0} %)",
            kind.name(),
            resent as f64 * 100.0 / SIZE as f64
        );
        if kind == RegistryKind::Cue {
            assert!(stderr.contains("resuming the upload of model.safetensors at"), "{stderr}");
            assert!(resent <= SIZE as u64 / 2, "{}: {resent} bytes sent again\n{stderr}", kind.name());
            assert!(proxy.count("GET", "/blobs/uploads/") >= 1, "{}: no upload status asked\n{stderr}", kind.name());
        } else {
            assert!(stderr.contains("sending it again"), "{}: {stderr}", kind.name());
            // One whole retry: what went before the cut (the config's few bytes included) is
            // lost, and nothing else.
            let before_cut = SIZE as u64 * 6 / 10;
            assert!(
                (before_cut - 4096..=before_cut).contains(&resent),
                "{}: {resent} bytes sent again, {before_cut} went before the cut\n{stderr}",
                kind.name()
            );
        }
        if kind == RegistryKind::Distribution {
            // The registry's own reason for dropping the session (its spelling).
            let log = registry.log();
            assert!(
                log.contains("upload resumed at wrong offest"),
                "distribution did not say it cancelled the cut session:\n{log}"
            );
        }
        // Chunks, with Content-Range, on every registry.
        let patches: Vec<_> = proxy.requests().into_iter().filter(|r| r.method == "PATCH").collect();
        assert!(patches.len() >= 16, "{}: {} PATCH requests", kind.name(), patches.len());
        assert!(patches.iter().all(|r| r.header("Content-Range").is_some()), "{}", kind.name());
        // What the registry assembled is the file.
        let pulled = dir.path().join(format!("pulled-{}", kind.name()));
        run_ok(
            peers
                .modelsign()
                .args(["--plain-http", "--no-progress", "pull", &registry.reference("delta/big:v1"), "-o"])
                .arg(&pulled),
        );
        assert!(fs::read(pulled.join("model.safetensors")).unwrap() == weights, "{}: wrong bytes", kind.name());
    }
}
