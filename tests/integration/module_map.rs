//! The module map has no import cycles (`scripts/module-cycles.py`; docs/ARCHITECTURE.md,
//! "Rules that matter"): a module that needs something from a module that needs it back moves the
//! shared part down instead. And no module grows past ~500 lines.

use std::path::Path;
use std::process::Command;

/// `scripts/module-cycles.py` on `src` (the crate's own when `None`).
fn find_cycles(src: Option<&Path>) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/module-cycles.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script);
    if let Some(src) = src {
        cmd.arg(src);
    }
    cmd.output().unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()))
}

#[test]
fn src_modules_import_each_other_without_a_cycle() {
    let out = find_cycles(None);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import cycles among src/ modules:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.starts_with("no import cycles among "), "{report}");
}

/// The check above can fail: cycles planted in a small crate, in each way a module names
/// another (`crate::` paths, `super::` from a nested module, a root re-export such as
/// `crate::Result`, a bare child in a `pub use`), are each found and named; the same crate
/// without them passes.
#[test]
fn the_cycle_check_finds_planted_cycles() {
    let dir = tempfile::tempdir().expect("scratch folder");
    let src = dir.path().join("src");
    let write = |path: &str, text: &str| {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a folder");
        std::fs::write(&path, text).expect("a module");
    };
    write("lib.rs", "pub mod digest;\npub mod error;\npub mod sign;\npub mod ops;\npub use error::{Error, Result};\n");
    write(
        "error.rs",
        "use crate::digest::Digest;\npub struct Error(Digest);\npub type Result<T> = std::result::Result<T, Error>;\n",
    );
    write("sign/mod.rs", "mod oms;\npub use oms::Statement;\n");
    write("sign/oms.rs", "pub struct Statement;\n");
    write("ops/mod.rs", "pub mod pull;\npub mod verify;\n");
    write("ops/verify/mod.rs", "mod rules;\n");
    write("ops/verify/rules.rs", "pub fn check() {}\n");
    let acyclic = "pub struct Digest;\n\n#[cfg(test)]\nmod tests {\n    use crate::sign::Statement;\n}\n";
    write("digest.rs", acyclic);
    write("ops/pull.rs", "pub fn pull() { super::verify::rules::check() }\n");
    let out = find_cycles(Some(&src));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && report.starts_with("no import cycles among 9 modules"), "{report}");

    // digest -> error through the root's re-export; ops/verify -> ops/pull through `super::`;
    // error -> sign through sign's re-export of a child.
    write("digest.rs", &format!("pub fn of() -> crate::Result<()> {{ todo!() }}\n{acyclic}"));
    write("ops/verify/rules.rs", "pub fn check() { super::super::pull::pull() }\n");
    let out = find_cycles(Some(&src));
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("cycle: digest <-> error\n"), "{report}");
    assert!(report.contains("digest -> error: digest -> crate::Result"), "{report}");
    assert!(report.contains("cycle: ops/pull <-> ops/verify\n"), "{report}");

    write(
        "error.rs",
        "use crate::sign::Statement;\npub struct Error(Statement);\npub type Result<T> = std::result::Result<T, Error>;\n",
    );
    write("sign/oms.rs", "pub struct Statement(crate::error::Error);\n");
    let out = find_cycles(Some(&src));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("cycle: error <-> sign\n"), "{report}");
    assert!(report.contains("error -> sign: error -> crate::sign::Statement"), "{report}");
}

/// Small modules with one job: no `src/` module grows past ~500 lines (a file of unit
/// tests, `tests.rs`, aside). A module that does is split along its seams.
#[test]
fn src_modules_stay_small() {
    const LIMIT: usize = 550;
    fn walk(dir: &Path, out: &mut Vec<(String, usize)>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((path.display().to_string(), text.lines().count()));
            }
        }
    }
    let mut sizes = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut sizes);
    assert!(sizes.len() > 50, "only {} modules found under src/", sizes.len());
    let too_big: Vec<_> = sizes.iter().filter(|(_, lines)| *lines > LIMIT).collect();
    assert!(too_big.is_empty(), "modules over {LIMIT} lines (split them along their seams): {too_big:?}");
}
