//! Where `powernodectl` finds the API and its token: `--url`, `POWERNODE_API_URL`,
//! `POWERNODE_TOKEN`, then a TOML file (`--config`, `POWERNODECTL_CONFIG` or
//! `~/.config/powernode/powernodectl.toml`).

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::CtlError;
use crate::cli::Cli;

#[derive(Debug, Serialize, Deserialize)]
pub struct Config {
    pub url: String,
    pub token: Option<String>,
}

pub fn load(cli: &Cli) -> Result<Config, CtlError> {
    let default_file = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".config/powernode/powernodectl.toml"));
    let mut figment = Figment::from(Serialized::defaults(Config {
        url: "http://127.0.0.1:3000".to_owned(),
        token: None,
    }));
    match (&cli.config, default_file) {
        (Some(path), _) => figment = figment.merge(Toml::file_exact(path)),
        (None, Some(path)) => figment = figment.merge(Toml::file(path)),
        (None, None) => {}
    }
    figment = figment
        .merge(
            Env::raw()
                .only(&["POWERNODE_API_URL"])
                .map(|_| "url".into()),
        )
        .merge(
            Env::raw()
                .only(&["POWERNODE_TOKEN"])
                .map(|_| "token".into()),
        );
    let mut config: Config = figment
        .extract()
        .map_err(|e| CtlError::Usage(format!("configuration: {e}")))?;
    if let Some(url) = &cli.url {
        config.url.clone_from(url);
    }
    config.url = config.url.trim_end_matches('/').to_owned();
    Ok(config)
}
