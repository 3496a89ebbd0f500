//! The OpenSSF Model Signing (OMS) v1.0 predicate, `https://model_signing/signature/v1.0`,
//! as `model_signing` 1.1.1 writes and checks it.
//!
//! A statement has exactly one subject, named after the model, whose `sha256` digest is
//! the [`root_digest`] of the resources: SHA-256 over their raw digests concatenated in
//! the listed order. The predicate lists every file (`resources`, path relative to the
//! model root with `/`, in path-component order; `"."` for a single-file model) with
//! the SHA-256 of its content, and how the list was made (`serialization`: method
//! `files`, hash `sha256`, whether symlinks were followed, which paths were left out).
//!
//! Only per-file SHA-256 is supported; sharded statements (an API-only feature of
//! `model_signing`) are refused with [`Error::Sharded`].

use std::collections::HashSet;

use serde_json::{Value, json};

use super::statement::{Statement, Subject};
use super::{Error, Result};
use crate::digest::{Digest, Hasher};

/// The OMS v1.0 predicate type.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

/// The predicate type `model_signing` 0.2 wrote: one subject per file, an empty predicate.
/// `model_signing` 1.x still verifies it (`dsse_payload_to_manifest_compat`).
pub const PREDICATE_TYPE_V0_2: &str = "https://model_signing/Digests/v0.1";

/// The name of the only resource of a single-file model.
pub const SINGLE_FILE_NAME: &str = ".";

/// One signed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Path relative to the model root, `/`-separated, or `"."` for a single-file model.
    pub name: String,
    /// SHA-256 of the whole file (algorithm `sha256`).
    pub digest: Digest,
}

/// The content of a checked OMS statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The subject's name: the model folder's base name, informational only.
    pub model_name: String,
    /// The root digest (the subject's `sha256`), checked against `resources`.
    pub root_digest: Digest,
    /// Signed files, in the order the statement lists them.
    pub resources: Vec<Resource>,
    /// Whether symlinks were followed when the model was hashed.
    pub allow_symlinks: bool,
    /// Paths (relative to the model root) left out when the model was hashed; a
    /// directory leaves out everything below it. Verification leaves them out too.
    pub ignore_paths: Vec<String>,
}

/// SHA-256 over the raw resource digests, concatenated in the given order.
pub fn root_digest(resources: &[Resource]) -> Digest {
    let mut hasher = Hasher::new();
    for r in resources {
        hasher.update(r.digest.raw());
    }
    hasher.finish()
}

/// Builds the statement `model_signing sign` would write for these resources.
///
/// `resources` must already be in path-component order (what [`crate::folder::scan`]
/// yields). `ignore_paths` is recorded as given, and the key is left out when it is
/// empty, as `model_signing` does.
pub fn build_statement(
    model_name: &str,
    resources: &[Resource],
    ignore_paths: &[String],
    allow_symlinks: bool,
) -> Statement {
    let mut serialization = json!({
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": allow_symlinks,
    });
    if !ignore_paths.is_empty() {
        serialization["ignore_paths"] = json!(ignore_paths);
    }
    let resources_json: Vec<Value> =
        resources.iter().map(|r| json!({"name": r.name, "algorithm": "sha256", "digest": r.digest.hex()})).collect();
    let subject =
        Subject { name: model_name.to_string(), digest: [("sha256".to_string(), root_digest(resources).hex())].into() };
    Statement::new(vec![subject], PREDICATE_TYPE, json!({"serialization": serialization, "resources": resources_json}))
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidStatement(reason.into())
}

/// Whether `name` is a safe relative path: no empty, `.` or `..` component, no leading
/// `/`, no backslash or NUL. (`"."` alone, the single-file name, is checked apart.)
pub(crate) fn is_safe_relative_path(name: &str) -> bool {
    !name.is_empty() && !name.contains(['\\', '\0']) && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

impl Manifest {
    /// Checks an OMS v1.0 statement and returns what it signs. Fails unless: the
    /// predicate type is OMS v1.0, there is exactly one subject with a `sha256` digest
    /// equal to the root digest of the resources, every resource is `sha256` with a
    /// valid digest, names are safe relative paths (or a lone `"."`) and unique.
    pub fn from_statement(statement: &Statement) -> Result<Self> {
        if statement.statement_type != super::statement::STATEMENT_TYPE {
            return Err(invalid(format!("OMS statements are in-toto v1, not `{}`", statement.statement_type)));
        }
        if statement.predicate_type == PREDICATE_TYPE_V0_2 {
            return Manifest::from_v0_2_statement(statement);
        }
        if statement.predicate_type != PREDICATE_TYPE {
            return Err(invalid(format!(
                "unsupported predicate type `{}` (expected {PREDICATE_TYPE})",
                statement.predicate_type
            )));
        }
        let [subject] = statement.subject.as_slice() else {
            return Err(invalid(format!("expected exactly one subject, got {}", statement.subject.len())));
        };
        let claimed = subject.digest.get("sha256").ok_or_else(|| invalid("the subject has no sha256 digest"))?;
        let claimed_digest = Digest::from_hex(claimed)
            .map_err(|_| invalid(format!("the subject's sha256 digest `{claimed}` is not 64 lowercase hex digits")))?;

        let predicate = statement.predicate.as_object().ok_or_else(|| invalid("the predicate is not an object"))?;
        let serialization = predicate
            .get("serialization")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("the predicate has no `serialization` object"))?;
        match serialization.get("method").and_then(Value::as_str) {
            Some("files") => {}
            Some("shards") => return Err(Error::Sharded),
            other => return Err(invalid(format!("unsupported serialization method {other:?} (expected \"files\")"))),
        }
        match serialization.get("hash_type").and_then(Value::as_str) {
            Some("sha256") => {}
            other => return Err(invalid(format!("unsupported hash type {other:?} (only \"sha256\" is supported)"))),
        }
        let allow_symlinks = serialization
            .get("allow_symlinks")
            .and_then(Value::as_bool)
            .ok_or_else(|| invalid("`serialization.allow_symlinks` is missing or not a boolean"))?;
        let mut ignore_paths = Vec::new();
        match serialization.get("ignore_paths") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let path = item.as_str().ok_or_else(|| invalid("`ignore_paths` holds a non-string"))?;
                    let path = path.trim_end_matches('/');
                    if !is_safe_relative_path(path) {
                        return Err(invalid(format!(
                            "unsafe ignore path `{path}` (it must be a relative path inside the model)"
                        )));
                    }
                    ignore_paths.push(path.to_string());
                }
            }
            Some(_) => return Err(invalid("`ignore_paths` is not a list")),
        }

        let items = predicate
            .get("resources")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("the predicate has no `resources` list"))?;
        let mut resources = Vec::with_capacity(items.len());
        let mut seen = HashSet::with_capacity(items.len());
        for item in items {
            let field = |key: &str| {
                item.get(key)
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("a resource has no string `{key}`")))
            };
            let name = field("name")?;
            let algorithm = field("algorithm")?;
            if algorithm.starts_with("sha256-sharded") {
                return Err(Error::Sharded);
            }
            if algorithm != "sha256" {
                return Err(invalid(format!(
                    "resource `{name}` uses unsupported algorithm `{algorithm}` (only sha256)"
                )));
            }
            if !(is_safe_relative_path(name) || (name == SINGLE_FILE_NAME && items.len() == 1)) {
                return Err(invalid(format!("unsafe resource name `{name}`")));
            }
            let hex_digest = field("digest")?;
            let digest = Digest::from_hex(hex_digest)
                .map_err(|_| invalid(format!("resource `{name}` has an invalid digest `{hex_digest}`")))?;
            if !seen.insert(name) {
                return Err(Error::DuplicateResource(name.to_string()));
            }
            resources.push(Resource { name: name.to_string(), digest });
        }
        let computed = root_digest(&resources);
        if computed != claimed_digest {
            return Err(Error::RootDigestMismatch { claimed: claimed.clone(), computed });
        }
        Ok(Manifest {
            model_name: subject.name.clone(),
            root_digest: computed,
            resources,
            allow_symlinks,
            ignore_paths,
        })
    }

    /// A `model_signing` 0.2 statement: each subject is a file (name, `sha256`), nothing
    /// else is signed; as in `model_signing`, files are compared by name and digest, symlinks
    /// are not allowed and nothing is ignored but the signature and git paths.
    fn from_v0_2_statement(statement: &Statement) -> Result<Self> {
        if statement.subject.is_empty() {
            return Err(invalid("a model_signing 0.2 statement without subjects"));
        }
        let mut resources = Vec::with_capacity(statement.subject.len());
        let mut seen = HashSet::with_capacity(statement.subject.len());
        for subject in &statement.subject {
            let name = subject.name.as_str();
            if !is_safe_relative_path(name) {
                return Err(invalid(format!("unsafe resource name `{name}`")));
            }
            let hex_digest =
                subject.digest.get("sha256").ok_or_else(|| invalid(format!("`{name}` has no sha256 digest")))?;
            let digest = Digest::from_hex(hex_digest)
                .map_err(|_| invalid(format!("resource `{name}` has an invalid digest `{hex_digest}`")))?;
            if !seen.insert(name) {
                return Err(Error::DuplicateResource(name.to_string()));
            }
            resources.push(Resource { name: name.to_string(), digest });
        }
        Ok(Manifest {
            model_name: String::new(),
            root_digest: root_digest(&resources),
            resources,
            allow_symlinks: false,
            ignore_paths: Vec::new(),
        })
    }

    /// Whether this is a single-file model (one resource named `"."`).
    pub fn is_single_file(&self) -> bool {
        matches!(self.resources.as_slice(), [r] if r.name == SINGLE_FILE_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources() -> Vec<Resource> {
        vec![
            Resource { name: "a/b.txt".into(), digest: Digest::of(b"1") },
            Resource { name: "a-b.txt".into(), digest: Digest::of(b"2") },
            Resource { name: "empty".into(), digest: Digest::of(b"") },
        ]
    }

    #[test]
    fn refuses_an_oms_statement_that_is_not_in_toto_v1() {
        let mut statement = build_statement("tiny", &resources(), &[], false);
        statement.statement_type = crate::sign::statement::STATEMENT_TYPE_V01.into();
        assert!(Manifest::from_statement(&statement).is_err());
    }

    #[test]
    fn builds_and_parses_back() {
        let ignore = vec!["model.sig".to_string(), ".git".to_string()];
        let statement = build_statement("tiny", &resources(), &ignore, false);
        let reparsed = Statement::from_json(&statement.to_json()).unwrap();
        let manifest = Manifest::from_statement(&reparsed).unwrap();
        assert_eq!(manifest.resources, resources());
        assert_eq!(manifest.model_name, "tiny");
        assert_eq!(manifest.ignore_paths, ignore);
        assert!(!manifest.allow_symlinks);
        let mut raw = Vec::new();
        for r in resources() {
            raw.extend_from_slice(r.digest.raw());
        }
        assert_eq!(manifest.root_digest, Digest::of(&raw));
        let serialization = &reparsed.predicate["serialization"];
        assert_eq!(serialization["method"], "files");
        assert_eq!(serialization["hash_type"], "sha256");
    }

    #[test]
    fn leaves_out_empty_ignore_paths() {
        let statement = build_statement("m", &resources(), &[], true);
        assert!(statement.predicate["serialization"].get("ignore_paths").is_none());
        assert!(Manifest::from_statement(&statement).unwrap().allow_symlinks);
    }

    #[test]
    fn rejects_two_subjects() {
        let mut statement = build_statement("m", &resources(), &[], false);
        statement.subject.push(statement.subject[0].clone());
        let err = Manifest::from_statement(&statement).unwrap_err();
        assert!(matches!(err, Error::InvalidStatement(ref m) if m.contains("exactly one subject")), "{err}");
        statement.subject.clear();
        assert!(Manifest::from_statement(&statement).is_err());
    }

    #[test]
    fn rejects_duplicate_resource() {
        let mut r = resources();
        r.push(r[0].clone());
        let statement = build_statement("m", &r, &[], false);
        assert!(matches!(Manifest::from_statement(&statement), Err(Error::DuplicateResource(n)) if n == "a/b.txt"));
    }

    #[test]
    fn rejects_wrong_root_digest() {
        let mut statement = build_statement("m", &resources(), &[], false);
        statement.subject[0].digest.insert("sha256".into(), Digest::of(b"x").hex());
        assert!(matches!(Manifest::from_statement(&statement), Err(Error::RootDigestMismatch { .. })));
        // Reordering the resources changes the root digest too: order is signed.
        let mut statement = build_statement("m", &resources(), &[], false);
        statement.predicate["resources"].as_array_mut().unwrap().swap(0, 1);
        assert!(matches!(Manifest::from_statement(&statement), Err(Error::RootDigestMismatch { .. })));
    }

    #[test]
    fn rejects_sharded_and_other_algorithms() {
        let mut statement = build_statement("m", &resources(), &[], false);
        statement.predicate["resources"][0]["algorithm"] = json!("sha256-sharded-1000000000");
        assert!(matches!(Manifest::from_statement(&statement), Err(Error::Sharded)));
        let mut statement = build_statement("m", &resources(), &[], false);
        statement.predicate["serialization"]["method"] = json!("shards");
        assert!(matches!(Manifest::from_statement(&statement), Err(Error::Sharded)));
        let mut statement = build_statement("m", &resources(), &[], false);
        statement.predicate["resources"][0]["algorithm"] = json!("blake2");
        assert!(Manifest::from_statement(&statement).is_err());
        let mut statement = build_statement("m", &resources(), &[], false);
        statement.predicate["serialization"]["hash_type"] = json!("blake3");
        assert!(Manifest::from_statement(&statement).is_err());
        let mut statement = build_statement("m", &resources(), &[], false);
        statement.predicate_type = "https://model_signing/Digests/v0.2".into();
        assert!(Manifest::from_statement(&statement).is_err());
    }

    #[test]
    fn reads_model_signing_0_2_statements_one_subject_per_file() {
        let files = resources();
        let subjects: Vec<Subject> = files
            .iter()
            .map(|r| Subject { name: r.name.clone(), digest: [("sha256".to_string(), r.digest.hex())].into() })
            .collect();
        let statement = Statement::new(subjects.clone(), PREDICATE_TYPE_V0_2, json!({"unused": "x"}));
        let manifest = Manifest::from_statement(&statement).unwrap();
        assert_eq!(manifest.resources, files);
        assert!(!manifest.allow_symlinks && manifest.ignore_paths.is_empty());
        // The same checks on names and digests as for v1.0.
        for (name, digest) in [("../x", files[0].digest.hex()), ("a", "nothex".to_string())] {
            let mut bad = subjects.clone();
            bad[0] = Subject { name: name.into(), digest: [("sha256".to_string(), digest)].into() };
            assert!(Manifest::from_statement(&Statement::new(bad, PREDICATE_TYPE_V0_2, json!({}))).is_err(), "{name}");
        }
        let twice = vec![subjects[0].clone(), subjects[0].clone()];
        assert!(matches!(
            Manifest::from_statement(&Statement::new(twice, PREDICATE_TYPE_V0_2, json!({}))),
            Err(Error::DuplicateResource(_))
        ));
        assert!(Manifest::from_statement(&Statement::new(vec![], PREDICATE_TYPE_V0_2, json!({}))).is_err());
    }

    #[test]
    fn rejects_unsafe_names() {
        for name in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a\\b", "."] {
            let mut r = resources();
            r[0].name = name.into();
            let statement = build_statement("m", &r, &[], false);
            assert!(Manifest::from_statement(&statement).is_err(), "{name}");
        }
        for path in [".", "..", "/abs", "a/../b"] {
            let statement = build_statement("m", &resources(), &[path.to_string()], false);
            assert!(Manifest::from_statement(&statement).is_err(), "{path}");
        }
    }

    #[test]
    fn single_file_model() {
        let r = vec![Resource { name: ".".into(), digest: Digest::of(b"w") }];
        let manifest = Manifest::from_statement(&build_statement("w.bin", &r, &[], false)).unwrap();
        assert!(manifest.is_single_file());
        assert_eq!(manifest.root_digest, Digest::of(Digest::of(b"w").raw()));
    }
}
