//! Chain of custody (issue 6): several parties sign and attest one model, a policy says who
//! must have vouched for what, and `verify`, `pull` and `copy` enforce it — on distribution
//! 2.8 (no referrers API: the fallback tag), the cue registry (referrers API) and layout
//! folders. Each attack has its own test; none may pass, and failed pulls and copies leave
//! no file.

use std::path::{Path, PathBuf};
use std::process::Output;

use modelsign::sign::statement::{Statement, Subject};
use modelsign::sign::{Signer, SigningKey};
use serde_json::{Value, json};

use crate::support::*;

const CARD: &str = "https://modelsign.dev/model-card/v1";
const PARTIES: [&str; 4] = ["publisher", "security", "vision", "stranger"];

struct Custody {
    bed: Bed,
    /// `…/models/m:v1`
    reference: String,
    /// The repository part, to name other tags.
    repo: String,
}

impl Custody {
    /// The model pushed to the bed's place as `v1`, and a key pair for each party.
    fn new(bed: Bed) -> Custody {
        let repo = bed.repo("models/m");
        let keys = bed.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        for p in PARTIES {
            keygen(&keys, p, "p256");
        }
        let c = Custody { bed, reference: format!("{repo}:v1"), repo };
        c.push_model("v1", b"text weights");
        c
    }

    /// modelsign, plain HTTP, no progress bars, the tools' private home.
    fn ms(&self) -> std::process::Command {
        self.bed.ms()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.bed.path().join(name)
    }

    fn key(&self, party: &str) -> PathBuf {
        self.path("keys").join(format!("{party}.key"))
    }

    /// Pushes a model with `vision/` and `text/` components under `tag`.
    fn push_model(&self, tag: &str, text_weights: &[u8]) {
        let dir = self.path(&format!("model-{tag}"));
        for (p, bytes) in [
            ("config.json", &b"{\"model_type\":\"custody\"}"[..]),
            ("vision/encoder.bin", b"vision weights"),
            ("text/decoder.bin", text_weights),
            ("tokenizer.json", b"{}"),
        ] {
            std::fs::create_dir_all(dir.join(p).parent().unwrap()).unwrap();
            std::fs::write(dir.join(p), bytes).unwrap();
        }
        run_ok(self.ms().arg("push").arg(format!("{}:{tag}", self.repo)).arg(&dir));
    }

    fn sign(&self, party: &str, extra: &[&str]) {
        run_ok(self.ms().args(["sign", &self.reference, "--key"]).arg(self.key(party)).args(extra));
    }

    /// Writes `policy.yaml` (signers publisher, security, vision, by key) with these rules.
    fn policy(&self, require: &str) -> PathBuf {
        let text = format!(
            "version: 1\nsigners:\n  publisher: {{key: keys/publisher.pub}}\n  security: {{key: keys/security.pub}}\n  vision: {{key: keys/vision.pub}}\nrequire:\n{require}"
        );
        let path = self.path("policy.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Signs a model-card statement about the model `tag` names with `party`'s key and
    /// attaches it to the model `onto` names (the same one unless an attack copies it).
    fn attest_card(&self, party: &str, about: &str, onto: &str, card: Value) {
        let signer =
            Signer::from_key(SigningKey::from_pem(&std::fs::read_to_string(self.key(party)).unwrap(), None).unwrap());
        block_on(async {
            let target = open_target(&self.reference).await;
            let (about, _) = manifest_json(&target, about).await;
            let (onto, _) = manifest_json(&target, onto).await;
            let subject = Subject { name: "m".into(), digest: [("sha256".to_string(), about.digest.hex())].into() };
            let statement = Statement::new(vec![subject], CARD, card);
            let bundle = signer.sign_statement(&statement).unwrap();
            attach_bundle(&target, &onto, &bundle, CARD).await;
        });
    }

    fn verify(&self, policy: &Path, extra: &[&str]) -> Output {
        self.ms()
            .args(["verify", "--output", "json", &self.reference, "--policy"])
            .arg(policy)
            .args(extra)
            .output()
            .unwrap()
    }

    /// `pull --policy` and `copy --policy` into a layout fail the same way and leave nothing.
    fn assert_pull_and_copy_refused(&self, policy: &Path, needle: &str) {
        let out_dir = self.path("pulled");
        let out =
            self.ms().args(["pull", &self.reference, "-o"]).arg(&out_dir).arg("--policy").arg(policy).output().unwrap();
        assert_untrusted(&out, &[needle, "nothing was written"]);
        assert!(!out_dir.exists(), "a refused pull left {}", out_dir.display());
        let mirror = self.path("mirror");
        let out = self
            .ms()
            .args(["copy", &self.reference, &format!("oci:{}:v1", mirror.display()), "--policy"])
            .arg(policy)
            .output()
            .unwrap();
        assert_untrusted(&out, &[needle, "nothing was copied"]);
        assert!(!mirror.exists(), "a refused copy created {}", mirror.display());
    }
}

fn good_card() -> Value {
    json!({
        "name": "m", "version": "1", "developer": "vision and text teams", "publisher": "publisher",
        "description": "a test model", "license": "Apache-2.0",
        "security": {"sensitive-data": "none", "considerations": "reviewed by security"},
    })
}

fn rule_results(out: &Output) -> Vec<(bool, String)> {
    let report = stdout_json(out);
    report["policy"]["rules"]
        .as_array()
        .unwrap_or_else(|| panic!("no policy report: {report:#}"))
        .iter()
        .map(|r| (r["passed"].as_bool().unwrap(), r["reason"].as_str().unwrap().to_string()))
        .collect()
}

const FOUR_RULES: &str = "  - signed: [publisher]
  - signed: {of: [security, vision], at-least: 1}
  - components: \"vision/**\"
    signed: [vision]
  - model-card:
      signed: [security]
      fields: [license]
";

/// The walkthrough: publisher signs the model, vision signs its components, security
/// attests the card. The policy passes for the whole model and for one component; pull
/// and copy go through; the copy carries every signature and still passes.
fn four_parties(place: Place) {
    let c = Custody::new(bed!(place));
    let policy = c.policy(FOUR_RULES);
    let out = c.verify(&policy, &[]);
    assert_eq!(out.status.code(), Some(3), "unsigned: {}", stderr_text(&out));
    c.sign("publisher", &[]);
    c.sign("vision", &["--component", "vision/**"]);
    c.sign("security", &[]);
    c.attest_card("security", "v1", "v1", good_card());
    let out = c.verify(&policy, &[]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stderr_text(&out), String::from_utf8_lossy(&out.stdout));
    let results = rule_results(&out);
    assert_eq!(results.len(), 5, "four rules and the consistency check: {results:?}");
    assert!(results.iter().all(|(ok, _)| *ok), "{results:?}");
    // One component: only it is downloaded, the vision rule is checked for it.
    let out = c.verify(&policy, &["--component", "vision/encoder.bin"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    assert_eq!(stdout_json(&out)["components"].as_array().unwrap().len(), 1);
    let out = c.verify(&policy, &["--component", "config.json"]);
    assert!(rule_results(&out)[2].1.contains("not checked"), "{:?}", rule_results(&out));
    // Pull writes, with model.sig; copy carries every referrer and the copy still passes.
    let pulled = c.path("pulled");
    run_ok(c.ms().args(["pull", &c.reference, "-o"]).arg(&pulled).arg("--policy").arg(&policy));
    assert!(pulled.join("vision/encoder.bin").exists() && pulled.join("model.sig").exists());
    let mirror = format!("oci:{}:v1", c.path("mirror").display());
    run_ok(c.ms().args(["copy", &c.reference, &mirror, "--policy"]).arg(&policy));
    let out = c.ms().args(["verify", "--offline", &mirror, "--policy"]).arg(&policy).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    // discover names each signer against the policy.
    let text = run_stdout(c.ms().args(["discover", &c.reference, "--policy"]).arg(&policy));
    for needle in ["publisher", "vision", "security", "whole model", "vision/encoder.bin", "model card"] {
        assert!(text.contains(needle), "`{needle}` not in discover:\n{text}");
    }
}

registry_cases! {
    four_parties: [distribution, cue, layout];
}

#[test]
fn a_scan_signed_by_the_trusted_key_is_no_signature() {
    let c = Custody::new(bed!(RegistryKind::Distribution));
    let signer =
        Signer::from_key(SigningKey::from_pem(&std::fs::read_to_string(c.key("publisher")).unwrap(), None).unwrap());
    block_on(async {
        let target = open_target(&c.reference).await;
        let (desc, _) = manifest_json(&target, "v1").await;
        let subject = Subject { name: "m".into(), digest: [("sha256".to_string(), desc.digest.hex())].into() };
        let scan = "https://example.com/vulnerability-scan/v1";
        let st = Statement::new(vec![subject], scan, json!({"verdict": "REJECTED"}));
        attach_bundle(&target, &desc, &signer.sign_statement(&st).unwrap(), scan).await;
    });
    let out = c.ms().args(["verify", &c.reference, "--key"]).arg(c.path("keys/publisher.pub")).output().unwrap();
    assert_untrusted(&out, &["never verify a model on their own"]);
}

#[test]
fn a_component_signature_with_the_digest_under_another_path_covers_nothing() {
    let c = Custody::new(bed!(RegistryKind::Cue));
    // v2 carries vision's bytes under text/, and other bytes under vision/.
    c.push_model("v2", b"vision weights");
    let v2 = format!("{}:v2", c.repo);
    run_ok(c.ms().args(["sign", &v2, "--key"]).arg(c.key("vision")).args(["--component", "text/**"]));
    run_ok(c.ms().args(["sign", &v2, "--key"]).arg(c.key("publisher")));
    let policy = c.policy("  - signed: [publisher]\n  - components: \"vision/**\"\n    signed: [vision]\n");
    let out = c.ms().args(["verify", "--output", "json", &v2, "--policy"]).arg(&policy).output().unwrap();
    assert_untrusted(&out, &["component `vision/encoder.bin`", "signed by 0 of the required signers"]);
}

#[test]
fn a_component_signature_presented_as_a_whole_model_one_fails() {
    let c = Custody::new(bed!(RegistryKind::Distribution));
    c.sign("vision", &["--component", "**"]);
    let policy = c.policy("  - signed: [vision]\n");
    let out = c.verify(&policy, &[]);
    assert_untrusted(&out, &["vision has only a component signature"]);
    c.assert_pull_and_copy_refused(&policy, "has only a component signature");
}

#[test]
fn a_signer_whose_key_signed_only_another_model_fails() {
    let c = Custody::new(bed!(RegistryKind::Distribution));
    c.push_model("other", b"other text weights");
    run_ok(c.ms().args(["sign", &format!("{}:other", c.repo), "--key"]).arg(c.key("publisher")));
    block_on(async {
        let target = open_target(&c.reference).await;
        let (other, _) = manifest_json(&target, "other").await;
        let (ours, _) = manifest_json(&target, "v1").await;
        repoint_referrers(&target, &other, &ours, |_| true).await;
    });
    let policy = c.policy("  - signed: [publisher]\n");
    let out = c.verify(&policy, &[]);
    assert_untrusted(&out, &["0 of the required signers signed the whole model (need publisher)"]);
    let results = rule_results(&out);
    assert!(!results[1].0 && results[1].1.contains("contradicts this model"), "{results:?}");
    c.assert_pull_and_copy_refused(&policy, "need publisher");
}

#[test]
fn a_threshold_not_met_fails() {
    let c = Custody::new(bed!(Place::Layout));
    c.sign("publisher", &[]);
    let policy = c.policy("  - signed: {of: [publisher, security, vision], at-least: 2}\n");
    let out = c.verify(&policy, &[]);
    assert_untrusted(
        &out,
        &["1 of the required signers signed the whole model (need 2 of [publisher, security, vision])"],
    );
    c.assert_pull_and_copy_refused(&policy, "need 2 of");
}

#[test]
fn a_card_signed_by_a_key_the_policy_does_not_name_fails() {
    let c = Custody::new(bed!(RegistryKind::Cue));
    c.sign("publisher", &[]);
    c.attest_card("stranger", "v1", "v1", good_card());
    let policy = c.policy("  - signed: [publisher]\n  - model-card: {signed: [security]}\n");
    let out = c.verify(&policy, &[]);
    assert_untrusted(&out, &["0 of the required signers attested a complete model card"]);
    c.assert_pull_and_copy_refused(&policy, "model card");
}

#[test]
fn a_card_missing_a_field_the_policy_requires_fails() {
    let c = Custody::new(bed!(RegistryKind::Distribution));
    c.sign("publisher", &[]);
    let mut card = good_card();
    card.as_object_mut().unwrap().remove("license");
    c.attest_card("security", "v1", "v1", card);
    let policy = c.policy("  - signed: [publisher]\n  - model-card: {signed: [security], fields: [license]}\n");
    let out = c.verify(&policy, &[]);
    assert_untrusted(&out, &["lacks license"]);
    c.assert_pull_and_copy_refused(&policy, "lacks license");
}

#[test]
fn a_card_of_another_model_copied_here_fails() {
    let c = Custody::new(bed!(Place::Layout));
    c.push_model("other", b"other text weights");
    c.sign("publisher", &[]);
    c.attest_card("security", "other", "v1", good_card());
    let policy = c.policy("  - signed: [publisher]\n  - model-card: {signed: [security]}\n");
    let out = c.verify(&policy, &[]);
    assert_untrusted(&out, &["policy"]);
    let results = rule_results(&out);
    assert!(!results[1].0 && !results[2].0, "no card for this model, and a contradiction: {results:?}");
    c.assert_pull_and_copy_refused(&policy, "policy");
}

#[test]
fn policy_mistakes_are_one_line_and_a_glob_matching_nothing_fails() {
    let c = Custody::new(bed!(Place::Layout));
    c.sign("publisher", &[]);
    for (require, needles) in [
        ("  - signed: [publisher]\n    sigend: [vision]\n", &["line 8", "sigend"][..]),
        ("  - signed: [publisher, nobody]\n", &["line 7", "unknown signer `nobody`"]),
    ] {
        let policy = c.policy(require);
        let out = c.verify(&policy, &[]);
        let line = one_error_line(&out);
        assert_eq!(out.status.code(), Some(1), "{line}");
        for n in needles {
            assert!(line.contains(n), "`{n}` not in {line}");
        }
    }
    let missing = c.path("missing-file.yaml");
    std::fs::write(&missing, "version: 1\nsigners:\n  a: {key: keys/absent.pub}\nrequire:\n  - signed: [a]\n").unwrap();
    let out = c.verify(&missing, &[]);
    let line = one_error_line(&out);
    assert!(line.contains("line 3") && line.contains("signers.a.key") && line.contains("absent.pub"), "{line}");
    // A glob that matches nothing: a warning, and the rule fails (nothing to check is no pass).
    let policy = c.policy("  - signed: [publisher]\n  - components: \"audio/**\"\n    signed: [publisher]\n");
    let out = c.verify(&policy, &[]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = stderr_text(&out);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "one warning, one error: {stderr}");
    assert!(lines[0].starts_with("warning: components glob `audio/**` matches no component"), "{stderr}");
    assert!(lines[1].starts_with("error: ") && lines[1].contains("`audio/**` matches no component"), "{stderr}");
    c.assert_pull_and_copy_refused(&policy, "matches no component");
}

/// Two parties attach at the same moment to one model on distribution 2.8, which has no
/// referrers API: both go through the fallback index (read-modify-write) and both survive.
#[test]
fn two_parties_attesting_at_the_same_moment_both_survive_on_distribution() {
    let c = Custody::new(bed!(RegistryKind::Distribution));
    for round in 0..3 {
        let a = c
            .ms()
            .args(["sign", &c.reference, "--key"])
            .arg(c.key("vision"))
            .args(["--component", "vision/**"])
            .spawn()
            .unwrap();
        let b = c.ms().args(["sign", &c.reference, "--key"]).arg(c.key("security")).spawn().unwrap();
        for mut child in [a, b] {
            assert!(child.wait().unwrap().success(), "round {round}");
        }
    }
    let referrers = run_stdout(c.ms().args(["discover", "--output", "json", &c.reference]));
    let tree: Value = serde_json::from_str(&referrers).unwrap();
    assert_eq!(tree["referrers"].as_array().unwrap().len(), 9, "3 component + 6 whole-model signatures: {tree:#}");
    let policy = c.policy("  - signed: [security]\n  - components: \"vision/**\"\n    signed: [vision]\n");
    let out = c.verify(&policy, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
}
