//! The module map has no import cycles (`scripts/module-cycles.py`; docs/ARCHITECTURE.md,
//! "Layers"): a module that needs something from a module that needs it back moves the
//! shared part down instead. And no module grows past ~500 lines.

use std::path::Path;
use std::process::Command;

#[test]
fn src_modules_import_each_other_without_a_cycle() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/module-cycles.py");
    let out = Command::new("python3")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import cycles among src/ modules:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.starts_with("no import cycles among "), "{report}");
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
