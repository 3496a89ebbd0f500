//! `modelsign login REGISTRY` / `modelsign logout REGISTRY`

use std::io::Read;

use clap::Args;
use modelsign::store::registry::login as registry_login;

use super::{CliResult, Global};

#[derive(Args)]
pub struct LoginArgs {
    /// Registry host[:port].
    pub registry: String,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: String,
    /// Read the password (or token) from standard input.
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry host[:port].
    pub registry: String,
}

pub async fn login(args: &LoginArgs, global: &Global) -> CliResult {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(modelsign::Error::Password("no password on standard input".into()).into());
    }
    registry_login::login(&args.registry, &args.username, password, &global.target_options()).await?;
    eprintln!("Login Succeeded");
    Ok(())
}

pub async fn logout(args: &LogoutArgs, _global: &Global) -> CliResult {
    registry_login::logout(&args.registry)?;
    eprintln!("Removed credentials for {}", args.registry);
    Ok(())
}
