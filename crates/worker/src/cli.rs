//! `powernode-worker --name <name>` and `powernode-worker schedules`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::schedules;
use crate::settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "powernode-worker",
    version,
    about = "Powernode Federation worker"
)]
pub struct Cli {
    /// Stable part of this worker's apalis names (the systemd instance, e.g. `default`).
    #[arg(long, env = "POWERNODE_WORKER_NAME", default_value = "default", value_parser = parse_name)]
    pub name: String,
    /// Optional TOML settings file; POWERNODE_* environment variables override it.
    #[arg(long, global = true, env = "POWERNODE_CONFIG_FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print each schedule with its job, queue and interval, then exit.
    Schedules,
    /// Print the documented variables as markdown (`--reference`).
    Config {
        #[arg(long)]
        reference: bool,
        /// Print this worker's section of an EnvironmentFile example.
        #[arg(long)]
        env_example: bool,
    },
}

fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("use 1-64 letters, digits, '-' or '_'".to_owned())
    }
}

pub fn main(cli: Cli) -> ExitCode {
    if let Some(Command::Config {
        reference,
        env_example,
    }) = &cli.command
    {
        if *env_example {
            print!(
                "{}",
                powernode_domain::config::render_env(
                    "powernode-worker (shares the variables above with the API)",
                    crate::settings::REFERENCE,
                    crate::settings::SHARED_WITH_API
                )
            );
            return ExitCode::SUCCESS;
        }
        if *reference {
            print!(
                "{}",
                powernode_domain::config::render_markdown(
                    "powernode-worker",
                    crate::settings::REFERENCE
                )
            );
            return ExitCode::SUCCESS;
        }
        return match Settings::load(cli.config.as_deref()) {
            Ok(s) => {
                println!("{s:#?}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("powernode-worker: {e}");
                ExitCode::from(2)
            }
        };
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("powernode-worker: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Schedules) = cli.command {
        return print_schedules(&settings);
    }
    crate::telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("powernode-worker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(name = %cli.name, api = %settings.api_url, "powernode-worker starting");
    match runtime.block_on(crate::run::run(settings, &cli.name)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("powernode-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_schedules(settings: &Settings) -> ExitCode {
    match schedules::resolve(&settings.schedules) {
        Ok(list) => {
            println!(
                "{:<24} {:<26} {:<8} {:>9}  {:<16} REDIS QUEUE",
                "SCHEDULE", "JOB", "QUEUE", "INTERVAL", "CRON"
            );
            for s in list {
                println!(
                    "{:<24} {:<26} {:<8} {:>8}s  {:<16} {}",
                    s.name,
                    s.job.name(),
                    s.queue,
                    s.interval_secs,
                    s.cron,
                    s.redis_queue(&settings.redis_prefix)
                );
            }
            // Not a schedule: the API queues it when an accept or a handshake commits.
            let contact = powernode_client::worker::ContactJob::NAME;
            println!(
                "{:<24} {:<26} {:<8} {:>9}  {:<16} {}",
                "(on accept/handshake)",
                contact,
                "system",
                "-",
                "-",
                powernode_client::worker::ContactJob::redis_queue(&settings.redis_prefix)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("powernode-worker: {e}");
            ExitCode::from(2)
        }
    }
}
