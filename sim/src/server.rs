//! The HTTP side: one listener per simulated host, each serving `POST /wsman` (WS-Management,
//! Basic auth) and the JSON control API under `/_replica/v1/`. `Sim::start` runs it in-process
//! on port 0 for tests; the `serve` command runs it for everyone else.

use crate::control;
use crate::dispatch::{self, Access};
use crate::state::{ClockMode, DEFAULT_WORLD, Limits, Worlds, lock};
use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, post};
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use replica_core::topology::TopologySpec;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

/// The default world, embedded so the binary runs anywhere (DESIGN.md "Default topology").
pub const DEFAULT_TOPOLOGY: &str = include_str!("../../fixtures/topologies/default.toml");

pub fn default_topology() -> TopologySpec {
    // The embedded file is checked by the test suite, so this cannot fail in a released build;
    // fall back to an empty-VM world rather than panic if it ever did.
    toml::from_str(DEFAULT_TOPOLOGY).unwrap_or_else(|_| TopologySpec {
        profile: None,
        hosts: Vec::new(),
        vms: Vec::new(),
    })
}

#[derive(Debug, Clone)]
pub struct Credential {
    pub user: String,
    pub pass: String,
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

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub topology: TopologySpec,
    pub seed: u64,
    pub credentials: Vec<Credential>,
    pub clock: ClockMode,
    /// The first host's address; the next hosts take the following ports (port 0: any).
    pub listen: SocketAddr,
    /// When set, the control API needs `Authorization: Bearer <token>`.
    pub control_token: Option<String>,
    pub limits: Limits,
    /// Credentials that authenticate but have no rights on `root/virtualization/v2`: every
    /// WS-Management operation but Identify answers the `w:AccessDenied` fault.
    pub denied_credentials: Vec<Credential>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            topology: default_topology(),
            seed: 0,
            credentials: vec![Credential {
                user: "admin".into(),
                pass: "admin".into(),
                read_only: false,
            }],
            clock: ClockMode::Realtime { speed: 1.0 },
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            control_token: None,
            limits: Limits::default(),
            denied_credentials: Vec::new(),
        }
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
}

/// A running simulator. Drop or `shutdown` stops it.
pub struct SimHandle {
    pub app: Arc<App>,
    hosts: BTreeMap<String, SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT/wsman` of a host (empty if the host does not exist).
    pub fn url(&self, host: &str) -> String {
        self.hosts
            .get(host)
            .map(|a| format!("http://{a}/wsman"))
            .unwrap_or_default()
    }
    /// The base URL of a host's listener, e.g. for the control API.
    pub fn base(&self, host: &str) -> String {
        self.hosts
            .get(host)
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    }
    pub fn hosts(&self) -> BTreeMap<String, String> {
        self.hosts
            .keys()
            .map(|h| (h.clone(), self.url(h)))
            .collect()
    }
    pub fn addrs(&self) -> &BTreeMap<String, SocketAddr> {
        &self.hosts
    }
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub struct Sim;

/// Marks a response whose connection must be dropped instead (fault plan `drop_connection`).
#[derive(Clone, Copy)]
struct DropConnection;

impl Sim {
    /// Binds every host and starts serving. Port 0 in `listen` gives each host a free port.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        let worlds = Worlds::new(
            config.topology.clone(),
            config.seed,
            config.clock,
            config.limits.clone(),
        )
        .map_err(anyhow::Error::msg)
        .context("building the world from the topology")?;
        let host_names: Vec<String> = {
            let slot = worlds.get(DEFAULT_WORLD).map_err(anyhow::Error::msg)?;
            let s = lock(&slot);
            s.world.hosts.keys().cloned().collect()
        };
        let app = Arc::new(App {
            worlds,
            credentials: config.credentials.clone(),
            denied_credentials: config.denied_credentials.clone(),
            control_token: config.control_token.clone(),
            limits: config.limits.clone(),
            host_urls: std::sync::RwLock::new(BTreeMap::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut hosts = BTreeMap::new();
        let mut tasks = Vec::new();
        for (i, name) in host_names.iter().enumerate() {
            let mut addr = config.listen;
            if addr.port() != 0 {
                addr.set_port(
                    addr.port()
                        .checked_add(i as u16)
                        .context("port range overflow")?,
                );
            }
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr} for {name}"))?;
            let local = listener.local_addr()?;
            hosts.insert(name.clone(), local);
            let router = router(app.clone(), name.clone());
            tasks.push(tokio::spawn(accept_loop(listener, router, stop_rx.clone())));
        }
        if let Ok(mut urls) = app.host_urls.write() {
            *urls = hosts
                .iter()
                .map(|(h, a)| (h.clone(), format!("http://{a}/wsman")))
                .collect();
        }
        Ok(SimHandle {
            app,
            hosts,
            stop,
            tasks,
        })
    }
}

/// Accepts connections and serves each with hyper, so a handler can ask for the connection
/// to be dropped (returning an error from the service makes hyper close it unanswered).
async fn accept_loop(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let mut stop = stop.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let router = router.clone();
                        async move {
                            let resp = router.oneshot(req.map(Body::new)).await.unwrap_or_else(|e| match e {});
                            if resp.extensions().get::<DropConnection>().is_some() {
                                return Err(std::io::Error::other("fault plan: connection dropped"));
                            }
                            Ok::<_, std::io::Error>(resp)
                        }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .header_read_timeout(std::time::Duration::from_secs(30))
                        .timer(hyper_util::rt::TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

#[derive(Clone)]
pub struct HostCtx {
    pub app: Arc<App>,
    pub host: String,
}

fn router(app: Arc<App>, host: String) -> Router {
    let ctx = HostCtx { app, host };
    Router::new()
        .route("/wsman", post(wsman_default))
        .route("/worlds/{world}/wsman", post(wsman_world))
        .route("/_replica/v1/{*rest}", any(control::default_world))
        .route(
            "/worlds/{world}/_replica/v1/{*rest}",
            any(control::named_world),
        )
        .route("/_replica/ui", axum::routing::get(control::ui))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: the WS-Management endpoint is POST /wsman\n",
            )
        })
        // Bodies are capped before parsing; the envelope limit itself is answered as a fault.
        .layer(DefaultBodyLimit::max(4 * 1024 * 1024))
        .with_state(ctx)
}

/// Constant-time equality, so a wrong password takes as long to refuse as a right one.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xFF));
    }
    diff == 0
}

pub fn ct_eq_pub(a: &[u8], b: &[u8]) -> bool {
    ct_eq(a, b)
}

fn authenticate(app: &App, headers: &HeaderMap) -> Option<Access> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    let mut found = None;
    for c in &app.credentials {
        // Check every credential so timing does not reveal which user exists.
        let ok =
            ct_eq(c.user.as_bytes(), user.as_bytes()) & ct_eq(c.pass.as_bytes(), pass.as_bytes());
        if ok && found.is_none() {
            found = Some(if c.read_only {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            });
        }
    }
    for c in &app.denied_credentials {
        let ok =
            ct_eq(c.user.as_bytes(), user.as_bytes()) & ct_eq(c.pass.as_bytes(), pass.as_bytes());
        if ok && found.is_none() {
            found = Some(Access::Denied);
        }
    }
    found
}

pub fn world_of(headers: &HeaderMap) -> String {
    headers
        .get("x-replica-world")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_WORLD)
        .to_string()
}

async fn wsman_default(
    State(ctx): State<HostCtx>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response<Body> {
    let world = world_of(&headers);
    wsman(ctx, &world, headers, body).await
}

async fn wsman_world(
    State(ctx): State<HostCtx>,
    Path(world): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response<Body> {
    wsman(ctx, &world, headers, body).await
}

async fn wsman(
    ctx: HostCtx,
    world: &str,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response<Body> {
    // `Test-WSMan` without credentials: WinRM answers Identify alone unauthenticated.
    let unauthenticated_identify = headers
        .get("wsmanidentify")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("unauthenticated"));
    let access = authenticate(&ctx.app, &headers);
    let identify = match (&access, &body) {
        (None, Ok(bytes)) if unauthenticated_identify => dispatch::identify_unauthenticated(bytes),
        _ => None,
    };
    if let Some(reply) = identify {
        return soap_response(reply);
    }
    let Some(access) = access else {
        // The challenge advertises Basic only: the simulator speaks no Negotiate.
        let mut r = (StatusCode::UNAUTHORIZED, "").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"WSMAN\""),
        );
        return r;
    };
    let body = match body {
        Ok(b) => b,
        // Over the HTTP layer's cap: the envelope-size fault, not a bare 413.
        Err(_) => {
            let guid = match ctx.app.worlds.get(world) {
                Ok(slot) => lock(&slot).fresh_guid(),
                Err(_) => "00000000-0000-0000-0000-000000000000".into(),
            };
            return soap_response(dispatch::body_too_large(&ctx.host, &guid));
        }
    };
    let slot = match ctx.app.worlds.get(world) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let reply = {
        let mut s = lock(&slot);
        dispatch::handle(&mut s, &ctx.host, &body, access, &ctx.app.limits)
    };
    if reply.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(reply.delay_ms)).await;
    }
    soap_response(reply)
}

fn soap_response(reply: dispatch::Reply) -> Response<Body> {
    let mut resp = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/soap+xml;charset=UTF-8")
        .body(Body::from(reply.body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    if reply.drop_connection {
        resp.extensions_mut().insert(DropConnection);
    }
    resp
}
