//! The simulator's JSON control API (`/_replica/v1/`) over HTTP: fresh worlds, resets, clock,
//! faults, the journal and the state, answered as the server's own types. Real hosts have none
//! of it; [`probe`] tells whether a target does.

use std::time::Duration;

use replica_core::faults::{FaultRule, FaultSpec};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ensure_crypto_provider;

use super::types::{
    ClockMode, ClockState, ControlError, FaultAdded, JournalEntry, JournalPage, Reset, ResetDone,
    WorldState,
};

/// A plain HTTP client for control calls.
pub fn http_client(accept_invalid_certs: bool) -> Result<reqwest::Client, ControlCallError> {
    ensure_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .tls_danger_accept_invalid_certs(accept_invalid_certs)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| ControlCallError::Transport {
            call: "building the control API client".into(),
            source: e,
        })
}

/// `http://host:port` of a WS-Management URL (`http://host:port/wsman`), or `None` when the
/// URL does not end in `/wsman`.
pub fn listener_base(wsman_url: &str) -> Option<String> {
    let u = wsman_url.trim_end_matches('/');
    u.strip_suffix("/wsman").map(str::to_string)
}

/// Whether the listener behind `wsman_url` is a replica-sim (its control API answers `GET
/// health` with JSON `{"ok": true, ...}`). Anything else, including no answer, is a real host.
pub async fn probe(http: &reqwest::Client, wsman_url: &str) -> bool {
    let Some(base) = listener_base(wsman_url) else {
        return false;
    };
    let Ok(resp) = http
        .get(format!("{base}/_replica/v1/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
    else {
        return false;
    };
    if !resp.status().is_success() {
        return false;
    }
    let Ok(text) = resp.text().await else {
        return false;
    };
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("ok").and_then(Value::as_bool))
        .unwrap_or(false)
}

/// Why a control call over HTTP failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlCallError {
    /// No HTTP answer (connection refused, timeout, TLS).
    #[error("{call}: {source}")]
    Transport {
        /// The call, as `METHOD url`.
        call: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered and refused the call: its status and JSON `error` (with the
    /// position of a refused topology).
    #[error("{call}: {refusal}")]
    Refused {
        /// The call, as `METHOD url`.
        call: String,
        /// The refusal as the server's own type.
        refusal: ControlError,
    },
    /// A success whose body is not the documented JSON.
    #[error("{call}: unexpected answer: {message}")]
    Decode {
        /// The call, as `METHOD url`.
        call: String,
        /// What did not parse.
        message: String,
    },
}

impl ControlCallError {
    /// The server's refusal, when the call got one.
    pub fn refusal(&self) -> Option<&ControlError> {
        match self {
            ControlCallError::Refused { refusal, .. } => Some(refusal),
            ControlCallError::Transport { .. } | ControlCallError::Decode { .. } => None,
        }
    }
}

/// The control API's refusal body (`{"error": ..., "line"?, "column"?, "field"?}`) read into
/// [`ControlError`]; a body that is not one keeps its text as the message.
fn refusal(status: u16, text: &str) -> ControlError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let usize_of = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    ControlError {
        status,
        message: v
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| text.trim().to_string(), str::to_string),
        line: usize_of("line"),
        column: usize_of("column"),
        field: v.get("field").and_then(Value::as_str).map(str::to_string),
    }
}

/// The control API of one world of a simulator, typed: each call answers the server's own type.
#[derive(Clone, Debug)]
pub struct Control {
    http: reqwest::Client,
    /// A listener's base URL, `http://host:port`.
    base: String,
    /// The world, or `None` for the default one.
    world: Option<String>,
    /// The control token (`--control-token`), sent as `Authorization: Bearer`.
    token: Option<String>,
}

impl Control {
    /// The control API at `base` (`http://host:port`), of `world` (`None`: the default world).
    pub fn new(http: reqwest::Client, base: impl Into<String>, world: Option<String>) -> Self {
        Control {
            http,
            base: base.into(),
            world,
            token: None,
        }
    }

    /// The same world, calling with a control token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The same simulator, another world (`None`: the default one).
    pub fn for_world(&self, world: Option<String>) -> Self {
        Control {
            world,
            ..self.clone()
        }
    }

    /// The world called, or `None` for the default one.
    pub fn world(&self) -> Option<&str> {
        self.world.as_deref()
    }

    fn url(&self, path: &str) -> String {
        match &self.world {
            Some(w) => format!("{}/worlds/{w}/_replica/v1/{path}", self.base),
            None => format!("{}/_replica/v1/{path}", self.base),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<&Value>,
    ) -> Result<T, ControlCallError> {
        let call = format!("{method} {url}");
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(source) => return Err(ControlCallError::Transport { call, source }),
        };
        let status = resp.status();
        let text = match resp.text().await {
            Ok(t) => t,
            Err(source) => return Err(ControlCallError::Transport { call, source }),
        };
        if !status.is_success() {
            let refusal = refusal(status.as_u16(), &text);
            return Err(ControlCallError::Refused { call, refusal });
        }
        serde_json::from_str(&text).map_err(|e| ControlCallError::Decode {
            call,
            message: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ControlCallError> {
        self.send(reqwest::Method::GET, self.url(path), None).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, ControlCallError> {
        self.send(reqwest::Method::POST, self.url(path), Some(body))
            .await
    }

    fn to_json<T: serde::Serialize>(v: &T, what: &str) -> Result<Value, ControlCallError> {
        serde_json::to_value(v).map_err(|e| ControlCallError::Decode {
            call: what.into(),
            message: e.to_string(),
        })
    }

    /// Replaces the world with a fresh one (`POST reset`); a refused reset leaves it as it was.
    pub async fn reset(&self, reset: &Reset) -> Result<ResetDone, ControlCallError> {
        self.post("reset", &Self::to_json(reset, "reset")?).await
    }

    /// The whole world (`GET state`).
    pub async fn state(&self) -> Result<WorldState, ControlCallError> {
        self.get("state").await
    }

    /// The world's clock (`GET clock`).
    pub async fn clock(&self) -> Result<ClockState, ControlCallError> {
        self.get("clock").await
    }

    /// Sets how the world's time moves (`POST clock {"mode": ...}`).
    pub async fn set_clock(&self, mode: ClockMode) -> Result<ClockState, ControlCallError> {
        self.post("clock", &Self::to_json(&mode, "clock")?).await
    }

    /// Stops time: only [`Control::advance`] moves it.
    pub async fn clock_manual(&self) -> Result<ClockState, ControlCallError> {
        self.set_clock(ClockMode::Manual).await
    }

    /// Moves virtual time forward by `ms` (`POST clock {"advance_ms": N}`): jobs due by then
    /// complete.
    pub async fn advance(&self, ms: u64) -> Result<ClockState, ControlCallError> {
        self.post("clock", &json!({ "advance_ms": ms })).await
    }

    /// The fault plan (`GET faults`).
    pub async fn faults(&self) -> Result<Vec<FaultRule>, ControlCallError> {
        #[derive(serde::Deserialize)]
        struct Faults {
            faults: Vec<FaultRule>,
        }
        self.get::<Faults>("faults").await.map(|f| f.faults)
    }

    /// Adds a fault rule (`POST faults`).
    pub async fn add_fault(&self, spec: &FaultSpec) -> Result<FaultAdded, ControlCallError> {
        self.post("faults", &Self::to_json(spec, "faults")?).await
    }

    /// Removes every fault rule (`DELETE faults`); answers how many there were.
    pub async fn clear_faults(&self) -> Result<usize, ControlCallError> {
        #[derive(serde::Deserialize)]
        struct Removed {
            removed: usize,
        }
        self.send::<Removed>(reqwest::Method::DELETE, self.url("faults"), None)
            .await
            .map(|r| r.removed)
    }

    /// One page of the journal: up to `limit` (1..=10000) entries after `since`
    /// (`GET journal?since=N&limit=M`).
    pub async fn journal_page(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<JournalPage, ControlCallError> {
        self.get(&format!("journal?since={since}&limit={limit}"))
            .await
    }

    /// Every journal entry still kept, oldest first (all pages of `GET journal`).
    pub async fn journal(&self) -> Result<Vec<JournalEntry>, ControlCallError> {
        let mut all = Vec::new();
        let mut since = 0;
        loop {
            let page = self.journal_page(since, 10_000).await?;
            all.extend(page.entries);
            if !page.more || page.next == since {
                return Ok(all);
            }
            since = page.next;
        }
    }

    /// The names of the simulator's worlds (`GET worlds`), the default one included.
    pub async fn worlds(&self) -> Result<Vec<String>, ControlCallError> {
        #[derive(serde::Deserialize)]
        struct Worlds {
            worlds: Vec<String>,
        }
        let url = format!("{}/_replica/v1/worlds", self.base);
        self.send::<Worlds>(reqwest::Method::GET, url, None)
            .await
            .map(|w| w.worlds)
    }

    /// Removes this world from the simulator (no-op for the default world).
    pub async fn delete_world(&self) -> Result<(), ControlCallError> {
        let Some(w) = &self.world else {
            return Ok(());
        };
        let url = format!("{}/_replica/v1/worlds/{w}", self.base);
        self.send::<Value>(reqwest::Method::DELETE, url, None)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases() {
        assert_eq!(
            listener_base("http://127.0.0.1:5985/wsman").as_deref(),
            Some("http://127.0.0.1:5985")
        );
        assert_eq!(
            listener_base("https://h:5986/wsman/").as_deref(),
            Some("https://h:5986")
        );
        assert_eq!(listener_base("http://h/other"), None);
    }

    #[test]
    fn world_urls() {
        let http = http_client(false).expect("client");
        let c = Control::new(http.clone(), "http://h:1", Some("w1".into()));
        assert_eq!(c.url("reset"), "http://h:1/worlds/w1/_replica/v1/reset");
        let d = Control::new(http, "http://h:1", None);
        assert_eq!(d.url("clock"), "http://h:1/_replica/v1/clock");
    }

    #[test]
    fn refusals_keep_status_message_and_position() {
        let r = refusal(
            400,
            r#"{"error": "bad topology", "line": 3, "column": 7, "field": "vms[0].host"}"#,
        );
        assert_eq!(r.status, 400);
        assert_eq!(r.message, "bad topology");
        assert_eq!((r.line, r.column), (Some(3), Some(7)));
        assert_eq!(r.field.as_deref(), Some("vms[0].host"));
        // A proxy's HTML page is not the control API's JSON: its text is the message.
        let p = refusal(502, " <html>bad gateway</html>\n");
        assert_eq!(p.message, "<html>bad gateway</html>");
        assert_eq!(p.line, None);
    }
}
