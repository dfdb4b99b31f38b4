//! explore against the simulator: green on the default simulator, and red (detected and
//! shrunk) when a fault rule makes the simulator answer 0 where the model says otherwise.

use std::time::Duration;

use replica_conformance::explore::{self, ExploreOptions};
use replica_conformance::oracle::default_topology;
use replica_conformance::report::Progress;
use replica_conformance::target::TargetSpec;
use replica_core::faults::{FaultKind, FaultSpec};

use crate::common::*;

fn options(seed: u64, faults: Vec<FaultSpec>) -> ExploreOptions {
    ExploreOptions {
        cases: 20,
        steps: 8,
        seed,
        faults,
        max_shrink_iters: 256,
        step_timeout: Duration::from_secs(30),
        topology: default_topology().expect("topology"),
        world_seed: 0,
        target_args: "--sim".into(),
    }
}

async fn explore_on_sim(opts: ExploreOptions) -> explore::ExploreOutcome {
    let target = connect(&TargetSpec::Sim).await;
    let handle = tokio::runtime::Handle::current();
    let t = target.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        explore::explore(t, &opts, &handle, &Progress::quiet())
    })
    .await
    .expect("explore task")
    .expect("explore runs");
    shutdown(target).await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_finds_no_divergence_on_the_default_simulator() {
    let o = explore_on_sim(options(20_260_101, Vec::new())).await;
    if let Some(f) = &o.failure {
        panic!(
            "{}",
            explore::summary(&o, &options(o.seed, Vec::new())) + &format!("{f:?}")
        );
    }
    assert_eq!(o.cases_run, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_detects_and_shrinks_a_simulator_made_to_diverge() {
    // CommitFailover answers 0 where the model says 4096 (after a failover) or 32775.
    let fault = FaultSpec {
        host: None,
        method: Some("CommitFailover".into()),
        vm: None,
        count: None,
        probability: None,
        kind: FaultKind::ReturnCode { code: 0 },
    };
    let opts = options(7, vec![fault.clone()]);
    let o = explore_on_sim(opts.clone()).await;
    let f = o
        .failure
        .clone()
        .expect("explore must report the divergence");
    assert!(f.shrunk.len() <= 3, "not shrunk: {:?}", f.shrunk);
    assert!(f.shrunk.len() <= f.original.len());
    assert!(
        f.shrunk
            .iter()
            .any(|s| s.call.as_deref() == Some("CommitFailover")),
        "{:?}",
        f.shrunk
    );
    assert!(
        f.message.contains("ReturnValue: target 0, model"),
        "{}",
        f.message
    );
    assert!(f.message.contains("rule commit-failover"), "{}", f.message);
    let text = explore::summary(&o, &opts);
    assert!(
        text.contains(&format!("--seed {} --cases 1", f.case_seed)),
        "{text}"
    );
    assert!(text.contains("--fault '{"), "{text}");
    assert!(text.contains("CommitFailover"), "{text}");

    // The printed seed replays the same case as case 1 and shrinks to the same sequence.
    let again = explore_on_sim(ExploreOptions {
        cases: 1,
        seed: f.case_seed,
        ..opts
    })
    .await;
    let g = again.failure.expect("replays");
    assert_eq!(g.shrunk, f.shrunk);
}
