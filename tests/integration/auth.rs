//! Registries that need credentials, through the CLI: distribution with htpasswd basic auth
//! and with token auth (our token server). Credentials from docker's `config.json`
//! (`DOCKER_CONFIG`), `modelsign login`/`logout`, wrong passwords, identity tokens (OAuth2
//! refresh-token exchange) and a `credHelpers` entry with a fake `docker-credential-<name>`.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

const USER: &str = "alice";
const PASSWORD: &str = "wonderland-7";
const REPO: &str = "private/tiny";

fn ms(peers: &Peers) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "--no-progress"]);
    cmd
}

/// What the case lists below run on: distribution with `basic` (htpasswd) or `token` auth
/// (our token server), both knowing [`USER`] and [`PASSWORD`].
struct Auth(RegistryKind);

impl CaseKind for Auth {
    fn named(name: &str) -> Auth {
        Auth(match name {
            "basic" => RegistryKind::basic(USER, PASSWORD),
            "token" => RegistryKind::token(USER, PASSWORD),
            other => panic!("no auth registry kind is called `{other}`"),
        })
    }
}

/// The registry really wants credentials: an anonymous `GET /v2/` is refused.
fn assert_needs_auth(reg: &Registry) {
    let (status, _) = http_get(&format!("{}/v2/", reg.url()), "application/json");
    assert_eq!(status, 401, "{:?} answers anonymous requests", reg.kind());
}

/// Pushes `model` and pulls it back into `out`; checks the bytes.
fn push_and_pull(peers: &Peers, reg: &Registry, model: &Path, out: &Path) -> String {
    let reference = format!("{}/{REPO}:v1", reg.addr());
    let digest = run_stdout(ms(peers).args(["push", &reference]).arg(model)).trim().to_string();
    run_ok(ms(peers).args(["pull", &reference, "-o"]).arg(out));
    assert_eq!(files_under(out), files_under(model), "{:?}", reg.kind());
    digest
}

fn docker_config(peers: &Peers) -> Value {
    std::fs::read(peers.docker_config_file())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}))
}

/// The one error line of a refused command: exit 1, names the registry and the scope, and
/// never the password.
fn assert_refused(output: &std::process::Output, reg: &Registry, scope: &str) -> String {
    assert_eq!(output.status.code(), Some(1), "{:?}: {}", reg.kind(), stderr_text(output));
    let line = one_error_line(output);
    assert!(line.contains(reg.addr()) && line.contains(scope), "{:?}: wants registry and {scope}: {line}", reg.kind());
    assert!(!line.contains(PASSWORD) && !line.contains("wrong-password"), "a password leaked: {line}");
    line
}

fn credentials_from_docker_config(Auth(kind): Auth) {
    let bed = bed!(kind.clone());
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    assert_needs_auth(reg);
    let model = write_tiny_model(tmp, "tiny", 50_000);

    // Without credentials: refused, and the message says where it looked.
    let reference = format!("{}/{REPO}:v1", reg.addr());
    let line = assert_refused(&run_fail(ms(peers).args(["push", &reference]).arg(&model)), reg, REPO);
    assert!(line.contains("no credentials"), "{line}");

    peers.docker_login(reg.addr(), USER, PASSWORD);
    push_and_pull(peers, reg, &model, &tmp.join("out"));
    if let Some(ts) = reg.token_server() {
        assert!(ts.stats()["issued"].as_u64().unwrap() >= 1, "{}", ts.stats());
    }
}

fn login_then_push_and_logout_then_push_fails(Auth(kind): Auth) {
    let bed = bed!(kind.clone());
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 20_000);

    // A wrong password is checked before anything is stored.
    let bad =
        run_with_stdin(ms(peers).args(["login", reg.addr(), "-u", USER, "--password-stdin"]), b"wrong-password\n");
    assert_eq!(bad.status.code(), Some(1), "{kind:?}: {}", stderr_text(&bad));
    let line = one_error_line(&bad);
    assert!(line.contains(reg.addr()) && !line.contains("wrong-password"), "{line}");
    assert!(docker_config(peers)["auths"].get(reg.addr()).is_none(), "{kind:?}: stored refused credentials");

    let good = run_with_stdin(
        ms(peers).args(["login", reg.addr(), "-u", USER, "--password-stdin"]),
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(good.status.success(), "{kind:?}: login: {}", stderr_text(&good));
    assert!(docker_config(peers)["auths"].get(reg.addr()).is_some(), "{kind:?}: {}", docker_config(peers));
    let mode = std::fs::metadata(peers.docker_config_file()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "config.json holds a password");
    push_and_pull(peers, reg, &model, &tmp.join("out"));
    // oras reads what modelsign login wrote (docker's format).
    let tags = run_stdout(peers.oras().args(["repo", "tags", "--plain-http", &format!("{}/{REPO}", reg.addr())]));
    assert_eq!(tags.trim(), "v1", "{kind:?}");

    run_ok(ms(peers).args(["logout", reg.addr()]));
    assert!(docker_config(peers)["auths"].get(reg.addr()).is_none(), "{kind:?}: {}", docker_config(peers));
    let out = run_fail(ms(peers).args(["push", &format!("{}/{REPO}:v2", reg.addr())]).arg(&model));
    let line = assert_refused(&out, reg, &format!("repository:{REPO}:"));
    assert!(line.contains("no credentials") && line.contains("modelsign login"), "{line}");
}

fn a_wrong_password_is_one_line_naming_registry_and_scope(Auth(kind): Auth) {
    let bed = bed!(kind.clone());
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 1_000);
    peers.docker_login(reg.addr(), USER, PASSWORD);
    run_ok(ms(peers).args(["push", &format!("{}/{REPO}:v1", reg.addr())]).arg(&model));

    peers.docker_login(reg.addr(), USER, "wrong-password");
    let reference = format!("{}/{REPO}:v1", reg.addr());
    let out_dir = tmp.join("out");
    let pull = run_fail(ms(peers).args(["pull", &reference, "-o"]).arg(&out_dir));
    let line = assert_refused(&pull, reg, &format!("repository:{REPO}:pull"));
    assert!(line.contains("refused"), "{line}");
    assert!(!out_dir.exists(), "a refused pull created its folder");
    // A push's first request (does the blob exist?) asks for pull.
    let push = run_fail(ms(peers).args(["push", &format!("{}/{REPO}:v2", reg.addr())]).arg(&model));
    assert_refused(&push, reg, &format!("repository:{REPO}:pull"));
}

#[test]
fn an_identity_token_is_exchanged_for_access_tokens() {
    let tb = require_testbed!();
    let reg = Registry::start(RegistryKind::token(USER, PASSWORD));
    let ts = reg.token_server().expect("token server");
    let peers = Peers::new(&tb);
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 30_000);

    peers.docker_identity_token(reg.addr(), ts.refresh_token());
    let before = ts.stats();
    push_and_pull(&peers, &reg, &model, &tmp.path().join("out"));
    let after = ts.stats();
    let grew = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert!(grew("post_refresh") >= 1, "the refresh-token grant was used: {before} → {after}");
    assert_eq!(grew("post_password"), 0, "no password grant: {after}");

    // A refresh token the server does not know: refused, in one line.
    peers.docker_identity_token(reg.addr(), "not-the-refresh-token");
    let out =
        run_fail(ms(&peers).args(["pull", &format!("{}/{REPO}:v1", reg.addr()), "-o"]).arg(tmp.path().join("o2")));
    let line = assert_refused(&out, &reg, &format!("repository:{REPO}:pull"));
    assert!(!line.contains("not-the-refresh-token"), "the token leaked: {line}");
}

fn a_cred_helper_on_path_supplies_the_credentials(Auth(kind): Auth) {
    let bed = bed!(kind.clone());
    let (reg, peers, tmp, tb) = (bed.registry(), &bed.peers, bed.path(), bed.testbed());
    let bin = tmp.join(format!("bin-{}", kind.name()));
    std::fs::create_dir_all(&bin).unwrap();
    let asked = tmp.join(format!("asked-{}.log", kind.name()));
    let helper = bin.join("docker-credential-fake");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n\
             [ \"$1\" = get ] || exit 1\n\
             read -r server\n\
             echo \"$server\" >> '{}'\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}\\n' \"$server\"\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Only the helper knows the password: no `auths` entry.
    std::fs::write(peers.docker_config_file(), json!({ "credHelpers": { reg.addr(): "fake" } }).to_string()).unwrap();
    let mut path = OsString::from(&bin);
    path.push(":");
    path.push(tb.path_env());

    let model = write_tiny_model(tmp, &format!("tiny-{}", kind.name()), 10_000);
    let reference = format!("{}/{REPO}:v1", reg.addr());
    run_ok(ms(peers).env("PATH", &path).args(["push", &reference]).arg(&model));
    let out = tmp.join(format!("out-{}", kind.name()));
    run_ok(ms(peers).env("PATH", &path).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(files_under(&out), files_under(&model), "{kind:?}");
    let log = std::fs::read_to_string(&asked).unwrap_or_default();
    assert!(log.lines().count() >= 1 && log.lines().all(|l| l.contains(reg.addr())), "{kind:?}: helper asked {log:?}");

    // Without the helper on PATH: a one-line error naming it (a named helper must exist).
    let out = run_fail(ms(peers).args(["pull", &reference, "-o"]).arg(tmp.join("o-missing")));
    assert_eq!(out.status.code(), Some(1));
    let line = one_error_line(&out);
    assert!(line.contains("docker-credential-fake"), "{kind:?}: {line}");
}

registry_cases! {
    credentials_from_docker_config: [basic, token];
    login_then_push_and_logout_then_push_fails: [basic, token];
    a_wrong_password_is_one_line_naming_registry_and_scope: [basic, token];
    a_cred_helper_on_path_supplies_the_credentials: [basic, token];
}
