//! Docker's `config.json` as something hostile (or broken) can make it: larger than any real
//! one, or a FIFO no one writes to. It is read through the capped, non-blocking reader of
//! keys and policies: refused in one line naming the file (and the cap), never read without
//! bound, never waited on; nothing reaches the registry.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::*;

const USER: &str = "alice";
const PASSWORD: &str = "wonderland-7";

/// `push` of a tiny model to a basic-auth registry with the private docker config, bounded
/// by a minute (a read that blocks must fail the test, not hang it).
fn push(bed: &Bed, model: &Path) -> Output {
    let reference = format!("{}/private/tiny:v1", bed.registry().addr());
    run_within(bed.ms().args(["push", &reference]).arg(model), Duration::from_secs(60))
        .expect("push hung reading docker's config.json")
}

/// Exit 1, one error line naming the config file and `reason`, and the registry stored nothing.
fn assert_refused(bed: &Bed, out: &Output, reason: &str) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", stderr_text(out));
    let line = one_error_line(out);
    let config = bed.peers.docker_config_file();
    assert!(line.contains(&config.display().to_string()) && line.contains(reason), "{line}");
    assert!(!line.contains(PASSWORD), "a password leaked: {line}");
    let storage = bed.registry().storage_dir().expect("distribution storage");
    assert!(files_under(storage).is_empty(), "the registry stored something: {:?}", files_under(storage).keys());
    line
}

#[test]
fn a_docker_config_over_the_cap_is_refused_in_one_line_and_nothing_is_pushed() {
    let bed = bed!(RegistryKind::basic(USER, PASSWORD));
    let model = write_tiny_model(bed.path(), "tiny", 10_000);
    // Valid JSON with the right credentials, padded past 4 MiB: read whole, it would work.
    bed.peers.docker_login(bed.registry().addr(), USER, PASSWORD);
    let config = bed.peers.docker_config_file();
    let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    value["padding"] = serde_json::Value::String("x".repeat(4 << 20));
    std::fs::write(&config, serde_json::to_vec(&value).unwrap()).unwrap();
    let line = assert_refused(&bed, &push(&bed, &model), "larger than 4 MiB");
    assert!(line.contains(bed.registry().addr()), "the line names the registry: {line}");

    // `login` reads the file to keep its other keys: it refuses too, and leaves it alone.
    let before = std::fs::read(&config).unwrap();
    let out = run_with_stdin(
        bed.peers.modelsign().args(["--plain-http", "login", bed.registry().addr(), "-u", USER, "--password-stdin"]),
        PASSWORD.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_text(&out));
    let line = one_error_line(&out);
    assert!(line.contains(&config.display().to_string()) && line.contains("larger than 4 MiB"), "{line}");
    assert!(std::fs::read(&config).unwrap() == before, "login rewrote the oversized config");
}

#[test]
fn a_docker_config_that_is_a_fifo_is_refused_without_hanging() {
    let bed = bed!(RegistryKind::basic(USER, PASSWORD));
    let model = write_tiny_model(bed.path(), "tiny", 10_000);
    std::fs::create_dir_all(bed.peers.docker_config_dir()).unwrap();
    run_ok(Command::new("mkfifo").arg(bed.peers.docker_config_file()));
    assert_refused(&bed, &push(&bed, &model), "not a regular file");
}
