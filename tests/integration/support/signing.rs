//! Helpers for the signing tests (`signing_registry.rs`, `signing_attacks.rs`): trust
//! material made with the real `openssl`, `cosign` and our `keygen`; the offline `cosign
//! verify-attestation` command; and library access to a target (registry or layout) to
//! craft what an attacker would push: edited manifests, re-pointed referrers, forged
//! bundles, garbage referrers.

use std::path::{Path, PathBuf};
use std::process::Output;

use modelsign::digest::Digest;
use modelsign::oci::{self, Descriptor, Manifest};
use modelsign::reference::{Location, Reference};
use modelsign::store::registry::Registry as RegistryTarget;
use modelsign::store::registry::credentials::DockerConfig;
use modelsign::store::{BlobSource, Target, TargetOptions};
use serde_json::Value;

use super::peers::{Peers, run_ok};

/// Predicate type of modelsign's manifest statement.
pub const MANIFEST_PREDICATE: &str = "https://modelsign.dev/oci-manifest/v1";
/// Predicate type of an OMS v1.0 statement.
pub const OMS_PREDICATE: &str = "https://model_signing/signature/v1.0";
/// Media type of a Sigstore bundle v0.3.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A key pair from `modelsign keygen -o DIR/NAME --algorithm ALG`: (private, public).
pub fn keygen(dir: &Path, name: &str, algorithm: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    run_ok(super::peers::modelsign().args(["keygen", "--algorithm", algorithm, "-o"]).arg(&prefix));
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// An EC key pair from `openssl genpkey` on `curve` (`P-256`, `P-384`, `P-521`): (PKCS#8, SPKI).
pub fn openssl_ec_key(peers: &Peers, dir: &Path, name: &str, curve: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    run_ok(
        peers
            .openssl()
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
            .arg(format!("ec_paramgen_curve:{curve}"))
            .arg("-out")
            .arg(&key),
    );
    run_ok(peers.openssl().args(["pkey", "-pubout", "-in"]).arg(&key).arg("-out").arg(&public));
    (key, public)
}

/// A key pair from `cosign generate-key-pair` (encrypted with `COSIGN_PASSWORD`, which the
/// caller must pass again to `cosign attest`): (cosign.key, cosign.pub).
pub fn cosign_key_pair(peers: &Peers, dir: &Path, password: &str) -> (PathBuf, PathBuf) {
    run_ok(peers.cosign().current_dir(dir).env("COSIGN_PASSWORD", password).args([
        "generate-key-pair",
        "--output-key-prefix",
        "cosign",
    ]));
    (dir.join("cosign.key"), dir.join("cosign.pub"))
}

/// A root CA, an intermediate CA and a signing leaf (keyUsage digitalSignature, extended key
/// usage codeSigning), made with the `openssl` CLI. Paths of PEM files.
#[derive(Debug, Clone)]
pub struct CertificateChain {
    pub root: PathBuf,
    pub intermediate: PathBuf,
    pub leaf: PathBuf,
    pub leaf_key: PathBuf,
}

/// Makes a [`CertificateChain`] under `dir/name-*`; `cn` prefixes the subjects.
pub fn make_certificate_chain(peers: &Peers, dir: &Path, name: &str) -> CertificateChain {
    let file = |part: &str| dir.join(format!("{name}-{part}"));
    let ext = file("ext.cnf");
    std::fs::write(
        &ext,
        "[ca]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n\
         [leaf]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = codeSigning\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    let genkey = |part: &str| {
        let key = file(&format!("{part}.key"));
        run_ok(
            peers
                .openssl()
                .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
                .arg(&key),
        );
        key
    };
    let root_key = genkey("root");
    let root = file("root.pem");
    run_ok(
        peers
            .openssl()
            .args(["req", "-x509", "-new", "-sha256", "-days", "3650", "-key"])
            .arg(&root_key)
            .args(["-subj", &format!("/CN={name} test root")])
            .args([
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
            ])
            .arg(&root),
    );
    let issue = |part: &str, subject: &str, ca: &Path, ca_key: &Path, extensions: &str, serial: &str| {
        let key = genkey(part);
        let csr = file(&format!("{part}.csr"));
        let pem = file(&format!("{part}.pem"));
        run_ok(peers.openssl().args(["req", "-new", "-key"]).arg(&key).args(["-subj", subject, "-out"]).arg(&csr));
        run_ok(
            peers
                .openssl()
                .args(["x509", "-req", "-sha256", "-days", "3650", "-set_serial", serial, "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(ca)
                .arg("-CAkey")
                .arg(ca_key)
                .arg("-extfile")
                .arg(&ext)
                .args(["-extensions", extensions, "-out"])
                .arg(&pem),
        );
        (pem, key)
    };
    let (intermediate, intermediate_key) =
        issue("intermediate", &format!("/CN={name} test intermediate"), &root, &root_key, "ca", "2");
    let (leaf, leaf_key) =
        issue("leaf", &format!("/CN={name} test signer"), &intermediate, &intermediate_key, "leaf", "3");
    CertificateChain { root, intermediate, leaf, leaf_key }
}

/// An empty Sigstore trusted root: with it, `cosign verify-attestation --key` checks a
/// bundle fully offline.
pub fn empty_trusted_root(dir: &Path) -> PathBuf {
    let path = dir.join("empty-trusted-root.json");
    std::fs::write(
        &path,
        r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[],"certificateAuthorities":[],"ctlogs":[],"timestampAuthorities":[]}"#,
    )
    .unwrap();
    path
}

/// `cosign verify-attestation --new-bundle-format --key PUB --insecure-ignore-tlog
/// --trusted-root ROOT --type TYPE --allow-http-registry REFERENCE`. cosign refuses a
/// one-letter repository name ("could not parse reference"): use two letters or more.
pub fn cosign_verify_attestation(
    peers: &Peers,
    trusted_root: &Path,
    public: &Path,
    predicate_type: &str,
    reference: &str,
) -> std::process::Command {
    let mut cmd = peers.cosign();
    cmd.args(["verify-attestation", "--new-bundle-format", "--insecure-ignore-tlog", "--allow-http-registry", "--key"])
        .arg(public)
        .arg("--trusted-root")
        .arg(trusted_root)
        .args(["--type", predicate_type, reference]);
    cmd
}

/// The stderr of a failed command, checked to be exactly one `error: …` line, and its exit code.
pub fn one_line_error(out: &Output) -> (Option<i32>, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one error line, got:\n{stderr}\n--- stdout ---\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    (out.status.code(), lines[0].to_string())
}

/// Asserts that a command failed with exit code 3 ("did not verify") and one error line
/// containing every needle; returns that line.
pub fn assert_untrusted(out: &Output, needles: &[&str]) -> String {
    let (code, line) = one_line_error(out);
    assert_eq!(code, Some(3), "exit code 3 expected: {line}\n--- stdout ---\n{}", String::from_utf8_lossy(&out.stdout));
    for needle in needles {
        assert!(
            line.contains(needle),
            "`{needle}` not in the error line: {line}\n--- stdout ---\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    eprintln!("as expected: {line}");
    line
}

// ----- library access to targets, for crafting --------------------------------------

/// Opens a reference's target through the library: a registry over plain HTTP reading no
/// credentials (never the machine's), or a layout folder.
pub async fn open_target(reference: &str) -> Target {
    let parsed: Reference = reference.parse().unwrap_or_else(|e| panic!("{reference}: {e}"));
    match &parsed.location {
        Location::Registry { registry, repository } => {
            let options = TargetOptions { plain_http: true, ..TargetOptions::default() };
            let mut r = RegistryTarget::new(registry, repository, &options).expect("registry target");
            r.set_docker_config(DockerConfig::at("/nonexistent/modelsign-test/config.json"));
            Target::Registry(r)
        }
        Location::Layout { .. } => Target::open(&parsed, &TargetOptions::default(), false).await.expect("open layout"),
    }
}

/// A manifest (by tag or digest) as its descriptor and JSON.
pub async fn manifest_json(target: &Target, selector: &str) -> (Descriptor, Value) {
    let (desc, bytes) =
        target.fetch_manifest(selector).await.unwrap_or_else(|e| panic!("fetch manifest {selector}: {e}"));
    (desc, serde_json::from_slice(&bytes).expect("manifest JSON"))
}

/// Stores an image manifest (optionally tagged); returns its descriptor.
pub async fn put_manifest_json(target: &Target, manifest: &Value, tag: Option<&str>) -> Descriptor {
    let bytes = serde_json::to_vec(manifest).unwrap();
    target.push_manifest(&bytes, oci::MEDIA_TYPE_IMAGE_MANIFEST, tag).await.expect("push manifest").descriptor
}

/// A small blob's bytes.
pub async fn blob_bytes(target: &Target, desc: &Descriptor) -> Vec<u8> {
    target.fetch_small_blob(desc, 64 << 20).await.unwrap_or_else(|e| panic!("fetch blob {}: {e}", desc.digest))
}

/// Stores bytes as a blob; returns its descriptor (media type `application/octet-stream`).
pub async fn put_blob(target: &Target, bytes: &[u8]) -> Descriptor {
    let desc = Descriptor::of_bytes("application/octet-stream", bytes);
    if !target.blob_exists(&desc).await.unwrap() {
        target.push_blob(&desc, &BlobSource::Bytes(bytes), &modelsign::progress::NoProgress).await.expect("push blob");
    }
    desc
}

/// Every referrer of `subject`, fetched: (descriptor, manifest JSON).
pub async fn referrer_manifests(target: &Target, subject: &Descriptor) -> Vec<(Descriptor, Value)> {
    let mut out = Vec::new();
    for entry in target.referrers(subject).await.expect("referrers") {
        out.push(manifest_json(target, &entry.digest.to_string()).await);
    }
    out
}

/// The bundle a (cosign-style) signature referrer carries in its first layer.
pub async fn referrer_bundle(target: &Target, referrer: &Value) -> Vec<u8> {
    let layer: Descriptor = serde_json::from_value(referrer["layers"][0].clone()).expect("layer descriptor");
    blob_bytes(target, &layer).await
}

/// Pushes a referrer manifest given as JSON (its `subject` set), through the referrers
/// API or the fallback tag as the target needs.
pub async fn push_referrer_json(target: &Target, referrer: &Value) -> Descriptor {
    let bytes = serde_json::to_vec(referrer).unwrap();
    let manifest = Manifest::parse(&bytes, "crafted referrer").expect("referrer parses");
    target.push_referrer(&bytes, &manifest).await.expect("push referrer")
}

/// Copies every referrer of `from` to `to`: same manifests, `subject` re-pointed (the
/// blobs must already be in the target). Returns the new referrers.
pub async fn repoint_referrers(
    target: &Target,
    from: &Descriptor,
    to: &Descriptor,
    keep: impl Fn(&Value) -> bool,
) -> Vec<Descriptor> {
    let mut out = Vec::new();
    for (_, mut referrer) in referrer_manifests(target, from).await {
        if !keep(&referrer) {
            continue;
        }
        referrer["subject"] = serde_json::to_value(to.plain()).unwrap();
        out.push(push_referrer_json(target, &referrer).await);
    }
    assert!(!out.is_empty(), "no referrer of {} was copied", from.digest);
    out
}

/// Whether a referrer carries a bundle of this predicate type (the cosign annotation).
pub fn has_predicate(referrer: &Value, predicate_type: &str) -> bool {
    referrer["annotations"]["dev.sigstore.bundle.predicateType"] == predicate_type
}

/// Attaches `bundle` to `subject` as a cosign-style bundle referrer.
pub async fn attach_bundle(target: &Target, subject: &Descriptor, bundle: &[u8], predicate_type: &str) -> Descriptor {
    modelsign::ops::sign::attach_bundle(target, subject, bundle, predicate_type).await.expect("attach bundle")
}

/// Attaches a referrer whose single layer has `media_type` and `bytes`; when `push_blob` is
/// false the layer blob is never stored (a dangling digest). Returns the referrer.
pub async fn attach_raw_referrer(
    target: &Target,
    subject: &Descriptor,
    artifact_type: &str,
    media_type: &str,
    bytes: &[u8],
    push_blob: bool,
) -> Descriptor {
    put_blob(target, oci::EMPTY_JSON).await;
    let layer = Descriptor::of_bytes(media_type, bytes);
    if push_blob {
        target
            .push_blob(&layer, &BlobSource::Bytes(bytes), &modelsign::progress::NoProgress)
            .await
            .expect("push layer");
    }
    let mut manifest = Manifest::new(
        Some(artifact_type.to_string()),
        Descriptor::of_bytes(oci::MEDIA_TYPE_EMPTY, oci::EMPTY_JSON),
        vec![layer],
    );
    manifest.subject = Some(subject.plain());
    let bytes = manifest.to_bytes();
    target.push_referrer(&bytes, &manifest).await.expect("push referrer")
}

/// The DSSE payload of a bundle, decoded.
pub fn bundle_payload(bundle: &[u8]) -> Value {
    use base64::Engine as _;
    let v: Value = serde_json::from_slice(bundle).expect("bundle JSON");
    let payload =
        base64::engine::general_purpose::STANDARD.decode(v["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&payload).expect("statement JSON")
}

/// `bundle` with its DSSE payload replaced by `other`'s (the signature, key hint and
/// certificates stay): a valid signature over a different payload.
pub fn swap_payload(bundle: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bundle).unwrap();
    let o: Value = serde_json::from_slice(other).unwrap();
    v["dsseEnvelope"]["payload"] = o["dsseEnvelope"]["payload"].clone();
    serde_json::to_vec(&v).unwrap()
}

/// The digest of a file's bytes as our library spells it.
pub fn file_digest(path: &Path) -> Digest {
    Digest::of(&std::fs::read(path).unwrap())
}
