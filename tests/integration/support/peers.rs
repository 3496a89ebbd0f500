//! Commands for the peer tools (oras, cosign, skopeo, model_signing) and for our own binary,
//! each with PATH set to the test bed and a private HOME / DOCKER_CONFIG, so no test reads or
//! writes the machine's credentials.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use super::testbed::Testbed;

/// Our binary, `modelsign`, with nothing else set (see [`Peers::modelsign`] for one with the
/// private HOME and DOCKER_CONFIG).
pub fn modelsign() -> Command {
    Command::new(env!("CARGO_BIN_EXE_modelsign"))
}

/// A private home for the tools of one test. Dropping it removes the folder.
pub struct Peers {
    tb: Testbed,
    home: TempDir,
}

impl Peers {
    pub fn new(tb: &Testbed) -> Peers {
        let home = tempfile::Builder::new().prefix("modelsign-home-").tempdir().expect("temp home");
        std::fs::create_dir_all(home.path().join(".docker")).expect("docker config dir");
        std::fs::create_dir_all(home.path().join("tmp")).expect("tmp dir");
        Peers { tb: tb.clone(), home }
    }

    pub fn testbed(&self) -> &Testbed {
        &self.tb
    }

    /// The private HOME.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `$HOME/.docker`, which DOCKER_CONFIG names.
    pub fn docker_config_dir(&self) -> PathBuf {
        self.home.path().join(".docker")
    }

    /// `$HOME/.docker/config.json` (oras, cosign, skopeo (REGISTRY_AUTH_FILE) and modelsign
    /// read it).
    pub fn docker_config_file(&self) -> PathBuf {
        self.docker_config_dir().join("config.json")
    }

    /// Writes `auths.<host>.auth = base64(user:password)` into the private docker config.
    pub fn docker_login(&self, host: &str, user: &str, password: &str) {
        use base64::Engine as _;
        let path = self.docker_config_file();
        let mut config: serde_json::Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        config["auths"][host] = serde_json::json!({ "auth": auth });
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).expect("write docker config");
    }

    /// Writes `auths.<host>.identitytoken = token` (a refresh token, exchanged by OAuth2 POST).
    pub fn docker_identity_token(&self, host: &str, token: &str) {
        let path = self.docker_config_file();
        let mut config: serde_json::Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        config["auths"][host] = serde_json::json!({ "auth": "", "identitytoken": token });
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).expect("write docker config");
    }

    /// Any program (test bed bin first on PATH) with the private environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = self.tb.command(program);
        self.private_env(&mut cmd);
        cmd
    }

    fn private_env(&self, cmd: &mut Command) {
        let home = self.home.path();
        cmd.env("PATH", self.tb.path_env())
            .env("HOME", home)
            .env("DOCKER_CONFIG", self.docker_config_dir())
            .env("REGISTRY_AUTH_FILE", self.docker_config_file())
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_RUNTIME_DIR", home.join("tmp"))
            .env("TUF_ROOT", home.join(".sigstore/root"))
            .env("SIGSTORE_NO_CACHE", "true")
            .env("COSIGN_YES", "true")
            .env("NO_COLOR", "1")
            .env("COSIGN_PASSWORD", "");
    }

    /// `oras` 1.3 (use `--plain-http` for the test registries).
    pub fn oras(&self) -> Command {
        self.command("oras")
    }

    /// `cosign` 2.5 (`COSIGN_PASSWORD` empty, `COSIGN_YES`).
    pub fn cosign(&self) -> Command {
        self.command("cosign")
    }

    /// `skopeo` 1.9 (use `--tls-verify=false` / `--src-tls-verify=false` for the test registries).
    pub fn skopeo(&self) -> Command {
        self.command("skopeo")
    }

    /// OpenSSF `model_signing` 1.1.1.
    pub fn model_signing(&self) -> Command {
        self.command("model_signing")
    }

    /// `openssl` (the system's).
    pub fn openssl(&self) -> Command {
        self.command("openssl")
    }

    /// Our binary with the private HOME and DOCKER_CONFIG.
    pub fn modelsign(&self) -> Command {
        let mut cmd = modelsign();
        self.private_env(&mut cmd);
        cmd
    }

    /// An ECDSA P-256 key pair made by openssl: (PKCS#8 private key PEM, SPKI public key PEM)
    /// as `<dir>/<name>.key` and `<dir>/<name>.pub`. model_signing and cosign take both.
    pub fn ec_key_pair(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let sec1 = dir.join(format!("{name}.sec1.pem"));
        let key = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        run_ok(self.openssl().args(["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out"]).arg(&sec1));
        run_ok(self.openssl().args(["pkcs8", "-topk8", "-nocrypt", "-in"]).arg(&sec1).arg("-out").arg(&key));
        run_ok(self.openssl().args(["ec", "-pubout", "-in"]).arg(&key).arg("-out").arg(&public));
        let _ = std::fs::remove_file(sec1);
        (key, public)
    }
}

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the command (stdin closed); panics with its output unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "command failed: {}", describe(cmd, &out));
    out
}

/// Runs the command (stdin closed); panics with its output if it exits 0.
pub fn run_fail(cmd: &mut Command) -> Output {
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(!out.status.success(), "command should have failed: {}", describe(cmd, &out));
    out
}

/// Runs the command (stdin closed) and returns its stdout as text; panics unless it exits 0.
pub fn run_stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_ok(cmd).stdout).into_owned()
}
