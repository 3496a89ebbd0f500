//! The components of a model manifest: their paths, checked for safety before anything is
//! written, and selected by glob.

use std::collections::HashSet;

use globset::{Glob, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::local_fs::{Dir, effective_uid};
use crate::modelpack::ANNOTATION_FILEPATH;
use crate::oci::{ANNOTATION_TITLE, Descriptor, Manifest};

/// A layer with the relative path it is written to.
#[derive(Debug, Clone)]
pub struct Component {
    pub path: String,
    pub descriptor: Descriptor,
}

impl Component {
    /// How the layer is unpacked: `None` for a single file, else the archive's compression.
    pub fn archive(&self) -> Option<crate::unpack::Compression> {
        crate::artifact_kind::archive_compression(&self.descriptor)
    }
}

/// The path a layer names: `org.cncf.model.filepath`, else `org.opencontainers.image.title`.
pub fn layer_path(desc: &Descriptor) -> Option<&str> {
    desc.annotations.get(ANNOTATION_FILEPATH).or_else(|| desc.annotations.get(ANNOTATION_TITLE)).map(String::as_str)
}

pub use crate::component_path::{MAX_NAME_BYTES, PARTIAL_DIR, unsafe_path_reason};

/// The components of a manifest, every path checked: no absolute path, `..`, backslash,
/// NUL, repeated path, or file that is also another's folder. Fails on the first bad one
/// so that nothing is written for a manifest that names any.
pub fn components(manifest: &Manifest, what: &str) -> Result<Vec<Component>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(manifest.layers.len());
    for layer in &manifest.layers {
        // Layers of other tools (KitOps, older Docker models) may name no path: they get
        // a name made from their digest (see `artifact_kind::unnamed_layer_path`).
        let unnamed;
        let path = match layer_path(layer) {
            Some(p) => p,
            None => {
                unnamed = crate::artifact_kind::unnamed_layer_path(layer);
                unnamed.as_str()
            }
        };
        if let Some(reason) = unsafe_path_reason(path) {
            return Err(Error::UnsafePath { what: what.to_string(), path: path.to_string(), reason: reason.into() });
        }
        if !seen.insert(path.to_string()) {
            return Err(Error::UnsafePath {
                what: what.to_string(),
                path: path.to_string(),
                reason: "repeats another component's path".into(),
            });
        }
        out.push(Component { path: path.to_string(), descriptor: layer.clone() });
    }
    // An archive's name is no file in the folder (its entries are), so it may share a
    // prefix with files.
    let files: HashSet<&str> = out.iter().filter(|c| c.archive().is_none()).map(|c| c.path.as_str()).collect();
    for c in out.iter().filter(|c| c.archive().is_none()) {
        let mut prefix = c.path.as_str();
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if files.contains(parent) {
                return Err(Error::UnsafePath {
                    what: what.to_string(),
                    path: c.path.clone(),
                    reason: format!("`{parent}` is both a file and a folder"),
                });
            }
            prefix = parent;
        }
    }
    Ok(out)
}

/// Keeps the components matching any of `patterns` (all when there are none). A pattern
/// matching nothing is an error, so a typo does not silently select nothing.
pub fn select(components: Vec<Component>, patterns: &[String]) -> Result<Vec<Component>> {
    if patterns.is_empty() {
        return Ok(components);
    }
    let mut globs = Vec::new();
    for p in patterns {
        let g = Glob::new(p).map_err(|e| Error::InvalidPattern {
            what: "pattern",
            pattern: Some(p.to_string()),
            reason: e.to_string(),
        })?;
        globs.push((p, g.compile_matcher()));
    }
    for (p, m) in &globs {
        if !components.iter().any(|c| m.is_match(&c.path)) {
            return Err(Error::NoSuchComponent { pattern: p.to_string(), reason: "matches no component" });
        }
    }
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        set.add(Glob::new(p).map_err(|e| Error::InvalidPattern {
            what: "pattern",
            pattern: Some(p.to_string()),
            reason: e.to_string(),
        })?);
    }
    let set = set.build().map_err(|e| Error::InvalidPattern { what: "", pattern: None, reason: e.to_string() })?;
    Ok(components.into_iter().filter(|c| set.is_match(&c.path)).collect())
}

/// Opens `DIR/.modelsign-partial`, creating it private, and takes a shared lock on it. One
/// that exists must be a folder (not a symlink) of this user that others cannot write to.
pub fn open_resume_folder(root: &Dir) -> Result<Dir> {
    loop {
        let (partial, created) = root.create_dir(PARTIAL_DIR, 0o700)?;
        let path = partial.path().to_path_buf();
        if !created {
            let (owner, mode) = partial.owner_and_mode().map_err(|e| Error::io(&path, e))?;
            let reason = if owner != effective_uid() {
                Some(format!("is owned by another user (uid {owner})"))
            } else if mode & 0o022 != 0 {
                Some(format!("is writable by others (mode {mode:o}); remove it or `chmod go-w` it"))
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(Error::UnsafePath {
                    what: format!("output folder {}", root.path().display()),
                    path: PARTIAL_DIR.into(),
                    reason: format!("the resume folder {reason}"),
                });
            }
        }
        partial.lock(false, true).map_err(|e| Error::io(&path, e))?;
        // The last pull before us may have removed it between our open and our lock.
        if partial.is_linked().map_err(|e| Error::io(&path, e))? {
            return Ok(partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn manifest(paths: &[&str]) -> Manifest {
        let layers = paths
            .iter()
            .map(|p| {
                let mut d = Descriptor::new("x", Digest::of(p.as_bytes()), 1);
                d.annotations.insert(ANNOTATION_FILEPATH.into(), p.to_string());
                d
            })
            .collect();
        Manifest::new(None, Descriptor::new("c", Digest::of(b""), 0), layers)
    }

    #[test]
    fn refuses_unsafe_paths() {
        let long = "x".repeat(256);
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a\\b",
            "a\0b",
            "",
            "a//b",
            "./a",
            "C:x",
            ".modelsign-partial/ab",
            &long,
        ] {
            assert!(components(&manifest(&[bad]), "m").is_err(), "{bad:?} accepted");
        }
        assert!(components(&manifest(&["x/.modelsign-partial", &"y".repeat(255)]), "m").is_ok());
        assert!(components(&manifest(&["a", "a"]), "m").is_err());
        assert!(components(&manifest(&["a", "a/b"]), "m").is_err());
        assert_eq!(components(&manifest(&["a b/é.txt", "c..d"]), "m").unwrap().len(), 2);
    }

    #[test]
    fn selects_by_glob() {
        let all = components(&manifest(&["a.txt", "w/x.safetensors"]), "m").unwrap();
        assert_eq!(select(all.clone(), &["*.safetensors".into()]).unwrap().len(), 1);
        assert!(select(all, &["nomatch".into()]).is_err());
    }
}
