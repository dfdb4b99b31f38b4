//! Errors of the WS-Management client. Each failure a conformance report has to tell apart
//! (the server refused us, the server faulted, the wire broke, the server spoke nonsense) has
//! its own variant.

use std::time::Duration;

pub use replica_wsman::fault::{QName, SoapFault};
pub use replica_wsman::response::ResponseError;

/// Why a WS-Management call failed.
#[derive(Debug, thiserror::Error)]
pub enum WsmanError {
    /// What the response said, or failed to say (HTTP 401, a SOAP fault, another status, bad
    /// XML, an unexpected message, a RelatesTo mismatch): the protocol crate's own error.
    #[error(transparent)]
    Response(#[from] ResponseError),

    /// The request did not get an answer within `ClientOptions::timeout`.
    #[error("no response from {url} within {after:?}")]
    Timeout {
        /// The endpoint called.
        url: String,
        /// How long the client waited.
        after: Duration,
    },

    /// Connection refused or reset, TLS failure, DNS... (`source` has the details).
    #[error("transport error talking to {url}: {source}")]
    Transport {
        /// The endpoint called.
        url: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },

    /// The connection a Negotiate context lives on could not be opened or broke (the
    /// Negotiate path holds its own connection instead of reqwest's pool).
    #[error("connection to {url} failed: {detail}")]
    Connection {
        /// The endpoint called.
        url: String,
        /// What broke.
        detail: String,
    },

    /// The caller asked for something that cannot be put on the wire.
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The client could not be built (bad URL, TLS setup).
    #[error("client configuration: {0}")]
    Config(String),

    /// A WQL job poll found no job with that InstanceID.
    #[error("job {instance_id} not found")]
    JobNotFound {
        /// The job's InstanceID.
        instance_id: String,
    },

    /// The job was still running when the wait ended.
    #[error("job {instance_id} not finished after {waited:?} (last JobState {last_state:?})")]
    JobTimeout {
        /// The job's InstanceID.
        instance_id: String,
        /// How long the wait lasted.
        waited: Duration,
        /// The JobState of the last poll.
        last_state: Option<u16>,
        /// `(JobState, PercentComplete)` of every poll, in order.
        observations: Vec<(u16, Option<u16>)>,
    },
}

impl From<replica_wsman::request::BuildError> for WsmanError {
    fn from(e: replica_wsman::request::BuildError) -> Self {
        WsmanError::InvalidRequest(e.0)
    }
}

impl WsmanError {
    /// The fault, if this is one.
    pub fn fault(&self) -> Option<&SoapFault> {
        match self {
            WsmanError::Response(r) => r.fault(),
            _ => None,
        }
    }

    /// A well-formed answer that is not the expected WS-Management message.
    pub fn protocol(message: impl Into<String>) -> WsmanError {
        WsmanError::Response(ResponseError::Protocol(message.into()))
    }
}

/// A client call's result.
pub type Result<T, E = WsmanError> = std::result::Result<T, E>;
