//! `powernode-api serve | migrate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::services;
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
    /// Create the first admin operator (all four permissions) and print its token once.
    Bootstrap {
        #[arg(long)]
        name: String,
        /// Create another admin even though an enabled one exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the effective configuration (secrets redacted), or with --reference the
    /// documented variables as markdown.
    Config {
        #[arg(long)]
        reference: bool,
        /// Print this API's section of an EnvironmentFile example.
        #[arg(long)]
        env_example: bool,
    },
    /// The internal CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create this instance's identity and CA unless they exist; print the CA fingerprint.
    Init,
}

pub fn main(cli: Cli) -> ExitCode {
    let _failpoints = crate::failpoint::setup();
    // `config` must work on an incomplete configuration: it is how operators find what is wrong.
    if let Some(Command::Config {
        reference,
        env_example,
    }) = &cli.command
    {
        if *env_example {
            print!(
                "{}",
                powernode_domain::config::render_env(
                    "powernode-api",
                    crate::settings::REFERENCE,
                    &[]
                )
            );
            return ExitCode::SUCCESS;
        }
        return print_config(cli.config.as_deref(), *reference);
    }
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
        Command::Bootstrap { name, force } => bootstrap(&settings, &name, force),
        Command::Ca {
            command: CaCommand::Init,
        } => ca_init(settings),
        Command::Config { .. } => Ok(()),
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

fn print_config(file: Option<&std::path::Path>, reference: bool) -> ExitCode {
    if reference {
        print!(
            "{}",
            powernode_domain::config::render_markdown("powernode-api", crate::settings::REFERENCE)
        );
        return ExitCode::SUCCESS;
    }
    match crate::settings::effective(file) {
        Ok(values) => {
            for (var, value) in values {
                println!("{var}={value}");
            }
            match Settings::load(file) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("powernode-api: this configuration will not start: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Err(e) => {
            eprintln!("powernode-api: {e}");
            ExitCode::from(2)
        }
    }
}

fn bootstrap(settings: &Settings, name: &str, force: bool) -> anyhow::Result<()> {
    use powernode_domain::Permission;
    use powernode_store::operators::{self, NewOperator};
    use strum::IntoEnumIterator;

    let name = services::operators::validate_name(name).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let mut conn = wait_for_database(settings)?;
    if operators::enabled_admin_exists(&mut conn)? && !force {
        anyhow::bail!(
            "an enabled admin operator already exists; use its token to create operators, or pass --force"
        );
    }
    let (token, digest) = crate::auth::mint_operator_token()
        .map_err(|e| anyhow::anyhow!("cannot mint a token: {e}"))?;
    let permissions: Vec<Permission> = Permission::iter().collect();
    let op = operators::insert(
        &mut conn,
        &NewOperator {
            name: &name,
            token_digest: &digest,
            permissions: &permissions,
            created_by: None,
        },
    )
    .map_err(|e| anyhow::anyhow!("cannot create operator {name:?}: {e}"))?;
    tracing::info!(operator_id = %op.id, name = %op.name, "admin operator bootstrapped");
    println!("Created admin operator {:?} ({}).", op.name, op.id);
    println!("Its token is shown once; store it now (e.g. export POWERNODE_TOKEN=…):");
    println!("{}", token.expose_secret());
    Ok(())
}

fn ca_init(settings: Settings) -> anyhow::Result<()> {
    drop(wait_for_database(&settings)?);
    actix_web::rt::System::new().block_on(async move {
        let pool = powernode_store::pool(
            settings.database_url.expose_secret(),
            1,
            settings.database_timeout,
        );
        let db = crate::db::Database::new(pool, settings.database_timeout);
        let identity = crate::ca::ensure_identity(&db, &settings.master_key).await?;
        println!("instance_id {}", identity.instance_id);
        println!("ca_sha256   {}", identity.ca_sha256);
        Ok(())
    })
}

fn wait_for_database(settings: &Settings) -> anyhow::Result<diesel::PgConnection> {
    let url = settings.database_url.expose_secret();
    let target = redact_url(url);
    (|| powernode_store::connect(url))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(15),
        )
        .notify(|e, wait| {
            tracing::warn!(
                "waiting for PostgreSQL at {target}: {}; retrying in {:.1}s",
                crate::error::one_line(e),
                wait.as_secs_f64()
            );
        })
        .call()
        .map_err(|e| anyhow::anyhow!("PostgreSQL at {target} is unreachable: {e}"))
}

fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = wait_for_database(settings)?;
    let applied = powernode_store::migrate::run_pending(&mut conn)?;
    if applied.is_empty() {
        tracing::info!("migrations: schema already up to date");
    } else {
        tracing::info!(applied = ?applied, "migrations applied");
    }
    Ok(())
}
