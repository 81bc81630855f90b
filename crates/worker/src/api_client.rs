//! The worker's only way to change state: POSTs to the API's worker endpoints.

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::settings::Settings;

#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

/// How a worker API call went.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The API answered, but not with `success: true`.
    #[error("{detail}")]
    NonSuccess { status: StatusCode, detail: String },
    /// No answer (connection refused, timeout, unreadable body).
    #[error("{0}")]
    NoAnswer(String),
}

impl CallError {
    /// Retried: no answer at all, or a 5xx. A 4xx will not get better by itself.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::NoAnswer(_) => true,
            CallError::NonSuccess { status, .. } => status.is_server_error(),
        }
    }
}

impl ApiClient {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.api_timeout)
            .user_agent(concat!("powernode-worker/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ApiClient {
            http,
            base: settings.api_url.clone(),
            token: settings.worker_token.clone(),
        })
    }

    /// POSTs `path` (no body, as the runbook's curl) and returns the envelope's `data`.
    pub async fn post(&self, path: &str) -> Result<Value, CallError> {
        self.send(path, None).await
    }

    /// POSTs `body` as JSON to `path`.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, CallError> {
        self.send(path, Some(body)).await
    }

    async fn send(&self, path: &str, body: Option<&Value>) -> Result<Value, CallError> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .post(&url)
            .header("X-Worker-Token", self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CallError::NoAnswer(describe(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| CallError::NoAnswer(describe(&e)))?;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        match json {
            Some(v) if v.get("success") == Some(&Value::Bool(true)) => {
                Ok(v.get("data").cloned().unwrap_or(Value::Null))
            }
            Some(v) => {
                let error = v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no error message");
                Err(CallError::NonSuccess {
                    status,
                    detail: format!("HTTP {}: {error}", status.as_u16()),
                })
            }
            None => Err(CallError::NonSuccess {
                status,
                detail: format!("HTTP {} with a non-JSON body", status.as_u16()),
            }),
        }
    }
}

/// reqwest's Display hides the cause ("error sending request"); the chain says what happened.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
