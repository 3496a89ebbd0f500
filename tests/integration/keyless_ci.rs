//! docs/CI.md's recipes, run: every `modelsign` shell line of the GitHub Actions workflow and
//! of the GitLab pipeline is taken verbatim from the document (the test fails if a line is
//! not there) and run by `sh` with the variables the CI would set, against a registry with a
//! password and the real local Sigstore stack. GitHub's token comes from a stand-in for the
//! runner's token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`); GitLab's is the
//! `SIGSTORE_ID_TOKEN` variable, a token shaped like GitLab's from the stack's
//! `gitlab-pipeline` issuer. A shell function adds only what points the commands at the
//! local instance: `--plain-http`, `--signing-config`/`--trusted-root` (sign, attest),
//! `--trusted-root` (verify); and the local issuers' URLs replace
//! `https://token.actions.githubusercontent.com` and the issuer `https://gitlab.com`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::sigstore_stack::{self, Stack};
use crate::support::*;

const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const GITLAB_ISSUER: &str = "https://gitlab.com";

/// The GitHub workflow's shell lines, in the order the jobs run them.
const GITHUB_LOGIN: &str =
    r#"echo "$REGISTRY_PASSWORD" | modelsign login "$REGISTRY" -u "$REGISTRY_USER" --password-stdin"#;
const GITHUB_PUSH: [&str; 2] =
    [r#"DIGEST=$(modelsign push "$MODEL:$GITHUB_SHA" ./model)"#, r#"echo "digest=$DIGEST" >> "$GITHUB_OUTPUT""#];
const GITHUB_SIGN: &str = r#"modelsign sign "$MODEL@$DIGEST""#;
const GITHUB_ATTEST: &str = r#"modelsign attest "$MODEL@$DIGEST" --model-card model/card.yaml"#;
const GITHUB_VERIFY: &str = r#"modelsign verify "$MODEL@$DIGEST" --component config.json --certificate-identity "https://github.com/$GITHUB_REPOSITORY/.github/workflows/publish-model.yml@refs/heads/main" --certificate-oidc-issuer https://token.actions.githubusercontent.com"#;

/// The GitLab pipeline's `script:` lines (publish job).
const GITLAB_PUBLISH: [&str; 5] = [
    r#"echo "$CI_REGISTRY_PASSWORD" | modelsign login "$CI_REGISTRY" -u "$CI_REGISTRY_USER" --password-stdin"#,
    r#"DIGEST=$(modelsign push "$MODEL:$CI_COMMIT_SHA" ./model)"#,
    r#"modelsign sign "$MODEL@$DIGEST""#,
    r#"modelsign attest "$MODEL@$DIGEST" --model-card model/card.yaml"#,
    r#"echo "DIGEST=$DIGEST" >> publish.env"#,
];

/// The GitLab pipeline's verify job line.
const GITLAB_VERIFY: &str = r#"modelsign verify "$MODEL@$DIGEST" --component config.json --certificate-identity "https://gitlab.com/$CI_PROJECT_PATH//.gitlab-ci.yml@refs/heads/main" --certificate-oidc-issuer https://gitlab.com"#;

const CARD: &str = "name: tiny\nversion: \"1.0\"\ndeveloper: Vision team\npublisher: Acme Models\n\
description: A tiny model for tests.\nsecurity:\n  sensitive-data: none\n  considerations: reviewed\n";

/// The shell function that points `modelsign` at the local instance.
const WRAPPER: &str = r#"modelsign() {
  case "$1" in
    sign|attest) set -- "$@" --signing-config "$MS_SIGNING_CONFIG" --trusted-root "$MS_TRUSTED_ROOT" ;;
    verify) set -- "$@" --trusted-root "$MS_TRUSTED_ROOT" ;;
  esac
  "$MS_BIN" --plain-http "$@"
}
"#;

fn ci_doc() -> String {
    std::fs::read_to_string(repo_root().join("docs/CI.md")).expect("docs/CI.md")
}

/// Runs `line` (one or more shell lines, each checked to be in docs/CI.md) in `dir` with
/// `env`; returns stdout.
fn run_line(peers: &Peers, stack: &Stack, dir: &Path, env: &BTreeMap<&str, String>, line: &str) -> String {
    let doc = ci_doc();
    for one in line.lines() {
        assert!(doc.contains(one), "docs/CI.md no longer has the line the test runs:\n{one}");
    }
    let local = line.replace(GITHUB_ISSUER, &stack.oidc_issuer).replace(
        &format!("--certificate-oidc-issuer {GITLAB_ISSUER}"),
        &format!("--certificate-oidc-issuer {}", stack.oidc_gitlab_issuer),
    );
    let script = format!("set -e\n{WRAPPER}{local}");
    let mut cmd = peers.command("sh");
    cmd.arg("-c").arg(script).current_dir(dir);
    cmd.env("MS_BIN", env!("CARGO_BIN_EXE_modelsign"))
        .env("MS_SIGNING_CONFIG", &stack.signing_config_path)
        .env("MS_TRUSTED_ROOT", &stack.trusted_root_path)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL");
    cmd.envs(env);
    run_stdout(&mut cmd)
}

fn workspace(work: &Path) {
    let model = write_tiny_model(work, "model", 8_000);
    std::fs::write(model.join("card.yaml"), CARD).unwrap();
}

#[test]
fn github_actions_recipe_publishes_signs_attests_and_verifies() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let registry = Registry::start(RegistryKind::basic("ci-bot", "ci-password"));
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    workspace(work.path());
    let workflow = "acme/models/.github/workflows/publish-model.yml@refs/heads/main";
    let runner = crate::keyless_sign::ActionsTokenEndpoint::start(stack.github_token(workflow, "sigstore"));
    let output = work.path().join("github_output");
    let mut env: BTreeMap<&str, String> = BTreeMap::new();
    env.insert("REGISTRY", registry.addr().to_string());
    env.insert("REGISTRY_USER", "ci-bot".into());
    env.insert("REGISTRY_PASSWORD", "ci-password".into());
    env.insert("MODEL", format!("{}/acme/models/tiny", registry.addr()));
    env.insert("GITHUB_SHA", "858f4279eb7333d6893b66b7bebab379f09ce75d".into());
    env.insert("GITHUB_OUTPUT", output.display().to_string());
    env.insert("GITHUB_REPOSITORY", "acme/models".into());

    // Job `publish`, with id-token: write.
    run_line(&peers, &stack, work.path(), &env, GITHUB_LOGIN);
    let push = GITHUB_PUSH.join("\n");
    run_line(&peers, &stack, work.path(), &env, &push);
    let outputs = std::fs::read_to_string(&output).unwrap();
    let digest = outputs.trim().strip_prefix("digest=").expect("digest= in GITHUB_OUTPUT").to_string();
    assert!(digest.starts_with("sha256:"), "{outputs}");
    env.insert("DIGEST", digest);
    env.insert("ACTIONS_ID_TOKEN_REQUEST_URL", runner.url());
    env.insert("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-secret".into());
    run_line(&peers, &stack, work.path(), &env, GITHUB_SIGN);
    run_line(&peers, &stack, work.path(), &env, GITHUB_ATTEST);

    // Job `verify`: no id-token, a fresh login.
    env.remove("ACTIONS_ID_TOKEN_REQUEST_URL");
    env.remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
    let verify_dir = tempfile::tempdir().unwrap();
    run_line(&peers, &stack, verify_dir.path(), &env, GITHUB_LOGIN);
    run_line(&peers, &stack, verify_dir.path(), &env, GITHUB_VERIFY);
    // The same verification pinned to another workflow fails (exit 3): the pin means something.
    let other = GITHUB_VERIFY.replace("publish-model.yml", "other.yml");
    let script = format!("set -e\n{WRAPPER}{}", other.replace(GITHUB_ISSUER, &stack.oidc_issuer));
    let mut cmd = peers.command("sh");
    cmd.arg("-c").arg(script).current_dir(verify_dir.path()).envs(&env);
    cmd.env("MS_BIN", env!("CARGO_BIN_EXE_modelsign")).env("MS_TRUSTED_ROOT", &stack.trusted_root_path);
    let out = run_fail(&mut cmd);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));

    // The card attestation is the workflow's too: cosign 3 checks it keyless.
    let pinned = format!("{}@{}", env["MODEL"], env["DIGEST"]);
    let mut cosign = peers.command("cosign3");
    cosign
        .args(["verify-attestation", "--new-bundle-format", "--allow-http-registry"])
        .arg("--trusted-root")
        .arg(&stack.trusted_root_path)
        .args(["--certificate-identity", &Stack::github_identity(workflow)])
        .args(["--certificate-oidc-issuer", &stack.oidc_issuer, "--type", "https://modelsign.dev/model-card/v1"])
        .arg(&pinned);
    run_ok(&mut cosign);
}

#[test]
fn gitlab_recipe_signs_with_sigstore_id_token() {
    let tb = require_testbed!();
    let Some(stack) = sigstore_stack::start(&tb) else { return };
    let registry = Registry::start(RegistryKind::basic("gitlab-ci-token", "job-token"));
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    workspace(work.path());
    // A token shaped like GitLab's `id_tokens` one, from the stack's gitlab-pipeline issuer.
    let pipeline = "gitlab.com/acme/models//.gitlab-ci.yml@refs/heads/main";
    let mut env: BTreeMap<&str, String> = BTreeMap::new();
    env.insert("CI_REGISTRY", registry.addr().to_string());
    env.insert("CI_REGISTRY_USER", "gitlab-ci-token".into());
    env.insert("CI_REGISTRY_PASSWORD", "job-token".into());
    env.insert("CI_PROJECT_PATH", "acme/models".into());
    env.insert("MODEL", format!("{}/acme/models/tiny", registry.addr()));
    env.insert("CI_COMMIT_SHA", "858f4279eb7333d6893b66b7bebab379f09ce75d".into());
    env.insert("SIGSTORE_ID_TOKEN", stack.gitlab_token(pipeline, "sigstore"));
    let script = GITLAB_PUBLISH.join("\n");
    run_line(&peers, &stack, work.path(), &env, &script);
    let dotenv = std::fs::read_to_string(work.path().join("publish.env")).unwrap();
    let digest = dotenv.trim().strip_prefix("DIGEST=").expect("DIGEST= in publish.env");
    env.insert("DIGEST", digest.to_string());

    // Job `verify-model`: no token; the line as the document has it (issuer pointed at the stack).
    env.remove("SIGSTORE_ID_TOKEN");
    let verify_dir = tempfile::tempdir().unwrap();
    run_line(&peers, &stack, verify_dir.path(), &env, GITLAB_PUBLISH[0]);
    run_line(&peers, &stack, verify_dir.path(), &env, GITLAB_VERIFY);
    // Pinned to another project, it fails (exit 3).
    let mut other = env.clone();
    other.insert("CI_PROJECT_PATH", "acme/other".into());
    let script = format!(
        "set -e\n{WRAPPER}{}",
        GITLAB_VERIFY.replace(
            &format!("--certificate-oidc-issuer {GITLAB_ISSUER}"),
            &format!("--certificate-oidc-issuer {}", stack.oidc_gitlab_issuer)
        )
    );
    let mut cmd = peers.command("sh");
    cmd.arg("-c").arg(script).current_dir(verify_dir.path()).envs(&other);
    cmd.env("MS_BIN", env!("CARGO_BIN_EXE_modelsign")).env("MS_TRUSTED_ROOT", &stack.trusted_root_path);
    let out = run_fail(&mut cmd);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_text(&out));
}
