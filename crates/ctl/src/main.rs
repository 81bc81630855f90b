//! `powernodectl`: the operator CLI. It talks to the operator API through
//! `powernode_client::OperatorClient` with a token from `POWERNODE_TOKEN` or a config file,
//! prints tables (or `--json`), and exits non-zero with the API's message when a call fails.

mod cli;
mod commands;
mod config;
mod output;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use powernode_client::OperatorClient;

use crate::cli::Cli;
use crate::output::Output;

/// A failed call, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach the API at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("{status} {code}: {error}")]
    Api {
        status: u16,
        code: String,
        error: String,
    },
    /// The API answered something that is not its contract.
    #[error("{0}")]
    Unexpected(String),
    /// Already printed (the doctor's failing checks): exit 1 without another line.
    #[error("")]
    Silent,
}

impl From<powernode_client::Error> for CtlError {
    fn from(e: powernode_client::Error) -> Self {
        use powernode_client::Error as E;
        match e {
            E::NoAnswer { url, cause } => CtlError::Unreachable { url, cause },
            E::Api { status, body } => CtlError::Api {
                status,
                code: body.code,
                error: body.error,
            },
            other => CtlError::Unexpected(other.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("powernodectl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CtlError::Silent) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("powernodectl: {e}");
            match e {
                CtlError::Usage(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> Result<(), CtlError> {
    let config = config::load(&cli)?;
    let token = config.token.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        CtlError::Usage(
            "no operator token: set POWERNODE_TOKEN or `token` in ~/.config/powernode/powernodectl.toml"
                .to_owned(),
        )
    })?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| CtlError::Usage(e.to_string()))?;
    // A fresh key prefix per invocation: the API runs each POST of this invocation once.
    let client = OperatorClient::new(http, &config.url, token.into())
        .with_idempotency_keys(&uuid::Uuid::new_v4().to_string());
    let out = Output { json: cli.json };
    commands::run(&client, &out, cli.command).await
}
