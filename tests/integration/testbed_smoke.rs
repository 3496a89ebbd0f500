//! The test bed itself works: every registry kind starts and answers, auth challenges and the
//! token server behave, oras round-trips a file, the fault proxy injects what it says, and
//! model_signing signs and verifies. When one of these fails, look here before at our code.

use std::time::Duration;

use crate::support::*;

fn www_authenticate(resp: &reqwest::Response) -> String {
    resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn anonymous_registries_answer_v2() {
    let _tb = require_testbed!();
    let client = http_client();
    for kind in RegistryKind::anonymous_kinds() {
        let registry = Registry::start(kind.clone());
        let resp = client.get(format!("{}/v2/", registry.url())).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{kind:?}: {}", registry.log());
        assert_eq!(registry.supports_referrers_api(), kind != RegistryKind::Distribution);
    }
}

#[tokio::test]
async fn basic_auth_registry_challenges_and_accepts_credentials() {
    let _tb = require_testbed!();
    let registry = Registry::start(RegistryKind::basic("alice", "wonderland"));
    let client = http_client();
    let url = format!("{}/v2/", registry.url());
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(www_authenticate(&resp).starts_with("Basic "), "{:?}", www_authenticate(&resp));
    let resp = client.get(&url).basic_auth("alice", Some("wonderland")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", registry.log());
    let resp = client.get(&url).basic_auth("alice", Some("wrong")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn token_registry_and_token_server() {
    let _tb = require_testbed!();
    let registry = Registry::start(RegistryKind::token("bob", "builder"));
    let ts = registry.token_server().expect("token server");
    let client = http_client();
    let v2 = format!("{}/v2/", registry.url());

    let resp = client.get(&v2).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let challenge = www_authenticate(&resp);
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&format!("realm=\"{}\"", ts.realm())), "{challenge}");
    assert!(challenge.contains(&format!("service=\"{TOKEN_SERVICE}\"")), "{challenge}");

    // GET with basic credentials (the Docker token protocol).
    let scope = "repository:smoke/repo:pull,push";
    let token_url = format!("{}?service={TOKEN_SERVICE}&scope={scope}", ts.realm());
    let resp = client.get(&token_url).basic_auth("bob", Some("builder")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = json_body(resp).await;
    let token = body["token"].as_str().expect("token").to_string();
    assert_eq!(body["access_token"].as_str(), Some(token.as_str()));
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert_eq!(token.split('.').count(), 3, "a JWT");

    // distribution accepts the token: /v2/ and a repository the token grants.
    let resp = client.get(&v2).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", registry.log());
    let resp =
        client.get(format!("{}/v2/smoke/repo/tags/list", registry.url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404, "NAME_UNKNOWN, not 401: {}", registry.log());
    // ... but not another repository.
    let resp =
        client.get(format!("{}/v2/other/repo/tags/list", registry.url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // Wrong password and anonymous: 401.
    let resp = client.get(&token_url).basic_auth("bob", Some("nope")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = client.get(&token_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    // OAuth2 POST: password grant returns a refresh token, which works as an identity token.
    let resp = post_form(
        &client,
        &ts.realm(),
        &[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "builder"),
            ("service", TOKEN_SERVICE),
            ("scope", scope),
            ("client_id", "modelsign-tests"),
        ],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let body = json_body(resp).await;
    let refresh = body["refresh_token"].as_str().expect("refresh_token").to_string();
    for refresh_token in [refresh.as_str(), ts.refresh_token()] {
        let resp = post_form(
            &client,
            &ts.realm(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("service", TOKEN_SERVICE),
                ("scope", scope),
            ],
        )
        .await;
        assert_eq!(resp.status().as_u16(), 200);
        let body = json_body(resp).await;
        let token = body["access_token"].as_str().unwrap();
        let resp = client.get(&v2).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let resp = post_form(
        &client,
        &ts.realm(),
        &[("grant_type", "refresh_token"), ("refresh_token", "forged"), ("service", TOKEN_SERVICE)],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 401);
    let resp = post_form(
        &client,
        &ts.realm(),
        &[("grant_type", "password"), ("username", "bob"), ("password", "x"), ("service", TOKEN_SERVICE)],
    )
    .await;
    assert_eq!(resp.status().as_u16(), 401);

    let stats = ts.stats();
    assert_eq!(stats["post_refresh"], 3, "{stats}");
    assert_eq!(stats["denied"], 4, "{stats}");
}

/// oras pushes a file and pulls it back (and skopeo reads the manifest) on a registry kind.
fn oras_round_trip(kind: RegistryKind) {
    let bed = bed!(kind.clone());
    let (registry, peers, work) = (bed.registry(), &bed.peers, bed.path());
    let content = pseudo_random_bytes(100_000, 7);
    std::fs::write(work.join("weights.bin"), &content).unwrap();
    let mut creds = Vec::new();
    if let Some((user, password)) = registry.credentials() {
        creds = vec!["-u".to_string(), user.to_string(), "-p".to_string(), password.to_string()];
    }
    let reference = format!("{}:v1", registry.reference("smoke/model"));
    run_ok(
        peers.oras().current_dir(work).args(["push", "--plain-http"]).args(&creds).arg(&reference).arg("weights.bin"),
    );
    let out = work.join("out");
    run_ok(peers.oras().args(["pull", "--plain-http"]).args(&creds).arg(&reference).arg("-o").arg(&out));
    assert_eq!(std::fs::read(out.join("weights.bin")).unwrap(), content, "{kind:?}");

    let mut skopeo = peers.skopeo();
    skopeo.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some((user, password)) = registry.credentials() {
        skopeo.arg("--creds").arg(format!("{user}:{password}"));
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&run_stdout(skopeo.arg(format!("docker://{reference}")))).unwrap();
    assert_eq!(manifest["layers"][0]["digest"].as_str().unwrap(), sha256_digest(&content));
}

registry_cases! {
    oras_round_trip: [distribution, gcr, cue];
}

#[test]
fn oras_round_trip_basic_auth() {
    oras_round_trip(RegistryKind::basic("carol", "pw-carol"));
}

#[test]
fn oras_round_trip_token_auth() {
    oras_round_trip(RegistryKind::token("dave", "pw-dave"));
}

#[tokio::test]
async fn fault_proxy_passes_through_and_corrupts_or_cuts_blobs() {
    let _tb = require_testbed!();
    let registry = Registry::start(RegistryKind::Distribution);
    let proxy = FaultProxy::start(registry.addr());
    let client = http_client();
    let content = pseudo_random_bytes(300_000, 11);
    // Upload through the proxy: request bodies pass through.
    let (_, _, resp) = push_simple_artifact(&client, &proxy.url(), "smoke/proxy", "v1", &content, None).await;
    assert_eq!(resp.status().as_u16(), 201, "{}", registry.log());
    let digest = sha256_digest(&content);
    let blob_url = format!("{}/v2/smoke/proxy/blobs/{digest}", proxy.url());

    // Pass-through.
    let body = client.get(&blob_url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_digest(&body), digest);
    let resp = client.head(&blob_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-length"], content.len().to_string().as_str());

    // (a) one flipped byte, once.
    proxy.add_fault(Fault::corrupt_blob(&digest).times(1));
    let body = client.get(&blob_url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(body.len(), content.len());
    assert_ne!(sha256_digest(&body), digest);
    assert_eq!(body.iter().zip(&content).filter(|(a, b)| a != b).count(), 1);
    let body = client.get(&blob_url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256_digest(&body), digest, "the fault applied once only");
    assert_eq!(proxy.faults_applied("corrupt"), 1);

    // (b) cut after 1000 bytes: the client sees a short body / error.
    proxy.add_fault(Fault::cut_blob(&digest, 1000).times(1));
    let resp = client.get(&blob_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // reqwest may also report the early close as an error
    if let Ok(body) = resp.bytes().await {
        assert!(body.len() < content.len(), "cut body has {} bytes", body.len());
    }
    // a resumed download with Range passes through
    let resp = client.get(&blob_url).header("Range", "bytes=1000-").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(&resp.bytes().await.unwrap()[..], &content[1000..]);
    assert_eq!(proxy.faults_applied("cut"), 1);
    // manifests are never body-faulted
    proxy.add_fault(Fault::corrupt_any_blob());
    let resp = client
        .get(format!("{}/v2/smoke/proxy/manifests/v1", proxy.url()))
        .header("Accept", MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let manifest = json_body(resp).await;
    assert_eq!(manifest["layers"][0]["digest"], digest.as_str());
    proxy.clear_faults();
    assert!(proxy.count("GET", "/blobs/") >= 5, "{:?}", proxy.requests());
}

#[tokio::test]
async fn fault_proxy_answers_503_and_429_then_passes_through() {
    let _tb = require_testbed!();
    let registry = Registry::start(RegistryKind::Gcr);
    let proxy = FaultProxy::with_faults(
        registry.addr(),
        vec![Fault::unavailable("/manifests/", 2), Fault::too_many_requests("/blobs/uploads/", 1).method("POST")],
    );
    let client = http_client();
    let url = format!("{}/v2/smoke/retry/manifests/v1", proxy.url());
    for _ in 0..2 {
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(resp.headers()["retry-after"], "1");
    }
    assert_eq!(client.get(&url).send().await.unwrap().status().as_u16(), 404, "passes through after 2");

    // a POST with a body, refused with 429 before the body is read
    let resp = client
        .post(format!("{}/v2/smoke/retry/blobs/uploads/", proxy.url()))
        .body(vec![0u8; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let (_, _, resp) = push_simple_artifact(&client, &proxy.url(), "smoke/retry", "v1", b"hello", None).await;
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(client.get(&url).header("Accept", MANIFEST_ACCEPT).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(proxy.faults_applied("status"), 3);
}

#[tokio::test]
async fn fault_proxy_drops_oci_subject() {
    let _tb = require_testbed!();
    let registry = Registry::start(RegistryKind::Cue);
    let proxy = FaultProxy::start(registry.addr());
    let client = http_client();
    let (subject, subject_bytes, resp) =
        push_simple_artifact(&client, &proxy.url(), "smoke/subject", "v1", b"model", None).await;
    assert_eq!(resp.status().as_u16(), 201);
    let size = subject_bytes.len() as u64;

    let (_, _, resp) =
        push_simple_artifact(&client, &proxy.url(), "smoke/subject", "", b"sig-1", Some((&subject, size))).await;
    assert_eq!(resp.status().as_u16(), 201, "{}", registry.log());
    assert_eq!(resp.headers().get("oci-subject").map(|v| v.to_str().unwrap()), Some(subject.as_str()));

    proxy.add_fault(Fault::drop_header("OCI-Subject"));
    let (_, _, resp) =
        push_simple_artifact(&client, &proxy.url(), "smoke/subject", "", b"sig-2", Some((&subject, size))).await;
    assert_eq!(resp.status().as_u16(), 201);
    assert!(resp.headers().get("oci-subject").is_none());
    assert_eq!(proxy.faults_applied("drop-header"), 1);

    // cue-registry fills in artifactType and annotations, and filters by artifactType.
    let index =
        json_body(client.get(format!("{}/v2/smoke/subject/referrers/{subject}", registry.url())).send().await.unwrap())
            .await;
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    for m in manifests {
        assert_eq!(m["artifactType"], "application/vnd.modelsign.test");
        assert_eq!(m["annotations"]["org.opencontainers.image.title"], "test");
    }
    let resp = client
        .get(format!("{}/v2/smoke/subject/referrers/{subject}?artifactType=application/x-other", registry.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["oci-filters-applied"], "artifactType");
    let index = json_body(resp).await;
    assert_eq!(index["manifests"], serde_json::json!([]));
}

#[test]
fn model_signing_signs_and_verifies_with_a_key() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let model = write_tiny_model(work.path(), "tiny-model", 4096);
    let (key, public) = peers.ec_key_pair(work.path(), "signer");
    let sig = work.path().join("model.sig");
    run_ok(
        peers
            .model_signing()
            .args(["sign", "key"])
            .arg(&model)
            .arg("--private_key")
            .arg(&key)
            .arg("--signature")
            .arg(&sig),
    );
    run_ok(
        peers
            .model_signing()
            .args(["verify", "key"])
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--public_key")
            .arg(&public),
    );
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    assert_eq!(bundle["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json");

    std::fs::write(model.join("config.json"), b"{}").unwrap();
    run_fail(
        peers
            .model_signing()
            .args(["verify", "key"])
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--public_key")
            .arg(&public),
    );
}

#[test]
fn cosign_runs() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let out = run_stdout(peers.cosign().arg("version"));
    assert!(out.contains("GitVersion"), "{out}");
}

#[test]
fn registry_start_is_fast() {
    let _tb = require_testbed!();
    let start = std::time::Instant::now();
    let registry = Registry::start(RegistryKind::Distribution);
    drop(registry);
    assert!(start.elapsed() < Duration::from_secs(10), "distribution took {:?}", start.elapsed());
}

#[test]
fn oras_through_the_fault_proxy() {
    let tb = require_testbed!();
    let registry = Registry::start(RegistryKind::Distribution);
    let proxy = FaultProxy::start(registry.addr());
    let peers = Peers::new(&tb);
    let work = tempfile::tempdir().unwrap();
    let content = pseudo_random_bytes(3_000_000, 3);
    std::fs::write(work.path().join("weights.bin"), &content).unwrap();
    let digest = sha256_digest(&content);
    let reference = format!("{}/smoke/oras:v1", proxy.addr());
    run_ok(peers.oras().current_dir(work.path()).args(["push", "--plain-http", &reference, "weights.bin"]));
    assert!(proxy.count("PUT", "/blobs/uploads/") >= 2, "{:?}", proxy.requests());

    let pull = |dir: &str| {
        let mut cmd = peers.oras();
        cmd.args(["pull", "--plain-http", &reference, "-o"]).arg(work.path().join(dir));
        cmd
    };
    proxy.add_fault(Fault::corrupt_blob(&digest));
    let out = run_fail(&mut pull("corrupt"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("digest"), "{}", String::from_utf8_lossy(&out.stderr));
    proxy.clear_faults();

    proxy.add_fault(Fault::cut_blob(&digest, 1_000_000));
    run_fail(&mut pull("cut"));
    proxy.clear_faults();

    run_ok(&mut pull("ok"));
    assert_eq!(std::fs::read(work.path().join("ok/weights.bin")).unwrap(), content);
    assert_eq!(proxy.faults_applied("corrupt"), 1);
    assert!(proxy.faults_applied("cut") >= 1);
}
