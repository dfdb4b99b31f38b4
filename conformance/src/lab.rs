//! Real labs: scenarios name roles, not machines. A scenario's VM names (`app-01`, `web-01`…)
//! are roles whose needed state is what the scenario's topology gives them on the model
//! ("replicating from HV-PRIMARY to HV-REPLICA, off, at least three recovery points"). On a
//! lab the runner binds each role to a VM under `--vm-prefix` whose observed state fits, or
//! that can be brought to fit with the calls a user would make (start/stop, resume), and plays
//! the scenario with the lab's names. Nothing here talks to the wire: the runner observes,
//! this module decides.

use std::collections::{BTreeMap, BTreeSet};

use replica_core::enums::{EnabledState, ReplicationMode, ReplicationState};
use replica_core::scenario::{Scenario, Step, VmView, toml_like};

use crate::observe::HostSnapshot;
use crate::oracle::ModelRunner;
use replica_core::world::RecoveryPointKind;

/// One call that brings a bound VM into the role's state, and the call that undoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrangement {
    /// The scenario's host name (a `--target` NAME).
    pub host: String,
    /// The lab VM.
    pub vm: String,
    pub what: ArrangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrangeKind {
    /// `Stop-VM -TurnOff`: RequestStateChange(3); undone by RequestStateChange(2).
    TurnOff,
    /// `Start-VM`: RequestStateChange(2); undone by RequestStateChange(3).
    Start,
    /// `Resume-VMReplication`: RequestReplicationStateChange(3); undone by suspending (7).
    Resume,
}

impl Arrangement {
    /// The step that arranges (`undo` false) or restores (`undo` true).
    pub fn step(&self, undo: bool) -> Step {
        let (call, state) = match (self.what, undo) {
            (ArrangeKind::TurnOff, false) | (ArrangeKind::Start, true) => ("RequestStateChange", 3),
            (ArrangeKind::TurnOff, true) | (ArrangeKind::Start, false) => ("RequestStateChange", 2),
            (ArrangeKind::Resume, false) => ("RequestReplicationStateChange", 3),
            (ArrangeKind::Resume, true) => ("RequestReplicationStateChange", 7),
        };
        Step {
            note: self.describe(undo),
            call: Some(call.into()),
            host: self.host.clone(),
            vm: Some(self.vm.clone()),
            args: [("RequestedState".to_string(), toml_like::Value::Int(state))]
                .into_iter()
                .collect(),
            ..Step::default()
        }
    }

    pub fn describe(&self, undo: bool) -> String {
        let what = match (self.what, undo) {
            (ArrangeKind::TurnOff, false) | (ArrangeKind::Start, true) => "turn off",
            (ArrangeKind::TurnOff, true) | (ArrangeKind::Start, false) => "start",
            (ArrangeKind::Resume, false) => "resume replication of",
            (ArrangeKind::Resume, true) => "suspend replication of",
        };
        format!(
            "{} {what} {} on {}",
            if undo { "restore:" } else { "arrange:" },
            self.vm,
            self.host
        )
        .trim_start()
        .to_string()
    }
}

/// Roles bound to lab VMs for one scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// Role (the scenario's VM name) → lab VM name.
    pub vms: BTreeMap<String, String>,
    /// Calls to make before the scenario (undone, in reverse, after it).
    pub arrange: Vec<Arrangement>,
    /// Scenario host name → the lab host's own name (its `Msvm_ReplicationService`
    /// SystemName), for arguments that name hosts (`RecoveryConnectionPoint`).
    pub host_names: BTreeMap<String, String>,
}

/// What a role needs on each scenario host: the model's view of it at the scenario's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    pub needs: BTreeMap<String, VmView>,
    /// Hosts where the role's latest recovery point is (`true`) or is not (`false`) the one a
    /// planned failover leaves: the model's next reverse depends on it, so a lab VM carrying
    /// another history would answer otherwise.
    pub planned_point: BTreeMap<String, bool>,
}

impl Role {
    /// "app-01 (HV-PRIMARY: Primary, Replicating, off; HV-REPLICA: Replica, Replicating, off, ≥3 recovery points)".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .needs
            .iter()
            .map(|(h, v)| format!("{h}: {}", describe_view(v, true)))
            .collect();
        format!("{} ({})", self.name, parts.join("; "))
    }
}

fn power_word(p: Option<EnabledState>) -> String {
    match p {
        Some(EnabledState::Enabled) => "on".into(),
        Some(EnabledState::Disabled) => "off".into(),
        Some(other) => other.ident().to_string(),
        None => "power -".into(),
    }
}

/// A view in a few words, for skip reasons.
pub fn describe_view(v: &VmView, at_least: bool) -> String {
    if !v.exists {
        return "absent".into();
    }
    let mut parts = vec![
        v.mode.map_or("-".into(), |m| m.ident().to_string()),
        v.states[0].map_or("not replicated".into(), |s| s.ident().to_string()),
        power_word(v.power),
    ];
    if v.states[1].is_some() {
        parts.push(format!(
            "extended {}",
            v.states[1].map_or("-".into(), |s| s.ident().to_string())
        ));
    }
    if v.recovery_points > 0 || !at_least {
        parts.push(format!(
            "{}{} recovery points",
            if at_least { "≥" } else { "" },
            v.recovery_points
        ));
    }
    if v.has_test_replica {
        parts.push("has a test replica".into());
    }
    parts.join(", ")
}

/// Every VM name a scenario refers to (not the `$…` tokens).
pub fn named_vms(sc: &Scenario) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in &sc.steps {
        if let Some(v) = &s.vm
            && !v.starts_with('$')
        {
            out.insert(v.clone());
        }
        for ve in &s.expect_vms {
            out.insert(ve.vm.clone());
        }
        for (k, v) in &s.args {
            if let toml_like::Value::Text(t) = v
                && (k == "ComputerSystem" || k == "AffectedSystem")
                && !t.starts_with('$')
            {
                out.insert(t.clone());
            }
        }
    }
    out
}

/// The roles of a scenario: the VMs it names that exist on the model before it starts, with
/// what each needs on every scenario host.
pub fn roles(sc: &Scenario, model: &ModelRunner, hosts: &[String]) -> Vec<Role> {
    let model_hosts = model.host_names();
    named_vms(sc)
        .into_iter()
        .filter(|vm| {
            model_hosts
                .iter()
                .any(|h| model.world.find_vm(h, vm).is_some())
        })
        .map(|vm| {
            let points = points_needed(sc, &vm);
            let planned_point = hosts
                .iter()
                .filter_map(|h| {
                    let host = model.world.resolve_host(h)?;
                    let v = model.world.find_vm(&host, &vm)?;
                    let last = v.recovery_points.last()?;
                    Some((h.clone(), last.kind == RecoveryPointKind::Planned))
                })
                .collect();
            Role {
                planned_point,
                needs: hosts
                    .iter()
                    .map(|h| {
                        let mut v = model.view(h, &vm);
                        v.recovery_points = v.recovery_points.min(points);
                        (h.clone(), v)
                    })
                    .collect(),
                name: vm,
            }
        })
        .collect()
}

/// How many recovery points a role must have for the scenario: one more than the highest
/// `$rp:N` it names, one for `$latest`/`$oldest` or a failover, else none. A lab's replication
/// adds and prunes points on its own clock, so a role asks only for what its steps use.
pub fn points_needed(sc: &Scenario, role: &str) -> usize {
    let mut n = 0;
    for s in sc.steps.iter().filter(|s| s.vm.as_deref() == Some(role)) {
        if matches!(
            s.call.as_deref(),
            Some("InitiateFailover" | "TestReplicaSystem" | "InitiateFailback")
        ) {
            n = n.max(1);
        }
        for v in s.args.values() {
            if let toml_like::Value::Text(t) = v {
                if t == "$latest" || t == "$oldest" {
                    n = n.max(1);
                } else if let Some(k) = t.strip_prefix("$rp:").and_then(|k| k.parse::<usize>().ok())
                {
                    n = n.max(k + 1);
                }
            }
        }
    }
    n
}

/// How a lab VM differs from a role: what can be arranged, and what cannot.
#[derive(Debug, Default)]
struct Fit {
    arrange: Vec<Arrangement>,
    misfits: Vec<String>,
}

fn fit(role: &Role, vm: &str, snaps: &BTreeMap<String, HostSnapshot>) -> Fit {
    let mut f = Fit::default();
    for (h, want) in &role.needs {
        let got = snaps.get(h).map(|s| s.view(vm)).unwrap_or_default();
        if got.exists != want.exists {
            f.misfits.push(format!(
                "{} on {h} (needs {})",
                if got.exists { "present" } else { "absent" },
                if want.exists { "present" } else { "absent" }
            ));
            continue;
        }
        if !got.exists {
            continue;
        }
        if got.mode != want.mode {
            f.misfits.push(format!(
                "{} on {h} (needs {})",
                got.mode.map_or("-".into(), |m| m.ident().to_string()),
                want.mode.map_or("-".into(), |m| m.ident().to_string())
            ));
        }
        if got.states[1] != want.states[1] {
            f.misfits
                .push(format!("extended replication differs on {h}"));
        }
        if got.states[0] != want.states[0] {
            // A suspended primary is resumed as a user would; anything else is not arranged.
            let suspended = got.states[0] == Some(ReplicationState::Suspended)
                && want.states[0] == Some(ReplicationState::Replicating);
            if suspended && want.mode == Some(ReplicationMode::Primary) {
                f.arrange.push(Arrangement {
                    host: h.clone(),
                    vm: vm.to_string(),
                    what: ArrangeKind::Resume,
                });
            } else {
                f.misfits.push(format!(
                    "{} on {h} (needs {})",
                    got.states[0].map_or("not replicated".into(), |s| s.ident().to_string()),
                    want.states[0].map_or("not replicated".into(), |s| s.ident().to_string())
                ));
            }
        }
        if got.power != want.power {
            // Power is arranged on a VM that runs (a primary, or one without replication);
            // a replica's power is not the user's to change.
            let may = matches!(
                want.mode,
                Some(ReplicationMode::Primary | ReplicationMode::None)
            );
            match (may, got.power, want.power) {
                (true, Some(EnabledState::Enabled), Some(EnabledState::Disabled)) => {
                    f.arrange.push(Arrangement {
                        host: h.clone(),
                        vm: vm.to_string(),
                        what: ArrangeKind::TurnOff,
                    });
                }
                (true, Some(EnabledState::Disabled), Some(EnabledState::Enabled)) => {
                    f.arrange.push(Arrangement {
                        host: h.clone(),
                        vm: vm.to_string(),
                        what: ArrangeKind::Start,
                    });
                }
                _ => f.misfits.push(format!(
                    "{} on {h} (needs {})",
                    power_word(got.power),
                    power_word(want.power)
                )),
            }
        }
        if got.recovery_points < want.recovery_points {
            f.misfits.push(format!(
                "{} recovery points on {h} (needs ≥{})",
                got.recovery_points, want.recovery_points
            ));
        }
        if got.has_test_replica {
            f.misfits.push(format!("has a test replica on {h}"));
        }
        if let (Some(want), Some(s)) = (role.planned_point.get(h), snaps.get(h))
            && s.latest_point_planned(vm) != *want
        {
            f.misfits.push(format!(
                "its latest recovery point on {h} {} a planned-failover point (the role's {})",
                if *want { "is not" } else { "is" },
                if *want { "is" } else { "is not" }
            ));
        }
    }
    f
}

/// Lab VM names under `prefix` on any host, test VMs excluded (they belong to a replica).
pub fn lab_vms(snaps: &BTreeMap<String, HostSnapshot>, prefix: &str) -> BTreeSet<String> {
    snaps
        .values()
        .flat_map(|s| s.vms.iter())
        .filter(|v| v.name.starts_with(prefix) && v.mode != Some(ReplicationMode::TestReplica))
        .map(|v| v.name.clone())
        .collect()
}

/// Which lab VMs are bound to a running scenario, and how often each was bound in this run:
/// a VM is bound to one scenario at a time, and work is spread over the VMs that fit (a lab
/// VM carries its history, e.g. the type of its last failover, into the next scenario).
#[derive(Debug, Default)]
pub struct Ledger {
    inner: std::sync::Mutex<(BTreeSet<String>, BTreeMap<String, u64>)>,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, (BTreeSet<String>, BTreeMap<String, u64>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// VMs bound to a running scenario.
    pub fn taken(&self) -> BTreeSet<String> {
        self.lock().0.clone()
    }
    pub fn uses(&self) -> BTreeMap<String, u64> {
        self.lock().1.clone()
    }
    /// Claims the binding's VMs; `false` (nothing claimed) when one was taken meanwhile.
    pub fn claim(&self, b: &Binding) -> bool {
        let mut g = self.lock();
        if b.vms.values().any(|v| g.0.contains(v)) {
            return false;
        }
        for v in b.vms.values() {
            g.0.insert(v.clone());
            *g.1.entry(v.clone()).or_default() += 1;
        }
        true
    }
    pub fn release(&self, b: &Binding) {
        let mut g = self.lock();
        for v in b.vms.values() {
            g.0.remove(v);
        }
    }
}

/// Binds every role to a lab VM under `prefix`, not in `taken` (bound to another scenario).
/// The VM bound least often in this run (`uses`) wins, then the one needing fewer
/// arrangements, then name order: a lab VM carries history the model does not have, not all of
/// it visible (the kind of its latest recovery point is, and is part of the fit), so work is
/// spread over the VMs that fit. `Err` is the skip reason: the role, and what every
/// candidate looked like.
pub fn bind(
    roles: &[Role],
    snaps: &BTreeMap<String, HostSnapshot>,
    prefix: &str,
    taken: &BTreeSet<String>,
    uses: &BTreeMap<String, u64>,
    forced: &BTreeMap<String, String>,
) -> Result<Binding, String> {
    let mut b = Binding::default();
    let candidates = lab_vms(snaps, prefix);
    for role in roles {
        let mut best: Option<(String, Fit)> = None;
        let mut why: Vec<String> = Vec::new();
        // A replay binds each role to the VM the recorded run used.
        let only = forced.get(&role.name);
        for c in candidates.iter().filter(|c| only.is_none_or(|o| o == *c)) {
            if taken.contains(c) || b.vms.values().any(|v| v == c) {
                why.push(format!("{c}: bound to another role or scenario"));
                continue;
            }
            let f = fit(role, c, snaps);
            if !f.misfits.is_empty() {
                let mut all = f.misfits.clone();
                all.extend(
                    f.arrange
                        .iter()
                        .map(|a| format!("would need: {}", a.describe(false))),
                );
                why.push(format!("{c}: {}", all.join(", ")));
                continue;
            }
            let rank = |vm: &str, f: &Fit| (uses.get(vm).copied().unwrap_or(0), f.arrange.len());
            if best
                .as_ref()
                .is_none_or(|(bv, bf)| rank(c, &f) < rank(bv, bf))
            {
                best = Some((c.clone(), f));
            }
        }
        let Some((vm, f)) = best else {
            let seen = if why.is_empty() {
                format!("there is no VM under --vm-prefix `{prefix}`")
            } else {
                format!(
                    "candidates under --vm-prefix `{prefix}`: {}",
                    why.join("; ")
                )
            };
            return Err(format!(
                "role {} could not be bound: {seen}",
                role.describe()
            ));
        };
        b.arrange.extend(f.arrange);
        b.vms.insert(role.name.clone(), vm);
    }
    Ok(b)
}

impl Binding {
    /// The lab name for a name the scenario uses: a bound role, a role's test VM
    /// (`ROLE - Test`), `$…` tokens unchanged, any other name (one the scenario expects not
    /// to exist) moved under the prefix so that it can never name a VM outside it.
    pub fn lab_name(&self, name: &str, prefix: &str) -> String {
        if name.starts_with('$') {
            return name.to_string();
        }
        if let Some(v) = self.vms.get(name) {
            return v.clone();
        }
        if let Some(role) = name.strip_suffix(" - Test")
            && let Some(v) = self.vms.get(role)
        {
            return format!("{v} - Test");
        }
        if name.starts_with(prefix) {
            name.to_string()
        } else {
            format!("{prefix}{name}")
        }
    }

    fn host_arg(&self, v: &mut toml_like::Value) {
        match v {
            toml_like::Value::Text(t) => {
                if let Some(n) = self
                    .host_names
                    .iter()
                    .find(|(h, _)| h.eq_ignore_ascii_case(t))
                    .map(|(_, n)| n.clone())
                {
                    *t = n;
                }
            }
            toml_like::Value::List(l) => {
                for t in l.iter_mut() {
                    let mut x = toml_like::Value::Text(std::mem::take(t));
                    self.host_arg(&mut x);
                    if let toml_like::Value::Text(s) = x {
                        *t = s;
                    }
                }
            }
            toml_like::Value::Table(m) => m.values_mut().for_each(|x| self.host_arg(x)),
            toml_like::Value::Bool(_) | toml_like::Value::Int(_) => {}
        }
    }

    /// The scenario as it is played on the lab: role names replaced by lab names, host names
    /// in arguments by the lab hosts' own names, recovery-point counts and failed-over point
    /// types (lab history) left unchecked.
    pub fn apply(&self, sc: &Scenario, prefix: &str) -> Scenario {
        let mut out = sc.clone();
        // `$test` means the host's test VM; on a lab that may be another VM's (outside the
        // prefix, even): it becomes the test VM of the role that last made one.
        let mut tested: Option<String> = None;
        for s in &mut out.steps {
            if s.call.as_deref() == Some("TestReplicaSystem") {
                tested = s.vm.clone();
            }
            if s.vm.as_deref() == Some("$test")
                && let Some(role) = &tested
            {
                s.vm = Some(format!("{role} - Test"));
            }
            if let Some(v) = &mut s.vm {
                *v = self.lab_name(v, prefix);
            }
            for (k, v) in s.args.iter_mut() {
                if let toml_like::Value::Text(t) = v
                    && (k == "ComputerSystem" || k == "AffectedSystem")
                {
                    *t = self.lab_name(t, prefix);
                } else {
                    self.host_arg(v);
                }
            }
            for ve in &mut s.expect_vms {
                // A lab replicates on its own clock, adding and pruning recovery points while
                // the scenario runs: their count is no expectation there.
                ve.recovery_points = None;
                // Which kind of point a failover lands on follows the same history.
                ve.failed_over_type = None;
                ve.vm = self.lab_name(&ve.vm, prefix);
            }
        }
        out
    }
}

/// What the way back must restore of a VM: existence, mode, relationship states, power, and
/// whether it has a test replica (recovery points only grow and are not the user's to undo).
type Key = Vec<(bool, Option<u16>, [Option<u16>; 2], Option<u16>, bool)>;

fn key(m: &ModelRunner, roles: &[String], hosts: &[String]) -> Key {
    let mut out = Vec::new();
    for h in hosts {
        for r in roles {
            let v = m.view(h, r);
            out.push((
                v.exists,
                v.mode.map(|x| x.number()),
                [
                    v.states[0].map(|x| x.number()),
                    v.states[1].map(|x| x.number()),
                ],
                v.power.map(|x| x.number()),
                v.has_test_replica,
            ));
        }
    }
    out
}

/// The calls a user makes to put a replicated VM back (PowerShell: Start-VM, Stop-VM,
/// Start/Complete/Stop-VMFailover, Set-VMReplication -Reverse, Suspend/Resume-VMReplication,
/// Start-VMInitialReplication, Remove-VMReplication, Remove-VM), on every role and host. `InitiateFailback` is left out:
/// its behaviour is inferred, not documented, and a restore must not rest on a guess.
pub fn way_back_calls(roles: &[String], hosts: &[String]) -> Vec<Step> {
    let mut out = Vec::new();
    for r in roles {
        for h in hosts {
            let call = |m: &str, state: Option<i64>, vm: &str| Step {
                call: Some(m.to_string()),
                host: h.clone(),
                vm: Some(vm.to_string()),
                args: state
                    .map(|s| ("RequestedState".to_string(), toml_like::Value::Int(s)))
                    .into_iter()
                    .collect(),
                ..Step::default()
            };
            out.push(call("RequestStateChange", Some(3), r));
            out.push(call("RequestStateChange", Some(2), r));
            out.push(call("RequestReplicationStateChange", Some(3), r));
            out.push(call("RequestReplicationStateChange", Some(4), r));
            out.push(call("RequestReplicationStateChange", Some(7), r));
            out.push(call("InitiateFailover", None, r));
            out.push(call("CommitFailover", None, r));
            out.push(call("RevertFailover", None, r));
            out.push(call("ReverseReplicationRelationship", None, r));
            out.push(call("RemoveReplicationRelationship", None, r));
            let mut initial = call("StartReplication", None, r);
            initial
                .args
                .insert("InitialReplicationType".into(), toml_like::Value::Int(1));
            out.push(initial);
            out.push(call("DestroySystem", None, "$test"));
            out.push(call("DestroySystem", None, r));
        }
    }
    out
}

/// Most calls a way back may take, and most model states searched for it.
pub const WAY_BACK_MAX_CALLS: usize = 8;
const WAY_BACK_MAX_STATES: usize = 4_000;

/// The shortest sequence of user calls that brings `roles` from `now` back to `goal` on the
/// model (breadth first, every call must succeed there), or `None` within the bounds.
pub fn way_back(
    now: &ModelRunner,
    goal: &ModelRunner,
    roles: &[String],
    hosts: &[String],
) -> Option<Vec<Step>> {
    let want = key(goal, roles, hosts);
    if key(now, roles, hosts) == want {
        return Some(Vec::new());
    }
    // Calls on the roles that moved only: the others are where they should be.
    let moved: Vec<String> = roles
        .iter()
        .filter(|r| {
            let one = std::slice::from_ref(*r);
            key(now, one, hosts) != key(goal, one, hosts)
        })
        .cloned()
        .collect();
    let calls = way_back_calls(&moved, hosts);
    let mut seen: BTreeSet<Key> = BTreeSet::new();
    seen.insert(key(now, roles, hosts));
    let mut queue = std::collections::VecDeque::from([(now.clone(), Vec::<Step>::new())]);
    while let Some((m, path)) = queue.pop_front() {
        if path.len() >= WAY_BACK_MAX_CALLS {
            continue;
        }
        for c in &calls {
            let mut next = m.clone();
            let r = next.step(c);
            let ok = r.expect_fault.is_none()
                && r.call.as_ref().is_some_and(|v| {
                    v.code == 0
                        || (v.code == 4096
                            && v.job_state == Some(replica_core::JobState::Completed))
                });
            if !ok {
                continue;
            }
            let k = key(&next, roles, hosts);
            let mut p = path.clone();
            p.push(c.clone());
            if k == want {
                return Some(p);
            }
            if seen.len() < WAY_BACK_MAX_STATES && seen.insert(k) {
                queue.push_back((next, p));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::VmRow;
    use replica_core::enums::ReplicationHealth;

    fn row(guid: &str, name: &str, mode: ReplicationMode, on: bool) -> VmRow {
        VmRow {
            guid: guid.into(),
            name: name.into(),
            mode: Some(mode),
            power: Some(if on {
                EnabledState::Enabled
            } else {
                EnabledState::Disabled
            }),
            health: Some(ReplicationHealth::Ok),
            failed_over_type: None,
        }
    }

    /// A lab of two hosts: each VM is (name, primary on?, primary state, replica points).
    fn lab(
        vms: &[(&str, bool, Option<ReplicationState>, usize)],
    ) -> BTreeMap<String, HostSnapshot> {
        let (mut p, mut r) = (HostSnapshot::default(), HostSnapshot::default());
        for (i, (name, on, state, points)) in vms.iter().enumerate() {
            let guid = format!("00000000-0000-0000-0000-{i:012}");
            let mode = if state.is_some() {
                ReplicationMode::Primary
            } else {
                ReplicationMode::None
            };
            p.vms.push(row(&guid, name, mode, *on));
            if let Some(s) = state {
                p.rels.insert((guid.clone(), 0), Some(*s));
                r.vms
                    .push(row(&guid, name, ReplicationMode::Replica, false));
                r.rels
                    .insert((guid.clone(), 0), Some(ReplicationState::Replicating));
                r.points.insert(
                    guid.clone(),
                    (0..*points).map(|k| format!("rp{k}")).collect(),
                );
            }
        }
        [("HV-PRIMARY".to_string(), p), ("HV-REPLICA".to_string(), r)]
            .into_iter()
            .collect()
    }

    fn scenario_roles(text: &str) -> (Scenario, Vec<Role>) {
        let sc: Scenario = toml::from_str(text).expect("scenario");
        let topo = crate::oracle::default_topology().expect("topology");
        let m = ModelRunner::from_spec(&topo, 0, 0).expect("model");
        let hosts = vec!["HV-PRIMARY".to_string(), "HV-REPLICA".to_string()];
        let r = roles(&sc, &m, &hosts);
        (sc, r)
    }

    const SC: &str = r#"name = "s"
[[step]]
call = "RequestReplicationStateChange"
host = "HV-PRIMARY"
vm = "app-01"
args = { RequestedState = 7 }
expect_vms = [{ host = "HV-REPLICA", vm = "app-01", recovery_points = 3 },
              { host = "HV-REPLICA", vm = "gone", exists = false }]
[[step]]
call = "InitiateFailback"
host = "HV-REPLICA"
vm = "app-01"
args = { ReplicationSettingData = { RecoveryConnectionPoint = "HV-PRIMARY" } }
"#;

    /// One check for every binding case: the lab, how often each VM was bound already, the
    /// VM a replay forces, and what must come out (the bound VM and arrangements, or words of
    /// the skip reason).
    fn check(
        vms: &[(&str, bool, Option<ReplicationState>, usize)],
        uses: &[(&str, u64)],
        forced: Option<&str>,
        want: Result<(&str, &[ArrangeKind]), &[&str]>,
    ) {
        let (_, roles) = scenario_roles(SC);
        let uses: BTreeMap<String, u64> = uses.iter().map(|(v, n)| (v.to_string(), *n)).collect();
        let forced: BTreeMap<String, String> = forced
            .map(|v| ("app-01".to_string(), v.to_string()))
            .into_iter()
            .collect();
        let got = bind(&roles, &lab(vms), "lab-", &BTreeSet::new(), &uses, &forced);
        match (got, want) {
            (Ok(b), Ok((vm, kinds))) => {
                assert_eq!(b.vms.get("app-01").map(String::as_str), Some(vm), "{b:?}");
                let k: Vec<ArrangeKind> = b.arrange.iter().map(|a| a.what).collect();
                assert_eq!(k, kinds, "{b:?}");
            }
            (Err(e), Err(words)) => {
                for w in words {
                    assert!(e.contains(w), "`{w}` not in: {e}");
                }
            }
            (got, want) => panic!("got {got:?}, wanted {want:?}"),
        }
    }

    #[test]
    fn roles_bind_to_fitting_lab_vms() {
        use ReplicationState::*;
        let on = ("lab-01", true, Some(Replicating), 3);
        let off = ("lab-02", false, Some(Replicating), 5);
        // The one that fits as found wins over one that needs arranging...
        check(&[on, off], &[], None, Ok(("lab-02", &[])));
        // ...unless it was bound more often in this run.
        check(
            &[on, off],
            &[("lab-02", 1)],
            None,
            Ok(("lab-01", &[ArrangeKind::TurnOff])),
        );
        // A replay binds as recorded.
        check(
            &[on, off],
            &[],
            Some("lab-01"),
            Ok(("lab-01", &[ArrangeKind::TurnOff])),
        );
        check(
            &[("lab-01", false, Some(Suspended), 3)],
            &[],
            None,
            Ok(("lab-01", &[ArrangeKind::Resume])),
        );
        // VMs outside the prefix are never candidates, even when they fit.
        check(
            &[("prod-01", false, Some(Replicating), 3)],
            &[],
            None,
            Err(&["app-01", "no VM under --vm-prefix `lab-`"]),
        );
        // A VM whose latest point a planned failover left would make a reverse answer
        // otherwise than the model's fresh VM.
        let mut snaps = lab(&[off]);
        if let Some(r) = snaps.get_mut("HV-REPLICA") {
            let guid = r.vms[0].guid.clone();
            r.latest_point_type.insert(
                guid,
                RecoveryPointKind::Planned.virtual_system_type().to_string(),
            );
        }
        let (_, roles) = scenario_roles(SC);
        let e = bind(
            &roles,
            &snaps,
            "lab-",
            &BTreeSet::new(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .expect_err("history does not fit");
        assert!(e.contains("is a planned-failover point"), "{e}");
        // Why each candidate did not fit.
        check(
            &[
                ("lab-01", false, Some(Replicating), 0),
                ("lab-02", false, None, 0),
            ],
            &[],
            None,
            Err(&[
                "lab-01: 0 recovery points on HV-REPLICA (needs ≥1)",
                "lab-02: None on HV-PRIMARY (needs Primary)",
                "HV-PRIMARY: Primary, Replicating, off",
            ]),
        );
    }

    #[test]
    fn the_scenario_is_played_with_lab_names() {
        let (sc, roles) = scenario_roles(SC);
        let mut b = bind(
            &roles,
            &lab(&[("lab-07", false, Some(ReplicationState::Replicating), 5)]),
            "lab-",
            &BTreeSet::new(),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
        .expect("binds");
        b.host_names.insert("HV-PRIMARY".into(), "LAB-HV1".into());
        let lab = b.apply(&sc, "lab-");
        assert_eq!(lab.steps[0].vm.as_deref(), Some("lab-07"));
        assert_eq!(lab.steps[0].expect_vms[0].vm, "lab-07");
        assert_eq!(
            lab.steps[0].expect_vms[0].recovery_points, None,
            "a lab replicates on its own clock"
        );
        assert_eq!(lab.steps[0].expect_vms[1].vm, "lab-gone");
        let rsd = format!("{:?}", lab.steps[1].args);
        assert!(
            rsd.contains("LAB-HV1") && !rsd.contains("HV-PRIMARY"),
            "{rsd}"
        );
        assert_eq!(b.lab_name("app-01 - Test", "lab-"), "lab-07 - Test");
        assert_eq!(b.lab_name("$test", "lab-"), "$test");
        let test: Scenario = toml::from_str(
            "name = \"t\"\n[[step]]\ncall = \"TestReplicaSystem\"\nhost = \"HV-REPLICA\"\nvm = \"app-01\"\n[[step]]\ncall = \"DestroySystem\"\nhost = \"HV-REPLICA\"\nvm = \"$test\"\n",
        )
        .expect("scenario");
        let lab = b.apply(&test, "lab-");
        assert_eq!(lab.steps[1].vm.as_deref(), Some("lab-07 - Test"));
    }
}
