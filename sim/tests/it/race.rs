//! Racing clients: 64 connections call InitiateFailover on the same VM at the same moment.
//! Exactly one is accepted (4096 and a job); the 63 others are refused with the profile's busy
//! code (32774 "System is in use" by default) and no job; the world holds one job, the VM
//! goes 12 Failover in progress, then 5 Failed over, and the journal has all 64 calls. The
//! `busy-invalid-state` profile refuses them with 32775 instead.

use crate::support::*;
use replica_core::topology::ProfileSpec;
use replica_sim::ClockMode;
use std::sync::Arc;
use tokio::sync::Barrier;

const CLIENTS: usize = 64;

/// 64 simultaneous InitiateFailover calls; returns the simulator, the accepted job and the
/// refusal codes.
async fn race(profile: Option<&str>) -> (replica_sim::SimHandle, String, Vec<u32>) {
    let mut config = config();
    // Time stands still until the race is over: the job cannot end in the middle of it.
    config.clock = ClockMode::Manual;
    if let Some(p) = profile {
        config.topology.profile = Some(ProfileSpec::Named(p.to_string()));
    }
    let sim = start_with(config).await;
    let url = sim.url("HV-REPLICA");
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let c = Client::new(url.clone());
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.service_call("HV-REPLICA", "InitiateFailover", APP_01, "")
                .await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("client task"));
    }
    let accepted: Vec<_> = results.iter().filter(|(c, _)| *c == 4096).collect();
    assert_eq!(accepted.len(), 1, "{results:?}");
    let job = accepted[0]
        .1
        .clone()
        .expect("the accepted call names its job");
    let refused = results
        .iter()
        .filter(|(c, _)| *c != 4096)
        .map(|(c, j)| {
            assert_eq!(*j, None, "a refused call names no job");
            *c
        })
        .collect();
    (sim, job, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_busy_invalid_state_profile_refuses_the_racers_with_32775() {
    within(60, async {
        let (_sim, _job, refused) = race(Some("busy-invalid-state")).await;
        assert_eq!(refused, vec![32775; CLIENTS - 1]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_one_failover_accepted() {
    within(60, async {
        let (sim, job, refused) = race(None).await;
        assert_eq!(refused, vec![32774; CLIENTS - 1]);
        let url = sim.url("HV-REPLICA");
        let c = Client::new(url);
        {
            let state = sim.state().expect("state");
            let host = state.hosts.get("HV-REPLICA").expect("replica host");
            let jobs: Vec<&str> = host.jobs.iter().map(|j| j.id.as_str()).collect();
            assert_eq!(jobs, vec![job.as_str()], "one job");
            let vm = host.vms.iter().find(|v| v.id == APP_01).expect("app-01");
            assert_eq!(vm.busy_with.as_deref(), Some(job.as_str()));
            // Every call journaled once: 64 Invokes, one accepted.
            let journal = sim.journal().expect("journal");
            let invokes: Vec<_> = journal.iter().filter(|e| e.operation == "Invoke").collect();
            assert_eq!(invokes.len(), CLIENTS);
            assert_eq!(invokes.iter().filter(|e| e.code == Some(4096)).count(), 1);
            assert_eq!(invokes.iter().filter(|e| e.code == Some(32774)).count(), 63);
            assert_eq!(
                invokes
                    .iter()
                    .filter_map(|e| e.job.as_deref())
                    .collect::<Vec<_>>(),
                vec![job.as_str()]
            );
        }
        let state = |row: Row| row.get("ReplicationState").cloned().unwrap_or_default();
        assert_eq!(state(c.vm("app-01").await), "12");
        sim.advance(std::time::Duration::from_secs(60))
            .expect("advance");
        assert_eq!(state(c.vm("app-01").await), "5");
        let rows = c
            .query("SELECT * FROM Msvm_ConcreteJob WHERE JobState = 7")
            .await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].get("InstanceID"), Some(&job));
        let state = sim.state().expect("state");
        let host = state.hosts.get("HV-REPLICA").expect("replica host");
        assert_eq!(host.jobs.len(), 1);
        let vm = host.vms.iter().find(|v| v.id == APP_01).expect("app-01");
        assert_eq!(vm.busy_with, None);
    })
    .await;
}
