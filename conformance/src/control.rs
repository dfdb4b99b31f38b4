//! The simulator's JSON control API (`/_replica/v1/`), as a client: fresh worlds, resets,
//! clock, faults. Real hosts have none of it; the runner asks [`probe`] whether a target does.

use std::time::Duration;

use anyhow::{Context as _, bail};
use replica_core::faults::FaultSpec;
use replica_core::topology::TopologySpec;
use serde_json::{Value, json};

/// Installs ring as rustls' process-wide provider (reqwest is built without one and panics
/// when it builds a client otherwise).
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A plain HTTP client for control calls.
pub fn http_client(accept_invalid_certs: bool) -> anyhow::Result<reqwest::Client> {
    ensure_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .tls_danger_accept_invalid_certs(accept_invalid_certs)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .context("building the control API client")
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

/// The control API of one world of a simulator.
#[derive(Clone, Debug)]
pub struct Control {
    http: reqwest::Client,
    /// A listener's base URL, `http://host:port`.
    base: String,
    /// The world, or `None` for the default one.
    world: Option<String>,
}

impl Control {
    pub fn new(http: reqwest::Client, base: impl Into<String>, world: Option<String>) -> Self {
        Control {
            http,
            base: base.into(),
            world,
        }
    }

    pub fn world(&self) -> Option<&str> {
        self.world.as_deref()
    }

    fn url(&self, path: &str) -> String {
        match &self.world {
            Some(w) => format!("{}/worlds/{w}/_replica/v1/{path}", self.base),
            None => format!("{}/_replica/v1/{path}", self.base),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        if !status.is_success() {
            bail!("{method} {url}: HTTP {status}: {}", text.trim());
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(reqwest::Method::POST, self.url(path), Some(body))
            .await
    }

    /// Replaces the world with a fresh one from `topology` (the server's default when `None`),
    /// with an optional behaviour profile and seed.
    pub async fn reset(
        &self,
        topology: Option<&TopologySpec>,
        profile: Option<&str>,
        seed: Option<u64>,
    ) -> anyhow::Result<()> {
        let mut body = serde_json::Map::new();
        if let Some(t) = topology {
            body.insert("topology".into(), serde_json::to_value(t)?);
        }
        if let Some(p) = profile {
            body.insert("profile".into(), json!(p));
        }
        if let Some(s) = seed {
            body.insert("seed".into(), json!(s));
        }
        self.post("reset", &Value::Object(body)).await.map(|_| ())
    }

    /// Stops time: only [`Control::advance`] moves it.
    pub async fn clock_manual(&self) -> anyhow::Result<()> {
        self.post("clock", &json!({"mode": "manual"}))
            .await
            .map(|_| ())
    }

    pub async fn advance(&self, ms: u64) -> anyhow::Result<()> {
        self.post("clock", &json!({"advance_ms": ms}))
            .await
            .map(|_| ())
    }

    pub async fn add_fault(&self, spec: &FaultSpec) -> anyhow::Result<()> {
        self.post("faults", &serde_json::to_value(spec)?)
            .await
            .map(|_| ())
    }

    /// Removes this world from the simulator (no-op for the default world).
    pub async fn delete_world(&self) -> anyhow::Result<()> {
        let Some(w) = &self.world else {
            return Ok(());
        };
        let url = format!("{}/_replica/v1/worlds/{w}", self.base);
        self.send(reqwest::Method::DELETE, url, None)
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
}
