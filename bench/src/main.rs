//! `replica-bench`: every figure of BENCHMARKS.md from one command.
//!
//! Throughput is measured side by side with a baseline — a minimal axum server answering a
//! fixed SOAP body of the same size — and reported as a ratio, because this machine's absolute
//! speed drifts. The load client is a bare hyper HTTP/1.1 client with one keep-alive
//! connection per worker, so the client costs the same for both servers. It stays a separate,
//! deliberately dumb client: the baseline answers a fixed body (no RelatesTo, no job), which the
//! real client would rightly refuse, and the real client's XML parsing of every answer would
//! cost more CPU than the server's work it is meant to measure on this 2-core machine. Every
//! call that is set-up, not load, goes through replica-client like any other user's.

use anyhow::{Context as _, bail};
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use replica_client::control::{self, Control};
use replica_client::wsman::{AuthMethod, ClientOptions, Credentials, WsmanClient};
use replica_core::ops::Operation;
use replica_core::topology::TopologySpec;
use replica_sim::{Sim, SimConfig};
use replica_wsman::ns::{self, class_uri, ns_wildcard_uri};
use replica_wsman::request::{self, SelectorSet};
use serde_json::json;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The server allocates many small strings per request (parsed names, response text);
/// mimalloc serves them several times faster than glibc's malloc (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "replica-bench",
    about = "Benchmarks of replica-sim, reported against a same-size baseline"
)]
struct Args {
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Path of the replica-sim binary (for startup and RSS); default: next to this binary.
    #[arg(long)]
    sim_bin: Option<std::path::PathBuf>,
    /// Number of polling clients in the many-clients run.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Only the quick subset (used by the test suite to keep the command working).
    #[arg(long)]
    quick: bool,
    /// Run only the dispatcher measurement (`replica-sim soak` on one thread, no HTTP).
    #[arg(long)]
    dispatch_only: Option<u64>,
    /// Run only the wrk measurement, this many seconds per target: Get and Invoke against a
    /// `replica-sim serve` process and the same-size baseline in a process of its own, loaded
    /// by wrk (which must be on PATH), with each server's CPU time per call from /proc.
    #[arg(long)]
    wrk: Option<f64>,
    /// wrk's connections (`-c`); its threads (`-t`) are one per two connections, at most 2.
    #[arg(long, default_value_t = 16)]
    wrk_connections: usize,
    /// Internal: serve the fixed baseline body of this many bytes, print
    /// `{"listening":ADDR}` and run until killed (the wrk run's baseline process).
    #[arg(long, hide = true)]
    serve_baseline: Option<usize>,
}

const AUTH: &str = "Basic YWRtaW46YWRtaW4="; // admin:admin

/// A request as replica-client sends it (the protocol crate's one request builder).
fn envelope(
    n: u64,
    resource: &str,
    action: &str,
    selectors: &[(&str, &str)],
    body: &str,
) -> String {
    let selectors = SelectorSet::from(selectors.to_vec());
    request::envelope(
        &request::Headers {
            to: "http://127.0.0.1/wsman",
            resource_uri: resource,
            action,
            message_id: &format!("uuid:00000000-0000-4000-8000-{n:012X}"),
            max_envelope_size: 512_000,
            locale: "en-US",
            selectors: Some(&selectors),
            operation_timeout: Duration::from_secs(60),
        },
        body,
    )
}

fn invoke(n: u64, host: &str, method: &str, vm: &str) -> String {
    let res = class_uri("Msvm_ReplicationService");
    let vm_ref = request::Param::Epr(replica_wsman::Epr::new(
        class_uri("Msvm_ComputerSystem"),
        [("CreationClassName", "Msvm_ComputerSystem"), ("Name", vm)],
    ));
    // The method names are the bench's own constants: a bad one is a bug in this file.
    let body = request::invoke_body(&res, method, &[("ComputerSystem", vm_ref)])
        .expect("bench method names are identifiers");
    envelope(
        n,
        &res,
        &format!("{res}/{method}"),
        &[
            ("CreationClassName", "Msvm_ReplicationService"),
            ("Name", "replicasvc"),
            ("SystemCreationClassName", "Msvm_ComputerSystem"),
            ("SystemName", host),
        ],
        &body,
    )
}

fn get_job(n: u64, id: &str) -> String {
    envelope(
        n,
        &class_uri("Msvm_ConcreteJob"),
        ns::action::GET,
        &[("InstanceID", id)],
        "",
    )
}

fn wql(n: u64, query: &str) -> String {
    let body = request::enumerate_body(Some(query), true, Some(32000), request::EprMode::Objects);
    envelope(n, &ns_wildcard_uri(), ns::action::ENUMERATE, &[], &body)
}

const APP_01: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01";

/// The load generator's client (see the module comment for why it is not replica-client).
struct Client {
    send: SendRequest<Full<Bytes>>,
    world: Option<String>,
    /// The Host header: the address dialled, as a browser would send it.
    host: String,
}

impl Client {
    async fn connect(addr: SocketAddr, world: Option<String>) -> anyhow::Result<Client> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Client {
            send,
            world,
            host: addr.to_string(),
        })
    }

    async fn post(&mut self, path: &str, body: String) -> anyhow::Result<(u16, Bytes)> {
        self.send.ready().await?;
        // The control API takes JSON only and answers only to the name and port it listens as.
        let content_type = if path.starts_with("/_replica/") {
            "application/json"
        } else {
            ns::SOAP_CONTENT_TYPE
        };
        let mut req = hyper::Request::post(path)
            .header("host", &self.host)
            .header("authorization", AUTH)
            .header("content-type", content_type);
        if let Some(w) = &self.world {
            req = req.header("x-replica-world", w);
        }
        let resp = self
            .send
            .send_request(req.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}

fn job_id(resp: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(resp).ok()?;
    let start = text.find("Name=\"InstanceID\">")? + "Name=\"InstanceID\">".len();
    let end = text[start..].find('<')?;
    Some(text[start..start + end].to_string())
}

fn field<'a>(resp: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(resp).ok()?;
    let open = format!("<p:{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find('<')?;
    Some(&text[start..start + end])
}

struct Load {
    calls: u64,
    errors: u64,
    secs: f64,
}

impl Load {
    fn per_sec(&self) -> f64 {
        self.calls as f64 / self.secs
    }
}

/// Runs `concurrency` workers for `secs`, each doing `step` repeatedly; counts HTTP calls.
async fn load<F, Fut>(concurrency: usize, secs: f64, step: F) -> Load
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<u64>> + Send,
{
    let calls = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let step = Arc::new(step);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (calls, errors, step) = (calls.clone(), errors.clone(), step.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                match step(w, i).await {
                    Ok(n) => calls.fetch_add(n, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Load {
        calls: calls.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        secs: started.elapsed().as_secs_f64(),
    }
}

/// A connection per worker, created lazily and reused (keep-alive, as WinRM clients do).
struct Pool {
    addr: SocketAddr,
    conns: Vec<tokio::sync::Mutex<Option<Client>>>,
    worlds: bool,
}

impl Pool {
    fn new(addr: SocketAddr, n: usize, worlds: bool) -> Arc<Pool> {
        Arc::new(Pool {
            addr,
            conns: (0..n).map(|_| tokio::sync::Mutex::new(None)).collect(),
            worlds,
        })
    }
    async fn with<T>(
        &self,
        w: usize,
        f: impl AsyncFnOnce(&mut Client) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut slot = self.conns[w].lock().await;
        if slot.is_none() {
            let world = self.worlds.then(|| format!("bench-{w}"));
            *slot = Some(Client::connect(self.addr, world).await?);
        }
        let client = slot.as_mut().context("connection")?;
        let r = f(client).await;
        if r.is_err() {
            *slot = None;
        }
        r
    }
}

async fn ok_post(c: &mut Client, path: &str, body: String) -> anyhow::Result<Bytes> {
    let (status, bytes) = c.post(path, body).await?;
    if status != 200 {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(bytes)
}

/// One failback cycle in a worker's own world: reset, InitiateFailover, poll to the end,
/// InitiateFailback, poll to the end. Returns the number of HTTP calls made.
async fn failback_cycle(c: &mut Client, n: u64) -> anyhow::Result<u64> {
    let mut calls = 0;
    ok_post(c, "/_replica/v1/reset", String::new()).await?;
    ok_post(c, "/_replica/v1/clock", r#"{"mode":"polls","n":2}"#.into()).await?;
    calls += 2;
    for method in ["InitiateFailover", "InitiateFailback"] {
        let r = ok_post(c, "/wsman", invoke(n, "HV-REPLICA", method, APP_01)).await?;
        calls += 1;
        if field(&r, "ReturnValue") != Some("4096") {
            bail!("{method} answered {:?}", field(&r, "ReturnValue"));
        }
        let id = job_id(&r).context("no job id")?;
        loop {
            let j = ok_post(c, "/wsman", get_job(n, &id)).await?;
            calls += 1;
            match field(&j, "JobState") {
                Some("7") => break,
                Some("2" | "3" | "4") => {}
                other => bail!("job ended {other:?}"),
            }
        }
    }
    Ok(calls)
}

/// replica-client's WS-Management client of one host (and world), for set-up calls.
fn wsman_client(addr: SocketAddr, world: Option<&str>) -> anyhow::Result<WsmanClient> {
    let url = match world {
        Some(w) => format!("http://{addr}/worlds/{w}/wsman"),
        None => format!("http://{addr}/wsman"),
    };
    Ok(WsmanClient::new(
        url,
        Credentials::new("admin", "admin"),
        ClientOptions {
            auth: AuthMethod::Basic,
            ..ClientOptions::default()
        },
    )?)
}

/// The length of the answer to a request built by this file, sent as it is (so that a baseline
/// answers the same number of bytes as the simulator does to the load's own requests).
async fn answer_len(c: &WsmanClient, xml: &str) -> anyhow::Result<usize> {
    let r = c.send(xml).await?;
    if r.status != 200 {
        bail!("HTTP {}: {}", r.status, r.body);
    }
    Ok(r.body.len())
}

async fn baseline_server(body_len: usize) -> anyhow::Result<SocketAddr> {
    // A fixed SOAP body of the same size as the simulator's answer.
    let mut body =
        String::from("<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>");
    while body.len() + 23 < body_len {
        body.push('x');
    }
    body.push_str("</s:Body></s:Envelope>");
    let body: &'static str = Box::leak(body.into_boxed_str());
    let app = axum::Router::new().route(
        "/wsman",
        axum::routing::post(
            move || async move { ([("content-type", ns::SOAP_CONTENT_TYPE)], body) },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

fn report(name: &str, v: serde_json::Value) {
    let mut o = json!({ "bench": name });
    if let (Some(o), Some(v)) = (o.as_object_mut(), v.as_object()) {
        o.extend(v.clone());
    }
    println!("{o}");
}

fn sim_bin(args: &Args) -> std::path::PathBuf {
    args.sim_bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("replica-sim")))
            .unwrap_or_else(|| "replica-sim".into())
    })
}

/// Starts `replica-sim serve`, returns (child, time to the ready line, hosts).
fn spawn_sim(
    bin: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<(std::process::Child, Duration, serde_json::Value)> {
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let dt = t0.elapsed();
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).with_context(|| format!("ready line `{line}`"))?;
    Ok((child, dt, v["hosts"].clone()))
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn big_topology(vms: usize) -> String {
    let mut s =
        String::from("[[hosts]]\nname = \"HV-PRIMARY\"\n\n[[hosts]]\nname = \"HV-REPLICA\"\n");
    for i in 0..vms {
        s.push_str(&format!(
            "\n[[vms]]\nname = \"vm-{i:05}\"\nhost = \"HV-PRIMARY\"\nreplication = {{ replica_host = \"HV-REPLICA\", recovery_points = 2 }}\n"
        ));
    }
    s
}

fn model_ops(n: u64) -> serde_json::Value {
    let spec: TopologySpec = match toml::from_str(replica_sim::DEFAULT_TOPOLOGY) {
        Ok(s) => s,
        Err(_) => return json!({ "error": "default topology" }),
    };
    let Ok(mut world) = spec.build(1, 1_767_225_600_000) else {
        return json!({ "error": "build" });
    };
    let vms = [
        "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01",
        "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02",
        "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B03",
    ];
    let ops: Vec<(&str, Operation)> = vms
        .iter()
        .flat_map(|vm| {
            let vm = vm.to_string();
            [
                (
                    "HV-REPLICA",
                    Operation::InitiateFailover {
                        vm: vm.clone(),
                        recovery_point: None,
                    },
                ),
                (
                    "HV-REPLICA",
                    Operation::InitiateFailback {
                        vm: vm.clone(),
                        settings: Default::default(),
                        recovery_point: None,
                    },
                ),
                ("HV-REPLICA", Operation::CommitFailover { vm: vm.clone() }),
                ("HV-REPLICA", Operation::RevertFailover { vm: vm.clone() }),
                (
                    "HV-PRIMARY",
                    Operation::RequestReplicationStateChange {
                        vm: vm.clone(),
                        rel: replica_core::world::RelIx::Primary,
                        requested: 7,
                    },
                ),
                (
                    "HV-PRIMARY",
                    Operation::RequestReplicationStateChange {
                        vm: vm.clone(),
                        rel: replica_core::world::RelIx::Primary,
                        requested: 3,
                    },
                ),
                (
                    "HV-PRIMARY",
                    Operation::InitiateFailover {
                        vm,
                        recovery_point: None,
                    },
                ),
            ]
        })
        .collect();
    let mut now = world.now();
    let mut accepted = 0u64;
    let t0 = Instant::now();
    for i in 0..n {
        let (host, op) = &ops[(i as usize * 7 + i as usize / 5) % ops.len()];
        now += 50;
        let a = world.apply(host, op, now);
        if a.code == 4096 || a.code == 0 {
            accepted += 1;
        }
        world.drain_events();
    }
    let secs = t0.elapsed().as_secs_f64();
    json!({ "ops": n, "accepted": accepted, "secs": secs, "ops_per_sec": n as f64 / secs })
}

/// The explore machinery without the wire: sequences drawn by the same strategy as
/// `replica-conformance explore`, each played on a target model and on the oracle model, views
/// compared after every step.
fn explore_in_process(cases: u32, steps: usize) -> serde_json::Value {
    use proptest::strategy::{Strategy as _, ValueTree as _};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use replica_conformance::explore::sequence_strategy;
    use replica_conformance::oracle::ModelRunner;
    let Ok(spec) = toml::from_str::<TopologySpec>(replica_sim::DEFAULT_TOPOLOGY) else {
        return json!({ "error": "default topology" });
    };
    let strategy = sequence_strategy(steps);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let t0 = Instant::now();
    let (mut played, mut diverged) = (0u64, 0u64);
    for _ in 0..cases {
        let Ok(tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let seq = tree.current();
        let (Ok(mut target), Ok(mut oracle)) = (
            ModelRunner::from_spec(&spec, 1, 0),
            ModelRunner::from_spec(&spec, 1, 0),
        ) else {
            return json!({ "error": "model" });
        };
        for step in &seq {
            let (a, b) = (target.step(step), oracle.step(step));
            played += 1;
            if format!("{a:?}") != format!("{b:?}")
                || target.views("HV-REPLICA") != oracle.views("HV-REPLICA")
                || target.views("HV-PRIMARY") != oracle.views("HV-PRIMARY")
            {
                diverged += 1;
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    json!({ "sequences": cases, "max_steps": steps, "steps_played": played, "divergences": diverged, "secs": secs, "sequences_per_sec": f64::from(cases) / secs })
}

/// `replica-conformance explore --sim` over loopback HTTP, timed from outside.
fn explore_over_wire(bin: &std::path::Path, cases: u32, steps: usize) -> serde_json::Value {
    let t0 = Instant::now();
    let out = Command::new(bin)
        .args([
            "explore",
            "--sim",
            "--cases",
            &cases.to_string(),
            "--steps",
            &steps.to_string(),
            "--seed",
            "7",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let secs = t0.elapsed().as_secs_f64();
    match out {
        Ok(st) => {
            json!({ "sequences": cases, "max_steps": steps, "secs": secs, "sequences_per_sec": f64::from(cases) / secs, "exit": st.code() })
        }
        Err(e) => json!({ "skipped": format!("{}: {e}", bin.display()) }),
    }
}

/// The dispatcher without HTTP: `replica-sim soak` on one thread (mixed calls into one world,
/// with its consistency check), read from the rate it prints. The simulator's insides are not
/// a library API; the binary is how they are measured (and how `perf record` profiles them).
fn dispatch_only(bin: &std::path::Path, n: u64) -> serde_json::Value {
    let out = std::process::Command::new(bin)
        .args([
            "soak",
            "--calls",
            &n.to_string(),
            "--threads",
            "1",
            "--seed",
            "7",
        ])
        .stderr(Stdio::null())
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => return json!({ "error": format!("soak exited with {:?}", o.status.code()) }),
        Err(e) => return json!({ "skipped": format!("{}: {e}", bin.display()) }),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "soak: N calls on 1 threads in S s (R calls/s): consistent"
    let rate = text
        .split('(')
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|r| r.parse::<f64>().ok());
    match rate {
        Some(r) if r > 0.0 => {
            json!({ "calls": n, "calls_per_sec": r, "us_per_call": 1e6 / r, "mix": "soak (Invoke, Get, Enumerate, Pull, Release, Identify, malformed)" })
        }
        _ => json!({ "error": format!("no rate in the soak's output: {text}") }),
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
/// The process's user and kernel CPU time so far, in seconds. The split matters: the
/// simulator's extra kernel time over the baseline's was lock contention (futex calls).
fn cpu_split_secs(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15, in clock ticks.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = f.get(11)?.parse().ok()?;
    let system: f64 = f.get(12)?.parse().ok()?;
    let hz = clock_ticks();
    Some((user / hz, system / hz))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// What one wrk run measured.
struct WrkResult {
    requests: u64,
    per_sec: f64,
    non_2xx: u64,
    server_cpu_us_per_call: Option<f64>,
    /// The same, user and kernel time apart.
    server_user_us_per_call: Option<f64>,
    server_system_us_per_call: Option<f64>,
    p99_ms: Option<f64>,
}

/// Loads `addr` with wrk for `secs`, POSTing `body`, and reads server `pid`'s CPU around it.
fn wrk_once(
    addr: SocketAddr,
    body: &str,
    secs: f64,
    connections: usize,
    pid: u32,
) -> anyhow::Result<WrkResult> {
    let dir = std::env::temp_dir().join(format!("replica-bench-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/soap+xml;charset=UTF-8\"\nwrk.headers[\"Authorization\"] = \"{AUTH}\"\nwrk.body = [==[{body}]==]\n"
        ),
    )?;
    let threads = connections.div_ceil(2).clamp(1, 2);
    let before = cpu_split_secs(pid);
    let out = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{}s", secs.ceil() as u64),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(format!("http://{addr}/wsman"))
        .output()
        .context("running wrk (is it installed? apt-get install wrk)")?;
    let after = cpu_split_secs(pid);
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let per_sec = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // `99%   1.23ms` in the latency distribution.
    let p99_ms = text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("99%")?.trim();
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
        let num: f64 = num.parse().ok()?;
        Some(match unit {
            "us" => num / 1000.0,
            "ms" => num,
            "s" => num * 1000.0,
            _ => return None,
        })
    });
    let per_call = |b: f64, a: f64| (requests > 0).then(|| (a - b) * 1e6 / requests as f64);
    let (user, system) = match (before, after) {
        (Some((bu, bs)), Some((au, as_))) => (per_call(bu, au), per_call(bs, as_)),
        _ => (None, None),
    };
    Ok(WrkResult {
        requests,
        per_sec,
        non_2xx,
        server_cpu_us_per_call: user.zip(system).map(|(u, s)| u + s),
        server_user_us_per_call: user,
        server_system_us_per_call: system,
        p99_ms,
    })
}

/// The address of `host` from `replica-sim serve`'s ready line.
fn host_addr(hosts: &serde_json::Value, host: &str) -> anyhow::Result<SocketAddr> {
    let url = hosts[host].as_str().unwrap_or_default();
    url.trim_start_matches("http://")
        .trim_end_matches("/wsman")
        .parse()
        .with_context(|| format!("{host}'s URL `{url}` in the ready line"))
}

/// `--wrk`: Get and Invoke on a `replica-sim serve` process against the baseline process,
/// each loaded by wrk, a load generator in C that needs far less CPU per call than either
/// server. On a 2-core machine wrk still shares the cores with the server, so the ratio is the
/// figure to compare; absolute rates depend on the machine and its other load.
async fn wrk_run(args: &Args, secs: f64) -> anyhow::Result<()> {
    let bin = sim_bin(args);
    let (mut sim, _, hosts) = spawn_sim(&bin, &[])?;
    let replica = host_addr(&hosts, "HV-REPLICA")?;
    let get = envelope(
        1,
        &class_uri("Msvm_ComputerSystem"),
        ns::action::GET,
        &[
            ("CreationClassName", "Msvm_ComputerSystem"),
            ("Name", APP_01),
        ],
        "",
    );
    // InitiateFailover on the replica: the first call starts a job, the following ones are
    // refused with a ReturnValue (a job is already changing the VM). Every call is parsed,
    // decided by the model, journaled and answered, as any Invoke is.
    let inv = invoke(1, "HV-REPLICA", "InitiateFailover", APP_01);
    let c = wsman_client(replica, None)?;
    let get_len = answer_len(&c, &get).await?;
    let inv_len = answer_len(&c, &inv).await?;
    drop(c);

    let mut results = Vec::new();
    for (name, body, len) in [("get", &get, get_len), ("invoke", &inv, inv_len)] {
        let mut base = Command::new(std::env::current_exe()?)
            .args(["--serve-baseline", &len.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = base.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .with_context(|| format!("baseline ready line `{line}`"))?;
        let base_addr: SocketAddr = v["listening"].as_str().unwrap_or_default().parse()?;
        let b = wrk_once(base_addr, body, secs, args.wrk_connections, base.id());
        let _ = base.kill();
        let _ = base.wait();
        let b = b?;
        let s = wrk_once(replica, body, secs, args.wrk_connections, sim.id())?;
        results.push((name, len, b, s));
    }
    let _ = sim.kill();
    let _ = sim.wait();
    for (name, len, b, s) in results {
        report(
            &format!("wrk_{name}"),
            json!({
                "connections": args.wrk_connections,
                "response_bytes": len,
                "sim_calls_per_sec": s.per_sec,
                "sim_requests": s.requests,
                "sim_non_2xx": s.non_2xx,
                "sim_p99_ms": s.p99_ms,
                "sim_cpu_us_per_call": s.server_cpu_us_per_call,
                "sim_user_us_per_call": s.server_user_us_per_call,
                "sim_system_us_per_call": s.server_system_us_per_call,
                "baseline_calls_per_sec": b.per_sec,
                "baseline_non_2xx": b.non_2xx,
                "baseline_cpu_us_per_call": b.server_cpu_us_per_call,
                "baseline_user_us_per_call": b.server_user_us_per_call,
                "baseline_system_us_per_call": b.server_system_us_per_call,
                "ratio_to_baseline": if b.per_sec > 0.0 { s.per_sec / b.per_sec } else { 0.0 },
            }),
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(len) = args.serve_baseline {
        let addr = baseline_server(len).await?;
        println!("{}", json!({ "listening": addr.to_string() }));
        std::future::pending::<()>().await;
    }
    if let Some(secs) = args.wrk {
        return wrk_run(&args, secs).await;
    }
    if let Some(n) = args.dispatch_only {
        report("dispatch_mixed", dispatch_only(&sim_bin(&args), n));
        return Ok(());
    }
    let secs = if args.quick { 0.5 } else { args.secs };
    let machine = json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "model": std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())),
    });
    report("machine", machine);

    // --- in-process model
    report(
        "model_ops",
        tokio::task::spawn_blocking(move || {
            model_ops(if args.quick { 100_000 } else { 2_000_000 })
        })
        .await?,
    );

    // --- explore: in-process (model against oracle) and over the wire
    let (cases, steps) = if args.quick { (50, 20) } else { (1000, 20) };
    report(
        "explore_in_process",
        tokio::task::spawn_blocking(move || explore_in_process(cases, steps)).await?,
    );
    let conf = sim_bin(&args).with_file_name("replica-conformance");
    if conf.exists() {
        report(
            "explore_over_wire",
            tokio::task::spawn_blocking(move || {
                explore_over_wire(&conf, if args.quick { 5 } else { 50 }, 20)
            })
            .await?,
        );
    }

    // --- one request through dispatch, without HTTP (where the server's own time goes)
    report(
        "dispatch_mixed",
        {
            let bin = sim_bin(&args);
            tokio::task::spawn_blocking(move || {
                dispatch_only(&bin, if args.quick { 20_000 } else { 200_000 })
            })
        }
        .await?,
    );

    // --- simulator and baseline side by side
    let sim = Sim::start_with(SimConfig {
        seed: 1,
        ..SimConfig::default()
    })
    .await?;
    let replica = *sim.addrs().get("HV-REPLICA").context("HV-REPLICA")?;
    // A finished job to Get, and the size of its Get response for the baseline.
    let (job, job_get_len) = {
        let c = wsman_client(replica, Some("bench-get"))?;
        let r = c
            .send(invoke(1, "HV-REPLICA", "InitiateFailover", APP_01))
            .await?;
        let id = job_id(r.body.as_bytes()).context("job id")?;
        let ctl = Control::new(
            control::http_client(false)?,
            format!("http://{replica}"),
            Some("bench-get".into()),
        );
        ctl.clock_manual().await?;
        ctl.advance(5000).await?;
        let len = answer_len(&c, &get_job(2, &id)).await?;
        (id, len)
    };
    let baseline = baseline_server(job_get_len).await?;
    for conc in [1usize, 16] {
        let pool = Pool::new(baseline, conc, false);
        let b = load(conc, secs, move |w, i| {
            let pool = pool.clone();
            async move {
                pool.with(w, async move |c| {
                    ok_post(c, "/wsman", get_job(i, "x")).await.map(|_| 1)
                })
                .await
            }
        })
        .await;
        let pool = Pool::new(replica, conc, false);
        let job2 = job.clone();
        let g = load(conc, secs, move |w, i| {
            let (pool, job) = (pool.clone(), job2.clone());
            async move {
                pool.with(w, async move |c| {
                    c.world = Some("bench-get".into());
                    ok_post(c, "/wsman", get_job(i, &job)).await.map(|_| 1)
                })
                .await
            }
        })
        .await;
        let pool = Pool::new(replica, conc, false);
        let e = load(conc, secs, move |w, i| {
            let pool = pool.clone();
            async move {
                pool.with(w, async move |c| {
                    ok_post(
                        c,
                        "/wsman",
                        wql(
                            i,
                            "SELECT * FROM Msvm_ComputerSystem WHERE ElementName = 'app-01'",
                        ),
                    )
                    .await
                    .map(|_| 1)
                })
                .await
            }
        })
        .await;
        let pool = Pool::new(replica, conc, true);
        let f = load(conc, secs, move |w, i| {
            let pool = pool.clone();
            async move {
                pool.with(w, async move |c| failback_cycle(c, i).await)
                    .await
            }
        })
        .await;
        let base = b.per_sec();
        report(
            "baseline_fixed_soap",
            json!({ "concurrency": conc, "calls_per_sec": base, "errors": b.errors, "body_bytes": job_get_len }),
        );
        report(
            "get_concretejob",
            json!({ "concurrency": conc, "calls_per_sec": g.per_sec(), "ratio_to_baseline": g.per_sec() / base, "errors": g.errors }),
        );
        report(
            "wql_enumerate",
            json!({ "concurrency": conc, "calls_per_sec": e.per_sec(), "ratio_to_baseline": e.per_sec() / base, "errors": e.errors }),
        );
        report(
            "failback_invoke_and_poll",
            json!({ "concurrency": conc, "calls_per_sec": f.per_sec(), "ratio_to_baseline": f.per_sec() / base, "errors": f.errors, "note": "cycle = reset + clock + InitiateFailover + polls + InitiateFailback + polls, per-worker world, polls:2 pacing" }),
        );
    }

    // --- many clients polling jobs every 100 ms
    {
        let clients = if args.quick { 50 } else { args.clients };
        let run_secs = if args.quick { 1.0 } else { 5.0 };
        let ok = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let worst = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        let t0 = Instant::now();
        for i in 0..clients {
            let (ok, errors, worst, job) = (ok.clone(), errors.clone(), worst.clone(), job.clone());
            tasks.push(tokio::spawn(async move {
                // Spread the start over the first 100 ms, as real pollers are not in lockstep.
                tokio::time::sleep(Duration::from_micros(
                    (i as u64 * 100_000) / clients.max(1) as u64,
                ))
                .await;
                let Ok(mut c) = Client::connect(replica, Some("bench-get".into())).await else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                let end = Instant::now() + Duration::from_secs_f64(run_secs);
                let mut n = 0u64;
                while Instant::now() < end {
                    tick.tick().await;
                    let t = Instant::now();
                    match ok_post(&mut c, "/wsman", get_job(n, &job)).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                    worst.fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                    n += 1;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let el = t0.elapsed().as_secs_f64();
        report(
            "many_clients_polling",
            json!({
                "clients": clients, "interval_ms": 100, "secs": el,
                "calls": ok.load(Ordering::Relaxed), "errors": errors.load(Ordering::Relaxed),
                "calls_per_sec": ok.load(Ordering::Relaxed) as f64 / el, "worst_latency_ms": worst.load(Ordering::Relaxed) as f64 / 1000.0,
            }),
        );
    }
    sim.shutdown().await;

    // --- startup and peak RSS of the real binary
    let bin = sim_bin(&args);
    if bin.exists() {
        let mut times = Vec::new();
        for _ in 0..if args.quick { 2 } else { 10 } {
            let (mut child, dt, _) = spawn_sim(&bin, &[])?;
            times.push(dt.as_secs_f64() * 1000.0);
            let _ = child.kill();
            let _ = child.wait();
        }
        times.sort_by(f64::total_cmp);
        report(
            "startup_to_ready",
            json!({ "runs": times.len(), "median_ms": times[times.len() / 2], "max_ms": times[times.len() - 1] }),
        );
        let dir = std::env::temp_dir().join(format!("replica-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let big = dir.join("big.toml");
        let big_vms = if args.quick { 1000 } else { 10_000 };
        std::fs::write(&big, big_topology(big_vms))?;
        for (label, extra) in [
            ("default", vec![]),
            (
                "generated",
                vec!["--topology", big.to_str().unwrap_or_default()],
            ),
        ] {
            let (mut child, dt, hosts) = spawn_sim(&bin, &extra)?;
            // Exercise it a little so the figure includes request handling.
            let url = hosts["HV-REPLICA"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("http://")
                .trim_end_matches("/wsman")
                .to_string();
            if let Ok(addr) = url.parse::<SocketAddr>() {
                let c = wsman_client(addr, None)?;
                for _ in 0..200 {
                    let _ = c
                        .query("SELECT * FROM Msvm_ComputerSystem WHERE ElementName = 'app-01'")
                        .await;
                }
                let _ = c
                    .send(invoke(9, "HV-REPLICA", "InitiateFailover", APP_01))
                    .await;
            }
            let rss = peak_rss_kib(child.id());
            report(
                "peak_rss",
                json!({ "topology": label, "vms": if label == "default" { 4 } else { big_vms }, "peak_rss_mib": rss.map(|k| k as f64 / 1024.0), "startup_ms": dt.as_secs_f64() * 1000.0 }),
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        report(
            "startup_to_ready",
            json!({ "skipped": format!("{} not built (cargo build --release -p replica-sim)", bin.display()) }),
        );
    }
    Ok(())
}
