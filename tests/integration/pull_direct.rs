//! A big component is written past the page cache (`O_DIRECT`) where the file system allows
//! it, including after a cut at an offset no block boundary falls on: the bytes are right,
//! the download resumes where it was cut, and the pulled file is (mostly) not in the page
//! cache, which `fincore` reads the way the kernel keeps it. Wrong bytes from the registry,
//! written directly, are refused and not kept.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// Over the 16 MiB from which a download is written directly.
const WEIGHTS: usize = 20_000_000;
/// A cut that leaves the partial file at no multiple of 4096.
const CUT: u64 = 5_000_003;
/// Cut at every GET, a pull's four attempts keep 12,000,004 bytes: short of the whole file,
/// at no multiple of 4096.
const EVERY_CUT: u64 = 3_000_001;

fn ms(peers: &Peers) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "--no-progress"]);
    cmd
}

/// Whether the file system holding `dir` takes `O_DIRECT`.
fn direct_supported(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join("direct-probe");
    let ok = std::fs::OpenOptions::new().write(true).create(true).custom_flags(libc::O_DIRECT).open(&probe).is_ok();
    let _ = std::fs::remove_file(probe);
    ok
}

/// Bytes of `file` in the page cache.
fn resident(file: &Path) -> u64 {
    let out = run_ok(Command::new("fincore").args(["--bytes", "--noheadings", "--raw", "--output", "RES"]).arg(file));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|e| panic!("fincore said {:?}: {e}", out.stdout))
}

/// The pulled weights are right; where direct writes work, at most the `read` bytes (a
/// resumed file's kept bytes, hashed again), the first resumed chunk and the tail (about
/// 1 MiB) are in the page cache. Checked before anything else reads the file.
fn assert_pulled_past_the_page_cache(out: &Path, tmp: &Path, read: u64, weights: &[u8]) {
    let pulled = out.join("model.safetensors");
    if direct_supported(tmp) {
        let cached = resident(&pulled);
        assert!(cached <= read + (2 << 20), "{cached} of {WEIGHTS} bytes are in the page cache");
    } else {
        eprintln!("note: {} takes no O_DIRECT; only the bytes are checked", tmp.display());
    }
    assert!(std::fs::read(&pulled).unwrap() == weights, "the pulled weights differ");
}

/// Pushes a model whose weights are [`WEIGHTS`] bytes as `models/big:v1`; returns its files
/// and the weights' digest.
fn push_big_model(bed: &Bed) -> (std::collections::BTreeMap<String, Vec<u8>>, String) {
    let model = write_tiny_model(bed.path(), "big", WEIGHTS);
    let files = files_under(&model);
    let weights = sha256_digest(&files["model.safetensors"]);
    run_ok(ms(&bed.peers).args(["push", &format!("{}/models/big:v1", bed.registry().addr())]).arg(&model));
    (files, weights)
}

#[test]
fn a_big_component_cut_at_an_unaligned_offset_resumes_and_is_written_directly() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let (files, weights) = push_big_model(&bed);

    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::cut_blob(&weights, CUT).times(1)]);
    let out = tmp.join("out");
    run_ok(ms(peers).args(["pull", &format!("{}/models/big:v1", proxy.addr()), "-o"]).arg(&out));
    assert_eq!(proxy.faults_applied("cut"), 1);
    let gets = proxy.blob_gets(&weights);
    assert_eq!(gets.len(), 2, "{gets:?}");
    let resumed_at = gets[1].range_start().unwrap_or_else(|| panic!("the second GET has no Range: {:?}", gets[1]));
    assert!(resumed_at > 0 && resumed_at <= CUT, "resumed at {resumed_at}");
    assert_pulled_past_the_page_cache(&out, tmp, 0, &files["model.safetensors"]);
    assert_eq!(files_under(&out), files);
}

#[test]
fn a_partial_file_of_unaligned_length_is_resumed_by_the_next_pull() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let (files, weights) = push_big_model(&bed);

    // Every GET is cut: the first pull gives up and keeps what arrived.
    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::cut_blob(&weights, EVERY_CUT)]);
    let reference = format!("{}/models/big:v1", proxy.addr());
    let out = tmp.join("out");
    run_fail(ms(peers).args(["pull", &reference, "-o"]).arg(&out));
    let partial = out.join(".modelsign-partial").join(weights.trim_start_matches("sha256:"));
    let kept = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or_else(|e| panic!("no partial file kept ({e})"));
    assert!(kept % 4096 != 0 && kept < WEIGHTS as u64, "partial file of {kept} bytes");

    proxy.clear_faults();
    run_ok(ms(peers).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(proxy.blob_gets(&weights).last().unwrap().range_start(), Some(kept));
    assert_pulled_past_the_page_cache(&out, tmp, kept, &files["model.safetensors"]);
    assert_eq!(files_under(&out), files, "and leaves no partial file behind");
}

#[test]
fn a_big_component_with_wrong_bytes_is_refused_and_nothing_of_it_stays() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let (_, weights) = push_big_model(&bed);

    // The registry flips bytes of the weights: written directly, then found wrong.
    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::corrupt_blob(&weights)]);
    let out = tmp.join("out");
    let output = run_fail(ms(peers).args(["pull", &format!("{}/models/big:v1", proxy.addr()), "-o"]).arg(&out));
    assert_eq!(output.status.code(), Some(3), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(line.contains("model.safetensors") && line.contains("digest mismatch"), "{line}");
    assert!(!out.join("model.safetensors").exists(), "the bad file was put in place");
    let bad = out.join(".modelsign-partial").join(weights.trim_start_matches("sha256:"));
    assert!(!bad.exists(), "the bad bytes were kept for a resume");
}
