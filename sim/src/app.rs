//! What every listener shares: the simulator's state and configuration (`App`), the host a
//! request is addressed to (`HostCtx`), and the user and scheme settings they are made from.
//! The HTTP listeners (`server`) and the control API (`control`) both read it, so neither
//! depends on the other for it.

use crate::dispatch::Access;
use crate::state::{DEFAULT_WORLD, Limits, Worlds};
use axum::http::HeaderMap;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A user the WS-Management endpoint accepts (Basic and NTLM).
#[derive(Debug, Clone)]
pub struct Credential {
    /// The user name (NTLM also accepts it as `DOMAIN\\user` or `user@domain`).
    pub user: String,
    /// The password.
    pub pass: String,
    /// Reads work; method calls answer 32769 Access Denied.
    pub read_only: bool,
}

impl Credential {
    /// Parses `USER:PASS`.
    pub fn parse(s: &str, read_only: bool) -> Result<Credential, String> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credential {
                user: u.into(),
                pass: p.into(),
                read_only,
            }),
            _ => Err(format!(
                "credentials `{s}` must be USER:PASS with a non-empty user"
            )),
        }
    }
}

/// Which authentication schemes the WS-Management endpoint offers (`serve --auth`), as an
/// administrator sets `winrm/config/service/auth` on Windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthSchemes {
    /// HTTP Basic (`WWW-Authenticate: Basic realm="WSMAN"`).
    pub basic: bool,
    /// Negotiate: NTLMv2, raw or inside SPNEGO, with message encryption over HTTP.
    pub negotiate: bool,
}

impl Default for AuthSchemes {
    fn default() -> Self {
        AuthSchemes {
            basic: true,
            negotiate: true,
        }
    }
}

/// The `--auth` form: `basic,negotiate`.
impl std::fmt::Display for AuthSchemes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [("basic", self.basic), ("negotiate", self.negotiate)]
            .into_iter()
            .filter_map(|(n, on)| on.then_some(n))
            .collect();
        f.write_str(&names.join(","))
    }
}

impl AuthSchemes {
    /// Parses a comma-separated list of `basic` and `negotiate` (at least one).
    pub fn parse(s: &str) -> Result<AuthSchemes, String> {
        let mut a = AuthSchemes {
            basic: false,
            negotiate: false,
        };
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "basic" => a.basic = true,
                "negotiate" => a.negotiate = true,
                other => {
                    return Err(format!(
                        "unknown auth scheme `{other}` (expected basic, negotiate)"
                    ));
                }
            }
        }
        if !a.basic && !a.negotiate {
            return Err("--auth needs at least one of basic, negotiate".into());
        }
        Ok(a)
    }
}

/// Shared by every listener.
pub struct App {
    pub worlds: Worlds,
    pub credentials: Vec<Credential>,
    pub denied_credentials: Vec<Credential>,
    pub control_token: Option<String>,
    pub limits: Limits,
    pub host_urls: std::sync::RwLock<BTreeMap<String, String>>,
    /// How `--state-file` saving goes (shown by `GET health`).
    pub save_status: crate::save_status::SaveStatus,
    /// `SimConfig::listen`: which `Host` names the control API answers to (`crate::guard`).
    pub listen: SocketAddr,
    pub auth: AuthSchemes,
    /// Every credential with its NT hash, for NTLM: `credentials` then `denied_credentials`,
    /// each with the access it grants (computed once at start).
    pub(crate) ntlm_candidates: Vec<replica_ntlm::Candidate>,
    pub(crate) ntlm_access: Vec<Access>,
    /// Whether the listeners speak HTTPS (message encryption is for plain HTTP only).
    pub(crate) https: bool,
    /// See [`SimConfig::as_real_host`].
    pub as_real_host: bool,
}

#[derive(Clone)]
pub struct HostCtx {
    pub app: Arc<App>,
    pub host: String,
}

/// The world a request is addressed to: the `X-Replica-World` header, else the default.
pub fn world_of(headers: &HeaderMap) -> String {
    world_name(headers).to_string()
}

/// [`world_of`], borrowed from the headers (the WS-Management hot path allocates no copy).
pub fn world_name(headers: &HeaderMap) -> &str {
    headers
        .get("x-replica-world")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_WORLD)
}
