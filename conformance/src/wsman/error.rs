//! Errors of the WS-Management client. Each failure a conformance report has to tell apart
//! (the server refused us, the server faulted, the wire broke, the server spoke nonsense) has
//! its own variant.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A namespace-qualified name, e.g. a fault subcode `{http://…/wsman.xsd}InvalidSelectors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QName {
    pub namespace: String,
    pub local: String,
}

impl std::fmt::Display for QName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{}}}{}", self.namespace, self.local)
    }
}

/// A SOAP 1.2 fault as WinRM writes it (wsman.md §1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoapFault {
    pub http_status: u16,
    /// `s:Code/s:Value`, e.g. `{soap-envelope}Sender` or `Receiver`.
    pub code: QName,
    /// `s:Code/s:Subcode/s:Value`, e.g. `{…/wsman.xsd}InvalidSelectors`.
    pub subcode: Option<QName>,
    /// First `s:Reason/s:Text`.
    pub reason: String,
    /// `f:WSManFault/@Code` (decimal HRESULT or Win32 code) of the outermost WSManFault.
    pub wsman_code: Option<u32>,
    /// `w:FaultDetail` URI.
    pub fault_detail: Option<String>,
    /// Text of the outermost `f:WSManFault/f:Message`, whitespace-collapsed.
    pub message: Option<String>,
    /// Header `a:Action` of the fault message.
    pub action: Option<String>,
}

impl SoapFault {
    /// `code` is `s:Sender`.
    pub fn is_sender(&self) -> bool {
        self.code.local == "Sender"
    }

    /// The subcode is `{ns}local`.
    pub fn subcode_is(&self, ns: &str, local: &str) -> bool {
        self.subcode
            .as_ref()
            .is_some_and(|s| s.namespace == ns && s.local == local)
    }
}

impl std::fmt::Display for SoapFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}", self.http_status, self.code.local)?;
        if let Some(s) = &self.subcode {
            write!(f, "/{}", s.local)?;
        }
        if let Some(c) = self.wsman_code {
            write!(f, " (code {c})")?;
        }
        write!(f, ": {}", self.reason.trim())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WsmanError {
    /// HTTP 401. The values of every `WWW-Authenticate` header, so a report can say which
    /// schemes the server offers.
    #[error("HTTP 401 unauthorized (WWW-Authenticate: {})", www_authenticate.join(", "))]
    Unauthorized { www_authenticate: Vec<String> },

    /// A SOAP fault (usually HTTP 500, sometimes 400 or even 200). Boxed to keep `Result`s small.
    #[error("WS-Management fault: {0}")]
    Fault(Box<SoapFault>),

    /// A non-success HTTP status without a SOAP fault in the body.
    #[error("unexpected HTTP status {status}: {body_excerpt}")]
    Http { status: u16, body_excerpt: String },

    /// The request did not get an answer within `ClientOptions::timeout`.
    #[error("no response from {url} within {after:?}")]
    Timeout { url: String, after: Duration },

    /// Connection refused or reset, TLS failure, DNS... (`source` has the details).
    #[error("transport error talking to {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The connection a Negotiate context lives on could not be opened or broke (the
    /// Negotiate path holds its own connection instead of reqwest's pool).
    #[error("connection to {url} failed: {detail}")]
    Connection { url: String, detail: String },

    /// The body is not well-formed XML (or not text at all).
    #[error("malformed XML in response: {reason}; body starts with: {body_excerpt}")]
    MalformedXml {
        reason: String,
        body_excerpt: String,
    },

    /// Well-formed XML that is not the expected WS-Management message.
    #[error("unexpected response: {0}")]
    Protocol(String),

    /// `a:RelatesTo` does not echo our MessageID (pypsrp treats this as fatal too).
    #[error("RelatesTo mismatch: sent MessageID {expected}, response relates to {}", got.as_deref().unwrap_or("nothing"))]
    RelatesToMismatch {
        expected: String,
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
    JobNotFound { instance_id: String },

    /// The job was still running when the wait ended.
    #[error("job {instance_id} not finished after {waited:?} (last JobState {last_state:?})")]
    JobTimeout {
        instance_id: String,
        waited: Duration,
        last_state: Option<u16>,
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
            WsmanError::Fault(f) => Some(f),
            _ => None,
        }
    }
}

pub type Result<T, E = WsmanError> = std::result::Result<T, E>;

/// First `max` characters of a body, for error messages.
pub(crate) fn excerpt(body: &str, max: usize) -> String {
    let mut out: String = body.chars().take(max).collect();
    if body.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}
