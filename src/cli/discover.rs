//! `modelsign discover REF`

use clap::Args;
use modelsign::ops::discover::{self, ReferrerNode};

use super::output::outln;
use super::{CliResult, Format, Global, output};

#[derive(Args)]
pub struct DiscoverArgs {
    /// The artifact: registry/repository[:tag|@digest] or oci:PATH[:tag|@digest].
    pub reference: String,
    /// Output format.
    #[arg(long, alias = "format", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

fn print_nodes(nodes: &[ReferrerNode], indent: &str) -> std::io::Result<()> {
    for (i, n) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        outln!(
            "{indent}{} {}  {}",
            if last { "└──" } else { "├──" },
            n.artifact_type.as_deref().unwrap_or("-"),
            n.digest
        )?;
        let child_indent = format!("{indent}{}", if last { "    " } else { "│   " });
        for (k, v) in &n.annotations {
            outln!("{child_indent}  {k}: {v}")?;
        }
        print_nodes(&n.referrers, &child_indent)?;
    }
    Ok(())
}

pub async fn run(args: &DiscoverArgs, global: &Global) -> CliResult {
    let reference = super::parse_reference(&args.reference)?;
    let target = super::open(&reference, global, false).await?;
    let tree = discover::discover(&target, &reference).await?;
    match args.output {
        Format::Json => output::json(&tree)?,
        Format::Text => {
            outln!("{}@{}", tree.reference, tree.digest)?;
            print_nodes(&tree.referrers, "")?;
            eprintln!("{} referrers", discover::count(&tree.referrers));
        }
    }
    Ok(())
}
