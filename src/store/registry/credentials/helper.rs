//! Credential helpers: `docker-credential-<name> get`, the registry's address on stdin,
//! `{"Username","Secret"}` on stdout (`<token>` as user name means an identity token).

use std::io::Write;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::{Credential, DockerConfig};
use crate::error::{Error, Result};

impl DockerConfig {
    /// Runs `docker-credential-<helper> get` with `address` on stdin. A helper that is not
    /// installed is an error when the registry names it (`credHelpers`), and means "no
    /// credentials" for the default `credsStore` (configs copied from Docker Desktop).
    pub(super) fn run_helper(&self, helper: &str, address: &str, required: bool) -> Result<Option<Credential>> {
        let program = format!("docker-credential-{helper}");
        let mut cmd = Command::new(&program);
        cmd.arg("get").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(p) = &self.helper_path {
            cmd.env("PATH", p);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
            Err(e) => {
                return Err(Error::Credentials(format!(
                    "cannot run {program} (named in {}): {e}",
                    self.path.display()
                )));
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading gives a broken pipe: its exit status tells.
            let _ = stdin.write_all(address.as_bytes());
        }
        let out = child.wait_with_output().map_err(|e| Error::Credentials(format!("{program} get: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            if stdout.contains("credentials not found") {
                return Ok(None);
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = [stdout.trim(), stderr.trim()]
                .iter()
                .find(|s| !s.is_empty())
                .map(|s| s.lines().next().unwrap_or(""))
                .unwrap_or("");
            return Err(Error::Credentials(format!("{program} get for {address} failed ({}): {why}", out.status)));
        }
        #[derive(Deserialize)]
        struct HelperAnswer {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
            .map_err(|e| Error::Credentials(format!("{program} get for {address}: unreadable answer: {e}")))?;
        if answer.secret.is_empty() {
            return Ok(None);
        }
        let source = format!("credential helper {program}");
        Ok(Some(if answer.username == "<token>" {
            Credential::identity_token(answer.secret, source)
        } else {
            Credential::basic(answer.username, answer.secret, source)
        }))
    }
}
