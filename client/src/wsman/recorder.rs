//! Recording hook. Every HTTP exchange the client makes (typed operations and raw sends) is
//! handed to the recorder after it ends, including transport failures, so that a replay can
//! serve the same answers in the same order. Requests are stored as bodies only: the
//! `Authorization` header never reaches a recording.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Which client call produced an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `wsmid:Identify`.
    Identify,
    /// WS-Transfer Get.
    Get,
    /// WS-Enumeration Enumerate.
    Enumerate,
    /// WS-Enumeration Pull.
    Pull,
    /// WS-Enumeration Release.
    Release,
    /// A WMI method call.
    Invoke,
    /// `WsmanClient::send`: caller-built XML, possibly malformed on purpose.
    Raw,
}

/// One request and its answer, as a recording keeps it (`replica-conformance --record DIR`
/// writes them as JSON, one file per scenario).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// Position in this client's sequence, from 0.
    pub seq: u64,
    /// Which call it was.
    pub operation: OpKind,
    /// Method name of an `invoke`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Resource URI of typed operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<String>,
    /// MessageID we sent (none for Identify and raw sends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The URL called.
    pub endpoint: String,
    /// The request body sent.
    pub request: String,
    /// HTTP status; absent when the exchange failed below HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response headers in arrival order (WWW-Authenticate matters for a replayed 401).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<(String, String)>,
    /// The response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Time from sending to the whole answer read.
    pub elapsed_ms: u64,
    /// Transport error or timeout, when there was no HTTP answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Receives exchanges. Called on the task that made the request, after the response body was
/// read; implementations should be quick (buffer, then write).
pub trait Recorder: Send + Sync {
    /// Sees one exchange.
    fn record(&self, exchange: &Exchange);
}

/// Keeps exchanges in memory (tests, and the runner's `--record` before it writes files).
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    exchanges: Mutex<Vec<Exchange>>,
}

impl MemoryRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything recorded so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        match self.exchanges.lock() {
            Ok(g) => g.clone(),
            // A panic elsewhere while holding the lock must not lose the recording.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Removes and returns everything recorded so far.
    pub fn take(&self) -> Vec<Exchange> {
        match self.exchanges.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl Recorder for MemoryRecorder {
    fn record(&self, exchange: &Exchange) {
        match self.exchanges.lock() {
            Ok(mut g) => g.push(exchange.clone()),
            Err(poisoned) => poisoned.into_inner().push(exchange.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_json_round_trip() {
        let ex = Exchange {
            seq: 3,
            operation: OpKind::Invoke,
            method: Some("InitiateFailback".into()),
            resource_uri: Some("http://x/Msvm_ReplicationService".into()),
            message_id: Some("uuid:A".into()),
            endpoint: "http://127.0.0.1:5985/wsman".into(),
            request: "<s:Envelope/>".into(),
            status: Some(200),
            response_headers: vec![("content-type".into(), "application/soap+xml".into())],
            response: Some("<s:Envelope/>".into()),
            elapsed_ms: 12,
            error: None,
        };
        let json = serde_json::to_string(&ex).expect("serialize");
        assert!(json.contains(r#""operation":"invoke""#), "{json}");
        assert!(!json.contains("\"error\""), "{json}");
        let back: Exchange = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, ex);
    }
}
