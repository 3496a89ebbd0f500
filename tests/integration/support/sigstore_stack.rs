//! A real local Sigstore stack on loopback for the keyless tests (issue 7): an OIDC issuer
//! (scripts/oidc-issuer.py), Fulcio with an ephemeral CA, a certificate-transparency log (Trillian
//! in memory + CTFE, testdata/sigstore-stack/ct-log) so certificates carry SCTs, Rekor v2
//! (rekor-tiles, POSIX storage) and the RFC 3161 timestamp authority, each built by
//! scripts/testbed.sh from Debian sid's Go sources; plus the `trusted_root.json` and
//! `signing_config.v0.2.json` that point at them.
//!
//! ```ignore
//! let tb = require_testbed!();
//! let Some(stack) = sigstore_stack::start(&tb) else { return }; // skipped loudly, see start()
//! let token = stack.github_token(sigstore_stack::DEFAULT_WORKFLOW, "sigstore");
//! // sign with --identity-token token --signing-config stack.signing_config_path, verify with
//! // --trusted-root stack.trusted_root_path --certificate-identity stack.github_identity(..)
//! // --certificate-oidc-issuer stack.oidc_issuer
//! ```
//!
//! Everything is killed when the [`Stack`] is dropped; each test gets its own stack, keys and
//! ports.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::http::form_urlencoded;
use super::peers::run_ok;
use super::process::Proc;
use super::testbed::{REQUIRE_ENV, Testbed, repo_root};

/// What scripts/testbed.sh puts in `<testbed>/bin` for the stack (`cosign3` is sid's cosign 3).
pub const BINARIES: [&str; 5] = ["fulcio", "ct-log", "rekor-tiles-server", "timestamp-server", "cosign3"];

/// The `job_workflow_ref` of [`Stack::github_token`]'s usual caller: a release workflow.
pub const DEFAULT_WORKFLOW: &str = "modelsign-test/models/.github/workflows/release.yml@refs/heads/main";

/// The `validFor.start` of every authority in the trusted root the stack writes.
const VALID_FROM: &str = "2020-01-01T00:00:00Z";

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running stack. URLs are `http://127.0.0.1:PORT` without a trailing slash.
pub struct Stack {
    /// Fulcio (REST `/api/v2/signingCert`, `/api/v2/trustBundle`; gRPC on the same port).
    pub fulcio_url: String,
    /// The CT log Fulcio submits precertificates to: `http://127.0.0.1:PORT/test` (RFC 6962 API
    /// under it: `/ct/v1/get-sth`, …).
    pub ct_log_url: String,
    /// Rekor v2 (`POST /api/v2/log/entries`). Its checkpoint origin is `127.0.0.1`.
    pub rekor_url: String,
    /// The timestamp authority's base URL (certificate chain at `/api/v1/timestamp/certchain`).
    pub tsa_url: String,
    /// Where RFC 3161 requests go: `{tsa_url}/api/v1/timestamp`.
    pub tsa_timestamp_url: String,
    /// The GitHub-Actions-like issuer (`iss` of [`Stack::github_token`]); Fulcio trusts it as a
    /// `github-workflow` issuer.
    pub oidc_issuer: String,
    /// The email issuer (`iss` of [`Stack::token`]): `{oidc_issuer}/email`, a Fulcio `email` issuer.
    pub oidc_email_issuer: String,
    /// The GitLab-CI-like issuer (`iss` of [`Stack::gitlab_token`]): `{oidc_issuer}/gitlab`, a
    /// Fulcio `gitlab-pipeline` issuer.
    pub oidc_gitlab_issuer: String,
    /// Sigstore trusted root v0.1: Fulcio's CA chain, the CT log's key and log ID, the Rekor key
    /// and log ID, the TSA chain.
    pub trusted_root_path: PathBuf,
    /// Sigstore signing config v0.2: Fulcio (v1 API), Rekor (v2 API), the TSA, and the GitHub-like
    /// issuer as the OIDC provider (sigstore-python refuses a config without one).
    pub signing_config_path: PathBuf,
    /// Both in one ClientTrustConfig v0.1 (`model_signing … --trust_config`, sigstore-python).
    pub trust_config_path: PathBuf,
    /// The Rekor log's public key (PEM).
    pub rekor_public_key_path: PathBuf,
    trusted_root: Value,
    oidc_addr: String,
    procs: Vec<Proc>,
    dir: TempDir,
}

/// Starts the stack, or returns `None` (after printing `*** SKIPPED …`) when the test bed has
/// no stack binaries; with `MODELSIGN_REQUIRE_TESTBED=1` a missing binary is a panic instead.
pub fn start(tb: &Testbed) -> Option<Stack> {
    if let Some(missing) = BINARIES.iter().find(|b| !tb.bin_dir().join(b).is_file()) {
        let why = format!(
            "{} is missing (scripts/testbed.sh builds the Sigstore stack)",
            tb.bin_dir().join(missing).display()
        );
        let test = super::testbed::current_test_name();
        if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v == "true") {
            panic!("{test} needs the local Sigstore stack and {REQUIRE_ENV}=1: {why}");
        }
        let _ = writeln!(std::io::stderr().lock(), "*** SKIPPED: {test} needs the local Sigstore stack: {why} ***");
        return None;
    }
    Some(Stack::start(tb))
}

impl Stack {
    fn start(tb: &Testbed) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let deadline = Instant::now() + START_TIMEOUT;
        let mut procs = Vec::new();

        // 1. The OIDC issuer: it says where it listens.
        let mut oidc = Command::new(tb.python());
        oidc.arg(repo_root().join("scripts/oidc-issuer.py")).args(["--addr", "127.0.0.1:0"]);
        let mut oidc = Proc::spawn("oidc-issuer", oidc, dir.path().join("oidc-issuer.log"));
        let oidc_issuer = oidc.wait_for_line("listening on ", deadline);
        let oidc_addr = oidc_issuer.trim_start_matches("http://").to_string();
        let oidc_email_issuer = format!("{oidc_issuer}/email");
        let oidc_gitlab_issuer = format!("{oidc_issuer}/gitlab");
        procs.push(oidc);

        // 2. Fulcio: ephemeral CA, both issuers trusted, gRPC and HTTP on one port, precertificates
        //    to the CT log started below (on a port named now: Fulcio only calls it when signing).
        let fulcio_config = dir.path().join("fulcio-config.json");
        let config = json!({"OIDCIssuers": {
            &oidc_issuer: {"IssuerURL": &oidc_issuer, "ClientID": "sigstore", "Type": "github-workflow"},
            &oidc_email_issuer: {"IssuerURL": &oidc_email_issuer, "ClientID": "sigstore", "Type": "email"},
            &oidc_gitlab_issuer: {"IssuerURL": &oidc_gitlab_issuer, "ClientID": "sigstore", "Type": "gitlab-pipeline"},
        }});
        std::fs::write(&fulcio_config, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let fulcio_port = free_port().to_string();
        let ct_addr = format!("127.0.0.1:{}", free_port());
        let ct_log_url = format!("http://{ct_addr}/test");
        let ct_key = dir.path().join("ct-key.der");
        let ct_public_pem = dir.path().join("ct-pub.pem");
        let genpkey = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-outform", "DER", "-out"];
        run_ok(tb.command("openssl").args(genpkey).arg(&ct_key));
        let pubout = ["pkey", "-inform", "DER", "-pubout", "-in"];
        run_ok(tb.command("openssl").args(pubout).arg(&ct_key).arg("-out").arg(&ct_public_pem));
        let ct_spki = run_ok(tb.command("openssl").args(pubout).arg(&ct_key).args(["-outform", "DER"])).stdout;
        let mut fulcio = tb.command("fulcio");
        fulcio
            .args(["serve", "--ca", "ephemeralca", "--log_type", "dev", "--ct-log-url", &ct_log_url])
            .arg("--ct-log-public-key-path")
            .arg(&ct_public_pem)
            .arg("--config-path")
            .arg(&fulcio_config)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &fulcio_port,
                "--grpc-host",
                "127.0.0.1",
                "--grpc-port",
                &fulcio_port,
            ])
            .current_dir(dir.path());
        let fulcio_addr = format!("127.0.0.1:{fulcio_port}");
        procs.push(Proc::spawn("fulcio", fulcio, dir.path().join("fulcio.log")));

        // 3. The timestamp authority, with an in-memory signer and its own certificate chain.
        let tsa_port = free_port().to_string();
        let mut tsa = tb.command("timestamp-server");
        tsa.args(["serve", "--host", "127.0.0.1", "--port", &tsa_port, "--disable-ntp-monitoring"])
            .args(["--timestamp-signer", "memory"])
            .current_dir(dir.path());
        let tsa_addr = format!("127.0.0.1:{tsa_port}");
        procs.push(Proc::spawn("timestamp-server", tsa, dir.path().join("timestamp-server.log")));

        // 4. Rekor v2 with a P-256 log key made here and tiles on disk.
        let rekor_key = dir.path().join("rekor-key.pem");
        let rekor_public_key_path = dir.path().join("rekor-pub.pem");
        run_ok(
            tb.command("openssl")
                .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
                .arg(&rekor_key),
        );
        run_ok(
            tb.command("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&rekor_key)
                .arg("-out")
                .arg(&rekor_public_key_path),
        );
        let rekor_spki =
            run_ok(tb.command("openssl").args(["pkey", "-pubout", "-outform", "DER", "-in"]).arg(&rekor_key)).stdout;
        let tiles = dir.path().join("rekor-tiles");
        std::fs::create_dir(&tiles).unwrap();
        let (http_port, grpc_port, metrics_port) = (free_port(), free_port(), free_port());
        let mut rekor = tb.command("rekor-tiles-server");
        rekor
            .args(["serve", "--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1", "--hostname", "127.0.0.1"])
            .args(["--http-port", &http_port.to_string(), "--grpc-port", &grpc_port.to_string()])
            .args(["--http-metrics-port", &metrics_port.to_string(), "--checkpoint-interval", "1s"])
            .arg("--signer-filepath")
            .arg(&rekor_key)
            .arg("--storage-dir")
            .arg(&tiles)
            .current_dir(dir.path());
        let rekor_addr = format!("127.0.0.1:{http_port}");
        procs.push(Proc::spawn("rekor-tiles-server", rekor, dir.path().join("rekor.log")));

        // Wait until each answers (a dead process fails at once with its log).
        for (i, (addr, path)) in [
            (1, (&fulcio_addr, "/api/v2/trustBundle")),
            (2, (&tsa_addr, "/api/v1/timestamp/certchain")),
            (3, (&rekor_addr, "/healthz")),
        ] {
            procs[i].wait_http_ok(addr, path, deadline);
        }

        let fulcio_url = format!("http://{fulcio_addr}");
        let tsa_url = format!("http://{tsa_addr}");
        let rekor_url = format!("http://{rekor_addr}");

        // Fulcio's CA chain: for the CT log and the trusted root.
        let bundle: Value =
            serde_json::from_str(&http_get_ok(&fulcio_addr, "/api/v2/trustBundle")).expect("Fulcio trust bundle JSON");
        let ca_pems: String = bundle["chains"][0]["certificates"]
            .as_array()
            .expect("Fulcio trust bundle: chains[0].certificates")
            .iter()
            .map(|c| c.as_str().expect("PEM string").to_string())
            .collect();

        // 5. The CT log, accepting chains to Fulcio's CA (known only now that Fulcio runs).
        let ct_roots = dir.path().join("ct-roots.pem");
        std::fs::write(&ct_roots, &ca_pems).unwrap();
        let mut ct = tb.command("ct-log");
        ct.args(["-addr", &ct_addr, "-prefix", "test", "-roots"]).arg(&ct_roots).arg("-key").arg(&ct_key);
        let mut ct = Proc::spawn("ct-log", ct, dir.path().join("ct-log.log"));
        ct.wait_http_ok(&ct_addr, "/test/ct/v1/get-sth", deadline);
        procs.push(ct);

        let tsa_pems = http_get_ok(&tsa_addr, "/api/v1/timestamp/certchain");
        let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
        let chain = |pems: &str| -> Value {
            let certs: Vec<Value> = pem::parse_many(pems)
                .expect("PEM certificates")
                .iter()
                .map(|p| json!({"rawBytes": b64(p.contents())}))
                .collect();
            assert!(!certs.is_empty(), "no certificates in {pems:?}");
            json!({"certificates": certs})
        };
        use sha2::Digest as _;
        let trusted_root = json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [{
                "baseUrl": &rekor_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(&rekor_spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": VALID_FROM}},
                "logId": {"keyId": b64(&sha2::Sha256::digest(&rekor_spki))},
            }],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore", "commonName": "sigstore"},
                "uri": &fulcio_url,
                "certChain": chain(&ca_pems),
                "validFor": {"start": VALID_FROM},
            }],
            "ctlogs": [{
                "baseUrl": &ct_log_url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(&ct_spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": VALID_FROM}},
                "logId": {"keyId": b64(&sha2::Sha256::digest(&ct_spki))},
            }],
            "timestampAuthorities": [{
                "subject": {"organization": "local", "commonName": "Test TSA"},
                "uri": &tsa_url,
                "certChain": chain(&tsa_pems),
                "validFor": {"start": VALID_FROM},
            }],
        });
        let trusted_root_path = dir.path().join("trusted_root.json");
        std::fs::write(&trusted_root_path, serde_json::to_vec_pretty(&trusted_root).unwrap()).unwrap();

        let tsa_timestamp_url = format!("{tsa_url}/api/v1/timestamp");
        let service = |url: &str, version: u32| json!({"url": url, "majorApiVersion": version, "validFor": {"start": VALID_FROM}, "operator": "modelsign-test"});
        let signing_config = json!({
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [service(&fulcio_url, 1)],
            "oidcUrls": [service(&oidc_issuer, 1)],
            "rekorTlogUrls": [service(&rekor_url, 2)],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaUrls": [service(&tsa_timestamp_url, 1)],
            "tsaConfig": {"selector": "ANY"},
        });
        let signing_config_path = dir.path().join("signing_config.v0.2.json");
        std::fs::write(&signing_config_path, serde_json::to_vec_pretty(&signing_config).unwrap()).unwrap();
        let trust_config = json!({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": &trusted_root,
            "signingConfig": &signing_config,
        });
        let trust_config_path = dir.path().join("trust_config.json");
        std::fs::write(&trust_config_path, serde_json::to_vec_pretty(&trust_config).unwrap()).unwrap();

        Stack {
            fulcio_url,
            ct_log_url,
            rekor_url,
            tsa_url,
            tsa_timestamp_url,
            oidc_issuer,
            oidc_email_issuer,
            oidc_gitlab_issuer,
            trusted_root_path,
            signing_config_path,
            trust_config_path,
            rekor_public_key_path,
            trusted_root,
            oidc_addr,
            procs,
            dir,
        }
    }

    /// A token shaped like the one GitHub Actions gives a job with `id-token: write`, for the
    /// workflow `job_workflow_ref` (`OWNER/REPO/.github/workflows/W.yml@REF`): `iss` is
    /// [`Stack::oidc_issuer`], `sub` `repo:OWNER/REPO:ref:REF`, plus `job_workflow_ref`,
    /// `repository`, `ref`, `sha`, `workflow_ref`, `event_name`, `run_id`, … Fulcio certifies
    /// it as [`Stack::github_identity`]`(job_workflow_ref)`. Valid for 10 minutes.
    pub fn github_token(&self, job_workflow_ref: &str, aud: &str) -> String {
        self.token_with("/token", &[("job_workflow_ref", job_workflow_ref), ("aud", aud)])
    }

    /// A token shaped like the one GitLab CI gives a job through `id_tokens`, for the pipeline
    /// definition `ci_config_ref_uri` (`gitlab.com/GROUP/PROJECT//.gitlab-ci.yml@refs/heads/REF`):
    /// `iss` is [`Stack::oidc_gitlab_issuer`]. Fulcio certifies it as
    /// [`Stack::gitlab_identity`]`(ci_config_ref_uri)`. Valid for 10 minutes.
    pub fn gitlab_token(&self, ci_config_ref_uri: &str, aud: &str) -> String {
        self.token_with("/gitlab/token", &[("ci_config_ref_uri", ci_config_ref_uri), ("aud", aud)])
    }

    /// The certificate identity (SAN URI) Fulcio gives a GitLab pipeline.
    pub fn gitlab_identity(ci_config_ref_uri: &str) -> String {
        format!("https://{ci_config_ref_uri}")
    }

    /// A plain token from the email issuer ([`Stack::oidc_email_issuer`]): `sub` and a verified
    /// `email` are both `sub`, which Fulcio certifies as the identity.
    pub fn token(&self, sub: &str, aud: &str) -> String {
        self.token_with("/email/token", &[("sub", sub), ("aud", aud)])
    }

    /// Any token the issuer mints: `path` is `/token` or `/email/token`, `query` what
    /// scripts/oidc-issuer.py takes (`exp_in=-60` for an expired one, `iss=…`, `kind=plain`, …).
    pub fn token_with(&self, path: &str, query: &[(&str, &str)]) -> String {
        let body = http_get_ok(&self.oidc_addr, &format!("{path}?{}", form_urlencoded(query)));
        body.trim().to_string()
    }

    /// The certificate identity (SAN URI) Fulcio gives a GitHub workflow: what
    /// `--certificate-identity` pins.
    pub fn github_identity(job_workflow_ref: &str) -> String {
        format!("https://github.com/{job_workflow_ref}")
    }

    /// The trusted root as JSON, for tests that write a changed copy (an expired CA, …).
    pub fn trusted_root(&self) -> &Value {
        &self.trusted_root
    }

    /// A scratch folder that lives as long as the stack.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Every server's log so far, for a failing test's message.
    pub fn logs(&self) -> String {
        self.procs.iter().map(|p| format!("--- {} ---\n{}\n", p.name, p.log_text())).collect()
    }
}

/// A port that was free a moment ago (the servers that need one named up front get it),
/// picked at random **below the kernel's ephemeral range**: ports from `bind(:0)` and from
/// outgoing connections (the other tests' registries and clients) come from that range and
/// could take a port named here before its server binds it ("address already in use").
fn free_port() -> u16 {
    use std::hash::BuildHasher;
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let start = low.saturating_sub(12_000).max(1024);
    let span = u64::from(low.saturating_sub(start).max(1));
    let random = std::collections::hash_map::RandomState::new();
    for i in 0..500u64 {
        let port = start + (random.hash_one(i) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// One blocking HTTP/1.1 GET on loopback; panics unless the answer is 200. Returns the body.
fn http_get_ok(addr: &str, path: &str) -> String {
    let (status, body) = http_get(addr, path).unwrap_or_else(|| panic!("GET http://{addr}{path}: no answer"));
    assert_eq!(status, 200, "GET http://{addr}{path}: {status}: {body}");
    body
}

fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.get(9..12)?.parse().ok()?;
    // Chunked bodies (Go sends them for large answers without a length) are reassembled.
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

impl Proc {
    /// Waits for a log line starting with `prefix`; returns the rest of that line.
    fn wait_for_line(&mut self, prefix: &str, deadline: Instant) -> String {
        loop {
            if let Some(rest) = self.log_text().lines().find_map(|l| l.strip_prefix(prefix).map(str::to_string)) {
                return rest.trim().to_string();
            }
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "{} did not print {prefix:?} in time; log:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `GET path` answers 200.
    fn wait_http_ok(&mut self, addr: &str, path: &str, deadline: Instant) {
        loop {
            if matches!(http_get(addr, path), Some((200, _))) {
                return;
            }
            self.check_alive();
            assert!(
                Instant::now() < deadline,
                "{} at {addr} did not answer GET {path} with 200 in time; log:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
