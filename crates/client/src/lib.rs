//! The wire contract of Powernode Federation, shared by the server and every client: the
//! request and response types of the operator API, the worker API and the instance-to-instance
//! protocol, the SPEC §10 envelopes, and a typed async client for each API.
//!
//! The API's handlers answer with these types (its OpenAPI document is generated from them,
//! feature `openapi`); the worker, the outbound PeerClient, `powernodectl` and the tests call
//! through the clients here. No caller branches on a message's text: a refusal a caller must
//! react to carries a machine-readable reason in `details` (see `docs/errors.md`).

pub mod approvals;
pub mod client;
pub mod events;
pub mod federation;
pub mod governance;
pub mod grants;
pub mod mcp;
pub mod operators;
pub mod peers;
pub mod worker;

pub use client::{FederationClient, OperatorClient, WorkerClient};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{"success": true, "data": …}`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub success: bool,
    pub data: T,
}

impl<T> Envelope<T> {
    pub fn ok(data: T) -> Self {
        Envelope {
            success: true,
            data,
        }
    }
}

/// `{"success": false, "error": …, "code": …, "details": {…}}` (SPEC §10; codes and `details`
/// keys in `docs/errors.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    pub success: bool,
    pub error: String,
    pub code: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
}

/// The answer of a gated action queued for approval (202): `Approval required: <action>`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
pub struct ApprovalRequired {
    pub message: String,
    pub approval_request: approvals::ApprovalView,
}

/// A gated action's outcome as a client sees it.
#[derive(Debug)]
pub enum Gated<T> {
    Done(T),
    Queued(Box<ApprovalRequired>),
}

/// A call that did not end in the success envelope.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer: connection refused, timeout, TLS failure (the whole cause chain).
    #[error("{cause}")]
    NoAnswer { url: String, cause: String },
    /// The API answered with its error envelope.
    #[error("HTTP {status}: {}", body.error)]
    Api { status: u16, body: Box<ErrorBody> },
    /// An answer that is not JSON (a proxy's error page, …).
    #[error("HTTP {status} with a non-JSON body")]
    NotJson { status: u16 },
    /// JSON that is not the contract: a newer or broken server.
    #[error("HTTP {status}: unexpected answer: {cause}")]
    Unexpected { status: u16, cause: String },
}

impl Error {
    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::NoAnswer { .. } => None,
            Error::Api { status, .. }
            | Error::NotJson { status }
            | Error::Unexpected { status, .. } => Some(*status),
        }
    }

    /// The error envelope, when the API sent one.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Error::Api { body, .. } => Some(body),
            _ => None,
        }
    }

    /// Worth retrying: no answer at all, or a 5xx. A 4xx will not get better by itself.
    pub fn is_retryable(&self) -> bool {
        self.status().is_none_or(|s| s >= 500)
    }
}
