//! Interop with independent tools, both directions, through the CLI: `oras pull` of what
//! modelsign pushed; modelsign inspect/pull of what `oras push` wrote; `skopeo copy` of a
//! modelsign artifact into an `oci:` layout, pulled by modelsign; a modelsign layout folder
//! read by `oras pull --oci-layout` and `oras discover --oci-layout`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::*;

const REVIEW: &str = "application/vnd.example.review.v1";
const COUNTERSIGN: &str = "application/vnd.example.countersign.v1";

fn ms(peers: &Peers) -> Command {
    let mut cmd = peers.modelsign();
    cmd.args(["--plain-http", "--no-progress"]);
    cmd
}

/// The tiny model plus nested folders and names with spaces.
fn awkward_model(parent: &Path) -> std::path::PathBuf {
    let model = write_tiny_model(parent, "awkward", 200_000);
    std::fs::create_dir_all(model.join("extra/deep/er")).unwrap();
    std::fs::write(model.join("extra/deep/er/shard 01.bin"), pseudo_random_bytes(70_000, 7)).unwrap();
    std::fs::write(model.join("read me.md"), "# a model with spaces in its names\n").unwrap();
    model
}

/// Every (digest, artifactType) in an `oras discover --format json` tree, depth first.
fn oras_referrers(node: &Value, out: &mut Vec<(String, String)>) {
    for r in node["referrers"].as_array().map(Vec::as_slice).unwrap_or_default() {
        out.push((
            r["digest"].as_str().unwrap_or_default().to_string(),
            r["artifactType"].as_str().unwrap_or_default().to_string(),
        ));
        oras_referrers(r, out);
    }
}

#[test]
fn oras_pulls_what_modelsign_pushed() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    for kind in RegistryKind::anonymous_kinds() {
        let reg = Registry::start(kind.clone());
        let tmp = tempfile::tempdir().unwrap();
        let model = awkward_model(tmp.path());
        let files = files_under(&model);
        assert!(files.contains_key("extra/deep/er/shard 01.bin") && files.contains_key("read me.md"));
        let reference = format!("{}/interop/awkward:v1", reg.addr());
        let digest = run_stdout(ms(&peers).args(["push", &reference]).arg(&model)).trim().to_string();

        let out = tmp.path().join("oras-out");
        run_ok(peers.oras().args(["pull", "--plain-http", "-o"]).arg(&out).arg(&reference));
        assert_eq!(files_under(&out), files, "{kind:?}: oras wrote other names or bytes");

        // oras sees a referrer modelsign attached (fallback tag on distribution, API elsewhere).
        let note = tmp.path().join("note.txt");
        std::fs::write(&note, "reviewed\n").unwrap();
        let att = run_stdout(ms(&peers).args(["attach", &reference, "--artifact-type", REVIEW]).arg(&note))
            .trim()
            .to_string();
        let tree = stdout_json(&run_ok(peers.oras().args([
            "discover",
            "--plain-http",
            "--format",
            "json",
            &format!("{}/interop/awkward@{digest}", reg.addr()),
        ])));
        let mut found = Vec::new();
        oras_referrers(&tree, &mut found);
        // go-containerregistry 0.20.1's referrers API fills each entry's artifactType with the
        // referrer's config media type, ignoring its artifactType (pkg/registry/manifest.go:435:
        // `ArtifactType: imageAsArtifact.Config.MediaType`); oras shows what the API says.
        let listed_type = if kind == RegistryKind::Gcr { "application/vnd.oci.empty.v1+json" } else { REVIEW };
        assert_eq!(found, [(att.clone(), listed_type.to_string())], "{kind:?}: {tree}");
        // The manifest itself (what oras and modelsign read when the type matters) says REVIEW.
        let (status, body) = http_get(&format!("{}/v2/interop/awkward/manifests/{att}", reg.url()), MANIFEST_ACCEPT);
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["artifactType"], REVIEW);
    }
}

#[test]
fn modelsign_reads_what_oras_pushed() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let src = tmp.join("src");
    std::fs::create_dir_all(src.join("nested/dir")).unwrap();
    let weights = pseudo_random_bytes(150_000, 42);
    std::fs::write(src.join("w.bin"), &weights).unwrap();
    std::fs::write(src.join("nested/dir/c.txt"), "nested\n").unwrap();
    std::fs::write(src.join("with space.txt"), "spaced\n").unwrap();
    let files = files_under(&src);
    let reference = format!("{}/from-oras/files:v1", reg.addr());
    run_ok(peers.oras().current_dir(&src).args([
        "push",
        "--plain-http",
        &reference,
        "w.bin:application/vnd.example.weights",
        "nested/dir/c.txt",
        "with space.txt",
    ]));

    let inspect = stdout_json(&run_ok(ms(peers).args(["inspect", "--output", "json", &reference])));
    let components: Vec<(String, String, String, u64)> = inspect["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["mediaType"].as_str().unwrap().to_string(),
                c["digest"].as_str().unwrap().to_string(),
                c["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = |path: &str, media_type: &str| {
        let bytes = &files[path];
        (path.to_string(), media_type.to_string(), sha256_digest(bytes), bytes.len() as u64)
    };
    assert_eq!(
        components,
        [
            want("w.bin", "application/vnd.example.weights"),
            want("nested/dir/c.txt", "application/vnd.oci.image.layer.v1.tar"),
            want("with space.txt", "application/vnd.oci.image.layer.v1.tar"),
        ],
        "{inspect}"
    );
    assert_eq!(inspect["artifactType"], "application/vnd.unknown.artifact.v1", "{inspect}");
    assert!(inspect.get("config").is_none(), "oras' empty config is not a ModelPack config: {inspect}");

    let one = tmp.join("one");
    run_ok(ms(peers).args(["pull", &reference, "--include", "nested/**", "-o"]).arg(&one));
    let want_one: BTreeMap<String, Vec<u8>> =
        [("nested/dir/c.txt".to_string(), files["nested/dir/c.txt"].clone())].into_iter().collect();
    assert_eq!(files_under(&one), want_one);

    let all = tmp.join("all");
    run_ok(ms(peers).args(["pull", &reference, "-o"]).arg(&all));
    assert_eq!(files_under(&all), files);
}

#[test]
fn skopeo_copies_a_modelsign_artifact_into_a_layout_that_modelsign_pulls() {
    let bed = bed!(RegistryKind::Distribution);
    let (reg, peers, tmp) = (bed.registry(), &bed.peers, bed.path());
    let model = awkward_model(tmp);
    let files = files_under(&model);
    let reference = format!("{}/skopeo/awkward:v1", reg.addr());
    let digest = run_stdout(ms(peers).args(["push", &reference]).arg(&model)).trim().to_string();

    let layout = tmp.join("skopeo-layout");
    run_ok(
        peers
            .skopeo()
            .args(["copy", "--src-tls-verify=false", &format!("docker://{reference}")])
            .arg(format!("oci:{}:v1", layout.display())),
    );
    let layout_ref = format!("oci:{}:v1", layout.display());
    let inspect = stdout_json(&run_ok(ms(peers).args(["inspect", "--output", "json", &layout_ref])));
    assert_eq!(inspect["digest"], digest.as_str(), "skopeo kept the manifest as it was: {inspect}");

    let out = tmp.join("out");
    let report = stdout_json(&run_ok(ms(peers).args(["pull", &layout_ref, "--format", "json", "-o"]).arg(&out)));
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(files_under(&out), files);
}

#[test]
fn oras_reads_a_modelsign_layout_and_its_referrers() {
    let tb = require_testbed!();
    let peers = Peers::new(&tb);
    let tmp = tempfile::tempdir().unwrap();
    let model = awkward_model(tmp.path());
    let files = files_under(&model);
    let layout = tmp.path().join("layout");
    let layout_ref = format!("oci:{}:v1", layout.display());
    let digest = run_stdout(ms(&peers).args(["push", &layout_ref]).arg(&model)).trim().to_string();
    let note = tmp.path().join("review.txt");
    std::fs::write(&note, "reviewed\n").unwrap();
    let att = run_stdout(ms(&peers).args(["attach", &layout_ref, "--artifact-type", REVIEW, "-a", "k=v"]).arg(&note))
        .trim()
        .to_string();
    let counter = run_stdout(
        ms(&peers)
            .args(["attach", &format!("oci:{}@{att}", layout.display()), "--artifact-type", COUNTERSIGN])
            .arg(&note),
    )
    .trim()
    .to_string();

    // oras resolves `DIR:tag` with --oci-layout, relative to its working directory.
    let out = tmp.path().join("oras-out");
    run_ok(peers.oras().current_dir(tmp.path()).args(["pull", "--oci-layout", "layout:v1", "-o"]).arg(&out));
    assert_eq!(files_under(&out), files, "oras read other names or bytes from the layout");

    let tree = stdout_json(&run_ok(peers.oras().current_dir(tmp.path()).args([
        "discover",
        "--oci-layout",
        "--format",
        "json",
        "layout:v1",
    ])));
    assert_eq!(tree["digest"], digest.as_str(), "{tree}");
    let mut found = Vec::new();
    oras_referrers(&tree, &mut found);
    assert_eq!(found, [(att.clone(), REVIEW.to_string()), (counter, COUNTERSIGN.to_string())], "{tree}");
    let review = tree["referrers"].as_array().unwrap().iter().find(|r| r["digest"] == att.as_str()).unwrap();
    assert_eq!(review["annotations"]["k"], "v", "{tree}");
}
