//! The worker's only way to change state: the API's worker endpoints, through
//! `powernode_client::WorkerClient` (the same wire types the API answers with).

use powernode_client::WorkerClient;

use crate::settings::Settings;

/// The worker API client with this worker's timeout, user agent and token.
pub fn worker_client(settings: &Settings) -> anyhow::Result<WorkerClient> {
    let http = reqwest::Client::builder()
        .timeout(settings.api_timeout)
        .user_agent(concat!("powernode-worker/", env!("CARGO_PKG_VERSION")))
        .build()?;
    Ok(WorkerClient::new(
        http,
        &settings.api_url,
        settings.worker_token.clone(),
    ))
}
