use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    powernode_worker::cli::main(powernode_worker::cli::Cli::parse())
}
