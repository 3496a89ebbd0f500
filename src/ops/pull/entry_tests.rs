//! `pull` with trust: nothing is written unless the decision passes; a complete pull gets
//! `model.sig`. On real layout folders.

use serde_json::json;

use crate::ops::verify::test_models::*;
use crate::progress::NoProgress;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_pull_writes_the_model_and_model_sig() {
    let model = sample_model().await;
    let publisher = signer();
    sign_model(&model, &publisher).await;
    let out = model.out("pulled");
    let report = super::pull(&model.target, &model.reference, &out, &[], Some(&trust(&[&publisher])), 2, &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.components.len(), 4);
    let v = report.verification.unwrap();
    assert!(v.decision.passed);
    assert_eq!(v.signature_file.as_deref(), Some(out.join("model.sig").as_path()));
    assert_eq!(std::fs::read(out.join("vision/encoder.bin")).unwrap(), b"vision weights");
    // The folder verifies as model_signing would check it.
    crate::sign::local::verify_folder(&out, None, &keys(&[&publisher])).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_pull_writes_no_model_sig() {
    let model = sample_model().await;
    let publisher = signer();
    sign_model(&model, &publisher).await;
    let out = model.out("pulled");
    let include = ["vision/*".to_string()];
    let report =
        super::pull(&model.target, &model.reference, &out, &include, Some(&trust(&[&publisher])), 2, &NoProgress)
            .await
            .unwrap();
    assert_eq!(report.components.len(), 1);
    assert!(report.verification.unwrap().signature_note.unwrap().contains("--include"));
    assert!(!out.join("model.sig").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_unless_the_decision_passes() {
    let model = sample_model().await;
    let (publisher, stranger) = (signer(), signer());
    sign_model(&model, &stranger).await;
    attach_statement(&model, &publisher, "https://example.com/scan/v1", None, json!({"ok": true})).await;
    let out = model.out("pulled");
    let err = super::pull(&model.target, &model.reference, &out, &[], Some(&trust(&[&publisher])), 2, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, crate::Error::Verification(_)), "{err}");
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert!(!out.exists(), "the output folder must not even be created");
    // Without trust the same pull writes (and says nothing about signatures).
    let report = super::pull(&model.target, &model.reference, &out, &[], None, 2, &NoProgress).await.unwrap();
    assert!(report.verification.is_none());
    assert!(!out.join("model.sig").exists());
}
