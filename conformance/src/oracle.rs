//! The oracle: core's [`World`] played step by step beside a target. It answers what the model
//! predicts for a step (ReturnValue, job end, the table rule that decided), and how much time
//! the model let pass, so a simulator's manual clock can move in lockstep.
//!
//! [`ModelRunner::step`] follows `replica_core::scenario::run_on_model` step for step; the one
//! difference is time: `run_on_model` adds 1 ms per call, the runner's worlds do not (a
//! simulator's manual clock stands still between calls), so `tick` is a parameter.

use std::collections::BTreeMap;

use replica_core::World;

use replica_core::ops::WmiClass;
use replica_core::scenario::{
    CallView, ModelHost, Step, VmView, model_view, step_call, step_class,
};
use replica_core::table;
use replica_core::topology::{ProfileSpec, TopologySpec};
use serde::{Deserialize, Serialize};

/// A fixed start time for oracle worlds (2026-01-01T00:00:00Z): only differences matter.
pub const T0: u64 = 1_767_225_600_000;

/// The default topology, as shipped in `fixtures/topologies/default.toml`.
pub const DEFAULT_TOPOLOGY: &str = include_str!("../../fixtures/topologies/default.toml");

/// A topology with an optional profile applied.
pub fn with_profile(mut spec: TopologySpec, profile: Option<&str>) -> TopologySpec {
    if let Some(p) = profile {
        spec.profile = Some(ProfileSpec::Named(p.to_string()));
    }
    spec
}

pub fn default_topology() -> anyhow::Result<TopologySpec> {
    Ok(toml::from_str(DEFAULT_TOPOLOGY)?)
}

/// What the model predicts for one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStep {
    pub call: Option<CallView>,
    /// The table row that accepted or refused the call, or the table's precondition that
    /// refused it before any row (`None`: the call never reached the table).
    pub rule: Option<String>,
    pub reason: Option<String>,
    /// Milliseconds the model advanced to settle the step's job.
    pub settle_ms: u64,
    /// The call is addressed to an instance the host does not have (a `Msvm_ComputerSystem`
    /// method on a VM that is not there): WinRM answers a fault before any method runs.
    #[serde(default)]
    pub expect_fault: Option<String>,
    /// The model refused the step's fault rule.
    pub notes: Vec<String>,
}

/// `rule-id (kind: source text)` for a row or a precondition of the table, or a note when the
/// call never reached the table.
pub fn provenance(rule: Option<&str>) -> String {
    let source = rule.and_then(|id| table::sources().into_iter().find(|(s, _)| *s == id));
    match source {
        Some((id, s)) => format!("rule {id} ({}: {})", s.kind(), s.text()),
        None => match rule {
            Some(id) => format!("rule {id}"),
            None => "no table rule (fault plan or unknown method)".into(),
        },
    }
}

/// The model, step by step.
#[derive(Debug, Clone)]
pub struct ModelRunner {
    pub world: World,
    last_job: Option<(String, String)>,
    tick: u64,
}

impl ModelRunner {
    pub fn new(world: World, tick: u64) -> ModelRunner {
        ModelRunner {
            world,
            last_job: None,
            tick,
        }
    }

    /// A runner on `spec` built with `seed` at [`T0`], brought to its present once: a
    /// simulator ticks its world on every request, so background work that is already due
    /// when the world is built (a delta overdue by the topology's `last_replication_minutes_ago`)
    /// happens at time zero there, and must here too.
    pub fn from_spec(spec: &TopologySpec, seed: u64, tick: u64) -> Result<ModelRunner, String> {
        let mut w = spec.build(seed, T0).map_err(|e| e.to_string())?;
        w.advance(T0);
        Ok(ModelRunner::new(w, tick))
    }

    pub fn view(&self, host: &str, vm: &str) -> VmView {
        model_view(&self.world, host, vm)
    }

    /// Every VM of `host` by ElementName.
    pub fn views(&self, host: &str) -> BTreeMap<String, VmView> {
        let Some(h) = self
            .world
            .resolve_host(host)
            .and_then(|h| self.world.host(&h))
        else {
            return BTreeMap::new();
        };
        h.vms
            .values()
            .map(|v| (v.name.clone(), model_view(&self.world, &h.name, &v.id)))
            .collect()
    }

    pub fn host_names(&self) -> Vec<String> {
        self.world.hosts().keys().cloned().collect()
    }

    /// Plays one step (as `run_on_model` does) and says what the model saw.
    pub fn step(&mut self, step: &Step) -> ModelStep {
        let mut out = ModelStep::default();
        let world = &mut self.world;
        if let Some(f) = &step.fault
            && let Err(e) = world.add_fault(f.clone())
        {
            out.notes.push(format!("fault rejected: {e}"));
        }
        if let Some(ms) = step.wait_ms {
            let t = world.now() + ms;
            world.advance(t);
        }
        let Some(method) = &step.call else {
            return out;
        };
        let host = world
            .resolve_host(&step.host)
            .unwrap_or_else(|| step.host.clone());
        let class = step_class(step);
        let call = step_call(
            step,
            method,
            &ModelHost { world, host: &host },
            self.last_job.as_ref().map(|(_, j)| j.as_str()),
        );
        let target_vm = call.target_vm.clone();
        if class == WmiClass::ComputerSystem
            && target_vm
                .as_deref()
                .is_none_or(|id| world.vm(&host, id).is_none())
        {
            out.expect_fault = Some(format!(
                "no Msvm_ComputerSystem {} on {host}: the method cannot be invoked",
                step.vm.as_deref().unwrap_or("(none)")
            ));
        }
        let now = world.now() + self.tick;
        let view = match call.to_operation() {
            Err((code, why)) => {
                out.reason = Some(why);
                CallView {
                    code: code.number(),
                    ..CallView::default()
                }
            }
            Ok(op) => {
                let ans = world.apply(&host, &op, now);
                out.rule = ans.rule.or(ans.precondition).map(str::to_string);
                out.reason = ans.reason.clone();
                let mut view = CallView {
                    code: ans.code,
                    resulting_system: ans.resulting_system.is_some(),
                    ..CallView::default()
                };
                if let Some(job) = &ans.job {
                    self.last_job = Some((host.clone(), job.clone()));
                    if !step.no_wait {
                        let before = world.now();
                        world.settle();
                        out.settle_ms = world.now().saturating_sub(before);
                        if let Some(j) = world.job(&host, job) {
                            view.job_state = Some(j.state);
                            view.error_code = Some(j.error_code);
                        }
                    }
                }
                view
            }
        };
        out.call = Some(view);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replica_core::scenario::{Scenario, run_on_model};
    use std::path::Path;

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
    }

    /// The oracle agrees with core's own scenario player on every fixture: same codes, same
    /// expectations met.
    #[test]
    fn agrees_with_run_on_model() {
        let topo = default_topology().expect("default topology");
        for e in std::fs::read_dir(fixtures().join("scenarios")).expect("scenarios") {
            let p = e.expect("entry").path();
            if p.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let sc: Scenario =
                toml::from_str(&std::fs::read_to_string(&p).expect("read")).expect("parse");
            let spec = with_profile(topo.clone(), sc.profile.as_deref());
            let world = spec.build(42, T0).expect("build");
            let expected = run_on_model(&sc, world.clone());
            let mut m = ModelRunner::new(world, 1);
            for (i, step) in sc.steps.iter().enumerate() {
                let seen = m.step(step);
                let mut failures = Vec::new();
                if let (Some(e), Some(c)) = (&step.expect, &seen.call) {
                    failures.extend(e.check(c));
                }
                for ve in &step.expect_vms {
                    failures.extend(ve.check(&m.view(&ve.host, &ve.vm)));
                }
                assert_eq!(failures, expected[i].failures, "{} step {}", sc.name, i + 1);
            }
        }
    }

    #[test]
    fn provenance_names_the_source() {
        let p = provenance(Some("commit-failover"));
        assert!(p.starts_with("rule commit-failover (powershell: "), "{p}");
        assert!(provenance(None).contains("no table rule"));
        let p = provenance(Some("service-running"));
        assert!(p.starts_with("rule service-running (inferred: "), "{p}");
    }

    #[test]
    fn settle_time_and_rules() {
        let spec = default_topology().expect("topology");
        let mut m = ModelRunner::from_spec(&spec, 0, 0).expect("build");
        let step = Step {
            call: Some("InitiateFailover".into()),
            host: "HV-REPLICA".into(),
            vm: Some("app-01".into()),
            ..Step::default()
        };
        let s = m.step(&step);
        assert_eq!(s.call.as_ref().map(|c| c.code), Some(4096));
        assert_eq!(s.rule.as_deref(), Some("failover"));
        assert!(s.settle_ms > 0);
        let views = m.views("HV-REPLICA");
        assert!(views.contains_key("app-01"), "{views:?}");
    }
}
