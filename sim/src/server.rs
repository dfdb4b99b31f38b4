//! The HTTP side: one listener per simulated host, each serving `POST /wsman` (WS-Management,
//! Basic and Negotiate auth, WinRM message encryption) and the JSON control API under
//! `/_replica/v1/`. `Sim::start` runs it in-process on port 0 for tests; the `serve` command
//! runs it for everyone else. The NTLM messages and crypto live in `replica-ntlm`; this file
//! only keeps each connection's security context and maps credentials to access.

use crate::api::ControlError;
use crate::app::world_name;
pub use crate::app::{App, AuthSchemes, Credential, HostCtx};
use crate::control;
use crate::dispatch::{self, Access};
use crate::state::{ClockMode, DEFAULT_WORLD, Limits, Worlds, lock};
use crate::tls::{Tls, TlsSetup};
use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use replica_core::faults::FaultSpec;
use replica_core::topology::TopologySpec;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

/// WinRM's HTTPS port: the simulator never serves plain HTTP on it.
pub const WINRM_HTTPS_PORT: u16 = 5986;

/// The default world, embedded so the binary runs anywhere (docs/facts.md#default-topology).
pub const DEFAULT_TOPOLOGY: &str = include_str!("../../fixtures/topologies/default.toml");

/// The default world's topology (`DEFAULT_TOPOLOGY`, parsed).
pub fn default_topology() -> TopologySpec {
    // The embedded file is checked by the test suite, so this cannot fail in a released build;
    // fall back to an empty-VM world rather than panic if it ever did.
    toml::from_str(DEFAULT_TOPOLOGY).unwrap_or_else(|_| TopologySpec {
        profile: None,
        hosts: Vec::new(),
        vms: Vec::new(),
    })
}

/// How to start a simulator: [`Sim::builder`] gives the defaults (the default topology, seed
/// 0, `admin:admin`, a real-time clock, every host on a free loopback port), and each method
/// changes one thing.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The hosts and VMs of the default world.
    pub topology: TopologySpec,
    /// The seed of every random choice.
    pub seed: u64,
    /// Users the WS-Management endpoint accepts.
    pub credentials: Vec<Credential>,
    /// How virtual time moves.
    pub clock: ClockMode,
    /// The first host's address; the next hosts take the following ports (port 0: any).
    pub listen: SocketAddr,
    /// When set, the control API needs `Authorization: Bearer <token>`.
    pub control_token: Option<String>,
    /// The server's limits.
    pub limits: Limits,
    /// Credentials that authenticate but have no rights on `root/virtualization/v2`: every
    /// WS-Management operation but Identify answers the `w:AccessDenied` fault.
    pub denied_credentials: Vec<Credential>,
    /// HTTPS on every listener (`serve --tls`); `None`: plain HTTP.
    pub tls: Option<TlsSetup>,
    /// The schemes the 401 challenge offers and the endpoint accepts.
    pub auth: AuthSchemes,
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
            auth: AuthSchemes::default(),
            as_real_host: false,
        }
    }
}

/// A running simulator. Drop or `shutdown` stops it.
pub struct SimHandle {
    pub(crate) app: Arc<App>,
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
    /// Every host with its WS-Management URL.
    pub fn hosts(&self) -> BTreeMap<String, String> {
        self.hosts
            .keys()
            .map(|h| (h.clone(), self.url(h)))
            .collect()
    }
    /// Every host with its listening address.
    pub fn addrs(&self) -> &BTreeMap<String, SocketAddr> {
        &self.hosts
    }

    /// A world by name, for typed control calls (created by its first use, as over HTTP).
    pub fn world(&self, name: &str) -> crate::api::WorldRef<'_> {
        crate::api::WorldRef {
            app: &self.app,
            name: name.to_string(),
        }
    }

    /// Replaces the default world with a fresh one (see [`crate::api::WorldRef::reset`]).
    pub fn reset(&self, reset: crate::api::Reset) -> Result<crate::api::ResetDone, ControlError> {
        self.world(DEFAULT_WORLD).reset(reset)
    }

    /// Adds a fault rule to the default world.
    pub fn add_fault(&self, fault: FaultSpec) -> Result<crate::api::FaultAdded, ControlError> {
        self.world(DEFAULT_WORLD).add_fault(fault)
    }

    /// Moves the default world's virtual time forward.
    pub fn advance(&self, by: Duration) -> Result<crate::api::ClockState, ControlError> {
        self.world(DEFAULT_WORLD).advance(by)
    }

    /// The default world's journal, oldest first.
    pub fn journal(&self) -> Result<Vec<crate::api::JournalEntry>, ControlError> {
        self.world(DEFAULT_WORLD).journal()
    }

    /// The default world's state.
    pub fn state(&self) -> Result<crate::api::WorldState, ControlError> {
        self.world(DEFAULT_WORLD).state()
    }

    /// The names of the worlds that exist now (`GET worlds`).
    pub fn worlds(&self) -> Vec<String> {
        self.app.worlds.names()
    }

    /// What the memory budget holds now.
    pub fn memory(&self) -> crate::api::MemoryUse {
        crate::api::MemoryUse {
            used_bytes: self.app.worlds.budget.used(),
            max_bytes: self.app.worlds.budget.max(),
        }
    }

    /// Stops every listener and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts simulators: `Sim::start().await` with the defaults, or
/// `Sim::builder().clock(ClockMode::Manual).seed(7).start().await`.
pub struct Sim;

/// Marks a response whose connection must be dropped instead (fault plan `drop_connection`).
#[derive(Clone, Copy)]
struct DropConnection;

impl SimConfig {
    /// The default world's topology.
    pub fn topology(mut self, topology: TopologySpec) -> SimConfig {
        self.topology = topology;
        self
    }
    /// The seed of every random choice.
    pub fn seed(mut self, seed: u64) -> SimConfig {
        self.seed = seed;
        self
    }
    /// How virtual time moves; [`ClockMode::Manual`] lets a test end jobs when it says.
    pub fn clock(mut self, clock: ClockMode) -> SimConfig {
        self.clock = clock;
        self
    }
    /// Accept this user too (`read_only`: method calls answer 32769).
    pub fn credential(mut self, user: &str, pass: &str, read_only: bool) -> SimConfig {
        self.credentials.push(Credential {
            user: user.into(),
            pass: pass.into(),
            read_only,
        });
        self
    }
    /// The first host's address (port 0: every host on a free port).
    pub fn listen(mut self, addr: SocketAddr) -> SimConfig {
        self.listen = addr;
        self
    }
    /// Require this token on the control API.
    pub fn control_token(mut self, token: &str) -> SimConfig {
        self.control_token = Some(token.into());
        self
    }
    /// The server's limits.
    pub fn limits(mut self, limits: Limits) -> SimConfig {
        self.limits = limits;
        self
    }
    /// Serve HTTPS.
    pub fn tls(mut self, tls: TlsSetup) -> SimConfig {
        self.tls = Some(tls);
        self
    }
    /// The authentication schemes offered.
    pub fn auth(mut self, auth: AuthSchemes) -> SimConfig {
        self.auth = auth;
        self
    }
    /// Answer only what a Windows host answers (no control API).
    pub fn as_real_host(mut self, yes: bool) -> SimConfig {
        self.as_real_host = yes;
        self
    }
    /// Binds every host and starts serving.
    pub async fn start(self) -> anyhow::Result<SimHandle> {
        Sim::start_with(self).await
    }
}

impl Sim {
    /// Starts a simulator with the defaults ([`Sim::builder`] for anything else).
    pub async fn start() -> anyhow::Result<SimHandle> {
        Sim::start_with(SimConfig::default()).await
    }

    /// The defaults, to change before [`SimConfig::start`].
    pub fn builder() -> SimConfig {
        SimConfig::default()
    }

    /// Binds every host and starts serving. Port 0 in `listen` gives each host a free port.
    pub async fn start_with(config: SimConfig) -> anyhow::Result<SimHandle> {
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
            s.world.hosts().keys().cloned().collect()
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
            save_status: crate::save_status::SaveStatus::default(),
            listen: config.listen,
            auth: config.auth,
            ntlm_candidates: config
                .credentials
                .iter()
                .chain(&config.denied_credentials)
                .map(|c| replica_ntlm::Candidate::new(&c.user, &c.pass))
                .collect(),
            ntlm_access: config
                .credentials
                .iter()
                .map(|c| {
                    if c.read_only {
                        Access::ReadOnly
                    } else {
                        Access::ReadWrite
                    }
                })
                .chain(config.denied_credentials.iter().map(|_| Access::Denied))
                .collect(),
            https: tls.is_some(),
            as_real_host: config.as_real_host,
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut hosts = BTreeMap::new();
        let mut tasks = vec![tokio::spawn(sweep_contexts(app.clone(), stop_rx.clone()))];
        let ports = host_ports(config.listen.port(), host_names.len(), tls.is_some())?;
        for (name, port) in host_names.iter().zip(ports) {
            let mut addr = config.listen;
            addr.set_port(port);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr} for {name}"))?;
            let local = listener.local_addr()?;
            hosts.insert(name.clone(), crate::guard::reachable(local));
            let endpoints = Endpoints {
                router: router(app.clone(), name.clone()),
                ctx: HostCtx {
                    app: app.clone(),
                    host: name.clone(),
                },
            };
            tasks.push(tokio::spawn(accept_loop(
                listener,
                endpoints,
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

/// Frees expired enumeration contexts in every world, a quarter TTL apart (at most 5 s): an
/// idle world would otherwise keep them until its next Enumerate.
async fn sweep_contexts(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let every = millis(app.limits.enum_context_ttl_ms / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                let app = app.clone();
                // Off the async workers: a world with many contexts takes a while to walk.
                let _ = tokio::task::spawn_blocking(move || app.worlds.sweep_contexts()).await;
            }
        }
    }
}

/// The port of each host: the first at `first`, the next ones on the following ports, except
/// that plain HTTP never takes 5986 (WinRM's HTTPS port: a client defaulting to HTTPS there,
/// like pypsrp, must not reach another host in clear text). Port 0: every host on a free port.
pub fn host_ports(first: u16, hosts: usize, tls: bool) -> anyhow::Result<Vec<u16>> {
    if first == 0 {
        return Ok(vec![0; hosts]);
    }
    if !tls && first == WINRM_HTTPS_PORT {
        anyhow::bail!(
            "port {WINRM_HTTPS_PORT} is WinRM's HTTPS port: serve plain HTTP on another one, or add --tls"
        );
    }
    let mut ports = Vec::with_capacity(hosts);
    let mut next = u32::from(first);
    for _ in 0..hosts {
        if !tls && next == u32::from(WINRM_HTTPS_PORT) {
            next += 1;
        }
        ports.push(u16::try_from(next).context("port range overflow")?);
        next += 1;
    }
    Ok(ports)
}

/// Accepts connections and serves each with hyper, so a handler can ask for the connection
/// to be dropped (returning an error from the service makes hyper close it unanswered).
///
/// At most `limits.max_connections` connections are open at once; one over that is accepted
/// and closed at once, unanswered (the client sees the connection closed or reset), rather
/// than left waiting in the kernel's backlog: a flood fails fast and visibly.
async fn accept_loop(
    listener: TcpListener,
    router: Endpoints,
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
    router: Endpoints,
    mut stop: watch::Receiver<bool>,
    limits: &Limits,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (io, framing) = crate::framing::Watched::new(io, limits.max_body_bytes);
    let conn = Arc::new(Conn {
        endpoints: router,
        auth: ConnAuth::default(),
        framing,
        requests: AtomicU64::new(0),
        body_timed_out: AtomicU64::new(0),
        body_timeout: millis(limits.body_read_timeout_ms),
    });
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let conn = conn.clone();
        // Numbered here, when hyper hands the request over: in arrival order.
        let request = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            let req = req.map(|b| Deadline::new(b, conn.clone(), request));
            let mut resp = conn.endpoints.call(&conn.auth, req).await;
            if resp.extensions().get::<DropConnection>().is_some() {
                return Err(std::io::Error::other("fault plan: connection dropped"));
            }
            if conn.body_timed_out.load(Ordering::Relaxed) == request {
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

/// The error a chunked request body gives as soon as its declared chunk sizes pass
/// `max_body_bytes` (seen by [`crate::framing`]), before the chunks themselves arrive.
#[derive(Debug, thiserror::Error)]
#[error("the request body declares chunks over the body cap")]
pub struct ChunksOverCap;

/// What the requests of one connection share, made once per connection (a request takes one
/// reference to it, where it used to clone each part and allocate its own flags).
struct Conn {
    endpoints: Endpoints,
    /// The Negotiate security context lives as long as the TCP connection, as WinRM keeps it:
    /// CHALLENGE and AUTHENTICATE travel on one keep-alive connection and later requests on
    /// it are authenticated (and sealed) by that context.
    auth: ConnAuth,
    framing: Arc<crate::framing::Watch>,
    /// Requests handed over so far; requests are numbered as the framing watcher numbers
    /// them, in arrival order (1-based).
    requests: AtomicU64,
    /// The number of the request whose body timed out (0: none): its answer closes the
    /// connection.
    body_timed_out: AtomicU64,
    body_timeout: Duration,
}

/// A request body that fails with [`BodyTimeout`] once its deadline passes: a client that
/// sends a header and then stalls cannot hold a connection (and a slot) forever. It fails with
/// [`ChunksOverCap`] at once when its chunked framing declares more than the cap.
struct Deadline {
    inner: hyper::body::Incoming,
    /// Armed by the first poll that has to wait for the client, and never re-armed: the
    /// client gets `body_read_timeout_ms` from the moment the server first waits on it, for
    /// the whole rest of the body. Before that moment every poll found its bytes already
    /// read, so no client time went by uncounted; and a body that is in the buffer when it is
    /// read (nearly every one) costs no clock read, allocation or timer registration.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    conn: Arc<Conn>,
    /// Which request of the connection this body belongs to (1-based).
    request: u64,
}

impl Deadline {
    fn new(inner: hyper::body::Incoming, conn: Arc<Conn>, request: u64) -> Deadline {
        Deadline {
            inner,
            sleep: None,
            conn,
            request,
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
        let framing = &this.conn.framing;
        // Registered before the check, so a mark between the two still wakes this reader.
        framing.register(cx.waker());
        if framing.is_oversized(this.request) {
            return Poll::Ready(Some(Err(Box::new(ChunksOverCap))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let limit = this.conn.body_timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.conn
                        .body_timed_out
                        .store(this.request, Ordering::Relaxed);
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

/// `POST /wsman`, from the router or straight from [`Endpoints::call`]: the world the
/// `X-Replica-World` header names (the default one without it). A real host's listener serves
/// the default world only and ignores the header (WinRM does not know it).
async fn wsman_root(State(ctx): State<HostCtx>, req: Request<Body>) -> Response<Body> {
    let conn = conn_auth(req.extensions());
    wsman_at_root(&ctx, &conn, req).await
}

/// [`wsman_root`] with the connection's authentication state at hand.
async fn wsman_at_root<B: RequestBody>(
    ctx: &HostCtx,
    conn: &ConnAuth,
    req: Request<B>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let world = if ctx.app.as_real_host {
        DEFAULT_WORLD
    } else {
        world_name(&parts.headers)
    };
    wsman(ctx, world, conn, &parts.headers, body).await
}

/// The connection's authentication state, put in the request's extensions for the router's
/// handlers by [`Endpoints::call`]. The handlers take the whole request rather than axum's
/// `HeaderMap` extractor, which would clone every header of every request.
fn conn_auth(extensions: &axum::http::Extensions) -> ConnAuth {
    extensions.get::<ConnAuth>().cloned().unwrap_or_default()
}

/// What a listener serves: `POST /wsman`, every client's hot path, straight to its handler,
/// and everything else through the axum router.
#[derive(Clone)]
struct Endpoints {
    router: Router,
    ctx: HostCtx,
}

impl Endpoints {
    /// Serves one request of a connection whose authentication state is `auth`.
    async fn call(&self, auth: &ConnAuth, req: Request<Deadline>) -> Response<Body> {
        // The router's layers around the same handler (the guard middleware, matched-path
        // and nesting bookkeeping, a boxed route cloned per request) were ~10% of a Get's
        // instructions (BENCHMARKS.md). The guard's check still runs; with debug logging on,
        // every request takes the router so that the guard writes its log line.
        let direct = req.method() == axum::http::Method::POST
            && req.uri().path() == "/wsman"
            && !tracing::enabled!(tracing::Level::DEBUG);
        if !direct {
            // The router's handlers find the connection's state among the extensions; the
            // direct path below is handed it (an extension map is an allocation per request),
            // and reads the body without axum's boxing of it.
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(auth.clone());
            return self
                .router
                .clone()
                .oneshot(req)
                .await
                .unwrap_or_else(|e| match e {});
        }
        // The real-host router has no guard: a real host has no control API to protect.
        if !self.ctx.app.as_real_host
            && let Some(refused) =
                crate::guard::refusal(&self.ctx, req.method(), req.uri().path(), req.headers())
        {
            return refused;
        }
        wsman_at_root(&self.ctx, auth, req).await
    }
}

fn router(app: Arc<App>, host: String) -> Router {
    let max_body = app.limits.max_body_bytes;
    let real = app.as_real_host;
    let ctx = HostCtx { app, host };
    if real {
        return Router::new()
            .route("/wsman", post(wsman_root))
            .fallback(http_sys_not_found)
            .layer(DefaultBodyLimit::max(max_body))
            .with_state(ctx);
    }
    Router::new()
        .route("/wsman", post(wsman_root))
        .route("/worlds/{world}/wsman", post(wsman_world))
        .nest("/_replica/v1", control::router(ctx.clone()))
        .nest("/worlds/{world}/_replica/v1", control::router(ctx.clone()))
        .route("/_replica/ui", axum::routing::get(control::ui))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: the WS-Management endpoint is POST /wsman\n",
            )
        })
        // Bodies are capped before parsing; the envelope limit itself is answered as a fault.
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            crate::guard::guard,
        ))
        .with_state(ctx)
}

/// Whether `a` and `b` are equal, looking at every byte whatever the first difference (the
/// lengths are not secret). `subtle`'s slice compare costs ten times as much per byte, and
/// this one only ever meets a value the same connection already sent.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The longest `Authorization: Basic` value a connection remembers (a header may be up to
/// `max_header_bytes`; real ones are a few dozen bytes).
const MAX_REMEMBERED_BASIC: usize = 1024;

/// The access a `Basic` Authorization header value grants, if any.
fn authenticate(app: &App, value: &str) -> Option<Access> {
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
        // Check every credential, in constant time, so timing reveals neither which user
        // exists nor how much of a password was right.
        let ok: bool = (c.user.as_bytes().ct_eq(user.as_bytes())
            & c.pass.as_bytes().ct_eq(pass.as_bytes()))
        .into();
        if ok && found.is_none() {
            found = Some(if c.read_only {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            });
        }
    }
    for c in &app.denied_credentials {
        let ok: bool = (c.user.as_bytes().ct_eq(user.as_bytes())
            & c.pass.as_bytes().ct_eq(pass.as_bytes()))
        .into();
        if ok && found.is_none() {
            found = Some(Access::Denied);
        }
    }
    found
}

async fn wsman_world(
    State(ctx): State<HostCtx>,
    Path(world): Path<String>,
    req: Request<Body>,
) -> Response<Body> {
    let conn = conn_auth(req.extensions());
    let (parts, body) = req.into_parts();
    wsman(&ctx, &world, &conn, &parts.headers, body).await
}

/// A 401 that offers every enabled scheme, one `WWW-Authenticate` header each (as WinRM
/// sends them: Negotiate first, then `Basic realm="WSMAN"`), with an empty body.
fn challenge_401(app: &App) -> Response<Body> {
    let mut r = (StatusCode::UNAUTHORIZED, "").into_response();
    if app.auth.negotiate {
        r.headers_mut().append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Negotiate"),
        );
    }
    if app.auth.basic {
        r.headers_mut().append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"WSMAN\""),
        );
    }
    r
}

/// A 401 carrying the next Negotiate token of an unfinished handshake.
fn token_401(scheme: &str, token: &[u8]) -> Response<Body> {
    let mut r = (StatusCode::UNAUTHORIZED, "").into_response();
    let value = format!(
        "{scheme} {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// How a request was authenticated.
enum Authn {
    /// No usable credentials: answer the challenge (or the unauthenticated Identify).
    None,
    /// A response is already decided (a Negotiate round trip, a refusal).
    Respond(Response<Body>),
    /// Basic, or a request with no Authorization header on a connection whose Negotiate
    /// context is established.
    Basic(Access),
    /// The connection's Negotiate context: the body may be sealed; `final_token` goes back in
    /// `WWW-Authenticate` on the request that completed the handshake.
    Negotiate {
        access: Access,
        final_token: Option<String>,
    },
}

/// Runs the Authorization header (or the connection's context) through the enabled schemes.
fn authenticate_request(ctx: &HostCtx, conn: &ConnAuth, headers: &HeaderMap) -> Authn {
    let app = &ctx.app;
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        // No header: the connection's context, if it has one.
        return match conn.lock().established.as_ref() {
            Some(e) => Authn::Negotiate {
                access: e.access,
                final_token: None,
            },
            None => Authn::None,
        };
    };
    let (scheme, param) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        if !app.auth.basic {
            return Authn::None;
        }
        // A client repeats the same header on every request of its connection: its
        // credentials are checked once per connection, and a request carrying the very same
        // header gets the same answer (the users are fixed while the simulator runs). The
        // comparison does not stop at the first difference, like the check itself.
        let mut state = conn.lock();
        if let Some((seen, access)) = &state.basic
            && same_bytes(seen, value.as_bytes())
        {
            return Authn::Basic(*access);
        }
        let found = authenticate(app, value);
        if let Some(access) = found
            && value.len() <= MAX_REMEMBERED_BASIC
        {
            state.basic = Some((value.as_bytes().into(), access));
        }
        return found.map_or(Authn::None, Authn::Basic);
    }
    // WinRM offers Negotiate only; clients that fall back to raw NTLM (requests-ntlm, pyspnego
    // without Kerberos) still send it under the Negotiate scheme.
    if !scheme.eq_ignore_ascii_case("negotiate") || !app.auth.negotiate {
        return Authn::None;
    }
    let Ok(token) = base64::engine::general_purpose::STANDARD.decode(param.trim()) else {
        return Authn::None;
    };
    let mut state = conn.lock();
    // A new handshake replaces whatever the connection had.
    state.established = None;
    // A continuation goes to the pending handshake; a NEGOTIATE (raw or NegTokenInit) starts
    // over, as a client retrying after a failure does.
    let mut acceptor = match state.pending.take() {
        Some(a) if is_continuation(&token) => a,
        _ => new_acceptor(&ctx.host),
    };
    match acceptor.step(&token, &app.ntlm_candidates) {
        Ok(replica_ntlm::Step::Continue(out)) => {
            state.pending = Some(acceptor);
            Authn::Respond(token_401("Negotiate", &out))
        }
        Ok(replica_ntlm::Step::Done {
            session,
            candidate,
            user,
            token: final_token,
            ..
        }) => {
            let access = app
                .ntlm_access
                .get(candidate)
                .copied()
                .unwrap_or(Access::Denied);
            // SPNEGO tokens are DER (0x60 / 0xa1); raw NTLM starts with "NTLMSSP".
            let spnego = !token.starts_with(b"NTLMSSP");
            tracing::debug!(%user, ?access, spnego, "Negotiate (NTLM) authenticated");
            state.established = Some(Established {
                session: *session,
                access,
                sealed_seen: false,
            });
            Authn::Negotiate {
                access,
                final_token: final_token.map(|t| {
                    format!(
                        "Negotiate {}",
                        base64::engine::general_purpose::STANDARD.encode(t)
                    )
                }),
            }
        }
        Err(e) => {
            // Wrong user, wrong password, bad MIC, malformed token: one answer for all, as
            // Windows gives (a 401 with a fresh challenge and no detail).
            tracing::debug!("Negotiate refused: {e}");
            Authn::Respond(challenge_401(app))
        }
    }
}

/// Whether a token continues a SPNEGO exchange (a NegTokenResp) rather than starting one.
fn is_continuation(token: &[u8]) -> bool {
    token.first() == Some(&0xa1)
        || replica_ntlm::messages::message_type(token).is_ok_and(|t| t == 3)
}

fn new_acceptor(host: &str) -> replica_ntlm::Acceptor {
    use rand::Rng as _;
    // The server challenge must be unpredictable, as on Windows: from the OS-seeded thread
    // RNG, not the world's seed (a repeatable challenge would make responses replayable).
    let mut challenge = [0u8; 8];
    rand::rng().fill_bytes(&mut challenge);
    // FILETIME: 100 ns ticks since 1601-01-01; informational (clients copy it into their
    // blob and add a MIC when it is present).
    const EPOCH_DIFF_SECS: u64 = 11_644_473_600;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let filetime =
        (now.as_secs() + EPOCH_DIFF_SECS) * 10_000_000 + u64::from(now.subsec_nanos() / 100);
    replica_ntlm::Acceptor::new(host, challenge, filetime)
}

/// One connection's Negotiate state, shared by its requests (handed to handlers as a request
/// extension). hyper serves a connection's requests one at a time, so the lock is never
/// contended; it is never held across an `.await`.
#[derive(Clone, Default)]
pub struct ConnAuth(Arc<std::sync::Mutex<ConnAuthState>>);

#[derive(Default)]
pub struct ConnAuthState {
    pending: Option<replica_ntlm::Acceptor>,
    established: Option<Established>,
    /// The last `Authorization: Basic` value that authenticated on this connection, and the
    /// access it gave.
    basic: Option<(Box<[u8]>, Access)>,
}

struct Established {
    session: replica_ntlm::Session,
    access: Access,
    /// Set by the first sealed request: from then on a plain body is refused.
    sealed_seen: bool,
}

impl ConnAuth {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnAuthState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a request body could not be read.
enum BodyError {
    /// It did not arrive within `body_read_timeout_ms`.
    Timeout,
    /// Its declared `Content-Length` or chunk sizes, or the bytes that came, are over
    /// `max_body_bytes`.
    TooLarge,
    /// The HTTP framing is broken (bad chunk sizes, a connection cut mid-body).
    Malformed,
}

/// A request body as the WS-Management handler reads it: axum's boxed [`Body`] from the
/// router, or the connection's own [`Deadline`] on the direct path.
trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<axum::BoxError>> + Unpin + Send + 'static
{
}

impl<B> RequestBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<axum::BoxError>> + Unpin + Send + 'static
{
}

/// Reads a request body of at most `max` bytes. A `Content-Length` over `max` is refused
/// before a byte of the body is read: waiting for 10^18 bytes would only end in a timeout.
async fn read_body<B: RequestBody>(
    headers: &HeaderMap,
    body: B,
    max: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    // Gathered here rather than by `axum::body::to_bytes`, whose buffer list and length-limit
    // layer cost an allocation and a wrapper per request: a body that comes in one frame (a
    // small request already in the buffer) is handed on as it is, and only a body in several
    // frames is copied into one buffer.
    let mut body = body;
    let mut whole: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    let mut total = 0usize;
    while let Some(frame) =
        std::future::poll_fn(|cx| hyper::body::Body::poll_frame(Pin::new(&mut body), cx)).await
    {
        let frame = frame.map_err(|e| body_error(&*e.into()))?;
        // Trailers carry no body bytes.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > max {
            return Err(BodyError::TooLarge);
        }
        match (&mut joined, &whole) {
            (Some(buf), _) => buf.extend_from_slice(&data),
            (None, None) => whole = Some(data),
            (None, Some(first)) => {
                let mut buf = Vec::with_capacity(first.len() + data.len());
                buf.extend_from_slice(first);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
        }
        // A body of known length that has all its bytes is over: the poll that would only
        // say so is spared.
        if hyper::body::Body::is_end_stream(&body) {
            break;
        }
    }
    Ok(match joined {
        Some(buf) => Bytes::from(buf),
        None => whole.unwrap_or_default(),
    })
}

/// What a body's read error means: the errors [`Deadline`] raises are found in the chain;
/// anything else is broken framing.
fn body_error(e: &(dyn std::error::Error + 'static)) -> BodyError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<ChunksOverCap>() {
            return BodyError::TooLarge;
        }
        if err.is::<BodyTimeout>() {
            return BodyError::Timeout;
        }
        cur = err.source();
    }
    BodyError::Malformed
}

/// The answer to a body that could not be read. The connection is closed after it: the rest
/// of the body is still on the wire, so the next request could not be found in it.
fn body_error_response(ctx: &HostCtx, world: &str, e: BodyError) -> Response<Body> {
    let mut r = match e {
        BodyError::Timeout => (
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time\n",
        )
            .into_response(),
        // Over the HTTP layer's cap: the envelope-size fault, not a bare 413.
        BodyError::TooLarge => {
            let guid = match ctx.app.worlds.get(world) {
                Ok(slot) => lock(&slot).fresh_guid(),
                Err(_) => "00000000-0000-0000-0000-000000000000".into(),
            };
            soap_response(dispatch::body_too_large(&ctx.host, &guid))
        }
        // Broken framing is an HTTP error (HTTP.sys answers 400 Bad Request), not a SOAP one.
        BodyError::Malformed => (
            StatusCode::BAD_REQUEST,
            "bad request: the HTTP body framing is invalid\n",
        )
            .into_response(),
    };
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Bodies over this are parsed on the blocking pool (a 4 MiB body takes ~100 ms to parse).
const HEAVY_BODY_BYTES: usize = 64 * 1024;

async fn wsman<B: RequestBody>(
    ctx: &HostCtx,
    world: &str,
    conn: &ConnAuth,
    headers: &HeaderMap,
    body: B,
) -> Response<Body> {
    let max = ctx.app.limits.max_body_bytes;
    let (access, negotiate) = match authenticate_request(ctx, conn, headers) {
        Authn::Respond(r) => {
            // A Negotiate leg: the handshake goes on on this connection, so the (small) body
            // is read first, keeping the connection usable.
            let _ = read_body(headers, body, max).await;
            return r;
        }
        Authn::Basic(a) => (a, None),
        Authn::Negotiate {
            access,
            final_token,
        } => (access, Some(final_token)),
        Authn::None => {
            // Without credentials the answer is 401 before any of the body is read (a
            // stranger must not make the server buffer megabytes), except for the
            // unauthenticated Identify `Test-WSMan` sends.
            // `Test-WSMan` without credentials: WinRM answers Identify alone unauthenticated.
            let unauthenticated_identify = headers
                .get("wsmanidentify")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("unauthenticated"));
            if unauthenticated_identify
                && let Ok(bytes) = read_body(headers, body, max).await
                && let Some(reply) = dispatch::identify_unauthenticated(&bytes)
            {
                return soap_response(reply);
            }
            return challenge_401(&ctx.app);
        }
    };
    let body = match read_body(headers, body, max).await {
        Ok(b) => b,
        Err(e) => return body_error_response(ctx, world, e),
    };
    let mut sealed = false;
    let mut final_token = None;
    let on_negotiate = negotiate.is_some();
    // A header that is not visible ASCII counts as absent: it names no media type.
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let body = match negotiate {
        None => body,
        Some(token) => {
            final_token = token;
            match open_body(&ctx.app, conn, content_type.unwrap_or(""), body) {
                Ok((b, s)) => {
                    sealed = s;
                    b
                }
                Err(r) => return *r,
            }
        }
    };
    // The empty POST clients send to set up the context before encrypting (pypsrp, pywinrm):
    // 200 with no body, carrying SPNEGO's final token. (Basic keeps answering an empty body
    // with the fault it always did.)
    if on_negotiate && body.is_empty() && !sealed {
        let mut r = (StatusCode::OK, "").into_response();
        add_final_token(&mut r, final_token);
        return r;
    }
    // A plain envelope must say it is SOAP 1.2 (sealed ones were checked by `open_body`).
    if !sealed && !body.is_empty() && !soap_media_type_accepted(content_type) {
        let mut r = unsupported_media_type();
        add_final_token(&mut r, final_token);
        return r;
    }
    let slot = match ctx.app.worlds.get(world) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    // Parsed before the world's lock is taken. Big bodies, and every request to a big world
    // (an enumeration of thousands of VMs), go to the blocking pool: on an async worker they
    // would stall the requests of every other world and listener. The world's lock is taken
    // once for a small request: parse, then lock, and only a large world lets it go again
    // for the pool, which parses the (small) body again (a second acquisition of the lock
    // per request was a contended futex under load).
    let mut small = None;
    if body.len() <= HEAVY_BODY_BYTES {
        let parsed = dispatch::parse(&body);
        let mut s = lock(&slot);
        if !s.is_large() {
            let reply = dispatch::handle_parsed(&mut s, &ctx.host, parsed, access, &ctx.app.limits);
            small = Some(reply);
        }
    }
    let reply = if let Some(reply) = small {
        reply
    } else {
        let (app, host) = (ctx.app.clone(), ctx.host.clone());
        let done = tokio::task::spawn_blocking(move || {
            let parsed = dispatch::parse(&body);
            let mut s = lock(&slot);
            dispatch::handle_parsed(&mut s, &host, parsed, access, &app.limits)
        })
        .await;
        match done {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!("request handler failed: {e}");
                return (StatusCode::INTERNAL_SERVER_ERROR, "").into_response();
            }
        }
    };
    if reply.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(reply.delay_ms)).await;
    }
    let mut resp = if sealed {
        sealed_response(conn, reply)
    } else {
        soap_response(reply)
    };
    add_final_token(&mut resp, final_token);
    resp
}

/// Whether a request's `Content-Type` is one WinRM takes for a plain envelope.
///
/// SOAP 1.2 over HTTP is `application/soap+xml` (RFC 3902; DSP0226 binds WS-Management to SOAP
/// 1.2), and WinRM clients send `application/soap+xml;charset=UTF-8` (pywinrm, pypsrp, winrm.exe,
/// the captures in fixtures/wire). The charset may be UTF-8 or UTF-16, the two encodings every
/// SOAP/XML processor must read (WS-I Basic Profile R1012); the body parser decodes UTF-16 with a
/// BOM. RFC 3902 makes the charset optional, so a bare `application/soap+xml` is taken too
/// (Inferred: no capture of WinRM without the parameter). The `multipart/encrypted` and
/// `multipart/x-multi-encrypted` types of message encryption (MS-WSMV 2.2.9.1) are accepted
/// here and handled by `open_body` on a Negotiate connection, as before this check.
fn soap_media_type_accepted(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    // The exact value every WinRM client sends (see above), settled without taking it apart.
    if ct == crate::wsman::ns::SOAP_CONTENT_TYPE {
        return true;
    }
    if replica_ntlm::mime::is_encrypted(ct) {
        return true;
    }
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/soap+xml") {
        return false;
    }
    parts.all(|param| {
        let Some((name, value)) = param.split_once('=') else {
            // An empty parameter (a trailing `;`) names nothing; anything else is malformed.
            return param.trim().is_empty();
        };
        if !name.trim().eq_ignore_ascii_case("charset") {
            // Other parameters (`action=` of RFC 3902) do not change the media type.
            return true;
        }
        let value = value.trim().trim_matches('"');
        value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf-16")
    })
}

/// WinRM's answer to a body whose Content-Type is missing or not SOAP: HTTP 415 Unsupported
/// Media Type. Source: cloudsoft/winrm4j issue 72 (a client sending the wrong content-type got
/// `HTTP response '415: Unsupported Media Type'` from WinRM). The empty body is Inferred: the
/// report quotes only the status line, and the refusal happens before any SOAP is read, so
/// there is no envelope to fault against.
fn unsupported_media_type() -> Response<Body> {
    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "").into_response()
}

fn add_final_token(r: &mut Response<Body>, token: Option<String>) {
    if let Some(v) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
}

/// The SOAP body of a request on a Negotiate connection: unsealed when it is
/// `multipart/encrypted`, else taken as is where WinRM would take it. Returns the body and
/// whether it was sealed.
///
/// Inferred (no capture): WinRM refuses an unencrypted body over HTTP unless
/// `AllowUnencrypted` is true; a host that allows Basic over HTTP must have it true, so the
/// simulator takes plain bodies while Basic is on and refuses them (401, context dropped)
/// when `--auth negotiate` alone is served. jborean93's analysis of a capture (hashicorp/packer
/// issue 6205) reports WinRM answering NTLM without encryption with 401s; pywinrm issue 129
/// reports 500 for Kerberos: 401 is chosen. Once a connection has sent a sealed body, a plain
/// one on it is refused the same way, whatever the setting.
fn open_body(
    app: &App,
    conn: &ConnAuth,
    content_type: &str,
    body: Bytes,
) -> Result<(Bytes, bool), Box<Response<Body>>> {
    let mut state = conn.lock();
    let Some(est) = state.established.as_mut() else {
        return Err(Box::new(challenge_401(app)));
    };
    if replica_ntlm::mime::is_encrypted(content_type) {
        match replica_ntlm::mime::decrypt(&mut est.session, &body) {
            Ok(plain) => {
                est.sealed_seen = true;
                Ok((Bytes::from(plain), true))
            }
            Err(e) => {
                // The RC4 stream is now out of step: the context cannot be used again.
                tracing::debug!("encrypted body refused: {e}");
                state.established = None;
                let mut r = (
                    StatusCode::BAD_REQUEST,
                    format!("the encrypted body did not verify: {e}\n"),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                Err(Box::new(r))
            }
        }
    } else if body.is_empty() {
        Ok((body, false))
    } else if est.sealed_seen || (!app.https && !app.auth.basic) {
        state.established = None;
        tracing::debug!("unencrypted body on a connection that must encrypt: refused");
        Err(Box::new(challenge_401(app)))
    } else {
        Ok((body, false))
    }
}

/// A reply sealed with the connection's context, framed as `multipart/encrypted`. Faults are
/// sealed too: clients decrypt whatever the status.
fn sealed_response(conn: &ConnAuth, reply: dispatch::Reply) -> Response<Body> {
    let mut state = conn.lock();
    let Some(est) = state.established.as_mut() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let body = replica_ntlm::mime::encrypt(&mut est.session, reply.body.as_bytes());
    drop(state);
    let mut resp = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, replica_ntlm::mime::CONTENT_TYPE)
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    if reply.drop_connection {
        resp.extensions_mut().insert(DropConnection);
    }
    resp
}

fn soap_response(reply: dispatch::Reply) -> Response<Body> {
    // Built in place: the builder would validate and copy the constant header value, and
    // carry a `Result` for errors a status and a static value cannot have.
    let mut resp = Response::new(Body::from(reply.body));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::wsman::ns::SOAP_CONTENT_TYPE),
    );
    if reply.drop_connection {
        resp.extensions_mut().insert(DropConnection);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::host_ports;

    #[test]
    fn plain_http_never_takes_5986() {
        assert_eq!(host_ports(5985, 2, false).unwrap(), vec![5985, 5987]);
        assert_eq!(host_ports(5984, 3, false).unwrap(), vec![5984, 5985, 5987]);
        assert_eq!(host_ports(5985, 2, true).unwrap(), vec![5985, 5986]);
        assert!(host_ports(5986, 1, false).is_err());
        assert!(host_ports(65535, 2, false).is_err());
        assert_eq!(host_ports(0, 2, false).unwrap(), vec![0, 0]);
    }
}
