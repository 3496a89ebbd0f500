//! The transport through the CLI against each real registry kind (distribution 2.8 without a
//! referrers API, go-containerregistry and cue-labs with one): push, inspect, pull one
//! component then the rest into the same folder, re-push, attach and discover (through the
//! fallback tag or the API, checked on the wire), copy within a registry (mounted or skipped,
//! nothing streamed), and registry → `oci:` layout → another registry kind, referrers kept.
//! Also: two `attach` processes racing on distribution's fallback index.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

use crate::support::*;

const ARTIFACT_TYPE: &str = "application/vnd.cncf.model.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.cncf.model.config.v1+json";
const REVIEW: &str = "application/vnd.example.review.v1";
const COUNTERSIGN: &str = "application/vnd.example.countersign.v1";
/// `SOURCE_DATE_EPOCH` for reproducible pushes, and the `createdAt` it gives.
const EPOCH: &str = "1700000000";
const EPOCH_RFC3339: &str = "2023-11-14T22:13:20Z";
const WEIGHTS: usize = 300_000;

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|c| c[key].as_str().unwrap_or_else(|| panic!("no {key} in {c}")).to_string())
        .collect()
}

/// The manifest `reference` (tag or digest) of `repo`, straight from the registry.
fn raw_manifest(reg: &Registry, repo: &str, reference: &str) -> (u16, Vec<u8>) {
    http_get(&format!("{}/v2/{repo}/manifests/{reference}", reg.url()), MANIFEST_ACCEPT)
}

/// Checks on the wire that the registry lists `referrer` as a referrer of `subject` in
/// `repo`: through `GET /v2/<repo>/referrers/<digest>` where the registry has the API (and
/// then no fallback tag was written), else in the index tagged `sha256-<hex>`.
fn assert_listed_on_the_wire(reg: &Registry, repo: &str, subject: &str, referrer: &str) {
    let (tag_status, tag_body) = raw_manifest(reg, repo, &format!("sha256-{}", hex(subject)));
    if reg.supports_referrers_api() {
        let (status, body) = http_get(&format!("{}/v2/{repo}/referrers/{subject}", reg.url()), OCI_INDEX);
        assert_eq!(status, 200, "{:?}: referrers API: {}", reg.kind(), String::from_utf8_lossy(&body));
        let listed = index_digests(&body);
        assert!(listed.contains(&referrer.to_string()), "{:?}: API lists {listed:?}, not {referrer}", reg.kind());
        assert_eq!(tag_status, 404, "{:?}: the API is there, yet a fallback tag was written", reg.kind());
    } else {
        assert_eq!(tag_status, 200, "{:?}: no fallback tag: {}", reg.kind(), String::from_utf8_lossy(&tag_body));
        let index: Value = serde_json::from_slice(&tag_body).unwrap();
        assert_eq!(index["mediaType"], OCI_INDEX, "{index}");
        let listed = index_digests(&tag_body);
        assert!(listed.contains(&referrer.to_string()), "fallback index lists {listed:?}, not {referrer}");
        let entry = index["manifests"].as_array().unwrap().iter().find(|e| e["digest"] == referrer).unwrap();
        assert_eq!(entry["mediaType"], OCI_MANIFEST, "{entry}");
    }
    // The referrer itself names the subject.
    let (status, body) = raw_manifest(reg, repo, referrer);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(sha256_digest(&body), referrer);
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["subject"]["digest"], subject, "{manifest}");
}

/// Pulls everything `reference` names into a fresh folder and checks it holds exactly `files`.
fn assert_pulls_identical(bed: &Bed, reference: &str, out: &Path, files: &BTreeMap<String, Vec<u8>>) {
    let report = stdout_json(&run_ok(bed.ms().args(["pull", reference, "--format", "json", "-o"]).arg(out)));
    assert!(report["components"].as_array().unwrap().iter().all(|c| c["downloaded"] == true), "{report}");
    assert_eq!(&files_under(out), files, "{reference}: pulled files differ from the model's");
}

/// The registry kind a round trip from `kind` ends in, through a layout folder: each kind is
/// the source once and the destination once.
fn then_to(kind: &RegistryKind) -> RegistryKind {
    match kind {
        RegistryKind::Distribution => RegistryKind::Cue,
        RegistryKind::Gcr => RegistryKind::Distribution,
        RegistryKind::Cue => RegistryKind::Gcr,
        other => panic!("no round trip from {other:?}"),
    }
}

/// The whole round trip on one registry kind, then through a layout folder to another kind.
fn round_trip(kind: RegistryKind) {
    let other = then_to(&kind);
    let bed = bed!(kind.clone());
    let (reg, tmp) = (bed.registry(), bed.path());
    let model = write_tiny_model(tmp, "tiny", WEIGHTS);
    let files = files_under(&model);
    let total: u64 = files.values().map(|b| b.len() as u64).sum();
    let repo = "models/tiny";
    let reference = format!("{}/{repo}:v1", reg.addr());

    // push
    let push = stdout_json(&run_ok(
        bed.ms().env("SOURCE_DATE_EPOCH", EPOCH).args(["push", "--output", "json", &reference]).arg(&model),
    ));
    let digest = push["digest"].as_str().unwrap().to_string();
    assert_eq!(push["bytesUploaded"], total, "{kind:?}: {push}");
    assert!(push["components"].as_array().unwrap().iter().all(|c| c["uploaded"] == true), "{push}");

    // What the registry holds, read without our client.
    let (status, manifest_bytes) = raw_manifest(reg, repo, "v1");
    assert_eq!(status, 200, "{}", reg.log());
    assert_eq!(sha256_digest(&manifest_bytes), digest, "the tag names the digest push printed");
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["artifactType"], ARTIFACT_TYPE);
    assert_eq!(manifest["config"]["mediaType"], CONFIG_TYPE);
    for layer in manifest["layers"].as_array().unwrap() {
        let path = layer["annotations"]["org.cncf.model.filepath"].as_str().unwrap();
        assert_eq!(layer["annotations"]["org.opencontainers.image.title"], path);
        assert_eq!(layer["digest"], sha256_digest(&files[path]), "{path}: layer digest = file SHA-256");
    }

    // inspect: components and config
    let inspect = stdout_json(&run_ok(bed.ms().args(["inspect", "--output", "json", &reference])));
    assert_eq!(inspect["digest"], digest.as_str());
    assert_eq!(inspect["artifactType"], ARTIFACT_TYPE);
    assert_eq!(inspect["configMediaType"], CONFIG_TYPE);
    assert_eq!(inspect["referrers"], 0);
    assert_eq!(inspect["totalSize"], total);
    let config = &inspect["config"];
    assert_eq!(config["descriptor"]["name"], "tiny", "{inspect}");
    assert_eq!(config["descriptor"]["version"], "v1");
    assert_eq!(config["descriptor"]["createdAt"], EPOCH_RFC3339);
    assert_eq!(config["config"]["format"], "safetensors");
    assert_eq!(config["config"]["architecture"], "TinyModel");
    assert_eq!(config["modelfs"]["type"], "layers");
    let components = &inspect["components"];
    let paths = strings(components, "path");
    assert_eq!(paths, ["config.json", "extra/empty.txt", "extra/notes.txt", "model.safetensors", "tokenizer.json"]);
    assert_eq!(
        config["modelfs"]["diffIds"].as_array().unwrap(),
        &strings(components, "digest").iter().map(|d| Value::from(d.as_str())).collect::<Vec<_>>()
    );
    for c in components.as_array().unwrap() {
        let bytes = &files[c["path"].as_str().unwrap()];
        assert_eq!(c["digest"], sha256_digest(bytes), "{c}");
        assert_eq!(c["size"], bytes.len(), "{c}");
    }
    let media_type =
        |p: &str| components.as_array().unwrap().iter().find(|c| c["path"] == p).unwrap()["mediaType"].clone();
    assert_eq!(media_type("model.safetensors"), "application/vnd.cncf.model.weight.v1.raw");
    assert_eq!(media_type("config.json"), "application/vnd.cncf.model.weight.config.v1.raw");
    assert_eq!(media_type("extra/notes.txt"), "application/vnd.cncf.model.doc.v1.raw");

    // pull one component: exactly that file, byte for byte
    let out = tmp.join("out");
    let one = stdout_json(&run_ok(
        bed.ms().args(["pull", &reference, "--include", "*.safetensors", "--format", "json", "-o"]).arg(&out),
    ));
    assert_eq!(one["digest"], digest.as_str());
    assert_eq!(strings(&one["components"], "path"), ["model.safetensors"], "{one}");
    assert_eq!(one["bytesDownloaded"], WEIGHTS);
    let want_one: BTreeMap<String, Vec<u8>> =
        [("model.safetensors".to_string(), files["model.safetensors"].clone())].into_iter().collect();
    assert_eq!(files_under(&out), want_one, "only the selected component is written, nothing else");
    let inode = std::fs::metadata(out.join("model.safetensors")).unwrap().ino();

    // pull all into the same folder: the present file is not fetched again
    let all = stdout_json(&run_ok(bed.ms().args(["pull", &reference, "--format", "json", "-o"]).arg(&out)));
    let downloaded: BTreeMap<String, bool> = all["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap().to_string(), c["downloaded"].as_bool().unwrap()))
        .collect();
    let want: BTreeMap<String, bool> = paths.iter().map(|p| (p.clone(), p != "model.safetensors")).collect();
    assert_eq!(downloaded, want, "{all}");
    assert_eq!(all["bytesDownloaded"], total - WEIGHTS as u64);
    assert_eq!(files_under(&out), files, "the folder holds exactly the model (no partial files left)");
    assert_eq!(std::fs::metadata(out.join("model.safetensors")).unwrap().ino(), inode, "the present file was replaced");

    // re-push through a pass-through proxy: nothing uploaded, on the wire too
    let proxy = FaultProxy::start(reg.addr());
    let via_proxy = format!("{}/{repo}:v1", proxy.addr());
    let again = stdout_json(&run_ok(
        bed.ms().env("SOURCE_DATE_EPOCH", EPOCH).args(["push", "--output", "json", &via_proxy]).arg(&model),
    ));
    assert_eq!(again["bytesUploaded"], 0, "{again}");
    assert_eq!(again["digest"], digest.as_str(), "same folder, same SOURCE_DATE_EPOCH: same manifest");
    assert!(again["components"].as_array().unwrap().iter().all(|c| c["uploaded"] == false), "{again}");
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/") + proxy.count("PATCH", "/blobs/uploads/"),
        0,
        "{:?}",
        proxy.requests()
    );

    // attach + discover (and a referrer of the referrer)
    let review = tmp.join("review.txt");
    std::fs::write(&review, "reviewed by alice\n").unwrap();
    let att = run_stdout(
        bed.ms()
            .args(["attach", &reference, "--artifact-type", REVIEW, "-a", "org.example.reviewer=alice"])
            .arg(&review),
    )
    .trim()
    .to_string();
    assert!(att.starts_with("sha256:") && att.len() == 71, "attach prints the referrer's digest: {att:?}");
    let countersign = tmp.join("countersign.txt");
    std::fs::write(&countersign, "countersigned by bob\n").unwrap();
    let counter = run_stdout(
        bed.ms()
            .args(["attach", &format!("{}/{repo}@{att}", reg.addr()), "--artifact-type", COUNTERSIGN])
            .arg(&countersign),
    )
    .trim()
    .to_string();
    assert_listed_on_the_wire(reg, repo, &digest, &att);
    assert_listed_on_the_wire(reg, repo, &att, &counter);

    let tree = stdout_json(&run_ok(bed.ms().args(["discover", "--output", "json", &reference])));
    assert_eq!(tree["digest"], digest.as_str());
    let referrers = tree["referrers"].clone();
    assert_eq!(referrers.as_array().unwrap().len(), 1, "{tree}");
    assert_eq!(referrers[0]["digest"], att.as_str());
    assert_eq!(referrers[0]["artifactType"], REVIEW);
    assert_eq!(referrers[0]["annotations"]["org.example.reviewer"], "alice");
    assert_eq!(referrers[0]["referrers"][0]["digest"], counter.as_str(), "{tree}");
    assert_eq!(referrers[0]["referrers"][0]["artifactType"], COUNTERSIGN);
    let inspect = stdout_json(&run_ok(bed.ms().args(["inspect", "--output", "json", &reference])));
    assert!(inspect["referrers"].as_u64().unwrap() >= 1, "{inspect}");

    // copy to another repository of the same registry (through the proxy, to see the wire):
    // every blob is mounted or already there, none is streamed through the client
    let before_gets = proxy.count("GET", "/blobs/");
    let mirror_repo = "mirror/tiny";
    let copied = stdout_json(&run_ok(bed.ms().args([
        "copy",
        "--output",
        "json",
        &via_proxy,
        &format!("{}/{mirror_repo}:v1", proxy.addr()),
    ])));
    assert_eq!(copied["digest"], digest.as_str());
    assert_eq!(copied["manifests"], 3, "{copied}");
    assert_eq!(copied["referrers"], 2, "{copied}");
    assert_eq!(copied["blobsCopied"], 0, "{kind:?}: {copied}");
    assert_eq!(copied["bytesCopied"], 0, "{copied}");
    // The model's config and 5 layers, and each referrer's empty config and one file.
    assert_eq!(copied["blobsMounted"].as_u64().unwrap() + copied["blobsSkipped"].as_u64().unwrap(), 10, "{copied}");
    assert_eq!(proxy.count("GET", "/blobs/"), before_gets, "no blob was downloaded: {:?}", proxy.requests());
    assert_eq!(
        proxy.count("PATCH", "/blobs/uploads/") + proxy.count("PUT", "/blobs/uploads/"),
        0,
        "{:?}",
        proxy.requests()
    );
    let mirror = format!("{}/{mirror_repo}:v1", reg.addr());
    let mirror_tree = stdout_json(&run_ok(bed.ms().args(["discover", "--output", "json", &mirror])));
    assert_eq!(mirror_tree["digest"], digest.as_str());
    assert_eq!(mirror_tree["referrers"], referrers, "referrers preserved");
    assert_listed_on_the_wire(reg, mirror_repo, &digest, &att);
    assert_listed_on_the_wire(reg, mirror_repo, &att, &counter);
    assert_pulls_identical(&bed, &mirror, &tmp.join("out-mirror"), &files);

    // registry → oci: layout → another registry kind, referrers kept at each step
    let layout = tmp.join("layout");
    let layout_ref = format!("oci:{}:v1", layout.display());
    run_ok(bed.ms().args(["copy", &reference, &layout_ref]));
    let layout_tree = stdout_json(&run_ok(bed.ms().args(["discover", "--output", "json", &layout_ref])));
    assert_eq!(layout_tree["digest"], digest.as_str());
    assert_eq!(layout_tree["referrers"], referrers, "referrers copied into the layout");
    for blob in [hex(&digest), hex(&att), hex(&counter)] {
        assert!(layout.join("blobs/sha256").join(blob).is_file(), "{blob} missing from the layout");
    }

    let other_reg = Registry::start(other.clone());
    let imported_repo = "imported/tiny";
    let imported = format!("{}/{imported_repo}:v1", other_reg.addr());
    run_ok(bed.ms().args(["copy", &layout_ref, &imported]));
    let imported_tree = stdout_json(&run_ok(bed.ms().args(["discover", "--output", "json", &imported])));
    assert_eq!(imported_tree["digest"], digest.as_str(), "{kind:?} → layout → {other:?}");
    assert_eq!(imported_tree["referrers"], referrers, "{kind:?} → layout → {other:?}: referrers kept");
    assert_listed_on_the_wire(&other_reg, imported_repo, &digest, &att);
    assert_listed_on_the_wire(&other_reg, imported_repo, &att, &counter);
    let (status, body) = raw_manifest(&other_reg, imported_repo, "v1");
    assert_eq!((status, sha256_digest(&body)), (200, digest.clone()), "the tag came along");
    assert_pulls_identical(&bed, &imported, &tmp.join("out-imported"), &files);
}

registry_cases! {
    round_trip: [distribution, gcr, cue];
}

/// Two `modelsign attach` processes at once on distribution: both read-modify-write the
/// fallback index; neither entry may be lost. Three rounds on the same artifact.
#[test]
fn concurrent_attach_processes_keep_both_referrers_on_distribution() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, tmp) = (bed.registry(), bed.path());
    let model = write_tiny_model(tmp, "tiny", 5_000);
    let repo = "race/tiny";
    let reference = format!("{}/{repo}:v1", reg.addr());
    let digest = run_stdout(bed.ms().args(["push", &reference]).arg(&model)).trim().to_string();

    let mut all = Vec::new();
    for round in 0..3 {
        let children: Vec<_> = ["left", "right"]
            .iter()
            .map(|side| {
                let file = tmp.join(format!("{side}-{round}.txt"));
                std::fs::write(&file, format!("{side} {round}\n")).unwrap();
                let mut cmd = bed.ms();
                cmd.args(["attach", &reference, "--artifact-type", &format!("application/vnd.example.{side}")])
                    .arg(&file);
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                cmd.spawn().expect("spawn attach")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: attach failed: {}\n{}", stderr_text(&out), reg.log());
            all.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
        }
        let tree = stdout_json(&run_ok(bed.ms().args(["discover", "--output", "json", &reference])));
        let mut listed = strings(&tree["referrers"], "digest");
        listed.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(listed, want, "round {round}: a concurrent writer's referrer was lost");
        let (status, body) = raw_manifest(reg, repo, &format!("sha256-{}", hex(&digest)));
        assert_eq!(status, 200);
        let mut in_index = index_digests(&body);
        in_index.sort();
        assert_eq!(in_index, want, "round {round}: the fallback index itself");
    }
}

/// A referrer deleted from distribution (by digest, as a cleanup job does) stays named by
/// the `sha256-<hex>` fallback index, which nothing updates. Readers must skip it: it is no
/// referrer. discover, inspect and copy work, with the referrers that exist.
#[test]
fn a_deleted_referrer_still_in_the_fallback_index_is_skipped() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, tmp) = (bed.registry(), bed.path());
    let model = write_tiny_model(tmp, "tiny", 5_000);
    let repo = "stale/tiny";
    let reference = format!("{}/{repo}:v1", reg.addr());
    let digest = run_stdout(bed.ms().args(["push", &reference]).arg(&model)).trim().to_string();
    let note = tmp.join("note.txt");
    std::fs::write(&note, "note\n").unwrap();
    let attach = |artifact_type: &str| {
        run_stdout(bed.ms().args(["attach", &reference, "--artifact-type", artifact_type]).arg(&note))
            .trim()
            .to_string()
    };
    let gone = attach("application/vnd.example.deleted");
    let kept = attach("application/vnd.example.kept");
    let status = block_on(async {
        http_client()
            .delete(format!("{}/v2/{repo}/manifests/{gone}", reg.url()))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 202, "DELETE {gone}: {}", reg.log());
    let (_, index) = raw_manifest(reg, repo, &format!("sha256-{}", hex(&digest)));
    assert!(index_digests(&index).contains(&gone), "the fallback index still names the deleted referrer");

    let tree = stdout_json(&run_ok(bed.ms().args(["discover", "--output", "json", &reference])));
    assert_eq!(strings(&tree["referrers"], "digest"), std::slice::from_ref(&kept), "{tree}");
    let inspect = stdout_json(&run_ok(bed.ms().args(["inspect", "--output", "json", &reference])));
    assert_eq!(inspect["referrers"], 1, "{inspect}");

    let mirror = format!("{}/stale/mirror:v1", reg.addr());
    let copied = stdout_json(&run_ok(bed.ms().args(["copy", "--output", "json", &reference, &mirror])));
    assert_eq!(copied["referrers"], 1, "{copied}");
    let layout = format!("oci:{}:v1", tmp.join("layout").display());
    run_ok(bed.ms().args(["copy", &reference, &layout]));
    for copy in [&mirror, &layout] {
        let tree = stdout_json(&run_ok(bed.ms().args(["discover", "--output", "json", copy])));
        assert_eq!(strings(&tree["referrers"], "digest"), std::slice::from_ref(&kept), "{copy}: {tree}");
    }
}

/// Three `modelsign pull` processes into the same folder at once: each must end with the
/// model's exact bytes in place, and each component is downloaded by one of them only.
#[test]
fn concurrent_pulls_into_one_folder_write_the_right_bytes() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, tmp) = (bed.registry(), bed.path());
    let model = write_tiny_model(tmp, "tiny", 4_000_000);
    std::fs::write(model.join("second.safetensors"), pseudo_random_bytes(2_000_000, 99)).unwrap();
    let files = files_under(&model);
    let reference = format!("{}/shared/tiny:v1", reg.addr());
    run_ok(bed.ms().args(["push", &reference]).arg(&model));

    for round in 0..3 {
        let out = tmp.join(format!("out-{round}"));
        let children: Vec<_> = (0..3)
            .map(|_| {
                let mut cmd = bed.ms();
                cmd.args(["pull", &reference, "--format", "json", "-o"]).arg(&out);
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                cmd.spawn().expect("spawn pull")
            })
            .collect();
        let mut downloads: BTreeMap<String, usize> = BTreeMap::new();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "round {round}: pull failed: {}", stderr_text(&output));
            for c in stdout_json(&output)["components"].as_array().unwrap() {
                *downloads.entry(c["path"].as_str().unwrap().to_string()).or_default() +=
                    (c["downloaded"] == true) as usize;
            }
        }
        assert_eq!(files_under(&out), files, "round {round}: the folder does not hold the model's bytes");
        let once: BTreeMap<String, usize> = files.keys().map(|p| (p.clone(), 1)).collect();
        assert_eq!(downloads, once, "round {round}: each component is downloaded by one pull");
    }
}

/// Straight from distribution to another registry of each kind (different hosts: nothing to
/// mount): every blob streams through, checked, and the referrers come along, once.
#[test]
fn copy_between_two_registries_streams_blobs_and_keeps_referrers() {
    let bed = bed!(RegistryKind::Distribution);
    let (src, tmp) = (bed.registry(), bed.path());
    let model = write_tiny_model(tmp, "tiny", 100_000);
    let files = files_under(&model);
    let reference = format!("{}/models/tiny:v1", src.addr());
    let digest = run_stdout(bed.ms().args(["push", &reference]).arg(&model)).trim().to_string();
    let note = tmp.join("note.txt");
    std::fs::write(&note, "reviewed\n").unwrap();
    let att =
        run_stdout(bed.ms().args(["attach", &reference, "--artifact-type", REVIEW]).arg(&note)).trim().to_string();

    for kind in RegistryKind::anonymous_kinds() {
        let dst = Registry::start(kind.clone());
        let target = format!("{}/copied/tiny:v1", dst.addr());
        let copied = stdout_json(&run_ok(bed.ms().args(["copy", "--output", "json", &reference, &target])));
        assert_eq!(copied["digest"], digest.as_str());
        assert_eq!((copied["manifests"].as_u64(), copied["referrers"].as_u64()), (Some(2), Some(1)), "{copied}");
        // config + 5 layers + the referrer's empty config and its file, all streamed.
        assert_eq!(copied["blobsCopied"], 8, "{copied}");
        assert_eq!(copied["blobsMounted"], 0, "{copied}");
        let layer_bytes: u64 = files.values().map(|b| b.len() as u64).sum();
        assert!(copied["bytesCopied"].as_u64().unwrap() > layer_bytes, "{copied}");
        assert_listed_on_the_wire(&dst, "copied/tiny", &digest, &att);
        assert_pulls_identical(&bed, &target, &tmp.join(format!("out-{}", kind.name())), &files);

        // Again: everything is there already.
        let again = stdout_json(&run_ok(bed.ms().args(["copy", "--output", "json", &reference, &target])));
        assert_eq!((again["blobsCopied"].as_u64(), again["blobsSkipped"].as_u64()), (Some(0), Some(8)), "{again}");
        let tree = stdout_json(&run_ok(bed.ms().args(["discover", "--output", "json", &target])));
        assert_eq!(
            strings(&tree["referrers"], "digest"),
            std::slice::from_ref(&att),
            "{kind:?}: copied twice, listed once"
        );
    }
}
