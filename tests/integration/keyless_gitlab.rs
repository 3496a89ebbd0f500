//! A GitLab CI identity (issue 7's CI recipe, GitLab side): the local OIDC issuer mints a token
//! shaped like GitLab's `id_tokens`, the stack's Fulcio (a `gitlab-pipeline` issuer) certifies
//! it as `https://gitlab.com/GROUP/PROJECT//.gitlab-ci.yml@REF`, modelsign signs a model in a
//! registry with it, and `verify` accepts it by exact identity, by an anchored regexp and
//! through a policy file's keyless signer, and refuses a prefix-only regexp, another pipeline
//! file and the GitHub issuer.

use std::process::Command;

use crate::support::sigstore_stack::{self, Stack};
use crate::support::*;

const PIPELINE: &str = "gitlab.com/modelsign-test/models//.gitlab-ci.yml@refs/heads/main";

#[test]
fn a_gitlab_pipeline_identity_signs_and_verifies_by_flags_and_by_policy() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let registry = Registry::start(RegistryKind::Gcr);
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let model = write_tiny_model(work.path(), "tiny", 5000);
    let reference = format!("{}:v1", registry.reference("models/gitlab"));
    let ms = || {
        let mut cmd: Command = peers.modelsign();
        cmd.arg("--plain-http").env_remove("ACTIONS_ID_TOKEN_REQUEST_URL").env_remove("SIGSTORE_ID_TOKEN");
        cmd
    };
    run_ok(ms().arg("push").arg(&reference).arg(&model));
    let out = run_ok(
        ms().args(["sign", &reference, "--identity-token", &stack.gitlab_token(PIPELINE, "sigstore")])
            .arg("--signing-config")
            .arg(&stack.signing_config_path)
            .arg("--trusted-root")
            .arg(&stack.trusted_root_path),
    );
    let identity = Stack::gitlab_identity(PIPELINE);
    assert_eq!(identity, "https://gitlab.com/modelsign-test/models//.gitlab-ci.yml@refs/heads/main");
    assert!(stderr_text(&out).contains(&format!("signed keyless as {identity}")), "{}", stderr_text(&out));

    let verify = |flags: &[&str]| {
        ms().args(["verify", &reference])
            .args(flags)
            .arg("--trusted-root")
            .arg(&stack.trusted_root_path)
            .output()
            .unwrap()
    };
    let issuer = stack.oidc_gitlab_issuer.as_str();
    let out = verify(&["--certificate-identity", &identity, "--certificate-oidc-issuer", issuer]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    let pinned = r"https://gitlab\.com/modelsign-test/models//\.gitlab-ci\.yml@refs/(heads/main|tags/v.+)";
    let out = verify(&["--certificate-identity-regexp", pinned, "--certificate-oidc-issuer", issuer]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_text(&out));
    for flags in [
        // A regexp that matches only a prefix of the identity (it is anchored: no match).
        &["--certificate-identity-regexp", r"https://gitlab\.com/modelsign-test/", "--certificate-oidc-issuer", issuer]
            [..],
        // Another pipeline file of the same project.
        &[
            "--certificate-identity",
            "https://gitlab.com/modelsign-test/models//release.yml@refs/heads/main",
            "--certificate-oidc-issuer",
            issuer,
        ][..],
        // The right identity from the GitHub-shaped issuer.
        &["--certificate-identity", &identity, "--certificate-oidc-issuer", &stack.oidc_issuer][..],
    ] {
        let out = verify(flags);
        assert_eq!(out.status.code(), Some(3), "{flags:?} must not verify: {}", stderr_text(&out));
    }

    // The same signer in a policy file.
    let policy = work.path().join("policy.yaml");
    let write_policy = |identity_rule: &str| {
        std::fs::write(
            &policy,
            format!(
                "version: 1\nsigners:\n  release: {{{identity_rule}, certificate-oidc-issuer: \"{issuer}\", trusted-root: \"{}\"}}\nrequire:\n  - signed: [release]\n",
                stack.trusted_root_path.display()
            ),
        )
        .unwrap();
    };
    write_policy(&format!("certificate-identity-regexp: '{pinned}'"));
    run_ok(ms().args(["verify", &reference, "--policy"]).arg(&policy));
    write_policy(r"certificate-identity-regexp: 'https://gitlab\.com/modelsign-test/'");
    let out = ms().args(["verify", &reference, "--policy"]).arg(&policy).output().unwrap();
    assert_untrusted(&out, &["signed: [release]"]);
}
