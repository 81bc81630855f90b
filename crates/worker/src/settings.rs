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

use powernode_domain::config::SettingDoc;

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
    worker_metrics_listen: String,
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
            worker_metrics_listen: "127.0.0.1:9464".to_owned(),
            api_timeout_secs: 30,
            log_format: LogFormat::Text,
            schedules: default_schedules(),
        }
    }
}

/// Every worker setting, its default and what it does (see `powernode-api`'s for the format).
pub const REFERENCE: &[SettingDoc] = &[
    SettingDoc {
        key: "api_url",
        default: Some("http://127.0.0.1:3000"),
        doc: "base URL of the API's operator/worker listener",
        secret: false,
    },
    SettingDoc {
        key: "worker_token",
        default: None,
        doc: "the API's worker token (≥ 32 characters)",
        secret: true,
    },
    SettingDoc {
        key: "redis_url",
        default: None,
        doc: "Redis URL (job queue)",
        secret: false,
    },
    SettingDoc {
        key: "redis_prefix",
        default: Some("powernode"),
        doc: "per-instance key prefix; queues are `<prefix>:<queue>:<schedule>`",
        secret: false,
    },
    SettingDoc {
        key: "worker_queues",
        default: Some(""),
        doc: "comma list of queues this process consumes; empty = all (cron producers always run)",
        secret: false,
    },
    SettingDoc {
        key: "worker_poll_interval_ms",
        default: Some("500"),
        doc: "how often consumers poll Redis for tasks",
        secret: false,
    },
    SettingDoc {
        key: "worker_shutdown_grace_secs",
        default: Some("30"),
        doc: "SIGTERM: how long the running job may take to finish",
        secret: false,
    },
    SettingDoc {
        key: "worker_metrics_listen",
        default: Some("127.0.0.1:9464"),
        doc: "local address of the worker's Prometheus `/metrics`; empty disables it",
        secret: false,
    },
    SettingDoc {
        key: "api_timeout_secs",
        default: Some("30"),
        doc: "HTTP timeout of calls to the API's worker endpoints",
        secret: false,
    },
    SettingDoc {
        key: "log_format",
        default: Some("text"),
        doc: "`text` or `json`; filter with `RUST_LOG`",
        secret: false,
    },
    SettingDoc {
        key: "schedules__<name>__interval_secs",
        default: Some("60"),
        doc: "a schedule's interval: seconds dividing 60, or multiples of 60 dividing 3600 (`powernode-worker schedules` lists them)",
        secret: false,
    },
    SettingDoc {
        key: "schedules__<name>__job",
        default: Some("per schedule (powernode-worker schedules)"),
        doc: "a schedule's job; an unknown job stops the worker at start",
        secret: false,
    },
    SettingDoc {
        key: "schedules__<name>__queue",
        default: Some("system"),
        doc: "a schedule's queue",
        secret: false,
    },
];

/// Variables the worker reads under the same name and meaning as the API; an environment file
/// shared by both lists them once (in the API's section).
pub const SHARED_WITH_API: &[&str] = &["worker_token", "redis_url", "redis_prefix", "log_format"];

/// The serialised defaults without the schedule table (documented by pattern).
pub fn defaults_json() -> serde_json::Value {
    let mut v = serde_json::to_value(RawSettings::default()).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("schedules");
    }
    v
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
    /// Where the worker serves `/metrics`; `None` = disabled.
    pub metrics_listen: Option<String>,
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
            metrics_listen: Some(raw.worker_metrics_listen.trim().to_owned())
                .filter(|l| !l.is_empty()),
            api_timeout: Duration::from_secs(raw.api_timeout_secs.max(1)),
            log_format: raw.log_format,
            schedules: raw.schedules,
        })
    }
}
