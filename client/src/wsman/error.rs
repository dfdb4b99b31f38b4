//! Errors of the WS-Management client. Each failure a conformance report has to tell apart
//! (the server refused us, the server faulted, the wire broke, the server spoke nonsense) has
//! its own variant.

use std::time::Duration;

pub use replica_wsman::fault::{QName, SoapFault};

/// Why a WS-Management call failed.
#[derive(Debug, thiserror::Error)]
pub enum WsmanError {
    /// HTTP 401. The values of every `WWW-Authenticate` header, so a report can say which
    /// schemes the server offers.
    #[error("HTTP 401 unauthorized (WWW-Authenticate: {})", www_authenticate.join(", "))]
    Unauthorized {
        /// Every `WWW-Authenticate` value, in arrival order.
        www_authenticate: Vec<String>,
    },

    /// A SOAP fault (usually HTTP 500, sometimes 400 or even 200). Boxed to keep `Result`s small.
    #[error("WS-Management fault: {0}")]
    Fault(Box<SoapFault>),

    /// A non-success HTTP status without a SOAP fault in the body.
    #[error("unexpected HTTP status {status}: {body_excerpt}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body_excerpt: String,
    },

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

    /// The body is not well-formed XML (or not text at all).
    #[error("malformed XML in response: {reason}; body starts with: {body_excerpt}")]
    MalformedXml {
        /// What the XML parser said.
        reason: String,
        /// The start of the body.
        body_excerpt: String,
    },

    /// Well-formed XML that is not the expected WS-Management message.
    #[error("unexpected response: {0}")]
    Protocol(String),

    /// `a:RelatesTo` does not echo our MessageID (pypsrp treats this as fatal too).
    #[error("RelatesTo mismatch: sent MessageID {expected}, response relates to {}", got.as_deref().unwrap_or("nothing"))]
    RelatesToMismatch {
        /// The MessageID sent.
        expected: String,
        /// The `a:RelatesTo` received, if any.
        got: Option<String>,
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

impl From<replica_wsman::response::ResponseError> for WsmanError {
    fn from(e: replica_wsman::response::ResponseError) -> Self {
        use replica_wsman::response::ResponseError as R;
        match e {
            R::Unauthorized { www_authenticate } => WsmanError::Unauthorized { www_authenticate },
            R::Fault(f) => WsmanError::Fault(f),
            R::Http {
                status,
                body_excerpt,
            } => WsmanError::Http {
                status,
                body_excerpt,
            },
            R::MalformedXml {
                reason,
                body_excerpt,
            } => WsmanError::MalformedXml {
                reason,
                body_excerpt,
            },
            R::Protocol(m) => WsmanError::Protocol(m),
            R::RelatesToMismatch { expected, got } => {
                WsmanError::RelatesToMismatch { expected, got }
            }
        }
    }
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
            WsmanError::Fault(f) => Some(f),
            _ => None,
        }
    }
}

/// A client call's result.
pub type Result<T, E = WsmanError> = std::result::Result<T, E>;
