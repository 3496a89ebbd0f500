//! A restarted `push`, `pull` or `sign DIR` says how much it skipped (blobs the registry
//! already had, files already in the folder, bytes an interrupted pull kept, files the
//! digest cache knew), in one line and in `--output json`; and the digest cache forgets
//! files that are gone.

use std::fs;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::support::*;

fn ms(peers: &Peers, cache: &std::path::Path) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "--no-progress"]).env("MODELSIGN_CACHE_DIR", cache);
    cmd
}

#[test]
fn a_restarted_pull_and_push_say_what_they_skipped() {
    const WEIGHTS: usize = 3_000_000;
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start_in(&tb, RegistryKind::Distribution);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let model = write_tiny_model(tmp.path(), "tiny", WEIGHTS);
    let files = files_under(&model);
    let total: u64 = files.values().map(|b| b.len() as u64).sum();
    let weights = sha256_digest(&files["model.safetensors"]);
    let reference = format!("{}/models/tiny:v1", reg.addr());
    let push =
        |extra: &[&str]| stdout_json(&run_ok(ms(&peers, &cache).args(["push", &reference]).arg(&model).args(extra)));
    let first = push(&["--output", "json"]);
    assert_eq!((first["bytesUploaded"].as_u64(), first["bytesPresent"].as_u64()), (Some(total), Some(0)), "{first}");
    // Pushed again: everything was there.
    let again = run_ok(ms(&peers, &cache).args(["push", &reference]).arg(&model));
    let line = stderr_text(&again);
    assert!(line.contains("0 uploaded, 0 B sent; 5 already there"), "{line}");
    let again = push(&["--output", "json"]);
    assert_eq!((again["bytesUploaded"].as_u64(), again["bytesPresent"].as_u64()), (Some(0), Some(total)), "{again}");

    // A pull cut every time it fetches the weights keeps what it got.
    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::cut_blob(&weights, 100_000)]);
    let via_proxy = format!("{}/models/tiny:v1", proxy.addr());
    let out = tmp.path().join("out");
    run_fail(ms(&peers, &cache).args(["pull", &via_proxy, "-o"]).arg(&out));
    let partial = out.join(".modelsign-partial").join(weights.trim_start_matches("sha256:"));
    let kept = fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < WEIGHTS as u64, "{kept}");
    // The next one resumes: it says so, and downloads only the rest.
    proxy.clear_faults();
    let resumed = run_ok(ms(&peers, &cache).args(["pull", &via_proxy, "--format", "json", "-o"]).arg(&out));
    let report: Value = stdout_json(&resumed);
    assert_eq!(report["bytesResumed"].as_u64(), Some(kept), "{report}");
    let present = report["bytesPresent"].as_u64().unwrap();
    assert_eq!(report["bytesDownloaded"].as_u64(), Some(total - kept - present), "{report}");
    let weights_entry = report["components"].as_array().unwrap().iter().find(|c| c["path"] == "model.safetensors");
    assert_eq!(weights_entry.unwrap()["resumed"].as_u64(), Some(kept), "{report}");
    assert_eq!(files_under(&out), files);
    // Pulled again: everything is there, in one line of text too.
    let again = run_ok(ms(&peers, &cache).args(["pull", &reference, "-o"]).arg(&out));
    let line = stderr_text(&again);
    assert!(line.contains("pulled 0 of 5 components (0 B)") && line.contains("5 already there"), "{line}");
    let again = stdout_json(&run_ok(ms(&peers, &cache).args(["pull", &reference, "--format", "json", "-o"]).arg(&out)));
    assert_eq!((again["bytesDownloaded"].as_u64(), again["bytesPresent"].as_u64()), (Some(0), Some(total)), "{again}");
    assert_eq!(again["bytesResumed"].as_u64(), Some(0));
}

#[test]
fn the_digest_cache_forgets_files_that_are_gone() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let model = write_tiny_model(tmp.path(), "tiny", 100_000);
    let prefix = tmp.path().join("signer");
    run_ok(peers.modelsign().args(["keygen", "--algorithm", "ed25519", "-o"]).arg(&prefix));
    std::thread::sleep(Duration::from_millis(2_200)); // settled: the cache records them
    let sign = || {
        let out = run_ok(
            ms(&peers, &cache)
                .arg("sign")
                .arg(&model)
                .arg("--key")
                .arg(prefix.with_extension("key"))
                .arg("--signature")
                .arg(tmp.path().join("model.sig"))
                .args(["--output", "json"]),
        );
        stdout_json(&out)["hashing"].clone()
    };
    let entries = || fs::read_dir(cache.join("digests-v2")).unwrap().count();
    assert_eq!(sign()["hashed"], 5);
    assert_eq!(entries(), 5);
    fs::remove_file(model.join("extra/notes.txt")).unwrap();
    fs::remove_dir_all(model.join("extra")).unwrap();
    // Pruned less than a day ago: the entries stay.
    assert_eq!(sign()["fromCache"], 3);
    assert_eq!(entries(), 5);
    // A day later, the next run forgets the two files that are gone.
    let stamp = cache.join("digests-pruned");
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
    fs::File::options().write(true).open(&stamp).unwrap().set_modified(two_days_ago).unwrap();
    assert_eq!(sign()["fromCache"], 3);
    assert_eq!(entries(), 3);
}
