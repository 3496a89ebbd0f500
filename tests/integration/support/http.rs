//! Raw registry HTTP for tests that need to set up or inspect registry content without going
//! through our own client: monolithic blob upload, manifest PUT/GET. Anonymous only.

use super::fixtures::sha256_digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// `Accept` that every test registry (distribution 2.8 too) serves OCI manifests for.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("reqwest client")
}

/// Uploads a blob with POST + PUT `?digest=` (what distribution 2.8 needs); returns its digest.
/// `base` is `http://127.0.0.1:PORT` (a registry's or a proxy's).
pub async fn push_blob(client: &reqwest::Client, base: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256_digest(data);
    let resp = client.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.expect("POST upload");
    assert_eq!(resp.status().as_u16(), 202, "POST upload: {:?}", resp.text().await);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let location = if location.starts_with("http") { location } else { format!("{base}{location}") };
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = client
        .put(format!("{location}{sep}digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .expect("PUT blob");
    assert_eq!(resp.status().as_u16(), 201, "PUT blob: {:?}", resp.text().await);
    digest
}

/// PUTs a manifest under `reference` (tag or digest); returns the response (201 expected).
pub async fn put_manifest(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> reqwest::Response {
    client
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(body.to_vec())
        .send()
        .await
        .expect("PUT manifest")
}

/// Pushes the empty config blob `{}` and a one-layer OCI manifest (optionally with a
/// `subject`) for `layer`; returns (manifest digest, manifest bytes, the PUT response).
pub async fn push_simple_artifact(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    layer: &[u8],
    subject: Option<(&str, u64)>,
) -> (String, Vec<u8>, reqwest::Response) {
    let empty = push_blob(client, base, repo, b"{}").await;
    let layer_digest = push_blob(client, base, repo, layer).await;
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.modelsign.test",
        "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer_digest, "size": layer.len()}],
        "annotations": {"org.opencontainers.image.title": "test"}
    });
    if let Some((digest, size)) = subject {
        manifest["subject"] = serde_json::json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size});
    }
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256_digest(&bytes);
    let reference = if subject.is_some() { digest.clone() } else { tag.to_string() };
    let resp = put_manifest(client, base, repo, &reference, OCI_MANIFEST, &bytes).await;
    (digest, bytes, resp)
}

/// The response body as JSON (reqwest's `json` feature is off); panics with the text if not JSON.
pub async fn json_body(resp: reqwest::Response) -> serde_json::Value {
    let status = resp.status();
    let bytes = resp.bytes().await.expect("response body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// `application/x-www-form-urlencoded` text of the pairs (reqwest's `form` feature is off).
pub fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// POSTs a form.
pub async fn post_form(client: &reqwest::Client, url: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    client
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_urlencoded(pairs))
        .send()
        .await
        .expect("POST form")
}
