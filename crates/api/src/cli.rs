//! `powernode-api serve | migrate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::settings::{Settings, redact_url};
use crate::{Application, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "powernode-api",
    version,
    about = "Powernode Federation API server"
)]
pub struct Cli {
    /// Optional TOML settings file; POWERNODE_* environment variables override it.
    #[arg(long, global = true, env = "POWERNODE_CONFIG_FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the operator and worker API (the default).
    Serve,
    /// Apply pending database migrations, waiting for PostgreSQL if it is not up yet.
    Migrate,
}

pub fn main(cli: Cli) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("powernode-api: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => migrate(&settings),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let listen = settings.http_listen.clone();
        let app = Application::build(settings)?;
        tracing::info!(
            "powernode-api listening on http://{}",
            listen_display(&listen, app.port())
        );
        app.run_until_stopped().await?;
        tracing::info!("powernode-api stopped");
        Ok(())
    })
}

fn listen_display(listen: &str, port: u16) -> String {
    let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
    format!("{host}:{port}")
}

fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = settings.database_url.expose_secret();
    let target = redact_url(url);
    let mut conn = (|| powernode_store::connect(url))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(15),
        )
        .notify(|e, wait| {
            tracing::warn!(
                "waiting for PostgreSQL at {target}: {e}; retrying in {:.1}s",
                wait.as_secs_f64()
            );
        })
        .call()
        .map_err(|e| anyhow::anyhow!("PostgreSQL at {target} is unreachable: {e}"))?;
    let applied = powernode_store::migrate::run_pending(&mut conn)?;
    if applied.is_empty() {
        tracing::info!("migrations: schema already up to date");
    } else {
        tracing::info!(applied = ?applied, "migrations applied");
    }
    Ok(())
}
