//! Powernode Federation API server.

pub mod auth;
pub mod ca;
pub mod claim;
pub mod cli;
pub mod crypto;
pub mod db;
pub mod error;
pub mod failpoint;
pub mod federation;
pub mod mcp;
pub mod nul;
pub mod observability;
pub mod peer_clients;
pub mod queue;
pub mod ratelimit;
pub mod render;
pub mod routes;
pub mod services;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod ui;

pub use settings::Settings;
pub use startup::Application;
