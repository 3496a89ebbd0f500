//! The `modelsign` command. All behaviour lives in the library; `cli` turns arguments into
//! calls and results into output and an exit code.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
