//! `modelsign push REF PATH`

use std::path::PathBuf;

use clap::Args;
use modelsign::folder::ScanOptions;
use modelsign::ops::push::{self, PackOptions};

use super::output::outln;
use super::{CliResult, Format, Global, output};

#[derive(Args)]
pub struct PushArgs {
    /// Where to push: registry/repository[:tag] or oci:PATH[:tag] (tag defaults to `latest`).
    pub reference: String,
    /// The model folder, or a single model file.
    pub path: PathBuf,
    /// Model name recorded in the config (default: the folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Model version recorded in the config (default: the tag).
    #[arg(long)]
    pub version: Option<String>,
    /// Leave out files matching this glob (relative to the folder; repeatable).
    #[arg(long, value_name = "GLOB")]
    pub ignore: Vec<String>,
    /// Keep .git, .github, .gitattributes and .gitignore (left out by default, as model_signing does).
    #[arg(long)]
    pub include_git_paths: bool,
    /// Follow symlinks instead of refusing them.
    #[arg(long)]
    pub allow_symlinks: bool,
    #[command(flatten)]
    pub cache: super::cache::CacheArgs,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub async fn run(args: &PushArgs, global: &Global) -> CliResult {
    let reference = super::parse_reference(&args.reference)?;
    let target = super::open(&reference, global, true).await?;
    let options = PackOptions {
        scan: ScanOptions {
            ignore: args.ignore.clone(),
            ignore_git_paths: !args.include_git_paths,
            allow_symlinks: args.allow_symlinks,
            ignore_paths: Vec::new(),
        },
        name: args.name.clone(),
        version: args.version.clone(),
        threads: None,
        cache: args.cache.open(),
    };
    let tag = push::push_tag(&reference);
    // Two phases, two sets of bars: hashing every file, then uploading what is missing.
    let packed = {
        let hashing = global.progress("hash");
        tokio::task::block_in_place(|| push::pack(&args.path, &options, tag.as_deref(), hashing.get()))?
    };
    let report = {
        let reporter = global.progress("push");
        push::push(&target, &reference, &packed, global.concurrency, reporter.get()).await?
    };
    if let (Some(signature), Some(attached)) = (&packed.signature, &report.signature) {
        eprintln!("attached {} as signature {}", signature.path.display(), attached.digest);
    }
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Text => {
            let sent = report.components.iter().filter(|c| c.uploaded).count();
            eprintln!("{}", super::cache::describe(&report.hashing));
            eprintln!(
                "pushed {} components ({} uploaded, {} sent; {} already there, {} not sent)",
                report.components.len(),
                sent,
                output::bytes(report.bytes_uploaded),
                report.components.len() - sent,
                output::bytes(report.bytes_present)
            );
            outln!("{}", report.digest)?;
        }
    }
    Ok(())
}
