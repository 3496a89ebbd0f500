//! Archive layers (issue 11) under the rest of the tool: the unpack caps as command-line
//! flags (each refusal names the cap and the flag, and leaves nothing behind), the hostile
//! entries not covered through a registry elsewhere (absolute paths, devices, sparse files,
//! a zstd bomb), and a custody policy (issue 6) gating a ModelPack artifact with tar layers:
//! `verify --policy --component` of a file inside an archive, `pull --policy --include`,
//! `copy --policy`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::archives::{push_artifact, raw_tar, tar_gz};
use crate::support::*;

fn ms(peers: &Peers) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "--no-progress"]);
    cmd
}

const WEIGHT_TAR: &str = "application/vnd.cncf.model.weight.v1.tar";
const WEIGHT_TGZ: &str = "application/vnd.cncf.model.weight.v1.tar+gzip";
const WEIGHT_TZST: &str = "application/vnd.cncf.model.weight.v1.tar+zstd";

fn filepath(p: &str) -> Value {
    json!({"org.cncf.model.filepath": p})
}

/// A refused pull: exit `code`, one line holding every needle, nothing under `parent`.
fn refused(out: &std::process::Output, code: i32, needles: &[&str], parent: &Path) {
    let line = one_error_line(out);
    assert_eq!(out.status.code(), Some(code), "{line}");
    for n in needles {
        assert!(line.contains(n), "`{n}` not in: {line}");
    }
    assert_eq!(files_under(parent), BTreeMap::new(), "files left behind by: {line}");
}

#[test]
fn unpack_caps_are_flags_and_each_refusal_names_its_flag() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let tmp = tempfile::tempdir().unwrap();
    let big = pseudo_random_bytes(100_000, 7);
    let tar = tar_gz(&[("w/a.bin", &big), ("w/b.bin", b"bee"), ("w/c.json", b"{}")], false);
    push_artifact(&reg, "caps/m", "tar", (OCI_EMPTY, b"{}"), &[(tar, WEIGHT_TAR, filepath("w"))], Value::Null);
    let reference = format!("{}/caps/m:tar", reg.addr());

    // Defaults let it through.
    let ok = tmp.path().join("ok");
    run_ok(ms(&peers).args(["pull", &reference, "-o"]).arg(&ok));
    assert_eq!(files_under(&ok).len(), 3);

    let cases: [(&[&str], &[&str]); 3] = [
        (&["--max-unpack-entries", "2"], &["more than 2 entries", "entry cap", "--max-unpack-entries"]),
        (&["--max-unpack-file-size", "50K"], &["w/a.bin", "single-file cap (51200 bytes", "--max-unpack-file-size"]),
        (&["--max-unpack-size", "0.05MiB"], &["more than 52428 bytes", "total size cap", "--max-unpack-size"]),
    ];
    for (i, (flags, needles)) in cases.iter().enumerate() {
        let parent = tmp.path().join(format!("case{i}"));
        let out = ms(&peers).args(["pull", &reference, "-o"]).arg(parent.join("out")).args(*flags).output().unwrap();
        refused(&out, 1, needles, &parent);
        // verify --component of a file inside the archive lists it under the same caps.
        let out = ms(&peers)
            .args(["verify", &reference, "--key", "/nonexistent.pub", "--component", "w/c.json"])
            .args(*flags)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr_text(&out));
    }

    // A decompression bomb past the 64 MiB allowance is refused by default, naming the
    // ratio flag; raising it lets the layer through.
    let zeros = vec![0u8; 70 << 20];
    let bomb = tar_gz(&[("zeros.bin", &zeros)], true);
    drop(zeros);
    let ratio = (70u64 << 20) / bomb.len() as u64;
    push_artifact(&reg, "caps/m", "bomb", (OCI_EMPTY, b"{}"), &[(bomb, WEIGHT_TGZ, filepath("z"))], Value::Null);
    let bomb_ref = format!("{}/caps/m:bomb", reg.addr());
    let parent = tmp.path().join("bomb");
    let out = ms(&peers).args(["pull", &bomb_ref, "-o"]).arg(parent.join("out")).output().unwrap();
    refused(&out, 1, &["decompression ratio cap: 100x", "decompression bomb?", "--max-unpack-ratio"], &parent);
    let raised = (ratio * 2).to_string();
    run_ok(ms(&peers).args(["pull", &bomb_ref, "--max-unpack-ratio", &raised, "-o"]).arg(parent.join("out")));
    assert_eq!(std::fs::metadata(parent.join("out/zeros.bin")).unwrap().len(), 70 << 20);
    std::fs::remove_dir_all(&parent).unwrap();

    // Usage mistakes: zero, and a size that is no size.
    let out = ms(&peers)
        .args(["pull", &reference, "--max-unpack-entries", "0", "-o"])
        .arg(tmp.path().join("z"))
        .output()
        .unwrap();
    let (code, line) = one_line_error(&out);
    assert_eq!(code, Some(1));
    assert!(line.contains("--max-unpack-entries must be more than 0"), "{line}");
    let out = ms(&peers)
        .args(["pull", &reference, "--max-unpack-size", "12parsecs", "-o"])
        .arg(tmp.path().join("z"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_text(&out));
    assert!(stderr_text(&out).contains("unknown unit `parsecs`"), "{}", stderr_text(&out));
    assert!(!tmp.path().join("z").exists());
}

/// Hostile entries through a registry, each its own case: an absolute path, a character
/// and a block device, a GNU sparse file, a PAX-sparse file, and a zstd bomb. Each is
/// refused with one line and leaves nothing, not even the resume folder.
#[test]
fn more_hostile_archives_from_a_registry_leave_nothing_behind() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Cue);
    let tmp = tempfile::tempdir().unwrap();
    let good = (tar_gz(&[("good.txt", b"fine")], true), "application/vnd.cncf.model.doc.v1.tar+gzip", Value::Null);
    let pax_sparse = {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("GNU.sparse.major", &b"1"[..]), ("GNU.sparse.minor", b"0")]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "sparse.bin", &b"data"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let gnu_sparse = {
        // A GNU sparse entry claiming a 1 TiB file made of holes.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        // One 4-byte chunk at its very end: a consistent sparse map, so the refusal is ours.
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_size(4);
        h.set_path("holes.bin").unwrap();
        let gnu = h.as_gnu_mut().unwrap();
        gnu.set_real_size(1 << 40);
        // GNU base-256 numbers (too large for 11 octal digits): 0x80, then big-endian.
        let octal = |v: u64| {
            let mut field = [0u8; 12];
            field[0] = 0x80;
            field[4..].copy_from_slice(&v.to_be_bytes());
            field
        };
        gnu.sparse[0].offset = octal((1 << 40) - 4);
        gnu.sparse[0].numbytes = octal(4);
        h.set_cksum();
        b.append(&h, &b"data"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let zstd_bomb = {
        let tar = tar_gz(&[("zeros.bin", &vec![0u8; 80 << 20])], false);
        zstd::stream::encode_all(&tar[..], 19).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str, &str, i32)> = vec![
        ("absolute", raw_tar(b"/tmp/escaped.txt", tar::EntryType::Regular, b"pwned", b""), WEIGHT_TAR, "absolute", 3),
        ("chardev", raw_tar(b"null", tar::EntryType::Char, b"", b""), WEIGHT_TAR, "device entries are refused", 3),
        ("blockdev", raw_tar(b"sda", tar::EntryType::Block, b"", b""), WEIGHT_TAR, "device entries are refused", 3),
        ("gnusparse", gnu_sparse, WEIGHT_TAR, "sparse entries are refused", 3),
        ("paxsparse", pax_sparse, WEIGHT_TAR, "sparse entries are refused", 3),
        ("zstdbomb", zstd_bomb, WEIGHT_TZST, "decompression ratio cap", 1),
    ];
    for (name, blob, media_type, needle, code) in cases {
        let layers = vec![good.clone(), (blob, media_type, filepath("weights"))];
        push_artifact(&reg, "archives/hostile", name, (OCI_EMPTY, b"{}"), &layers, Value::Null);
        let reference = format!("{}/archives/hostile:{name}", reg.addr());
        let parent = tmp.path().join(name);
        let out = ms(&peers).args(["pull", &reference, "-o"]).arg(parent.join("out")).output().unwrap();
        refused(&out, code, &[needle], &parent);
    }
}

/// A ModelPack artifact whose components are archives, under a custody policy: the
/// publisher signs the whole model, the vision team the `vision` archive layer; a file
/// inside that archive is verified alone; pull and copy pass the gate, and a policy that
/// is not met writes and copies nothing.
#[test]
fn a_policy_gates_a_model_of_archive_layers() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let tmp = tempfile::tempdir().unwrap();
    let vision = tar_gz(&[("vision/encoder.bin", &pseudo_random_bytes(50_000, 1)), ("vision/conf.json", b"{}")], true);
    let text = tar_gz(&[("text/decoder.bin", &pseudo_random_bytes(50_000, 2))], false);
    let layers = vec![(vision, WEIGHT_TGZ, filepath("vision")), (text, WEIGHT_TAR, filepath("text"))];
    push_artifact(&reg, "custody/archives", "v1", (OCI_EMPTY, b"{}"), &layers, Value::Null);
    let reference = format!("{}/custody/archives:v1", reg.addr());
    for p in ["publisher", "vision"] {
        run_ok(peers.modelsign().arg("keygen").arg("-o").arg(tmp.path().join(p)));
    }
    let key = |p: &str| tmp.path().join(format!("{p}.key"));
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\nsigners:\n  publisher: {key: publisher.pub}\n  vision: {key: vision.pub}\nrequire:\n  - signed: [publisher]\n  - components: \"vision\"\n    signed: [vision]\n",
    )
    .unwrap();
    let verify = |component: &str| {
        ms(&peers)
            .args(["verify", "--output", "json", &reference, "--policy"])
            .arg(&policy)
            .args(["--component", component])
            .output()
            .unwrap()
    };

    run_ok(ms(&peers).args(["sign", &reference, "--key"]).arg(key("publisher")));
    // Not yet signed by vision: the file inside its archive fails, the text one passes.
    let out = verify("vision/encoder.bin");
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
    let stderr = stderr_text(&out);
    assert!(stderr.contains("note: `vision/encoder.bin` is in archive layer `vision`"), "{stderr}");
    let error = stderr.lines().filter(|l| l.starts_with("error: ")).collect::<Vec<_>>();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(
        error[0].contains("component `vision`") && error[0].contains("signed by 0 of the required signers"),
        "{stderr}"
    );
    let out = verify("text/decoder.bin");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    let pulled = tmp.path().join("refused");
    let out = ms(&peers).args(["pull", &reference, "--policy"]).arg(&policy).arg("-o").arg(&pulled).output().unwrap();
    assert_untrusted(&out, &["nothing was written"]);
    assert!(!pulled.exists());
    let mirror = tmp.path().join("mirror-refused");
    let out = ms(&peers)
        .args(["copy", &reference, &format!("oci:{}:v1", mirror.display()), "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_untrusted(&out, &["nothing was copied"]);
    assert!(!mirror.exists());

    // The vision team signs its archive layer: everything passes.
    run_ok(ms(&peers).args(["sign", &reference, "--key"]).arg(key("vision")).args(["--component", "vision"]));
    let out = verify("vision/encoder.bin");
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    let report = stdout_json(&out);
    assert_eq!(report["components"][0]["path"], "vision", "the layer holding the file is checked: {report:#}");
    let pulled = tmp.path().join("pulled");
    run_ok(
        ms(&peers)
            .args(["pull", &reference, "--policy"])
            .arg(&policy)
            .args(["--include", "vision/*.bin", "-o"])
            .arg(&pulled),
    );
    let files: Vec<String> = files_under(&pulled).into_keys().collect();
    assert_eq!(files, ["vision/encoder.bin"], "--include picks inside the archive");
    let mirror = format!("oci:{}:v1", tmp.path().join("mirror").display());
    run_ok(ms(&peers).args(["copy", &reference, &mirror, "--policy"]).arg(&policy));
    let out = ms(&peers).args(["verify", "--offline", &mirror, "--policy"]).arg(&policy).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
}
