//! Keyless signers in policy files (issues 6 and 7): a policy signer may be a Sigstore
//! identity + OIDC issuer, each exact or an anchored regexp, checked against the built-in
//! public-good root or the signer's own `trusted-root`. The model is the one
//! `model_signing` 1.1.0 signed keyless (`testdata/model-signing-versions/v1.1.0-sigstore`,
//! `stefanb@us.ibm.com` via IBM's issuer), pushed with its `model.sig` as an OMS referrer,
//! next to a key-based component signature; `verify`, `pull` and `copy` enforce the policy on
//! distribution 2.8 (fallback tag) and in a layout folder, offline.

use std::path::{Path, PathBuf};

use crate::support::*;

const IDENTITY: &str = "stefanb@us.ibm.com";
const ISSUER: &str = "https://sigstore.verify.ibm.com/oauth2";

struct Keyless {
    _registry: Option<Registry>,
    work: tempfile::TempDir,
    reference: String,
}

impl Keyless {
    /// The keyless-signed model pushed (its `model.sig` becomes a referrer), then `signme-2`
    /// signed as a component by the `qa` key.
    fn new(registry: bool) -> Keyless {
        let work = tempfile::tempdir().unwrap();
        let model = work.path().join("model");
        std::fs::create_dir_all(&model).unwrap();
        let src = repo_root().join("testdata/model-signing-versions/v1.1.0-sigstore");
        for name in ["signme-1", "signme-2", "model.sig"] {
            std::fs::copy(src.join(name), model.join(name)).unwrap();
        }
        let (registry, reference) = if registry {
            let r = Registry::start(RegistryKind::Distribution);
            let reference = format!("{}:v1", r.reference("models/keyless"));
            (Some(r), reference)
        } else {
            (None, format!("oci:{}:v1", work.path().join("layout").display()))
        };
        run_ok(ms().arg("push").arg(&reference).arg(&model));
        let (qa, _) = keygen(work.path(), "qa", "p256");
        run_ok(ms().args(["sign", &reference, "--key"]).arg(&qa).args(["--component", "signme-2"]));
        Keyless { _registry: registry, work, reference }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// A policy whose `release` signer is `release` (flow-style YAML map body) and whose
    /// `qa` signer is the key that signed `signme-2`.
    fn policy(&self, name: &str, release: &str) -> PathBuf {
        let text = format!(
            "version: 1\nsigners:\n  release: {{{release}}}\n  qa: {{key: qa.pub}}\nrequire:\n  - signed: [release]\n  - components: \"signme-*\"\n    signed: {{of: [release, qa], at-least: 1}}\n  - components: \"signme-2\"\n    signed: [qa]\n"
        );
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn verify(&self, policy: &Path, extra: &[&str]) -> std::process::Output {
        ms().args(["verify", "--output", "json", &self.reference, "--policy"]).arg(policy).args(extra).output().unwrap()
    }

    /// Refused by verify (exit 3, naming the keyless rule), pull and copy (nothing written).
    fn assert_refused(&self, policy: &Path) {
        let out = self.verify(policy, &[]);
        assert_untrusted(&out, &["signed: [release]", "0 of the required signers signed the whole model"]);
        let dest = self.path("refused-pull");
        let out = ms().args(["pull", &self.reference, "-o"]).arg(&dest).arg("--policy").arg(policy).output().unwrap();
        assert_untrusted(&out, &["nothing was written"]);
        assert!(!dest.exists(), "a refused pull left {}", dest.display());
        let mirror = self.path("refused-copy");
        let out = ms()
            .args(["copy", &self.reference, &format!("oci:{}:v1", mirror.display()), "--policy"])
            .arg(policy)
            .output()
            .unwrap();
        assert_untrusted(&out, &["nothing was copied"]);
        assert!(!mirror.exists(), "a refused copy created {}", mirror.display());
    }
}

fn ms() -> std::process::Command {
    let mut c = modelsign();
    c.arg("--plain-http");
    c
}

fn keyless_policy_is_enforced(registry: bool) {
    let _tb = require_testbed!();
    let k = Keyless::new(registry);
    let exact =
        k.policy("exact.yaml", &format!("certificate-identity: {IDENTITY}, certificate-oidc-issuer: \"{ISSUER}\""));
    let out = k.verify(&exact, &[]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stderr_text(&out), String::from_utf8_lossy(&out.stdout));
    let report = stdout_json(&out);
    let rules = report["policy"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4, "{report:#}");
    assert!(rules[0]["reason"].as_str().unwrap().contains("whole-model signature by release"), "{report:#}");
    let signers: Vec<&str> =
        report["signatures"]["checks"].as_array().unwrap().iter().filter_map(|c| c["signer"].as_str()).collect();
    assert!(signers.iter().any(|s| s.starts_with("release") && s.contains(IDENTITY)), "{signers:?}");

    // One component: only its rules, and it is the only one downloaded.
    let out = k.verify(&exact, &["--component", "signme-2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    assert_eq!(stdout_json(&out)["components"].as_array().unwrap().len(), 1);

    // Anchored regexps for both: the right ones pass.
    let regexp = k.policy(
        "regexp.yaml",
        r"certificate-identity-regexp: '[a-z]+@us\.ibm\.com', certificate-oidc-issuer-regexp: 'https://sigstore\.verify\.ibm\.com/oauth2'",
    );
    let out = k.verify(&regexp, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));

    // pull writes the files and the keyless model.sig, which model_signing's format keeps.
    let pulled = k.path("pulled");
    run_ok(ms().args(["pull", &k.reference, "-o"]).arg(&pulled).arg("--policy").arg(&exact));
    let src = repo_root().join("testdata/model-signing-versions/v1.1.0-sigstore");
    assert_eq!(std::fs::read(pulled.join("signme-1")).unwrap(), std::fs::read(src.join("signme-1")).unwrap());
    assert_eq!(std::fs::read(pulled.join("model.sig")).unwrap(), std::fs::read(src.join("model.sig")).unwrap());
    // copy passes the gate and carries both signatures: the copy still passes, offline.
    let mirror = format!("oci:{}:v1", k.path("mirror").display());
    run_ok(ms().args(["copy", &k.reference, &mirror, "--policy"]).arg(&exact));
    let out = ms().args(["verify", "--offline", &mirror, "--policy"]).arg(&exact).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    // discover names the keyless signer as the policy does.
    let text = run_stdout(ms().args(["discover", &k.reference, "--policy"]).arg(&exact));
    assert!(text.contains("release") && text.contains(IDENTITY) && text.contains("whole model"), "{text}");
}

#[test]
fn a_keyless_policy_signer_is_enforced_on_distribution() {
    keyless_policy_is_enforced(true);
}

#[test]
fn a_keyless_policy_signer_is_enforced_in_a_layout() {
    keyless_policy_is_enforced(false);
}

/// Another identity, a regexp that would match only unanchored, another issuer, an issuer
/// prefix, and a trusted root that is not the one the certificate chains to: none passes,
/// and neither pull nor copy writes anything.
#[test]
fn a_keyless_signature_by_anyone_else_meets_no_rule() {
    let _tb = require_testbed!();
    let k = Keyless::new(false);
    let custom_root = repo_root().join("testdata/sigstore-conformance/bundle-verify/intoto-with-custom-trust-root");
    std::fs::copy(custom_root.join("trusted_root.json"), k.path("other_root.json")).unwrap();
    let cases = [
        format!("certificate-identity: eve@us.ibm.com, certificate-oidc-issuer: \"{ISSUER}\""),
        format!("certificate-identity-regexp: stefanb, certificate-oidc-issuer: \"{ISSUER}\""),
        format!("certificate-identity: {IDENTITY}, certificate-oidc-issuer: https://accounts.google.com"),
        format!(
            r"certificate-identity: {IDENTITY}, certificate-oidc-issuer-regexp: 'https://sigstore\.verify\.ibm\.com'"
        ),
        format!(
            "certificate-identity: {IDENTITY}, certificate-oidc-issuer: \"{ISSUER}\", trusted-root: other_root.json"
        ),
    ];
    for (i, release) in cases.iter().enumerate() {
        let policy = k.policy(&format!("wrong-{i}.yaml"), release);
        k.assert_refused(&policy);
    }
    // The component rules alone do not make up for the missing keyless signer: the qa key's
    // component signature is no whole-model signature.
    let policy = k.policy(
        "qa-only.yaml",
        &format!("certificate-identity: eve@us.ibm.com, certificate-oidc-issuer: \"{ISSUER}\""),
    );
    let out = k.verify(&policy, &["--component", "signme-2"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
}

/// Mistakes in a keyless signer are one line naming the line and the key, exit 1.
#[test]
fn keyless_signer_mistakes_are_one_line() {
    let _tb = require_testbed!();
    let k = Keyless::new(false);
    for (release, needles) in [
        ("certificate-identity: x", &["line 3", "signers.release.certificate-oidc-issuer"][..]),
        (
            "certificate-identity-regexp: '(x', certificate-oidc-issuer: y",
            &["line 3", "certificate-identity-regexp", "(x"],
        ),
        (
            "certificate-identity: x, certificate-oidc-issuer: y, trusted-root: nowhere.json",
            &["line 3", "nowhere.json"],
        ),
    ] {
        let policy = k.policy("bad.yaml", release);
        let out = k.verify(&policy, &[]);
        let (code, line) = one_line_error(&out);
        assert_eq!(code, Some(1), "{line}");
        for n in needles {
            assert!(line.contains(n), "`{n}` not in {line}");
        }
    }
}
