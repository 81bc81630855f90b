//! Worker settings: optional TOML file, then `POWERNODE_*` environment (`__` nests, e.g.
//! `POWERNODE_SCHEDULES__FEDERATION_HEARTBEAT__INTERVAL_SECS=5`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::schedules::{ScheduleConfig, default_schedules};

pub const MIN_WORKER_TOKEN_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Serialize, Deserialize)]
struct RawSettings {
    api_url: String,
    worker_token: Option<String>,
    redis_url: Option<String>,
    redis_prefix: String,
    /// Comma-separated queues this process consumes; empty = all.
    worker_queues: String,
    worker_poll_interval_ms: u64,
    worker_shutdown_grace_secs: u64,
    api_timeout_secs: u64,
    log_format: LogFormat,
    schedules: BTreeMap<String, ScheduleConfig>,
}

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            api_url: "http://127.0.0.1:3000".to_owned(),
            worker_token: None,
            redis_url: None,
            redis_prefix: "powernode".to_owned(),
            worker_queues: String::new(),
            worker_poll_interval_ms: 500,
            worker_shutdown_grace_secs: 30,
            api_timeout_secs: 30,
            log_format: LogFormat::Text,
            schedules: default_schedules(),
        }
    }
}

#[derive(Clone)]
pub struct Settings {
    /// Base URL of the API's operator/worker listener.
    pub api_url: String,
    pub worker_token: SecretString,
    pub redis_url: SecretString,
    pub redis_prefix: String,
    /// Queues this process consumes (`None` = all). Cron producers always run.
    pub queues: Option<Vec<String>>,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
    pub api_timeout: Duration,
    pub log_format: LogFormat,
    pub schedules: BTreeMap<String, ScheduleConfig>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("api_url", &self.api_url)
            .field("worker_token", &"[REDACTED]")
            .field("redis_prefix", &self.redis_prefix)
            .field("queues", &self.queues)
            .field("schedules", &self.schedules)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration could not be read: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let raw: RawSettings = figment
            .merge(Env::prefixed("POWERNODE_").split("__"))
            .extract()
            .map_err(Box::new)?;
        Self::validate(raw)
    }

    fn validate(raw: RawSettings) -> Result<Self, SettingsError> {
        let worker_token = raw
            .worker_token
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                SettingsError::Invalid(
                    "POWERNODE_WORKER_TOKEN is not set: set it to the API's worker token"
                        .to_owned(),
                )
            })?;
        if worker_token.chars().count() < MIN_WORKER_TOKEN_LEN {
            return Err(SettingsError::Invalid(format!(
                "POWERNODE_WORKER_TOKEN is too short: the API requires at least {MIN_WORKER_TOKEN_LEN} characters"
            )));
        }
        let redis_url = raw
            .redis_url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                SettingsError::Invalid(
                    "POWERNODE_REDIS_URL is not set: set it to a Redis URL such as redis://127.0.0.1:6379/"
                        .to_owned(),
                )
            })?;
        let api_url = raw.api_url.trim_end_matches('/').to_owned();
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(SettingsError::Invalid(format!(
                "POWERNODE_API_URL is {api_url:?}: set it to the API's base URL, e.g. http://127.0.0.1:3000"
            )));
        }
        let queues: Vec<String> = raw
            .worker_queues
            .split(',')
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Settings {
            api_url,
            worker_token: worker_token.into(),
            redis_url: redis_url.into(),
            redis_prefix: raw.redis_prefix,
            queues: (!queues.is_empty()).then_some(queues),
            poll_interval: Duration::from_millis(raw.worker_poll_interval_ms.max(50)),
            shutdown_grace: Duration::from_secs(raw.worker_shutdown_grace_secs),
            api_timeout: Duration::from_secs(raw.api_timeout_secs.max(1)),
            log_format: raw.log_format,
            schedules: raw.schedules,
        })
    }
}
