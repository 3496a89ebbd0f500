//! Signed model cards (issue 6): `attest` → `card show` round trips on distribution 2.8
//! (fallback tag), on a referrers-API registry and in a layout folder; `cosign
//! verify-attestation` accepts the card statement; the CycloneDX ML-BOM validates with
//! `cyclonedx-python-lib`; a card without its mandatory fields attaches nothing; a README's
//! front matter is a card; `card init` drafts one; and the attacks: a card copied from another
//! model, a card by an untrusted key, and a card that would pass for a signature.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::*;

/// Two path segments: cosign refuses one-letter repository names.
const REPO: &str = "models/tiny";
const CARD_PREDICATE: &str = "https://modelsign.dev/model-card/v1";
const CYCLONEDX_PREDICATE: &str = "https://cyclonedx.org/bom";

const FULL_CARD: &str = r#"
name: tiny
version: "1.10"
developer: Vision team
publisher: Acme Models
description: A tiny model for tests.
license: Apache-2.0
use:
  intended: [testing]
  out-of-scope: medical advice
io: {inputs: text, outputs: [text]}
languages: [en, fr]
format: gguf            # wrong on purpose: attest writes the model's own
training:
  methodology: none at all
  datasets:
    - {name: wikitext, license: CC-BY-SA-4.0, url: "https://example.org/wikitext"}
metrics:
  - {name: perplexity, value: 12.5, dataset: wikitext}
security:
  sensitive-data: No personal data was used.
  considerations: Reviewed by the security team.
extra: {ticket: SEC-42}
"#;

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn push(reference: &str, dir: &Path) -> String {
    run_stdout(modelsign().args(["--plain-http", "push", reference]).arg(dir)).trim().to_string()
}

fn attest(reference: &str, card: &Path, key: &Path) -> Command {
    let mut cmd = modelsign();
    cmd.args(["--plain-http", "attest", reference, "--output", "json", "--model-card"]).arg(card).arg("--key").arg(key);
    cmd
}

fn card_show(reference: &str, trusted: &Path) -> Command {
    let mut cmd = modelsign();
    cmd.args(["--plain-http", "card", "show", reference, "--output", "json", "--key"]).arg(trusted);
    cmd
}

/// The referrers of `reference`'s manifest, as (predicate-type annotation, manifest JSON).
fn referrers(reference: &str) -> Vec<(String, Value)> {
    block_on(async {
        let target = open_target(reference).await;
        let parsed: modelsign::reference::Reference = reference.parse().unwrap();
        let (desc, _) = manifest_json(&target, &parsed.selector()).await;
        referrer_manifests(&target, &desc)
            .await
            .into_iter()
            .map(|(_, m)| (m["annotations"]["dev.sigstore.bundle.predicateType"].as_str().unwrap_or("").to_string(), m))
            .collect()
    })
}

/// The statement of the bundle referrer of `reference` with this predicate type.
fn attested_statement(reference: &str, predicate_type: &str) -> Value {
    block_on(async {
        let target = open_target(reference).await;
        let parsed: modelsign::reference::Reference = reference.parse().unwrap();
        let (desc, _) = manifest_json(&target, &parsed.selector()).await;
        for (_, m) in referrer_manifests(&target, &desc).await {
            if has_predicate(&m, predicate_type) {
                return bundle_payload(&referrer_bundle(&target, &m).await);
            }
        }
        panic!("no {predicate_type} referrer on {reference}")
    })
}

/// Validates CycloneDX documents with cyclonedx-python-lib (strict JSON schema, 1.6), in
/// one Python process: one line per document, `valid` or `invalid: <why>`.
fn cyclonedx_validate(tb: &Testbed, boms: &[&Value]) -> Vec<String> {
    let script = "import json, sys\n\
        from cyclonedx.schema import SchemaVersion\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        validator = JsonStrictValidator(SchemaVersion.V1_6)\n\
        for doc in json.load(sys.stdin):\n\
        \x20   err = validator.validate_str(json.dumps(doc))\n\
        \x20   print('valid' if err is None else 'invalid: ' + str(err).replace('\\n', ' '))\n";
    let out = run_with_stdin(
        std::process::Command::new(tb.python()).args(["-c", script]),
        &serde_json::to_vec(boms).unwrap(),
    );
    assert!(out.status.success(), "cyclonedx-python-lib: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// attest → the two referrers, card show, cosign, CycloneDX; `cosign` only for registries.
fn attest_and_show(place: Place) {
    let bed = bed!(place);
    let (work, base, registry) = (bed.path(), bed.repo(REPO), bed.is_registry());
    let base = base.as_str();
    let model = write_tiny_model(work, "tiny", 20_000);
    let tagged = format!("{base}:v1");
    let digest = push(&tagged, &model);
    let (key, public) = keygen(work, "security", "p256");
    let card = write(work, "card.yaml", FULL_CARD);

    let report = json(&run_ok(&mut attest(&tagged, &card, &key)));
    assert_eq!(report["digest"], digest.as_str());
    let replaced: Vec<&Value> =
        report["filled"].as_array().unwrap().iter().filter(|f| f["replaced"].is_string()).collect();
    assert_eq!(replaced.len(), 1, "only `format` differed: {report:#}");
    assert_eq!(replaced[0]["field"], "format");

    let found = referrers(&tagged);
    let mut types: Vec<&str> = found.iter().map(|(t, _)| t.as_str()).collect();
    types.sort();
    assert_eq!(types, [CYCLONEDX_PREDICATE, CARD_PREDICATE], "exactly the two attestations");

    // The statement: subject = the manifest, named as the manifest statement names it.
    let statement = attested_statement(&tagged, CARD_PREDICATE);
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.trim_start_matches("sha256:"));
    if registry {
        assert_eq!(statement["subject"][0]["name"], base);
    }

    // card show: the card, filled in, and who signed it.
    let shown = json(&run_ok(&mut card_show(&tagged, &public)));
    let cards = shown["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "{shown:#}");
    let c = &cards[0]["card"];
    assert_eq!(c, &statement["predicate"], "card show prints what was signed");
    assert_eq!(c["version"], "1.10");
    assert_eq!(c["format"], "safetensors", "from the ModelPack config, not the author");
    assert_eq!(c["architecture"], "TinyModel");
    assert_eq!(c["languages"], serde_json::json!(["en", "fr"]));
    assert_eq!(c["training"]["datasets"][0]["license"], "CC-BY-SA-4.0");
    assert_eq!(c["extra"]["ticket"], "SEC-42");
    assert!(c["security"]["encryption"].as_str().unwrap().starts_with("none"));
    let fingerprint = format!("sha256:{}", {
        use sha2::Digest as _;
        let der = modelsign::sign::PublicKey::from_pem(&std::fs::read_to_string(&public).unwrap()).unwrap();
        hex::encode(sha2::Sha256::digest(der.spki_der()))
    });
    assert_eq!(c["security"]["certificate"]["fingerprint"], fingerprint.as_str());
    assert_eq!(c["signatures"][0]["signer"]["fingerprint"], fingerprint.as_str());
    assert_eq!(cards[0]["signer"]["fingerprint"], fingerprint.as_str());
    // Text output names the signer too.
    let text = run_stdout(modelsign().args(["--plain-http", "card", "show", &tagged, "--key"]).arg(&public));
    assert!(
        text.contains(&format!("signed by key {fingerprint}")) && text.contains("security.considerations: Reviewed")
    );

    // The CycloneDX ML-BOM: same subject, valid 1.6, and the validator does refuse a broken one.
    let bom_statement = attested_statement(&tagged, CYCLONEDX_PREDICATE);
    assert_eq!(bom_statement["subject"], statement["subject"]);
    let bom = &bom_statement["predicate"];
    let model_component = &bom["components"][0];
    assert_eq!(model_component["type"], "machine-learning-model");
    assert_eq!(model_component["name"], "tiny");
    assert_eq!(model_component["modelCard"]["modelParameters"]["modelArchitecture"], "TinyModel");
    let mut broken = bom.clone();
    broken["components"][0]["modelCard"]["modelParameters"]["approach"] = serde_json::json!({"type": "guesswork"});
    let verdicts = cyclonedx_validate(bed.testbed(), &[bom, &broken]);
    assert_eq!(verdicts[0], "valid", "cyclonedx-python-lib refuses the BOM attest wrote");
    assert!(verdicts[1].starts_with("invalid"), "the validator checks the schema: {verdicts:?}");

    if registry {
        // cosign accepts the card statement, offline, with an empty trusted root.
        let pinned = format!("{base}@{digest}");
        let peers = &bed.peers;
        let root = empty_trusted_root(work);
        let out = run_stdout(&mut cosign_verify_attestation(peers, &root, &public, CARD_PREDICATE, &pinned));
        assert!(!out.trim().is_empty(), "cosign printed the verified attestation");
        // And the CycloneDX statement, as cosign's `--type cyclonedx` reads it.
        let out = run_stdout(&mut cosign_verify_attestation(peers, &root, &public, CYCLONEDX_PREDICATE, &pinned));
        assert!(!out.trim().is_empty(), "cosign printed the verified CycloneDX attestation");
        let (_, other) = keygen(work, "other", "p256");
        run_fail(&mut cosign_verify_attestation(peers, &root, &other, CARD_PREDICATE, &pinned));
    }
}

registry_cases! {
    attest_and_show: [distribution, cue, layout];
}

#[test]
fn missing_mandatory_fields_attach_nothing() {
    let bed = bed!(RegistryKind::Distribution);
    let work = bed.path();
    let model = write_tiny_model(work, "tiny", 1000);
    let tagged = format!("{}:v1", bed.repo(REPO));
    push(&tagged, &model);
    let (key, _) = keygen(work, "k", "p256");
    let card = write(
        work,
        "card.yaml",
        "name: tiny\nversion: ''\ndeveloper: 'TODO: who'\ndescription: d\nsecurity:\n  considerations: '  '\n",
    );
    let out = run_fail(&mut attest(&tagged, &card, &key));
    let (code, line) = one_line_error(&out);
    assert_eq!(code, Some(1), "{line}");
    for field in ["version", "developer", "publisher", "security.sensitive-data", "security.considerations"] {
        assert!(line.contains(field), "`{field}` not named: {line}");
    }
    assert!(!line.contains("name,") && !line.contains("description"), "present fields are not named: {line}");
    assert!(referrers(&tagged).is_empty(), "nothing attached");
    let out = run_fail(&mut card_show(&tagged, &work.join("k.pub")));
    assert_untrusted(&out, &["no trusted model card", "no model-card attestation"]);

    // An unknown field is refused by name, a YAML mistake by line; nothing attached either.
    let typo = write(work, "typo.yaml", &format!("{FULL_CARD}\nsecurity.sensitve-data: x\n"));
    let (code, line) = one_line_error(&run_fail(&mut attest(&tagged, &typo, &key)));
    assert_eq!(code, Some(1));
    assert!(line.contains("`security.sensitve-data`"), "{line}");
    let broken = write(work, "broken.yaml", "name: tiny\nversion: [1\n");
    let (_, line) = one_line_error(&run_fail(&mut attest(&tagged, &broken, &key)));
    assert!(line.contains("broken.yaml") && line.contains("line "), "{line}");
    assert!(referrers(&tagged).is_empty(), "nothing attached");
}

#[test]
fn a_readme_front_matter_is_a_card() {
    let bed = bed!(Place::Layout);
    let work = bed.path();
    let model = write_tiny_model(work, "tiny", 1000);
    let layout = format!("{}:v1", bed.repo(REPO));
    push(&layout, &model);
    let (key, public) = keygen(work, "k", "ed25519");
    let readme = write(
        work,
        "README.md",
        "---\nlicense: mit\nlanguage: [en]\ndatasets: [squad]\ntags: [qa]\nbase_model: acme/base\n\
         model-index:\n- name: tiny\n  results:\n  - dataset: {name: SQuAD, type: squad}\n    metrics:\n    - {type: f1, value: 88.5}\n\
         name: tiny\nversion: '2'\ndeveloper: NLP team\npublisher: Acme\ndescription: Answers questions.\n\
         security:\n  sensitive-data: none\n  considerations: reviewed\n---\n# Tiny\n\nText.\n",
    );
    run_ok(&mut attest(&layout, &readme, &key));
    let shown = json(&run_ok(&mut card_show(&layout, &public)));
    let c = &shown["cards"][0]["card"];
    assert_eq!(c["license"], "mit");
    assert_eq!(c["languages"], serde_json::json!(["en"]));
    assert_eq!(c["training"]["datasets"], serde_json::json!([{"name": "squad"}]));
    assert_eq!(c["metrics"], serde_json::json!([{"name": "f1", "value": 88.5, "dataset": "SQuAD"}]));
    assert_eq!(c["extra"]["huggingface"], serde_json::json!({"tags": ["qa"], "base_model": "acme/base"}));
    assert_eq!(shown["cards"][0]["signer"]["algorithm"], "ed25519");
    // A README without front matter is refused, naming the file.
    let plain = write(work, "PLAIN.md", "# Tiny\n");
    let (code, line) = one_line_error(&run_fail(&mut attest(&layout, &plain, &key)));
    assert_eq!(code, Some(1));
    assert!(line.contains("PLAIN.md") && line.contains("front matter"), "{line}");
}

#[test]
fn card_init_drafts_what_attest_refuses_until_filled_in() {
    let bed = bed!(Place::Layout);
    let work = bed.path();
    let model = write_tiny_model(work, "tiny", 1000);
    std::fs::write(model.join("README.md"), "---\nlicense: apache-2.0\nlanguage: en\n---\n# Tiny\n\nA tiny model.\n")
        .unwrap();
    let draft = work.join("card.yaml");
    let out = run_ok(modelsign().args(["card", "init"]).arg(&model).arg("-o").arg(&draft));
    assert!(stderr_text(&out).contains("to fill in before attest: version, developer, publisher"));
    let text = std::fs::read_to_string(&draft).unwrap();
    assert!(text.contains("description: \"A tiny model.\""), "{text}");
    assert!(text.contains("license: \"apache-2.0\""), "{text}");
    assert!(text.contains("format: \"safetensors\""), "{text}");
    assert!(text.contains("architecture: \"TinyModel\""), "{text}");
    assert!(text.contains("developer: \"TODO:"), "{text}");
    // Not overwritten without --force.
    let (code, line) = one_line_error(&run_fail(modelsign().args(["card", "init"]).arg(&model).arg("-o").arg(&draft)));
    assert_eq!(code, Some(1));
    assert!(line.contains("--force"), "{line}");

    // attest refuses the draft as it is, and accepts it once the TODOs are filled in.
    let layout = format!("{}:v1", bed.repo(REPO));
    push(&layout, &model);
    let (key, public) = keygen(work, "k", "p256");
    let (_, line) = one_line_error(&run_fail(&mut attest(&layout, &draft, &key)));
    assert!(line.contains("version, developer, publisher, security.sensitive-data, security.considerations"), "{line}");
    let filled = text
        .lines()
        .map(|l| match l.split_once(": \"TODO:") {
            Some((k, _)) => format!("{k}: \"filled in\""),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&draft, filled).unwrap();
    run_ok(&mut attest(&layout, &draft, &key));
    let shown = json(&run_ok(&mut card_show(&layout, &public)));
    assert_eq!(shown["cards"][0]["card"]["description"], "A tiny model.");
    assert_eq!(shown["cards"][0]["card"]["developer"], "filled in");
}

#[test]
fn a_card_copied_from_another_model_is_not_shown() {
    let bed = bed!(RegistryKind::Distribution);
    let work = bed.path();
    let a = write_tiny_model(work, "a", 1000);
    let b = write_tiny_model(work, "b", 2000);
    let ref_a = format!("{}:a", bed.repo(REPO));
    let ref_b = format!("{}:b", bed.repo(REPO));
    push(&ref_a, &a);
    push(&ref_b, &b);
    let (key, public) = keygen(work, "security", "p256");
    let card = write(work, "card.yaml", FULL_CARD);
    run_ok(&mut attest(&ref_a, &card, &key));
    // The attacker re-points A's card attestations at B (same bundles, new subject).
    block_on(async {
        let target = open_target(&ref_a).await;
        let (da, _) = manifest_json(&target, "a").await;
        let (db, _) = manifest_json(&target, "b").await;
        repoint_referrers(&target, &da, &db, |_| true).await;
    });
    assert_eq!(referrers(&ref_b).len(), 2, "the copied attestations are attached to B");
    let out = run_fail(&mut card_show(&ref_b, &public));
    assert_untrusted(&out, &["no trusted model card", "1 model-card attestation", "about another artifact"]);
    // A still shows its card.
    assert_eq!(json(&run_ok(&mut card_show(&ref_a, &public)))["cards"].as_array().unwrap().len(), 1);
}

#[test]
fn a_card_by_an_untrusted_key_is_not_shown() {
    let bed = bed!(RegistryKind::Gcr);
    let work = bed.path();
    let model = write_tiny_model(work, "tiny", 1000);
    let tagged = format!("{}:v1", bed.repo(REPO));
    push(&tagged, &model);
    let (mallory, _) = keygen(work, "mallory", "p256");
    let (trusted_key, trusted) = keygen(work, "security", "p256");
    let card = write(work, "card.yaml", FULL_CARD);
    run_ok(&mut attest(&tagged, &card, &mallory));
    let out = run_fail(&mut card_show(&tagged, &trusted));
    assert_untrusted(&out, &["no trusted model card", "not signed by a trusted signer"]);
    // Once the trusted signer attests too, only that card is shown.
    run_ok(&mut attest(&tagged, &card, &trusted_key));
    let shown = json(&run_ok(&mut card_show(&tagged, &trusted)));
    assert_eq!(shown["cards"].as_array().unwrap().len(), 1, "{shown:#}");
    assert_eq!(shown["rejected"].as_array().unwrap().len(), 1, "{shown:#}");
}

#[test]
fn a_card_alone_does_not_make_a_model_verified() {
    let bed = bed!(Place::Layout);
    let work = bed.path();
    let model = write_tiny_model(work, "tiny", 1000);
    let layout = format!("{}:v1", bed.repo(REPO));
    push(&layout, &model);
    let (key, public) = keygen(work, "k", "p256");
    let card = write(work, "card.yaml", FULL_CARD);
    run_ok(&mut attest(&layout, &card, &key));
    let out = run_fail(modelsign().args(["verify", &layout, "--key"]).arg(&public));
    assert_untrusted(&out, &["attestation"]);
    // Signed as well, it verifies: the card does not disturb the signatures.
    run_ok(modelsign().args(["sign", &layout, "--key"]).arg(&key));
    run_ok(modelsign().args(["verify", &layout, "--key"]).arg(&public));
    assert_eq!(json(&run_ok(&mut card_show(&layout, &public)))["cards"].as_array().unwrap().len(), 1);
}

#[test]
fn a_card_attested_with_a_certificate_names_it() {
    let bed = bed!(Place::Layout);
    let (work, peers) = (bed.path(), &bed.peers);
    let model = write_tiny_model(work, "tiny", 1000);
    let layout = format!("{}:v1", bed.repo(REPO));
    push(&layout, &model);
    let chain = make_certificate_chain(peers, work, "ours");
    let theirs = make_certificate_chain(peers, work, "theirs");
    let card = write(work, "card.yaml", FULL_CARD);
    run_ok(
        modelsign()
            .args(["attest", &layout, "--model-card"])
            .arg(&card)
            .arg("--key")
            .arg(&chain.leaf_key)
            .arg("--certificate")
            .arg(&chain.leaf)
            .arg("--certificate-chain")
            .arg(&chain.intermediate),
    );
    let show = |root: &Path| {
        let mut cmd = modelsign();
        cmd.args(["card", "show", &layout, "--output", "json", "--certificate-chain"]).arg(root);
        cmd
    };
    let shown = json(&run_ok(&mut show(&chain.root)));
    let cert = &shown["cards"][0]["card"]["security"]["certificate"];
    assert_eq!(cert["type"], "x509", "{shown:#}");
    assert!(cert["subject"].as_str().unwrap().contains("ours test signer"), "{cert:#}");
    assert!(cert["issuer"].as_str().unwrap().contains("ours"), "{cert:#}");
    assert!(cert["fingerprint"].as_str().unwrap().starts_with("sha256:"), "{cert:#}");
    assert_eq!(shown["cards"][0]["signer"], *cert, "the signer shown is the one the card names");
    // Another root trusts nothing here.
    assert_untrusted(&run_fail(&mut show(&theirs.root)), &["no trusted model card"]);
}
