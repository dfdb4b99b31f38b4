//! The HTTP side: one listener per simulated host, each serving `POST /wsman` (WS-Management,
//! Basic auth) and the JSON control API under `/_replica/v1/`. `Sim::start` runs it in-process
//! on port 0 for tests; the `serve` command runs it for everyone else.

use crate::control;
use crate::dispatch::{self, Access};
use crate::state::{ClockMode, DEFAULT_WORLD, Limits, Worlds, lock};
use crate::tls::{Tls, TlsSetup};
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
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
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
    /// HTTPS on every listener (`serve --tls`); `None`: plain HTTP.
    pub tls: Option<TlsSetup>,
    /// `serve --as-real-host`: answer only what a Windows host answers (no control API, no
    /// `/_replica` or `/worlds` paths, no world header), so a client's real-host path can be
    /// exercised end to end.
    pub as_real_host: bool,
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
            tls: None,
            as_real_host: false,
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
    /// See [`SimConfig::as_real_host`].
    pub as_real_host: bool,
}

/// A running simulator. Drop or `shutdown` stops it.
pub struct SimHandle {
    pub app: Arc<App>,
    hosts: BTreeMap<String, SocketAddr>,
    tls: Option<Tls>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT/wsman` of a host (`https://` with TLS; empty if the host does
    /// not exist).
    pub fn url(&self, host: &str) -> String {
        self.hosts
            .get(host)
            .map(|a| format!("{}://{a}/wsman", self.scheme()))
            .unwrap_or_default()
    }
    /// The base URL of a host's listener, e.g. for the control API.
    pub fn base(&self, host: &str) -> String {
        self.hosts
            .get(host)
            .map(|a| format!("{}://{a}", self.scheme()))
            .unwrap_or_default()
    }
    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
    /// The TLS identity (certificate and its fingerprint) when serving HTTPS.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
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
        let tls = match &config.tls {
            Some(setup) => Some(Tls::build(setup)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let app = Arc::new(App {
            worlds,
            credentials: config.credentials.clone(),
            denied_credentials: config.denied_credentials.clone(),
            control_token: config.control_token.clone(),
            limits: config.limits.clone(),
            host_urls: std::sync::RwLock::new(BTreeMap::new()),
            as_real_host: config.as_real_host,
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
            tasks.push(tokio::spawn(accept_loop(
                listener,
                router,
                stop_rx.clone(),
                config.limits.clone(),
                tls.as_ref().map(|t| t.acceptor.clone()),
            )));
        }
        if let Ok(mut urls) = app.host_urls.write() {
            *urls = hosts
                .iter()
                .map(|(h, a)| (h.clone(), format!("{scheme}://{a}/wsman")))
                .collect();
        }
        Ok(SimHandle {
            app,
            hosts,
            tls,
            stop,
            tasks,
        })
    }
}

/// Accepts connections and serves each with hyper, so a handler can ask for the connection
/// to be dropped (returning an error from the service makes hyper close it unanswered).
///
/// At most `limits.max_connections` connections are open at once; one over that is accepted
/// and closed at once, unanswered (the client sees the connection closed or reset), rather
/// than left waiting in the kernel's backlog: a flood fails fast and visibly.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut conns = tokio::task::JoinSet::new();
    let mut last_warning: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        last_warning = Some(Instant::now());
                        tracing::warn!(%peer, limit = limits.max_connections, "too many open connections: closing new ones unanswered");
                    }
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let stop = stop.clone();
                let limits = limits.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    let _permit = permit;
                    match tls {
                        None => serve_connection(stream, router, stop, &limits).await,
                        Some(acceptor) => {
                            // The handshake is bounded like a request header.
                            let handshake = tokio::time::timeout(
                                millis(limits.header_read_timeout_ms),
                                acceptor.accept(stream),
                            );
                            match handshake.await {
                                Ok(Ok(tls_stream)) => {
                                    serve_connection(tls_stream, router, stop, &limits).await;
                                }
                                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// A timeout limit as a `Duration`, at most a week (a larger one would overflow `Instant`).
fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms.min(crate::state::MAX_TIMEOUT_MS))
}

/// One connection, plain or TLS: HTTP/1.1 with the header limits of `limits`.
async fn serve_connection<I>(
    io: I,
    router: Router,
    mut stop: watch::Receiver<bool>,
    limits: &Limits,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let body_timeout = millis(limits.body_read_timeout_ms);
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let router = router.clone();
        async move {
            let timed_out = Arc::new(AtomicBool::new(false));
            let req = req.map(|b| Body::new(Deadline::new(b, body_timeout, timed_out.clone())));
            let mut resp = router.oneshot(req).await.unwrap_or_else(|e| match e {});
            if resp.extensions().get::<DropConnection>().is_some() {
                return Err(std::io::Error::other("fault plan: connection dropped"));
            }
            if timed_out.load(Ordering::Relaxed) {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, std::io::Error>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(millis(limits.header_read_timeout_ms))
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(400 * 1024))
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
    }
}

/// The error a request body gives when it did not arrive within `body_read_timeout_ms`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// A request body that fails with [`BodyTimeout`] once its deadline passes: a client that
/// sends a header and then stalls cannot hold a connection (and a slot) forever.
struct Deadline {
    inner: hyper::body::Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    fired: Arc<AtomicBool>,
}

impl Deadline {
    fn new(inner: hyper::body::Incoming, limit: Duration, fired: Arc<AtomicBool>) -> Deadline {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            fired,
        }
    }
}

impl hyper::body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.fired.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.inner)
    }
}

/// Whether an error (or one of its sources) is a [`BodyTimeout`].
fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyTimeout>() {
            return true;
        }
        cur = err.source();
    }
    false
}

#[derive(Clone)]
pub struct HostCtx {
    pub app: Arc<App>,
    pub host: String,
}

/// What HTTP.sys answers for a URL no service registered (a Windows host has only WinRM's
/// `/wsman` there): its fixed HTML page, `Server: Microsoft-HTTPAPI/2.0`.
const HTTP_SYS_NOT_FOUND: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>Not Found</TITLE>\r\n<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n<BODY><h2>Not Found</h2>\r\n<hr><p>HTTP Error 404. The requested resource is not found.</p>\r\n</BODY></HTML>\r\n";

async fn http_sys_not_found() -> Response<Body> {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/html; charset=us-ascii")
        .header(header::SERVER, "Microsoft-HTTPAPI/2.0")
        .body(Body::from(HTTP_SYS_NOT_FOUND))
        .unwrap_or_else(|_| StatusCode::NOT_FOUND.into_response())
}

/// `/wsman` on the default world only; the world header is ignored (WinRM does not know it).
async fn wsman_real_host(
    State(ctx): State<HostCtx>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response<Body> {
    wsman(ctx, DEFAULT_WORLD, headers, body).await
}

fn router(app: Arc<App>, host: String) -> Router {
    let max_body = app.limits.max_body_bytes;
    let real = app.as_real_host;
    let ctx = HostCtx { app, host };
    if real {
        return Router::new()
            .route("/wsman", post(wsman_real_host))
            .fallback(http_sys_not_found)
            .layer(DefaultBodyLimit::max(max_body))
            .with_state(ctx);
    }
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
        .layer(DefaultBodyLimit::max(max_body))
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
        Err(e) if is_body_timeout(&e) => {
            let mut r = (
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time\n",
            )
                .into_response();
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
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
