//! One typed settings struct, loaded once in `main` from an optional TOML file and
//! `POWERNODE_*` environment variables (the environment wins), then validated.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use powernode_domain::InstanceUrl;
use powernode_domain::config;
use powernode_domain::liveness::DEFAULT_STALE_AFTER_SECS;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;

/// Smallest accepted worker token, in characters.
pub const MIN_WORKER_TOKEN_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Production,
    Development,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

// Every API setting, once: field, type, default, the default as documented, secret, meaning.
// `powernode-api config` prints them, `scripts/dev docs` renders them into
// `docs/configuration.md` and the environment example, and a test checks the two defaults agree.
powernode_domain::settings! {
    environment: Environment = Environment::Production, Some("production"), false,
        "`production` or `development`; drill mode and plaintext fallbacks are refused in production";
    http_listen: String = "127.0.0.1:3000".to_owned(), Some("127.0.0.1:3000"), false,
        "address of the operator and worker API (and `/metrics`)";
    database_url: Option<String> = None, None, false,
        "PostgreSQL URL (the password is redacted in logs and `config`)";
    database_pool_size: u32 = 10, Some("10"), false,
        "PostgreSQL connections per API process; up to three of them are held by the federation listener's batchers while their statements run (one heartbeat thread, two lookup threads)";
    database_timeout_secs: u64 = 5, Some("5"), false,
        "bound of one database call, pool checkout included: beyond it the request answers 503 `database unavailable` (a row lock not granted within half of it: 503 `busy`); also sets libpq's connect and socket timeouts and the server's `statement_timeout` (90 %) and `lock_timeout` (50 %); `POWERNODE_DATABASE_CONNECT_TIMEOUT_SECS` is read as an alias";
    redis_url: Option<String> = None, None, false,
        "Redis URL; `/readyz` pings it";
    redis_prefix: String = "powernode".to_owned(), Some("powernode"), false,
        "per-instance key prefix shared with the worker (two instances may share one Redis)";
    worker_token: Option<String> = None, None, true,
        "secret of at least 32 characters that the worker sends as `X-Worker-Token`";
    stale_after_secs: u32 = DEFAULT_STALE_AFTER_SECS, Some("300"), false,
        "the sweep degrades active peers silent for longer (10–86400)";
    shutdown_grace_secs: u64 = 30, Some("30"), false,
        "SIGTERM: how long in-flight requests may take to finish";
    log_format: LogFormat = LogFormat::Text, Some("text"), false,
        "`text` (one line per event, no colour codes unless on a terminal) or `json`; filter with `RUST_LOG`";
    master_key_file: Option<String> = None, None, false,
        "file (mode 0600) holding 64 hex characters; seals the CA key and other secrets at rest";
    federation_public_url: Option<String> = None, None, false,
        "https base URL peers use for this instance's federation listener; carried in acceptance tokens";
    acceptance_token_ttl_secs: u32 = 7 * 24 * 3600, Some("604800"), false,
        "default acceptance token lifetime (7 days)";
    acceptance_token_ttl_min_secs: u32 = 60, Some("60"), false,
        "smallest `ttl_seconds` a caller may ask for";
    acceptance_token_ttl_max_secs: u32 = 30 * 24 * 3600, Some("2592000"), false,
        "largest `ttl_seconds` a caller may ask for (30 days)";
    allow_drill_mode: bool = false, Some("false"), false,
        "allow drill peers (no acceptance token); refused at start in production";
    federation_listen: String = "127.0.0.1:3443".to_owned(), Some("127.0.0.1:3443"), false,
        "address of the federation (mTLS) listener that `POWERNODE_FEDERATION_PUBLIC_URL` reaches";
    allow_plaintext_fallback: bool = false, Some("false"), false,
        "with a partial client certificate, call peers over TLS without one (they will refuse); refused at start in production";
    federation_tls_cert_file: Option<String> = None, Some(config::UNSET), false,
        "optional PEM certificate for the federation listener (with `POWERNODE_FEDERATION_TLS_KEY_FILE`); must chain to this instance's CA or the API stops; unset = issued by the CA";
    federation_tls_key_file: Option<String> = None, Some(config::UNSET), false,
        "its PEM private key";
    resource_kinds: String = "sdwan_config".to_owned(), Some("sdwan_config"), false,
        "comma list of declared shared-resource kinds; others answer 422";
    trusted_proxies: String = String::new(), Some(""), false,
        "comma list of proxy CIDRs whose X-Forwarded-For is believed for grant source_ip checks; empty = the TCP peer address only";
    federation_rate_per_minute: u32 = 600, Some("600"), false,
        "federation API calls per minute per peer certificate (429 with Retry-After beyond)";
    federation_batch_queue: u32 = 2048, Some("2048"), false,
        "heartbeats (and resource lookups) waiting for their batch statement, per API process: beyond it a call is refused at once with 503 `busy` and Retry-After (bounded memory while the database stalls)";
    federation_rate_burst: u32 = 60, Some("60"), false,
        "burst allowed above that rate";
    federation_max_connections_per_source: u32 = 64, Some("64"), false,
        "open connections one source address may hold on the federation listener; more are closed at once, before TLS (raise `LimitNOFILE` with it)";
    accept_rate_per_minute: u32 = 30, Some("30"), false,
        "accept calls per minute per source address";
    accept_rate_burst: u32 = 10, Some("10"), false,
        "burst allowed above that rate";
    client_cert_days: u32 = 90, Some("90"), false,
        "lifetime of the client certificates this instance issues to peers (1–3650 days)";
    listener_cert_days: u32 = 365, Some("365"), false,
        "lifetime of the federation listener's own certificate (1–3650 days)";
    cert_rotation_percent: u8 = powernode_domain::certificate::DEFAULT_ROTATION_PERCENT, Some("75"), false,
        "share of a certificate's lifetime after which it is renewed (client certificates by the PeerClient, the listener's at start; 1–99)";
    peer_timeout_secs: u64 = 10, Some("10"), false,
        "timeout of each call to a peer (1–300 s); handshake and renewal leases last three times this";
    peer_connect_timeout_secs: u64 = 3, Some("3"), false,
        "bound of connecting to a peer, TCP and TLS handshake (1 s up to the peer timeout): a peer that accepts and never answers costs a tick this long, not the whole peer timeout";
    peer_concurrency_max: u32 = 256, Some("256"), false,
        "most peers one PeerClient pass contacts at once (it uses half the peer count, at least 16, at most this)";
    peer_client_cache: u32 = 128, Some("128"), false,
        "peers whose mTLS client (and its one idle keep-alive connection, ~60 KB) is kept between ticks; when full, a new peer replaces only one idle past 90 s, else it connects afresh each tick; bounds the API's memory with many peers";
    grant_ttl_days_default: u32 = powernode_domain::grant::DEFAULT_TTL_DAYS, Some("30"), false,
        "grant lifetime when `ttl_days` is not given, and of each auto-renewal";
    grant_ttl_days_max: u32 = powernode_domain::grant::MAX_TTL_DAYS, Some("365"), false,
        "largest `ttl_days` an operator may set";
    grant_renew_window_days: u32 = powernode_domain::grant::AUTO_RENEW_WITHIN_DAYS, Some("7"), false,
        "auto-renewal renews a live `auto_renew` grant once it expires within this many days";
    accept_failure_limit: u32 = 5, Some("5"), false,
        "failed accepts per (source address, peer_id) within the window after which that pair gets 429 until the window passes (counted in PostgreSQL, shared by replicas)";
    accept_failure_window_secs: u32 = 900, Some("900"), false,
        "that window (15 minutes)";
    federation_prefix: Option<String> = None, Some(config::UNSET), false,
        "this instance's own ULA prefix (fd…::/48, /56 or /64); a peer advertising an overlapping prefix is a governance finding";
    governance_accepted_without_handshake_secs: u32 = 3600, Some("3600"), false,
        "governance: a peer in `accepted` longer than this is `stale_accepted_without_handshake` (high)";
    governance_degraded_high_secs: u32 = 86_400, Some("86400"), false,
        "governance: a peer `degraded` longer than this makes `peer_heartbeat_stale` high (medium before)";
    governance_cert_expiring_days: u32 = 30, Some("30"), false,
        "governance: a live peer's newest certificate ending within this many days is `peer_cert_expiring`";
    governance_grant_expiring_days: u32 = 7, Some("7"), false,
        "governance: a live grant ending within this many days that will not auto-renew is `grant_expiring`";
    governance_approval_expiring_secs: u32 = 1800, Some("1800"), false,
        "governance: a pending approval expiring within this many seconds is `approval_expiring` (the doctor's `approvals` check too)";
    governance_report_retention_days: u32 = 30, Some("30"), false,
        "the retention job deletes governance reports older than this";
    event_retention_days: u32 = 90, Some("90"), false,
        "the retention job deletes `low`/`medium` fleet events older than this";
    ui_session_key_file: Option<String> = None, Some(config::UNSET), false,
        "file (mode 0600) holding 128 hex characters (64 bytes) that encrypt the web UI's session cookie; shared by replicas so sessions survive restarts; required in production (development: a key per process)";
    mcp_allowed_hosts: String = String::new(), Some(""), false,
        "comma list of `Host` header values `/mcp` accepts (hostnames or host:port); others get 403 (DNS-rebinding protection); empty = `localhost`, `127.0.0.1` and the host of `POWERNODE_HTTP_LISTEN`";
    event_retention_high_days: u32 = 365, Some("365"), false,
        "… and `high`/`critical` events older than this (at least `POWERNODE_EVENT_RETENTION_DAYS`)";
}

/// Validated settings of one API process.
#[derive(Clone)]
pub struct Settings {
    pub environment: Environment,
    /// `host:port` of the operator and worker API (port 0 picks a free port).
    pub http_listen: String,
    pub database_url: SecretString,
    pub database_pool_size: u32,
    /// Bound of one database call, pool checkout included (503 beyond it).
    pub database_timeout: Duration,
    pub redis_url: SecretString,
    pub redis_prefix: String,
    pub worker_token: SecretString,
    /// An active peer silent for longer than this is degraded by the sweep.
    pub stale_after_secs: u32,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    /// Seals secrets at rest (CA keys); from `POWERNODE_MASTER_KEY_FILE`.
    pub master_key: Arc<MasterKey>,
    /// https base URL of this instance's federation listener; tokens carry it.
    pub federation_public_url: InstanceUrl,
    /// Acceptance token lifetime: default and the bounds a caller's `ttl_seconds` must meet.
    pub acceptance_token_ttl: TtlBounds,
    /// Drill peers (no token); refused at start in production.
    pub allow_drill_mode: bool,
    /// `host:port` of the federation (mTLS) listener; port 0 picks a free port.
    pub federation_listen: String,
    /// With a partial client certificate, call peers over TLS without one (never in production).
    pub allow_plaintext_fallback: bool,
    /// Operator-provided listener certificate and key (PEM); must chain to our CA.
    pub federation_tls_files: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Declared kinds of shared resources; anything else is 422.
    pub resource_kinds: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed for a grant's source address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Calls per minute (and burst) per peer certificate on the federation API.
    pub federation_rate_per_minute: u32,
    pub federation_batch_queue: u32,
    pub federation_rate_burst: u32,
    /// Open connections per source address on the federation listener.
    pub federation_max_connections_per_source: u32,
    /// Calls per minute (and burst) per source address on `accept`.
    pub accept_rate_per_minute: u32,
    pub accept_rate_burst: u32,
    /// Failed accepts per (source, peer_id) within a window before 429 (SPEC §3).
    pub accept_failures: powernode_store::accept_failures::Policy,
    /// Lifetime of client certificates we issue, in days.
    pub client_cert_days: i64,
    /// Lifetime of the federation listener's certificate, in days.
    pub listener_cert_days: i64,
    /// Rotation point, in percent of a certificate's lifetime.
    pub cert_rotation_percent: u8,
    /// Timeout of each call to a peer.
    pub peer_timeout: Duration,
    pub peer_connect_timeout: Duration,
    pub peer_concurrency_max: usize,
    pub peer_client_cache: usize,
    /// Grant lifetimes.
    pub grant_lifetimes: powernode_domain::grant::Lifetimes,
    /// Our own ULA prefix (`POWERNODE_FEDERATION_PREFIX`).
    pub federation_prefix: Option<powernode_domain::UlaPrefix>,
    /// SPEC §9.1's thresholds (with `stale_after_secs`).
    pub governance: powernode_domain::governance::Thresholds,
    pub retention: Retention,
    /// `Host` values `/mcp` accepts.
    pub mcp_allowed_hosts: Vec<String>,
    /// Encrypts the web UI's session cookie (64 bytes).
    pub ui_session_key: actix_web::cookie::Key,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlBounds {
    pub default_secs: u32,
    pub min_secs: u32,
    pub max_secs: u32,
}

/// SPEC §9.2: how long events and governance reports are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub event_days: u32,
    pub event_high_days: u32,
    pub report_days: u32,
}

impl Settings {
    /// Drill mode is honoured only when enabled outside production (SPEC §12).
    pub fn drill_allowed(&self) -> bool {
        self.allow_drill_mode && self.environment != Environment::Production
    }

    /// The plaintext fallback, likewise.
    pub fn plaintext_fallback_allowed(&self) -> bool {
        self.allow_plaintext_fallback && self.environment != Environment::Production
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("environment", &self.environment)
            .field("http_listen", &self.http_listen)
            .field(
                "database_url",
                &redact_url(self.database_url.expose_secret()),
            )
            .field("database_pool_size", &self.database_pool_size)
            .field("redis_url", &redact_url(self.redis_url.expose_secret()))
            .field("redis_prefix", &self.redis_prefix)
            .field("worker_token", &"[REDACTED]")
            .field("stale_after_secs", &self.stale_after_secs)
            .field("master_key", &self.master_key)
            .field("federation_public_url", &self.federation_public_url)
            .field("acceptance_token_ttl", &self.acceptance_token_ttl)
            .field("allow_drill_mode", &self.allow_drill_mode)
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

/// The serialised defaults, for the reference drift check.
pub fn defaults_json() -> serde_json::Value {
    serde_json::to_value(RawSettings::default()).unwrap_or_default()
}

/// The effective configuration (file + environment), one `VAR=value` per setting, with
/// secrets and URL passwords redacted. Values are shown even when validation would fail, so an
/// operator can see what is wrong.
pub fn effective(file: Option<&Path>) -> Result<Vec<(String, String)>, SettingsError> {
    let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    let raw: RawSettings = figment.merge(environment()).extract().map_err(Box::new)?;
    let values = serde_json::to_value(raw).unwrap_or_default();
    Ok(REFERENCE
        .iter()
        .map(|d| {
            let value = values.get(d.key).and_then(config::render_value);
            let shown = match value {
                None => "(not set)".to_owned(),
                Some(_) if d.secret => "[REDACTED]".to_owned(),
                Some(v) if d.key.ends_with("_url") => redact_url(&v),
                Some(v) => v,
            };
            (d.var(), shown)
        })
        .collect())
}

/// Renamed settings still read from their old variable; the new name wins when both are set.
const ALIASES: &[(&str, &str)] = &[("database_connect_timeout_secs", "database_timeout_secs")];

/// The `POWERNODE_*` environment, aliases included.
fn environment() -> Figment {
    let mut figment = Figment::new();
    for &(old, new) in ALIASES {
        figment = figment.merge(
            Env::prefixed("POWERNODE_")
                .only(&[old])
                .map(move |_| new.into()),
        );
    }
    let old: Vec<&str> = ALIASES.iter().map(|(old, _)| *old).collect();
    figment.merge(Env::prefixed("POWERNODE_").ignore(&old))
}

/// Bounds of `stale_after`: below one heartbeat interval every peer would flap.
const STALE_AFTER_BOUNDS: std::ops::RangeInclusive<u32> = 10..=86_400;

impl Settings {
    /// Loads `file` (when given) then the `POWERNODE_*` environment, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, true)
    }

    /// As `load`; `use_env: false` reads only defaults and the file (tests, which share one
    /// process environment between threads).
    pub fn load_from(file: Option<&Path>, use_env: bool) -> Result<Self, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        if use_env {
            figment = figment.merge(environment());
        }
        let raw: RawSettings = figment.extract().map_err(Box::new)?;
        Self::validate(raw)
    }

    fn validate(raw: RawSettings) -> Result<Self, SettingsError> {
        let required = |value: Option<String>, var: &str, what: &str| {
            value.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                SettingsError::Invalid(format!("{var} is not set: set it to {what}"))
            })
        };
        let worker_token = required(
            raw.worker_token,
            "POWERNODE_WORKER_TOKEN",
            "a random secret of at least 32 characters, shared with powernode-worker",
        )?;
        let token_len = worker_token.chars().count();
        if token_len < MIN_WORKER_TOKEN_LEN {
            return Err(SettingsError::Invalid(format!(
                "POWERNODE_WORKER_TOKEN is too short ({token_len} characters): set it to a random secret of at least {MIN_WORKER_TOKEN_LEN} characters"
            )));
        }
        let database_url = required(
            raw.database_url,
            "POWERNODE_DATABASE_URL",
            "a PostgreSQL URL such as postgres://powernode@127.0.0.1:5432/powernode",
        )?;
        let redis_url = required(
            raw.redis_url,
            "POWERNODE_REDIS_URL",
            "a Redis URL such as redis://127.0.0.1:6379/",
        )?;
        if !STALE_AFTER_BOUNDS.contains(&raw.stale_after_secs) {
            return Err(SettingsError::Invalid(format!(
                "POWERNODE_STALE_AFTER_SECS is {}: set it between {} and {} seconds",
                raw.stale_after_secs,
                STALE_AFTER_BOUNDS.start(),
                STALE_AFTER_BOUNDS.end()
            )));
        }
        if raw.federation_batch_queue == 0 {
            return Err(SettingsError::Invalid(
                "POWERNODE_FEDERATION_BATCH_QUEUE is 0: set it to at least 1".to_owned(),
            ));
        }
        if raw.database_pool_size == 0 {
            return Err(SettingsError::Invalid(
                "POWERNODE_DATABASE_POOL_SIZE is 0: set it to at least 1".to_owned(),
            ));
        }
        let in_range = |value: u64, range: std::ops::RangeInclusive<u64>, var: &str| {
            if range.contains(&value) {
                Ok(())
            } else {
                Err(SettingsError::Invalid(format!(
                    "{var} is {value}: set it between {} and {}",
                    range.start(),
                    range.end()
                )))
            }
        };
        in_range(
            raw.client_cert_days.into(),
            1..=3650,
            "POWERNODE_CLIENT_CERT_DAYS",
        )?;
        in_range(
            raw.listener_cert_days.into(),
            1..=3650,
            "POWERNODE_LISTENER_CERT_DAYS",
        )?;
        in_range(
            raw.cert_rotation_percent.into(),
            1..=99,
            "POWERNODE_CERT_ROTATION_PERCENT",
        )?;
        in_range(
            raw.peer_timeout_secs,
            1..=300,
            "POWERNODE_PEER_TIMEOUT_SECS",
        )?;
        if raw.peer_connect_timeout_secs == 0
            || raw.peer_connect_timeout_secs > raw.peer_timeout_secs.max(1)
        {
            return Err(SettingsError::Invalid(format!(
                "POWERNODE_PEER_CONNECT_TIMEOUT_SECS is {}: set it between 1 and POWERNODE_PEER_TIMEOUT_SECS ({})",
                raw.peer_connect_timeout_secs, raw.peer_timeout_secs
            )));
        }
        if raw.peer_concurrency_max == 0 {
            return Err(SettingsError::Invalid(
                "POWERNODE_PEER_CONCURRENCY_MAX is 0: set it to at least 1".to_owned(),
            ));
        }
        in_range(
            raw.federation_max_connections_per_source.into(),
            1..=1_000_000,
            "POWERNODE_FEDERATION_MAX_CONNECTIONS_PER_SOURCE",
        )?;
        in_range(
            raw.grant_ttl_days_max.into(),
            1..=3650,
            "POWERNODE_GRANT_TTL_DAYS_MAX",
        )?;
        in_range(
            raw.grant_ttl_days_default.into(),
            1..=raw.grant_ttl_days_max.into(),
            "POWERNODE_GRANT_TTL_DAYS_DEFAULT",
        )?;
        in_range(
            raw.grant_renew_window_days.into(),
            1..=raw.grant_ttl_days_default.into(),
            "POWERNODE_GRANT_RENEW_WINDOW_DAYS",
        )?;
        if raw.accept_failure_limit == 0 || raw.accept_failure_window_secs == 0 {
            return Err(SettingsError::Invalid(
                "POWERNODE_ACCEPT_FAILURE_LIMIT and POWERNODE_ACCEPT_FAILURE_WINDOW_SECS must be at least 1".to_owned(),
            ));
        }
        for (value, var) in [
            (
                raw.governance_accepted_without_handshake_secs,
                "POWERNODE_GOVERNANCE_ACCEPTED_WITHOUT_HANDSHAKE_SECS",
            ),
            (
                raw.governance_degraded_high_secs,
                "POWERNODE_GOVERNANCE_DEGRADED_HIGH_SECS",
            ),
            (
                raw.governance_approval_expiring_secs,
                "POWERNODE_GOVERNANCE_APPROVAL_EXPIRING_SECS",
            ),
        ] {
            in_range(value.into(), 1..=31_536_000, var)?;
        }
        for (value, var) in [
            (
                raw.governance_cert_expiring_days,
                "POWERNODE_GOVERNANCE_CERT_EXPIRING_DAYS",
            ),
            (
                raw.governance_grant_expiring_days,
                "POWERNODE_GOVERNANCE_GRANT_EXPIRING_DAYS",
            ),
            (
                raw.governance_report_retention_days,
                "POWERNODE_GOVERNANCE_REPORT_RETENTION_DAYS",
            ),
            (raw.event_retention_days, "POWERNODE_EVENT_RETENTION_DAYS"),
        ] {
            in_range(value.into(), 1..=3650, var)?;
        }
        in_range(
            raw.event_retention_high_days.into(),
            u64::from(raw.event_retention_days)..=3650,
            "POWERNODE_EVENT_RETENTION_HIGH_DAYS",
        )?;
        let federation_prefix = raw
            .federation_prefix
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                powernode_domain::UlaPrefix::parse(p)
                    .map_err(|e| SettingsError::Invalid(format!("POWERNODE_FEDERATION_PREFIX {e}")))
            })
            .transpose()?;
        let ui_session_key = match raw.ui_session_key_file.as_deref().map(str::trim) {
            Some(path) if !path.is_empty() => {
                crate::crypto::load_session_key(Path::new(path)).map_err(SettingsError::Invalid)?
            }
            _ if raw.environment == Environment::Production => {
                return Err(SettingsError::Invalid(
                    "POWERNODE_UI_SESSION_KEY_FILE is not set: set it to a file (mode 0600) holding 128 hex characters, e.g. `openssl rand -hex 64 > /etc/powernode/ui-session.key`".to_owned(),
                ));
            }
            // Development: a key of this process (sessions end with it).
            _ => actix_web::cookie::Key::generate(),
        };
        if raw.redis_prefix.is_empty() || raw.redis_prefix.contains(char::is_whitespace) {
            return Err(SettingsError::Invalid(
                "POWERNODE_REDIS_PREFIX must be a non-empty word without spaces".to_owned(),
            ));
        }
        let master_key_file = required(
            raw.master_key_file,
            "POWERNODE_MASTER_KEY_FILE",
            "a file (mode 0600) holding 64 hex characters, e.g. `openssl rand -hex 32 > /etc/powernode/master.key`",
        )?;
        let master_key =
            MasterKey::load(Path::new(&master_key_file)).map_err(SettingsError::Invalid)?;
        let public_url = required(
            raw.federation_public_url,
            "POWERNODE_FEDERATION_PUBLIC_URL",
            "the https base URL peers use to reach this instance's federation listener",
        )?;
        let federation_public_url = InstanceUrl::parse(&public_url)
            .map_err(|e| SettingsError::Invalid(format!("POWERNODE_FEDERATION_PUBLIC_URL {e}")))?;
        let ttl = TtlBounds {
            default_secs: raw.acceptance_token_ttl_secs,
            min_secs: raw.acceptance_token_ttl_min_secs,
            max_secs: raw.acceptance_token_ttl_max_secs,
        };
        if ttl.min_secs == 0 || ttl.min_secs > ttl.default_secs || ttl.default_secs > ttl.max_secs {
            return Err(SettingsError::Invalid(format!(
                "acceptance token TTLs must satisfy 0 < POWERNODE_ACCEPTANCE_TOKEN_TTL_MIN_SECS ({}) <= POWERNODE_ACCEPTANCE_TOKEN_TTL_SECS ({}) <= POWERNODE_ACCEPTANCE_TOKEN_TTL_MAX_SECS ({})",
                ttl.min_secs, ttl.default_secs, ttl.max_secs
            )));
        }
        if raw.allow_plaintext_fallback && raw.environment == Environment::Production {
            return Err(SettingsError::Invalid(
                "POWERNODE_ALLOW_PLAINTEXT_FALLBACK is on in production: turn it off (peers must use client certificates)".to_owned(),
            ));
        }
        if raw.allow_drill_mode && raw.environment == Environment::Production {
            return Err(SettingsError::Invalid(
                "POWERNODE_ALLOW_DRILL_MODE is on in production: turn it off, or set POWERNODE_ENVIRONMENT=development on a sandbox".to_owned(),
            ));
        }
        Ok(Settings {
            master_key: Arc::new(master_key),
            federation_public_url,
            acceptance_token_ttl: ttl,
            allow_drill_mode: raw.allow_drill_mode,
            federation_listen: raw.federation_listen,
            allow_plaintext_fallback: raw.allow_plaintext_fallback,
            federation_rate_per_minute: raw.federation_rate_per_minute,
            federation_batch_queue: raw.federation_batch_queue,
            federation_rate_burst: raw.federation_rate_burst,
            accept_rate_per_minute: raw.accept_rate_per_minute,
            accept_rate_burst: raw.accept_rate_burst,
            federation_max_connections_per_source: raw.federation_max_connections_per_source,
            accept_failures: powernode_store::accept_failures::Policy {
                limit: raw.accept_failure_limit,
                window_secs: raw.accept_failure_window_secs,
            },
            client_cert_days: raw.client_cert_days.into(),
            listener_cert_days: raw.listener_cert_days.into(),
            cert_rotation_percent: raw.cert_rotation_percent,
            peer_timeout: Duration::from_secs(raw.peer_timeout_secs),
            peer_connect_timeout: Duration::from_secs(raw.peer_connect_timeout_secs),
            peer_concurrency_max: raw.peer_concurrency_max as usize,
            peer_client_cache: raw.peer_client_cache as usize,
            grant_lifetimes: powernode_domain::grant::Lifetimes {
                default_days: raw.grant_ttl_days_default,
                max_days: raw.grant_ttl_days_max,
                renew_window_days: raw.grant_renew_window_days,
            },
            federation_prefix,
            mcp_allowed_hosts: mcp_allowed_hosts(&raw.mcp_allowed_hosts, &raw.http_listen),
            ui_session_key,
            governance: powernode_domain::governance::Thresholds {
                accepted_without_handshake_secs: raw.governance_accepted_without_handshake_secs,
                degraded_high_secs: raw.governance_degraded_high_secs,
                cert_expiring_days: raw.governance_cert_expiring_days,
                grant_expiring_days: raw.governance_grant_expiring_days,
                approval_expiring_secs: raw.governance_approval_expiring_secs,
                stale_after_secs: raw.stale_after_secs,
            },
            retention: Retention {
                event_days: raw.event_retention_days,
                event_high_days: raw.event_retention_high_days,
                report_days: raw.governance_report_retention_days,
            },
            resource_kinds: raw
                .resource_kinds
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
            trusted_proxies: raw
                .trusted_proxies
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    powernode_domain::grant::parse_cidr(p).map_err(|e| {
                        SettingsError::Invalid(format!("POWERNODE_TRUSTED_PROXIES: {e}"))
                    })
                })
                .collect::<Result<_, _>>()?,
            federation_tls_files: match (raw.federation_tls_cert_file, raw.federation_tls_key_file)
            {
                (None, None) => None,
                (Some(c), Some(k)) => Some((c.into(), k.into())),
                _ => {
                    return Err(SettingsError::Invalid(
                        "POWERNODE_FEDERATION_TLS_CERT_FILE and POWERNODE_FEDERATION_TLS_KEY_FILE go together: set both or neither".to_owned(),
                    ));
                }
            },
            environment: raw.environment,
            http_listen: raw.http_listen,
            database_url: database_url.into(),
            database_pool_size: raw.database_pool_size,
            database_timeout: Duration::from_secs(raw.database_timeout_secs.max(1)),
            redis_url: redis_url.into(),
            redis_prefix: raw.redis_prefix,
            worker_token: worker_token.into(),
            stale_after_secs: raw.stale_after_secs,
            shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
            log_format: raw.log_format,
        })
    }
}

/// `POWERNODE_MCP_ALLOWED_HOSTS`, or `localhost`, `127.0.0.1` and the operator listener's host.
fn mcp_allowed_hosts(raw: &str, http_listen: &str) -> Vec<String> {
    let listed: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let host = http_listen
        .rsplit_once(':')
        .map_or(http_listen, |(h, _)| h)
        .trim_matches(['[', ']']);
    if !host.is_empty() && !hosts.iter().any(|h| h == host) {
        hosts.push(host.to_owned());
    }
    hosts
}

/// The URL without its password, for logs ("waiting for PostgreSQL at …").
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(_) if !raw.contains('@') => raw.to_owned(),
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("REDACTED"));
            }
            url.to_string()
        }
        Err(_) => "[unparsable URL]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawSettings {
        RawSettings {
            database_url: Some("postgres://app:pw@127.0.0.1:5432/app".to_owned()),
            redis_url: Some("redis://127.0.0.1:6379/".to_owned()),
            worker_token: Some("x".repeat(32)),
            master_key_file: Some(master_key_file()),
            ui_session_key_file: Some(ui_session_key_file()),
            federation_public_url: Some("https://a.example.com:8443/".to_owned()),
            ..RawSettings::default()
        }
    }

    fn ui_session_key_file() -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("pn-ui-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "cd".repeat(64)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn the_ui_session_key_is_required_in_production_and_must_be_128_hex_characters() {
        let refused = |raw: RawSettings| Settings::validate(raw).unwrap_err().to_string();
        assert!(
            refused(RawSettings {
                ui_session_key_file: None,
                ..raw()
            })
            .starts_with("POWERNODE_UI_SESSION_KEY_FILE is not set")
        );
        let short = master_key_file(); // 64 hex characters: the master key's length, not this one's
        assert!(
            refused(RawSettings {
                ui_session_key_file: Some(short),
                ..raw()
            })
            .ends_with("must hold exactly 128 hex characters (e.g. `openssl rand -hex 64`)")
        );
        // Development runs without one (a key per process).
        assert!(
            Settings::validate(RawSettings {
                ui_session_key_file: None,
                environment: Environment::Development,
                ..raw()
            })
            .is_ok()
        );
    }

    fn master_key_file() -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("pn-mk-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn the_public_url_is_normalised_and_drill_mode_refused_in_production() {
        let settings = Settings::validate(raw()).unwrap();
        assert_eq!(
            settings.federation_public_url.as_str(),
            "https://a.example.com:8443"
        );
        let err = Settings::validate(RawSettings {
            allow_drill_mode: true,
            ..raw()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("POWERNODE_ALLOW_DRILL_MODE is on in production")
        );
        let dev = Settings::validate(RawSettings {
            allow_drill_mode: true,
            environment: Environment::Development,
            ..raw()
        })
        .unwrap();
        assert!(dev.drill_allowed());
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail API returns its own error"
    )]
    fn the_old_timeout_variable_is_an_alias_and_the_new_one_wins() {
        let timeout = |jail: &mut figment::Jail, vars: &[(&str, &str)]| {
            jail.clear_env();
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            let raw: RawSettings = Figment::from(Serialized::defaults(RawSettings::default()))
                .merge(environment())
                .extract()
                .unwrap();
            raw.database_timeout_secs
        };
        figment::Jail::expect_with(|jail| {
            assert_eq!(timeout(jail, &[]), 5);
            let old = ("POWERNODE_DATABASE_CONNECT_TIMEOUT_SECS", "7");
            assert_eq!(timeout(jail, &[old]), 7);
            let new = ("POWERNODE_DATABASE_TIMEOUT_SECS", "3");
            assert_eq!(timeout(jail, &[old, new]), 3);
            Ok(())
        });
    }

    #[test]
    fn thresholds_out_of_range_are_refused_naming_the_variable() {
        let refused = |raw: RawSettings| Settings::validate(raw).unwrap_err().to_string();
        assert_eq!(
            refused(RawSettings {
                cert_rotation_percent: 100,
                ..raw()
            }),
            "POWERNODE_CERT_ROTATION_PERCENT is 100: set it between 1 and 99"
        );
        assert_eq!(
            refused(RawSettings {
                peer_timeout_secs: 0,
                ..raw()
            }),
            "POWERNODE_PEER_TIMEOUT_SECS is 0: set it between 1 and 300"
        );
        assert_eq!(
            refused(RawSettings {
                peer_timeout_secs: 2,
                ..raw()
            }),
            "POWERNODE_PEER_CONNECT_TIMEOUT_SECS is 3: set it between 1 and POWERNODE_PEER_TIMEOUT_SECS (2)"
        );
        assert_eq!(
            refused(RawSettings {
                grant_ttl_days_default: 400,
                ..raw()
            }),
            "POWERNODE_GRANT_TTL_DAYS_DEFAULT is 400: set it between 1 and 365"
        );
        assert_eq!(
            refused(RawSettings {
                grant_renew_window_days: 31,
                ..raw()
            }),
            "POWERNODE_GRANT_RENEW_WINDOW_DAYS is 31: set it between 1 and 30"
        );
        let settings = Settings::validate(RawSettings {
            peer_timeout_secs: 3,
            ..raw()
        })
        .unwrap();
        assert_eq!(settings.peer_timeout, Duration::from_secs(3));
        assert_eq!(settings.client_cert_days, 90);
    }

    #[test]
    fn governance_and_retention_settings_are_checked() {
        let refused = |raw: RawSettings| Settings::validate(raw).unwrap_err().to_string();
        assert_eq!(
            refused(RawSettings {
                event_retention_high_days: 30,
                ..raw()
            }),
            "POWERNODE_EVENT_RETENTION_HIGH_DAYS is 30: set it between 90 and 3650"
        );
        assert_eq!(
            refused(RawSettings {
                governance_accepted_without_handshake_secs: 0,
                ..raw()
            }),
            "POWERNODE_GOVERNANCE_ACCEPTED_WITHOUT_HANDSHAKE_SECS is 0: set it between 1 and 31536000"
        );
        assert_eq!(
            refused(RawSettings {
                federation_prefix: Some("10.0.0.0/8".to_owned()),
                ..raw()
            }),
            "POWERNODE_FEDERATION_PREFIX must be a /48, /56, or /64 ULA prefix"
        );
        let settings = Settings::validate(RawSettings {
            federation_prefix: Some("fd00:9::/48".to_owned()),
            governance_cert_expiring_days: 14,
            ..raw()
        })
        .unwrap();
        assert_eq!(
            settings.federation_prefix.map(|p| p.to_string()).as_deref(),
            Some("fd00:9::/48")
        );
        assert_eq!(settings.governance.cert_expiring_days, 14);
        assert_eq!(
            settings.governance.stale_after_secs,
            settings.stale_after_secs
        );
        assert_eq!(
            (
                settings.retention.event_days,
                settings.retention.event_high_days
            ),
            (90, 365)
        );
    }

    #[test]
    fn a_missing_master_key_file_names_the_variable() {
        let err = Settings::validate(RawSettings {
            master_key_file: None,
            ..raw()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("POWERNODE_MASTER_KEY_FILE is not set")
        );
    }

    #[test]
    fn a_missing_worker_token_names_the_variable() {
        let err = Settings::validate(RawSettings {
            worker_token: None,
            ..raw()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "POWERNODE_WORKER_TOKEN is not set: set it to a random secret of at least 32 characters, shared with powernode-worker"
        );
    }

    #[test]
    fn a_short_worker_token_is_refused() {
        let err = Settings::validate(RawSettings {
            worker_token: Some("x".repeat(31)),
            ..raw()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("POWERNODE_WORKER_TOKEN is too short (31 characters)")
        );
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let settings = Settings::validate(raw()).unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("xxxxxxxx"), "{printed}");
        assert!(!printed.contains(":pw@"), "{printed}");
        assert!(printed.contains("REDACTED"));
    }

    #[test]
    fn stale_after_is_bounded() {
        let err = Settings::validate(RawSettings {
            stale_after_secs: 5,
            ..raw()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("POWERNODE_STALE_AFTER_SECS is 5")
        );
    }
}
