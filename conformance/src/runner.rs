//! The scenario runner: plays scenario steps against a target over the wire, checks them with
//! core's own `Expect::check` / `VmExpect::check`, and keeps the model (the oracle) in lockstep
//! so a simulator's clock moves exactly as the model's, and every step knows which table rule
//! the model applied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use replica_core::JobState;
use replica_core::methods::{self, Arg, MethodSig, ParamKind};
use replica_core::ops::WmiClass;
use replica_core::scenario::{CallView, Scenario, Step, VmView, step_call, step_class, step_label};
use replica_core::topology::TopologySpec;
use replica_wsman::xsd::format_dmtf_datetime_ms;
use serde::{Deserialize, Serialize};

use crate::cimxml;
use crate::lab;
use crate::observe::{HostSnapshot, view_diff};
use crate::oracle::{ModelRunner, ModelStep, with_profile};
use crate::record::{Recording, ReplayLog, Sink};
use crate::scenarios::Loaded;
use crate::target::{Flavor, HostConn, Session, Target, TargetKind};
use replica_client::wsman::{Epr, JobPhase, Param, SelectorSet, class_uri, job_phase};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// A VM as seen after a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedVm {
    pub host: String,
    pub vm: String,
    pub view: VmView,
}

/// What the target did in one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepObservation {
    /// The call's answer (`None`: no call, or the call failed on the wire).
    pub call: Option<CallView>,
    /// The call was answered with a WS-Management fault (this text) instead of a ReturnValue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The VMs the step's `expect_vms` look at.
    pub vms: Vec<ObservedVm>,
}

/// How a call ended on the wire.
#[derive(Debug)]
enum CallError {
    /// A SOAP fault: the host refused the request itself (no such instance, bad selectors).
    Fault(String),
    /// Anything else: the runner could not make the call or read its job.
    Other(String),
}

impl From<String> for CallError {
    fn from(s: String) -> CallError {
        CallError::Other(s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// 1-based.
    pub index: usize,
    pub label: String,
    pub status: Status,
    pub failures: Vec<String>,
    pub ms: u64,
    #[serde(default)]
    pub observed: StepObservation,
    /// The model's prediction (rule, answer), when the model could be built.
    #[serde(default)]
    pub model: Option<ModelStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    pub tags: Vec<String>,
    pub status: Status,
    /// Why it was skipped, or why it failed before its steps.
    pub reason: Option<String>,
    pub steps: Vec<StepReport>,
    pub ms: u64,
    /// Replay divergences: requests that differ from the recording.
    pub divergences: Vec<String>,
    pub recording: Option<PathBuf>,
    /// Real hosts: scenario role → the lab VM that played it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binding: BTreeMap<String, String>,
    /// Real hosts: scenario host name → the lab host's computer name (not in reports: a
    /// recording is scrubbed of it).
    #[serde(skip)]
    pub lab_hosts: BTreeMap<String, String>,
}

impl ScenarioReport {
    fn new(name: &str, tags: Vec<String>) -> ScenarioReport {
        ScenarioReport {
            name: name.to_string(),
            tags,
            status: Status::Passed,
            reason: None,
            steps: Vec::new(),
            ms: 0,
            divergences: Vec::new(),
            recording: None,
            binding: BTreeMap::new(),
            lab_hosts: BTreeMap::new(),
        }
    }

    fn skipped(mut self, why: impl Into<String>) -> ScenarioReport {
        self.status = Status::Skipped;
        self.reason = Some(why.into());
        self
    }

    fn failed(mut self, why: impl Into<String>) -> ScenarioReport {
        self.status = Status::Failed;
        self.reason = Some(why.into());
        self
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub step_timeout: Duration,
    pub record: Option<PathBuf>,
    pub vm_prefix: Option<String>,
    /// Scenarios run at once (simulators only; real hosts and replays run one at a time).
    pub jobs: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            step_timeout: Duration::from_secs(120),
            record: None,
            vm_prefix: None,
            jobs: 1,
        }
    }
}

/// The step's context: the last job started, for `job = "$last"`, and the last snapshot of
/// each host (names and recovery points stay resolvable when a fault makes a host's reads
/// fail).
#[derive(Debug, Default, Clone)]
pub struct StepCtx {
    pub last_job: Option<Epr>,
    pub snapshots: BTreeMap<String, HostSnapshot>,
    /// Hosts whose snapshot still shows the present: on a simulator with its clock stopped,
    /// nothing changes between an observation and the next call, so the call need not read
    /// the host again. Any call, fault or pause makes every snapshot stale.
    pub fresh: BTreeSet<String>,
}

impl StepCtx {
    /// Keeps a snapshot taken by the caller (explore observes every host after each step).
    pub fn observed(&mut self, sess: &Session, host: &str, snap: HostSnapshot) {
        if sess.flavor == Flavor::Simulator {
            self.fresh.insert(host.to_string());
        }
        self.snapshots.insert(host.to_string(), snap);
    }
}

/// Whether the signature declares `name` a datetime parameter.
fn is_datetime(sig: Option<&MethodSig>, name: &str) -> bool {
    sig.is_some_and(|s| {
        s.inputs
            .iter()
            .any(|(n, k)| n.eq_ignore_ascii_case(name) && *k == ParamKind::Datetime)
    })
}

/// Encodes decoded arguments as WS-Management parameters, in the signature's order (then any
/// argument the signature does not list, by name).
pub fn encode_params(
    sig: Option<&MethodSig>,
    args: &BTreeMap<String, Arg>,
) -> Vec<(String, Param)> {
    let mut names: Vec<String> = Vec::new();
    if let Some(s) = sig {
        for (n, _) in s.inputs {
            if let Some((k, _)) = args.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)) {
                names.push(k.clone());
            }
        }
    }
    for k in args.keys() {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }
    let mut out = Vec::new();
    for n in names {
        let Some(arg) = args.get(&n) else { continue };
        let p = match arg {
            Arg::Null => continue,
            Arg::Text(t) => Param::Text(t.clone()),
            // A datetime parameter given in milliseconds goes on the wire as DMTF text.
            Arg::Int(i) if is_datetime(sig, &n) => Param::Text(
                u64::try_from(*i).map_or_else(|_| i.to_string(), format_dmtf_datetime_ms),
            ),
            Arg::Int(i) => Param::Text(i.to_string()),
            Arg::Bool(b) => Param::Text(b.to_string()),
            Arg::List(l) => Param::Array(l.iter().map(|s| Param::Text(s.clone())).collect()),
            Arg::Ref { class, keys } => {
                let mut sel = SelectorSet::new();
                if class.eq_ignore_ascii_case("Msvm_ComputerSystem")
                    && !keys
                        .keys()
                        .any(|k| k.eq_ignore_ascii_case("CreationClassName"))
                {
                    sel.push("CreationClassName", "Msvm_ComputerSystem");
                }
                for (k, v) in keys {
                    sel.push(k.clone(), v.clone());
                }
                Param::Epr(Epr::new(class_uri(class), sel))
            }
            Arg::Instance { class, props } => {
                Param::EmbeddedInstance(cimxml::encode_instance(class, props))
            }
        };
        out.push((n, p));
    }
    out
}

/// Reads a job until it ends. On a simulator the clock first moves by what the model needed
/// (`settle_ms`), then in 100 ms ticks.
async fn wait_job(
    sess: &Session,
    conn: &HostConn,
    job: &Epr,
    settle_ms: u64,
) -> Result<(Option<JobState>, Option<u16>), String> {
    if settle_ms > 0 {
        sess.lockstep(settle_ms)
            .await
            .map_err(|e| format!("{e:#}"))?;
    }
    for _ in 0..1_000_000u32 {
        let inst = conn
            .get(&job.resource_uri, &job.selectors)
            .await
            .map_err(|e| format!("reading job {:?}: {e}", job.selector("InstanceID")))?;
        let Some(state) = inst.u16("JobState") else {
            return Err(format!(
                "job {:?} has no numeric JobState: {:?}",
                job.selector("InstanceID"),
                inst.get("JobState")
            ));
        };
        match job_phase(state) {
            Some(JobPhase::Running) => sess.job_tick().await.map_err(|e| format!("{e:#}"))?,
            Some(_) => {
                let js = JobState::from_number(u32::from(state)).ok();
                return Ok((js, inst.u16("ErrorCode")));
            }
            None => return Err(format!("job reports an unknown JobState {state}")),
        }
    }
    Err("the job never ended".into())
}

/// The last line of defence on real hosts: `Err(name)` when a call would name a VM (as its
/// target or in an argument) that exists and is outside the prefix. Binding never picks such a
/// VM; this catches what it cannot foresee (`$test` resolving to another VM's test replica).
fn outside_prefix_guard(
    snap: &HostSnapshot,
    prefix: Option<&str>,
    target_vm: Option<&str>,
    args: &BTreeMap<String, Arg>,
) -> Result<(), String> {
    let prefix = prefix.unwrap_or_default();
    let in_args = args.values().filter_map(|a| match a {
        Arg::Ref { class, keys } if class.eq_ignore_ascii_case("Msvm_ComputerSystem") => {
            keys.get("Name").map(String::as_str)
        }
        _ => None,
    });
    for key in target_vm.into_iter().chain(in_args) {
        if let Some(row) = snap.find(key)
            && !row.name.starts_with(prefix)
        {
            return Err(row.name.clone());
        }
    }
    Ok(())
}

/// Invokes a step's call on the wire.
async fn call_step(
    sess: &Session,
    ctx: &mut StepCtx,
    step: &Step,
    method: &str,
    settle_ms: u64,
) -> Result<CallView, CallError> {
    let host = step.host.as_str();
    let conn = sess.conn(host).ok_or_else(|| {
        format!(
            "the target has no host `{host}` (it has {})",
            sess.host_names()
        )
    })?;
    let class = step_class(step);
    let cached = ctx
        .fresh
        .contains(host)
        .then(|| ctx.snapshots.get(host).cloned())
        .flatten();
    let read = match cached {
        Some(s) => Ok(s),
        None => conn.snapshot().await,
    };
    ctx.fresh.clear();
    let snap = match read {
        Ok(s) => {
            ctx.snapshots.insert(host.to_string(), s.clone());
            s
        }
        // A host whose reads fail (a `host_down` fault, a flaky lab) still gets the call:
        // its answer is what the step is about. Names resolve from the last good snapshot.
        Err(_) => ctx.snapshots.get(host).cloned().unwrap_or_default(),
    };
    let call = step_call(step, method, &snap, None);
    let (target_vm, args) = (call.target_vm, call.args);
    if sess.flavor == Flavor::Real {
        outside_prefix_guard(&snap, sess.vm_prefix.as_deref(), target_vm.as_deref(), &args)
            .map_err(|vm| {
                CallError::Other(format!(
                    "refused to call {method} on {host}: it would touch `{vm}`, outside --vm-prefix `{}`",
                    sess.vm_prefix.as_deref().unwrap_or_default()
                ))
            })?;
    }
    let sig = methods::signature(class, method);
    let method_name = sig.map_or(method, |s| s.name);
    let (resource_uri, selectors) = match class {
        WmiClass::ComputerSystem => (
            class_uri("Msvm_ComputerSystem"),
            SelectorSet::from([
                ("CreationClassName", "Msvm_ComputerSystem".to_string()),
                ("Name", target_vm.clone().unwrap_or_default()),
            ]),
        ),
        WmiClass::ConcreteJob => match step.job.as_deref() {
            Some("$last") => match &ctx.last_job {
                Some(epr) => (epr.resource_uri.clone(), epr.selectors.clone()),
                None => {
                    return Err(CallError::Other(
                        "job = \"$last\" but no job was started yet".into(),
                    ));
                }
            },
            Some(id) => (
                class_uri("Msvm_ConcreteJob"),
                SelectorSet::from([("InstanceID", id)]),
            ),
            None => {
                return Err(CallError::Other(
                    "a Msvm_ConcreteJob call needs `job`".into(),
                ));
            }
        },
        WmiClass::VirtualSystemManagementService => (
            class_uri("Msvm_VirtualSystemManagementService"),
            sess.service_selectors(host, "Msvm_VirtualSystemManagementService")
                .await
                .map_err(|e| format!("finding the management service on {host}: {e}"))?,
        ),
        _ => (
            class_uri("Msvm_ReplicationService"),
            sess.service_selectors(host, "Msvm_ReplicationService")
                .await
                .map_err(|e| format!("finding the replication service on {host}: {e}"))?,
        ),
    };
    let params = encode_params(sig, &args);
    let refs: Vec<(&str, Param)> = params
        .iter()
        .map(|(n, p)| (n.as_str(), p.clone()))
        .collect();
    let out = conn
        .invoke(&resource_uri, method_name, &selectors, &refs)
        .await
        .map_err(|e| {
            let text = format!("{method_name} on {host}: {e}");
            if e.fault().is_some() {
                CallError::Fault(text)
            } else {
                CallError::Other(text)
            }
        })?;
    let mut view = CallView {
        code: out.return_value,
        resulting_system: out.out.get("ResultingSystem").is_some_and(|v| !v.is_null()),
        ..CallView::default()
    };
    if let Some(job) = &out.job {
        ctx.last_job = Some(job.clone());
        if !step.no_wait {
            let (state, code) = wait_job(sess, conn, job, settle_ms).await?;
            view.job_state = state;
            view.error_code = code;
        }
    } else if out.return_value == 4096 {
        return Err(CallError::Other(format!(
            "{method_name} answered 4096 (job started) without a Job reference"
        )));
    }
    Ok(view)
}

/// Plays one step on the target. Returns what was seen and what failed (setup problems and
/// unmet expectations).
pub async fn exec_step(
    sess: &Session,
    ctx: &mut StepCtx,
    step: &Step,
    model: Option<&ModelStep>,
) -> (StepObservation, Vec<String>) {
    let mut obs = StepObservation::default();
    let mut failures = Vec::new();
    if step.fault.is_some() || step.wait_ms.is_some() {
        ctx.fresh.clear();
    }
    if let Some(f) = &step.fault
        && let Err(e) = sess.add_fault(f).await
    {
        failures.push(format!("fault rule not installed: {e:#}"));
    }
    if let Some(ms) = step.wait_ms
        && let Err(e) = sess.pause(ms).await
    {
        failures.push(format!("waiting {ms} ms: {e:#}"));
    }
    if let Some(method) = &step.call {
        let settle = model.map_or(0, |m| m.settle_ms);
        match call_step(sess, ctx, step, method, settle).await {
            Ok(view) => {
                if let Some(e) = &step.expect {
                    failures.extend(e.check(&view));
                }
                obs.call = Some(view);
            }
            Err(CallError::Fault(f)) => {
                failures.push(f.clone());
                obs.fault = Some(f);
            }
            Err(CallError::Other(e)) => failures.push(e),
        }
    }
    if !step.expect_vms.is_empty() {
        let mut snaps: BTreeMap<String, Result<HostSnapshot, String>> = BTreeMap::new();
        for ve in &step.expect_vms {
            if !snaps.contains_key(&ve.host) {
                let s = match sess.conn(&ve.host) {
                    Some(c) => c
                        .snapshot()
                        .await
                        .map_err(|e| format!("observing {}: {e}", ve.host)),
                    None => Err(format!(
                        "the target has no host `{}` (it has {})",
                        ve.host,
                        sess.host_names()
                    )),
                };
                snaps.insert(ve.host.clone(), s);
            }
            match snaps.get(&ve.host) {
                Some(Ok(s)) => {
                    ctx.observed(sess, &ve.host, s.clone());
                    let view = s.view(&ve.vm);
                    failures.extend(ve.check(&view));
                    obs.vms.push(ObservedVm {
                        host: ve.host.clone(),
                        vm: ve.vm.clone(),
                        view,
                    });
                }
                Some(Err(e)) if !failures.contains(e) => failures.push(e.clone()),
                _ => {}
            }
        }
    }
    (obs, failures)
}

/// Every VM name a scenario refers to (not the `$…` tokens), with the hosts it is named on.
fn named_vms(sc: &Scenario) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for s in &sc.steps {
        if let Some(v) = &s.vm
            && !v.starts_with('$')
        {
            out.insert((s.host.clone(), v.clone()));
        }
        for ve in &s.expect_vms {
            out.insert((ve.host.clone(), ve.vm.clone()));
        }
    }
    out
}

/// The VMs of the scenario that exist before it starts (on the model).
fn base_vms(sc: &Scenario, spec: &TopologySpec, seed: u64) -> BTreeSet<String> {
    let Ok(m) = ModelRunner::from_spec(spec, seed, 0) else {
        return BTreeSet::new();
    };
    named_vms(sc)
        .into_iter()
        .filter(|(_, vm)| {
            m.host_names()
                .iter()
                .any(|h| m.world.find_vm(h, vm).is_some())
        })
        .map(|(_, vm)| vm)
        .collect()
}

/// Why a scenario cannot run on real hosts, checked before anything is sent (see
/// [`real_host_plan`]).
pub fn real_host_skip(sc: &Scenario, spec: &TopologySpec, seed: u64) -> Option<String> {
    real_host_plan(sc, spec, seed).err()
}

/// What a scenario needs to run on real hosts: VM names are roles (bound to lab VMs by
/// [`crate::lab::bind`]), so only what no lab can give is refused here: the control API. A
/// scenario that does not end where it started on the model is played with the way back the
/// model finds ([`crate::lab::way_back`], user calls only); `Err` when there is none.
pub fn real_host_plan(sc: &Scenario, spec: &TopologySpec, seed: u64) -> Result<Vec<Step>, String> {
    if sc.sim_only {
        return Err("sim_only: needs the simulator's control API (faults, profiles)".into());
    }
    if let Some(p) = &sc.profile {
        return Err(format!(
            "needs behaviour profile `{p}`, which only a simulator can select"
        ));
    }
    if sc.steps.iter().any(|s| s.fault.is_some()) {
        return Err("adds a fault rule, which needs the simulator's control API".into());
    }
    let start = ModelRunner::from_spec(spec, seed, 0)
        .map_err(|e| format!("the topology does not build on the model: {e}"))?;
    let mut m = start.clone();
    let roles: Vec<String> = base_vms(sc, spec, seed).into_iter().collect();
    let hosts = m.host_names();
    for s in &sc.steps {
        m.step(s);
    }
    let mut left = Vec::new();
    for h in &hosts {
        for v in &roles {
            let d = view_diff(&m.view(h, v), &start.view(h, v), false);
            if !d.is_empty() {
                left.push(format!("{v} on {h} with {}", d.join(", ")));
            }
        }
    }
    if left.is_empty() {
        return Ok(Vec::new());
    }
    crate::lab::way_back(&m, &start, &roles, &hosts).ok_or_else(|| {
        format!(
            "not a round trip, and the model finds no way back in {} user calls: it leaves {}",
            crate::lab::WAY_BACK_MAX_CALLS,
            left.join("; ")
        )
    })
}

fn ms_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Runs one scenario on a target.
pub async fn run_scenario(
    target: &Target,
    loaded: &Loaded,
    opts: &RunOptions,
    progress: &Progress,
) -> ScenarioReport {
    let start = Instant::now();
    let report = ScenarioReport::new(&loaded.name, loaded.tags());
    let sc = match &loaded.scenario {
        Ok(s) => s,
        Err(e) => return report.failed(format!("scenario file: {e}")),
    };
    let topo = match &loaded.topology {
        Ok(t) => with_profile(t.clone(), sc.profile.as_deref()),
        Err(e) => return report.failed(format!("topology: {e}")),
    };
    let seed = target.world_seed;
    let sink = opts.record.as_ref().map(|_| Arc::new(Sink::default()));
    let sess = match &target.kind {
        TargetKind::Replay(dir) => match Recording::load(dir, &sc.name) {
            Ok(Some(rec)) => target.replay_session(Arc::new(ReplayLog::new(rec))),
            Ok(None) => {
                return report.skipped(format!(
                    "no recording of this scenario in {}",
                    dir.display()
                ));
            }
            Err(e) => return report.failed(format!("{e:#}")),
        },
        TargetKind::Live(_) => match target.session(sink.clone(), opts.vm_prefix.clone()).await {
            Ok(s) => s,
            Err(e) => return report.failed(format!("opening a session: {e:#}")),
        },
    };
    let mut report = play(&sess, sc, &topo, seed, opts, progress, report).await;
    report.divergences = sess.close().await;
    if !report.divergences.is_empty() && report.status != Status::Skipped {
        report.status = Status::Failed;
    }
    if let (Some(dir), Some(sink)) = (&opts.record, &sink)
        && report.status != Status::Skipped
    {
        let mut rec = Recording {
            format: crate::record::FORMAT,
            scenario: sc.name.clone(),
            target: target.label.clone(),
            flavor: sess.flavor.into(),
            vm_prefix: sess.vm_prefix.clone(),
            hosts: target.hosts.clone(),
            binding: report.binding.clone(),
            entries: sink.take(),
        };
        if sess.flavor == Flavor::Real {
            // Lab computer names → the scenario's host names.
            let rename = report
                .lab_hosts
                .iter()
                .map(|(h, n)| (n.clone(), h.clone()))
                .collect();
            rec.scrub(&rename);
        }
        match rec.write(dir) {
            Ok(p) => report.recording = Some(p),
            Err(e) => {
                report.status = Status::Failed;
                report.reason = Some(format!("writing the recording: {e:#}"));
            }
        }
    }
    report.ms = ms_since(start);
    report
}

async fn play(
    sess: &Session,
    sc: &Scenario,
    topo: &TopologySpec,
    seed: u64,
    opts: &RunOptions,
    progress: &Progress,
    report: ScenarioReport,
) -> ScenarioReport {
    let mut report = report;
    let real = sess.flavor == Flavor::Real;
    // On real hosts what no lab can give (the control API, a profile) is the reason to skip,
    // before which hosts the scenario names.
    let way_back = if real {
        match real_host_plan(sc, topo, seed) {
            Ok(p) => p,
            Err(why) => return report.skipped(why),
        }
    } else {
        Vec::new()
    };
    // Every host the scenario names must be a host of the target.
    let hosts: BTreeSet<&str> = sc
        .steps
        .iter()
        .flat_map(|s| {
            std::iter::once(s.host.as_str())
                .filter(|h| !h.is_empty())
                .chain(s.expect_vms.iter().map(|v| v.host.as_str()))
        })
        .collect();
    if let Some(h) = hosts.iter().find(|h| sess.conn(h).is_none()) {
        return report.skipped(format!(
            "the scenario uses host {h}; the target has {}",
            sess.host_names()
        ));
    }
    if sess.flavor == Flavor::Simulator
        && let Err(e) = sess.prepare(topo, None, seed).await
    {
        return report.failed(format!("preparing a fresh world: {e:#}"));
    }
    // On real hosts the scenario's VM names are roles: bind them to lab VMs, arrange those
    // that need it, and play the scenario with the lab's names.
    let mut ctx = StepCtx::default();
    let (lab_sc, lab) = if real {
        match bind_lab(sess, sc, topo, seed, opts, &mut ctx).await {
            Ok(x) => x,
            Err(LabSetup::Skip(why)) => return report.skipped(why),
            Err(LabSetup::Fail(why)) => return report.failed(why),
        }
    } else {
        (sc.clone(), None)
    };
    if let Some(l) = &lab {
        report.binding = l.binding.vms.clone();
        report.lab_hosts = l.binding.host_names.clone();
        if !l.done.is_empty() {
            let arranged: Vec<String> = l.done.iter().map(|a| a.describe(false)).collect();
            report.reason = Some(arranged.join("; "));
        }
    }
    let mut model = ModelRunner::from_spec(topo, seed, 0).ok();
    let total = sc.steps.len();
    let mut stop: Option<String> = None;
    for (i, (step, lab_step)) in sc.steps.iter().zip(&lab_sc.steps).enumerate() {
        let label = step_label(lab_step);
        if let Some(why) = &stop {
            report.steps.push(StepReport {
                index: i + 1,
                label,
                status: Status::Skipped,
                failures: vec![why.clone()],
                ms: 0,
                observed: StepObservation::default(),
                model: None,
            });
            continue;
        }
        progress.step(&sc.name, i + 1, total, &label);
        // The model plays the scenario's own names; the target the lab's.
        let predicted = model.as_mut().map(|m| m.step(step));
        let t = Instant::now();
        let (observed, failures) = match tokio::time::timeout(
            opts.step_timeout,
            exec_step(sess, &mut ctx, lab_step, predicted.as_ref()),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => {
                stop = Some(format!("not run: step {} timed out", i + 1));
                (
                    StepObservation::default(),
                    vec![format!(
                        "timed out after {} s (--step-timeout)",
                        opts.step_timeout.as_secs_f64()
                    )],
                )
            }
        };
        if stop.is_none()
            && failures
                .iter()
                .any(|f| f.contains("replay divergence") || f.contains("replay stopped"))
        {
            stop = Some(format!("not run: the replay diverged at step {}", i + 1));
        }
        let status = if failures.is_empty() {
            Status::Passed
        } else {
            Status::Failed
        };
        if status == Status::Failed {
            report.status = Status::Failed;
        }
        report.steps.push(StepReport {
            index: i + 1,
            label,
            status,
            failures,
            ms: ms_since(t),
            observed,
            model: predicted,
        });
    }
    if let Some(mut lab) = lab {
        // The scenario leaves its VMs elsewhere: the way back the model found, as user calls
        // on the lab's names, each checked. A failure stops it (the check below says what
        // was not restored).
        let back = Scenario {
            steps: way_back,
            ..sc.clone()
        };
        let back = lab.binding.apply(&back, &lab.prefix);
        // A refused call stops the way back; whether the lab is back is then decided by the
        // check below, not by the model's path (the lab may have got there its own way, e.g.
        // a reverse that resumed replication where the model waits for StartReplication).
        let mut lost = false;
        for (k, step) in back.steps.iter().enumerate() {
            let t = Instant::now();
            let label = format!("way back: {}", step_label(step));
            let failures = if lost {
                vec!["not run: an earlier call of the way back was refused".to_string()]
            } else {
                match check_call(sess, &mut ctx, step, opts, &label).await {
                    Ok(()) => Vec::new(),
                    Err(e) => {
                        lost = true;
                        vec![e]
                    }
                }
            };
            report.steps.push(StepReport {
                index: total + 1 + k,
                label,
                status: if failures.is_empty() {
                    Status::Passed
                } else {
                    Status::Skipped
                },
                failures,
                ms: ms_since(t),
                observed: StepObservation::default(),
                model: None,
            });
        }
        let total = total + back.steps.len();
        let t = Instant::now();
        // The scenario is a round trip: its VMs are back in the state it started from.
        let mut failures = if stop.is_none() {
            lab.left_as_started(sess).await
        } else {
            Vec::new()
        };
        // Whatever happened, arranged VMs are put back and every VM is checked against how
        // it was found, those outside the prefix included.
        failures.extend(lab.restore(sess, opts).await);
        sess.ledger.release(&lab.binding);
        if !failures.is_empty() {
            report.status = Status::Failed;
        }
        report.steps.push(StepReport {
            index: total + 1,
            label: "round trip: every VM left as found".into(),
            status: if failures.is_empty() {
                Status::Passed
            } else {
                Status::Failed
            },
            failures,
            ms: ms_since(t),
            observed: StepObservation::default(),
            model: None,
        });
    }
    report
}

/// Why a scenario does not start on a lab.
enum LabSetup {
    Skip(String),
    Fail(String),
}

/// A scenario's hold on a lab: how every host was found, the binding, and how the hosts were
/// once arranged (the state the scenario starts from).
struct LabRun {
    found: BTreeMap<String, HostSnapshot>,
    started: BTreeMap<String, HostSnapshot>,
    binding: lab::Binding,
    /// Arrangements made (undone in reverse).
    done: Vec<lab::Arrangement>,
    prefix: String,
}

async fn snapshot_all(sess: &Session) -> Result<BTreeMap<String, HostSnapshot>, String> {
    let mut out = BTreeMap::new();
    for (h, conn) in &sess.hosts {
        let s = conn
            .snapshot()
            .await
            .map_err(|e| format!("observing {h}: {e}"))?;
        out.insert(h.clone(), s);
    }
    Ok(out)
}

/// Makes one arrangement (or its undo) with the calls a user would make; `Err` says why not.
async fn arrange_step(
    sess: &Session,
    ctx: &mut StepCtx,
    a: &lab::Arrangement,
    undo: bool,
    opts: &RunOptions,
) -> Result<(), String> {
    check_call(sess, ctx, &a.step(undo), opts, &a.describe(undo)).await
}

/// Makes a call the runner needs to succeed (arranging, restoring): `Err` says why it did not.
async fn check_call(
    sess: &Session,
    ctx: &mut StepCtx,
    step: &Step,
    opts: &RunOptions,
    what: &str,
) -> Result<(), String> {
    let (obs, failures) = tokio::time::timeout(opts.step_timeout, exec_step(sess, ctx, step, None))
        .await
        .map_err(|_| {
            format!(
                "{what}: timed out after {} s",
                opts.step_timeout.as_secs_f64()
            )
        })?;
    if let Some(f) = failures.first() {
        return Err(format!("{what}: {f}"));
    }
    match obs.call {
        Some(c) if c.code == 0 => Ok(()),
        Some(c) if c.code == 4096 && c.job_state == Some(JobState::Completed) => Ok(()),
        Some(c) => Err(format!(
            "{what}: ReturnValue {}{}",
            c.code,
            c.job_state
                .map(|j| format!(", job ended {j}"))
                .unwrap_or_default()
        )),
        None => Err(format!("{what}: no answer")),
    }
}

async fn bind_lab(
    sess: &Session,
    sc: &Scenario,
    topo: &TopologySpec,
    seed: u64,
    opts: &RunOptions,
    ctx: &mut StepCtx,
) -> Result<(Scenario, Option<LabRun>), LabSetup> {
    let prefix = sess.vm_prefix.clone().unwrap_or_default();
    let found = snapshot_all(sess).await.map_err(LabSetup::Fail)?;
    let model = ModelRunner::from_spec(topo, seed, 0)
        .map_err(|e| LabSetup::Fail(format!("the topology does not build on the model: {e}")))?;
    let model_hosts = model.host_names();
    let hosts: Vec<String> = sess
        .hosts
        .keys()
        .filter(|h| model_hosts.iter().any(|m| m.eq_ignore_ascii_case(h)))
        .cloned()
        .collect();
    let roles = lab::roles(sc, &model, &hosts);
    // A replay binds as the recorded run did (other scenarios of that run moved the ledger).
    let recorded = sess
        .replay
        .as_ref()
        .map(|l| l.recording.binding.clone())
        .filter(|b| !b.is_empty());
    let mut binding = lab::bind(
        &roles,
        &found,
        &prefix,
        &sess.ledger.taken(),
        &sess.ledger.uses(),
        &recorded.unwrap_or_default(),
    )
    .map_err(LabSetup::Skip)?;
    if !sess.ledger.claim(&binding) {
        return Err(LabSetup::Skip(
            "its lab VMs were bound to another scenario meanwhile".into(),
        ));
    }
    for h in &hosts {
        let sel = sess
            .service_selectors(h, "Msvm_ReplicationService")
            .await
            .map_err(|e| LabSetup::Fail(format!("finding the replication service on {h}: {e}")))?;
        if let Some(name) = sel.get("SystemName") {
            binding.host_names.insert(h.clone(), name.to_string());
        }
    }
    let lab_sc = binding.apply(sc, &prefix);
    // A name the scenario needs absent (it is no role) must be absent on the lab too.
    let bound: BTreeSet<String> = binding.vms.values().cloned().collect();
    for name in lab::named_vms(&lab_sc) {
        let test_of_bound = name
            .strip_suffix(" - Test")
            .is_some_and(|b| bound.contains(b));
        if bound.contains(&name) || test_of_bound {
            continue;
        }
        if let Some((h, _)) = found.iter().find(|(_, s)| s.find(&name).is_some()) {
            sess.ledger.release(&binding);
            return Err(LabSetup::Skip(format!(
                "the scenario needs no VM `{name}`, and {h} has one"
            )));
        }
    }
    let mut run = LabRun {
        found,
        started: BTreeMap::new(),
        binding,
        done: Vec::new(),
        prefix,
    };
    let plan = run.binding.arrange.clone();
    for a in &plan {
        if let Err(e) = arrange_step(sess, ctx, a, false, opts).await {
            let mut why = format!("could not arrange the lab: {e}");
            for f in run.restore(sess, opts).await {
                why.push_str("; ");
                why.push_str(&f);
            }
            sess.ledger.release(&run.binding);
            return Err(LabSetup::Skip(why));
        }
        run.done.push(a.clone());
    }
    run.started = match snapshot_all(sess).await {
        Ok(s) => s,
        Err(e) => {
            let mut why = e;
            for f in run.restore(sess, opts).await {
                why.push_str("; ");
                why.push_str(&f);
            }
            sess.ledger.release(&run.binding);
            return Err(LabSetup::Fail(why));
        }
    };
    ctx.fresh.clear();
    Ok((lab_sc, Some(run)))
}

impl LabRun {
    /// Differences between the scenario's start and now, for its bound VMs.
    async fn left_as_started(&self, sess: &Session) -> Vec<String> {
        let mut failures = Vec::new();
        let now = match snapshot_all(sess).await {
            Ok(n) => n,
            Err(e) => return vec![e],
        };
        for (h, was) in &self.started {
            let Some(now) = now.get(h) else { continue };
            for vm in self.binding.vms.values() {
                let d = view_diff(&now.view(vm), &was.view(vm), false);
                if !d.is_empty() {
                    failures.push(format!(
                        "{vm} on {h} is not back in the state the scenario started from: {}",
                        d.join(", ")
                    ));
                }
            }
        }
        failures
    }

    /// Undoes the arrangements in reverse, then checks every VM (bound, other lab VMs, and
    /// those outside the prefix) against how it was found. Each failure says which VM could
    /// not be restored and why.
    async fn restore(&mut self, sess: &Session, opts: &RunOptions) -> Vec<String> {
        let mut failures = Vec::new();
        let mut ctx = StepCtx::default();
        while let Some(a) = self.done.pop() {
            if let Err(e) = arrange_step(sess, &mut ctx, &a, true, opts).await {
                failures.push(format!("NOT RESTORED: {} on {}: {e}", a.vm, a.host));
            }
        }
        let now = match snapshot_all(sess).await {
            Ok(n) => n,
            Err(e) => {
                failures.push(format!("could not check the lab was left as found: {e}"));
                return failures;
            }
        };
        for (h, was) in &self.found {
            let Some(now) = now.get(h) else { continue };
            // A VM the scenario made (a test VM) and did not remove.
            for row in now.vms.iter().filter(|r| was.find(&r.guid).is_none()) {
                failures.push(format!(
                    "LEFT BEHIND: {} on {h} did not exist before the scenario",
                    row.name
                ));
            }
            for row in &was.vms {
                let d = view_diff(&now.view(&row.guid), &was.view(&row.guid), false);
                if !d.is_empty() {
                    let outside = if row.name.starts_with(&self.prefix) {
                        ""
                    } else {
                        " (outside --vm-prefix!)"
                    };
                    failures.push(format!(
                        "NOT LEFT AS FOUND: {} on {h}{outside}: {}",
                        row.name,
                        d.join(", ")
                    ));
                }
            }
        }
        failures
    }
}

/// Runs every scenario, `opts.jobs` at a time on a simulator, in order otherwise. Reports come
/// back in the order of `list`.
pub async fn run_all(
    target: Arc<Target>,
    list: Vec<Loaded>,
    opts: Arc<RunOptions>,
    progress: Arc<Progress>,
) -> Vec<ScenarioReport> {
    let jobs = if target.is_simulator() {
        opts.jobs.max(1)
    } else {
        1
    };
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut set = tokio::task::JoinSet::new();
    for (ix, l) in list.into_iter().enumerate() {
        let (target, opts, progress, sem) =
            (target.clone(), opts.clone(), progress.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            progress.start(&l.name);
            let r = run_scenario(&target, &l, &opts, &progress).await;
            progress.finish(&r);
            (ix, r)
        });
    }
    let mut out: Vec<(usize, ScenarioReport)> = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(x) => out.push(x),
            Err(e) => out.push((
                usize::MAX,
                ScenarioReport::new("(runner task)", Vec::new())
                    .failed(format!("a scenario task ended abnormally: {e}")),
            )),
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// One divergence between two runs of the same step (a recording and the simulator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub scenario: String,
    pub step: usize,
    pub label: String,
    pub differences: Vec<String>,
    /// The table rule the model applied to the step, with its provenance.
    pub rule: Option<String>,
    pub provenance: String,
}

pub fn call_diff(
    a: &Option<CallView>,
    b: &Option<CallView>,
    a_name: &str,
    b_name: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    match (a, b) {
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => out.push(format!(
            "{a_name} {} a call answer, {b_name} {}",
            if a.is_some() { "has" } else { "has no" },
            if b.is_some() { "has one" } else { "has none" }
        )),
        (Some(x), Some(y)) => {
            if x.code != y.code {
                out.push(format!(
                    "ReturnValue: {a_name} {}, {b_name} {}",
                    x.code, y.code
                ));
            }
            if x.job_state != y.job_state {
                let s = |j: Option<JobState>| j.map_or("-".into(), |j| j.to_string());
                out.push(format!(
                    "job end: {a_name} {}, {b_name} {}",
                    s(x.job_state),
                    s(y.job_state)
                ));
            }
            if x.error_code != y.error_code {
                out.push(format!(
                    "job ErrorCode: {a_name} {:?}, {b_name} {:?}",
                    x.error_code, y.error_code
                ));
            }
            if x.resulting_system != y.resulting_system {
                out.push(format!(
                    "ResultingSystem present: {a_name} {}, {b_name} {}",
                    x.resulting_system, y.resulting_system
                ));
            }
        }
    }
    out
}

/// Compares a recording's run with the simulator's run of the same scenarios, step by step.
/// Each divergence names the table rule the model applied and where that rule comes from
/// (`table::rule(id).source`), so an inferred rule is confirmed (no divergence) or refuted.
pub fn difference_report(
    recording: &[ScenarioReport],
    simulator: &[ScenarioReport],
) -> Vec<Divergence> {
    let mut out = Vec::new();
    for rec in recording.iter().filter(|r| r.status != Status::Skipped) {
        let Some(sim) = simulator.iter().find(|s| s.name == rec.name) else {
            continue;
        };
        for rs in &rec.steps {
            let Some(ss) = sim.steps.iter().find(|s| s.index == rs.index) else {
                continue;
            };
            if rs.status == Status::Skipped || ss.status == Status::Skipped {
                continue;
            }
            let mut diffs = call_diff(
                &rs.observed.call,
                &ss.observed.call,
                "recording",
                "simulator",
            );
            // A lab recording names lab VMs: the simulator's VM is the role it played. Its
            // recovery points and failed-over types are lab history, not compared.
            let lab = !rec.binding.is_empty();
            let lab_name = |role: &str| match rec.binding.get(role) {
                Some(v) => v.clone(),
                None => role
                    .strip_suffix(" - Test")
                    .and_then(|r| rec.binding.get(r))
                    .map_or_else(|| role.to_string(), |v| format!("{v} - Test")),
            };
            for rv in &rs.observed.vms {
                if let Some(sv) = ss
                    .observed
                    .vms
                    .iter()
                    .find(|v| v.host == rv.host && lab_name(&v.vm) == rv.vm)
                {
                    for d in view_diff(&rv.view, &sv.view, !lab) {
                        diffs.push(
                            format!("{} on {}: recording {d}", rv.vm, rv.host)
                                .replace("(expected", "(simulator"),
                        );
                    }
                }
            }
            if !diffs.is_empty() {
                let rule = ss.model.as_ref().and_then(|m| m.rule.clone());
                out.push(Divergence {
                    scenario: rec.name.clone(),
                    step: rs.index,
                    label: rs.label.clone(),
                    differences: diffs,
                    provenance: crate::oracle::provenance(rule.as_deref()),
                    rule,
                });
            }
        }
    }
    out
}

use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where the run is, on stderr (one live line on a terminal, plain lines otherwise).
#[derive(Debug)]
pub struct Progress {
    tty: bool,
    quiet: bool,
    total: usize,
    done: AtomicUsize,
    lock: Mutex<()>,
}

impl Progress {
    pub fn new(total: usize, tty: bool) -> Progress {
        Progress {
            tty,
            quiet: false,
            total,
            done: AtomicUsize::new(0),
            lock: Mutex::new(()),
        }
    }

    /// No output at all (library use, tests).
    pub fn quiet() -> Progress {
        Progress {
            quiet: true,
            ..Progress::new(0, false)
        }
    }

    fn write(&self, s: &str) {
        if self.quiet {
            return;
        }
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(s.as_bytes());
        let _ = err.flush();
    }

    pub fn start(&self, name: &str) {
        if self.tty {
            self.write(&format!(
                "\r\x1b[2K[{:>3}/{}] {name}",
                self.done.load(Ordering::Relaxed),
                self.total
            ));
        }
    }

    pub fn step(&self, name: &str, i: usize, n: usize, label: &str) {
        if self.tty {
            let label: String = label.chars().take(60).collect();
            self.write(&format!(
                "\r\x1b[2K[{:>3}/{}] {name}: step {i}/{n} {label}",
                self.done.load(Ordering::Relaxed),
                self.total
            ));
        }
    }

    pub fn finish(&self, r: &ScenarioReport) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let word = match r.status {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Skipped => "SKIP",
        };
        let why = r
            .reason
            .as_deref()
            .map(|w| format!(" — {w}"))
            .unwrap_or_default();
        let line = format!("{word} {} ({} ms){why}", r.name, r.ms);
        if self.tty {
            self.write(&format!("\r\x1b[2K{line}\n[{done:>3}/{}]", self.total));
        } else {
            self.write(&format!("[{done}/{}] {line}\n", self.total));
        }
    }

    /// Clears the live line.
    pub fn end(&self) {
        if self.tty {
            self.write("\r\x1b[2K");
        }
    }

    /// A free-form line (explore).
    pub fn line(&self, s: &str) {
        if self.tty {
            self.write(&format!("\r\x1b[2K{s}"));
        } else {
            self.write(&format!("{s}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::default_topology;

    #[test]
    fn params_follow_the_signature() {
        let sig = methods::signature(WmiClass::ReplicationService, "InitiateFailback");
        let mut args = BTreeMap::new();
        args.insert(
            "RecoveryPointIdentifier".to_string(),
            Arg::Text("Microsoft:X".into()),
        );
        args.insert(
            "ComputerSystem".to_string(),
            Arg::Ref {
                class: "Msvm_ComputerSystem".into(),
                keys: [("Name".to_string(), "G".to_string())]
                    .into_iter()
                    .collect(),
            },
        );
        args.insert(
            "ReplicationSettingData".to_string(),
            Arg::Instance {
                class: "Msvm_ReplicationSettingData".into(),
                props: [(
                    "RecoveryConnectionPoint".to_string(),
                    vec!["HV-PRIMARY".to_string()],
                )]
                .into_iter()
                .collect(),
            },
        );
        args.insert("Extra".to_string(), Arg::Null);
        let p = encode_params(sig, &args);
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "ComputerSystem",
                "ReplicationSettingData",
                "RecoveryPointIdentifier"
            ]
        );
        match &p[0].1 {
            Param::Epr(epr) => {
                assert!(epr.resource_uri.ends_with("/Msvm_ComputerSystem"));
                assert_eq!(
                    epr.selector("CreationClassName"),
                    Some("Msvm_ComputerSystem")
                );
                assert_eq!(epr.selector("Name"), Some("G"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&p[1].1, Param::EmbeddedInstance(x) if x.contains("HV-PRIMARY")));
    }

    fn scenario(text: &str) -> Scenario {
        toml::from_str(text).expect("scenario")
    }

    #[test]
    fn real_hosts_get_round_trips_only() {
        let topo = default_topology().expect("topology");
        let sim_only = scenario("name = \"x\"\nsim_only = true\n");
        assert!(real_host_skip(&sim_only, &topo, 0).is_some_and(|r| r.contains("sim_only")));
        let trip = scenario(
            r#"name = "t"
[[step]]
call = "TestReplicaSystem"
host = "HV-REPLICA"
vm = "web-01"
[[step]]
call = "DestroySystem"
host = "HV-REPLICA"
vm = "$test"
"#,
        );
        assert_eq!(real_host_skip(&trip, &topo, 0), None);
        // A one-way scenario runs with the way back the model finds.
        let one_way = scenario(
            r#"name = "o"
[[step]]
call = "InitiateFailover"
host = "HV-REPLICA"
vm = "web-01"
"#,
        );
        let back = real_host_plan(&one_way, &topo, 0).expect("a way back");
        let calls: Vec<&str> = back.iter().filter_map(|s| s.call.as_deref()).collect();
        assert_eq!(calls, vec!["RevertFailover"]);
        // Enabling replication has none (the model cannot remove a replica VM).
        let enable = scenario(
            r#"name = "e"
[[step]]
call = "CreateReplicationRelationship"
host = "HV-PRIMARY"
vm = "build-01"
args = { ReplicationSettingData = { RecoveryConnectionPoint = "HV-REPLICA" } }
"#,
        );
        let why = real_host_skip(&enable, &topo, 0).expect("no way back");
        assert!(
            why.contains("not a round trip") && why.contains("build-01"),
            "{why}"
        );
    }

    #[test]
    fn differences_name_rule_and_provenance() {
        let step = |code: u32, rule: Option<&str>| StepReport {
            index: 1,
            label: "CommitFailover app-01 on HV-REPLICA".into(),
            status: Status::Passed,
            failures: Vec::new(),
            ms: 1,
            observed: StepObservation {
                call: Some(CallView {
                    code,
                    ..CallView::default()
                }),
                fault: None,
                vms: Vec::new(),
            },
            model: Some(ModelStep {
                rule: rule.map(str::to_string),
                ..ModelStep::default()
            }),
        };
        let rep = |code, rule| ScenarioReport {
            steps: vec![step(code, rule)],
            ..ScenarioReport::new("s", Vec::new())
        };
        assert!(
            difference_report(&[rep(4096, None)], &[rep(4096, Some("commit-failover"))]).is_empty()
        );
        let d = difference_report(&[rep(32775, None)], &[rep(4096, Some("commit-failover"))]);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].differences,
            vec!["ReturnValue: recording 32775, simulator 4096"]
        );
        assert!(
            d[0].provenance.contains("powershell"),
            "{}",
            d[0].provenance
        );
    }
}
