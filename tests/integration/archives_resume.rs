//! Archive layers whose download is interrupted, through the fault proxy in front of a
//! real registry: a cut mid-layer is resumed within the pull with a Range request; a layer
//! cut on every try fails the pull with one line and leaves nothing in the output folder;
//! a pull killed mid-layer leaves its staging folder, which the next pull removes before
//! it starts the layer over. Also the same archives pulled from a layout folder (read as a
//! local file), and a corrupted blob there refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::archives::{push_artifact, tar_gz};
use crate::support::*;

const WEIGHT_TGZ: &str = "application/vnd.cncf.model.weight.v1.tar+gzip";
const WEIGHT_TAR: &str = "application/vnd.cncf.model.weight.v1.tar";

fn ms(peers: &Peers) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "--no-progress"]);
    cmd
}

/// A model of two archive layers: a tar+gzip of 3 MB of incompressible weights (several
/// chunks of the download) and a small plain tar. Returns its reference, the big layer's
/// digest and the files it unpacks to.
fn archive_model(reg: &Registry) -> (String, String, BTreeMap<String, Vec<u8>>) {
    let weights = pseudo_random_bytes(3_000_000, 42);
    let big = tar_gz(&[("weights/model.bin", &weights), ("weights/config.json", b"{}")], true);
    let digest = sha256_digest(&big);
    let small = tar_gz(&[("docs/README.md", b"# resumed\n")], false);
    let layers = vec![
        (big, WEIGHT_TGZ, json!({"org.cncf.model.filepath": "weights"})),
        (small, WEIGHT_TAR, json!({"org.cncf.model.filepath": "docs"})),
    ];
    push_artifact(reg, "archives/resume", "v1", (OCI_EMPTY, b"{}"), &layers, Value::Null);
    let files: BTreeMap<String, Vec<u8>> = [
        ("weights/model.bin".to_string(), weights),
        ("weights/config.json".to_string(), b"{}".to_vec()),
        ("docs/README.md".to_string(), b"# resumed\n".to_vec()),
    ]
    .into();
    (format!("{}/archives/resume:v1", reg.addr()), digest, files)
}

fn staging_folders(out: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(out.join(".modelsign-partial")) else { return Vec::new() };
    entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("unpack."))
        .collect()
}

#[test]
fn an_archive_layer_cut_mid_stream_is_resumed_with_a_range_request() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let tmp = tempfile::tempdir().unwrap();
    let (reference, digest, files) = archive_model(&reg);
    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::cut_blob(&digest, 1_500_000).times(1)]);
    let reference = reference.replace(reg.addr(), proxy.addr());
    let out = tmp.path().join("out");
    let o = run_ok(ms(&peers).args(["pull", &reference, "--format", "json", "-o"]).arg(&out));
    assert_eq!(proxy.faults_applied("cut"), 1);
    assert!(stderr_text(&o).contains("resuming at byte 1500000"), "{}", stderr_text(&o));
    assert_eq!(files_under(&out), files, "the unpacked files differ after a resumed download");
    let gets = proxy.blob_gets(&digest);
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range_start(), None, "the first GET asks for the whole layer: {:?}", gets[0]);
    assert_eq!(gets[1].range_start(), Some(1_500_000), "the second GET resumes where the cut was: {:?}", gets[1]);
    assert_eq!(gets[1].status, 206, "{:?}", gets[1]);
    let report = stdout_json(&o);
    assert_eq!(report["archives"][0]["files"].as_array().map(Vec::len), Some(2), "{report}");
}

#[test]
fn an_archive_layer_cut_on_every_try_fails_and_leaves_nothing() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Cue);
    let tmp = tempfile::tempdir().unwrap();
    let (reference, digest, files) = archive_model(&reg);
    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::cut_blob(&digest, 200_000)]);
    let reference = reference.replace(reg.addr(), proxy.addr());
    let parent = tmp.path().join("cut");
    let out = parent.join("out");
    let o = run_fail(ms(&peers).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(o.status.code(), Some(1), "{}", stderr_text(&o));
    let line = one_error_line(&o);
    assert!(line.contains("`weights`"), "names the archive layer: {line}");
    assert_eq!(proxy.faults_applied("cut"), 4, "one try and three resumes");
    assert_eq!(files_under(&parent), BTreeMap::new(), "a cut archive left files behind");
    assert!(!out.join(".modelsign-partial").exists(), "the resume folder was left behind");

    // Nothing kept: the next pull downloads the layer whole and unpacks it.
    proxy.clear_faults();
    run_ok(ms(&peers).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(files_under(&out), files);
}

#[test]
fn a_pull_killed_mid_archive_is_cleaned_up_by_the_next_one() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let tmp = tempfile::tempdir().unwrap();
    let (reference, digest, files) = archive_model(&reg);
    // The big layer stops after 2 MB (one chunk unpacked into staging) and hangs.
    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::stall_any_blob(2_000_000)]);
    let reference = reference.replace(reg.addr(), proxy.addr());
    let out = tmp.path().join("out");
    let mut child = ms(&peers)
        .args(["pull", &reference, "-o"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let staged_bytes = |out: &Path| -> usize { files_under(out).values().map(Vec::len).sum() };
    while staged_bytes(&out) < 1_000_000 {
        assert!(Instant::now() < deadline, "the pull staged nothing: {:?}", files_under(&out).keys());
        assert!(child.try_wait().unwrap().is_none(), "the stalled pull ended by itself");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = staging_folders(&out);
    assert_eq!(left.len(), 1, "the killed pull's staging folder: {left:?}");
    assert!(files_under(&out).keys().all(|p| p.starts_with(".modelsign-partial/")), "{:?}", files_under(&out).keys());
    assert!(!proxy.blob_gets(&digest).is_empty());

    proxy.clear_faults();
    run_ok(ms(&peers).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(files_under(&out), files, "the next pull left the killed one's staging files or missed some");
    assert!(!out.join(".modelsign-partial").exists(), "the resume folder was left behind");
}

#[test]
fn archive_layers_from_a_layout_folder_are_read_locally_and_checked() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let tmp = tempfile::tempdir().unwrap();
    let (reference, digest, files) = archive_model(&reg);
    let layout_dir = tmp.path().join("layout");
    let layout = format!("oci:{}:v1", layout_dir.display());
    run_ok(ms(&peers).args(["copy", &reference, &layout]));
    let out = tmp.path().join("out");
    run_ok(ms(&peers).args(["pull", &layout, "-o"]).arg(&out));
    assert_eq!(files_under(&out), files);

    // One byte of the blob changed in the layout folder: refused (exit 3), nothing written.
    let blob = layout_dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&blob, &bytes).unwrap();
    let parent = tmp.path().join("corrupt");
    let o = run_fail(ms(&peers).args(["pull", &layout, "-o"]).arg(parent.join("out")));
    assert_eq!(o.status.code(), Some(3), "{}", stderr_text(&o));
    assert!(one_error_line(&o).contains(&digest), "{}", stderr_text(&o));
    assert_eq!(files_under(&parent), BTreeMap::new(), "a corrupted layout blob left files behind");
}
