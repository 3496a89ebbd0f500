//! Registry credentials from docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): `auths` entries, per-registry `credHelpers` and the default
//! `credsStore` (`docker-credential-<name> get`), and the `login`/`logout` the CLI offers.
//!
//! Invariant: a secret never appears in `Debug` output, in an error or in a note; only
//! where it came from (the file or the helper) does. The file is read as keys are
//! (`local_fs::read_capped_with`): a regular file only, opened without blocking (a FIFO is
//! refused, never waited on), at most [`MAX_CONFIG_FILE`] bytes actually read.
//!
//! Submodules: `helper` runs credential helpers, `store` writes `login`/`logout`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use crate::error::{Error, Result};

mod helper;
mod store;

/// The key docker uses for Docker Hub.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// No docker `config.json` is larger: real ones, with dozens of registries, hold a few KiB.
pub const MAX_CONFIG_FILE: u64 = 4 << 20;

/// A secret for one registry.
#[derive(Clone)]
pub struct Credential {
    pub(crate) secret: Secret,
    /// Where it came from, for messages: a config file path or a helper name.
    pub source: String,
}

#[derive(Clone)]
pub(crate) enum Secret {
    /// A user name and a password (or a personal access token used as one).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token server.
    IdentityToken { token: String },
}

impl Credential {
    pub fn basic(username: impl Into<String>, password: impl Into<String>, source: impl Into<String>) -> Self {
        Credential {
            secret: Secret::Basic { username: username.into(), password: password.into() },
            source: source.into(),
        }
    }

    pub fn identity_token(token: impl Into<String>, source: impl Into<String>) -> Self {
        Credential { secret: Secret::IdentityToken { token: token.into() }, source: source.into() }
    }

    /// The user name, when the credential has one.
    pub fn username(&self) -> Option<&str> {
        match &self.secret {
            Secret::Basic { username, .. } => Some(username),
            Secret::IdentityToken { .. } => None,
        }
    }

    /// `Basic …` for an `Authorization` header, for user/password credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match &self.secret {
            Secret::Basic { username, password } => {
                Some(format!("Basic {}", BASE64.encode(format!("{username}:{password}"))))
            }
            Secret::IdentityToken { .. } => None,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.secret {
            Secret::Basic { .. } => "basic",
            Secret::IdentityToken { .. } => "identity token",
        };
        f.debug_struct("Credential")
            .field("kind", &kind)
            .field("username", &self.username())
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// Normalises a registry name or a config key to a bare lowercase `host[:port]`:
/// `https://host/v1/`, `http://host`, `host/` and `host` are the same registry, and
/// Docker Hub's several names are all `docker.io`.
pub fn normalize_registry(key: &str) -> String {
    let key = key.trim();
    let rest = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

/// The server address a credential helper is asked about, and the `auths` key written.
fn server_address(registry: &str) -> String {
    if normalize_registry(registry) == "docker.io" { DOCKER_HUB_KEY.to_string() } else { normalize_registry(registry) }
}

/// The first key that names the same registry as `wanted` (normalised).
fn find_key<'a>(mut keys: impl Iterator<Item = &'a String>, wanted: &str) -> Option<String> {
    keys.find(|k| normalize_registry(k) == wanted).cloned()
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// Docker's client configuration file, and how to find its credential helpers.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    /// A `PATH` to look helpers up in instead of the process's own (tests).
    helper_path: Option<OsString>,
    /// How long a credential helper may take to answer.
    helper_timeout: Duration,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_location() -> Result<Self> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => match std::env::var_os("HOME") {
                Some(h) if !h.is_empty() => PathBuf::from(h).join(".docker"),
                _ => {
                    return Err(Error::Credentials(
                        "neither DOCKER_CONFIG nor HOME is set: cannot find docker's config.json".into(),
                    ));
                }
            },
        };
        Ok(DockerConfig::at(dir.join("config.json")))
    }

    /// The config file at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        DockerConfig { path: path.into(), helper_path: None, helper_timeout: helper::TIMEOUT }
    }

    /// Looks credential helpers up in `path` (a `PATH`-style list) instead of `$PATH`.
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    /// Gives a credential helper `timeout` to answer instead of two minutes.
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = timeout;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes; `Ok(None)` when it is missing or blank. Read like a key: a regular
    /// file only (a FIFO or device is refused without blocking on it), and no more than
    /// [`MAX_CONFIG_FILE`] bytes actually read (whatever `stat` says).
    fn read_bytes(&self) -> Result<Option<Vec<u8>>> {
        let too_large = || Error::RefusedFile {
            what: "docker config".into(),
            path: self.path.clone(),
            reason: format!("larger than {} MiB, more than any docker config holds", MAX_CONFIG_FILE >> 20),
        };
        match crate::local_fs::read_capped_with(&self.path, MAX_CONFIG_FILE, "docker config", too_large) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
            Ok(bytes) => Ok(Some(bytes)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read(&self) -> Result<Option<ConfigFile>> {
        let Some(bytes) = self.read_bytes()? else { return Ok(None) };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Credentials(format!("{}: not a valid docker config: {e}", self.path.display())))
    }

    /// The credential for `registry`: its `credHelpers` entry, else its `auths` entry,
    /// else the `credsStore`. `Ok(None)` when there is none. Blocking (may run a helper).
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        let Some(config) = self.read()? else { return Ok(None) };
        let wanted = normalize_registry(registry);

        if let Some(key) = find_key(config.cred_helpers.keys(), &wanted) {
            let helper = &config.cred_helpers[&key];
            return self.run_helper(helper, &server_address(registry), true);
        }
        // Exact key first, then any spelling of the same registry.
        let entry = config.auths.get(registry).map(|e| (registry.to_string(), e)).or_else(|| {
            let key = find_key(config.auths.keys(), &wanted)?;
            config.auths.get(&key).map(|e| (key, e))
        });
        if let Some((key, entry)) = &entry
            && let Some(cred) = self.credential_of_entry(key, entry)?
        {
            return Ok(Some(cred));
        }
        if let Some(store) = config.creds_store.as_deref().filter(|s| !s.is_empty()) {
            // Docker stores under the address used at login, which the auths entry (a marker) keeps.
            let address = entry.map(|(k, _)| k).unwrap_or_else(|| server_address(registry));
            return self.run_helper(store, &address, false);
        }
        Ok(None)
    }

    fn credential_of_entry(&self, key: &str, entry: &AuthEntry) -> Result<Option<Credential>> {
        let source = self.path.display().to_string();
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::identity_token(token, source)));
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = || {
                Error::Credentials(format!(
                    "{}: the `auth` of `{key}` is not base64 of user:password",
                    self.path.display()
                ))
            };
            let decoded = BASE64.decode(auth.trim()).map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (user, pass) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credential::basic(user, pass, source)));
        }
        if let (Some(user), Some(pass)) = (entry.username.as_deref(), entry.password.as_deref())
            && !user.is_empty()
        {
            return Ok(Some(Credential::basic(user, pass, source)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, json).unwrap();
        (dir, DockerConfig::at(path))
    }

    fn basic(c: &Credential) -> (String, String) {
        match &c.secret {
            Secret::Basic { username, password } => (username.clone(), password.clone()),
            Secret::IdentityToken { .. } => panic!("expected basic credentials"),
        }
    }

    #[test]
    fn normalizes_keys() {
        assert_eq!(normalize_registry("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_registry("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize_registry("docker.io"), "docker.io");
        assert_eq!(normalize_registry("http://LOCALHOST:5000/"), "localhost:5000");
        assert_eq!(normalize_registry("https://registry.example/v2/"), "registry.example");
        assert_eq!(normalize_registry("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(server_address("registry-1.docker.io"), DOCKER_HUB_KEY);
        assert_eq!(server_address("https://registry.example"), "registry.example");
    }

    #[test]
    fn reads_auths_entries() {
        let auth = BASE64.encode("alice:s3cr:et");
        let (_d, cfg) = config_with(&format!(
            r#"{{"auths": {{
                "https://reg.example:5000/v1/": {{"auth": "{auth}"}},
                "other.example": {{"username": "bob", "password": "pw"}},
                "tok.example": {{"identitytoken": "refresh-me"}},
                "https://index.docker.io/v1/": {{"auth": "{auth}"}}
            }}, "unknownKey": 1}}"#
        ));
        assert_eq!(basic(&cfg.lookup("reg.example:5000").unwrap().unwrap()), ("alice".into(), "s3cr:et".into()));
        assert_eq!(basic(&cfg.lookup("http://other.example").unwrap().unwrap()), ("bob".into(), "pw".into()));
        assert!(
            matches!(cfg.lookup("tok.example").unwrap().unwrap().secret, Secret::IdentityToken { ref token } if token == "refresh-me")
        );
        assert!(cfg.lookup("registry-1.docker.io").unwrap().is_some());
        assert!(cfg.lookup("nowhere.example").unwrap().is_none());
        let debug = format!("{:?}", cfg.lookup("reg.example:5000").unwrap().unwrap());
        assert!(!debug.contains("s3cr") && debug.contains("alice") && debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn missing_or_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DockerConfig::at(dir.path().join("none.json")).lookup("x").unwrap().is_none());
        let (_d, cfg) = config_with("{not json");
        assert!(matches!(cfg.lookup("x"), Err(Error::Credentials(_))));
        let (_d, cfg) = config_with(r#"{"auths":{"x":{"auth":"!!!"}}}"#);
        let err = cfg.lookup("x").unwrap_err().to_string();
        assert!(err.contains("base64") && !err.contains("!!!"), "{err}");
    }

    /// A fake `docker-credential-test` that answers for two servers, on a private PATH.
    fn fake_helper(dir: &Path) -> OsString {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("docker-credential-test");
        std::fs::write(
            &script,
            r#"#!/bin/sh
[ "$1" = get ] || exit 3
read server
case "$server" in
  helped.example) echo '{"ServerURL":"helped.example","Username":"carol","Secret":"helper-pw"}' ;;
  stored.example:5000) echo '{"ServerURL":"stored.example:5000","Username":"<token>","Secret":"id-token"}' ;;
  broken.example) echo 'boom' >&2; exit 2 ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
"#,
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut path = OsString::from(dir);
        path.push(":/usr/bin:/bin");
        path
    }

    #[test]
    fn credential_helpers_and_store() {
        let (d, cfg) = config_with(
            r#"{"auths": {"plain.example": {"auth": "dTpw"}, "stored.example:5000": {}},
                "credHelpers": {"https://helped.example": "test", "broken.example": "test", "missing.example": "absent"},
                "credsStore": "test"}"#,
        );
        let cfg = cfg.with_helper_path(fake_helper(d.path()));
        let c = cfg.lookup("helped.example").unwrap().unwrap();
        assert_eq!(basic(&c), ("carol".into(), "helper-pw".into()));
        assert!(c.source.contains("docker-credential-test"));
        let c = cfg.lookup("stored.example:5000").unwrap().unwrap();
        assert!(matches!(c.secret, Secret::IdentityToken { ref token } if token == "id-token"));
        assert_eq!(basic(&cfg.lookup("plain.example").unwrap().unwrap()), ("u".into(), "p".into()));
        assert!(cfg.lookup("unknown.example").unwrap().is_none());
        let err = cfg.lookup("broken.example").unwrap_err().to_string();
        assert!(err.contains("boom") && err.contains("docker-credential-test"), "{err}");
        assert!(cfg.lookup("missing.example").is_err(), "a helper named in credHelpers must exist");
    }

    #[test]
    fn missing_store_helper_means_no_credentials() {
        let (d, cfg) = config_with(r#"{"credsStore": "desktop"}"#);
        let cfg = cfg.with_helper_path(d.path().as_os_str().to_owned());
        assert!(cfg.lookup("any.example").unwrap().is_none());
    }

    #[test]
    fn store_and_remove_keep_other_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.json");
        let cfg = DockerConfig::at(&path);
        cfg.store("reg.example:5000", "alice", "pw1").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        let mut raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        raw["credHelpers"] = serde_json::json!({"x.example": "test"});
        raw["auths"]["https://reg.example:5000/v1/"] = serde_json::json!({"auth": "b2xkOm9sZA=="});
        raw["auths"]["keep.example"] = serde_json::json!({"auth": "a2VlcDprZWVw"});
        std::fs::write(&path, serde_json::to_vec(&raw).unwrap()).unwrap();
        cfg.store("http://reg.example:5000", "alice", "pw2").unwrap();
        let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(raw["credHelpers"]["x.example"], "test");
        assert_eq!(raw["auths"].as_object().unwrap().len(), 2, "{raw}");
        assert_eq!(basic(&cfg.lookup("reg.example:5000").unwrap().unwrap()), ("alice".into(), "pw2".into()));
        cfg.remove("reg.example:5000").unwrap();
        assert!(cfg.lookup("reg.example:5000").unwrap().is_none());
        assert!(cfg.lookup("keep.example").unwrap().is_some());
        assert!(matches!(cfg.remove("reg.example:5000"), Err(Error::Credentials(_))));
    }
}
