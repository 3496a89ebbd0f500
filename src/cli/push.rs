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
    let mut options = PackOptions {
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
    // A model_signing signature in the folder is not a component: it is attached as a referrer.
    let signature_file = args.path.join(modelsign::sign::local::SIGNATURE_FILE);
    let signature = if args.path.is_dir() && signature_file.is_file() {
        options.scan.ignore_paths.push(modelsign::sign::local::SIGNATURE_FILE.to_string());
        Some(std::fs::read(&signature_file).map_err(|e| modelsign::Error::io(&signature_file, e))?)
    } else {
        None
    };
    let tag = if reference.digest.is_some() && reference.tag.is_none() { None } else { Some(reference.selector_tag()) };
    let path = args.path.clone();
    // Two phases, two sets of bars: hashing every file, then uploading what is missing.
    let packed = {
        let hashing = global.progress("hash");
        tokio::task::block_in_place(|| push::pack(&path, &options, tag.as_deref(), hashing.get()))?
    };
    let reporter = global.progress("push");
    if let Some(expected) = &reference.digest {
        let actual = modelsign::digest::Digest::of(&packed.manifest_bytes);
        if &actual != expected {
            return Err(modelsign::Error::InvalidInput(format!(
                "the packed manifest is {actual}, not the {expected} the reference names"
            ))
            .into());
        }
    }
    // A model.sig that does not list exactly these files would be refused after the upload,
    // leaving the model published without its signature: refuse it before.
    if let Some(bundle) = &signature {
        let what = format!("{} ({})", signature_file.display(), modelsign::digest::Digest::of(&packed.manifest_bytes));
        modelsign::ops::sign::check_folder_signature(&packed.manifest, &what, bundle)?;
    }
    let (manifest, uploaded) =
        push::upload(&target, &packed, tag.as_deref(), global.concurrency, reporter.get()).await?;
    drop(reporter);
    let mut report = push::report(reference.to_string(), &packed, &manifest, &uploaded);
    if let Some(bundle) = &signature {
        let attached =
            modelsign::ops::sign::attach_folder_signature(&target, &manifest, &packed.manifest, bundle).await?;
        eprintln!("attached {} as signature {}", signature_file.display(), attached.digest);
        report.signature = Some(attached);
    }
    match args.output {
        Format::Json => output::json(&report)?,
        Format::Text => {
            let sent = report.components.iter().filter(|c| c.uploaded).count();
            eprintln!("{}", super::cache::describe(&report.hashing));
            eprintln!(
                "pushed {} components ({} uploaded, {} already there, {} sent)",
                report.components.len(),
                sent,
                report.components.len() - sent,
                output::bytes(report.bytes_uploaded)
            );
            outln!("{}", report.digest)?;
        }
    }
    Ok(())
}
