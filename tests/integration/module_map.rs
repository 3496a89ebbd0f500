//! The module map has no import cycles (`scripts/module-cycles.py`; docs/ARCHITECTURE.md,
//! "Layers"): a module that needs something from a module that needs it back moves the
//! shared part down instead.

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
