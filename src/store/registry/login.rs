//! `login` and `logout`: checks a user name and password against a registry (through
//! the client, with its challenge and token flow) and keeps them in docker's config file.
//! Kept apart from `credentials` (which only reads and writes that file) so that the
//! client, its authentication and the credentials it reads do not depend on each other
//! in a circle.

use std::path::PathBuf;

use super::auth::CredentialSource;
use super::client::Client;
use super::credentials::{Credential, DockerConfig};
use crate::error::{Error, Result};
use crate::store::TargetOptions;

/// Checks `username`/`password` against `registry` (`GET /v2/` through its challenge, reached
/// as `options` say) and stores them in docker's config. Returns the file written.
pub async fn login(registry: &str, username: &str, password: &str, options: &TargetOptions) -> Result<PathBuf> {
    login_with(&DockerConfig::default_location()?, registry, username, password, options).await
}

/// [`login`] into a given config file.
pub async fn login_with(
    config: &DockerConfig,
    registry: &str,
    username: &str,
    password: &str,
    options: &TargetOptions,
) -> Result<PathBuf> {
    let credential = Credential::basic(username, password, "the given user name and password");
    let client = Client::new(registry, options, CredentialSource::Explicit(credential))?;
    client.check_login().await?;
    let (registry, user, pass, cfg) =
        (registry.to_string(), username.to_string(), password.to_string(), config.clone());
    tokio::task::spawn_blocking(move || cfg.store(&registry, &user, &pass))
        .await
        .map_err(|e| Error::Credentials(format!("storing credentials: {e}")))??;
    Ok(config.path().to_path_buf())
}

/// Removes the stored credentials of `registry` from docker's config. Returns the file
/// written. (Synchronous: it only edits a file.)
pub fn logout(registry: &str) -> Result<PathBuf> {
    let config = DockerConfig::default_location()?;
    config.remove(registry)?;
    Ok(config.path().to_path_buf())
}
