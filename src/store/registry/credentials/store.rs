//! `login`/`logout` writes: an `auths` entry stored or removed, every other key of the
//! file kept, the file replaced atomically with mode 0600.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{DockerConfig, normalize_registry, server_address};
use crate::error::{Error, Result};

impl DockerConfig {
    /// Stores user/password credentials for `registry` in `auths`, replacing any entry for
    /// the same registry and keeping every other key of the file. The file is written
    /// atomically with mode 0600 (its folder is created with 0700).
    pub fn store(&self, registry: &str, username: &str, password: &str) -> Result<()> {
        let mut root = self.read_raw()?;
        let auths = root.entry("auths").or_insert_with(|| serde_json::Value::Object(Default::default()));
        let auths = auths
            .as_object_mut()
            .ok_or_else(|| Error::Credentials(format!("{}: `auths` is not an object", self.path.display())))?;
        let wanted = normalize_registry(registry);
        auths.retain(|k, _| normalize_registry(k) != wanted);
        auths.insert(
            server_address(registry),
            serde_json::json!({ "auth": BASE64.encode(format!("{username}:{password}")) }),
        );
        self.write_raw(&root)
    }

    /// Removes the `auths` entries of `registry`. An error when there were none.
    pub fn remove(&self, registry: &str) -> Result<()> {
        let mut root = self.read_raw()?;
        let wanted = normalize_registry(registry);
        let removed = match root.get_mut("auths").and_then(|a| a.as_object_mut()) {
            Some(auths) => {
                let before = auths.len();
                auths.retain(|k, _| normalize_registry(k) != wanted);
                before - auths.len()
            }
            None => 0,
        };
        if removed == 0 {
            return Err(Error::Credentials(format!(
                "not logged in to {registry}: no credentials for it in {}",
                self.path.display()
            )));
        }
        self.write_raw(&root)
    }

    fn read_raw(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        match self.read_bytes()? {
            None => Ok(Default::default()),
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::Credentials(format!("{}: not a valid docker config: {e}", self.path.display()))),
        }
    }

    fn write_raw(&self, root: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut bytes = serde_json::to_vec_pretty(root).expect("JSON value serialises");
        bytes.push(b'\n');
        let tmp = dir.join(format!(".config.json.modelsign-{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(&self.path, e));
        }
        Ok(())
    }
}
