//! Where the test bed is, and the `require_testbed!` skip-or-fail rule.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The installed test bed: `$MODELSIGN_TESTBED`, else `<repo>/.testbed`.
#[derive(Debug, Clone)]
pub struct Testbed {
    root: PathBuf,
}

/// Set to `1` (CI does, via scripts/test.sh) to make a missing test bed a failure, not a skip.
pub const REQUIRE_ENV: &str = "MODELSIGN_REQUIRE_TESTBED";

/// The repository root (where Cargo.toml and scripts/ are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn testbed_dir() -> PathBuf {
    match std::env::var_os("MODELSIGN_TESTBED") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join(".testbed"),
    }
}

/// The test bed if it is installed. When it is not: panics if `MODELSIGN_REQUIRE_TESTBED=1`,
/// otherwise prints `SKIPPED: <test> needs the test bed` to stderr and returns `None`.
/// `test` names the test in the message; [`require_testbed!`] passes the current test's name.
pub fn testbed(test: &str) -> Option<Testbed> {
    match Testbed::find() {
        Ok(tb) => Some(tb),
        Err(why) => {
            let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v == "true");
            if required {
                panic!(
                    "{test} needs the test bed and {REQUIRE_ENV}=1: {why}\n\
                     run scripts/testbed.sh (or scripts/test.sh, which runs it)"
                );
            }
            // Written to the process's stderr directly: libtest captures `eprintln!` of passing
            // tests, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "*** SKIPPED: {test} needs the test bed (run scripts/testbed.sh): {why} ***"
            );
            None
        }
    }
}

/// The test bed, or a panic (for helpers used after `require_testbed!` has passed).
pub fn testbed_or_panic() -> Testbed {
    Testbed::find().unwrap_or_else(|why| panic!("the test bed is needed: {why}; run scripts/testbed.sh"))
}

/// The name of the running test (libtest and nextest name the test's thread after it).
pub fn current_test_name() -> String {
    std::thread::current().name().unwrap_or("<unnamed test>").to_string()
}

/// `let tb = require_testbed!();` — the [`Testbed`], or return early from the test (skipped),
/// or panic when `MODELSIGN_REQUIRE_TESTBED=1`. Works in sync and async tests.
#[macro_export]
macro_rules! require_testbed {
    () => {
        match $crate::support::testbed(&$crate::support::current_test_name()) {
            Some(tb) => tb,
            None => return,
        }
    };
}

impl Testbed {
    /// Looks for the test bed without printing anything.
    pub fn find() -> Result<Testbed, String> {
        let root = testbed_dir();
        if !root.join("env").is_file() {
            return Err(format!("{} has no env file", root.display()));
        }
        let tb = Testbed { root };
        for tool in ["oras", "cosign", "gcr-registry", "cue-registry", "model_signing", "modelpack"] {
            if !tb.bin_dir().join(tool).exists() {
                return Err(format!("{} is missing", tb.bin_dir().join(tool).display()));
            }
        }
        for tool in ["docker-registry", "skopeo", "htpasswd", "openssl"] {
            if tb.which(tool).is_none() {
                return Err(format!("{tool} is not on PATH"));
            }
        }
        Ok(tb)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<testbed>/bin`: oras, cosign, gcr-registry, cue-registry, model_signing.
    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// The test bed's Python (a venv with model_signing and cryptography).
    pub fn python(&self) -> PathBuf {
        self.root.join("venv/bin/python")
    }

    /// PATH with the test bed's bin first.
    pub fn path_env(&self) -> OsString {
        let mut paths = vec![self.bin_dir()];
        if let Some(path) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(paths).expect("PATH")
    }

    /// Full path of a program, looked up in the test bed's bin, then PATH.
    pub fn which(&self, program: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.path_env()).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
    }

    /// A command for `program` (test bed bin first), with PATH set.
    pub fn command(&self, program: &str) -> Command {
        let exe = self.which(program).unwrap_or_else(|| panic!("{program} is not in the test bed nor on PATH"));
        let mut cmd = Command::new(exe);
        cmd.env("PATH", self.path_env());
        cmd
    }
}
