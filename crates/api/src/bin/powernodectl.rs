use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    powernode_api::ctl::main(powernode_api::ctl::Cli::parse())
}
