//! Keyless Sigstore verification: Sigstore's client conformance suite (`verify-blob`, every
//! bundle-verification case, as a file and as a `sha256:` digest), and the attacks of
//! issue 7, each named after the attack and pointing at the conformance case that carries it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Cases whose outcome differs from the suite's, with the reason (also in the README).
/// `managed-key-wrong-key_fail`: its `key.pub` is not valid PEM (`…wrongkey==`), so modelsign
/// refuses to load the key: exit 1 (bad input) instead of 3 (did not verify).
const EXIT_1_INSTEAD_OF_3: &[&str] = &["managed-key-wrong-key_fail"];

fn cases_dir() -> PathBuf {
    repo_root().join("testdata/sigstore-conformance/bundle-verify")
}

fn case(name: &str) -> PathBuf {
    let dir = cases_dir().join(name);
    assert!(dir.join("bundle.sigstore.json").is_file(), "no conformance case {name}");
    dir
}

fn read_or(dir: &Path, file: &str, default: &str) -> String {
    std::fs::read_to_string(dir.join(file)).map(|s| s.trim().to_string()).unwrap_or_else(|_| default.to_string())
}

fn artifact_of(dir: &Path) -> PathBuf {
    let own = dir.join("artifact");
    if own.is_file() { own } else { cases_dir().join("a.txt") }
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap())))
}

/// The conformance protocol's `verify-bundle` command line, as `modelsign verify-blob`,
/// with the case's identity and issuer replaced when given.
fn verify_blob(dir: &Path, artifact: &str, identity: Option<(&str, &str)>) -> Command {
    let mut cmd = modelsign();
    cmd.arg("verify-blob").arg("--bundle").arg(dir.join("bundle.sigstore.json"));
    if dir.join("key.pub").is_file() {
        cmd.arg("--key").arg(dir.join("key.pub"));
    } else {
        let (flag_id, id, flag_iss, iss) = match identity {
            Some((id, iss)) => ("--certificate-identity", id.to_string(), "--certificate-oidc-issuer", iss.to_string()),
            None => (
                "--certificate-identity",
                read_or(dir, "identity", DEFAULT_IDENTITY),
                "--certificate-oidc-issuer",
                read_or(dir, "issuer", DEFAULT_ISSUER),
            ),
        };
        cmd.args([flag_id, &id, flag_iss, &iss]);
    }
    if dir.join("trusted_root.json").is_file() {
        cmd.arg("--trusted-root").arg(dir.join("trusted_root.json"));
    }
    cmd.arg(artifact);
    cmd
}

fn exit_code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[test]
fn sigstore_conformance_bundle_verify_cases() {
    let mut names: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 70, "only {} cases vendored", names.len());
    let mut wrong = Vec::new();
    let (mut passed, mut refused) = (0, 0);
    for name in &names {
        let dir = case(name);
        let artifact = artifact_of(&dir);
        for input in [artifact.display().to_string(), sha256_of(&artifact)] {
            let out = verify_blob(&dir, &input, None).output().unwrap();
            let code = exit_code(&out);
            let expected = if !name.ends_with("_fail") {
                0
            } else if EXIT_1_INSTEAD_OF_3.contains(&name.as_str()) {
                1
            } else {
                3
            };
            if code != expected {
                wrong.push(format!("{name} ({input}): exit {code}, expected {expected}: {}", stderr_text(&out).trim()));
                continue;
            }
            if expected == 0 {
                passed += 1;
            } else {
                // Refused with one line that says why.
                let line = one_error_line(&out);
                assert!(line.len() > 20, "{name}: {line}");
                refused += 1;
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {} runs went wrong:\n{}", wrong.len(), names.len() * 2, wrong.join("\n"));
    eprintln!("conformance: {passed} happy runs verified, {refused} _fail runs refused ({} cases)", names.len());
}

#[test]
fn happy_path_reports_who_signed_it_in_json() {
    let dir = case("happy-path-v0.3");
    let out = run_ok(verify_blob(&dir, &artifact_of(&dir).display().to_string(), None).args(["--output", "json"]));
    let report = stdout_json(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(report["identity"], DEFAULT_IDENTITY);
    assert_eq!(report["issuer"], DEFAULT_ISSUER);
    assert_eq!(report["logEntries"], 1);
    assert!(!report["signingTimes"].as_array().unwrap().is_empty());
}

fn assert_refused(mut cmd: Command, contains: &str) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(exit_code(&out), 3, "{}", stderr_text(&out));
    let line = one_error_line(&out);
    assert!(line.contains(contains), "expected `{contains}` in: {line}");
    line
}

#[test]
fn attack_certificate_for_another_identity() {
    let dir = case("happy-path-v0.3");
    let a = artifact_of(&dir).display().to_string();
    let other = "https://github.com/attacker/repo/.github/workflows/release.yml@refs/heads/main";
    let line = assert_refused(verify_blob(&dir, &a, Some((other, DEFAULT_ISSUER))), "certificate identity not trusted");
    assert!(line.contains(DEFAULT_IDENTITY), "says who did sign: {line}");
}

#[test]
fn attack_certificate_from_another_issuer() {
    let dir = case("happy-path-v0.3");
    let a = artifact_of(&dir).display().to_string();
    assert_refused(
        verify_blob(&dir, &a, Some((DEFAULT_IDENTITY, "https://accounts.google.com"))),
        "certificate identity not trusted",
    );
}

#[test]
fn attack_identity_regexp_that_matches_only_a_prefix() {
    let dir = case("happy-path-v0.3");
    let a = artifact_of(&dir).display().to_string();
    let run = |identity_re: &str, issuer_re: &str| {
        let mut cmd = modelsign();
        cmd.arg("verify-blob").arg("--bundle").arg(dir.join("bundle.sigstore.json")).args([
            "--certificate-identity-regexp",
            identity_re,
            "--certificate-oidc-issuer-regexp",
            issuer_re,
            &a,
        ]);
        cmd
    };
    // A pattern for the whole identity passes.
    run_ok(&mut run(
        r"https://github\.com/sigstore-conformance/[^/]+/\.github/workflows/.*@refs/heads/main",
        r"https://token\.actions\.githubusercontent\.com",
    ));
    // One that matches only its beginning does not (cosign would accept it: Go's MatchString).
    assert_refused(run(r"https://github\.com/sigstore-conformance/", ".*"), "certificate identity not trusted");
    // Nor one that matches only its middle, nor an issuer pattern matching a prefix.
    assert_refused(run("extremely-dangerous", ".*"), "certificate identity not trusted");
    assert_refused(run(".*", r"https://token\.actions"), "certificate identity not trusted");
}

/// Conformance cases that carry the attacks of issue 7.
#[test]
fn attack_rekor_entry_for_another_signature() {
    // wrong-hashedrekord-cert-and-sig_fail: the log entry holds another certificate and signature.
    for name in ["wrong-hashedrekord-cert-and-sig_fail", "dsse-mismatch-sig_fail", "rekor2-dsse-mismatch-sig_fail"] {
        let dir = case(name);
        assert_refused(verify_blob(&dir, &artifact_of(&dir).display().to_string(), None), "log entry does not match");
    }
}

#[test]
fn attack_log_entry_outside_the_certificate_validity() {
    // intoto-set-outside-signing-cert-validity_fail: Rekor's SET time is outside the
    // certificate's validity; intoto-tsa-timestamp-outside-cert-validity_fail: the same with an
    // RFC 3161 timestamp; integrated-time-in-future_fail: a log time that has not come yet.
    for name in [
        "intoto-set-outside-signing-cert-validity_fail",
        "intoto-tsa-timestamp-outside-cert-validity_fail",
        "integrated-time-in-future_fail",
    ] {
        let dir = case(name);
        assert_refused(verify_blob(&dir, &artifact_of(&dir).display().to_string(), None), "certificate");
    }
}

#[test]
fn attack_trusted_root_with_an_expired_fulcio_ca() {
    // The public-good root whose Fulcio CAs all ended before the happy path was signed.
    let dir = case("happy-path-v0.3");
    let tmp = tempfile::tempdir().unwrap();
    let mut root: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("src/sign/keyless/public_good_trusted_root.json")).unwrap(),
    )
    .unwrap();
    for ca in root["certificateAuthorities"].as_array_mut().unwrap() {
        ca["validFor"]["end"] = "2022-05-01T00:00:00Z".into();
    }
    let path = tmp.path().join("expired.json");
    std::fs::write(&path, serde_json::to_vec(&root).unwrap()).unwrap();
    let a = artifact_of(&dir).display().to_string();
    let mut cmd = verify_blob(&dir, &a, None);
    cmd.arg("--trusted-root").arg(&path);
    assert_refused(cmd, "certificate");
    // The unchanged root, given the same way, verifies: the edit is what refused it.
    std::fs::copy(repo_root().join("src/sign/keyless/public_good_trusted_root.json"), &path).unwrap();
    let mut cmd = verify_blob(&dir, &a, None);
    cmd.arg("--trusted-root").arg(&path);
    run_ok(&mut cmd);
}

#[test]
fn attack_keyless_bundle_with_no_log_entry_and_no_timestamp() {
    let dir = case("happy-path-v0.3");
    let tmp = tempfile::tempdir().unwrap();
    let mut bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
    bundle["verificationMaterial"]["tlogEntries"] = serde_json::json!([]);
    bundle["verificationMaterial"].as_object_mut().unwrap().remove("timestampVerificationData");
    let path = tmp.path().join("bundle.sigstore.json");
    std::fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let a = artifact_of(&dir).display().to_string();
    let mut cmd = modelsign();
    cmd.arg("verify-blob").arg("--bundle").arg(&path).args([
        "--certificate-identity",
        DEFAULT_IDENTITY,
        "--certificate-oidc-issuer",
        DEFAULT_ISSUER,
        &a,
    ]);
    assert_refused(cmd, "must have an inclusion proof");
    // rekor2-no-timestamp_fail is the same attack on a Rekor v2 bundle (v2 entries carry no time).
    let dir = case("rekor2-no-timestamp_fail");
    assert_refused(verify_blob(&dir, &artifact_of(&dir).display().to_string(), None), "timestamp");
}

#[test]
fn usage_errors_are_not_verification_failures() {
    let dir = case("happy-path-v0.3");
    let a = artifact_of(&dir).display().to_string();
    // Nothing trusted.
    let out =
        modelsign().arg("verify-blob").arg("--bundle").arg(dir.join("bundle.sigstore.json")).arg(&a).output().unwrap();
    assert_eq!(exit_code(&out), 1, "{}", stderr_text(&out));
    assert!(one_error_line(&out).contains("nothing to trust"));
    // An identity without an issuer.
    let out = modelsign()
        .arg("verify-blob")
        .arg("--bundle")
        .arg(dir.join("bundle.sigstore.json"))
        .args(["--certificate-identity", DEFAULT_IDENTITY, &a])
        .output()
        .unwrap();
    assert_eq!(exit_code(&out), 1, "{}", stderr_text(&out));
    assert!(one_error_line(&out).contains("--certificate-oidc-issuer"));
    // A regexp that does not compile.
    let out = modelsign()
        .arg("verify-blob")
        .arg("--bundle")
        .arg(dir.join("bundle.sigstore.json"))
        .args(["--certificate-identity-regexp", "(", "--certificate-oidc-issuer", DEFAULT_ISSUER, &a])
        .output()
        .unwrap();
    assert_eq!(exit_code(&out), 1, "{}", stderr_text(&out));
    // A missing artifact or trusted root file.
    let out = verify_blob(&dir, "/nonexistent/artifact", None).output().unwrap();
    assert_eq!(exit_code(&out), 1, "{}", stderr_text(&out));
    let mut cmd = verify_blob(&dir, &a, None);
    let out = cmd.args(["--trusted-root", "/nonexistent/trusted_root.json"]).output().unwrap();
    assert_eq!(exit_code(&out), 1, "{}", stderr_text(&out));
    assert!(one_error_line(&out).contains("/nonexistent/trusted_root.json"));
}
