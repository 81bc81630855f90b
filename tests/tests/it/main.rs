//! Every integration test in one binary (one link instead of seventeen), a module per area.
//! Real PostgreSQL, Redis, API and worker processes; `scripts/dev test` starts the services.

mod api;
mod approvals;
mod cli;
mod config;
mod csr;
mod database;
mod demo;
mod deploy;
mod doctor;
mod establishment;
mod federation;
mod governance;
mod grants;
mod grants_property;
mod idempotency;
mod mcp;
mod metrics;
mod operators;
mod partial_mtls;
mod peers;
mod reliability;
mod service;
mod store;
mod ui;
mod worker;
