use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    powernode_api::cli::main(powernode_api::cli::Cli::parse())
}
