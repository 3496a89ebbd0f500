//! Bad input and misbehaving registries through the CLI: an unreachable registry, a tag that
//! does not exist, a manifest naming a traversal path, a blob whose bytes do not match its
//! digest, an interrupted download, and uploads answered 503/429 with `Retry-After`. Each
//! gets a one-line error with the right exit code and leaves no file behind (or succeeds).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

fn ms(peers: &Peers) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "--no-progress"]);
    cmd
}

/// The files a pull left under `dir` (hidden bookkeeping included).
fn left_behind(dir: &Path) -> Vec<String> {
    files_under(dir).into_keys().collect()
}

#[test]
fn unreachable_registry_is_one_line_naming_it() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 1_000);
    let closed = closed_port();
    let addr = closed.addr.clone();
    let reference = format!("{addr}/models/tiny:v1");
    let out = tmp.path().join("out");
    let layout = format!("oci:{}:v1", tmp.path().join("layout").display());
    run_ok(ms(&peers).args(["push", &layout]).arg(&model));
    let note = tmp.path().join("note.txt");
    std::fs::write(&note, "x").unwrap();

    let runs: Vec<(&str, Command)> = vec![
        ("push", {
            let mut c = ms(&peers);
            c.args(["push", &reference]).arg(&model);
            c
        }),
        ("pull", {
            let mut c = ms(&peers);
            c.args(["pull", &reference, "-o"]).arg(&out);
            c
        }),
        ("inspect", {
            let mut c = ms(&peers);
            c.args(["inspect", &reference]);
            c
        }),
        ("discover", {
            let mut c = ms(&peers);
            c.args(["discover", &reference]);
            c
        }),
        ("attach", {
            let mut c = ms(&peers);
            c.args(["attach", &reference, "--artifact-type", "application/vnd.example"]).arg(&note);
            c
        }),
        ("copy to", {
            let mut c = ms(&peers);
            c.args(["copy", &layout, &reference]);
            c
        }),
    ];
    for (what, mut cmd) in runs {
        let started = Instant::now();
        let output = run_fail(&mut cmd);
        assert_eq!(output.status.code(), Some(1), "{what}: {}", stderr_text(&output));
        let line = one_error_line(&output);
        assert!(line.contains(&addr) && line.contains("cannot reach"), "{what}: {line}");
        assert!(started.elapsed() < Duration::from_secs(10), "{what}: took {:?}", started.elapsed());
    }
    assert!(!out.exists(), "a failed pull created its output folder");
}

#[test]
fn a_missing_tag_names_tag_and_repository() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    for kind in RegistryKind::anonymous_kinds() {
        let reg = Registry::start(kind.clone());
        let tmp = tempfile::tempdir().unwrap();
        let model = write_tiny_model(tmp.path(), "tiny", 1_000);
        run_ok(ms(&peers).args(["push", &format!("{}/models/tiny:v1", reg.addr())]).arg(&model));
        let out = tmp.path().join("out");
        for (repo, tag) in [("models/tiny", "no-such-tag"), ("models/absent", "v1")] {
            let reference = format!("{}/{repo}:{tag}", reg.addr());
            for args in [vec!["pull", &reference, "-o", out.to_str().unwrap()], vec!["inspect", &reference]] {
                let output = run_fail(ms(&peers).args(&args));
                assert_eq!(output.status.code(), Some(1), "{kind:?} {args:?}");
                let line = one_error_line(&output);
                assert!(
                    line.contains(tag)
                        && line.contains(repo)
                        && line.contains(reg.addr())
                        && line.contains("not found"),
                    "{kind:?} {args:?}: {line}"
                );
            }
        }
        assert!(!out.exists(), "{kind:?}: a failed pull created its output folder");
    }
}

/// A manifest whose layers name `paths` (`filepath` and title, or title only), pushed with
/// raw HTTP under `tag`; every layer is a real blob.
fn push_crafted_manifest(reg: &Registry, repo: &str, tag: &str, layers: &[(&str, bool)]) {
    block_on(async {
        let client = http_client();
        let base = reg.url();
        let config = push_blob(&client, &base, repo, b"{}").await;
        let mut descs = Vec::new();
        for (i, (path, with_filepath)) in layers.iter().enumerate() {
            let bytes = format!("layer {i}: {path}\n").into_bytes();
            let digest = push_blob(&client, &base, repo, &bytes).await;
            let mut annotations = json!({ "org.opencontainers.image.title": path });
            if *with_filepath {
                annotations["org.cncf.model.filepath"] = json!(path);
            }
            descs.push(json!({
                "mediaType": "application/vnd.cncf.model.doc.v1.raw",
                "digest": digest, "size": bytes.len(), "annotations": annotations
            }));
        }
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.cncf.model.manifest.v1+json",
            "config": {"mediaType": OCI_EMPTY, "digest": config, "size": 2},
            "layers": descs,
        });
        let resp = put_manifest(&client, &base, repo, tag, OCI_MANIFEST, &serde_json::to_vec(&manifest).unwrap()).await;
        assert_eq!(resp.status().as_u16(), 201, "{:?}", resp.text().await);
    });
}

#[test]
fn a_manifest_naming_a_traversal_path_writes_nothing() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let work = tmp.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let absolute = tmp.join("absolute.txt");
    let absolute = absolute.to_str().unwrap();
    // (tag, layers as (path, with a filepath annotation), the bad path, why it is bad)
    type Case<'a> = (&'a str, Vec<(&'a str, bool)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        ("dotdot", vec![("ok.txt", true), ("../escape.txt", true)], "../escape.txt", "`..`"),
        ("deep", vec![("ok.txt", true), ("sub/../../escape.txt", true)], "sub/../../escape.txt", "`..`"),
        ("title-only", vec![("ok.txt", false), ("../escape.txt", false)], "../escape.txt", "`..`"),
        ("absolute", vec![("ok.txt", true), (absolute, true)], absolute, "absolute"),
        ("backslash", vec![("ok.txt", true), ("..\\escape.txt", true)], "..\\escape.txt", "backslash"),
        ("repeated", vec![("ok.txt", true), ("ok.txt", true)], "ok.txt", "repeats"),
    ];
    for (tag, layers, bad, why) in cases {
        push_crafted_manifest(reg, "evil/model", tag, &layers);
        let reference = format!("{}/evil/model:{tag}", reg.addr());
        for include in [None, Some("ok.txt")] {
            let out = work.join("out");
            let mut cmd = ms(peers);
            cmd.args(["pull", &reference, "-o"]).arg(&out);
            if let Some(glob) = include {
                cmd.args(["--include", glob]);
            }
            let output = run_fail(&mut cmd);
            assert_eq!(output.status.code(), Some(3), "{tag}: an unsafe path exits 3: {}", stderr_text(&output));
            let line = one_error_line(&output);
            assert!(line.contains(bad) && line.contains(why), "{tag}: {line}");
            assert!(left_behind(&out).is_empty(), "{tag} {include:?}: wrote {:?}", left_behind(&out));
            assert_eq!(left_behind(tmp), Vec::<String>::new(), "{tag}: wrote outside the output folder");
        }
    }
}

#[test]
fn a_blob_that_does_not_match_its_digest_exits_3_and_leaves_no_file() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 400_000);
    let files = files_under(&model);
    let weights = sha256_digest(&files["model.safetensors"]);
    run_ok(ms(peers).args(["push", &format!("{}/models/tiny:v1", reg.addr())]).arg(&model));

    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::corrupt_blob(&weights)]);
    let reference = format!("{}/models/tiny:v1", proxy.addr());
    let out = tmp.join("out");
    for attempt in 0..2 {
        let output = run_fail(ms(peers).args(["pull", &reference, "-o"]).arg(&out));
        assert_eq!(output.status.code(), Some(3), "attempt {attempt}: {}", stderr_text(&output));
        let line = one_error_line(&output);
        assert!(
            line.contains("model.safetensors") && line.contains(&weights) && line.contains("digest mismatch"),
            "attempt {attempt}: {line}"
        );
        assert!(!out.join("model.safetensors").exists(), "attempt {attempt}: the bad file was put in place");
        // Other components' downloads cut short by the failure may stay for the next pull to
        // resume, but only as true prefixes of their bytes; nothing of the bad blob stays.
        for (name, bytes) in files_under(&out.join(".modelsign-partial")) {
            assert_ne!(format!("sha256:{name}"), weights, "attempt {attempt}: bad bytes kept");
            let (path, content) = files
                .iter()
                .find(|(_, c)| sha256_digest(c) == format!("sha256:{name}"))
                .unwrap_or_else(|| panic!("attempt {attempt}: unexpected partial file {name}"));
            assert!(content.starts_with(&bytes), "attempt {attempt}: partial {name} of {path} has wrong bytes");
        }
        for (path, bytes) in files_under(&out).into_iter().filter(|(p, _)| !p.starts_with(".modelsign-partial/")) {
            assert_eq!(files.get(&path), Some(&bytes), "attempt {attempt}: {path} is not the model's");
        }
    }
    assert!(proxy.faults_applied("corrupt") >= 2, "{:?}", proxy.requests());

    // The registry is fine: without the fault the same folder fills in.
    proxy.clear_faults();
    run_ok(ms(peers).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(files_under(&out), files);
}

/// `bytes=N-…` of a request's `Range`: N.

#[test]
fn an_interrupted_download_resumes_with_a_range_request() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 1_500_000);
    let files = files_under(&model);
    let weights = sha256_digest(&files["model.safetensors"]);
    run_ok(ms(peers).args(["push", &format!("{}/models/tiny:v1", reg.addr())]).arg(&model));

    // Cut once: the pull either resumes by itself or fails and leaves no final file.
    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::cut_blob(&weights, 600_000).times(1)]);
    let reference = format!("{}/models/tiny:v1", proxy.addr());
    let out = tmp.join("out");
    let first = ms(peers).args(["pull", &reference, "-o"]).arg(&out).output().unwrap();
    assert_eq!(proxy.faults_applied("cut"), 1);
    if !first.status.success() {
        assert_eq!(first.status.code(), Some(1), "{}", stderr_text(&first));
        one_error_line(&first);
        assert!(!out.join("model.safetensors").exists(), "a cut download was put in place");
        run_ok(ms(peers).args(["pull", &reference, "-o"]).arg(&out));
    }
    assert_eq!(files_under(&out), files);
    let gets = proxy.blob_gets(&weights);
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range_start(), None, "the first GET asks for the whole blob: {:?}", gets[0]);
    let resumed_at = gets[1].range_start().unwrap_or_else(|| panic!("the second GET has no Range: {:?}", gets[1]));
    assert!(resumed_at > 0 && resumed_at <= 600_000, "resumed at {resumed_at}");
    assert_eq!(gets[1].status, 206, "{:?}", gets[1]);
}

#[test]
fn a_pull_that_keeps_being_cut_fails_and_the_next_one_resumes() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 3_000_000);
    let files = files_under(&model);
    let weights = sha256_digest(&files["model.safetensors"]);
    run_ok(ms(peers).args(["push", &format!("{}/models/tiny:v1", reg.addr())]).arg(&model));

    // Every GET of the weights is cut after 100 kB: the pull gives up after its attempts.
    let proxy = FaultProxy::with_faults(reg.addr(), vec![Fault::cut_blob(&weights, 100_000)]);
    let reference = format!("{}/models/tiny:v1", proxy.addr());
    let out = tmp.join("out");
    let first = run_fail(ms(peers).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(first.status.code(), Some(1), "{}", stderr_text(&first));
    let line = one_error_line(&first);
    assert!(line.contains("model.safetensors"), "names the component: {line}");
    assert!(!out.join("model.safetensors").exists(), "a cut download was put in place");
    let partial = out.join(".modelsign-partial").join(weights.trim_start_matches("sha256:"));
    let kept = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or_else(|e| panic!("no partial file kept ({e})"));
    assert!(kept > 0 && kept < 3_000_000, "partial file of {kept} bytes");
    assert_eq!(
        std::fs::read(&partial).unwrap(),
        files["model.safetensors"][..kept as usize],
        "the kept bytes are right"
    );
    let cut = proxy.blob_gets(&weights).len();
    assert!(cut >= 2, "retried within the first pull: {:?}", proxy.blob_gets(&weights));

    // The next pull starts where the partial file ends.
    proxy.clear_faults();
    run_ok(ms(peers).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(files_under(&out), files, "and leaves no partial file behind");
    let gets = proxy.blob_gets(&weights);
    assert_eq!(gets.len(), cut + 1, "{gets:?}");
    assert_eq!(gets.last().unwrap().range_start(), Some(kept), "{:?}", gets.last());
    assert_eq!(gets.last().unwrap().status, 206);
}

#[test]
fn uploads_retry_503_and_429_honouring_retry_after() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 200_000);
    let files = files_under(&model);
    let proxy = FaultProxy::with_faults(
        reg.addr(),
        vec![
            Fault::unavailable("/blobs/uploads/", 2).method("POST"),
            Fault::status("/blobs/uploads/", 503, None).method("PUT").times(1),
            Fault::status("/manifests/v1", 429, Some(2)).method("PUT").times(1),
        ],
    );
    let started = Instant::now();
    let push =
        run_ok(ms(peers).args(["push", "--output", "json", &format!("{}/models/tiny:v1", proxy.addr())]).arg(&model));
    let elapsed = started.elapsed();
    assert_eq!(proxy.faults_applied("status"), 4, "{:?}", proxy.requests());
    // The manifest PUT is one request: only honouring its `Retry-After: 2` takes this long.
    assert!(elapsed >= Duration::from_secs(2), "Retry-After ignored: {elapsed:?}");
    let notes = stderr_text(&push);
    assert!(notes.contains("HTTP 503") && notes.contains("retrying"), "retries are reported: {notes}");
    assert!(notes.contains("HTTP 429"), "a retried manifest PUT is reported too: {notes}");
    let digest = stdout_json(&push)["digest"].as_str().unwrap().to_string();
    let manifest_puts: Vec<u16> = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/manifests/v1"))
        .map(|r| r.status)
        .collect();
    assert_eq!(manifest_puts, [429, 201], "the manifest PUT was retried after the 429");

    // Straight from the registry: the tag names what push printed, and the bytes are right.
    let inspect = stdout_json(&run_ok(ms(peers).args([
        "inspect",
        "--output",
        "json",
        &format!("{}/models/tiny:v1", reg.addr()),
    ])));
    assert_eq!(inspect["digest"], digest.as_str());
    let out = tmp.join("out");
    run_ok(ms(peers).args(["pull", &format!("{}/models/tiny:v1", reg.addr()), "-o"]).arg(&out));
    assert_eq!(files_under(&out), files);
}

/// Runs `cmd` with a stdout whose reader is already gone (as `modelsign … | head -0`).
fn run_with_closed_stdout(cmd: &mut Command) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child.wait_with_output().expect("wait")
}

/// A reader that goes away early is no crash, and never turns a failure into success.
#[test]
fn a_closed_stdout_is_no_crash_and_no_false_success() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 1_000);
    let layout = format!("oci:{}:v1", tmp.path().join("layout").display());
    run_ok(modelsign().args(["push", &layout]).arg(&model));
    let key = tmp.path().join("key");
    run_ok(modelsign().args(["keygen", "-o"]).arg(&key));
    let note = tmp.path().join("note.txt");
    std::fs::write(&note, "x").unwrap();
    run_ok(modelsign().args(["attach", &layout, "--artifact-type", "application/vnd.example"]).arg(&note));

    for args in [vec!["inspect", &layout], vec!["discover", &layout], vec!["inspect", "--output", "json", &layout]] {
        let out = run_with_closed_stdout(modelsign().args(&args));
        let stderr = stderr_text(&out);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
    // The model has no signature: verify fails (exit 3), whatever happens to its report.
    let public = format!("{}.pub", key.display());
    for format in ["text", "json"] {
        let out = run_with_closed_stdout(modelsign().args(["verify", &layout, "--key", &public, "--output", format]));
        let stderr = stderr_text(&out);
        assert_eq!(out.status.code(), Some(3), "{format}: a failed verification exited otherwise: {stderr}");
        assert!(!stderr.contains("panicked") && one_error_line(&out).contains("verification failed"), "{stderr}");
    }
}

/// A layer blob the registry lost (deleted behind the manifest): one line naming the
/// component and its digest, exit 1, the component not written.
#[test]
fn a_missing_blob_names_the_component() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 20_000);
    let files = files_under(&model);
    let weights = sha256_digest(&files["model.safetensors"]);
    let reference = format!("{}/models/tiny:v1", reg.addr());
    run_ok(ms(peers).args(["push", &reference]).arg(&model));
    let status = block_on(async {
        let url = format!("{}/v2/models/tiny/blobs/{weights}", reg.url());
        http_client().delete(url).send().await.unwrap().status().as_u16()
    });
    assert_eq!(status, 202, "{}", reg.log());

    let out = tmp.join("out");
    let output = run_fail(ms(peers).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(
        line.contains("model.safetensors") && line.contains(&weights) && line.contains("not found"),
        "names component and digest: {line}"
    );
    assert!(!out.join("model.safetensors").exists());
}
