//! Test helpers (unit tests only): a small model pushed to a real OCI layout folder,
//! signers, and statements attached as referrers the way `sign` and `attest` attach them.

use std::path::PathBuf;

use crate::oci::{Descriptor, Manifest};
use crate::ops::push::{self, PackOptions};
use crate::ops::verify::Trust;
use crate::progress::NoProgress;
use crate::reference::Reference;
use crate::sign::statement::{Statement, Subject};
use crate::sign::{Algorithm, Signer, SigningKey, TrustPolicy};
use crate::store::{Target, TargetOptions};

pub struct TestModel {
    pub dir: tempfile::TempDir,
    pub target: Target,
    pub reference: Reference,
    pub desc: Descriptor,
    pub manifest: Manifest,
}

impl TestModel {
    /// A fresh folder under the test's temporary folder (not created).
    pub fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Pushes `files` as a model to `oci:<tmp>/layout:v1`.
pub async fn layout_model(files: &[(&str, &[u8])]) -> TestModel {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    for (path, bytes) in files {
        let p = model.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let reference: Reference = format!("oci:{}:v1", dir.path().join("layout").display()).parse().unwrap();
    let target = Target::open(&reference, &TargetOptions::default(), true).await.unwrap();
    let packed = push::pack(&model, &PackOptions::default(), Some("v1"), &NoProgress).unwrap();
    let report = push::push(&target, &reference, &packed, 2, &NoProgress).await.unwrap();
    let (desc, _) = crate::ops::model::fetch_model_manifest(&target, &report.digest.to_string()).await.unwrap();
    TestModel { dir, target, reference, desc, manifest: packed.manifest }
}

/// A model with a config, weights under `vision/` and `text/`, and a tokenizer.
pub async fn sample_model() -> TestModel {
    layout_model(&[
        ("config.json", b"{\"model_type\":\"test\"}"),
        ("vision/encoder.bin", b"vision weights"),
        ("text/decoder.bin", b"text weights"),
        ("tokenizer.json", b"{}"),
    ])
    .await
}

pub fn signer() -> Signer {
    Signer::from_key(SigningKey::generate(Algorithm::P256).unwrap())
}

pub fn keys(signers: &[&Signer]) -> TrustPolicy {
    signers.iter().fold(TrustPolicy::new(), |t, s| t.trust_key(s.public_key().clone()))
}

pub fn trust(signers: &[&Signer]) -> Trust {
    Trust::Keys(keys(signers))
}

/// Signs the model with `sign REF`'s two statements.
pub async fn sign_model(model: &TestModel, signer: &Signer) {
    crate::ops::sign::sign_reference(&model.target, "v1", "layout", signer).await.unwrap();
}

/// A statement of `predicate_type` about `subject` (the model when `None`), signed and attached.
pub async fn attach_statement(
    model: &TestModel,
    signer: &Signer,
    predicate_type: &str,
    subject: Option<&Descriptor>,
    predicate: serde_json::Value,
) {
    let about = subject.unwrap_or(&model.desc);
    let statement = Statement::new(
        vec![Subject { name: "layout".into(), digest: [("sha256".to_string(), about.digest.hex())].into() }],
        predicate_type,
        predicate,
    );
    attach_signed(model, signer, &statement).await;
}

/// Signs `statement` and attaches it to the model.
pub async fn attach_signed(model: &TestModel, signer: &Signer, statement: &Statement) {
    let bundle = signer.sign_statement(statement).unwrap();
    crate::ops::sign::attach_bundle(&model.target, &model.desc, &bundle, &statement.predicate_type).await.unwrap();
}
