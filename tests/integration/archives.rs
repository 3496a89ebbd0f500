//! Models packed by other tools, on the test bed's registries: an `oras push` of a folder,
//! a CNCF ModelPack artifact with tar, tar+gzip and tar+zstd layers pushed by
//! `modelpack-client`, and a KitOps ModelKit and a Docker model artifact made here from
//! their published layouts (testdata/*/README.md says how). Each is inspected, signed from
//! its manifest, verified one component (or one file inside an archive) at a time, pulled
//! (unpacked) and copied; hostile archives served by a registry leave nothing behind.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

fn ms(peers: &Peers) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "--no-progress"]);
    cmd
}

fn keys(peers: &Peers, dir: &Path) -> (String, String) {
    run_ok(peers.modelsign().arg("keygen").arg("-o").arg(dir.join("signer")));
    (dir.join("signer.key").display().to_string(), dir.join("signer.pub").display().to_string())
}

/// A small model folder: weights, a config, a nested doc.
fn model_folder(parent: &Path, name: &str) -> std::path::PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(dir.join("docs/deep")).unwrap();
    std::fs::write(dir.join("config.json"), br#"{"architectures":["Tiny"]}"#).unwrap();
    std::fs::write(dir.join("model.safetensors"), pseudo_random_bytes(300_000, 3)).unwrap();
    std::fs::write(dir.join("docs/deep/README.md"), b"# tiny\n").unwrap();
    dir
}

/// Every file under `dir` with `prefix/` in front of its path.
fn prefixed(prefix: &str, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir).into_iter().map(|(p, b)| (format!("{prefix}/{p}"), b)).collect()
}

/// sign REF, then verify REF --component for each of `components` (all must pass), then a
/// path no archive holds (must fail with exit 1, naming it).
fn sign_and_verify(peers: &Peers, reference: &str, key: &str, public: &str, components: &[&str]) {
    run_ok(ms(peers).args(["sign", reference, "--key", key]));
    for c in components {
        let out = run_ok(ms(peers).args(["verify", reference, "--key", public, "--component", c, "--output", "json"]));
        let report = stdout_json(&out);
        assert_eq!(report["verified"], true, "{c}: {report}");
        assert_eq!(report["components"].as_array().unwrap().len(), 1, "{c}: {report}");
    }
    let out = run_fail(ms(peers).args(["verify", reference, "--key", public, "--component", "no/such/file"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(one_error_line(&out).contains("`no/such/file` is not a component"), "{}", stderr_text(&out));
}

/// pull --key into a fresh folder: the files, and no model.sig (it would not cover them).
fn pull_verified(peers: &Peers, reference: &str, public: &str, out: &Path) -> Value {
    let o = run_ok(ms(peers).args(["pull", reference, "--key", public, "--format", "json", "-o"]).arg(out));
    assert!(stderr_text(&o).contains("model.sig not written: archive layers were unpacked"), "{}", stderr_text(&o));
    assert!(!out.join("model.sig").exists());
    assert!(!out.join(".modelsign-partial").exists(), "bookkeeping folder left behind");
    stdout_json(&o)
}

#[test]
fn oras_folder_is_inspected_signed_verified_and_unpacked() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    for kind in RegistryKind::anonymous_kinds() {
        let reg = Registry::start(kind.clone());
        let tmp = tempfile::tempdir().unwrap();
        let folder = model_folder(tmp.path(), "weights");
        let reference = format!("{}/archives/oras-folder:v1", reg.addr());
        run_ok(peers.oras().current_dir(tmp.path()).args(["push", "--plain-http", &reference, "weights/"]));

        let inspect = stdout_json(&run_ok(ms(&peers).args(["inspect", &reference, "--output", "json"])));
        assert_eq!(inspect["kind"], "oras", "{kind:?}: {inspect}");
        assert_eq!(inspect["components"][0]["path"], "weights", "{inspect}");
        assert_eq!(inspect["components"][0]["storage"], "tar+gzip", "{inspect}");

        let (key, public) = keys(&peers, tmp.path());
        sign_and_verify(&peers, &reference, &key, &public, &["weights", "weights/docs/deep/README.md"]);

        let out = tmp.path().join("out");
        let report = pull_verified(&peers, &reference, &public, &out);
        assert_eq!(report["archives"][0]["files"].as_array().unwrap().len(), 3, "{report}");
        assert_eq!(files_under(&out), prefixed("weights", &folder), "{kind:?}: unpacked files differ");
        let by_oras = tmp.path().join("by-oras");
        run_ok(peers.oras().args(["pull", "--plain-http", "-o"]).arg(&by_oras).arg(&reference));
        assert_eq!(files_under(&out), files_under(&by_oras), "{kind:?}: oras unpacks it differently");

        // --include selects files inside the archive; a pattern matching nothing fails.
        let some = tmp.path().join("some");
        run_ok(ms(&peers).args(["pull", &reference, "--include", "weights/*.json", "-o"]).arg(&some));
        assert_eq!(files_under(&some).keys().collect::<Vec<_>>(), ["weights/config.json"]);
        let none = tmp.path().join("none");
        let o = run_fail(ms(&peers).args(["pull", &reference, "--include", "*.gguf", "-o"]).arg(&none));
        assert!(one_error_line(&o).contains("matches no component"), "{}", stderr_text(&o));
        assert_eq!(files_under(&none), BTreeMap::new(), "a failed --include left files");

        // Copied with its signatures into a layout folder, it verifies offline.
        let layout = format!("oci:{}:v1", tmp.path().join("layout").display());
        run_ok(ms(&peers).args(["copy", &reference, &layout]));
        run_ok(ms(&peers).args([
            "verify",
            "--offline",
            &layout,
            "--key",
            &public,
            "--component",
            "weights/config.json",
        ]));
    }
}

#[test]
fn modelpack_client_tar_layers_round_trip() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let tmp = tempfile::tempdir().unwrap();
    let folder = model_folder(tmp.path(), "model");
    // A folder (packed by modelpack-client as a `.tar` layer), a tar+gzip and a tar+zstd.
    std::fs::create_dir_all(tmp.path().join("extra")).unwrap();
    std::fs::write(tmp.path().join("extra/notes.txt"), b"notes\n").unwrap();
    std::fs::write(tmp.path().join("tokenizer.json"), br#"{"vocab":{}}"#).unwrap();
    run_ok(Command::new("tar").current_dir(tmp.path()).args(["-czf", "docs.tar.gz", "extra"]));
    run_ok(Command::new("tar").current_dir(tmp.path()).args(["--zstd", "-cf", "tok.tar.zst", "tokenizer.json"]));
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        br#"{"descriptor":{"name":"tiny","version":"v1"},"config":{"format":"safetensors"},"modelfs":{"type":"layers","diffIds":[]}}"#,
    )
    .unwrap();
    let reference = format!("{}/archives/modelpack:v1", reg.addr());
    run_ok(peers.command("modelpack").current_dir(tmp.path()).args([
        "--insecure",
        "push",
        "--config",
        "config.json",
        "--layer",
        "model:application/vnd.cncf.model.weight.v1.raw",
        "--layer",
        "docs.tar.gz:application/vnd.cncf.model.doc.v1.tar+gzip",
        "--layer",
        "tok.tar.zst:application/vnd.cncf.model.weight.config.v1.tar+zstd",
        &reference,
    ]));
    let inspect = stdout_json(&run_ok(ms(&peers).args(["inspect", &reference, "--output", "json"])));
    assert_eq!(inspect["kind"], "modelpack", "{inspect}");
    let storage: Vec<&str> =
        inspect["components"].as_array().unwrap().iter().map(|c| c["storage"].as_str().unwrap()).collect();
    assert_eq!(storage, ["tar", "tar+gzip", "tar+zstd"], "{inspect}");

    let (key, public) = keys(&peers, tmp.path());
    sign_and_verify(&peers, &reference, &key, &public, &["model/config.json", "extra/notes.txt", "tokenizer.json"]);

    let out = tmp.path().join("out");
    pull_verified(&peers, &reference, &public, &out);
    let mut expected = prefixed("model", &folder);
    expected.insert("extra/notes.txt".into(), b"notes\n".to_vec());
    expected.insert("tokenizer.json".into(), br#"{"vocab":{}}"#.to_vec());
    assert_eq!(files_under(&out), expected);
    let by_client = tmp.path().join("by-client");
    run_ok(peers.command("modelpack").args(["--insecure", "pull", &reference]).arg(&by_client));
    assert_eq!(files_under(&out), files_under(&by_client), "modelpack-client unpacks it differently");
}

pub(crate) fn tar_gz(entries: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    if !gzip {
        return tar;
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&tar).unwrap();
    e.finish().unwrap()
}

/// Pushes config + layers (blob bytes, media type, annotations) and a manifest under `tag`.
pub(crate) fn push_artifact(
    reg: &Registry,
    repo: &str,
    tag: &str,
    config: (&str, &[u8]),
    layers: &[(Vec<u8>, &str, Value)],
    extra: Value,
) -> String {
    block_on(async {
        let client = http_client();
        let base = reg.url();
        let config_digest = push_blob(&client, &base, repo, config.1).await;
        let mut descs = Vec::new();
        for (blob, media_type, annotations) in layers {
            let digest = push_blob(&client, &base, repo, blob).await;
            let mut d = json!({"mediaType": media_type, "digest": digest, "size": blob.len()});
            if annotations.is_object() {
                d["annotations"] = annotations.clone();
            }
            descs.push(d);
        }
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config.0, "digest": config_digest, "size": config.1.len()},
            "layers": descs,
        });
        if let Value::Object(extra) = extra {
            manifest.as_object_mut().unwrap().extend(extra);
        }
        let body = serde_json::to_vec(&manifest).unwrap();
        let resp = put_manifest(&client, &base, repo, tag, OCI_MANIFEST, &body).await;
        assert_eq!(resp.status().as_u16(), 201, "{:?}", resp.text().await);
        sha256_digest(&body)
    })
}

#[test]
fn kitops_modelkit_made_by_hand() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Cue);
    let tmp = tempfile::tempdir().unwrap();
    let weights = pseudo_random_bytes(200_000, 9);
    let kitfile = json!({"manifestVersion": "1.0.0", "package": {"name": "tiny", "version": "1.0.0"},
        "model": {"name": "tiny", "path": "model.gguf"}, "code": [{"path": "src"}], "docs": [{"path": "README.md"}]});
    let layers = vec![
        (tar_gz(&[("model.gguf", &weights)], true), "application/vnd.kitops.modelkit.model.v1.tar+gzip", Value::Null),
        (
            tar_gz(&[("src/train.py", b"print('train')\n"), ("src/util.py", b"X = 1\n")], true),
            "application/vnd.kitops.modelkit.code.v1.tar+gzip",
            Value::Null,
        ),
        (tar_gz(&[("README.md", b"# tiny kit\n")], false), "application/vnd.kitops.modelkit.docs.v1.tar", Value::Null),
    ];
    let config = serde_json::to_vec(&kitfile).unwrap();
    push_artifact(
        &reg,
        "archives/kit",
        "v1",
        ("application/vnd.kitops.modelkit.config.v1+json", &config),
        &layers,
        json!({"annotations": {"ml.kitops.modelkit.cli-version": "1.5.0"}}),
    );
    let reference = format!("{}/archives/kit:v1", reg.addr());
    let inspect = stdout_json(&run_ok(ms(&peers).args(["inspect", &reference, "--output", "json"])));
    assert_eq!(inspect["kind"], "modelkit", "{inspect}");
    let first = inspect["components"][0]["path"].as_str().unwrap();
    assert!(first.starts_with("sha256-") && first.ends_with(".tar.gz"), "{inspect}");

    let (key, public) = keys(&peers, tmp.path());
    sign_and_verify(&peers, &reference, &key, &public, &["model.gguf", "src/util.py", "README.md", first]);
    let out = tmp.path().join("out");
    pull_verified(&peers, &reference, &public, &out);
    let expected: BTreeMap<String, Vec<u8>> = [
        ("model.gguf".to_string(), weights.clone()),
        ("src/train.py".into(), b"print('train')\n".to_vec()),
        ("src/util.py".into(), b"X = 1\n".to_vec()),
        ("README.md".into(), b"# tiny kit\n".to_vec()),
    ]
    .into();
    assert_eq!(files_under(&out), expected);

    // A layer swapped in the manifest is no longer what was signed: verify fails (exit 3).
    let other = tar_gz(&[("model.gguf", b"evil weights")], true);
    let mut swapped = layers.clone();
    swapped[0].0 = other;
    push_artifact(
        &reg,
        "archives/kit",
        "v1",
        ("application/vnd.kitops.modelkit.config.v1+json", &config),
        &swapped,
        Value::Null,
    );
    let o = run_fail(ms(&peers).args(["verify", &reference, "--key", &public, "--component", "src/util.py"]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr_text(&o));
}

#[test]
fn docker_model_artifact_made_by_hand() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let tmp = tempfile::tempdir().unwrap();
    let gguf = pseudo_random_bytes(150_000, 5);
    let license = b"Apache-2.0\n".to_vec();
    let config = serde_json::to_vec(&json!({
        "config": {"format": "gguf", "quantization": "Q4_0", "parameters": "1B", "architecture": "llama", "size": "150000"},
        "descriptor": {"created": "2026-11-01T00:00:00Z"},
        "rootfs": {"type": "rootfs", "diff_ids": [sha256_digest(&gguf), sha256_digest(&license)]}}))
    .unwrap();
    let layers = vec![
        (gguf.clone(), "application/vnd.docker.ai.gguf.v3", Value::Null),
        (license.clone(), "application/vnd.docker.ai.license", json!({"org.cncf.model.filepath": "LICENSE"})),
        (
            tar_gz(&[("config/tokenizer.json", b"{}")], false),
            "application/vnd.docker.ai.dir.tar",
            json!({"org.opencontainers.image.title": "config"}),
        ),
    ];
    push_artifact(
        &reg,
        "archives/docker",
        "v1",
        ("application/vnd.docker.ai.model.config.v0.1+json", &config),
        &layers,
        Value::Null,
    );
    let reference = format!("{}/archives/docker:v1", reg.addr());
    let inspect = stdout_json(&run_ok(ms(&peers).args(["inspect", &reference, "--output", "json"])));
    assert_eq!(inspect["kind"], "docker", "{inspect}");
    let gguf_name = format!("sha256-{}.gguf", &sha256_digest(&gguf)["sha256:".len()..][..16]);
    assert_eq!(inspect["components"][0]["path"], gguf_name.as_str(), "{inspect}");
    assert_eq!(inspect["components"][0]["storage"], "raw", "{inspect}");

    let (key, public) = keys(&peers, tmp.path());
    sign_and_verify(&peers, &reference, &key, &public, &[&gguf_name, "LICENSE", "config/tokenizer.json"]);
    let out = tmp.path().join("out");
    pull_verified(&peers, &reference, &public, &out);
    let expected: BTreeMap<String, Vec<u8>> = [
        (gguf_name.clone(), gguf.clone()),
        ("LICENSE".to_string(), license.clone()),
        ("config/tokenizer.json".into(), b"{}".to_vec()),
    ]
    .into();
    assert_eq!(files_under(&out), expected);
}

/// A tar entry named raw (the `tar` crate refuses `..` through its setters).
pub(crate) fn raw_tar(name: &[u8], kind: tar::EntryType, data: &[u8], link: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn hostile_archives_from_a_registry_leave_nothing_behind() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let reg = Registry::start(RegistryKind::Distribution);
    let tmp = tempfile::tempdir().unwrap();
    let good = (tar_gz(&[("good.txt", b"fine")], true), "application/vnd.cncf.model.doc.v1.tar+gzip", Value::Null);
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&tar_gz(&[("zeros.bin", &vec![0u8; 96 << 20])], false)).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str, &str, i32)> = vec![
        ("slip", raw_tar(b"../escaped.txt", tar::EntryType::Regular, b"pwned", b""), "tar", "contains `..`", 3),
        ("symlink", raw_tar(b"link", tar::EntryType::Symlink, b"", b"/etc"), "tar", "symlinks are refused", 3),
        ("hardlink", raw_tar(b"hl", tar::EntryType::Link, b"", b"/etc/passwd"), "tar", "hard links are refused", 3),
        ("fifo", raw_tar(b"pipe", tar::EntryType::Fifo, b"", b""), "tar", "FIFO entries are refused", 3),
        ("bomb", bomb.finish().unwrap(), "tar+gzip", "decompression ratio", 1),
    ];
    for (name, blob, storage, needle, code) in cases {
        let mt = format!("application/vnd.cncf.model.weight.v1.{storage}");
        let layers = vec![good.clone(), (blob, mt.as_str(), json!({"org.cncf.model.filepath": "weights"}))];
        push_artifact(&reg, "archives/hostile", name, (OCI_EMPTY, b"{}"), &layers, Value::Null);
        let reference = format!("{}/archives/hostile:{name}", reg.addr());
        let parent = tmp.path().join(name);
        let out = parent.join("out");
        let o = run_fail(ms(&peers).args(["pull", &reference, "-o"]).arg(&out));
        assert_eq!(o.status.code(), Some(code), "{name}: {}", stderr_text(&o));
        assert!(one_error_line(&o).contains(needle), "{name}: {}", stderr_text(&o));
        assert_eq!(files_under(&parent), BTreeMap::new(), "{name}: files left behind");
        assert!(!out.join(".modelsign-partial").exists(), "{name}: the resume folder was left behind");
    }
    // Bytes corrupted on the way: the digest check on the compressed stream refuses them.
    let proxy = FaultProxy::start(reg.addr());
    let blob = tar_gz(&[("weights.bin", &pseudo_random_bytes(100_000, 1))], true);
    let digest = sha256_digest(&blob);
    let layers = vec![(blob, "application/vnd.cncf.model.weight.v1.tar+gzip", Value::Null)];
    push_artifact(&reg, "archives/hostile", "corrupt", (OCI_EMPTY, b"{}"), &layers, Value::Null);
    proxy.add_fault(Fault::corrupt_blob(&digest));
    let out = tmp.path().join("corrupt/out");
    let o = run_fail(ms(&peers).args(["pull", &format!("{}/archives/hostile:corrupt", proxy.addr()), "-o"]).arg(&out));
    assert_eq!(o.status.code(), Some(3), "{}", stderr_text(&o));
    assert_eq!(files_under(&tmp.path().join("corrupt")), BTreeMap::new(), "corrupt: files left behind");
}
