//! `explore`: random operation sequences (proptest) against a simulator, with core's model
//! predicting every answer. Each sequence runs on a fresh world of the target and on a fresh
//! model world built from the same topology and seed; after every step the ReturnValue, the
//! job's end state and ErrorCode, and the mode/state/power/health/recovery-point views of every
//! VM of every host are compared. A difference fails the case, which proptest shrinks to a
//! minimal sequence.
//!
//! Case `k` of a run with seed `S` uses its own seed `s_k` (`s_0 = S`, `s_{k+1} =
//! splitmix64(s_k)`), so a failure is replayed exactly with `--seed s_k --cases 1`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use replica_core::faults::FaultSpec;
use replica_core::scenario::{Step, step_label, toml_like::Value};
use replica_core::topology::TopologySpec;

use crate::observe;
use crate::oracle::{ModelRunner, provenance};
use crate::report::Progress;
use crate::runner::{StepCtx, call_diff, exec_step};
use crate::target::{Session, Target};

#[derive(Debug, Clone)]
pub struct ExploreOptions {
    pub cases: u32,
    /// Longest sequence (sequences have 1..=steps operations).
    pub steps: usize,
    pub seed: u64,
    /// Fault rules installed in every world of the target (not in the model): a way to make
    /// the target diverge on purpose.
    pub faults: Vec<FaultSpec>,
    pub max_shrink_iters: u32,
    pub step_timeout: Duration,
    pub topology: TopologySpec,
    /// The seed of the target's and the model's worlds.
    pub world_seed: u64,
    /// How to name the target in the replay command (`--sim`, `--target A=… --target B=…`).
    pub target_args: String,
}

#[derive(Debug, Clone)]
pub struct ExploreFailure {
    /// 0-based index of the failing case.
    pub case: u32,
    /// The seed that replays it as case 0.
    pub case_seed: u64,
    pub original: Vec<Step>,
    pub shrunk: Vec<Step>,
    pub message: String,
    pub replay: String,
}

#[derive(Debug, Clone)]
pub struct ExploreOutcome {
    pub seed: u64,
    pub cases_run: u32,
    pub failure: Option<ExploreFailure>,
}

pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of case `k`.
pub fn case_seed(seed: u64, k: u32) -> u64 {
    (0..k).fold(seed, |s, _| splitmix64(s))
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut s = seed;
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&s.to_le_bytes());
        s = splitmix64(s);
    }
    out
}

const VMS: [&str; 4] = ["app-01", "web-01", "db-01", "build-01"];
const HOSTS: [&str; 2] = ["HV-PRIMARY", "HV-REPLICA"];
/// Number of operation kinds [`make_step`] knows.
pub const OPS: usize = 16;

fn args(pairs: &[(&str, Value)]) -> std::collections::BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// One operation from four small numbers. Lower numbers are simpler, so shrinking moves
/// towards reads and the first VM and host.
pub fn make_step(op: usize, vm: usize, host: usize, variant: usize) -> Step {
    let vm_name = VMS[vm % VMS.len()];
    let host_name = HOSTS[host % HOSTS.len()];
    let other = HOSTS[(host + 1) % HOSTS.len()];
    let v = variant % 3;
    let call = |m: &str| Step {
        call: Some(m.to_string()),
        host: host_name.to_string(),
        vm: Some(vm_name.to_string()),
        ..Step::default()
    };
    let text = |s: &str| Value::Text(s.to_string());
    let int = |i: i64| Value::Int(i);
    match op % OPS {
        0 => call("GetReplicationStatistics"),
        1 => Step {
            args: args(&[("RequestedState", int(if v == 1 { 3 } else { 2 }))]),
            ..call("RequestStateChange")
        },
        2 => Step {
            args: match v {
                1 => args(&[("SnapshotSettingData", text("$oldest"))]),
                2 => args(&[("SnapshotSettingData", text("$latest"))]),
                _ => args(&[]),
            },
            ..call("InitiateFailover")
        },
        3 => call("CommitFailover"),
        4 => call("RevertFailover"),
        5 => call("ReverseReplicationRelationship"),
        6 => Step {
            args: match v {
                1 => args(&[("RecoveryPointIdentifier", text("$latest"))]),
                2 => args(&[("RecoveryPointIdentifier", text("$oldest"))]),
                _ => args(&[]),
            },
            ..call("InitiateFailback")
        },
        7 => Step {
            args: args(&[("RequestedState", int([4, 7, 3][v]))]),
            ..call("RequestReplicationStateChange")
        },
        8 => call("Resynchronize"),
        9 => call("TestReplicaSystem"),
        10 => Step {
            vm: Some("$test".into()),
            ..call("DestroySystem")
        },
        11 => Step {
            args: args(&[("InitialReplicationType", int(1))]),
            ..call("StartReplication")
        },
        12 => {
            let mut t = std::collections::BTreeMap::new();
            t.insert("RecoveryConnectionPoint".to_string(), text(other));
            Step {
                args: args(&[("ReplicationSettingData", Value::Table(t))]),
                ..call("CreateReplicationRelationship")
            }
        }
        13 => call("RemoveReplicationRelationship"),
        14 => Step {
            wait_ms: Some([10_000, 40_000, 310_000][v]),
            ..Step::default()
        },
        _ => Step {
            args: args(&[("RequestedState", int([1, 9, 5][v]))]),
            ..call("RequestReplicationStateChange")
        },
    }
}

/// Sequences of 1..=`max` operations.
pub fn sequence_strategy(max: usize) -> impl Strategy<Value = Vec<Step>> {
    let step = (0..OPS, 0..VMS.len(), 0..HOSTS.len(), 0..3usize)
        .prop_map(|(o, v, h, x)| make_step(o, v, h, x));
    proptest::collection::vec(step, 1..=max.max(1))
}

/// One line for a step: its label and its arguments.
pub fn describe_step(step: &Step) -> String {
    let mut s = step_label(step);
    if !step.args.is_empty() {
        let a: Vec<String> = step
            .args
            .iter()
            .map(|(k, v)| match v {
                Value::Table(t) => format!(
                    "{k}={{{}}}",
                    t.iter()
                        .map(|(pk, pv)| format!("{pk}={}", pv.as_text().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => format!(
                    "{k}={}",
                    other.as_text().unwrap_or_else(|| format!("{other:?}"))
                ),
            })
            .collect();
        s.push_str(&format!(" [{}]", a.join(", ")));
    }
    s
}

/// A fault rule as compact JSON without its empty fields.
pub fn fault_json(f: &FaultSpec) -> String {
    match serde_json::to_value(f) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.retain(|_, v| !v.is_null());
            serde_json::Value::Object(m).to_string()
        }
        _ => String::new(),
    }
}

/// Plays one sequence on a fresh world of the target and on the model; `Err` describes the
/// first difference.
pub async fn run_case(
    target: &Target,
    steps: &[Step],
    opts: &ExploreOptions,
) -> Result<(), String> {
    let sess = target
        .session(None, None)
        .await
        .map_err(|e| format!("opening a session: {e:#}"))?;
    let r = run_case_in(&sess, steps, opts).await;
    let _ = sess.close().await;
    r
}

async fn run_case_in(sess: &Session, steps: &[Step], opts: &ExploreOptions) -> Result<(), String> {
    sess.prepare(&opts.topology, None, opts.world_seed)
        .await
        .map_err(|e| format!("preparing a fresh world: {e:#}"))?;
    for f in &opts.faults {
        sess.add_fault(f)
            .await
            .map_err(|e| format!("installing fault {}: {e:#}", fault_json(f)))?;
    }
    let mut model = ModelRunner::from_spec(&opts.topology, opts.world_seed, 0)?;
    let mut ctx = StepCtx::default();
    for (i, step) in steps.iter().enumerate() {
        let predicted = model.step(step);
        let (obs, failures) = tokio::time::timeout(
            opts.step_timeout,
            exec_step(sess, &mut ctx, step, Some(&predicted)),
        )
        .await
        .map_err(|_| format!("step {} ({}): timed out", i + 1, describe_step(step)))?;
        let mut diffs = failures;
        match (&predicted.expect_fault, &obs.fault) {
            // Both agree there is nothing to invoke.
            (Some(_), Some(f)) => diffs.retain(|d| d != f),
            (Some(why), None) => diffs.push(format!(
                "the target answered {}, the model expects a WS-Management fault ({why})",
                obs.call
                    .as_ref()
                    .map_or("nothing".into(), |c| format!("ReturnValue {}", c.code))
            )),
            (None, _) => {
                if diffs.is_empty() {
                    diffs.extend(call_diff(&obs.call, &predicted.call, "target", "model"));
                }
            }
        }
        for host in model.host_names() {
            let Some(conn) = sess.conn(&host) else {
                diffs.push(format!("the target has no host {host}"));
                continue;
            };
            let snap = conn
                .snapshot()
                .await
                .map_err(|e| format!("step {}: observing {host}: {e}", i + 1))?;
            let got = snap.views();
            ctx.observed(sess, &host, snap);
            let want = model.views(&host);
            let names: std::collections::BTreeSet<&String> =
                got.keys().chain(want.keys()).collect();
            for name in names {
                let g = got.get(name).cloned().unwrap_or_default();
                let w = want.get(name).cloned().unwrap_or_default();
                for d in observe::view_diff(&g, &w, true) {
                    diffs.push(format!("{name} on {host}: {d}").replace("(expected", "(model"));
                }
            }
        }
        if !diffs.is_empty() {
            return Err(format!(
                "step {} ({}): {}; model: {}",
                i + 1,
                describe_step(step),
                diffs.join("; "),
                provenance(predicted.rule.as_deref())
            ));
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the campaign. Blocking: call it from a blocking thread (`spawn_blocking`), with a
/// handle of the runtime the target lives on.
pub fn explore(
    target: Arc<Target>,
    opts: &ExploreOptions,
    rt: &tokio::runtime::Handle,
    progress: &Progress,
) -> anyhow::Result<ExploreOutcome> {
    let strategy = sequence_strategy(opts.steps);
    let mut seed = opts.seed;
    for k in 0..opts.cases {
        progress.line(&format!(
            "explore: case {}/{} (seed {seed})",
            k + 1,
            opts.cases
        ));
        let mut config = Config::with_cases(1);
        config.failure_persistence = None;
        config.max_shrink_iters = opts.max_shrink_iters;
        config.max_shrink_time = 0;
        let mut runner = TestRunner::new_with_rng(
            config,
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)),
        );
        let first: Mutex<Option<Vec<Step>>> = Mutex::new(None);
        let result = runner.run(&strategy, |steps| {
            match rt.block_on(run_case(&target, &steps, opts)) {
                Ok(()) => Ok(()),
                Err(msg) => {
                    let mut f = lock(&first);
                    if f.is_none() {
                        *f = Some(steps.clone());
                    }
                    Err(TestCaseError::fail(msg))
                }
            }
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(_, shrunk)) => {
                // Run the minimal sequence once more for its exact message (and to show the
                // failure repeats).
                let message = match rt.block_on(run_case(&target, &shrunk, opts)) {
                    Err(m) => m,
                    Ok(()) => {
                        "the shrunk sequence passed when run again: the failure is not repeatable"
                            .into()
                    }
                };
                let original = lock(&first).clone().unwrap_or_else(|| shrunk.clone());
                let mut replay = format!(
                    "replica-conformance explore {} --seed {seed} --cases 1 --steps {}",
                    opts.target_args, opts.steps
                );
                for f in &opts.faults {
                    replay.push_str(&format!(" --fault '{}'", fault_json(f)));
                }
                return Ok(ExploreOutcome {
                    seed: opts.seed,
                    cases_run: k + 1,
                    failure: Some(ExploreFailure {
                        case: k,
                        case_seed: seed,
                        original,
                        shrunk,
                        message,
                        replay,
                    }),
                });
            }
            Err(TestError::Abort(why)) => anyhow::bail!("explore aborted: {why}"),
        }
        seed = splitmix64(seed);
    }
    Ok(ExploreOutcome {
        seed: opts.seed,
        cases_run: opts.cases,
        failure: None,
    })
}

/// One case of `explore` on a lab.
#[derive(Debug, Clone)]
pub struct LabCase {
    pub case: u32,
    pub case_seed: u64,
    pub steps: Vec<Step>,
    /// Skipped (no lab VM fits, no way back) with the reason.
    pub skipped: Option<String>,
    /// Answers that differ from the model's, and VMs not restored.
    pub problems: Vec<String>,
}

/// The sequence of case seed `seed`, as [`explore`] draws it, without waiting steps: on a lab
/// time is real, and those steps stand for minutes.
pub fn lab_sequence(seed: u64, max: usize) -> Vec<Step> {
    use proptest::strategy::ValueTree as _;
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)),
    );
    let mut steps = sequence_strategy(max)
        .new_tree(&mut runner)
        .map(|t| t.current())
        .unwrap_or_default();
    steps.retain(|s| s.wait_ms.is_none());
    steps
}

/// `explore` against real hosts: each random sequence is played as a scenario, so its VMs are
/// roles bound to lab VMs under the prefix, arranged, and restored (the model's way back)
/// exactly as `run` does; a case whose sequence has no way back is skipped. Every answer is
/// compared with the model's prediction (ReturnValue, job end, ErrorCode, or a fault). No
/// shrinking: each attempt would change lab VMs again; the case seed replays the sequence.
pub async fn explore_lab(
    target: &Target,
    opts: &ExploreOptions,
    vm_prefix: &str,
    progress: &Progress,
) -> Vec<LabCase> {
    let mut out = Vec::new();
    let mut seed = opts.seed;
    let ropts = crate::runner::RunOptions {
        step_timeout: opts.step_timeout,
        record: None,
        vm_prefix: Some(vm_prefix.to_string()),
        jobs: 1,
    };
    for k in 0..opts.cases {
        let steps = lab_sequence(seed, opts.steps);
        let name = format!("explore-case-{seed}");
        progress.line(&format!(
            "explore: case {}/{} (seed {seed})",
            k + 1,
            opts.cases
        ));
        let scenario = replica_core::scenario::Scenario {
            name: name.clone(),
            description: String::new(),
            tags: Vec::new(),
            source: String::new(),
            topology: "default".into(),
            profile: None,
            sim_only: false,
            steps: steps.clone(),
        };
        let loaded = crate::scenarios::Loaded {
            path: std::path::PathBuf::new(),
            name,
            scenario: Ok(scenario),
            topology: Ok(opts.topology.clone()),
        };
        let rep = crate::runner::run_scenario(target, &loaded, &ropts, progress).await;
        let mut case = LabCase {
            case: k,
            case_seed: seed,
            steps,
            skipped: None,
            problems: Vec::new(),
        };
        if rep.status == crate::runner::Status::Skipped {
            case.skipped = rep.reason.clone();
        } else {
            for st in &rep.steps {
                let Some(m) = &st.model else {
                    // The runner's own steps (way back, the final check): only a failure counts.
                    if st.status == crate::runner::Status::Failed {
                        case.problems.extend(st.failures.iter().cloned());
                    }
                    continue;
                };
                let obs = &st.observed;
                let diffs = match (&m.expect_fault, &obs.fault) {
                    (Some(_), Some(_)) => Vec::new(),
                    (Some(why), None) => vec![format!(
                        "the lab answered, the model expects a fault ({why})"
                    )],
                    (None, Some(f)) => vec![format!(
                        "the lab answered a fault ({f}), the model a ReturnValue"
                    )],
                    (None, None) => call_diff(&obs.call, &m.call, "lab", "model"),
                };
                for d in diffs {
                    case.problems.push(format!(
                        "step {} ({}): {d}; model: {}",
                        st.index,
                        st.label,
                        provenance(m.rule.as_deref())
                    ));
                }
            }
        }
        out.push(case);
        seed = splitmix64(seed);
    }
    out
}

/// The summary of an `explore` on a lab.
pub fn lab_summary(cases: &[LabCase], opts: &ExploreOptions) -> String {
    let mut s = String::new();
    let ran = cases.iter().filter(|c| c.skipped.is_none()).count();
    let bad: Vec<&LabCase> = cases.iter().filter(|c| !c.problems.is_empty()).collect();
    for c in cases {
        if let Some(why) = &c.skipped {
            s.push_str(&format!(
                "case {} (seed {}): skipped: {why}\n",
                c.case + 1,
                c.case_seed
            ));
        }
    }
    for c in &bad {
        s.push_str(&format!(
            "case {} (seed {}): DIVERGENCE\n",
            c.case + 1,
            c.case_seed
        ));
        for (i, st) in c.steps.iter().enumerate() {
            s.push_str(&format!("  {}. {}\n", i + 1, describe_step(st)));
        }
        for p in &c.problems {
            s.push_str(&format!("  - {p}\n"));
        }
        s.push_str(&format!(
            "  replay: replica-conformance explore {} --seed {} --cases 1 --steps {}\n",
            opts.target_args, c.case_seed, opts.steps
        ));
    }
    s.push_str(&format!(
        "explore on a lab: {} case(s), {ran} ran, {} skipped, {} with a divergence or a VM not restored (seed {})\n",
        cases.len(),
        cases.len() - ran,
        bad.len(),
        opts.seed
    ));
    s
}

/// The human summary of a campaign.
pub fn summary(o: &ExploreOutcome, opts: &ExploreOptions) -> String {
    match &o.failure {
        None => format!(
            "explore: {} case(s) of up to {} steps, seed {}: no divergence between the target and the model\n",
            o.cases_run, opts.steps, o.seed
        ),
        Some(f) => {
            let mut s = format!(
                "explore: DIVERGENCE in case {} of {} (run seed {}, case seed {})\n",
                f.case + 1,
                opts.cases,
                o.seed,
                f.case_seed
            );
            s.push_str(&format!(
                "shrunk from {} to {} step(s):\n",
                f.original.len(),
                f.shrunk.len()
            ));
            for (i, st) in f.shrunk.iter().enumerate() {
                s.push_str(&format!("  {}. {}\n", i + 1, describe_step(st)));
            }
            s.push_str(&format!("difference: {}\n", f.message));
            s.push_str(&format!("replay: {}\n", f.replay));
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::default_topology;
    use proptest::strategy::ValueTree as _;

    #[test]
    fn case_seeds_chain() {
        assert_eq!(case_seed(7, 0), 7);
        assert_eq!(case_seed(7, 2), splitmix64(splitmix64(7)));
        assert_ne!(seed_bytes(1), seed_bytes(2));
    }

    #[test]
    fn every_generated_step_runs_on_the_model() {
        let topo = default_topology().expect("topology");
        let mut m = ModelRunner::from_spec(&topo, 0, 0).expect("model");
        for op in 0..OPS {
            for variant in 0..3 {
                let s = make_step(op, op % 4, op % 2, variant);
                let out = m.step(&s);
                assert!(out.notes.is_empty(), "{s:?}: {:?}", out.notes);
                assert!(!describe_step(&s).is_empty());
            }
        }
    }

    #[test]
    fn generation_is_repeatable_per_seed() {
        let strategy = sequence_strategy(8);
        let gen_with = |seed: u64| {
            let mut r = TestRunner::new_with_rng(
                Config::with_cases(1),
                TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)),
            );
            strategy
                .new_tree(&mut r)
                .map(|t| t.current())
                .expect("tree")
        };
        assert_eq!(gen_with(42), gen_with(42));
        assert_ne!(gen_with(42), gen_with(43));
    }

    #[test]
    fn describes_arguments() {
        let s = make_step(2, 1, 1, 1);
        assert_eq!(
            describe_step(&s),
            "InitiateFailover web-01 on HV-REPLICA [SnapshotSettingData=$oldest]"
        );
        assert_eq!(describe_step(&make_step(14, 0, 0, 0)), "wait 10000 ms");
        assert!(
            describe_step(&make_step(12, 0, 0, 0)).contains("RecoveryConnectionPoint=HV-REPLICA")
        );
    }

    /// The oracle logic against core's World used as the target: a "target" that answers 0
    /// for CommitFailover diverges, and proptest shrinks the sequence to that one call.
    #[test]
    fn shrinks_a_divergence_against_a_fake_target() {
        let topo = default_topology().expect("topology");
        let faulty = |steps: &[Step]| -> Result<(), String> {
            let mut oracle = ModelRunner::from_spec(&topo, 0, 0)?;
            let mut fake = ModelRunner::from_spec(&topo, 0, 0)?;
            fake.world
                .add_fault(FaultSpec {
                    host: None,
                    method: Some("CommitFailover".into()),
                    vm: None,
                    count: None,
                    probability: None,
                    kind: replica_core::faults::FaultKind::ReturnCode { code: 0 },
                })
                .map_err(|e| e.to_string())?;
            for (i, s) in steps.iter().enumerate() {
                let want = oracle.step(s);
                let got = fake.step(s);
                let d = call_diff(&got.call, &want.call, "target", "model");
                if !d.is_empty() {
                    return Err(format!("step {}: {}", i + 1, d.join("; ")));
                }
            }
            Ok(())
        };
        let mut config = Config::with_cases(64);
        config.failure_persistence = None;
        config.max_shrink_iters = 1000;
        let mut runner = TestRunner::new_with_rng(
            config,
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(1)),
        );
        let r = runner.run(&sequence_strategy(8), |steps| {
            faulty(&steps).map_err(TestCaseError::fail)
        });
        match r {
            Err(TestError::Fail(_, shrunk)) => {
                assert_eq!(shrunk.len(), 1, "{shrunk:?}");
                assert_eq!(shrunk[0].call.as_deref(), Some("CommitFailover"));
                assert_eq!(
                    describe_step(&shrunk[0]),
                    "CommitFailover app-01 on HV-PRIMARY"
                );
            }
            other => panic!("expected a shrunk failure, got {other:?}"),
        }
    }
}
