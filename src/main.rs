//! The `bountyline` binary: parses the command line and runs the chosen part.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = bountyline::cli::Cli::parse();
    match bountyline::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bountyline: {e:#}");
            ExitCode::FAILURE
        }
    }
}
