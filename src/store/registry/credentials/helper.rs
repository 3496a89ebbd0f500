//! Credential helpers: `docker-credential-<name> get`, the registry's address on stdin,
//! `{"Username","Secret"}` on stdout (`<token>` as user name means an identity token).
//!
//! A helper is a program named by a file: it is not trusted to end or to be brief. Its
//! stdout is read up to 1 MiB (more is refused), the first 64 KiB of its stderr are kept,
//! and it is killed when it has not answered and exited within two minutes (time for a
//! keychain or passphrase prompt).

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Credential, DockerConfig};
use crate::error::{Error, Result};

/// How long a helper may take by default: time to answer a keychain or a passphrase prompt.
pub(super) const TIMEOUT: Duration = Duration::from_secs(120);
/// The most a helper's answer may be (a user name and a secret: a few KiB at most).
const MAX_ANSWER: u64 = 1 << 20;
/// The most of a helper's stderr kept (only its first line is shown).
const MAX_ERRORS: u64 = 64 << 10;

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
        let out = match bounded_output(&mut child, self.helper_timeout) {
            Ok(out) => out,
            Err(failure) => {
                let _ = child.kill();
                let _ = child.wait();
                let why = match failure {
                    Failure::Timeout => format!("no answer within {}s; stopped it", self.helper_timeout.as_secs()),
                    Failure::TooLong => format!("it printed more than {} MiB; stopped it", MAX_ANSWER >> 20),
                    Failure::Io(e) => e.to_string(),
                };
                return Err(Error::Credentials(format!("{program} get for {address}: {why}")));
            }
        };
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

/// What a helper printed and how it ended.
struct HelperOutput {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Why a helper's answer was not taken.
enum Failure {
    Timeout,
    TooLong,
    Io(std::io::Error),
}

/// Reads the child's stdout (at most [`MAX_ANSWER`] bytes) and stderr (the first
/// [`MAX_ERRORS`] bytes) on two threads and waits for its exit, all within `timeout`. The
/// caller kills it on a failure. A reader left blocked by a grandchild that kept a pipe open
/// is not waited for: it ends when the pipe closes.
fn bounded_output(child: &mut Child, timeout: Duration) -> std::result::Result<HelperOutput, Failure> {
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel();
    if let Some(pipe) = child.stdout.take() {
        read_on_a_thread(pipe, MAX_ANSWER + 1, true, tx.clone()).map_err(Failure::Io)?;
    }
    if let Some(pipe) = child.stderr.take() {
        read_on_a_thread(pipe, MAX_ERRORS, false, tx.clone()).map_err(Failure::Io)?;
    }
    drop(tx);
    let (mut stdout, mut stderr) = (None, None);
    while let Ok((is_stdout, read)) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let bytes = read.map_err(Failure::Io)?;
        if is_stdout {
            if bytes.len() as u64 > MAX_ANSWER {
                return Err(Failure::TooLong);
            }
            stdout = Some(bytes);
        } else {
            stderr = Some(bytes);
        }
    }
    // Both pipes were read to their end (the channel closed), or time ran out.
    let (Some(stdout), Some(stderr)) = (stdout, stderr) else { return Err(Failure::Timeout) };
    loop {
        if let Some(status) = child.try_wait().map_err(Failure::Io)? {
            return Ok(HelperOutput { status, stdout, stderr });
        }
        if Instant::now() >= deadline {
            return Err(Failure::Timeout);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a reader thread sends: whether it read stdout, and what it read.
type PipeRead = (bool, std::io::Result<Vec<u8>>);

/// Reads at most `cap` bytes of `pipe` on a thread of its own and sends them. Dropping the
/// pipe at the cap makes a helper that goes on writing fail (SIGPIPE).
fn read_on_a_thread(
    pipe: impl Read + Send + 'static,
    cap: u64,
    is_stdout: bool,
    tx: mpsc::Sender<PipeRead>,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("credential-helper".into()).spawn(move || {
        let mut bytes = Vec::new();
        let read = pipe.take(cap).read_to_end(&mut bytes).map(|_| bytes);
        let _ = tx.send((is_stdout, read));
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::*;

    /// A config naming `docker-credential-test` (the shell `body`) for every registry.
    fn helper_config(dir: &Path, body: &str) -> DockerConfig {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("docker-credential-test");
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.join("config.json");
        std::fs::write(&config, r#"{"credsStore": "test"}"#).unwrap();
        let mut path = OsString::from(dir);
        path.push(":/usr/bin:/bin");
        DockerConfig::at(config).with_helper_path(path)
    }

    #[test]
    fn an_answer_over_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Valid JSON with a 2 MiB secret: read whole, it would be accepted.
        let cfg = helper_config(
            dir.path(),
            "read server; printf '{\"Username\":\"u\",\"Secret\":\"'; head -c 2097152 /dev/zero | tr '\\0' x; printf '\"}'",
        );
        let err = cfg.lookup("reg.example").unwrap_err().to_string();
        assert!(err.contains("docker-credential-test") && err.contains("more than 1 MiB"), "{err}");
        assert!(!err.contains("xxxx"), "{err}");
    }

    #[test]
    fn a_helper_that_never_answers_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        // `sleep` is a child of the shell and keeps its stdout open after the shell is killed.
        let cfg = helper_config(dir.path(), "read server; sleep 30").with_helper_timeout(Duration::from_secs(1));
        let started = Instant::now();
        let err = cfg.lookup("reg.example").unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(10), "waited {:?}", started.elapsed());
        assert!(err.contains("docker-credential-test") && err.contains("no answer within 1s"), "{err}");
    }

    #[test]
    fn a_quick_answer_still_works() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = helper_config(dir.path(), r#"read server; echo "{\"Username\":\"u\",\"Secret\":\"$server\"}""#);
        let c = cfg.lookup("reg.example").unwrap().unwrap();
        assert_eq!(c.basic_header(), Some(format!("Basic {}", BASE64.encode("u:reg.example"))));
    }
}
