//! `modelsign keygen`: writes a new key pair as `PREFIX.key` (PKCS#8 PEM, mode 0600,
//! encrypted when a password is given) and `PREFIX.pub` (SPKI PEM). Never overwrites:
//! if either file exists, nothing is written.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sign::keys::{self, Algorithm};

/// The files [`write_key_pair`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairFiles {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
}

/// `PREFIX.key` and `PREFIX.pub`.
pub fn key_pair_paths(prefix: &Path) -> KeyPairFiles {
    let with = |ext: &str| {
        let mut name = prefix.as_os_str().to_os_string();
        name.push(ext);
        PathBuf::from(name)
    };
    KeyPairFiles { private_key: with(".key"), public_key: with(".pub") }
}

/// Generates a key pair and writes it; refuses to overwrite either file.
pub fn write_key_pair(prefix: &Path, algorithm: Algorithm, password: Option<&str>) -> Result<KeyPairFiles> {
    let paths = key_pair_paths(prefix);
    for path in [&paths.private_key, &paths.public_key] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(Error::WouldOverwrite { path: path.to_path_buf(), force_flag: false });
        }
    }
    let generated = keys::generate(algorithm, password).map_err(Error::from)?;
    write_new(&paths.private_key, generated.private_pem.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&paths.public_key, generated.public_pem.as_bytes(), 0o644) {
        let _ = fs::remove_file(&paths.private_key);
        return Err(e);
    }
    Ok(paths)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::keys::{PublicKey, SigningKey};

    #[test]
    fn writes_a_usable_pair_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("release");
        let files = write_key_pair(&prefix, Algorithm::P384, None).unwrap();
        assert_eq!(files.private_key, dir.path().join("release.key"));
        let key = SigningKey::from_pem(&fs::read_to_string(&files.private_key).unwrap(), None).unwrap();
        let public = PublicKey::from_pem(&fs::read_to_string(&files.public_key).unwrap()).unwrap();
        assert_eq!(key.public_key(), &public);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&files.private_key).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let before = fs::read(&files.private_key).unwrap();
        assert!(write_key_pair(&prefix, Algorithm::P256, None).is_err());
        assert_eq!(fs::read(&files.private_key).unwrap(), before);
        // Only the public key exists: still refused, and no private key is written.
        fs::remove_file(&files.private_key).unwrap();
        assert!(write_key_pair(&prefix, Algorithm::P256, None).is_err());
        assert!(!files.private_key.exists());
    }
}
