//! `modelsign trust update` against real TUF repositories made by python-tuf (an independent
//! implementation; testdata/tuf/tuf_repo.py) and served over loopback HTTP: the happy update,
//! root rotations 1→2→3 with new keys, `verify-blob` then trusting the refreshed Sigstore root,
//! and one test per attack, each refused with one line (exit 3) leaving the stored state as it
//! was.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::support::sigstore_stack::{self, DEFAULT_WORKFLOW, Stack};
use crate::support::*;

const CASES: &str = "testdata/sigstore-conformance/bundle-verify";
const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

/// A python-tuf repository served on loopback; the server is killed on drop.
struct Repo {
    tb: Testbed,
    tmp: TempDir,
    server: Child,
    url: String,
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Repo {
    /// `init` with the conformance case's trusted root (and `extra` targets), then serve it.
    fn new(tb: Testbed, extra: &[&Path]) -> Repo {
        let mut init: Vec<PathBuf> = vec![case_root()];
        init.extend(extra.iter().map(|p| p.to_path_buf()));
        Repo::with_targets(tb, &init)
    }

    /// `init` with these target files (named by their file names), then serve it.
    fn with_targets(tb: Testbed, init: &[PathBuf]) -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tuf");
        let mut cmd = script(&tb, &dir);
        cmd.arg("init").args(init);
        ok(cmd.output().unwrap(), "tuf_repo.py init");
        let port_file = tmp.path().join("port");
        let server = script(&tb, &dir)
            .arg("serve")
            .arg(&port_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot serve the repo: {e}"));
        let start = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the TUF repository server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Repo { tb, url: format!("http://127.0.0.1:{}", port.trim()), tmp, server }
    }

    /// Runs a tuf_repo.py command on the repository (a release, a rotation, an attack).
    fn edit(&self, args: &[&str]) {
        ok(
            script(&self.tb, &self.tmp.path().join("tuf")).args(args).output().unwrap(),
            &format!("tuf_repo.py {args:?}"),
        );
    }

    fn root_v1(&self) -> PathBuf {
        self.tmp.path().join("tuf/repo/1.root.json")
    }

    /// A fresh client folder.
    fn client(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `modelsign trust update` into `client` (bootstrapped with root v1 when `bootstrap`).
    fn update(&self, client: &Path, bootstrap: bool, extra: &[&str]) -> Output {
        let mut cmd = modelsign_isolated(self.tmp.path());
        cmd.args(["trust", "update", "--tuf-url", &self.url, "--tuf-dir"]).arg(client).args(extra);
        if bootstrap {
            cmd.arg("--root").arg(self.root_v1());
        }
        cmd.output().unwrap()
    }

    /// A second trusted root (same content, other bytes) named trusted_root.json, to release.
    fn other_root_file(&self) -> PathBuf {
        let dir = self.tmp.path().join("v2");
        std::fs::create_dir_all(&dir).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&std::fs::read(case_root()).unwrap()).unwrap();
        let path = dir.join("trusted_root.json");
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        path
    }
}

fn script(tb: &Testbed, dir: &Path) -> Command {
    let mut cmd = Command::new(tb.python());
    cmd.arg(repo_root().join("testdata/tuf/tuf_repo.py")).arg(dir);
    cmd
}

fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), stderr_text(&out));
    out
}

fn case_root() -> PathBuf {
    repo_root().join(CASES).join("rekor2-dsse-happy-path/trusted_root.json")
}

/// modelsign with a private HOME and no TUF folder from the environment.
fn modelsign_isolated(home: &Path) -> Command {
    let mut cmd = modelsign();
    cmd.env("HOME", home).env_remove("XDG_DATA_HOME").env_remove("MODELSIGN_TUF_DIR");
    cmd
}

/// `verify-blob` of the conformance case that only the served trusted root verifies, with
/// the TUF folder `tuf_dir` (none: the built-in root) and `extra` flags.
fn verify_case(home: &Path, tuf_dir: Option<&Path>, extra: &[&str]) -> Output {
    let cases = repo_root().join(CASES);
    let mut cmd = modelsign_isolated(home);
    if let Some(dir) = tuf_dir {
        cmd.env("MODELSIGN_TUF_DIR", dir);
    }
    cmd.arg("verify-blob")
        .arg(cases.join("a.txt"))
        .arg("--bundle")
        .arg(cases.join("rekor2-dsse-happy-path/bundle.sigstore.json"))
        .args(["--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn update_stores_the_trusted_root_and_verify_then_uses_it() {
    let tb = require_testbed!();
    let repo = Repo::new(tb, &[]);
    let client = repo.client("client");
    // Before: the built-in public-good root does not know this instance's timestamp authority.
    let before = verify_case(repo.tmp.path(), Some(&client), &[]);
    assert_eq!(before.status.code(), Some(3), "{}", stderr_text(&before));

    let out = ok(repo.update(&client, true, &["--output", "json"]), "trust update");
    let report = stdout_json(&out);
    assert_eq!(report["rootVersion"], 1);
    assert_eq!(report["targetsVersion"], 1);
    assert_eq!(report["targets"][0]["name"], "trusted_root.json");
    assert_eq!(
        std::fs::read(
            client.join(format!("targets/{}.trusted_root.json", report["targets"][0]["sha256"].as_str().unwrap()))
        )
        .unwrap(),
        std::fs::read(case_root()).unwrap()
    );
    let after = ok(verify_case(repo.tmp.path(), Some(&client), &[]), "verify-blob with the refreshed root");
    assert!(String::from_utf8_lossy(&after.stdout).contains("Verified OK"));
    // --trusted-root still wins over the refreshed root.
    let other = repo_root().join(CASES).join("intoto-with-custom-trust-root/trusted_root.json");
    let forced = verify_case(repo.tmp.path(), Some(&client), &["--trusted-root", other.to_str().unwrap()]);
    assert_eq!(forced.status.code(), Some(3), "{}", stderr_text(&forced));

    // Nothing new: the update passes again (the stored versions are the trusted ones now) and
    // the stored files stay as they were.
    let stored = files_under(&client);
    ok(repo.update(&client, false, &[]), "second trust update");
    assert_eq!(files_under(&client), stored);
    // Stored metadata that was tampered with is not used: verify falls back to the built-in root.
    let targets = std::fs::read_to_string(client.join("metadata/targets.json")).unwrap();
    std::fs::write(client.join("metadata/targets.json"), targets.replacen("\"version\": 1", "\"version\": 7", 1))
        .unwrap();
    let tampered = verify_case(repo.tmp.path(), Some(&client), &[]);
    assert_eq!(tampered.status.code(), Some(3), "{}", stderr_text(&tampered));
    assert!(stderr_text(&tampered).contains("unusable"), "{}", stderr_text(&tampered));
}

#[test]
fn root_rotations_1_2_3_with_new_keys_are_followed() {
    let tb = require_testbed!();
    let config = repo_root().join("src/sigstore/public_good_signing_config.json");
    let repo = Repo::new(tb, &[]);
    let client = repo.client("client");
    ok(repo.update(&client, true, &[]), "first update");
    // v2: two new root keys, threshold 2 (signed by v1's key and both new ones); v3: one new
    // root key and a new timestamp key; then a release with a new trusted root and a config.
    repo.edit(&["rotate-root", "--keys", "2", "--threshold", "2"]);
    repo.edit(&["rotate-root", "--rotate-timestamp"]);
    let new_root = repo.other_root_file();
    let config_copy = repo.tmp.path().join("v2/signing_config.v0.2.json");
    std::fs::copy(&config, &config_copy).unwrap();
    repo.edit(&["release", new_root.to_str().unwrap(), config_copy.to_str().unwrap()]);
    let out = ok(repo.update(&client, false, &["--output", "json"]), "update after rotations");
    let report = stdout_json(&out);
    assert_eq!((report["rootVersion"].as_u64(), report["rootRotations"].as_u64()), (Some(3), Some(2)), "{report}");
    let names: Vec<&str> = report["targets"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["trusted_root.json", "signing_config.v0.2.json"]);
    let stored_root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(client.join("metadata/root.json")).unwrap()).unwrap();
    assert_eq!(stored_root["signed"]["version"], 3);
    // The old target file was pruned; the new one is there.
    assert_eq!(std::fs::read_dir(client.join("targets")).unwrap().count(), 2);
    ok(verify_case(repo.tmp.path(), Some(&client), &[]), "verify-blob after the rotations");

    // A client that starts from root v1 walks 1 → 2 → 3 in one update.
    let fresh = repo.client("fresh");
    let out = ok(repo.update(&fresh, true, &[]), "bootstrap from v1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("root v3 after 2 rotations"), "{text}");
}

/// One attack: a good update first, then `attack` on the repository; the next update must
/// fail with exit 3 and one line containing `expected`, and leave the client folder as it was.
fn refused(prepare: &[&[&str]], attack: &[&[&str]], expected: &str) {
    let tb = require_testbed!();
    let repo = Repo::new(tb, &[]);
    let client = repo.client("client");
    for step in prepare {
        let args: Vec<String> =
            step.iter().map(|a| a.replace("{other_root}", repo.other_root_file().to_str().unwrap())).collect();
        repo.edit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    ok(repo.update(&client, true, &[]), "the good update");
    let before = files_under(&client);
    for step in attack {
        let args: Vec<String> =
            step.iter().map(|a| a.replace("{other_root}", repo.other_root_file().to_str().unwrap())).collect();
        repo.edit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let out = repo.update(&client, false, &[]);
    assert_eq!(out.status.code(), Some(3), "expected exit 3, stderr:\n{}", stderr_text(&out));
    let line = one_error_line(&out);
    assert!(line.contains(expected), "expected `{expected}` in: {line}");
    assert!(line.contains(&repo.url), "the line names the repository: {line}");
    assert_eq!(files_under(&client), before, "the stored state changed after a refused update");
    ok(verify_case(repo.tmp.path(), Some(&client), &[]), "verify-blob with the state kept");
}

#[test]
fn timestamp_signed_by_an_unknown_key_is_refused() {
    refused(
        &[],
        &[&["timestamp", "--rogue"]],
        "timestamp.json is signed by 0 of the `timestamp` role's keys in root version 1; 1 needed",
    );
}

#[test]
fn root_signed_by_fewer_new_keys_than_its_threshold_is_refused() {
    refused(
        &[],
        &[&["rotate-root", "--keys", "2", "--threshold", "2", "--sign-new", "1"]],
        "2.root.json (by its own keys) is signed by 1 of the `root` role's keys in root version 2; 2 needed",
    );
}

#[test]
fn root_rotation_not_signed_by_the_old_keys_is_refused() {
    refused(
        &[],
        &[&["rotate-root", "--sign-old", "0"]],
        "2.root.json (by the keys of root version 1) is signed by 0 of the `root` role's keys",
    );
}

#[test]
fn timestamp_rollback_is_refused() {
    refused(
        &[&["release"]],
        &[&["timestamp", "--version", "1"]],
        "timestamp.json is version 1, older than the trusted version 2",
    );
}

#[test]
fn snapshot_rollback_is_refused() {
    refused(
        &[&["release"]],
        &[&["timestamp", "--snapshot-version", "1"]],
        "the snapshot version in timestamp.json is version 1, older than the trusted version 2",
    );
}

#[test]
fn targets_rollback_is_refused() {
    refused(
        &[&["release"]],
        &[&["snapshot-rollback-targets"]],
        "targets.json in 3.snapshot.json is version 1, older than the trusted version 2",
    );
}

#[test]
fn expired_timestamp_is_refused() {
    refused(&[], &[&["timestamp", "--expired"]], "timestamp.json (version 2) expired at");
}

#[test]
fn target_with_another_hash_is_refused() {
    refused(
        &[],
        &[&["release", "{other_root}"], &["corrupt-target", "trusted_root.json"]],
        "trusted_root.json has sha256",
    );
}

#[test]
fn target_longer_than_signed_is_refused() {
    refused(
        &[],
        &[&["release", "{other_root}"], &["corrupt-target", "trusted_root.json", "--append"]],
        ".trusted_root.json is larger than its limit of",
    );
}

#[test]
fn oversized_timestamp_is_refused() {
    refused(&[], &[&["timestamp", "--pad", "20000"]], "timestamp.json is larger than its limit of 16384 bytes");
}

#[test]
fn mix_and_match_snapshot_is_refused() {
    refused(&[], &[&["mix-snapshot"]], "2.snapshot.json is version 1, but timestamp.json names version 2");
}

#[test]
fn a_private_repository_needs_its_root_and_plain_http_only_to_loopback() {
    let tb = require_testbed!();
    let repo = Repo::new(tb, &[]);
    let out = repo.update(&repo.client("client"), false, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    assert!(one_error_line(&out).contains("give the repository's initial root.json with --root FILE"));
    assert!(!repo.client("client").join("metadata/root.json").exists());

    let mut cmd = modelsign_isolated(repo.tmp.path());
    cmd.args(["trust", "update", "--tuf-url", "http://tuf.example.com", "--tuf-dir"]).arg(repo.client("c2"));
    let out = cmd.output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(one_error_line(&out).contains("plain http is allowed only to a loopback address"));
}

#[test]
fn keyless_sign_and_verify_use_the_signing_config_and_root_from_tuf() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    // The local Sigstore stack's trusted root and signing config, published through TUF.
    let repo = Repo::with_targets(tb.clone(), &[stack.trusted_root_path.clone(), stack.signing_config_path.clone()]);
    let client = repo.client("client");
    let out = ok(repo.update(&client, true, &["--output", "json"]), "trust update");
    assert_eq!(stdout_json(&out)["targets"].as_array().map(Vec::len), Some(2));

    let model = write_tiny_model(repo.tmp.path(), "tiny", 1000);
    let identity = Stack::github_identity(DEFAULT_WORKFLOW);
    // No --signing-config, no --trusted-root: both come from what `trust update` stored.
    let mut sign = modelsign_isolated(repo.tmp.path());
    sign.env("MODELSIGN_TUF_DIR", &client).env_remove("ACTIONS_ID_TOKEN_REQUEST_URL").env_remove("SIGSTORE_ID_TOKEN");
    sign.arg("sign").arg(&model).args(["--identity-token", &stack.github_token(DEFAULT_WORKFLOW, "sigstore")]);
    let out = ok(sign.output().unwrap(), "keyless sign with the TUF signing config");
    assert!(stderr_text(&out).contains(&identity), "{}", stderr_text(&out));

    let verify = |tuf_dir: Option<&Path>| {
        let mut cmd = modelsign_isolated(repo.tmp.path());
        if let Some(dir) = tuf_dir {
            cmd.env("MODELSIGN_TUF_DIR", dir);
        }
        cmd.arg("verify").arg(&model).args(["--certificate-identity", &identity]);
        cmd.args(["--certificate-oidc-issuer", &stack.oidc_issuer]).output().unwrap()
    };
    ok(verify(Some(&client)), "verify with the TUF root");
    let without = verify(None);
    assert_eq!(
        without.status.code(),
        Some(3),
        "the built-in root must not know the local stack: {}",
        stderr_text(&without)
    );
}

/// Symlinks planted in the client folder, each pointing to a file or folder outside it: at
/// `metadata/root.json` (to the root that was stored there: valid trust, were it followed),
/// at the `metadata` folder itself, and at the stored trusted root target (to a file that
/// is not one). The repository has a new root by then, so an update that wrote through a
/// link would change its victim. Trust is never read through one, nothing is written
/// through one; the victims stay byte for byte as they were.
#[test]
fn symlinks_planted_in_the_tuf_folder_are_neither_read_nor_written_through() {
    use std::os::unix::fs::symlink;
    let tb = require_testbed!();
    let repo = Repo::new(tb, &[]);
    let client = repo.client("client");
    ok(repo.update(&client, true, &[]), "the good update");
    repo.edit(&["rotate-root"]);
    let outside = repo.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let home = repo.tmp.path();

    // metadata/root.json: `trust update` refuses it in one line (exit 1) and leaves it,
    // and keyless verify does not take the stored trust from it (built-in root: exit 3).
    let root = client.join("metadata/root.json");
    let victim = outside.join("root.json");
    std::fs::rename(&root, &victim).unwrap();
    let victim_bytes = std::fs::read(&victim).unwrap();
    symlink(&victim, &root).unwrap();
    let out = repo.update(&client, false, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_text(&out));
    let line = one_error_line(&out);
    assert!(line.contains(&root.display().to_string()) && line.contains("is a symlink"), "{line}");
    assert!(std::fs::symlink_metadata(&root).unwrap().is_symlink(), "the link was replaced or removed");
    let verify = verify_case(home, Some(&client), &[]);
    assert_eq!(verify.status.code(), Some(3), "trust was read through the link: {}", stderr_text(&verify));
    assert!(stderr_text(&verify).contains("unusable"), "{}", stderr_text(&verify));
    assert_eq!(std::fs::read(&victim).unwrap(), victim_bytes);
    std::fs::remove_file(&root).unwrap();
    std::fs::copy(&victim, &root).unwrap();
    ok(verify_case(home, Some(&client), &[]), "verify-blob with the root put back");

    // The metadata folder: refused the same way, the folder it points to left alone.
    let metadata = client.join("metadata");
    let victim_dir = outside.join("metadata");
    std::fs::rename(&metadata, &victim_dir).unwrap();
    let victim_files = files_under(&victim_dir);
    symlink(&victim_dir, &metadata).unwrap();
    let out = repo.update(&client, false, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_text(&out));
    let line = one_error_line(&out);
    assert!(line.contains(&metadata.display().to_string()) && line.contains("is a symlink"), "{line}");
    assert_eq!(files_under(&victim_dir), victim_files);
    std::fs::remove_file(&metadata).unwrap();
    std::fs::rename(&victim_dir, &metadata).unwrap();

    // The stored trusted root target: verify does not read it through the link; the next
    // update replaces the link itself with the file (written through a temporary file and
    // a rename), and the file it pointed to keeps its bytes.
    let victim_bytes = b"not a trusted root: a file of someone else's\n";
    let target = std::fs::read_dir(client.join("targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".trusted_root.json"))
        .expect("a stored trusted root");
    let target_bytes = std::fs::read(&target).unwrap();
    let victim = outside.join("trusted_root.json");
    std::fs::remove_file(&target).unwrap();
    std::fs::write(&victim, victim_bytes).unwrap();
    symlink(&victim, &target).unwrap();
    let verify = verify_case(home, Some(&client), &[]);
    assert_eq!(verify.status.code(), Some(3), "trust was read through the link: {}", stderr_text(&verify));
    assert!(stderr_text(&verify).contains("is a symlink"), "{}", stderr_text(&verify));
    ok(repo.update(&client, false, &[]), "update over a symlinked target");
    assert!(std::fs::symlink_metadata(&target).unwrap().is_file(), "the link is still there");
    assert_eq!(std::fs::read(&target).unwrap(), target_bytes);
    assert_eq!(std::fs::read(&victim).unwrap(), victim_bytes);
    ok(verify_case(home, Some(&client), &[]), "verify-blob after the update");
}
