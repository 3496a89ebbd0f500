//! push / pull / inspect / attach / discover / copy on OCI layout folders: no registry needed.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn push_layout(model: &Path, layout: &Path) -> String {
    let out = run_ok(modelsign().args(["push", &format!("oci:{}:v1", layout.display())]).arg(model));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Rewrites a layout's manifest through `edit`, stores it as a new blob and tags it `bad`.
fn tamper_manifest(layout: &Path, digest: &str, edit: impl FnOnce(&mut Value)) -> String {
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(blob(digest)).unwrap()).unwrap();
    edit(&mut manifest);
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let new = sha256_digest(&bytes);
    std::fs::write(blob(&new), &bytes).unwrap();
    let mut index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array_mut().unwrap();
    entries.retain(|e| e["annotations"]["org.opencontainers.image.ref.name"] != "bad");
    entries.push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": new, "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "bad"}}));
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    new
}

#[test]
fn push_inspect_pull_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 300_000);
    let layout = tmp.path().join("layout");
    let digest = push_layout(&model, &layout);
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(layout.join("oci-layout").is_file());

    let inspect =
        json(&run_ok(modelsign().args(["inspect", "--output", "json", &format!("oci:{}:v1", layout.display())])));
    assert_eq!(inspect["digest"], digest.as_str());
    assert_eq!(inspect["artifactType"], "application/vnd.cncf.model.manifest.v1+json");
    assert_eq!(inspect["config"]["config"]["format"], "safetensors");
    assert_eq!(inspect["config"]["config"]["architecture"], "TinyModel");
    assert_eq!(inspect["config"]["descriptor"]["name"], "tiny");
    assert_eq!(inspect["config"]["descriptor"]["version"], "v1");
    let components = inspect["components"].as_array().unwrap();
    let paths: Vec<&str> = components.iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["config.json", "extra/empty.txt", "extra/notes.txt", "model.safetensors", "tokenizer.json"]);
    for c in components {
        let bytes = std::fs::read(model.join(c["path"].as_str().unwrap())).unwrap();
        assert_eq!(c["digest"], sha256_digest(&bytes).as_str(), "layer digest is the file's SHA-256");
    }

    // One component only.
    let out_dir = tmp.path().join("out");
    run_ok(
        modelsign()
            .args(["pull", &format!("oci:{}@{digest}", layout.display()), "-o"])
            .arg(&out_dir)
            .args(["--include", "*.safetensors"]),
    );
    assert_eq!(
        std::fs::read(out_dir.join("model.safetensors")).unwrap(),
        std::fs::read(model.join("model.safetensors")).unwrap()
    );
    assert!(!out_dir.join("config.json").exists());
    assert!(!out_dir.join(".modelsign-partial").exists());

    // Everything, into the existing folder: the present file is not fetched again.
    let report = json(&run_ok(
        modelsign().args(["pull", &format!("oci:{}:v1", layout.display()), "--format", "json", "-o"]).arg(&out_dir),
    ));
    let pulled: Vec<(&str, bool)> = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["downloaded"].as_bool().unwrap()))
        .collect();
    assert!(pulled.contains(&("model.safetensors", false)), "{pulled:?}");
    assert!(pulled.contains(&("extra/notes.txt", true)), "{pulled:?}");
    for p in paths {
        assert_eq!(std::fs::read(out_dir.join(p)).unwrap(), std::fs::read(model.join(p)).unwrap(), "{p}");
    }
}

#[test]
fn repush_sends_nothing_and_same_content_same_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 10_000);
    let layout = tmp.path().join("layout");
    let reference = format!("oci:{}:v1", layout.display());
    let first = json(&run_ok(
        modelsign().env("SOURCE_DATE_EPOCH", "1700000000").args(["push", "--output", "json", &reference]).arg(&model),
    ));
    assert!(first["bytesUploaded"].as_u64().unwrap() > 10_000);
    let second = json(&run_ok(
        modelsign().env("SOURCE_DATE_EPOCH", "1700000000").args(["push", "--output", "json", &reference]).arg(&model),
    ));
    assert_eq!(second["bytesUploaded"], 0);
    assert_eq!(first["digest"], second["digest"], "reproducible with SOURCE_DATE_EPOCH");
}

#[test]
fn single_file_and_ignores() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 1000);
    std::fs::create_dir_all(model.join(".git")).unwrap();
    std::fs::write(model.join(".git/HEAD"), "ref").unwrap();
    std::fs::write(model.join("scratch.tmp"), "x").unwrap();
    let layout = tmp.path().join("layout");
    let reference = format!("oci:{}:v1", layout.display());
    run_ok(modelsign().args(["push", &reference, "--ignore", "*.tmp"]).arg(&model));
    let inspect = json(&run_ok(modelsign().args(["inspect", "--output", "json", &reference])));
    let paths: Vec<&str> =
        inspect["components"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert!(!paths.iter().any(|p| p.starts_with(".git") || p.ends_with(".tmp")), "{paths:?}");

    let single = format!("oci:{}:single", layout.display());
    run_ok(modelsign().args(["push", &single]).arg(model.join("model.safetensors")));
    let inspect = json(&run_ok(modelsign().args(["inspect", "--output", "json", &single])));
    assert_eq!(inspect["components"][0]["path"], "model.safetensors");
}

#[test]
fn symlinks_are_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 1000);
    std::os::unix::fs::symlink(model.join("config.json"), model.join("link.json")).unwrap();
    let reference = format!("oci:{}:v1", tmp.path().join("layout").display());
    let out = run_fail(modelsign().args(["push", &reference]).arg(&model));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"), "{}", String::from_utf8_lossy(&out.stderr));
    run_ok(modelsign().args(["push", "--allow-symlinks", &reference]).arg(&model));
}

#[test]
fn traversal_and_duplicate_paths_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 1000);
    let layout = tmp.path().join("layout");
    let digest = push_layout(&model, &layout);
    for (path, why) in
        [("../escape.txt", ".."), ("/etc/evil", "absolute"), ("a\\b", "backslash"), ("config.json", "repeats")]
    {
        tamper_manifest(&layout, &digest, |m| {
            m["layers"][1]["annotations"]["org.cncf.model.filepath"] = path.into();
        });
        let out_dir = tmp.path().join("out-traversal");
        let out = run_fail(modelsign().args(["pull", &format!("oci:{}:bad", layout.display()), "-o"]).arg(&out_dir));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why) && stderr.contains(path), "{path}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            !out_dir.exists() || std::fs::read_dir(&out_dir).unwrap().next().is_none(),
            "{path}: something was written"
        );
        assert!(!tmp.path().join("escape.txt").exists());
    }
}

#[test]
fn refuses_to_write_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 1000);
    let layout = tmp.path().join("layout");
    push_layout(&model, &layout);
    let out_dir = tmp.path().join("out");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out_dir.join("extra")).unwrap();
    let out = run_fail(modelsign().args(["pull", &format!("oci:{}:v1", layout.display()), "-o"]).arg(&out_dir));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symlink"));
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none(), "wrote through the symlink");
    assert!(!out_dir.join("config.json").exists(), "wrote before checking every path");
}

#[test]
fn corrupted_blob_is_rejected_and_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 50_000);
    let layout = tmp.path().join("layout");
    push_layout(&model, &layout);
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    let blob = layout.join("blobs/sha256").join(sha256_digest(&weights).trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1234] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();
    let out_dir = tmp.path().join("out");
    let out = run_fail(
        modelsign()
            .args(["pull", &format!("oci:{}:v1", layout.display()), "--include", "model.safetensors", "-o"])
            .arg(&out_dir),
    );
    assert_eq!(out.status.code(), Some(3), "content mismatch exits 3");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("digest mismatch") && stderr.contains("model.safetensors"), "{stderr}");
    assert!(!out_dir.join("model.safetensors").exists());
    assert!(
        !out_dir.join(".modelsign-partial").exists()
            || std::fs::read_dir(out_dir.join(".modelsign-partial")).unwrap().next().is_none()
    );

    // Truncated blob: a size mismatch.
    std::fs::write(&blob, &weights[..1000]).unwrap();
    let out = run_fail(
        modelsign()
            .args(["pull", &format!("oci:{}:v1", layout.display()), "--include", "model.safetensors", "-o"])
            .arg(&out_dir),
    );
    assert!(!out_dir.join("model.safetensors").exists(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn missing_tag_and_missing_layout_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 100);
    let layout = tmp.path().join("layout");
    push_layout(&model, &layout);
    let out = run_fail(modelsign().args(["inspect", &format!("oci:{}:nope", layout.display())]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope") && stderr.contains("not found"), "{stderr}");
    let out = run_fail(
        modelsign()
            .args(["pull", &format!("oci:{}:v1", tmp.path().join("absent").display()), "-o"])
            .arg(tmp.path().join("o")),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent"));
    let out = run_fail(modelsign().args(["inspect", "not a reference"]));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn attach_discover_and_copy_with_referrers() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 2000);
    let layout = tmp.path().join("layout");
    let digest = push_layout(&model, &layout);
    let note = tmp.path().join("note.txt");
    std::fs::write(&note, "reviewed").unwrap();
    let reference = format!("oci:{}:v1", layout.display());
    let att = run_stdout(
        modelsign()
            .args(["attach", &reference, "--artifact-type", "application/vnd.example.review", "-a", "k=v"])
            .arg(&note),
    );
    let att = att.trim().to_string();
    // A referrer of the referrer.
    run_ok(
        modelsign()
            .args([
                "attach",
                &format!("oci:{}@{att}", layout.display()),
                "--artifact-type",
                "application/vnd.example.countersign",
            ])
            .arg(&note),
    );

    let tree = json(&run_ok(modelsign().args(["discover", "--output", "json", &reference])));
    assert_eq!(tree["digest"], digest.as_str());
    let refs = tree["referrers"].as_array().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0]["artifactType"], "application/vnd.example.review");
    assert_eq!(refs[0]["annotations"]["k"], "v");
    assert_eq!(refs[0]["referrers"][0]["artifactType"], "application/vnd.example.countersign");

    let copy = tmp.path().join("copy");
    run_ok(modelsign().args(["copy", &reference, &format!("oci:{}", copy.display())]));
    let tree2 =
        json(&run_ok(modelsign().args(["discover", "--output", "json", &format!("oci:{}:v1", copy.display())])));
    assert_eq!(tree2["digest"], digest.as_str());
    assert_eq!(tree2["referrers"], tree["referrers"]);
    let out_dir = tmp.path().join("out");
    run_ok(modelsign().args(["pull", &format!("oci:{}:v1", copy.display()), "-o"]).arg(&out_dir));
    assert_eq!(std::fs::read(out_dir.join("config.json")).unwrap(), std::fs::read(model.join("config.json")).unwrap());
}
