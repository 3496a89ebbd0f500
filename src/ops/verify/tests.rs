//! The security rule, tested on real layout folders: what passes, what fails, and that
//! only whole-model signatures make a model verified.

use serde_json::json;

use super::*;
use crate::ops::verify::test_models::*;
use crate::sign::components::{self as component_statement, SignedComponent};

const SCAN: &str = "https://example.com/vulnerability-scan/v1";

async fn decide_all(model: &TestModel, trust: &Trust) -> Decision {
    let all = model_components(&model.manifest, "test").unwrap();
    decide(&model.target, &model.desc, &all, &all, trust).await.unwrap()
}

#[test]
fn only_known_signature_statements_are_signatures() {
    for p in [crate::sign::oms::PREDICATE_TYPE, crate::ops::model::MANIFEST_PREDICATE_TYPE, COSIGN_SIGN_PREDICATE_TYPE]
    {
        assert_eq!(classify(p), StatementKind::ModelSignature, "{p}");
    }
    assert_eq!(classify(component_statement::PREDICATE_TYPE), StatementKind::ComponentSignature);
    for p in [SCAN, "https://modelsign.dev/model-card/v1", "https://cyclonedx.org/bom", "", "https://model_signing/"] {
        assert_eq!(classify(p), StatementKind::Attestation, "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_model_passes_and_a_foreign_key_does_not() {
    let model = sample_model().await;
    let (publisher, stranger) = (signer(), signer());
    assert!(!decide_all(&model, &trust(&[&publisher])).await.passed, "no signature is a failure");
    sign_model(&model, &publisher).await;
    let decision = decide_all(&model, &trust(&[&publisher])).await;
    assert!(decision.passed, "{:?}", decision.failure);
    assert_eq!(decision.signatures.verified(), 2);
    assert!(decision.oms_bundle().is_some());
    let decision = decide_all(&model, &trust(&[&stranger])).await;
    assert!(!decision.passed);
    assert!(decision.failure.unwrap().contains("no signature from a trusted signer (2 referrers ignored)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attestation_by_the_trusted_key_is_no_signature() {
    let model = sample_model().await;
    let publisher = signer();
    attach_statement(&model, &publisher, SCAN, None, json!({"result": "REJECTED"})).await;
    let decision = decide_all(&model, &trust(&[&publisher])).await;
    assert!(!decision.passed, "a scan signed by the trusted key must not verify the model");
    let failure = decision.failure.unwrap();
    assert!(failure.contains("attestations or component signatures, which never verify a model"), "{failure}");
    assert!(matches!(decision.signatures.checks[0].outcome, SignatureOutcome::Attestation { .. }));
    // Beside a real signature it is shown, and changes nothing.
    sign_model(&model, &publisher).await;
    let decision = decide_all(&model, &trust(&[&publisher])).await;
    assert!(decision.passed, "{:?}", decision.failure);
    assert_eq!(decision.signatures.verified(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_statement_about_another_model_fails_verification() {
    let model = sample_model().await;
    let other = layout_model(&[("config.json", b"{}")]).await;
    let publisher = signer();
    sign_model(&model, &publisher).await;
    // A card of another model, copied here: trusted, but contradicts this model.
    attach_statement(&model, &publisher, "https://modelsign.dev/model-card/v1", Some(&other.desc), json!({})).await;
    let decision = decide_all(&model, &trust(&[&publisher])).await;
    assert!(!decision.passed);
    assert!(decision.failure.unwrap().contains("about another artifact"));
    // A cosign `sign` statement about another manifest, the same.
    let model = sample_model().await;
    sign_model(&model, &publisher).await;
    attach_statement(&model, &publisher, COSIGN_SIGN_PREDICATE_TYPE, Some(&other.desc), json!({})).await;
    assert!(!decide_all(&model, &trust(&[&publisher])).await.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cosign_sign_statement_about_the_manifest_is_a_signature() {
    let model = sample_model().await;
    let publisher = signer();
    attach_statement(&model, &publisher, COSIGN_SIGN_PREDICATE_TYPE, None, json!({})).await;
    let decision = decide_all(&model, &trust(&[&publisher])).await;
    assert!(decision.passed, "{:?}", decision.failure);
    assert!(decision.oms_bundle().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_signature_never_verifies_a_model_on_its_own() {
    let model = sample_model().await;
    let vision = signer();
    let all = model_components(&model.manifest, "test").unwrap();
    let encoder = all.iter().find(|c| c.path == "vision/encoder.bin").unwrap();
    let signed = [
        SignedComponent { path: encoder.path.clone(), digest: encoder.descriptor.digest.clone() },
        // Same digest under another path, and a path this model does not have: covers neither.
        SignedComponent { path: "text/decoder.bin".into(), digest: encoder.descriptor.digest.clone() },
        SignedComponent { path: "vision/other.bin".into(), digest: encoder.descriptor.digest.clone() },
    ];
    attach_signed(&model, &vision, &component_statement::build_statement(&signed, &[])).await;
    let decision = decide_all(&model, &trust(&[&vision])).await;
    assert!(!decision.passed);
    match &decision.signatures.checks[0].outcome {
        SignatureOutcome::ComponentSignature { components, .. } => {
            assert_eq!(components, &["vision/encoder.bin".to_string()])
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_bytes_only_after_the_signatures_pass() {
    let model = sample_model().await;
    let publisher = signer();
    let report = verify(&model.target, &model.reference, &trust(&[&publisher]), &[], 2, &crate::progress::NoProgress)
        .await
        .unwrap();
    assert!(!report.verified);
    assert!(report.components.is_empty(), "no byte is checked against an unsigned manifest");
    sign_model(&model, &publisher).await;
    let one = ["vision/encoder.bin".to_string()];
    let report = verify(&model.target, &model.reference, &trust(&[&publisher]), &one, 2, &crate::progress::NoProgress)
        .await
        .unwrap();
    assert!(report.verified, "{:?}", report.failure);
    assert_eq!(report.components.len(), 1);
    let missing = ["nope".to_string()];
    assert!(
        verify(&model.target, &model.reference, &trust(&[&publisher]), &missing, 2, &crate::progress::NoProgress)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_components_signs_only_the_matching_components() {
    let model = sample_model().await;
    let vision = signer();
    let report = crate::ops::sign::sign_components(&model.target, "v1", &["vision/**".into()], &vision).await.unwrap();
    assert_eq!(report.components, ["vision/encoder.bin"]);
    let decision = decide_all(&model, &trust(&[&vision])).await;
    assert!(!decision.passed, "a component signature verifies no model");
    assert!(matches!(
        &decision.signatures.checks[0].outcome,
        SignatureOutcome::ComponentSignature { components, .. } if components == &["vision/encoder.bin".to_string()]
    ));
    let err = crate::ops::sign::sign_components(&model.target, "v1", &["audio/**".into()], &vision).await;
    assert!(err.unwrap_err().to_string().contains("matches no component"));
}
