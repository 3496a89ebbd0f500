//! The ingestion gate: `approve` decides before anything reaches the destination, and
//! `copy_approved` copies exactly what was decided on, with every referrer.

use serde_json::json;

use crate::ops::verify::{self, test_models::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_gate_lets_through_only_what_passes() {
    let model = sample_model().await;
    let (publisher, stranger) = (signer(), signer());
    sign_model(&model, &publisher).await;
    attach_statement(&model, &stranger, "https://example.com/scan/v1", None, json!({})).await;
    let err = super::approve(&model.target, "v1", &trust(&[&stranger])).await.err().unwrap();
    assert!(err.to_string().contains("nothing was copied"), "{err}");
    let approved = super::approve(&model.target, "v1", &trust(&[&publisher])).await.unwrap();
    assert_eq!(approved.digest(), &model.desc.digest);
    let dst_ref: crate::reference::Reference = format!("oci:{}:v1", model.out("mirror").display()).parse().unwrap();
    let dst = crate::store::Target::open(&dst_ref, &crate::store::TargetOptions::default(), true).await.unwrap();
    let report = super::copy_approved(approved, &dst, Some("v1"), 2, &crate::progress::NoProgress).await.unwrap();
    assert_eq!(report.referrers, 3, "every signature and attestation is copied, trusted or not");
    // The copy verifies as the source did.
    let mirrored = TestModel { target: dst, reference: dst_ref, ..model };
    let all = verify::model_components(&mirrored.manifest, "test").unwrap();
    let decision = verify::decide(&mirrored.target, &mirrored.desc, &all, &all, &trust(&[&publisher])).await.unwrap();
    assert!(decision.passed, "{:?}", decision.failure);
}
