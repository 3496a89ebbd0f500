//! Registries over HTTPS with a certificate from a private CA (distribution 2.8 with
//! `http.tls`, [`RegistryKind::DistributionTls`]): `--ca-file` makes push, pull, sign and verify
//! work and oras (given the same CA) reads what was pushed; without it, or with another CA,
//! the first request fails with one line that names the certificate problem and the flags;
//! `--insecure` works and says so once; a bad `--ca-file` is one line naming the file.
//! A self-signed `CA:TRUE` server certificate (openssl's default) given as `--ca-file` is
//! trusted for its own name only, as oras does.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;

/// modelsign with the private environment and no progress bars (HTTPS: no `--plain-http`).
fn ms(peers: &Peers) -> Command {
    let mut cmd = peers.modelsign();
    cmd.arg("--no-progress");
    cmd
}

/// `ms` trusting the registry's CA.
fn ms_trusting(peers: &Peers, reg: &Registry) -> Command {
    let mut cmd = ms(peers);
    cmd.arg("--ca-file").arg(reg.ca_file().expect("a TLS registry"));
    cmd
}

/// Lines of stderr that start with `warning:`.
fn warnings(out: &Output) -> Vec<String> {
    stderr_text(out).lines().filter(|l| l.starts_with("warning:")).map(str::to_string).collect()
}

/// Asserts a failed run (exit 1) whose one error line is a certificate problem with the hint.
fn assert_certificate_error(out: &Output, reg: &Registry) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr_text(out));
    let line = one_error_line(out);
    assert!(line.contains(reg.addr()), "{line}");
    assert!(line.contains("TLS certificate problem: invalid peer certificate"), "{line}");
    assert!(line.contains("--ca-file") && line.contains("--insecure"), "{line}");
}

#[test]
fn push_pull_sign_and_verify_over_https_with_ca_file() {
    let bed = bed!(RegistryKind::DistributionTls);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 300_000);
    let files = files_under(&model);
    let reference = format!("{}/tls/tiny:v1", reg.addr());

    // The registry speaks HTTPS only, with a certificate for IP:127.0.0.1 from its own CA.
    assert_eq!(https_get_status(reg.addr(), "/v2/", reg.ca_file()), Some(200), "{}", reg.log());
    // (Go answers plain HTTP with a 400 and closes; the reset may swallow the answer.)
    assert_ne!(http_get_status(reg.addr(), "/v2/"), Some(200), "plain HTTP should not be served");
    assert!(reg.url().starts_with("https://"));

    let push = run_ok(ms_trusting(peers, reg).args(["push", &reference]).arg(&model));
    let digest = String::from_utf8_lossy(&push.stdout).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(warnings(&push).is_empty(), "{}", stderr_text(&push));

    let out = tmp.join("pulled");
    run_ok(ms_trusting(peers, reg).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(files_under(&out), files, "pulled other names or bytes over HTTPS");

    // The signing flow reads and writes referrers (distribution: the fallback tag) over HTTPS.
    let (key, public) = keygen(tmp, "signer", "p256");
    run_ok(ms_trusting(peers, reg).args(["sign", &reference, "--key"]).arg(&key));
    let verified = run_ok(
        ms_trusting(peers, reg).args(["verify", &reference, "--component", "config.json", "--key"]).arg(&public),
    );
    assert!(verified.status.success(), "{}", stderr_text(&verified));

    // oras, trusting the same CA, reads what modelsign pushed: same names, same bytes.
    let oras_out = tmp.join("oras-out");
    run_ok(
        peers
            .oras()
            .args(["pull", "--ca-file"])
            .arg(reg.ca_file().unwrap())
            .arg("-o")
            .arg(&oras_out)
            .arg(format!("{}/tls/tiny@{digest}", reg.addr())),
    );
    assert_eq!(files_under(&oras_out), files, "oras pulled other names or bytes");
}

#[test]
fn an_untrusted_certificate_fails_with_one_line_and_a_hint() {
    let bed = bed!(RegistryKind::DistributionTls);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let tb = bed.testbed();
    let model = write_tiny_model(tmp, "tiny", 10_000);
    let reference = format!("{}/tls/tiny:v1", reg.addr());

    // No CA given: the system's roots do not know this one.
    let out = run_fail(ms(peers).args(["push", &reference]).arg(&model));
    assert_certificate_error(&out, reg);
    assert!(one_error_line(&out).contains("UnknownIssuer"), "{}", stderr_text(&out));

    // Another CA (same name, other key) is not this registry's.
    let other = tmp.join("other-ca");
    std::fs::create_dir_all(&other).unwrap();
    let other = make_tls_files(tb, &other);
    let out = run_fail(ms(peers).arg("--ca-file").arg(&other.ca).args(["pull", &reference, "-o"]).arg(tmp.join("o")));
    assert_certificate_error(&out, reg);

    // login goes through the same trust; several --ca-file, one of them right, is enough.
    let login = |extra: &[&Path]| {
        let mut cmd = ms(peers);
        for ca in extra {
            cmd.arg("--ca-file").arg(ca);
        }
        cmd.args(["login", reg.addr(), "-u", "alice", "--password-stdin"]);
        run_with_stdin(&mut cmd, b"wonderland\n")
    };
    assert_certificate_error(&login(&[]), reg);
    let ok = login(&[&other.ca, reg.ca_file().unwrap()]);
    assert!(ok.status.success(), "{}", stderr_text(&ok));
}

#[test]
fn insecure_accepts_any_certificate_and_warns_once() {
    let bed = bed!(RegistryKind::DistributionTls);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 100_000);
    let reference = format!("{}/tls/tiny:v1", reg.addr());

    let push = run_ok(ms(peers).args(["--insecure", "push", &reference]).arg(&model));
    let warned = warnings(&push);
    assert_eq!(warned.len(), 1, "{}", stderr_text(&push));
    assert!(warned[0].contains("--insecure") && warned[0].contains("not verified"), "{}", warned[0]);

    // After the subcommand too (a global flag); copy opens two targets, still one warning.
    let out = tmp.join("pulled");
    let pull = run_ok(ms(peers).args(["pull", &reference, "-o"]).arg(&out).arg("--insecure"));
    assert_eq!(warnings(&pull).len(), 1, "{}", stderr_text(&pull));
    assert_eq!(files_under(&out), files_under(&model));
    let copy = run_ok(ms(peers).args(["copy", "--insecure", &reference, &format!("{}/tls/copy:v1", reg.addr())]));
    assert_eq!(warnings(&copy).len(), 1, "{}", stderr_text(&copy));

    // Without the flag the same registry is refused.
    assert_certificate_error(&run_fail(ms(peers).args(["inspect", &reference])), reg);
}

#[test]
fn a_bad_ca_file_is_one_line_naming_the_file() {
    let bed = bed!(RegistryKind::DistributionTls);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 10_000);
    let reference = format!("{}/tls/tiny:v1", reg.addr());

    let missing = tmp.join("no-such-ca.pem");
    let garbage = tmp.join("garbage.pem");
    std::fs::write(&garbage, pseudo_random_bytes(3000, 42)).unwrap();
    let key_only = tmp.join("key-only.pem");
    std::fs::copy(reg.scratch_dir().join("server.key"), &key_only).unwrap();
    let broken = tmp.join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    let not_x509 = tmp.join("not-x509.pem");
    std::fs::write(&not_x509, "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n").unwrap();

    for (file, needle) in [
        (&missing, "No such file"),
        (&garbage, "no PEM certificate"),
        (&key_only, "no PEM certificate"),
        (&broken, "-----END CERTIFICATE-----"),
        (&not_x509, "certificate 1"),
    ] {
        // A bad file fails even next to a good one.
        let out = run_fail(
            ms(peers)
                .arg("--ca-file")
                .arg(reg.ca_file().unwrap())
                .arg("--ca-file")
                .arg(file)
                .args(["push", &reference])
                .arg(&model),
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr_text(&out));
        let line = one_error_line(&out);
        assert!(line.contains(&file.display().to_string()) && line.contains(needle), "{}: {line}", file.display());
        assert!(line.starts_with("error: CA file "), "{line}");
    }
}

#[test]
fn a_self_signed_certificate_given_as_ca_file_is_trusted_for_its_name() {
    let bed = bed!(RegistryKind::DistributionSelfSigned);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = write_tiny_model(tmp, "tiny", 50_000);
    let reference = format!("{}/tls/self:v1", reg.addr());

    // webpki alone refuses it (a CA certificate as a server's); the message says so.
    let out = run_fail(ms(peers).args(["push", &reference]).arg(&model));
    assert_certificate_error(&out, reg);
    assert!(one_error_line(&out).contains("CaUsedAsEndEntity"), "{}", stderr_text(&out));

    let push = run_ok(ms_trusting(peers, reg).args(["push", &reference]).arg(&model));
    let digest = String::from_utf8_lossy(&push.stdout).trim().to_string();
    let out = tmp.join("pulled");
    run_ok(ms_trusting(peers, reg).args(["pull", &reference, "-o"]).arg(&out));
    assert_eq!(files_under(&out), files_under(&model));

    // oras (Go's verifier) accepts the same file for the same registry.
    let oras_out = tmp.join("oras-out");
    run_ok(
        peers
            .oras()
            .args(["pull", "--ca-file"])
            .arg(reg.ca_file().unwrap())
            .arg("-o")
            .arg(&oras_out)
            .arg(format!("{}/tls/self@{digest}", reg.addr())),
    );
    assert_eq!(files_under(&oras_out), files_under(&model));

    // The certificate names IP:127.0.0.1 only: reached as `localhost` it is refused.
    let port = reg.addr().rsplit(':').next().unwrap();
    let out = run_fail(ms_trusting(peers, reg).args(["inspect", &format!("localhost:{port}/tls/self:v1")]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr_text(&out));
    let line = one_error_line(&out);
    assert!(line.contains("TLS certificate problem") && line.contains("NotValidForName"), "{line}");
}
