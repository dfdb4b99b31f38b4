//! In-process throughput of the model: `World::apply` calls on the default topology, mixing
//! accepted and refused calls, with time moving forward so jobs start, run, end and are purged.
//!
//! Run: `cargo run --release -p replica-core --example bench_model [-- N]` (N defaults to
//! 2,000,000). Prints one JSON line:
//! `{"bench":"model_ops","ops":..,"secs":..,"ops_per_sec":..,"ns_per_op":..,...}`.

use replica_core::ops::Operation;
use replica_core::topology::TopologySpec;
use replica_core::world::{RelIx, SettingsPatch, World};
use std::path::Path;
use std::time::Instant;

const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const APP: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01";
const WEB: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02";
const DB: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B03";
const BUILD: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B04";
/// Simulated milliseconds between two calls: a job (800 ms) spans 800 calls, so most
/// state-changing calls meet a busy VM, and ended jobs stay readable for 300,000 calls.
const MS_PER_CALL: u64 = 1;

fn world() -> World {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/topologies/default.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec: TopologySpec =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    spec.build(1, T0).expect("default topology")
}

/// The call mix, cycled in order: (host, operation).
fn mix() -> Vec<(&'static str, Operation)> {
    let p = "HV-PRIMARY";
    let r = "HV-REPLICA";
    let rrsc = |vm: &str, requested| Operation::RequestReplicationStateChange {
        vm: vm.into(),
        rel: RelIx::Primary,
        requested,
    };
    vec![
        // Suspend / resume cycles: accepted (4096) when the VM is free, 32774 while busy.
        (p, rrsc(WEB, 7)),
        (p, rrsc(WEB, 3)),
        (r, rrsc(APP, 7)),
        (r, rrsc(APP, 3)),
        // Synchronous, accepted (0).
        (
            p,
            Operation::GetReplicationStatistics {
                vm: WEB.into(),
                rel: RelIx::Primary,
            },
        ),
        (
            r,
            Operation::GetReplicationStatistics {
                vm: DB.into(),
                rel: RelIx::Primary,
            },
        ),
        (p, Operation::GetSystemCertificates),
        (
            p,
            Operation::RequestStateChange {
                vm: BUILD.into(),
                requested: 3,
            },
        ),
        (
            p,
            Operation::RequestStateChange {
                vm: BUILD.into(),
                requested: 2,
            },
        ),
        // A settings job (accepted when the VM is free).
        (
            p,
            Operation::ModifyReplicationSettings {
                vm: DB.into(),
                settings: SettingsPatch {
                    replication_interval: Some(30),
                    ..SettingsPatch::default()
                },
            },
        ),
        // Refused: wrong mode / state (32775), bad argument (32773), unknown VM (32773).
        (
            p,
            Operation::InitiateFailover {
                vm: WEB.into(),
                recovery_point: None,
            },
        ),
        (r, Operation::CommitFailover { vm: APP.into() }),
        (
            p,
            Operation::Resynchronize {
                vm: DB.into(),
                start_time: None,
            },
        ),
        (p, rrsc(DB, 11)),
        (
            p,
            Operation::InitiateFailback {
                vm: "00000000-0000-4000-8000-000000000000".into(),
                settings: SettingsPatch::default(),
                recovery_point: None,
            },
        ),
        (
            p,
            Operation::RequestJobStateChange {
                job: "00000000-0000-4000-8000-00000000FFFF".into(),
                requested: 4,
            },
        ),
    ]
}

/// CPU time of this thread in seconds (Linux `/proc/thread-self/schedstat`), so a loaded machine
/// shows up as `secs` > `cpu_secs` instead of as a slower model.
fn thread_cpu_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(2_000_000);
    let mut w = world();
    // BENCH_RETENTION_MS overrides how long ended jobs stay readable (profile default 300,000),
    // to separate the per-call cost from the cost of scanning retained jobs.
    if let Some(ms) = std::env::var("BENCH_RETENTION_MS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        let mut profile = w.profile().clone();
        profile.job_retention_ms = ms;
        w.set_profile(profile);
    }
    let calls = mix();
    let (mut accepted, mut jobs, mut refused) = (0u64, 0u64, 0u64);
    let mut now = T0;
    let cpu0 = thread_cpu_secs();
    let start = Instant::now();
    for i in 0..n {
        now += MS_PER_CALL;
        let (host, op) = &calls[(i % calls.len() as u64) as usize];
        let ans = w.apply(host, op, now);
        match ans.code {
            0 => accepted += 1,
            4096 => jobs += 1,
            _ => refused += 1,
        }
        if i % 1024 == 1023 {
            // A server drains the event list for its journal; an explicit advance as the
            // clock ticks.
            w.drain_events();
            w.advance(now);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = match (cpu0, thread_cpu_secs()) {
        (Some(a), Some(b)) => format!(
            ",\"cpu_secs\":{:.3},\"ops_per_cpu_sec\":{:.0}",
            b - a,
            n as f64 / (b - a)
        ),
        _ => String::new(),
    };
    let retained: usize = w.hosts().values().map(|h| h.jobs.len()).sum();
    println!(
        "{{\"bench\":\"model_ops\",\"ops\":{n},\"secs\":{secs:.3},\"ops_per_sec\":{:.0},\"ns_per_op\":{:.1},\"accepted_sync\":{accepted},\"jobs_started\":{jobs},\"refused\":{refused},\"jobs_retained_at_end\":{retained},\"ms_per_call\":{MS_PER_CALL},\"job_retention_ms\":{}{cpu}}}",
        n as f64 / secs,
        secs * 1e9 / n as f64,
        w.profile().job_retention_ms
    );
}
