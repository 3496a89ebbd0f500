//! `modelsign trust update`: refreshes Sigstore's trusted root and signing config through
//! TUF (see `modelsign::tuf`), as `cosign initialize` does; keyless verify and sign then use
//! them in place of the copies built into the binary (`--trusted-root` still wins).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use modelsign::Error;
use modelsign::sign::keyless::TrustedRoot;
use modelsign::sigstore::Services;
use modelsign::tuf;

use super::output::outln;
use super::{CliResult, Format, Global, output};

#[derive(Subcommand)]
pub enum TrustCommand {
    /// Refresh the Sigstore trusted root and signing config from a TUF repository.
    ///
    /// Follows the TUF 1.0 client workflow: every root rotation signed by the old and the new
    /// root keys, then timestamp, snapshot and targets, each signed by its role's keys, not
    /// expired, not older than what was stored before (rollback), with the versions, lengths
    /// and hashes their parents state. Nothing is stored unless all of it checks out. The
    /// result goes to --tuf-dir ($MODELSIGN_TUF_DIR, $XDG_DATA_HOME/modelsign/tuf or
    /// ~/.local/share/modelsign/tuf), where keyless verify and sign find it.
    /// Exit code 0 when refreshed, 3 when the repository's metadata was refused, 1 when it
    /// could not be reached.
    Update(UpdateArgs),
}

#[derive(Args)]
pub struct UpdateArgs {
    /// The TUF repository (https, or http to a loopback address).
    #[arg(long, value_name = "URL", default_value = tuf::PUBLIC_GOOD_URL)]
    pub tuf_url: String,
    /// Start from this root.json instead of the stored one (or the public-good one built in):
    /// to begin trusting a private repository, as `cosign initialize --mirror URL --root FILE`.
    #[arg(long, value_name = "FILE")]
    pub root: Option<PathBuf>,
    /// Where the trusted metadata and targets are kept.
    #[arg(long, value_name = "DIR", env = tuf::DIR_ENV)]
    pub tuf_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub async fn run(command: &TrustCommand, global: &Global) -> CliResult {
    match command {
        TrustCommand::Update(args) => update(args, global).await,
    }
}

async fn update(args: &UpdateArgs, global: &Global) -> CliResult {
    let dir = match &args.tuf_dir {
        Some(dir) => dir.clone(),
        None => tuf::default_dir().ok_or_else(|| {
            Error::InvalidArguments("no folder for TUF metadata: set --tuf-dir, XDG_DATA_HOME or HOME".into())
        })?,
    };
    let bootstrap_root = match &args.root {
        Some(path) => Some(modelsign::local_fs::read_capped(path, 1 << 20, "TUF root")?),
        None => None,
    };
    let options = tuf::Options {
        url: args.tuf_url.clone(),
        dir,
        bootstrap_root,
        timeout: global.timeout,
        validate: Box::new(|name, bytes| {
            let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
            match name {
                tuf::TRUSTED_ROOT_TARGET => TrustedRoot::from_json(text, name).map(|_| ()).map_err(|e| e.to_string()),
                _ => {
                    Services::from_json(text, name, std::time::SystemTime::now()).map(|_| ()).map_err(|e| e.to_string())
                }
            }
        }),
    };
    let repo = args.tuf_url.trim_end_matches('/').to_string();
    let report = tuf::update(&options).await.map_err(|fail| match fail {
        tuf::Fail::Refused(reason) => Error::TufRefused { repo: repo.clone(), reason },
        tuf::Fail::Unavailable(reason) => Error::TufUnavailable { repo: repo.clone(), reason },
    })?;
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Text => {
            outln!(
                "Trusted root updated from {} (root v{}{}, timestamp v{}, snapshot v{}, targets v{}; valid until {})",
                report.remote,
                report.root_version,
                match report.root_rotations {
                    0 => String::new(),
                    n => format!(" after {n} rotation{}", if n == 1 { "" } else { "s" }),
                },
                report.timestamp_version,
                report.snapshot_version,
                report.targets_version,
                report.expires,
            )?;
            for target in &report.targets {
                outln!("  {}  sha256:{}  ({} bytes)", target.name, target.sha256, target.length)?;
            }
            outln!("  stored in {}", report.dir.display())?;
        }
    }
    Ok(())
}

/// The public-good trusted root (the one `trust update` stored, else the built-in one),
/// with a note on stderr when a stored one was there but did not check out.
pub fn public_good_root() -> Result<TrustedRoot, Error> {
    let root = TrustedRoot::public_good()?;
    if let Some(why) = root.stored_unusable() {
        eprintln!("note: the trusted root `modelsign trust update` stored is unusable ({why}); using the built-in one");
    }
    Ok(root)
}
