//! Helpers for tests that drive the `modelsign` binary: its JSON output, its one-line
//! errors, what a pull left on disk, and a runtime for the odd raw HTTP call.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A command's stdout as JSON; panics with the output if it is not.
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A command's stderr as text.
pub fn stderr_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `error: …` line of a failed modelsign run; panics unless stderr holds exactly one
/// line and it starts with `error: ` (notes about retries are allowed before it).
pub fn one_error_line(out: &Output) -> String {
    let stderr = stderr_text(out);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("note: ")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, stderr:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "expected `error: …`, stderr:\n{stderr}");
    lines[0].to_string()
}

/// Runs the command with `input` on stdin; returns its output (any exit status).
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Every regular file under `dir` (hidden ones too), by `/`-separated relative path, with
/// its bytes. Symlinks are listed with the bytes `"<symlink>"`; an absent `dir` is empty.
pub fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            let ft = entry.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(rel, b"<symlink>".to_vec());
            } else if ft.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs a future to completion on a fresh current-thread runtime (for raw HTTP in sync tests).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

/// A raw GET with an `Accept` header: (status, body).
pub fn http_get(url: &str, accept: &str) -> (u16, Vec<u8>) {
    block_on(async {
        let resp = super::http::http_client().get(url).header("Accept", accept).send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    })
}

/// The `digest`s of the `manifests` of an image index (JSON bytes).
pub fn index_digests(index: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(index)
        .unwrap_or_else(|e| panic!("not an index ({e}): {}", String::from_utf8_lossy(index)));
    v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("no manifests: {v}"))
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}
