//! `replica-sim demo`: an offline, narrated walk through a planned failover, its commit, the
//! reverse of replication, and the way home through `InitiateFailback` to 14 "Failback
//! complete" (docs/facts.md#commands).
//!
//! Nothing is faked for the show: the demo starts the simulator in-process on loopback (port
//! 0), and every narrated step is a real WS-Management request over HTTP, answered by the same
//! code that answers pypsrp or winrm.exe. Jobs are followed by reading `Msvm_ConcreteJob`, and
//! state changes are found by reading `Msvm_ComputerSystem` on both hosts after every poll.
//!
//! Time: the world runs on the `manual` clock, and the demo moves it forward 100 ms of virtual
//! time per poll, `--speed` times faster than real time. Every job therefore passes through the
//! same percentages on every run, and the short-lived states (12 Failover in progress, 13
//! Failback in progress) are always seen, however loaded the machine is.

use crate::server::{Sim, SimConfig};
use crate::state::ClockMode;
use crate::wsman::Epr;
use crate::wsman::cimxml::{self, CimValue};
use crate::wsman::ns::class_uri;
use crate::wsman::request::{self, SelectorSet};
use anyhow::{anyhow, bail};
use replica_client::control::{self, Control};
use replica_client::wsman::{
    AuthMethod, ClientOptions, Credentials, Instance, PropValue, WsmanClient,
};
use replica_core::{
    EnabledState, JobState, JobType, ReplicationHealth, ReplicationMode, ReplicationState,
    ReturnCode,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

/// The VM the demo moves around: off and ready for a planned failover in the default world.
const VM: &str = "app-01";
const PRIMARY: &str = "HV-PRIMARY";
const REPLICA: &str = "HV-REPLICA";
/// Virtual time added before each poll.
const TICK_MS: u64 = 100;
/// A job that has not ended after this many polls is a bug worth reporting, not waiting for.
const MAX_POLLS: u32 = 600;
const USER: &str = "admin";
const PASS: &str = "admin";

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Wait for Enter before each step.
    pub step: bool,
    /// Virtual milliseconds per real millisecond.
    pub speed: f64,
    /// ANSI colours and in-place progress bars.
    pub color: bool,
}

impl DemoOptions {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty (no-color.org).
    pub fn color_auto() -> bool {
        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    }
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            step: false,
            speed: 4.0,
            color: false,
        }
    }
}

/// Runs the whole demo, writing the narration to stdout.
pub fn run(opts: DemoOptions) -> anyhow::Result<()> {
    if !(opts.speed.is_finite() && opts.speed > 0.0 && opts.speed <= 1000.0) {
        bail!("--speed must be in (0, 1000], not {}", opts.speed);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let config = SimConfig {
        clock: ClockMode::Manual,
        seed: 0,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..SimConfig::default()
    };
    let handle = rt.block_on(Sim::start_with(config))?;
    // The demo is a client like any other: the shared WS-Management client for the WMI calls,
    // the typed control client for the clock (any host's listener serves the default world).
    let mut clients = BTreeMap::new();
    for (host, addr) in handle.addrs() {
        let client = WsmanClient::new(
            format!("http://{addr}/wsman"),
            Credentials::new(USER, PASS),
            ClientOptions {
                auth: AuthMethod::Basic,
                ..ClientOptions::default()
            },
        )?;
        clients.insert(host.clone(), (*addr, client));
    }
    let primary = clients
        .get(PRIMARY)
        .map(|(addr, _)| *addr)
        .ok_or_else(|| anyhow!("the simulator has no host {PRIMARY}"))?;
    let control = Control::new(
        control::http_client(false)?,
        format!("http://{primary}"),
        None,
    );
    let mut demo = Demo {
        out: Out::new(opts.color),
        rt: rt.handle().clone(),
        clients,
        control,
        step_pause: opts.step,
        real_tick: Duration::from_secs_f64(TICK_MS as f64 / 1000.0 / opts.speed),
        speed: opts.speed,
        vm_id: String::new(),
        seen: BTreeMap::new(),
        step_no: 0,
    };
    let result = demo.play();
    demo.out.end_bar();
    let _ = demo.out.flush();
    rt.block_on(handle.shutdown());
    result
}

// ---------------------------------------------------------------------------------------------
// Output: colour on a terminal, plain text otherwise.

#[derive(Clone, Copy)]
enum Style {
    Title,
    Heading,
    Tag,
    Call,
    Good,
    Bad,
    Change,
    Final,
    Dim,
    Bar,
}

impl Style {
    fn sgr(self) -> &'static str {
        match self {
            Style::Title => "1;36",
            Style::Heading => "1;34",
            Style::Tag => "2",
            Style::Call => "1",
            Style::Good => "32",
            Style::Bad => "1;31",
            Style::Change => "33",
            Style::Final => "1;32",
            Style::Dim => "2",
            Style::Bar => "32",
        }
    }
}

struct Out {
    color: bool,
    /// A progress bar is drawn on the current line (terminal mode only).
    bar_open: bool,
    w: std::io::Stdout,
}

impl Out {
    fn new(color: bool) -> Out {
        Out {
            color,
            bar_open: false,
            w: std::io::stdout(),
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("\x1b[{}m{text}\x1b[0m", style.sgr())
        } else {
            text.to_string()
        }
    }

    /// Finishes a bar drawn in place, so the next line starts clean.
    fn end_bar(&mut self) {
        if self.bar_open {
            let _ = writeln!(self.w);
            self.bar_open = false;
        }
    }

    fn line(&mut self, text: &str) {
        if self.bar_open {
            // Replace the bar with the line; the next poll draws the bar again below it.
            let _ = write!(self.w, "\r\x1b[2K");
            self.bar_open = false;
        }
        let _ = writeln!(self.w, "{text}");
        let _ = self.w.flush();
    }

    /// A tagged line: `  tag     text`.
    fn tagged(&mut self, tag: &str, text: &str) {
        let t = self.paint(Style::Tag, &format!("{tag:<7}"));
        self.line(&format!("  {t} {text}"));
    }

    /// Draws a progress bar: in place on a terminal, one line per call otherwise.
    fn bar(&mut self, text: &str, done: bool) {
        if self.color {
            let _ = write!(self.w, "\r\x1b[2K{text}");
            self.bar_open = true;
            if done {
                self.end_bar();
            }
            let _ = self.w.flush();
        } else {
            self.line(text);
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

// ---------------------------------------------------------------------------------------------
// Names with numbers: what the narration shows for every WMI value.

/// `13 Failback in progress (WaitingForFailback)`.
pub fn state_text(n: u16) -> String {
    match ReplicationState::from_number(n.into()) {
        Ok(s) => match s.alias() {
            Some(a) => format!("{n} {} ({a})", s.label()),
            None => format!("{n} {}", s.label()),
        },
        Err(_) => format!("{n} (unknown)"),
    }
}

fn mode_text(n: u16) -> String {
    ReplicationMode::from_number(n.into())
        .map_or_else(|_| format!("{n}"), |m| format!("{n} {}", m.label()))
}

fn health_text(n: u16) -> String {
    ReplicationHealth::from_number(n.into())
        .map_or_else(|_| format!("{n}"), |h| format!("{n} {}", h.label()))
}

fn power_text(n: u16) -> String {
    let word = match n {
        2 => " (running)",
        3 => " (off)",
        _ => "",
    };
    EnabledState::from_number(n.into())
        .map_or_else(|_| format!("{n}"), |e| format!("{n} {}{word}", e.label()))
}

fn return_text(code: u32) -> String {
    ReturnCode::from_number(code)
        .map_or_else(|_| format!("{code}"), |c| format!("{code} {}", c.label()))
}

// ---------------------------------------------------------------------------------------------
// A tiny WS-Management client: HTTP/1.1 over loopback, SOAP 1.2, Basic auth.

/// A method parameter.
enum Param {
    Text(String),
    /// An endpoint reference to a VM (`Msvm_ComputerSystem` by GUID).
    Vm(String),
    /// An embedded CIM-XML instance.
    Instance(String),
}

/// The properties of one instance, by local name (first value of an array).
type Props = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VmView {
    mode: u16,
    state: u16,
    health: u16,
    power: u16,
}

struct Demo {
    out: Out,
    /// The runtime the simulator and the clients run on; the narration itself is synchronous.
    rt: tokio::runtime::Handle,
    /// Each host's address and its WS-Management client.
    clients: BTreeMap<String, (SocketAddr, WsmanClient)>,
    control: Control,
    step_pause: bool,
    real_tick: Duration,
    speed: f64,
    vm_id: String,
    /// The last view of the VM on each host.
    seen: BTreeMap<String, VmView>,
    step_no: usize,
}

/// The text of a property: a scalar's text, an array's first value; nil is absent.
fn text_of(v: &PropValue) -> Option<String> {
    match v {
        PropValue::Array(items) => items.iter().find_map(text_of),
        other => other.as_text().map(str::to_string),
    }
}

fn props_of(i: &Instance) -> Props {
    i.props
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), text_of(v)?)))
        .collect()
}

fn num<T: std::str::FromStr>(p: &Props, name: &str) -> anyhow::Result<T> {
    p.get(name)
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("the answer has no numeric {name}"))
}

fn service_selectors(host: &str) -> [(&'static str, &str); 4] {
    [
        ("CreationClassName", "Msvm_ReplicationService"),
        ("Name", "replicasvc"),
        ("SystemCreationClassName", "Msvm_ComputerSystem"),
        ("SystemName", host),
    ]
}

impl Demo {
    fn client(&self, host: &str) -> anyhow::Result<&(SocketAddr, WsmanClient)> {
        self.clients
            .get(host)
            .ok_or_else(|| anyhow!("the simulator has no host {host}"))
    }

    fn addr(&self, host: &str) -> anyhow::Result<SocketAddr> {
        Ok(self.client(host)?.0)
    }

    /// Runs one client call to its end (a SOAP fault is an error naming the host).
    fn wait<T>(
        &self,
        host: &str,
        call: impl Future<Output = replica_client::wsman::Result<T>>,
    ) -> anyhow::Result<T> {
        self.rt
            .block_on(call)
            .map_err(|e| anyhow!("{host} answered: {e}"))
    }

    fn identify(&mut self, host: &str) -> anyhow::Result<(String, String)> {
        let c = &self.client(host)?.1;
        let id = self.wait(host, c.identify())?;
        Ok((
            id.product_vendor.unwrap_or_default(),
            id.product_version.unwrap_or_default(),
        ))
    }

    fn get(
        &mut self,
        host: &str,
        class: &str,
        selectors: &[(&str, &str)],
    ) -> anyhow::Result<Props> {
        let c = &self.client(host)?.1;
        let selectors = SelectorSet::from(selectors.to_vec());
        let i = self.wait(host, c.get(&class_uri(class), &selectors))?;
        Ok(props_of(&i))
    }

    /// A WQL enumeration.
    fn query(&mut self, host: &str, wql: &str) -> anyhow::Result<Vec<Props>> {
        let c = &self.client(host)?.1;
        let found = self.wait(host, c.query(wql))?;
        Ok(found.iter().map(props_of).collect())
    }

    /// Invokes a method; returns ReturnValue and the job's InstanceID, if a job was started.
    fn invoke(
        &mut self,
        host: &str,
        class: &str,
        selectors: &[(&str, &str)],
        method: &str,
        params: &[(&str, Param)],
    ) -> anyhow::Result<(u32, Option<String>)> {
        let uri = class_uri(class);
        let params: Vec<(&str, request::Param)> = params
            .iter()
            .map(|(name, p)| {
                let p = match p {
                    // Sent escaped rather than in CDATA, as winrm.exe does.
                    Param::Text(t) | Param::Instance(t) => request::Param::Text(t.clone()),
                    Param::Vm(id) => request::Param::Epr(Epr::new(
                        class_uri("Msvm_ComputerSystem"),
                        [
                            ("CreationClassName", "Msvm_ComputerSystem"),
                            ("Name", id.as_str()),
                        ],
                    )),
                };
                (*name, p)
            })
            .collect();
        let c = &self.client(host)?.1;
        let selectors = SelectorSet::from(selectors.to_vec());
        let out = self.wait(host, c.invoke(&uri, method, &selectors, &params))?;
        Ok((out.return_value, out.job_instance_id().map(str::to_string)))
    }

    /// Moves the world's virtual time forward through the control API.
    fn advance_clock(&mut self, ms: u64) -> anyhow::Result<()> {
        self.rt
            .block_on(self.control.advance(ms))
            .map_err(|e| anyhow!("advancing the clock failed: {e}"))?;
        Ok(())
    }

    fn read_vm(&mut self, host: &str) -> anyhow::Result<VmView> {
        let id = self.vm_id.clone();
        let p = self.get(
            host,
            "Msvm_ComputerSystem",
            &[("CreationClassName", "Msvm_ComputerSystem"), ("Name", &id)],
        )?;
        Ok(VmView {
            mode: num(&p, "ReplicationMode")?,
            state: num(&p, "ReplicationState")?,
            health: num(&p, "ReplicationHealth")?,
            power: num(&p, "EnabledState")?,
        })
    }

    /// Reads the VM on both hosts and narrates whatever changed since the last read.
    fn observe(&mut self) -> anyhow::Result<()> {
        for host in [PRIMARY, REPLICA] {
            let now = self.read_vm(host)?;
            let before = self.seen.insert(host.to_string(), now);
            let Some(before) = before else { continue };
            let mut changes = Vec::new();
            if before.mode != now.mode {
                changes.push((
                    "mode",
                    "ReplicationMode",
                    mode_text(before.mode),
                    mode_text(now.mode),
                ));
            }
            if before.state != now.state {
                changes.push((
                    "state",
                    "ReplicationState",
                    state_text(before.state),
                    state_text(now.state),
                ));
            }
            if before.health != now.health {
                changes.push((
                    "health",
                    "ReplicationHealth",
                    health_text(before.health),
                    health_text(now.health),
                ));
            }
            if before.power != now.power {
                changes.push((
                    "power",
                    "EnabledState",
                    power_text(before.power),
                    power_text(now.power),
                ));
            }
            for (tag, prop, from, to) in changes {
                let style = if now.state == ReplicationState::FailbackComplete.number()
                    && prop == "ReplicationState"
                {
                    Style::Final
                } else {
                    Style::Change
                };
                let text = format!(
                    "{host:<10}  {VM}  {prop}  {from} -> {}",
                    self.out.paint(style, &to)
                );
                self.out.tagged(tag, &text);
            }
        }
        Ok(())
    }

    fn bar_text(&self, job_type: u16, state: u16, percent: u8) -> String {
        const WIDTH: usize = 24;
        let filled = usize::from(percent.min(100)) * WIDTH / 100;
        let (full, empty) = if self.out.color {
            ("█", "░")
        } else {
            ("#", ".")
        };
        let bar = format!("{}{}", full.repeat(filled), empty.repeat(WIDTH - filled));
        let kind = JobType::from_number(job_type.into()).map_or_else(
            |_| format!("{job_type}"),
            |t| format!("{job_type} {}", t.label()),
        );
        let st = JobState::from_number(state.into())
            .map_or_else(|_| format!("{state}"), |s| format!("{state} {}", s.label()));
        let tag = self.out.paint(Style::Tag, &format!("{:<7}", "job"));
        format!(
            "  {tag} [{}] {percent:>3}%  JobState {st}  (JobType {kind})",
            self.out.paint(Style::Bar, &bar)
        )
    }

    /// Polls a job to its end, drawing its progress and narrating state changes on the way.
    fn follow_job(&mut self, host: &str, id: &str) -> anyhow::Result<()> {
        let mut last_bucket = None;
        for _ in 0..MAX_POLLS {
            std::thread::sleep(self.real_tick);
            self.advance_clock(TICK_MS)?;
            let j = self.get(host, "Msvm_ConcreteJob", &[("InstanceID", id)])?;
            let state: u16 = num(&j, "JobState")?;
            let percent: u8 = num(&j, "PercentComplete")?;
            let job_type: u16 = num(&j, "JobType")?;
            let done = JobState::from_number(state.into()).is_ok_and(JobState::is_terminal);
            // Plain text: a line per quarter, so logs stay short; a terminal redraws each poll.
            let bucket = if done { 4 } else { percent / 25 };
            if self.out.color || (last_bucket != Some(bucket) && (bucket > 0 || done)) {
                let text = self.bar_text(job_type, state, percent);
                self.out.bar(&text, done);
            }
            last_bucket = Some(bucket);
            self.observe()?;
            if done {
                let code: u32 = num(&j, "ErrorCode").unwrap_or(0);
                if state != JobState::Completed.number() || code != 0 {
                    let what = j.get("ErrorDescription").cloned().unwrap_or_default();
                    bail!(
                        "job {id} on {host} ended in JobState {state} with ErrorCode {code}: {what}"
                    );
                }
                return Ok(());
            }
        }
        bail!("job {id} on {host} did not end after {MAX_POLLS} polls")
    }

    /// One narrated WMI call: what is called, its ReturnValue, its job, what changed.
    fn call(
        &mut self,
        host: &str,
        class: &str,
        method: &str,
        params: Vec<(&str, Param)>,
        shown: &str,
    ) -> anyhow::Result<()> {
        let id = self.vm_id.clone();
        let service = service_selectors(host);
        let vm_sel = [
            ("CreationClassName", "Msvm_ComputerSystem"),
            ("Name", id.as_str()),
        ];
        let selectors: &[(&str, &str)] = if class == "Msvm_ReplicationService" {
            &service
        } else {
            &vm_sel
        };
        let head = self
            .out
            .paint(Style::Call, &format!("{class}.{method}({shown})"));
        self.out
            .tagged("call", &format!("{head} on {host}, VM {VM}"));
        let (code, job) = self.invoke(host, class, selectors, method, &params)?;
        let ok = ReturnCode::from_number(code).is_ok_and(|c| !c.is_error());
        let style = if ok { Style::Good } else { Style::Bad };
        let mut text = format!("ReturnValue {}", self.out.paint(style, &return_text(code)));
        if let Some(j) = &job {
            let _ = write!(text, "  Job {}", self.out.paint(Style::Dim, j));
        }
        self.out.tagged("return", &text);
        if !ok {
            bail!(
                "{host} refused {class}.{method}: ReturnValue {}",
                return_text(code)
            );
        }
        self.observe()?;
        if let Some(j) = job {
            self.follow_job(host, &j)?;
        }
        Ok(())
    }

    /// Starts a step: its title, the PowerShell a person would type, and an optional pause.
    fn step(&mut self, total: usize, title: &str, powershell: &str) {
        self.step_no += 1;
        self.out.line("");
        if self.step_pause {
            self.out.line(
                &self
                    .out
                    .paint(Style::Dim, "  (press Enter for the next step)"),
            );
            let mut buf = String::new();
            let _ = std::io::stdin().lock().read_line(&mut buf);
        }
        let head = format!("Step {}/{total}  {title}", self.step_no);
        self.out.line(&self.out.paint(Style::Heading, &head));
        self.out
            .line(&self.out.paint(Style::Dim, &format!("  PS> {powershell}")));
    }

    fn table(&mut self) -> anyhow::Result<()> {
        let header = format!(
            "  {:<10}  {:<7} {:<12} {:<52} {:<10} {}",
            "host", "VM", "mode", "state", "health", "power"
        );
        self.out.line(&self.out.paint(Style::Dim, &header));
        for host in [PRIMARY, REPLICA] {
            let v = self.read_vm(host)?;
            self.seen.insert(host.to_string(), v);
            let row = format!(
                "  {host:<10}  {VM:<7} {:<12} {:<52} {:<10} {}",
                mode_text(v.mode),
                state_text(v.state),
                health_text(v.health),
                power_text(v.power)
            );
            self.out.line(&row);
        }
        Ok(())
    }

    fn play(&mut self) -> anyhow::Result<()> {
        let title = "replica-sim demo: planned failover, commit, reverse, and failback with InitiateFailback";
        self.out.line(&self.out.paint(Style::Title, title));
        self.out.line(&format!(
            "An in-process simulator on loopback; every line below is a real WMI call over WS-Management.\nClock: virtual time moves {TICK_MS} ms per job poll, {}x faster than real time.",
            self.speed
        ));
        self.out.line("");
        for host in [PRIMARY, REPLICA] {
            let (vendor, version) = self.identify(host)?;
            let url = format!("http://{}/wsman", self.addr(host)?);
            self.out.tagged(
                "host",
                &format!("{host:<10}  {url}  Identify: {vendor}, {version}"),
            );
        }
        let found = self.query(
            PRIMARY,
            &format!("SELECT * FROM Msvm_ComputerSystem WHERE ElementName = '{VM}'"),
        )?;
        self.vm_id = found
            .first()
            .and_then(|p| p.get("Name").cloned())
            .ok_or_else(|| anyhow!("{PRIMARY} has no VM named {VM}"))?;
        self.out.tagged(
            "vm",
            &format!(
                "{VM} is Msvm_ComputerSystem.Name={} on both hosts",
                self.vm_id
            ),
        );
        self.out.line("");
        self.table()?;

        const STEPS: usize = 8;
        let rsd = |connection_point: &str| {
            cimxml::write_instance(
                "Msvm_ReplicationSettingData",
                &[(
                    "RecoveryConnectionPoint",
                    "string",
                    CimValue::Scalar(connection_point.to_string()),
                )],
            )
        };

        self.step(
            STEPS,
            "Prepare the planned failover on the primary",
            "Start-VMFailover -VMName app-01 -Prepare   # on HV-PRIMARY; app-01 is off",
        );
        self.call(
            PRIMARY,
            "Msvm_ComputerSystem",
            "RequestReplicationStateChange",
            vec![("RequestedState", Param::Text("4".into()))],
            "RequestedState=4",
        )?;

        self.step(
            STEPS,
            "Fail over to the replica",
            "Start-VMFailover -VMName app-01   # on HV-REPLICA",
        );
        self.call(
            REPLICA,
            "Msvm_ReplicationService",
            "InitiateFailover",
            vec![("ComputerSystem", Param::Vm(self.vm_id.clone()))],
            "ComputerSystem=app-01",
        )?;

        self.step(
            STEPS,
            "Commit the failover",
            "Complete-VMFailover -VMName app-01   # on HV-REPLICA",
        );
        self.call(
            REPLICA,
            "Msvm_ReplicationService",
            "CommitFailover",
            vec![("ComputerSystem", Param::Vm(self.vm_id.clone()))],
            "ComputerSystem=app-01",
        )?;

        self.step(
            STEPS,
            "Reverse replication: HV-REPLICA becomes the primary, HV-PRIMARY its replica",
            "Set-VMReplication -VMName app-01 -Reverse -ReplicaServerName HV-PRIMARY",
        );
        self.call(
            REPLICA,
            "Msvm_ReplicationService",
            "ReverseReplicationRelationship",
            vec![
                ("ComputerSystem", Param::Vm(self.vm_id.clone())),
                ("ReplicationSettingData", Param::Instance(rsd(PRIMARY))),
            ],
            "ComputerSystem=app-01, ReplicationSettingData.RecoveryConnectionPoint=HV-PRIMARY",
        )?;

        self.step(
            STEPS,
            "Run app-01 at the recovery site, then stop it to go home",
            "Start-VM app-01; ...; Stop-VM app-01   # on HV-REPLICA",
        );
        for (state, shown) in [("2", "RequestedState=2"), ("3", "RequestedState=3")] {
            self.call(
                REPLICA,
                "Msvm_ComputerSystem",
                "RequestStateChange",
                vec![("RequestedState", Param::Text(state.into()))],
                shown,
            )?;
        }

        self.step(
            STEPS,
            "Prepare the way back on the new primary",
            "Start-VMFailover -VMName app-01 -Prepare   # on HV-REPLICA",
        );
        self.call(
            REPLICA,
            "Msvm_ComputerSystem",
            "RequestReplicationStateChange",
            vec![("RequestedState", Param::Text("4".into()))],
            "RequestedState=4",
        )?;

        self.step(
            STEPS,
            "Fail over back to the original host",
            "Start-VMFailover -VMName app-01   # on HV-PRIMARY",
        );
        self.call(
            PRIMARY,
            "Msvm_ReplicationService",
            "InitiateFailover",
            vec![("ComputerSystem", Param::Vm(self.vm_id.clone()))],
            "ComputerSystem=app-01",
        )?;

        self.step(
            STEPS,
            "Fail back: InitiateFailback on the recovered VM (13 WaitingForFailback, then 14 FailbackCompleted)",
            "Invoke-CimMethod Msvm_ReplicationService -MethodName InitiateFailback   # on HV-PRIMARY",
        );
        self.call(
            PRIMARY,
            "Msvm_ReplicationService",
            "InitiateFailback",
            vec![
                ("ComputerSystem", Param::Vm(self.vm_id.clone())),
                ("ReplicationSettingData", Param::Instance(rsd(REPLICA))),
            ],
            "ComputerSystem=app-01, ReplicationSettingData.RecoveryConnectionPoint=HV-REPLICA",
        )?;

        self.out.line("");
        self.table()?;
        let end = self.seen.get(PRIMARY).map(|v| v.state);
        if end != Some(ReplicationState::FailbackComplete.number()) {
            bail!(
                "the demo ended with app-01 on {PRIMARY} in {} instead of 14 Failback complete",
                end.map_or_else(|| "no state".into(), state_text)
            );
        }
        self.out.line("");
        let done = format!(
            "Done: app-01 on {PRIMARY} is {}.",
            state_text(ReplicationState::FailbackComplete.number())
        );
        self.out.line(&self.out.paint(Style::Final, &done));
        Ok(())
    }
}
