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
    /// `(scenario host, role)` → how many more recovery points the lab VM has than the role
    /// needs; expectations on counts are shifted by it.
    pub extra_points: BTreeMap<(String, String), i64>,
    /// Scenario host name → the lab host's own name (its `Msvm_ReplicationService`
    /// SystemName), for arguments that name hosts (`RecoveryConnectionPoint`).
    pub host_names: BTreeMap<String, String>,
}

/// What a role needs on each scenario host: the model's view of it at the scenario's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    pub needs: BTreeMap<String, VmView>,
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
        .map(|vm| Role {
            needs: hosts
                .iter()
                .map(|h| (h.clone(), model.view(h, &vm)))
                .collect(),
            name: vm,
        })
        .collect()
}

/// How a lab VM differs from a role: what can be arranged, and what cannot.
#[derive(Debug, Default)]
struct Fit {
    arrange: Vec<Arrangement>,
    misfits: Vec<String>,
    extra_points: BTreeMap<String, i64>,
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
            if got.states[0] == Some(ReplicationState::Suspended)
                && want.states[0] == Some(ReplicationState::Replicating)
                && want.mode == Some(ReplicationMode::Primary)
            {
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
        } else if got.recovery_points > want.recovery_points {
            let extra = i64::try_from(got.recovery_points - want.recovery_points).unwrap_or(0);
            f.extra_points.insert(h.clone(), extra);
        }
        if got.has_test_replica {
            f.misfits.push(format!("has a test replica on {h}"));
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

/// Binds every role to a lab VM under `prefix`, not in `taken` (bound to another scenario).
/// VMs that fit as found win over VMs that need arranging, then fewer arrangements, then
/// name order. `Err` is the skip reason: the role, and what every candidate looked like.
pub fn bind(
    roles: &[Role],
    snaps: &BTreeMap<String, HostSnapshot>,
    prefix: &str,
    taken: &BTreeSet<String>,
    allow_arrange: bool,
) -> Result<Binding, String> {
    let mut b = Binding::default();
    let candidates = lab_vms(snaps, prefix);
    for role in roles {
        let mut best: Option<(String, Fit)> = None;
        let mut why: Vec<String> = Vec::new();
        for c in &candidates {
            if taken.contains(c) || b.vms.values().any(|v| v == c) {
                why.push(format!("{c}: bound to another role or scenario"));
                continue;
            }
            let f = fit(role, c, snaps);
            if !f.misfits.is_empty() || (!allow_arrange && !f.arrange.is_empty()) {
                let mut all = f.misfits.clone();
                all.extend(
                    f.arrange
                        .iter()
                        .map(|a| format!("would need: {}", a.describe(false))),
                );
                why.push(format!("{c}: {}", all.join(", ")));
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|(_, bf)| f.arrange.len() < bf.arrange.len())
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
        for (h, n) in f.extra_points {
            b.extra_points.insert((h, role.name.clone()), n);
        }
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
    /// in arguments by the lab hosts' own names, recovery-point counts shifted by what the lab
    /// VM had more than the role needed.
    pub fn apply(&self, sc: &Scenario, prefix: &str) -> Scenario {
        let mut out = sc.clone();
        for s in &mut out.steps {
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
                if let (Some(n), Some(extra)) = (
                    ve.recovery_points,
                    self.extra_points.get(&(ve.host.clone(), ve.vm.clone())),
                ) {
                    let shifted = i64::try_from(n).unwrap_or(0) + extra;
                    ve.recovery_points = Some(usize::try_from(shifted).unwrap_or(0));
                }
                ve.vm = self.lab_name(&ve.vm, prefix);
            }
        }
        out
    }
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

    /// One check for every binding case: the lab, whether arranging is allowed, and what
    /// must come out (the bound VM and arrangements, or words of the skip reason).
    fn check(
        vms: &[(&str, bool, Option<ReplicationState>, usize)],
        prefix: &str,
        allow: bool,
        want: Result<(&str, &[ArrangeKind]), &[&str]>,
    ) {
        let (_, roles) = scenario_roles(SC);
        let got = bind(&roles, &lab(vms), prefix, &BTreeSet::new(), allow);
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
        let off_ok = ("lab-02", false, Some(Replicating), 5);
        // The one that fits as found wins over one that needs arranging.
        check(
            &[("lab-01", true, Some(Replicating), 3), off_ok],
            "lab-",
            true,
            Ok(("lab-02", &[])),
        );
        // A running one is turned off when arranging is allowed.
        check(
            &[("lab-01", true, Some(Replicating), 3)],
            "lab-",
            true,
            Ok(("lab-01", &[ArrangeKind::TurnOff])),
        );
        check(
            &[("lab-01", false, Some(Suspended), 3)],
            "lab-",
            true,
            Ok(("lab-01", &[ArrangeKind::Resume])),
        );
        // VMs outside the prefix are never candidates, even when they fit.
        check(
            &[("prod-01", false, Some(Replicating), 3)],
            "lab-",
            true,
            Err(&["app-01", "no VM under --vm-prefix `lab-`"]),
        );
        // Why each candidate did not fit.
        check(
            &[
                ("lab-01", false, Some(Replicating), 1),
                ("lab-02", false, None, 0),
            ],
            "lab-",
            true,
            Err(&[
                "lab-01: 1 recovery points on HV-REPLICA (needs ≥3)",
                "lab-02: None on HV-PRIMARY (needs Primary)",
                "HV-PRIMARY: Primary, Replicating, off",
            ]),
        );
        check(
            &[("lab-01", true, Some(Replicating), 3)],
            "lab-",
            false,
            Err(&["would need: arrange: turn off lab-01 on HV-PRIMARY"]),
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
            true,
        )
        .expect("binds");
        b.host_names.insert("HV-PRIMARY".into(), "LAB-HV1".into());
        let lab = b.apply(&sc, "lab-");
        assert_eq!(lab.steps[0].vm.as_deref(), Some("lab-07"));
        assert_eq!(lab.steps[0].expect_vms[0].vm, "lab-07");
        assert_eq!(
            lab.steps[0].expect_vms[0].recovery_points,
            Some(5),
            "3 + 2 extra"
        );
        assert_eq!(lab.steps[0].expect_vms[1].vm, "lab-gone");
        let rsd = format!("{:?}", lab.steps[1].args);
        assert!(
            rsd.contains("LAB-HV1") && !rsd.contains("HV-PRIMARY"),
            "{rsd}"
        );
        assert_eq!(b.lab_name("app-01 - Test", "lab-"), "lab-07 - Test");
        assert_eq!(b.lab_name("$test", "lab-"), "$test");
    }
}
