//! Local files an attacker (or an accident) can put where modelsign reads: a model card that
//! is a FIFO, an endless `model.sig` in a folder being pushed. Each is read with a cap on the
//! bytes actually read, and FIFOs and devices are refused without blocking on them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn mkfifo(path: &Path) {
    run_ok(Command::new("mkfifo").arg(path));
}

#[test]
fn a_model_card_that_is_a_fifo_is_refused_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, _) = keygen(tmp.path(), "signer", "p256");
    let card = tmp.path().join("card.yaml");
    mkfifo(&card);
    // The card is read before any network: no registry is needed (nor reached).
    let output = run_within(
        modelsign()
            .env("HOME", tmp.path())
            .args(["--plain-http", "attest", "127.0.0.1:9/models/x:v1", "--model-card"])
            .arg(&card)
            .arg("--key")
            .arg(&key),
        Duration::from_secs(20),
    )
    .expect("attest blocked on a FIFO model card");
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(line.contains("card.yaml") && line.contains("not a regular file"), "{line}");
}

#[test]
fn an_endless_model_sig_in_a_pushed_folder_is_read_no_further_than_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny_model(tmp.path(), "tiny", 10_000);
    // 64 GiB that `stat` reports and a read returns (zeros, no disk used). Read whole it
    // would take all memory: under a 3 GiB address-space limit it must still fail cleanly.
    let sig = std::fs::File::create(model.join("model.sig")).unwrap();
    sig.set_len(64 << 30).unwrap();
    drop(sig);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 3145728 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_modelsign"))
        .args(["--plain-http", "--no-progress", "push", "127.0.0.1:9/models/x:v1"])
        .arg(&model)
        .env("HOME", tmp.path())
        .env("MODELSIGN_CACHE_DIR", tmp.path().join("cache"));
    let output = run_within(&mut cmd, Duration::from_secs(60)).expect("push hung reading model.sig");
    // A signature that cannot be a signature: the model is not pushed with it (3).
    assert_eq!(output.status.code(), Some(3), "{}", stderr_text(&output));
    let line = one_error_line(&output);
    assert!(line.contains("model.sig is larger than 268435456 bytes"), "{line}");
}
