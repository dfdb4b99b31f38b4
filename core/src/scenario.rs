//! Scenarios as data (`fixtures/scenarios/*.toml`): the same file is played on the model (here,
//! in-process, by [`run_on_model`]) and over the wire by the conformance runner. Expectations
//! are checked by one function for both, so a scenario means the same thing everywhere.

use crate::enums::*;
use crate::faults::FaultSpec;
use crate::methods::{Arg, Call};
use crate::ops::WmiClass;
use crate::time::Millis;
use crate::topology::PowerSpec;
use crate::world::{RelIx, World};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Where the expected behaviour comes from (a docs/facts.md section, a DOC page, a profile).
    #[serde(default)]
    pub source: String,
    /// Topology for a simulator: a name under `fixtures/topologies/` (default: `default`).
    #[serde(default = "default_topology")]
    pub topology: String,
    /// Behaviour profile override for a simulator.
    #[serde(default)]
    pub profile: Option<String>,
    /// Needs the simulator's control API (faults, profiles): skipped on real hosts.
    #[serde(default)]
    pub sim_only: bool,
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

fn default_topology() -> String {
    "default".into()
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A comment shown in reports.
    #[serde(default)]
    pub note: String,
    /// Method to invoke.
    #[serde(default)]
    pub call: Option<String>,
    /// Class of the method: `Msvm_ReplicationService` (default for service methods),
    /// `Msvm_ComputerSystem`, `Msvm_ConcreteJob`, `Msvm_VirtualSystemManagementService`.
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub host: String,
    /// VM ElementName (or GUID). `$test` names the test VM of the step's VM.
    #[serde(default)]
    pub vm: Option<String>,
    /// For job methods: `$last` is the last job started.
    #[serde(default)]
    pub job: Option<String>,
    /// Arguments by WMI parameter name. Tables are embedded instances. Strings `$latest`,
    /// `$oldest` and `$rp:N` name recovery points of the VM on the step's host.
    #[serde(default)]
    pub args: BTreeMap<String, toml_like::Value>,
    /// Do not wait for the job to end.
    #[serde(default)]
    pub no_wait: bool,
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Checks of VM state after the step.
    #[serde(default)]
    pub expect_vms: Vec<VmExpect>,
    /// Add a fault rule (simulator only).
    #[serde(default)]
    pub fault: Option<FaultSpec>,
    /// Let this much (virtual or real) time pass.
    #[serde(default)]
    pub wait_ms: Option<Millis>,
}

/// A dependency-free stand-in for TOML/JSON values, so scenario files parse with any serde
/// format without core knowing it.
pub mod toml_like {
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Value {
        Bool(bool),
        Int(i64),
        Text(String),
        List(Vec<String>),
        Table(BTreeMap<String, Value>),
    }

    impl Value {
        pub fn as_text(&self) -> Option<String> {
            match self {
                Value::Bool(b) => Some(b.to_string()),
                Value::Int(i) => Some(i.to_string()),
                Value::Text(s) => Some(s.clone()),
                _ => None,
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// ReturnValue.
    #[serde(default)]
    pub code: Option<u32>,
    /// Terminal JobState of the job started (when code is 4096).
    #[serde(default)]
    pub job_state: Option<JobState>,
    #[serde(default)]
    pub error_code: Option<u16>,
    #[serde(default)]
    pub resulting_system: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmExpect {
    pub host: String,
    pub vm: String,
    #[serde(default)]
    pub exists: Option<bool>,
    #[serde(default)]
    pub mode: Option<ReplicationMode>,
    /// State of relationship `rel` (default 0).
    #[serde(default)]
    pub state: Option<ReplicationState>,
    #[serde(default)]
    pub rel: Option<u32>,
    #[serde(default)]
    pub power: Option<PowerSpec>,
    #[serde(default)]
    pub health: Option<ReplicationHealth>,
    #[serde(default)]
    pub recovery_points: Option<usize>,
    #[serde(default)]
    pub failed_over_type: Option<ReplicationType>,
    #[serde(default)]
    pub has_test_replica: Option<bool>,
}

/// What an observer (model or wire) saw of a VM.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VmView {
    pub exists: bool,
    pub mode: Option<ReplicationMode>,
    pub states: [Option<ReplicationState>; 2],
    pub power: Option<EnabledState>,
    pub health: Option<ReplicationHealth>,
    pub recovery_points: usize,
    pub failed_over_type: Option<ReplicationType>,
    pub has_test_replica: bool,
}

/// What an observer saw of a call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CallView {
    pub code: u32,
    pub job_state: Option<JobState>,
    pub error_code: Option<u16>,
    pub resulting_system: bool,
}

impl Expect {
    pub fn check(&self, seen: &CallView) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(c) = self.code
            && c != seen.code
        {
            out.push(format!("ReturnValue {} (expected {c})", seen.code));
        }
        if let Some(s) = self.job_state
            && Some(s) != seen.job_state
        {
            out.push(format!(
                "job ended {} (expected {s})",
                seen.job_state.map_or("-".into(), |s| s.to_string())
            ));
        }
        if let Some(e) = self.error_code
            && Some(e) != seen.error_code
        {
            out.push(format!(
                "job ErrorCode {:?} (expected {e})",
                seen.error_code
            ));
        }
        if let Some(r) = self.resulting_system
            && r != seen.resulting_system
        {
            out.push(format!(
                "ResultingSystem present: {} (expected {r})",
                seen.resulting_system
            ));
        }
        out
    }
}

impl VmExpect {
    pub fn check(&self, seen: &VmView) -> Vec<String> {
        let mut out = Vec::new();
        let who = format!("{} on {}", self.vm, self.host);
        let want_exists = self.exists.unwrap_or(true);
        if want_exists != seen.exists {
            out.push(format!(
                "{who}: exists {} (expected {want_exists})",
                seen.exists
            ));
            return out;
        }
        if !seen.exists {
            return out;
        }
        let rel = RelIx::from_index(self.rel.unwrap_or(0)).unwrap_or(RelIx::Primary);
        let state = seen.states[rel.index()];
        let mut diff = |what: &str, got: String, want: String| {
            if got != want {
                out.push(format!("{who}: {what} {got} (expected {want})"));
            }
        };
        if let Some(m) = self.mode {
            diff(
                "mode",
                seen.mode.map_or("-".into(), |x| x.to_string()),
                m.to_string(),
            );
        }
        if let Some(s) = self.state {
            diff(
                &format!("state of relationship {}", rel.index()),
                state.map_or("none".into(), |x| x.to_string()),
                s.to_string(),
            );
        }
        if let Some(p) = self.power {
            let want = match p {
                PowerSpec::On => EnabledState::Enabled,
                PowerSpec::Off => EnabledState::Disabled,
            };
            diff(
                "power",
                seen.power.map_or("-".into(), |x| x.to_string()),
                want.to_string(),
            );
        }
        if let Some(h) = self.health {
            diff(
                "health",
                seen.health.map_or("-".into(), |x| x.to_string()),
                h.to_string(),
            );
        }
        if let Some(n) = self.recovery_points {
            diff(
                "recovery points",
                seen.recovery_points.to_string(),
                n.to_string(),
            );
        }
        if let Some(t) = self.failed_over_type {
            diff(
                "FailedOverReplicationType",
                seen.failed_over_type.map_or("-".into(), |x| x.to_string()),
                t.to_string(),
            );
        }
        if let Some(t) = self.has_test_replica {
            diff(
                "test replica present",
                seen.has_test_replica.to_string(),
                t.to_string(),
            );
        }
        out
    }
}

/// The class named by a step (default: the class that owns the method).
pub fn step_class(step: &Step) -> WmiClass {
    match step.class.as_deref().map(|c| c.trim_start_matches("Msvm_")) {
        Some("ComputerSystem") => WmiClass::ComputerSystem,
        Some("ConcreteJob") => WmiClass::ConcreteJob,
        Some("VirtualSystemManagementService") => WmiClass::VirtualSystemManagementService,
        Some(_) => WmiClass::ReplicationService,
        None => match step.call.as_deref() {
            Some(
                "RequestReplicationStateChange"
                | "RequestReplicationStateChangeEx"
                | "RequestStateChange",
            ) => WmiClass::ComputerSystem,
            Some("DestroySystem") => WmiClass::VirtualSystemManagementService,
            _ => WmiClass::ReplicationService,
        },
    }
}

/// The model's view of a VM.
pub fn model_view(world: &World, host: &str, vm: &str) -> VmView {
    let Some(v) = world.resolve_host(host).and_then(|h| world.find_vm(&h, vm)) else {
        return VmView::default();
    };
    VmView {
        exists: true,
        mode: Some(v.mode),
        states: [
            v.rel(RelIx::Primary).map(|r| r.state),
            v.rel(RelIx::Extended).map(|r| r.state),
        ],
        power: Some(v.power),
        health: Some(v.replication_health()),
        recovery_points: v.recovery_points.len(),
        failed_over_type: v
            .rel(RelIx::Primary)
            .map(|r| r.failed_over_replication_type),
        has_test_replica: v.test_replica.is_some(),
    }
}

/// Resolves `$latest`, `$oldest`, `$rp:N` against a list of recovery point ids (oldest first).
pub fn resolve_rp_token(token: &str, points: &[String]) -> Option<String> {
    match token {
        "$latest" => points.last().cloned(),
        "$oldest" => points.first().cloned(),
        t => match t.strip_prefix("$rp:") {
            Some(n) => n.parse::<usize>().ok().and_then(|i| points.get(i).cloned()),
            None => Some(t.to_string()),
        },
    }
}

/// Converts a step's arguments into decoded call arguments; `vm_ref` turns a VM name into its
/// GUID and `points` lists the step VM's recovery points.
pub fn step_args(
    step: &Step,
    vm_guid: impl Fn(&str) -> Option<String>,
    points: &[String],
) -> BTreeMap<String, Arg> {
    let mut out = BTreeMap::new();
    for (k, v) in &step.args {
        let arg = match v {
            toml_like::Value::Table(t) => Arg::Instance {
                class: match k.as_str() {
                    "ReplicationRelationship" => "Msvm_ReplicationRelationship".into(),
                    "AuthorizationEntry" => "Msvm_ReplicationAuthorizationSettingData".into(),
                    "SettingData" => "Msvm_ReplicationServiceSettingData".into(),
                    _ => "Msvm_ReplicationSettingData".into(),
                },
                props: t
                    .iter()
                    .map(|(pk, pv)| {
                        let vals = match pv {
                            toml_like::Value::List(l) => l.clone(),
                            other => other.as_text().into_iter().collect(),
                        };
                        (pk.clone(), vals)
                    })
                    .collect(),
            },
            toml_like::Value::List(l) => Arg::List(l.clone()),
            toml_like::Value::Text(s)
                if k == "SnapshotSettingData" || k == "RecoveryPointIdentifier" =>
            {
                match resolve_rp_token(s, points) {
                    Some(id) if k == "SnapshotSettingData" => Arg::Ref {
                        class: "Msvm_VirtualSystemSettingData".into(),
                        keys: [("InstanceID".to_string(), id)].into_iter().collect(),
                    },
                    Some(id) => Arg::Text(id),
                    None => Arg::Text(s.clone()),
                }
            }
            toml_like::Value::Text(s) if k == "ComputerSystem" || k == "AffectedSystem" => {
                Arg::Ref {
                    class: "Msvm_ComputerSystem".into(),
                    keys: [("Name".to_string(), vm_guid(s).unwrap_or_else(|| s.clone()))]
                        .into_iter()
                        .collect(),
                }
            }
            // Numbers stay numbers: a datetime parameter (StartTime) is written in a scenario
            // as milliseconds since the epoch, the form the model takes.
            toml_like::Value::Int(n) => Arg::Int(*n),
            other => other.as_text().map_or(Arg::Null, Arg::Text),
        };
        out.insert(k.clone(), arg);
    }
    out
}

/// What a step needs to know about the host it calls: names to GUIDs, recovery points, the
/// test VM. The model answers from its world; the wire runner from what it read.
pub trait HostView {
    fn vm_guid(&self, name: &str) -> Option<String>;
    /// Recovery point ids of a VM, oldest first.
    fn recovery_points(&self, guid: &str) -> Vec<String>;
    fn test_vm(&self) -> Option<String>;
}

/// The model's view of one host.
pub struct ModelHost<'a> {
    pub world: &'a World,
    pub host: &'a str,
}

impl HostView for ModelHost<'_> {
    fn vm_guid(&self, name: &str) -> Option<String> {
        self.world.find_vm(self.host, name).map(|v| v.id.clone())
    }
    fn recovery_points(&self, guid: &str) -> Vec<String> {
        self.world
            .vm(self.host, guid)
            .map(|v| v.recovery_points.iter().map(|p| p.id.clone()).collect())
            .unwrap_or_default()
    }
    fn test_vm(&self) -> Option<String> {
        self.world
            .host(self.host)
            .and_then(|h| h.vms.values().find(|v| v.test_of.is_some()))
            .map(|v| v.id.clone())
    }
}

/// The call a step makes, with names resolved and the VM reference filled in. The one
/// translation of a step, used by the model runner, the conformance oracle and the wire
/// runner, so a step means the same call everywhere.
pub fn step_call(step: &Step, method: &str, view: &dyn HostView, last_job: Option<&str>) -> Call {
    let class = step_class(step);
    let mut target_vm = step
        .vm
        .as_deref()
        .filter(|n| *n != "$test")
        .and_then(|n| view.vm_guid(n));
    let points = target_vm
        .as_deref()
        .map(|g| view.recovery_points(g))
        .unwrap_or_default();
    let mut args = step_args(step, |n| view.vm_guid(n), &points);
    if let Some(name) = &step.vm {
        let id = if name == "$test" {
            view.test_vm()
        } else {
            target_vm.clone()
        };
        let id = id.unwrap_or_else(|| name.clone());
        target_vm = Some(id.clone());
        let key = if class == WmiClass::VirtualSystemManagementService {
            "AffectedSystem"
        } else {
            "ComputerSystem"
        };
        if class != WmiClass::ComputerSystem {
            args.entry(key.to_string()).or_insert(Arg::Ref {
                class: "Msvm_ComputerSystem".into(),
                keys: [("Name".to_string(), id)].into_iter().collect(),
            });
        }
    }
    let target_job = match step.job.as_deref() {
        Some("$last") => last_job.map(str::to_string),
        other => other.map(str::to_string),
    };
    Call {
        class: Some(class),
        method: method.to_string(),
        target_vm,
        target_job,
        args,
    }
}

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub index: usize,
    pub label: String,
    pub failures: Vec<String>,
}

/// Plays a scenario on the model. `world` is built from the scenario's topology by the caller.
pub fn run_on_model(sc: &Scenario, mut world: World) -> Vec<StepResult> {
    let mut results = Vec::new();
    let mut last_job: Option<(String, String)> = None;
    for (index, step) in sc.steps.iter().enumerate() {
        let mut failures = Vec::new();
        let label = step_label(step);
        if let Some(f) = &step.fault
            && let Err(e) = world.add_fault(f.clone())
        {
            failures.push(format!("fault rejected: {e}"));
        }
        if let Some(ms) = step.wait_ms {
            let t = world.now + ms;
            world.advance(t);
        }
        if let Some(method) = &step.call {
            let host = world
                .resolve_host(&step.host)
                .unwrap_or_else(|| step.host.clone());
            let call = step_call(
                step,
                method,
                &ModelHost {
                    world: &world,
                    host: &host,
                },
                last_job.as_ref().map(|(_, j)| j.as_str()),
            );
            let now = world.now + 1;
            let seen = match call.to_operation() {
                Err((code, _)) => CallView {
                    code: code.number(),
                    ..CallView::default()
                },
                Ok(op) => {
                    let ans = world.apply(&host, &op, now);
                    let mut view = CallView {
                        code: ans.code,
                        resulting_system: ans.resulting_system.is_some(),
                        ..CallView::default()
                    };
                    if let Some(job) = &ans.job {
                        last_job = Some((host.clone(), job.clone()));
                        if !step.no_wait {
                            world.settle();
                            if let Some(j) = world.job(&host, job) {
                                view.job_state = Some(j.state);
                                view.error_code = Some(j.error_code);
                            }
                        }
                    }
                    view
                }
            };
            if let Some(e) = &step.expect {
                failures.extend(e.check(&seen));
            }
        }
        for ve in &step.expect_vms {
            failures.extend(ve.check(&model_view(&world, &ve.host, &ve.vm)));
        }
        results.push(StepResult {
            index,
            label,
            failures,
        });
    }
    results
}

pub fn step_label(step: &Step) -> String {
    let mut s = match (&step.call, &step.vm) {
        (Some(c), Some(v)) => format!("{c} {v} on {}", step.host),
        (Some(c), None) => format!("{c} on {}", step.host),
        _ if step.fault.is_some() => "add fault".into(),
        _ if step.wait_ms.is_some() => format!("wait {} ms", step.wait_ms.unwrap_or(0)),
        _ => "check".into(),
    };
    if !step.note.is_empty() {
        s = format!("{s} ({})", step.note);
    }
    s
}
