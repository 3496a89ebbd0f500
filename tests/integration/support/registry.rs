//! Real registries on loopback, one per test: CNCF distribution 2.8 (plain, htpasswd basic
//! auth, token auth through scripts/token-server.py, or HTTPS with a test CA made by openssl),
//! go-containerregistry's registry and cue-labs' ociserver (both with the referrers API).
//! Killed on drop.
//!
//! Ports: each server here (the registries and the token server) binds `127.0.0.1:0` itself
//! and its log says which port it got ([`parse_listening`]). No port is picked beforehand,
//! so none can be taken by another socket between a pick and the bind: the race
//! `sigstore_stack::free_port` works around for servers that must be told their port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::peers::run_ok;
use super::process::Proc;
use super::testbed::{Testbed, repo_root, testbed_or_panic};

/// The `service` distribution's token auth names (and the token server expects).
pub const TOKEN_SERVICE: &str = "modelsign-test-registry";
/// The token issuer distribution's token auth trusts.
pub const TOKEN_ISSUER: &str = "modelsign-token-server";

const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryKind {
    /// CNCF distribution 2.8 (`docker-registry`), filesystem storage. No referrers API:
    /// clients must use the `sha256-<hex>` tag fallback.
    Distribution,
    /// distribution 2.8 with htpasswd (bcrypt) basic auth.
    DistributionBasicAuth { user: String, password: String },
    /// distribution 2.8 with token auth from scripts/token-server.py (Bearer challenge).
    DistributionToken { user: String, password: String },
    /// distribution 2.8 over HTTPS only, anonymous: a server certificate for `IP:127.0.0.1`
    /// issued by a CA made for this registry ([`Registry::ca_file`]), which nothing else trusts.
    DistributionTls,
    /// distribution 2.8 over HTTPS only with a self-signed certificate for `IP:127.0.0.1`
    /// marked `CA:TRUE`, as `openssl req -x509` makes by default; [`Registry::ca_file`] is
    /// that certificate.
    DistributionSelfSigned,
    /// go-containerregistry `pkg/registry`, in memory, referrers API on (no `OCI-Subject` header).
    Gcr,
    /// cue-labs `ociserver` over `ocimem`, in memory, referrers API with `OCI-Subject`.
    Cue,
}

impl RegistryKind {
    /// Basic auth with the given credentials.
    pub fn basic(user: &str, password: &str) -> Self {
        RegistryKind::DistributionBasicAuth { user: user.into(), password: password.into() }
    }

    /// Token auth with the given credentials.
    pub fn token(user: &str, password: &str) -> Self {
        RegistryKind::DistributionToken { user: user.into(), password: password.into() }
    }

    /// The three anonymous kinds, for tests that run against each.
    pub fn anonymous_kinds() -> [RegistryKind; 3] {
        [RegistryKind::Distribution, RegistryKind::Gcr, RegistryKind::Cue]
    }

    /// The anonymous kind called `name` ([`RegistryKind::name`]), for case lists.
    pub fn named(name: &str) -> RegistryKind {
        RegistryKind::anonymous_kinds()
            .into_iter()
            .find(|k| k.name() == name)
            .unwrap_or_else(|| panic!("no anonymous registry kind is called `{name}`"))
    }

    pub fn supports_referrers_api(&self) -> bool {
        matches!(self, RegistryKind::Gcr | RegistryKind::Cue)
    }

    /// Whether a push of a manifest with a `subject` is answered with an `OCI-Subject` header.
    pub fn sends_oci_subject(&self) -> bool {
        matches!(self, RegistryKind::Cue)
    }

    pub fn is_distribution(&self) -> bool {
        matches!(
            self,
            RegistryKind::Distribution
                | RegistryKind::DistributionBasicAuth { .. }
                | RegistryKind::DistributionToken { .. }
                | RegistryKind::DistributionTls
                | RegistryKind::DistributionSelfSigned
        )
    }

    pub fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            RegistryKind::DistributionBasicAuth { user, password }
            | RegistryKind::DistributionToken { user, password } => Some((user, password)),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            RegistryKind::Distribution => "distribution",
            RegistryKind::DistributionBasicAuth { .. } => "distribution-basic-auth",
            RegistryKind::DistributionToken { .. } => "distribution-token",
            RegistryKind::DistributionTls => "distribution-tls",
            RegistryKind::DistributionSelfSigned => "distribution-self-signed",
            RegistryKind::Gcr => "gcr",
            RegistryKind::Cue => "cue",
        }
    }
}

impl Proc {
    /// Waits for "listening on HOST:PORT" in the log; returns "HOST:PORT".
    fn wait_listening(&mut self, deadline: Instant) -> String {
        loop {
            let log = self.log_text();
            if let Some(addr) = parse_listening(&log) {
                return addr;
            }
            self.check_alive();
            if Instant::now() > deadline {
                panic!("{} did not say where it listens within {START_TIMEOUT:?}; log:\n{log}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The address in the first `listening on 127.0.0.1:PORT` of a log (Go's and distribution's
/// logs, and our token server, all say it that way).
fn parse_listening(log: &str) -> Option<String> {
    let at = log.find("listening on ")? + "listening on ".len();
    let rest = &log[at..];
    let end =
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))).unwrap_or(rest.len());
    let addr = &rest[..end];
    let port = addr.rsplit(':').next()?;
    if port.parse::<u16>().ok()? == 0 {
        return None;
    }
    Some(addr.to_string())
}

/// One blocking HTTP/1.1 GET on loopback: the status code, or None if nothing answered.
pub fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = stream.read(&mut head[got..]).ok()?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let line = std::str::from_utf8(&head[..got]).ok()?;
    line.strip_prefix("HTTP/1.1 ").or_else(|| line.strip_prefix("HTTP/1.0 "))?.get(..3)?.parse().ok()
}

/// One HTTPS GET on loopback, trusting only the CA certificate `ca` (PEM), or any
/// certificate with `None`: the status code, or None if nothing answered (or the certificate
/// was not accepted).
pub fn https_get_status(addr: &str, path: &str, ca: Option<&Path>) -> Option<u16> {
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
    let builder = match ca {
        Some(ca) => builder.tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(ca).ok()?).ok()?]),
        None => builder.tls_danger_accept_invalid_certs(true),
    };
    let url = format!("https://{addr}{path}");
    // On a thread of its own: the caller may be inside a tokio runtime already.
    std::thread::scope(|s| {
        s.spawn(|| {
            super::cli::block_on(async {
                let client = builder.build().expect("reqwest client");
                Some(client.get(&url).send().await.ok()?.status().as_u16())
            })
        })
        .join()
        .expect("HTTPS probe thread")
    })
}

/// Waits until the server answers `GET path` (over HTTPS with `tls`, any certificate: which
/// certificates clients trust is for the tests to check).
fn wait_http(proc: &mut Proc, addr: &str, path: &str, tls: bool, deadline: Instant) {
    loop {
        let status = if tls { https_get_status(addr, path, None) } else { http_get_status(addr, path) };
        if status.is_some() {
            return;
        }
        proc.check_alive();
        if Instant::now() > deadline {
            panic!(
                "{} at {addr} did not answer GET {path} (TLS: {tls}) within {START_TIMEOUT:?}; log:\n{}",
                proc.name,
                proc.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A test CA and a server certificate it issued, as PEM files made by the `openssl` CLI.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate (self-signed, `CA:TRUE`): what clients are told to trust.
    pub ca: PathBuf,
    /// The server certificate (`subjectAltName = IP:127.0.0.1`, `serverAuth`), issued by `ca`.
    pub certificate: PathBuf,
    /// The server's private key (PKCS#8).
    pub key: PathBuf,
}

/// Makes a CA (`ca.pem`) and a server certificate for `IP:127.0.0.1` it issued
/// (`server.pem`, `server.key`) in `dir`, with ECDSA P-256 keys, valid for two days.
pub fn make_tls_files(tb: &Testbed, dir: &Path) -> TlsFiles {
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.pem");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let certificate = dir.join("server.pem");
    let ext = dir.join("server-ext.cnf");
    let genkey = |path: &Path| {
        run_ok(
            tb.command("openssl")
                .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
                .arg(path),
        );
    };
    genkey(&ca_key);
    run_ok(
        tb.command("openssl")
            .args(["req", "-x509", "-new", "-sha256", "-days", "2", "-key"])
            .arg(&ca_key)
            .args(["-subj", "/CN=modelsign test registry CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-out")
            .arg(&ca),
    );
    genkey(&key);
    run_ok(
        tb.command("openssl")
            .args(["req", "-new", "-key"])
            .arg(&key)
            .args(["-subj", "/CN=127.0.0.1", "-out"])
            .arg(&csr),
    );
    std::fs::write(
        &ext,
        "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1\n",
    )
    .expect("write extensions");
    run_ok(
        tb.command("openssl")
            .args(["x509", "-req", "-sha256", "-days", "2", "-set_serial", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&certificate),
    );
    TlsFiles { ca, certificate, key }
}

/// Makes a self-signed certificate for `IP:127.0.0.1` with openssl's default extensions
/// (`CA:TRUE`), as registry set-up guides do: `self-signed.pem` (both `ca` and
/// `certificate`) and `self-signed.key` in `dir`.
pub fn make_self_signed_tls_files(tb: &Testbed, dir: &Path) -> TlsFiles {
    let key = dir.join("self-signed.key");
    let certificate = dir.join("self-signed.pem");
    run_ok(
        tb.command("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
            .arg(&key),
    );
    run_ok(
        tb.command("openssl")
            .args(["req", "-x509", "-new", "-sha256", "-days", "2", "-key"])
            .arg(&key)
            .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-out"])
            .arg(&certificate),
    );
    TlsFiles { ca: certificate.clone(), certificate, key }
}

/// scripts/token-server.py, as started for [`RegistryKind::DistributionToken`].
pub struct TokenServer {
    proc: Proc,
    addr: String,
    refresh_token: String,
}

impl TokenServer {
    /// Starts the token server; `cert_out` receives its certificate (distribution's rootcertbundle).
    pub fn start(tb: &Testbed, dir: &Path, user: &str, password: &str) -> TokenServer {
        let deadline = Instant::now() + START_TIMEOUT;
        let refresh_token = format!("identity-{}", std::process::id());
        let mut cmd = Command::new(tb.python());
        cmd.arg(repo_root().join("scripts/token-server.py"))
            .arg("--cert-out")
            .arg(dir.join("token-cert.pem"))
            .args(["--user", user, "--password", password])
            .args(["--issuer", TOKEN_ISSUER, "--service", TOKEN_SERVICE])
            .args(["--refresh-token", &refresh_token]);
        let mut proc = Proc::spawn("token-server.py", cmd, dir.join("token-server.log"));
        let addr = proc.wait_listening(deadline);
        TokenServer { proc, addr, refresh_token }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://ADDR/token`, the realm in the registry's Bearer challenge.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// A refresh token the server accepts for the configured user (an "identity token").
    pub fn refresh_token(&self) -> &str {
        &self.refresh_token
    }

    /// The server's counters: `{"get","post_password","post_refresh","issued","denied"}`.
    pub fn stats(&self) -> serde_json::Value {
        let mut stream = TcpStream::connect(&self.addr).expect("connect token server");
        write!(stream, "GET /stats HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read stats");
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("bad /stats answer {text:?}: {e}"))
    }

    pub fn log(&self) -> String {
        self.proc.log_text()
    }
}

/// A running registry on `127.0.0.1:<port>`, stopped (with its token server) on drop.
pub struct Registry {
    kind: RegistryKind,
    addr: String,
    // Drop order: the registry before its token server, then the temp dir.
    proc: Proc,
    token_server: Option<TokenServer>,
    storage: Option<PathBuf>,
    tls: Option<TlsFiles>,
    dir: TempDir,
}

impl Registry {
    /// Starts a registry of `kind` (the test bed must be installed: call `require_testbed!()`
    /// first). Returns once `GET /v2/` answers.
    pub fn start(kind: RegistryKind) -> Registry {
        Registry::start_in(&testbed_or_panic(), kind)
    }

    pub fn start_in(tb: &Testbed, kind: RegistryKind) -> Registry {
        let dir = tempfile::Builder::new().prefix(&format!("modelsign-{}-", kind.name())).tempdir().expect("temp dir");
        let deadline = Instant::now() + START_TIMEOUT;
        let mut token_server = None;
        let mut storage = None;
        let mut tls = None;
        let mut proc = match &kind {
            RegistryKind::Gcr | RegistryKind::Cue => {
                let program = if kind == RegistryKind::Gcr { "gcr-registry" } else { "cue-registry" };
                let mut cmd = Command::new(tb.bin_dir().join(program));
                cmd.args(["-addr", "127.0.0.1:0"]);
                Proc::spawn(program, cmd, dir.path().join("registry.log"))
            }
            _ => {
                let data = dir.path().join("storage");
                std::fs::create_dir_all(&data).expect("storage dir");
                let auth = match &kind {
                    RegistryKind::DistributionBasicAuth { user, password } => {
                        let htpasswd = dir.path().join("htpasswd");
                        let out = tb.command("htpasswd").args(["-Bbn", user, password]).output().expect("run htpasswd");
                        assert!(out.status.success(), "htpasswd: {}", String::from_utf8_lossy(&out.stderr));
                        std::fs::write(&htpasswd, &out.stdout).expect("write htpasswd");
                        format!("auth:\n  htpasswd:\n    realm: modelsign-test\n    path: {}\n", htpasswd.display())
                    }
                    RegistryKind::DistributionToken { user, password } => {
                        let ts = TokenServer::start(tb, dir.path(), user, password);
                        let auth = format!(
                            "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                            ts.realm(),
                            dir.path().join("token-cert.pem").display()
                        );
                        token_server = Some(ts);
                        auth
                    }
                    _ => String::new(),
                };
                let files = match kind {
                    RegistryKind::DistributionTls => Some(make_tls_files(tb, dir.path())),
                    RegistryKind::DistributionSelfSigned => Some(make_self_signed_tls_files(tb, dir.path())),
                    _ => None,
                };
                let tls_config = if let Some(files) = files {
                    let config = format!(
                        "  tls:\n    certificate: {}\n    key: {}\n",
                        files.certificate.display(),
                        files.key.display()
                    );
                    tls = Some(files);
                    config
                } else {
                    String::new()
                };
                let config = format!(
                    "version: 0.1\n\
                     log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
                     maintenance:\n    uploadpurging:\n      enabled: false\n\
                     http:\n  addr: 127.0.0.1:0\n  secret: modelsign-test-secret\n{tls_config}\
                     health:\n  storagedriver:\n    enabled: false\n\
                     {auth}",
                    data.display()
                );
                let config_path = dir.path().join("config.yml");
                std::fs::write(&config_path, config).expect("write registry config");
                storage = Some(data);
                let mut cmd = tb.command("docker-registry");
                cmd.arg("serve").arg(&config_path);
                Proc::spawn("docker-registry", cmd, dir.path().join("registry.log"))
            }
        };
        let addr = proc.wait_listening(deadline);
        wait_http(&mut proc, &addr, "/v2/", tls.is_some(), deadline);
        Registry { kind, addr, proc, token_server, storage, tls, dir }
    }

    pub fn kind(&self) -> &RegistryKind {
        &self.kind
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` for [`RegistryKind::DistributionTls`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA certificate (PEM) that issued the registry's TLS certificate, if it has one.
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// `127.0.0.1:PORT/<repo>` (append `:tag` or `@digest`).
    pub fn reference(&self, repo: &str) -> String {
        format!("{}/{repo}", self.addr)
    }

    pub fn supports_referrers_api(&self) -> bool {
        self.kind.supports_referrers_api()
    }

    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.kind.credentials()
    }

    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }

    /// distribution's filesystem storage root (`docker/registry/v2/blobs/sha256/xx/<hex>/data`),
    /// for tests that damage what the registry stores.
    pub fn storage_dir(&self) -> Option<&Path> {
        self.storage.as_deref()
    }

    /// The on-disk file of a blob in distribution's storage.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        Some(self.storage_dir()?.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2])))
    }

    /// A temp dir that lives as long as the registry.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's log (and the token server's), for assertion messages.
    pub fn log(&self) -> String {
        let mut log = self.proc.log_text();
        if let Some(ts) = &self.token_server {
            log.push_str("\n--- token server ---\n");
            log.push_str(&ts.log());
        }
        log
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("kind", &self.kind).field("addr", &self.addr).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_listening;

    #[test]
    fn parses_listening_lines() {
        assert_eq!(parse_listening("listening on 127.0.0.1:4321\n").as_deref(), Some("127.0.0.1:4321"));
        assert_eq!(
            parse_listening("time=\"x\" level=info msg=\"listening on 127.0.0.1:38369\" go.version=go1.19").as_deref(),
            Some("127.0.0.1:38369")
        );
        assert_eq!(parse_listening("listening on 127.0.0.1:0"), None);
        assert_eq!(parse_listening("starting"), None);
    }
}
