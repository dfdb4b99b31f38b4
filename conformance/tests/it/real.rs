//! A lab run rehearsed on a simulator treated as real hosts: the runner uses no control API,
//! waits in real time, binds roles, runs round trips and one-way scenarios with a way back
//! (skipping the rest with the reason) and checks every VM is left as found; the recording of
//! such a run replays green.

use std::sync::Arc;
use std::time::Duration;

use replica_client::wsman::ClientOptions;
use replica_conformance::record::{RecordedFlavor, Recording};
use replica_conformance::report::Progress;
use replica_conformance::runner::{self, RunOptions, Status};
use replica_conformance::target::{Flavor, Target, TargetKind, TargetSpec};
use replica_sim::ClockMode;
use replica_sim::{Sim, SimConfig};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_host_run_plays_round_trips_only_and_replays() {
    let sim = Sim::start_with(SimConfig {
        // Slow enough that a job started with `no_wait` (a 1.5 s failback) is still running
        // when the next step cancels it, as on a lab where failbacks take minutes.
        clock: ClockMode::Realtime { speed: 2.0 },
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let mut target = Target::connect(
        &TargetSpec::Hosts(sim.hosts()),
        creds(),
        ClientOptions::default(),
        0,
    )
    .await
    .expect("connect");
    target.kind = TargetKind::Live(Flavor::Real);
    let target = Arc::new(target);
    let dir = temp_dir("real-record");
    let opts = Arc::new(RunOptions {
        step_timeout: Duration::from_secs(60),
        record: Some(dir.clone()),
        vm_prefix: Some(String::new()),
        jobs: 4,
    });
    let reports = runner::run_all(
        target.clone(),
        all_scenarios(),
        opts,
        Arc::new(Progress::quiet()),
    )
    .await;
    let bad = failures(&reports);
    assert!(bad.is_empty(), "failures:\n{}", bad.join("\n"));
    let passed: Vec<&str> = reports
        .iter()
        .filter(|r| r.status == Status::Passed)
        .map(|r| r.name.as_str())
        .collect();
    for name in [
        "round-trip-failover-revert",
        "round-trip-planned-failover-failback",
        "round-trip-suspend-resume",
        "test-failover",
    ] {
        assert!(
            passed.contains(&name),
            "{name} should run on real hosts: {passed:?}"
        );
    }
    for r in reports.iter().filter(|r| r.status == Status::Passed) {
        let last = r.steps.last().expect("steps");
        assert!(
            last.label.starts_with("round trip"),
            "{}: {}",
            r.name,
            last.label
        );
    }
    let skipped = |name: &str| {
        reports
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| {
                (r.status == Status::Skipped)
                    .then(|| r.reason.clone())
                    .flatten()
            })
            .unwrap_or_default()
    };
    assert!(skipped("fault-partition").contains("sim_only"));
    // A one-way scenario runs with the model's way back; one without a way back is skipped.
    assert!(passed.contains(&"unplanned-failover-revert"), "{passed:?}");
    assert!(skipped("enable-replication").contains("no way back"));
    let rec = Recording::load(&dir, "round-trip-suspend-resume")
        .expect("load")
        .expect("recorded");
    assert_eq!(rec.flavor, RecordedFlavor::Real);
    assert!(
        Recording::load(&dir, "fault-partition")
            .expect("load")
            .is_none(),
        "skipped scenarios are not recorded"
    );

    // The recording replays without the lab (and without waiting).
    let replay = connect(&TargetSpec::Replay(dir.clone())).await;
    let t = std::time::Instant::now();
    let replayed = run(&replay, None).await;
    let bad = failures(&replayed);
    assert!(bad.is_empty(), "replay:\n{}", bad.join("\n"));
    assert_eq!(
        replayed
            .iter()
            .filter(|r| r.status == Status::Passed)
            .count(),
        passed.len()
    );
    assert!(t.elapsed() < Duration::from_secs(20));
    shutdown(replay).await;
    shutdown(target).await;
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
