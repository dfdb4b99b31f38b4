//! Targets: what the runner talks to. Every target is reached over the wire (WS-Management);
//! a simulator also has its control API, a recording stands in for a host it was made on.
//!
//! - [`TargetSpec`]: what the command line named (`--sim`, `--target NAME=URL ...`,
//!   `--target replay:DIR`).
//! - [`Target`]: the connected target (an in-process simulator is started here).
//! - [`Session`]: one isolated run (a scenario, an explore case): a fresh world of a simulator,
//!   the hosts of a real lab, or one recording.
//! - [`HostConn`]: the three WS-Management operations the runner uses, on the wire or from a
//!   recording.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::record::{HostRecorder, RecordedFlavor, ReplayLog, Sink};
use replica_client::control::{self, Control};
use replica_client::wsman::envelope::{self, Headers};
use replica_client::wsman::{
    self, ClientOptions, Credentials, EnumItem, EnumOpts, Instance, InvokeOutput, Param,
    ResponseError, SelectorSet, WsmanClient, WsmanError, ns, parse,
};

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// An in-process simulator.
    Sim,
    /// Hosts by name: `HV-PRIMARY=http://127.0.0.1:5985/wsman`.
    Hosts(BTreeMap<String, String>),
    /// A recording directory.
    Replay(PathBuf),
}

impl TargetSpec {
    /// Parses `--sim` and the `--target` values; errors are usage errors, worded for the user.
    pub fn parse(sim: bool, targets: &[String]) -> Result<TargetSpec, String> {
        let mut hosts = BTreeMap::new();
        let mut replay: Option<PathBuf> = None;
        for t in targets {
            if let Some(dir) = t.strip_prefix("replay:") {
                if dir.trim().is_empty() {
                    return Err("--target replay:DIR needs a directory".into());
                }
                if replay.is_some() {
                    return Err("--target replay:DIR can be given once".into());
                }
                replay = Some(PathBuf::from(dir));
                continue;
            }
            let Some((name, url)) = t.split_once('=') else {
                return Err(format!(
                    "--target `{t}` must be NAME=URL (e.g. HV-PRIMARY=http://127.0.0.1:5985/wsman) or replay:DIR"
                ));
            };
            let (name, url) = (name.trim(), url.trim());
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!(
                    "--target `{t}`: the host name before `=` must be non-empty without spaces"
                ));
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "--target `{t}`: the URL must start with http:// or https://"
                ));
            }
            if hosts.insert(name.to_string(), url.to_string()).is_some() {
                return Err(format!("--target names host `{name}` twice"));
            }
        }
        match (sim, hosts.is_empty(), replay) {
            (true, true, None) => Ok(TargetSpec::Sim),
            (false, false, None) => Ok(TargetSpec::Hosts(hosts)),
            (false, true, Some(dir)) => Ok(TargetSpec::Replay(dir)),
            (false, true, None) => Err(
                "no target: give --sim, or --target NAME=URL once per host, or --target replay:DIR"
                    .into(),
            ),
            (true, _, _) => Err(
                "--sim and --target are exclusive: the simulator is the target (a replay is compared with the simulator on its own)"
                    .into(),
            ),
            (false, false, Some(_)) => {
                Err("--target replay:DIR cannot be mixed with --target NAME=URL".into())
            }
        }
    }
}

/// What kind of target a session behaves as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// A replica-sim (in-process or over HTTP): control API, fresh worlds.
    Simulator,
    /// Real Hyper-V hosts: real VMs, real time.
    Real,
}

impl From<RecordedFlavor> for Flavor {
    fn from(f: RecordedFlavor) -> Flavor {
        match f {
            RecordedFlavor::Simulator => Flavor::Simulator,
            RecordedFlavor::Real => Flavor::Real,
        }
    }
}

impl From<Flavor> for RecordedFlavor {
    fn from(f: Flavor) -> RecordedFlavor {
        match f {
            Flavor::Simulator => RecordedFlavor::Simulator,
            Flavor::Real => RecordedFlavor::Real,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    Live(Flavor),
    Replay(PathBuf),
}

/// A connected target.
pub struct Target {
    /// For reports: `sim`, the host URLs, `replay:DIR`.
    pub label: String,
    pub kind: TargetKind,
    /// Host name → WS-Management URL (empty for a replay: each recording names its hosts).
    pub hosts: BTreeMap<String, String>,
    pub creds: Credentials,
    pub opts: ClientOptions,
    /// The seed of the worlds this runner creates on a simulator.
    pub world_seed: u64,
    http: reqwest::Client,
    counter: AtomicU64,
    /// Lab VMs bound to scenarios (real hosts).
    pub ledger: Arc<crate::lab::Ledger>,
    #[cfg(feature = "sim")]
    sim: Mutex<Option<replica_sim::SimHandle>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("label", &self.label)
            .field("kind", &self.kind)
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// How time passes for a session.
#[derive(Debug, Clone)]
pub enum Pacing {
    /// A simulator in manual clock mode: the runner advances it.
    Clock(Control),
    /// Real hosts: wait.
    Sleep(Duration),
    /// A replay: the answers are already there.
    Instant,
}

/// The control plane of a session.
#[derive(Debug, Clone)]
pub enum ControlPlane {
    None,
    Live(Control),
    /// A replay of a simulator recording: control actions already happened; they succeed
    /// without effect.
    Replayed,
}

/// One isolated run against a target.
pub struct Session {
    pub flavor: Flavor,
    pub hosts: BTreeMap<String, HostConn>,
    pub control: ControlPlane,
    pub pacing: Pacing,
    pub sink: Option<Arc<Sink>>,
    pub replay: Option<Arc<ReplayLog>>,
    /// `--vm-prefix` for real hosts (from the recording for a replay).
    pub vm_prefix: Option<String>,
    /// The target's lab VM ledger (real hosts).
    pub ledger: Arc<crate::lab::Ledger>,
    services: Mutex<HashMap<(String, String), SelectorSet>>,
}

impl Target {
    /// Connects to (or starts) the target. `--target` hosts are probed: a replica-sim answers
    /// its control API, anything else is a real host.
    pub async fn connect(
        spec: &TargetSpec,
        creds: Credentials,
        opts: ClientOptions,
        world_seed: u64,
    ) -> anyhow::Result<Target> {
        let http = control::http_client(opts.accept_invalid_certs)?;
        let mut t = Target {
            label: String::new(),
            kind: TargetKind::Live(Flavor::Simulator),
            hosts: BTreeMap::new(),
            creds,
            opts,
            world_seed,
            http,
            counter: AtomicU64::new(0),
            ledger: Arc::default(),
            #[cfg(feature = "sim")]
            sim: Mutex::new(None),
        };
        match spec {
            TargetSpec::Sim => {
                #[cfg(feature = "sim")]
                {
                    let handle = crate::insim::start(world_seed, &t.creds).await?;
                    t.hosts = handle.hosts();
                    t.label = "sim (in-process)".into();
                    *t.sim.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
                }
                #[cfg(not(feature = "sim"))]
                bail!(
                    "this replica-conformance was built without the `sim` feature: use --target with a running replica-sim"
                );
            }
            TargetSpec::Hosts(hosts) => {
                let mut all_sim = true;
                for (name, url) in hosts {
                    if !control::probe(&t.http, url).await {
                        // Not a simulator, or nothing there at all: only a host that accepts a
                        // connection may be called real Hyper-V.
                        reachable(name, url).await?;
                        all_sim = false;
                    }
                }
                t.hosts = hosts.clone();
                t.kind = TargetKind::Live(if all_sim {
                    Flavor::Simulator
                } else {
                    Flavor::Real
                });
                t.label = hosts
                    .iter()
                    .map(|(h, u)| format!("{h}={u}"))
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            TargetSpec::Replay(dir) => {
                if !dir.is_dir() {
                    bail!("--target replay:{}: no such directory", dir.display());
                }
                t.kind = TargetKind::Replay(dir.clone());
                t.label = format!("replay:{}", dir.display());
            }
        }
        Ok(t)
    }

    /// Real hosts: every host answers an authenticated Identify and lets these credentials
    /// read `root/virtualization/v2` (the query the runner makes first in every scenario).
    /// `Err` names each host that does not, with why, so that a run never "passes" on hosts it
    /// could not reach.
    pub async fn check_reachable(&self) -> Result<(), String> {
        let mut bad = Vec::new();
        for (name, url) in &self.hosts {
            let why = match self.client(url, name, None) {
                Err(e) => Some(format!("{e:#}")),
                Ok(c) => match c.identify().await {
                    Err(e) => Some(host_error(&e, &self.creds.user)),
                    Ok(_) => match c.query("SELECT * FROM Msvm_ReplicationService").await {
                        Err(e) => Some(format!(
                            "Identify answered, but reading root/virtualization/v2 failed: {}",
                            host_error(&e, &self.creds.user)
                        )),
                        Ok(_) => None,
                    },
                },
            };
            if let Some(why) = why {
                bad.push(format!("host {name} ({url}): {why}"));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("\n       "))
        }
    }

    pub fn flavor(&self) -> Option<Flavor> {
        match self.kind {
            TargetKind::Live(f) => Some(f),
            TargetKind::Replay(_) => None,
        }
    }

    pub fn is_simulator(&self) -> bool {
        self.flavor() == Some(Flavor::Simulator)
    }

    pub fn is_real(&self) -> bool {
        self.flavor() == Some(Flavor::Real)
    }

    fn client(
        &self,
        url: &str,
        host: &str,
        sink: Option<&Arc<Sink>>,
    ) -> anyhow::Result<WsmanClient> {
        let c = WsmanClient::new(url, self.creds.clone(), self.opts.clone())
            .with_context(|| format!("host {host}"))?;
        Ok(match sink {
            Some(s) => c.with_recorder(Arc::new(HostRecorder {
                host: host.to_string(),
                sink: s.clone(),
            })),
            None => c,
        })
    }

    /// Opens a session on a live target. On a simulator it is a fresh world (its own URL
    /// path, `/worlds/NAME/wsman`), deleted by [`Session::close`].
    pub async fn session(
        &self,
        sink: Option<Arc<Sink>>,
        vm_prefix: Option<String>,
    ) -> anyhow::Result<Session> {
        let flavor = match &self.kind {
            TargetKind::Live(f) => *f,
            TargetKind::Replay(_) => {
                bail!("a replay session needs a recording (Target::replay_session)")
            }
        };
        let mut hosts = BTreeMap::new();
        let (control, pacing) = match flavor {
            Flavor::Simulator => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                let world = format!("rc-{}-{n}", std::process::id());
                let mut base_any = None;
                for (h, url) in &self.hosts {
                    let base = control::listener_base(url).ok_or_else(|| {
                        anyhow::anyhow!("host {h}: URL {url} does not end in /wsman")
                    })?;
                    let wurl = format!("{base}/worlds/{world}/wsman");
                    hosts.insert(
                        h.clone(),
                        HostConn::Wire(self.client(&wurl, h, sink.as_ref())?),
                    );
                    base_any.get_or_insert(base);
                }
                let base = base_any.ok_or_else(|| anyhow::anyhow!("the target has no host"))?;
                let c = Control::new(self.http.clone(), base, Some(world));
                (ControlPlane::Live(c.clone()), Pacing::Clock(c))
            }
            Flavor::Real => {
                for (h, url) in &self.hosts {
                    hosts.insert(
                        h.clone(),
                        HostConn::Wire(self.client(url, h, sink.as_ref())?),
                    );
                }
                (ControlPlane::None, Pacing::Sleep(wsman::DEFAULT_JOB_POLL))
            }
        };
        Ok(Session {
            flavor,
            hosts,
            control,
            pacing,
            sink,
            replay: None,
            vm_prefix,
            ledger: self.ledger.clone(),
            services: Mutex::new(HashMap::new()),
        })
    }

    /// A session replaying one recording.
    pub fn replay_session(&self, log: Arc<ReplayLog>) -> Session {
        let rec = &log.recording;
        let flavor = Flavor::from(rec.flavor);
        let hosts = rec
            .hosts
            .keys()
            .map(|h| {
                (
                    h.clone(),
                    HostConn::Replay {
                        host: h.clone(),
                        log: log.clone(),
                    },
                )
            })
            .collect();
        Session {
            flavor,
            hosts,
            control: if flavor == Flavor::Simulator {
                ControlPlane::Replayed
            } else {
                ControlPlane::None
            },
            pacing: Pacing::Instant,
            sink: None,
            vm_prefix: rec.vm_prefix.clone(),
            replay: Some(log),
            ledger: self.ledger.clone(),
            services: Mutex::new(HashMap::new()),
        }
    }

    /// Stops an in-process simulator.
    pub async fn shutdown(self) {
        #[cfg(feature = "sim")]
        {
            let handle = self.sim.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(h) = handle {
                h.shutdown().await;
            }
        }
    }
}

impl Session {
    pub fn conn(&self, host: &str) -> Option<&HostConn> {
        self.hosts.get(host).or_else(|| {
            self.hosts
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(host))
                .map(|(_, c)| c)
        })
    }

    pub fn host_names(&self) -> String {
        self.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    fn note(&self, action: &str, detail: Value) {
        if let Some(s) = &self.sink {
            s.control(action, detail);
        }
    }

    /// A control action, or why it cannot happen on this target.
    async fn control_do<F, Fut>(&self, action: &str, detail: Value, f: F) -> anyhow::Result<()>
    where
        F: FnOnce(Control) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        match &self.control {
            ControlPlane::Live(c) => {
                self.note(action, detail);
                f(c.clone()).await
            }
            ControlPlane::Replayed => Ok(()),
            ControlPlane::None => {
                bail!("{action} needs the simulator's control API; this target is a real host")
            }
        }
    }

    /// Starts the session's world from `topology` with `profile`, time stopped.
    pub async fn prepare(
        &self,
        topology: &replica_core::topology::TopologySpec,
        profile: Option<&str>,
        seed: u64,
    ) -> anyhow::Result<()> {
        let detail = json!({"profile": profile, "seed": seed});
        let t = topology.clone();
        let p = profile.map(str::to_string);
        self.control_do("reset", detail, |c| async move {
            let reset = control::Reset {
                topology: Some(t),
                profile: p,
                seed: Some(seed),
                ..control::Reset::default()
            };
            c.reset(&reset).await?;
            c.clock_manual().await?;
            Ok(())
        })
        .await
    }

    pub async fn add_fault(&self, spec: &replica_core::faults::FaultSpec) -> anyhow::Result<()> {
        let detail = serde_json::to_value(spec).unwrap_or(Value::Null);
        let s = spec.clone();
        self.control_do("fault", detail, |c| async move {
            c.add_fault(&s).await?;
            Ok(())
        })
        .await
    }

    /// Lets `ms` of time pass: advances a simulator's clock, sleeps on a real host.
    pub async fn pause(&self, ms: u64) -> anyhow::Result<()> {
        match &self.pacing {
            Pacing::Clock(c) => {
                self.note("advance", json!({"advance_ms": ms}));
                c.advance(ms).await?;
                Ok(())
            }
            Pacing::Sleep(_) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Pacing::Instant => Ok(()),
        }
    }

    /// Moves a simulator's stopped clock by what the model needed to finish a job, so both
    /// stay in lockstep. Real hosts and replays have their own time: nothing happens.
    pub async fn lockstep(&self, ms: u64) -> anyhow::Result<()> {
        match &self.pacing {
            Pacing::Clock(_) => self.pause(ms).await,
            Pacing::Sleep(_) | Pacing::Instant => Ok(()),
        }
    }

    /// Between two reads of a running job.
    pub async fn job_tick(&self) -> anyhow::Result<()> {
        match &self.pacing {
            Pacing::Clock(c) => {
                self.note("advance", json!({"advance_ms": 100}));
                c.advance(100).await?;
                Ok(())
            }
            Pacing::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Ok(())
            }
            Pacing::Instant => Ok(()),
        }
    }

    /// The selectors of a host's service instance (`Msvm_ReplicationService`,
    /// `Msvm_VirtualSystemManagementService`), read once from the host so that a real host's
    /// SystemName is right; the documented keys when the host lists none.
    pub async fn service_selectors(&self, host: &str, class: &str) -> wsman::Result<SelectorSet> {
        let key = (host.to_ascii_uppercase(), class.to_string());
        if let Some(s) = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(s.clone());
        }
        let conn = self
            .conn(host)
            .ok_or_else(|| WsmanError::InvalidRequest(format!("no host {host}")))?;
        let found = conn.query(&format!("SELECT * FROM {class}")).await?;
        let sel = found
            .first()
            .map(|i| {
                let get = |p: &str, d: &str| i.text(p).unwrap_or(d).to_string();
                SelectorSet::from([
                    ("CreationClassName", get("CreationClassName", class)),
                    ("Name", get("Name", "replicasvc")),
                    (
                        "SystemCreationClassName",
                        get("SystemCreationClassName", "Msvm_ComputerSystem"),
                    ),
                    ("SystemName", get("SystemName", host)),
                ])
            })
            .unwrap_or_else(|| {
                SelectorSet::from([
                    ("CreationClassName", class),
                    ("Name", "replicasvc"),
                    ("SystemCreationClassName", "Msvm_ComputerSystem"),
                    ("SystemName", host),
                ])
            });
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, sel.clone());
        Ok(sel)
    }

    /// Ends the session: deletes a simulator world, reports replay divergences.
    pub async fn close(&self) -> Vec<String> {
        if let ControlPlane::Live(c) = &self.control {
            let _ = c.delete_world().await;
        }
        self.replay.as_ref().map(|l| l.finish()).unwrap_or_default()
    }
}

/// Why a host could not be used, in words a lab owner can act on.
fn host_error(e: &WsmanError, user: &str) -> String {
    match e {
        WsmanError::Response(ResponseError::Unauthorized { www_authenticate }) => format!(
            "the credentials of user `{user}` were refused (HTTP 401; the host offers {})",
            if www_authenticate.is_empty() {
                "no scheme".to_string()
            } else {
                www_authenticate.join(", ")
            }
        ),
        WsmanError::Transport { .. } | WsmanError::Timeout { .. } => {
            format!("unreachable: {e}")
        }
        other => other.to_string(),
    }
}

/// A connection to one host: the wire, or a recording.
#[derive(Clone)]
pub enum HostConn {
    Wire(WsmanClient),
    Replay { host: String, log: Arc<ReplayLog> },
}

const REPLAY_MESSAGE_ID: &str = "uuid:00000000-0000-4000-8000-000000000000";

impl HostConn {
    /// A replayed request: the recorded answer decoded as the live client decodes it.
    fn replay<T>(
        host: &str,
        log: &ReplayLog,
        resource_uri: &str,
        action: &str,
        selectors: Option<&SelectorSet>,
        body: &str,
        f: impl FnOnce(&replica_wsman::xml::Element<'_>) -> parse::Result<T>,
    ) -> wsman::Result<T> {
        let opts = ClientOptions::default();
        let xml = envelope::envelope(
            &Headers {
                to: "replay",
                resource_uri,
                action,
                message_id: REPLAY_MESSAGE_ID,
                max_envelope_size: opts.max_envelope_size,
                locale: &opts.locale,
                selectors,
                operation_timeout: opts.operation_timeout,
            },
            body,
        );
        let ex = log.next(host, &xml)?;
        let Some(status) = ex.status else {
            return Err(WsmanError::protocol(format!(
                "recorded exchange failed below HTTP: {}",
                ex.error.unwrap_or_default()
            )));
        };
        let www: Vec<String> = ex
            .response_headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
            .map(|(_, v)| v.clone())
            .collect();
        parse::decode(
            status,
            &www,
            ex.response.as_deref().unwrap_or_default(),
            ex.message_id.as_deref(),
            f,
        )
        .map_err(WsmanError::from)
    }

    pub async fn invoke(
        &self,
        resource_uri: &str,
        method: &str,
        selectors: &SelectorSet,
        params: &[(&str, Param)],
    ) -> wsman::Result<InvokeOutput> {
        match self {
            HostConn::Wire(c) => c.invoke(resource_uri, method, selectors, params).await,
            HostConn::Replay { host, log } => {
                let body = envelope::invoke_body(resource_uri, method, params)?;
                let action = format!("{resource_uri}/{method}");
                Self::replay(
                    host,
                    log,
                    resource_uri,
                    &action,
                    Some(selectors),
                    &body,
                    |b| parse::invoke_output(b, method),
                )
            }
        }
    }

    pub async fn get(
        &self,
        resource_uri: &str,
        selectors: &SelectorSet,
    ) -> wsman::Result<Instance> {
        match self {
            HostConn::Wire(c) => c.get(resource_uri, selectors).await,
            HostConn::Replay { host, log } => Self::replay(
                host,
                log,
                resource_uri,
                ns::action::GET,
                Some(selectors),
                "",
                parse::get_response,
            ),
        }
    }

    /// Reads the host's VMs, relationships and recovery points (three WQL enumerations).
    pub async fn snapshot(&self) -> wsman::Result<crate::observe::HostSnapshot> {
        let systems = self.query("SELECT * FROM Msvm_ComputerSystem").await?;
        let rels = self
            .query("SELECT * FROM Msvm_ReplicationRelationship")
            .await?;
        let settings = self
            .query("SELECT * FROM Msvm_VirtualSystemSettingData")
            .await?;
        Ok(crate::observe::snapshot_from(&systems, &rels, &settings))
    }

    /// A WQL enumeration through `…/v2/*`, pulled to its end.
    pub async fn query(&self, wql: &str) -> wsman::Result<Vec<Instance>> {
        match self {
            HostConn::Wire(c) => c.query(wql).await,
            HostConn::Replay { host, log } => {
                let uri = ns::ns_wildcard_uri();
                let opts = EnumOpts::default();
                let body = envelope::enumerate_body(
                    Some(wql),
                    opts.optimize,
                    opts.max_elements,
                    opts.epr_mode,
                );
                let mut page = Self::replay(
                    host,
                    log,
                    &uri,
                    ns::action::ENUMERATE,
                    None,
                    &body,
                    parse::enum_page,
                )?;
                let mut items = std::mem::take(&mut page.items);
                let mut context = page.next_context().map(str::to_string);
                let mut pulls = 0;
                while let Some(ctx) = context {
                    pulls += 1;
                    if pulls > opts.max_pulls {
                        return Err(WsmanError::protocol(format!(
                            "recorded enumeration did not end after {} pulls",
                            opts.max_pulls
                        )));
                    }
                    let body = envelope::pull_body(&ctx, opts.max_elements);
                    let mut p = Self::replay(
                        host,
                        log,
                        &uri,
                        ns::action::PULL,
                        None,
                        &body,
                        parse::enum_page,
                    )?;
                    items.append(&mut p.items);
                    context = p.next_context().map(str::to_string);
                }
                Ok(items
                    .into_iter()
                    .filter_map(EnumItem::into_instance)
                    .collect())
            }
        }
    }
}

/// Fails, naming the host and its URL, when nothing accepts a TCP connection at `url`.
async fn reachable(name: &str, url: &str) -> anyhow::Result<()> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let default_port = if url.starts_with("https://") { 443 } else { 80 };
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let connect = tokio::net::TcpStream::connect(addr.as_str());
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            bail!(
                "host {name} at {url} is unreachable: nothing answers there ({e}); is the simulator or host running?"
            )
        }
        Err(_) => bail!("{name} at {url}: no answer to a connection within 10 s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sim: bool, t: &[&str]) -> Result<TargetSpec, String> {
        TargetSpec::parse(sim, &t.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn a_port_where_nothing_listens_is_not_called_hyper_v() {
        // A port that was free a moment ago: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("http://127.0.0.1:{port}/wsman");
        let hosts = BTreeMap::from([("HV-PRIMARY".to_string(), url.clone())]);
        let err = match Target::connect(
            &TargetSpec::Hosts(hosts),
            Credentials::new("admin", "admin"),
            ClientOptions::default(),
            0,
        )
        .await
        {
            Ok(t) => panic!("connected, as real={}", t.is_real()),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("nothing answers there"), "{err}");
        assert!(err.contains(&url), "{err}");
    }

    #[test]
    fn target_specs() {
        assert_eq!(parse(true, &[]), Ok(TargetSpec::Sim));
        let hosts = parse(
            false,
            &[
                "HV-PRIMARY=http://127.0.0.1:1/wsman",
                "HV-REPLICA=https://h:2/wsman",
            ],
        );
        assert!(
            matches!(hosts, Ok(TargetSpec::Hosts(ref h)) if h.len() == 2),
            "{hosts:?}"
        );
        assert_eq!(
            parse(false, &["replay:/tmp/x"]),
            Ok(TargetSpec::Replay("/tmp/x".into()))
        );
        for (sim, bad, needle) in [
            (false, &[][..], "no target"),
            (true, &["A=http://h/wsman"][..], "exclusive"),
            (false, &["A"][..], "NAME=URL"),
            (false, &["=http://h"][..], "non-empty"),
            (false, &["A=ftp://h"][..], "http://"),
            (false, &["A=http://h", "A=http://i"][..], "twice"),
            (false, &["replay:"][..], "directory"),
            (false, &["replay:a", "replay:b"][..], "once"),
            (false, &["replay:a", "A=http://h"][..], "mixed"),
        ] {
            let e = parse(sim, bad).expect_err(needle);
            assert!(e.contains(needle), "{e}");
        }
    }
}
