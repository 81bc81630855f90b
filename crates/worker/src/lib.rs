//! Powernode Federation worker: apalis cron schedules on Redis whose jobs call the API's
//! worker endpoints. It never touches PostgreSQL.

pub mod api_client;
pub mod cli;
pub mod jobs;
pub mod metrics;
pub mod poll;
pub mod run;
pub mod schedules;
pub mod settings;
pub mod telemetry;
