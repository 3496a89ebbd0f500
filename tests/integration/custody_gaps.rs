//! Chain of custody (issue 6), the parts `custody.rs` leaves out: verifying one component
//! under a policy downloads that component's blob and no other (counted by a proxy in front
//! of distribution 2.8), the text report lists every rule, and `pull --include` checks the
//! component rules for what it pulls; two parties running `attest`
//! at the same moment on distribution 2.8 both keep their cards; a policy file with a
//! mistake makes `pull` and `copy` write nothing.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

const CARD: &str = "name: m\nversion: \"1\"\ndeveloper: vision team\npublisher: publisher\ndescription: a test model\nlicense: Apache-2.0\nsecurity: {sensitive-data: none, considerations: reviewed}\n";

fn ms() -> std::process::Command {
    let mut c = modelsign();
    c.args(["--plain-http", "--no-progress"]);
    c
}

/// A model with vision/, text/ and top-level components; returns its folder.
fn model(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    for (p, bytes) in [
        ("config.json", b"{\"model_type\":\"gaps\"}".to_vec()),
        ("vision/encoder.bin", pseudo_random_bytes(200_000, 1)),
        ("text/decoder.bin", pseudo_random_bytes(300_000, 2)),
        ("tokenizer.json", b"{}".to_vec()),
    ] {
        std::fs::create_dir_all(m.join(p).parent().unwrap()).unwrap();
        std::fs::write(m.join(p), bytes).unwrap();
    }
    m
}

fn keys(dir: &Path, parties: &[&str]) {
    for p in parties {
        keygen(dir, p, "p256");
    }
}

fn write_policy(dir: &Path, require: &str) -> PathBuf {
    let text = format!(
        "version: 1\nsigners:\n  publisher: {{key: publisher.pub}}\n  security: {{key: security.pub}}\n  vision: {{key: vision.pub}}\n  qa: {{key: qa.pub}}\nrequire:\n{require}"
    );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn one_component_under_a_policy_downloads_that_blob_and_no_other() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, tmp) = (bed.registry(), bed.path());
    let m = model(tmp);
    keys(tmp, &["publisher", "security", "vision", "qa"]);
    let reference = format!("{}:v1", reg.reference("custody/gaps"));
    run_ok(ms().arg("push").arg(&reference).arg(&m));
    run_ok(ms().args(["sign", &reference, "--key"]).arg(tmp.join("publisher.key")));
    run_ok(ms().args(["sign", &reference, "--component", "vision/**", "--key"]).arg(tmp.join("vision.key")));
    std::fs::write(tmp.join("card.yaml"), CARD).unwrap();
    run_ok(
        ms().args(["attest", &reference, "--model-card"])
            .arg(tmp.join("card.yaml"))
            .arg("--key")
            .arg(tmp.join("security.key")),
    );
    let policy = write_policy(
        tmp,
        "  - signed: [publisher]\n  - components: \"vision/**\"\n    signed: [vision]\n  - components: \"text/**\"\n    signed: {of: [publisher, qa], at-least: 1}\n  - model-card: {signed: [security], fields: [license, security.certificate]}\n",
    );

    let proxy = FaultProxy::start(reg.addr());
    let through = format!("{}/custody/gaps:v1", proxy.addr());
    let out = ms()
        .args(["verify", &through, "--policy"])
        .arg(&policy)
        .args(["--component", "vision/encoder.bin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    // The text report: every rule, with its line, pass and reason.
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "ok       policy line 8: signed: [publisher]: whole-model signature by publisher",
        "ok       policy line 9: components: \"vision/**\", signed: [vision]: 1 component(s) signed",
        "ok       policy line 11: components: \"text/**\"",
        "not checked",
        "ok       policy line 13: model-card",
        "ok       policy: no statement by a policy signer contradicts the model",
    ] {
        assert!(text.contains(needle), "`{needle}` not in:\n{text}");
    }
    let digest_of = |p: &str| sha256_digest(&std::fs::read(m.join(p)).unwrap());
    let fetched: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .map(|r| r.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(fetched.contains(&digest_of("vision/encoder.bin")), "the component was not fetched: {fetched:?}");
    for other in ["text/decoder.bin", "config.json", "tokenizer.json"] {
        assert!(!fetched.contains(&digest_of(other)), "{other} was downloaded too: {fetched:?}");
    }

    // pull --include checks the component rules for what it pulls: vision/ passes and is
    // written alone (no model.sig: not the whole model); once the text rule names a signer
    // who signed nothing, pulling text/ writes nothing, while vision/ still may be pulled.
    let part = tmp.join("part");
    let out =
        run_ok(ms().args(["pull", &reference, "--include", "vision/**", "--policy"]).arg(&policy).arg("-o").arg(&part));
    assert!(
        stderr_text(&out).contains("model.sig not written: --include pulled only part of the model"),
        "{}",
        stderr_text(&out)
    );
    assert_eq!(files_under(&part).into_keys().collect::<Vec<_>>(), ["vision/encoder.bin"]);
    let strict = write_policy(
        tmp,
        "  - signed: [publisher]\n  - components: \"vision/**\"\n    signed: [vision]\n  - components: \"text/**\"\n    signed: [qa]\n",
    );
    let text_dir = tmp.join("text-part");
    let out = ms()
        .args(["pull", &reference, "--include", "text/**", "--policy"])
        .arg(&strict)
        .arg("-o")
        .arg(&text_dir)
        .output()
        .unwrap();
    assert_untrusted(&out, &["component `text/decoder.bin`", "nothing was written"]);
    assert!(!text_dir.exists());
    let vision_dir = tmp.join("vision-part");
    run_ok(
        ms().args(["pull", &reference, "--include", "vision/**", "--policy"]).arg(&strict).arg("-o").arg(&vision_dir),
    );
    assert!(vision_dir.join("vision/encoder.bin").is_file());
}

/// Two parties run `attest` at the same moment, three times, on distribution 2.8 (no
/// referrers API: each attach rewrites the fallback index): every card survives, and a
/// policy needing both parties' cards passes.
#[test]
fn two_parties_attesting_at_the_same_moment_keep_both_cards_on_distribution() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, tmp) = (bed.registry(), bed.path());
    let m = model(tmp);
    keys(tmp, &["publisher", "security", "vision", "qa"]);
    let reference = format!("{}:v1", reg.reference("custody/race"));
    run_ok(ms().arg("push").arg(&reference).arg(&m));
    std::fs::write(tmp.join("card.yaml"), CARD).unwrap();
    for round in 0..3 {
        let children: Vec<_> = ["security", "qa"]
            .iter()
            .map(|p| {
                ms().args(["attest", &reference, "--model-card"])
                    .arg(tmp.join("card.yaml"))
                    .arg("--key")
                    .arg(tmp.join(format!("{p}.key")))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success(), "round {round}");
        }
    }
    let tree: Value =
        serde_json::from_str(&run_stdout(ms().args(["discover", "--output", "json", &reference]))).unwrap();
    assert_eq!(tree["referrers"].as_array().unwrap().len(), 12, "3 rounds × 2 parties × (card + CycloneDX): {tree:#}");
    run_ok(ms().args(["sign", &reference, "--key"]).arg(tmp.join("publisher.key")));
    let policy = write_policy(tmp, "  - signed: [publisher]\n  - model-card: {signed: [security, qa]}\n");
    let out = ms().args(["verify", &reference, "--policy"]).arg(&policy).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
}

/// A policy with a mistake stops `pull` and `copy` before anything is fetched or written:
/// exit 1, one line naming the line and the key.
#[test]
fn a_policy_with_a_mistake_makes_pull_and_copy_write_nothing() {
    let _tb = require_testbed!();
    let tmp = tempfile::tempdir().unwrap();
    let m = model(tmp.path());
    keys(tmp.path(), &["publisher", "security", "vision", "qa"]);
    let layout = format!("oci:{}:v1", tmp.path().join("layout").display());
    run_ok(ms().arg("push").arg(&layout).arg(&m));
    run_ok(ms().args(["sign", &layout, "--key"]).arg(tmp.path().join("publisher.key")));
    for (require, needles) in [
        ("  - signed: [publisher]\n    signd: [qa]\n", &["line 9", "signd"][..]),
        ("  - components: \"vision/**\"\n    signed: [nobody]\n", &["line 8", "unknown signer `nobody`"]),
    ] {
        let policy = write_policy(tmp.path(), require);
        let out_dir = tmp.path().join("pulled");
        let out = ms().args(["pull", &layout, "-o"]).arg(&out_dir).arg("--policy").arg(&policy).output().unwrap();
        let (code, line) = one_line_error(&out);
        assert_eq!(code, Some(1), "{line}");
        assert!(needles.iter().all(|n| line.contains(n)), "{line}");
        assert!(!out_dir.exists(), "pull with a broken policy created {}", out_dir.display());
        let mirror = tmp.path().join("mirror");
        let out = ms()
            .args(["copy", &layout, &format!("oci:{}:v1", mirror.display()), "--policy"])
            .arg(&policy)
            .output()
            .unwrap();
        let (code, line) = one_line_error(&out);
        assert_eq!(code, Some(1), "{line}");
        assert!(needles.iter().all(|n| line.contains(n)), "{line}");
        assert!(!mirror.exists(), "copy with a broken policy created {}", mirror.display());
    }
}
