//! Property tests: random operation sequences on the model, with every invariant checked after
//! every step.
//!
//! A generated case is a topology (`fixtures/topologies/default.toml`, or one case in four a
//! three-host chain so that extended replication runs too), a world seed, a behaviour profile
//! (one of `profile::PROFILE_NAMES`) and a list of abstract steps. Steps name hosts, VMs, jobs
//! and recovery points by *index*, resolved against the world when the step runs, so a shrunk
//! sequence still means something. Calls are either "smart" (an operation some table row accepts
//! in the VM's current mode and state, so sequences reach failover, reverse, failback …) or
//! explicit (any method of [`Operation`], with arguments good and bad). Time advances,
//! `settle()`, polls pacing, client polling (`observe_job`), job cancels and fault rules are
//! interleaved.
//!
//! Checked after every step (see `check_world` and `Runner::call`):
//! * every enum value in the world round-trips through its number; every ReturnValue is 0,
//!   4096, 4097 or a documented `ReturnCode`; 4096 comes with a job and only 4096 does;
//! * a refused call (and a call answered by a fault) changes nothing but the clock, the RNG,
//!   fault counters and the generation counter;
//! * a VM has at most one running job changing it (its own, or a peer's job that reserved it)
//!   and `busy_with` names exactly it;
//! * each (mode, relationship) shows only states some table row leads to; a replica runs only
//!   once failed over; a relationship never points at its own host; the two sides of a
//!   relationship have a shape the table allows (`pair_allowed`); test VMs are linked both ways;
//! * time and event timestamps never go back; jobs are consistent (ended ⇔ terminal, percent);
//! * `settle()` ends every job, and so do `settle()` plus one hour at the end of every case;
//! * the world's JSON reads back to the same world (at each settle and at the end);
//! * determinism: each case runs twice and must give the same answers, events and world.
//!
//! Seeds (`run_seeds`): every seed that ever failed (`FAILED_SEEDS`), then a fresh one locally,
//! or the pinned seed and two fresh ones in CI. Replay: the run prints each seed;
//! `PROPTEST_SEED=<seed> cargo test -p replica-core --test properties -- --nocapture` runs the
//! same cases again. `PROPTEST_CASES=<n>` changes the number
//! of cases. `PROPERTIES_AVOID` steers around bugs already reported (see `avoided`).

use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use replica_core::engine::{Answer, Event};
use replica_core::enums::*;
use replica_core::faults::{FaultKind, FaultSpec};
use replica_core::ops::{OpKind, Operation};
use replica_core::profile::PROFILE_NAMES;
use replica_core::table::{self, RelSel, Scope};
use replica_core::topology::{ProfileSpec, TopologySpec};
use replica_core::world::{
    AuthorizationEntry, PaceMode, RelIx, Relationship, ServiceSettingsPatch, SettingsPatch, Vm,
    World,
};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;

/// A fixed start time, so runs do not depend on the wall clock (same as tests/scenarios.rs).
const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const HOUR_MS: u64 = 3_600_000;
const DEFAULT_CASES: u32 = 500;
const MAX_STEPS: usize = 100;

// ---------------------------------------------------------------------------------------------
// Abstract steps
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Input {
    /// `false`: `fixtures/topologies/default.toml`; `true`: [`CHAIN_TOPOLOGY`].
    chain: bool,
    world_seed: u64,
    /// Index into `PROFILE_NAMES`.
    profile: usize,
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    /// A method call on host `host` (index), about VM `vm`; afterwards the client reads the
    /// returned job `polls` times.
    Call {
        host: u8,
        vm: VmPick,
        call: CallGen,
        polls: u8,
    },
    /// `world.advance(now + ms)`.
    Advance(u64),
    Settle,
    /// `world.pace` for new jobs: `None` time pacing, `Some(n)` `PaceMode::Polls(n)`.
    Pace(Option<u32>),
    /// A client reads a job (running jobs first).
    Observe(u8),
    Fault(FaultGen),
    /// The control API removes every fault rule.
    ClearFaults,
}

#[derive(Debug, Clone)]
enum VmPick {
    /// The n-th VM of the host (by GUID order).
    Index(u8),
    /// The n-th VM of the host, called by its ElementName.
    Name(u8),
    /// A GUID no host has.
    Bogus,
}

#[derive(Debug, Clone)]
enum HostPick {
    Index(u8),
    /// `hv-replica.contoso.com` style: lower case with a DNS suffix.
    Fqdn(u8),
    Bogus,
    Missing,
}

#[derive(Debug, Clone)]
enum RpPick {
    None,
    /// The n-th recovery point of the VM, by InstanceID.
    Index(u8),
    /// The n-th recovery point, by the bare GUID.
    Guid(u8),
    Bogus,
    Blank,
}

#[derive(Debug, Clone)]
enum JobPick {
    Running(u8),
    Any(u8),
    Bogus,
}

#[derive(Debug, Clone)]
struct PatchGen {
    connection: HostPick,
    interval: Option<u32>,
    history: Option<u32>,
    auth: Option<u32>,
    thumbprint: bool,
}

#[derive(Debug, Clone)]
enum CallGen {
    /// The k-th of the operations some table row accepts in the VM's mode and state.
    Smart(u16),
    Create(PatchGen),
    Modify(PatchGen),
    StartReplication(u16),
    Import,
    Resynchronize,
    Failover(RpPick),
    Revert,
    Commit,
    Reverse(PatchGen),
    Failback(PatchGen, RpPick),
    TestReplica(RpPick),
    ToPrimary,
    Remove(bool),
    GetStats(bool),
    ResetStats(bool),
    SetFailoverNetwork,
    SetAuth,
    AddAuth(u8),
    ModifyAuth(u8),
    RemoveAuth(u8),
    ModifyService(Option<bool>),
    TestConnection(HostPick, u16),
    GetCertificates,
    StartService,
    StopService,
    /// `RequestReplicationStateChange[Ex]`, requested 0..=10, on the extended relationship if
    /// the flag is set.
    Rrsc(u16, bool),
    Power(u16),
    Destroy,
    Cancel(JobPick, u16),
    Delta,
}

#[derive(Debug, Clone)]
struct FaultGen {
    kind: FaultKindGen,
    host: Option<u8>,
    /// Index into the table's method names.
    method: Option<u8>,
    /// Index into all VM GUIDs of the world; odd values use the ElementName.
    vm: Option<u8>,
    count: Option<u32>,
    probability_pct: Option<u8>,
}

#[derive(Debug, Clone)]
enum FaultKindGen {
    /// Index into `ReturnCode::ALL`.
    ReturnCode(u8),
    FailJob {
        error_code: u16,
        after_percent: u8,
    },
    CompleteWithWarnings,
    HostDown,
    Partition,
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn host_pick() -> impl Strategy<Value = HostPick> {
    prop_oneof![
        8 => any::<u8>().prop_map(HostPick::Index),
        2 => any::<u8>().prop_map(HostPick::Fqdn),
        1 => Just(HostPick::Bogus),
        1 => Just(HostPick::Missing),
    ]
}

fn rp_pick() -> impl Strategy<Value = RpPick> {
    prop_oneof![
        4 => Just(RpPick::None),
        4 => any::<u8>().prop_map(RpPick::Index),
        1 => any::<u8>().prop_map(RpPick::Guid),
        1 => Just(RpPick::Bogus),
        1 => Just(RpPick::Blank),
    ]
}

fn patch_gen() -> impl Strategy<Value = PatchGen> {
    (
        host_pick(),
        proptest::option::weighted(
            0.3,
            prop_oneof![Just(30u32), Just(300), Just(900), Just(45)],
        ),
        proptest::option::weighted(0.2, 0u32..=30),
        proptest::option::weighted(0.2, 0u32..=3),
        any::<bool>(),
    )
        .prop_map(
            |(connection, interval, history, auth, thumbprint)| PatchGen {
                connection,
                interval,
                history,
                auth,
                thumbprint,
            },
        )
}

fn call_gen() -> impl Strategy<Value = CallGen> {
    let arms: Vec<(u32, BoxedStrategy<CallGen>)> = vec![
        (60, any::<u16>().prop_map(CallGen::Smart).boxed()),
        (3, patch_gen().prop_map(CallGen::Create).boxed()),
        (2, patch_gen().prop_map(CallGen::Modify).boxed()),
        (3, (0u16..=4).prop_map(CallGen::StartReplication).boxed()),
        (1, Just(CallGen::Import).boxed()),
        (1, Just(CallGen::Resynchronize).boxed()),
        (3, rp_pick().prop_map(CallGen::Failover).boxed()),
        (1, Just(CallGen::Revert).boxed()),
        (1, Just(CallGen::Commit).boxed()),
        (2, patch_gen().prop_map(CallGen::Reverse).boxed()),
        (
            3,
            (patch_gen(), rp_pick())
                .prop_map(|(p, r)| CallGen::Failback(p, r))
                .boxed(),
        ),
        (2, rp_pick().prop_map(CallGen::TestReplica).boxed()),
        (1, Just(CallGen::ToPrimary).boxed()),
        (1, any::<bool>().prop_map(CallGen::Remove).boxed()),
        (1, any::<bool>().prop_map(CallGen::GetStats).boxed()),
        (1, any::<bool>().prop_map(CallGen::ResetStats).boxed()),
        (1, Just(CallGen::SetFailoverNetwork).boxed()),
        (1, Just(CallGen::SetAuth).boxed()),
        (1, any::<u8>().prop_map(CallGen::AddAuth).boxed()),
        (1, any::<u8>().prop_map(CallGen::ModifyAuth).boxed()),
        (1, any::<u8>().prop_map(CallGen::RemoveAuth).boxed()),
        (
            1,
            proptest::option::of(any::<bool>())
                .prop_map(CallGen::ModifyService)
                .boxed(),
        ),
        (
            1,
            (host_pick(), any::<u16>())
                .prop_map(|(h, p)| CallGen::TestConnection(h, p))
                .boxed(),
        ),
        (1, Just(CallGen::GetCertificates).boxed()),
        (1, Just(CallGen::StartService).boxed()),
        (1, Just(CallGen::StopService).boxed()),
        (
            8,
            (0u16..=10, any::<bool>())
                .prop_map(|(r, e)| CallGen::Rrsc(r, e))
                .boxed(),
        ),
        (
            4,
            prop_oneof![8 => Just(2u16), 8 => Just(3u16), 1 => Just(4u16), 1 => Just(6u16), 1 => Just(10u16)]
                .prop_map(CallGen::Power)
                .boxed(),
        ),
        (2, Just(CallGen::Destroy).boxed()),
        (
            4,
            (
                prop_oneof![
                    6 => any::<u8>().prop_map(JobPick::Running),
                    2 => any::<u8>().prop_map(JobPick::Any),
                    1 => Just(JobPick::Bogus),
                ],
                prop_oneof![
                    8 => Just(4u16),
                    1 => Just(2u16),
                    2 => Just(3u16),
                    1 => Just(5u16),
                    1 => Just(6u16),
                    1 => Just(9u16),
                ],
            )
                .prop_map(|(j, r)| CallGen::Cancel(j, r))
                .boxed(),
        ),
        (1, Just(CallGen::Delta).boxed()),
    ];
    Union::new_weighted(arms)
}

fn fault_gen() -> impl Strategy<Value = FaultGen> {
    let kind = prop_oneof![
        3 => (0..ReturnCode::ALL.len() as u8).prop_map(FaultKindGen::ReturnCode),
        3 => (prop_oneof![Just(32768u16), Just(32775), Just(32777)], 0u8..=100)
            .prop_map(|(error_code, after_percent)| FaultKindGen::FailJob { error_code, after_percent }),
        1 => Just(FaultKindGen::CompleteWithWarnings),
        2 => Just(FaultKindGen::HostDown),
        2 => Just(FaultKindGen::Partition),
    ];
    (
        kind,
        proptest::option::weighted(0.6, any::<u8>()),
        proptest::option::weighted(0.5, any::<u8>()),
        proptest::option::weighted(0.3, any::<u8>()),
        proptest::option::weighted(0.7, 1u32..=3),
        proptest::option::weighted(0.3, 0u8..=100),
    )
        .prop_map(
            |(kind, host, method, vm, count, probability_pct)| FaultGen {
                kind,
                host,
                method,
                vm,
                count,
                probability_pct,
            },
        )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        14 => (
            any::<u8>(),
            prop_oneof![
                10 => any::<u8>().prop_map(VmPick::Index),
                1 => any::<u8>().prop_map(VmPick::Name),
                1 => Just(VmPick::Bogus),
            ],
            call_gen(),
            prop_oneof![3 => Just(0u8), 1 => 1u8..=3],
        )
            .prop_map(|(host, vm, call, polls)| Step::Call { host, vm, call, polls }),
        5 => (0u64..3000).prop_map(Step::Advance),
        1 => (3000u64..400_000).prop_map(Step::Advance),
        1 => Just(Step::Settle),
        2 => proptest::option::of(1u32..=5).prop_map(Step::Pace),
        2 => any::<u8>().prop_map(Step::Observe),
        1 => fault_gen().prop_map(Step::Fault),
        1 => Just(Step::ClearFaults),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    (
        proptest::bool::weighted(0.25),
        any::<u64>(),
        0..PROFILE_NAMES.len(),
        proptest::collection::vec(step(), 1..MAX_STEPS),
    )
        .prop_map(|(chain, world_seed, profile, steps)| Input {
            chain,
            world_seed,
            profile,
            steps,
        })
}

// ---------------------------------------------------------------------------------------------
// Resolving abstract steps against a world
// ---------------------------------------------------------------------------------------------

fn default_topology() -> &'static TopologySpec {
    static SPEC: OnceLock<TopologySpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/topologies/default.toml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// Three hosts, so that the extended-replication rows run too (a VM replicated A → B and
/// extended B → C, one replicated A → B only, one B → C, one standalone). Fixed GUIDs keep the
/// VM order (and so the regression sequences below) independent of the seed.
const CHAIN_TOPOLOGY: &str = r#"
[[hosts]]
name = "HV-A"
[[hosts]]
name = "HV-B"
[[hosts]]
name = "HV-C"
[[vms]]
name = "chain-01"
id = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1C01"
host = "HV-A"
power = "off"
replication = { replica_host = "HV-B", extended_host = "HV-C", recovery_points = 3 }
[[vms]]
name = "pair-01"
id = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1C02"
host = "HV-A"
power = "on"
replication = { replica_host = "HV-B", settings = { ReplicationInterval = 30 } }
[[vms]]
name = "pair-02"
id = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1C03"
host = "HV-B"
power = "on"
replication = { replica_host = "HV-C" }
[[vms]]
name = "solo-01"
id = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1C04"
host = "HV-C"
power = "on"
"#;

fn chain_topology() -> &'static TopologySpec {
    static SPEC: OnceLock<TopologySpec> = OnceLock::new();
    SPEC.get_or_init(|| toml::from_str(CHAIN_TOPOLOGY).expect("chain topology"))
}

fn build_world(input: &Input) -> World {
    let mut spec = if input.chain {
        chain_topology().clone()
    } else {
        default_topology().clone()
    };
    let name = PROFILE_NAMES[input.profile % PROFILE_NAMES.len()];
    spec.profile = Some(ProfileSpec::Named(name.to_string()));
    spec.build(input.world_seed, T0)
        .unwrap_or_else(|e| panic!("topology with profile {name}: {e}"))
}

fn pick<T: Clone>(items: &[T], i: impl Into<usize>) -> Option<T> {
    (!items.is_empty()).then(|| items[i.into() % items.len()].clone())
}

fn host_names(w: &World) -> Vec<String> {
    w.hosts().keys().cloned().collect()
}

const BOGUS_VM: &str = "00000000-DEAD-4BEE-8F00-000000000000";
const BOGUS_RP: &str = "Microsoft:00000000-0000-4000-8000-00000000BEEF";

fn resolve_host_pick(w: &World, p: &HostPick) -> Option<String> {
    let hosts = host_names(w);
    match p {
        HostPick::Index(i) => pick(&hosts, *i),
        HostPick::Fqdn(i) => pick(&hosts, *i).map(|h| format!("{}.contoso.com", h.to_lowercase())),
        HostPick::Bogus => Some("HV-NOWHERE".into()),
        HostPick::Missing => None,
    }
}

fn resolve_rp(vm: Option<&Vm>, p: &RpPick) -> Option<String> {
    let ids: Vec<String> = vm
        .map(|v| v.recovery_points.iter().map(|r| r.id.clone()).collect())
        .unwrap_or_default();
    match p {
        RpPick::None => None,
        RpPick::Index(i) => Some(pick(&ids, *i).unwrap_or_else(|| BOGUS_RP.into())),
        RpPick::Guid(i) => Some(
            pick(&ids, *i)
                .map(|id| id.trim_start_matches("Microsoft:").to_lowercase())
                .unwrap_or_else(|| BOGUS_RP.into()),
        ),
        RpPick::Bogus => Some(BOGUS_RP.into()),
        RpPick::Blank => Some("  ".into()),
    }
}

fn resolve_patch(w: &World, p: &PatchGen) -> SettingsPatch {
    SettingsPatch {
        recovery_connection_point: resolve_host_pick(w, &p.connection),
        replication_interval: p.interval,
        recovery_history: p.history,
        authentication_type: p.auth,
        certificate_thumbprint: p.thumbprint.then(|| "0123456789ABCDEF".to_string()),
        ..SettingsPatch::default()
    }
}

fn auth_entry(i: u8) -> AuthorizationEntry {
    let hosts = ["*", "HV-PRIMARY", "hv-other.contoso.com"];
    AuthorizationEntry {
        allowed_primary_host_system: hosts[usize::from(i) % hosts.len()].into(),
        trust_group: format!("group-{}", i % 3),
        replica_storage_location: "D:\\Replica".into(),
    }
}

fn rel_ix(extended: bool) -> RelIx {
    if extended {
        RelIx::Extended
    } else {
        RelIx::Primary
    }
}

/// An operation for a table row's kind, with plausible arguments (`k` varies them).
fn op_for_kind(
    w: &World,
    host: &str,
    vm: &Vm,
    kind: OpKind,
    rel: RelIx,
    k: u16,
) -> Option<Operation> {
    let id = vm.id.clone();
    let other_host = w.hosts().keys().find(|h| h.as_str() != host).cloned();
    let last_rp = vm.recovery_points.last().map(|r| r.id.clone());
    let some_rp = (k & 1 == 1).then_some(last_rp).flatten();
    Some(match kind {
        OpKind::CreateReplicationRelationship => Operation::CreateReplicationRelationship {
            vm: id,
            settings: SettingsPatch {
                recovery_connection_point: other_host,
                ..SettingsPatch::default()
            },
        },
        OpKind::ModifyReplicationSettings => Operation::ModifyReplicationSettings {
            vm: id,
            settings: SettingsPatch {
                replication_interval: Some([30, 300, 900][usize::from(k) % 3]),
                ..SettingsPatch::default()
            },
        },
        OpKind::StartReplication(t) => Operation::StartReplication {
            vm: id,
            initial_type: t.number(),
            start_time: None,
        },
        OpKind::ImportInitialReplica => Operation::ImportInitialReplica {
            vm: id,
            location: "D:\\Import".into(),
        },
        OpKind::Resynchronize => Operation::Resynchronize {
            vm: id,
            start_time: None,
        },
        OpKind::InitiateFailover => Operation::InitiateFailover {
            vm: id,
            recovery_point: some_rp,
        },
        OpKind::RevertFailover => Operation::RevertFailover { vm: id },
        OpKind::CommitFailover => Operation::CommitFailover { vm: id },
        OpKind::ReverseReplicationRelationship => Operation::ReverseReplicationRelationship {
            vm: id,
            settings: SettingsPatch::default(),
        },
        OpKind::InitiateFailback => Operation::InitiateFailback {
            vm: id,
            settings: SettingsPatch::default(),
            recovery_point: some_rp,
        },
        OpKind::TestReplicaSystem => Operation::TestReplicaSystem {
            vm: id,
            recovery_point: some_rp,
        },
        OpKind::ChangeReplicationModeToPrimary => {
            Operation::ChangeReplicationModeToPrimary { vm: id }
        }
        OpKind::RemoveReplicationRelationship => {
            Operation::RemoveReplicationRelationship { vm: id, rel }
        }
        OpKind::GetReplicationStatistics => Operation::GetReplicationStatistics { vm: id, rel },
        OpKind::ResetReplicationStatistics => Operation::ResetReplicationStatistics { vm: id, rel },
        OpKind::SetFailoverNetworkAdapterSettings => {
            Operation::SetFailoverNetworkAdapterSettings { vm: id }
        }
        OpKind::SetAuthorizationEntry => Operation::SetAuthorizationEntry {
            vm: id,
            entry: auth_entry(k as u8),
        },
        OpKind::RequestReplicationStateChange(r) => Operation::RequestReplicationStateChange {
            vm: id,
            rel,
            requested: r.number(),
        },
        OpKind::PowerOn => Operation::RequestStateChange {
            vm: id,
            requested: 2,
        },
        OpKind::PowerOff => Operation::RequestStateChange {
            vm: id,
            requested: 3,
        },
        OpKind::DestroySystem => Operation::DestroySystem { vm: id },
        OpKind::ReplicateDelta => Operation::ReplicateDelta { vm: id },
        _ => return None,
    })
}

/// Every operation some VM row of the table accepts for this VM's mode and current state
/// (power and guards are not checked, so some of them are still refused).
fn smart_candidates(w: &World, host: &str, vm: &Vm, k: u16) -> Vec<Operation> {
    let mut out: Vec<Operation> = Vec::new();
    for r in table::RULES {
        let Scope::Vm(sel) = r.scope else { continue };
        if !r.modes.is_empty() && !r.modes.contains(&vm.mode) {
            continue;
        }
        let rels: &[Option<RelIx>] = match sel {
            RelSel::Primary => &[Some(RelIx::Primary)],
            RelSel::Extended => &[Some(RelIx::Extended)],
            RelSel::Arg => &[Some(RelIx::Primary), Some(RelIx::Extended)],
            RelSel::NoRel => &[None],
        };
        for rel in rels {
            let current = rel.and_then(|ix| vm.rel(ix)).map(|x| x.state);
            let ok = match r.from {
                table::From::Any => true,
                table::From::AnyRelationship => current.is_some(),
                table::From::NoRelationship => current.is_none(),
                table::From::States(s) => current.is_some_and(|c| s.contains(&c)),
            };
            if !ok {
                continue;
            }
            // Reads and settings calls are covered by the explicit calls; removal ends most
            // of what is interesting, so the smart calls offer it one time in four.
            let boring = matches!(
                r.op,
                OpKind::GetReplicationStatistics
                    | OpKind::ResetReplicationStatistics
                    | OpKind::SetFailoverNetworkAdapterSettings
                    | OpKind::SetAuthorizationEntry
                    | OpKind::ModifyReplicationSettings
                    | OpKind::ReplicateDelta
            );
            if boring || (r.op == OpKind::RemoveReplicationRelationship && !k.is_multiple_of(4)) {
                continue;
            }
            let ix = rel.unwrap_or(RelIx::Primary);
            if let Some(op) = op_for_kind(w, host, vm, r.op, ix, k / 7)
                && !out.contains(&op)
            {
                out.push(op);
            }
        }
    }
    out
}

/// `PROPERTIES_AVOID=<tag>,...` steers the generator around model bugs already reported, so a
/// run can look for the next one. Empty by default: the test checks everything. Tags:
/// * `clobber`: CreateReplicationRelationship toward a host that already has a VM with this
///   GUID (or toward the VM's own host);
/// * `as-replica-running`: RRSC(2) (enable as replica) on a running VM;
/// * `peer-busy`: any call about a VM whose twin on another host runs a job (reverse and
///   CreatePeerReplica racing a job of the peer VM);
/// * `import-extended`: ImportInitialReplica on an ExtendedReplica;
/// * `peer-failed-over`: StartReplication while the replica is failed over (12, 5, 6, 13, 14).
fn avoided(tag: &str) -> bool {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        std::env::var("PROPERTIES_AVOID")
            .unwrap_or_default()
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    })
    .iter()
    .any(|t| t == tag)
}

fn avoid_known(w: &World, host: &str, op: Operation) -> Operation {
    if avoided("clobber")
        && let Operation::CreateReplicationRelationship { vm, settings } = &op
        && let Some(target) = settings
            .recovery_connection_point
            .as_deref()
            .and_then(|c| w.resolve_host(c))
        && let Some(id) = w.find_vm(host, vm).map(|v| v.id.clone())
        && (w.vm(&target, &id).is_some() || target == host)
    {
        return Operation::GetSystemCertificates;
    }
    if avoided("peer-busy")
        && let Some(id) = op
            .vm()
            .and_then(|v| w.find_vm(host, v))
            .map(|v| v.id.clone())
        && w.hosts()
            .iter()
            .any(|(h, x)| h != host && x.vms.get(&id).is_some_and(|v| v.busy_with.is_some()))
    {
        return Operation::GetSystemCertificates;
    }
    if avoided("import-extended")
        && let Operation::ImportInitialReplica { vm, .. } = &op
        && w.find_vm(host, vm)
            .is_some_and(|v| v.mode == ReplicationMode::ExtendedReplica)
    {
        return Operation::GetSystemCertificates;
    }
    if avoided("peer-failed-over")
        && matches!(op, Operation::StartReplication { .. })
        && let Some(v) = op.vm().and_then(|v| w.find_vm(host, v))
        && let Some(r) = v.rel(RelIx::Primary)
        && let Some(peer) = w.resolve_host(&r.peer_host).and_then(|p| w.vm(&p, &v.id))
        && peer.rel(RelIx::Primary).is_some_and(|p| {
            matches!(p.state, S::FailoverInProgress | S::Recovered | S::Committed)
                || matches!(p.state, S::FailbackInProgress | S::FailbackComplete)
        })
    {
        return Operation::GetSystemCertificates;
    }
    if avoided("as-replica-running")
        && let Operation::RequestReplicationStateChange {
            vm, requested: 2, ..
        } = &op
        && w.find_vm(host, vm).is_some_and(|v| !v.is_off())
    {
        return Operation::GetSystemCertificates;
    }
    op
}

fn resolve_call(w: &World, host: &str, vm_pick: &VmPick, call: &CallGen) -> Operation {
    let vms: Vec<&Vm> = w.hosts()[host].vms.values().collect();
    let vm = match vm_pick {
        VmPick::Index(i) | VmPick::Name(i) => pick(&vms, *i),
        VmPick::Bogus => None,
    };
    let vm_key = match (vm_pick, vm) {
        (VmPick::Name(_), Some(v)) => v.name.clone(),
        (_, Some(v)) => v.id.clone(),
        (_, None) => BOGUS_VM.to_string(),
    };
    let id = vm_key.clone();
    match call {
        CallGen::Smart(k) => {
            let cands = vm
                .map(|v| smart_candidates(w, host, v, *k))
                .unwrap_or_default();
            pick(&cands, *k).unwrap_or(Operation::GetReplicationStatistics {
                vm: id,
                rel: RelIx::Primary,
            })
        }
        CallGen::Create(p) => Operation::CreateReplicationRelationship {
            vm: id,
            settings: resolve_patch(w, p),
        },
        CallGen::Modify(p) => Operation::ModifyReplicationSettings {
            vm: id,
            settings: SettingsPatch {
                recovery_connection_point: None,
                ..resolve_patch(w, p)
            },
        },
        CallGen::StartReplication(t) => Operation::StartReplication {
            vm: id,
            initial_type: *t,
            // Now and then scheduled a little later (DOC startreplication StartTime).
            start_time: (t % 2 == 1).then(|| w.now() + 5_000),
        },
        CallGen::Import => Operation::ImportInitialReplica {
            vm: id,
            location: "D:\\Import".into(),
        },
        CallGen::Resynchronize => Operation::Resynchronize {
            vm: id,
            start_time: None,
        },
        CallGen::Failover(rp) => Operation::InitiateFailover {
            vm: id,
            recovery_point: resolve_rp(vm, rp),
        },
        CallGen::Revert => Operation::RevertFailover { vm: id },
        CallGen::Commit => Operation::CommitFailover { vm: id },
        CallGen::Reverse(p) => Operation::ReverseReplicationRelationship {
            vm: id,
            settings: resolve_patch(w, p),
        },
        CallGen::Failback(p, rp) => Operation::InitiateFailback {
            vm: id,
            settings: resolve_patch(w, p),
            recovery_point: resolve_rp(vm, rp),
        },
        CallGen::TestReplica(rp) => Operation::TestReplicaSystem {
            vm: id,
            recovery_point: resolve_rp(vm, rp),
        },
        CallGen::ToPrimary => Operation::ChangeReplicationModeToPrimary { vm: id },
        CallGen::Remove(e) => Operation::RemoveReplicationRelationship {
            vm: id,
            rel: rel_ix(*e),
        },
        CallGen::GetStats(e) => Operation::GetReplicationStatistics {
            vm: id,
            rel: rel_ix(*e),
        },
        CallGen::ResetStats(e) => Operation::ResetReplicationStatistics {
            vm: id,
            rel: rel_ix(*e),
        },
        CallGen::SetFailoverNetwork => Operation::SetFailoverNetworkAdapterSettings { vm: id },
        CallGen::SetAuth => Operation::SetAuthorizationEntry {
            vm: id,
            entry: auth_entry(0),
        },
        CallGen::AddAuth(i) => Operation::AddAuthorizationEntry {
            entry: auth_entry(*i),
        },
        CallGen::ModifyAuth(i) => Operation::ModifyAuthorizationEntry {
            entry: auth_entry(*i),
        },
        CallGen::RemoveAuth(i) => Operation::RemoveAuthorizationEntry {
            allowed_primary_host_system: auth_entry(*i).allowed_primary_host_system,
        },
        CallGen::ModifyService(on) => Operation::ModifyServiceSettings {
            settings: ServiceSettingsPatch {
                recovery_server_enabled: *on,
                ..ServiceSettingsPatch::default()
            },
        },
        CallGen::TestConnection(h, port) => Operation::TestReplicationConnection {
            connection_point: resolve_host_pick(w, h).unwrap_or_default(),
            port: *port,
            auth: 1 + port % 2,
        },
        CallGen::GetCertificates => Operation::GetSystemCertificates,
        CallGen::StartService => Operation::StartService,
        CallGen::StopService => Operation::StopService,
        CallGen::Rrsc(requested, e) => Operation::RequestReplicationStateChange {
            vm: id,
            rel: rel_ix(*e),
            requested: *requested,
        },
        CallGen::Power(requested) => Operation::RequestStateChange {
            vm: id,
            requested: *requested,
        },
        CallGen::Destroy => {
            // Prefer a test VM of this host, since that is what DestroySystem is for here.
            let test = vms
                .iter()
                .filter(|v| v.mode == ReplicationMode::TestReplica)
                .map(|v| v.id.clone())
                .collect::<Vec<_>>();
            let target = match vm_pick {
                VmPick::Index(i) => pick(&test, *i).unwrap_or(id),
                _ => id,
            };
            Operation::DestroySystem { vm: target }
        }
        CallGen::Cancel(jp, requested) => {
            let jobs = &w.hosts()[host].jobs;
            let running: Vec<String> = jobs
                .values()
                .filter(|j| j.is_running())
                .map(|j| j.id.clone())
                .collect();
            let all: Vec<String> = jobs.keys().cloned().collect();
            // Running jobs are picked world-wide; the call then goes to the job's host.
            let running_anywhere: Vec<String> = w.running_jobs().map(|j| j.id.clone()).collect();
            let job = match jp {
                JobPick::Running(i) => pick(&running_anywhere, *i)
                    .or_else(|| pick(&running, *i))
                    .or_else(|| pick(&all, *i)),
                JobPick::Any(i) => pick(&all, *i),
                JobPick::Bogus => None,
            }
            .unwrap_or_else(|| "00000000-0000-4000-8000-0000000000J0".into());
            Operation::RequestJobStateChange {
                job,
                requested: *requested,
            }
        }
        CallGen::Delta => Operation::ReplicateDelta { vm: id },
    }
}

fn method_names() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in table::operations() {
        if !out.contains(&k.method()) {
            out.push(k.method());
        }
    }
    out
}

fn resolve_fault(w: &World, f: &FaultGen) -> FaultSpec {
    let hosts = host_names(w);
    let vms: Vec<(String, String)> = w
        .hosts()
        .values()
        .flat_map(|h| h.vms.values())
        .map(|v| (v.id.clone(), v.name.clone()))
        .collect();
    let kind = match &f.kind {
        FaultKindGen::ReturnCode(i) => FaultKind::ReturnCode {
            code: ReturnCode::ALL[usize::from(*i) % ReturnCode::ALL.len()].number(),
        },
        FaultKindGen::FailJob {
            error_code,
            after_percent,
        } => FaultKind::FailJob {
            error_code: *error_code,
            description: "injected".into(),
            after_percent: *after_percent,
        },
        FaultKindGen::CompleteWithWarnings => FaultKind::CompleteWithWarnings {
            description: "warned".into(),
        },
        FaultKindGen::HostDown => FaultKind::HostDown,
        FaultKindGen::Partition => FaultKind::Partition {
            a: hosts[0].clone(),
            b: hosts[hosts.len() - 1].clone(),
        },
    };
    FaultSpec {
        host: f.host.and_then(|i| pick(&hosts, i)),
        method: f
            .method
            .and_then(|i| pick(&method_names(), i))
            .map(str::to_string),
        vm: f
            .vm
            .and_then(|i| pick(&vms, i).map(|(id, name)| if i % 2 == 1 { name } else { id })),
        count: f.count,
        probability: f.probability_pct.map(|p| f64::from(p) / 100.0),
        kind,
    }
}

// ---------------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------------

use ReplicationState as S;

/// States the table can give the primary relationship (`\HVR\0`) of a VM in mode **Primary**
/// (from the default topology, where every relationship starts in 3):
/// 1 enable-replication, stop-initial-replication, reverse (new primary, unplanned outcome);
/// 2 the `via` of start-initial/seeded/export replication and export's `to`;
/// 3 start-initial `to`, resume, resynchronize `to`, cancel-prepared-failover, reverse,
///   change-mode-to-primary;
/// 4 prepare-planned-failover; 7 suspend; 9 cancel-resynchronize; 10 resynchronize's `via`;
/// 8 remove-authorization-entry on the recovery host (RemoveAuthorization stops replication).
/// A job that fails or is cancelled restores the state before it, which is one of these.
const PRIMARY_SIDE: &[S] = &[
    S::ReadyForReplication,
    S::WaitingToCompleteInitialReplication,
    S::Replicating,
    S::SyncedReplicationComplete,
    S::Suspended,
    S::Critical,
    S::WaitingToStartResynchronization,
    S::Resynchronizing,
];

/// States of the primary relationship of a VM in mode **Replica** or **ExtendedReplica**:
/// 2 CreatePeerReplica, enable-as-replica, reverse (old primary, unplanned outcome);
/// 3 PeerState(3) of start-initial/seeded/extended/import, import `to`, resume, reverse (old
///   primary, planned outcome), revert-failover back to a pre-failover 3;
/// 7 suspend (and revert-failover back to a pre-failover 7); 12 failover's `via`;
/// 5 failover `to`; 6 commit-failover; 13 initiate-failback's `via`; 14 its `to`;
/// 8 remove-authorization-entry (RemoveAuthorization stops the replication it admitted).
/// (10, 15 and 16 are reachable only from a topology that starts a replica in them.)
const REPLICA_SIDE: &[S] = &[
    S::WaitingToCompleteInitialReplication,
    S::Replicating,
    S::Suspended,
    S::Critical,
    S::FailoverInProgress,
    S::Recovered,
    S::Committed,
    S::FailbackInProgress,
    S::FailbackComplete,
];

/// States of the extended relationship (`\HVR\1`) of a Replica: 1 extend-replication, 2 the
/// `via` of start-extended-replication, 3 its `to` and resume, 7 suspend, 8 when the extended
/// replica's host removes the entry that admitted it (remove-authorization-entry), 10 the
/// `via` of resynchronize-extended.
const EXTENDED_SIDE: &[S] = &[
    S::ReadyForReplication,
    S::WaitingToCompleteInitialReplication,
    S::Replicating,
    S::Suspended,
    S::Critical,
    S::Resynchronizing,
];

/// A replica may run only once it is failed over: power-on-recovered accepts 5, 6, 13, 14 and
/// revert-failover (the only way back to 3/7) powers the VM off.
const RUNNING_REPLICA_STATES: &[S] = &[
    S::Recovered,
    S::Committed,
    S::FailbackInProgress,
    S::FailbackComplete,
];

/// Whether the primary relationship of a Primary VM and its peer VM (same GUID on the peer host)
/// form a pair the table can produce.
///
/// Reasoning over the table: each side of a relationship has its own rows (suspend and resume
/// on either side; stop-initial, resynchronize, cancel-resynchronize and prepare on the primary;
/// failover, revert, commit, test failover and failback on the replica), and only four effects
/// touch the other side: CreatePeerReplica (peer → Replica, 2), PeerState(3) (start-initial,
/// seeded, extended, import), Reverse (both sides) and PromoteExtended. So the table constrains
/// the *states* of a pair only through each side's own reachable set, and every combination of
/// `PRIMARY_SIDE` × `REPLICA_SIDE` is reachable (e.g. primary 1 with replica 5: suspend,
/// stop-initial on the primary, then fail over the replica, which still has a
/// LastReplicationTime). What the table does constrain is the *shape* of the pair:
///
/// * peer in mode Replica/ExtendedReplica whose primary relationship is in `REPLICA_SIDE` and
///   points back at this host (or has no peer yet: enable-as-replica leaves it empty) — the
///   normal pair;
/// * peer in mode None with no relationship — RemoveReplicationRelationship on the replica side
///   alone (the table lets either side remove its relationship);
/// * peer in mode Primary whose own primary relationship points at *another* host — after
///   ChangeReplicationModeToPrimary the old primary keeps a stale relationship (DOC);
/// * forbidden: a peer in mode Primary pointing back at this host (two primaries replicating to
///   each other: split brain), a TestReplica, or a replica in a state outside `REPLICA_SIDE`.
fn pair_allowed(w: &World, host: &str, peer: &Vm) -> Result<(), String> {
    let points_back = |r: &Relationship| {
        r.peer_host.is_empty() || w.resolve_host(&r.peer_host).as_deref() == Some(host)
    };
    match peer.mode {
        ReplicationMode::Replica | ReplicationMode::ExtendedReplica => {
            let Some(r) = peer.rel(RelIx::Primary) else {
                return Err("peer replica has no primary relationship".into());
            };
            if !REPLICA_SIDE.contains(&r.state) {
                return Err(format!("peer replica in state {}", r.state));
            }
            if !points_back(r) {
                return Err(format!(
                    "peer replica's relationship points at {} instead of {host}",
                    r.peer_host
                ));
            }
            Ok(())
        }
        ReplicationMode::None => Ok(()),
        ReplicationMode::Primary => match peer.rel(RelIx::Primary) {
            Some(r) if !r.peer_host.is_empty() && points_back(r) => Err(format!(
                "split brain: the peer is Primary too ({}) and replicates back to {host}",
                r.state
            )),
            _ => Ok(()),
        },
        ReplicationMode::TestReplica => Err("peer is a test replica".into()),
    }
}

/// Where an error is, formatted only when there is one.
#[derive(Clone, Copy)]
struct VmAt<'a>(&'a str, &'a str, &'a str);
impl std::fmt::Display for VmAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({})", self.0, self.1, short(self.2))
    }
}
#[derive(Clone, Copy)]
struct RelAt<'a>(VmAt<'a>, usize);
impl std::fmt::Display for RelAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rel {}", self.0, self.1)
    }
}
#[derive(Clone, Copy)]
struct JobAt<'a>(&'a str, &'a str, JobType);
impl std::fmt::Display for JobAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} job {} ({})", self.0, short(self.1), self.2.ident())
    }
}

macro_rules! round_trip {
    ($errs:ident, $what:expr, $ty:ty, $v:expr) => {{
        let v: $ty = $v;
        if <$ty>::from_number(u32::from(v.number())) != Ok(v) {
            $errs.push(format!("{}: {:?} does not round-trip", $what, v));
        }
    }};
}

/// Checks every invariant of a world that does not depend on the last call.
fn check_world(w: &World) -> Result<(), String> {
    let mut errs: Vec<String> = Vec::new();
    for (hname, h) in w.hosts() {
        if &h.name != hname {
            errs.push(format!("host key {hname} names host {}", h.name));
        }
        for (vid, v) in &h.vms {
            let at = VmAt(hname, &v.name, vid);
            if &v.id != vid {
                errs.push(format!("{at}: key {vid} holds VM {}", v.id));
            }
            round_trip!(errs, at, ReplicationMode, v.mode);
            round_trip!(errs, at, EnabledState, v.power);
            for (ix, r) in v.rels.iter().enumerate() {
                let Some(r) = r else { continue };
                let at = RelAt(at, ix);
                round_trip!(errs, at, ReplicationState, r.state);
                round_trip!(errs, at, ReplicationHealth, r.health);
                round_trip!(errs, at, ReplicationType, r.last_replication_type);
                round_trip!(errs, at, ReplicationType, r.failed_over_replication_type);
                round_trip!(errs, at, AuthenticationType, r.settings.authentication_type);
                if let Some(s) = r.pre_failover_state {
                    round_trip!(errs, at, ReplicationState, s);
                }
                // A relationship never points at its own host (topology.rs refuses it too).
                if !r.peer_host.is_empty() {
                    match w.resolve_host(&r.peer_host) {
                        None => {
                            errs.push(format!("{at}: peer host {} does not exist", r.peer_host))
                        }
                        Some(p) if &p == hname => {
                            errs.push(format!("{at}: relationship points at its own host"))
                        }
                        Some(_) => {}
                    }
                }
            }

            // The job invariants: at most one running job changes a VM — its own, or a job on
            // the other side that reserved it as its peer — and busy_with names it.
            let running: Vec<&str> = w
                .hosts()
                .values()
                .flat_map(|x| x.jobs.values())
                .filter(|j| j.is_running())
                .filter(|j| {
                    j.change.as_ref().is_some_and(|c| {
                        (j.host == *hname && c.vm.as_deref() == Some(vid.as_str()))
                            || c.peer
                                .as_ref()
                                .is_some_and(|(ph, pv)| ph == hname && pv == vid)
                    })
                })
                .map(|j| j.id.as_str())
                .collect();
            if running.len() > 1 {
                errs.push(format!("{at}: {} running jobs {running:?}", running.len()));
            }
            if v.busy_with.as_deref() != running.first().copied() {
                errs.push(format!(
                    "{at}: busy_with {:?} but running job(s) {running:?}",
                    v.busy_with
                ));
            }
            let busy = v.busy_with.is_some();

            // States per (mode, relationship), derived from the table (see the consts).
            let r0 = v.rel(RelIx::Primary).map(|r| r.state);
            let r1 = v.rel(RelIx::Extended).map(|r| r.state);
            match v.mode {
                ReplicationMode::Primary => {
                    match r0 {
                        Some(s) if !PRIMARY_SIDE.contains(&s) => {
                            errs.push(format!("{at}: Primary in {s}, which no row leads to"))
                        }
                        None if !busy => errs.push(format!("{at}: Primary without a relationship")),
                        _ => {}
                    }
                    if let Some(s) = r1 {
                        errs.push(format!(
                            "{at}: Primary with an extended relationship in {s}"
                        ));
                    }
                }
                ReplicationMode::Replica | ReplicationMode::ExtendedReplica => {
                    match r0 {
                        Some(s) if !REPLICA_SIDE.contains(&s) => errs.push(format!(
                            "{at}: {} in {s}, which no row leads to",
                            v.mode.ident()
                        )),
                        None if !busy => {
                            errs.push(format!("{at}: {} without a relationship", v.mode.ident()))
                        }
                        _ => {}
                    }
                    match r1 {
                        Some(s) if v.mode == ReplicationMode::ExtendedReplica => errs.push(
                            format!("{at}: ExtendedReplica with an extended relationship in {s}"),
                        ),
                        Some(s) if !EXTENDED_SIDE.contains(&s) => {
                            errs.push(format!("{at}: extended relationship in {s}"))
                        }
                        _ => {}
                    }
                    // A replica runs only once failed over.
                    if !v.is_off() && !r0.is_some_and(|s| RUNNING_REPLICA_STATES.contains(&s)) {
                        errs.push(format!(
                            "{at}: {} is running ({}) in {}",
                            v.mode.ident(),
                            v.power,
                            r0.map_or("no relationship".into(), |s| s.to_string())
                        ));
                    }
                }
                ReplicationMode::None => {
                    // Only enable-as-replica shows a relationship (its `via`, 2) before the mode.
                    let transient =
                        busy && r0 == Some(S::WaitingToCompleteInitialReplication) && r1.is_none();
                    if (r0.is_some() || r1.is_some()) && !transient {
                        errs.push(format!("{at}: mode None with relationships {r0:?} {r1:?}"));
                    }
                }
                ReplicationMode::TestReplica => {
                    if r0.is_some() || r1.is_some() {
                        errs.push(format!("{at}: test replica with a relationship"));
                    }
                    let orig = v.test_of.as_deref().and_then(|o| h.vms.get(o));
                    if orig.and_then(|o| o.test_replica.as_deref()) != Some(vid.as_str()) {
                        errs.push(format!("{at}: test VM not linked from {:?}", v.test_of));
                    }
                }
            }
            if let Some(t) = &v.test_replica {
                let ok = h.vms.get(t).is_some_and(|t| {
                    t.mode == ReplicationMode::TestReplica && t.test_of.as_deref() == Some(vid)
                });
                if !ok {
                    errs.push(format!("{at}: test_replica {t} is not its test VM"));
                }
            }

            // The two sides of a relationship.
            if v.mode == ReplicationMode::Primary
                && let Some(r) = v.rel(RelIx::Primary)
                && let Some(peer_host) = w.resolve_host(&r.peer_host)
                && let Some(peer) = w.vm(&peer_host, vid)
                && let Err(why) = pair_allowed(w, hname, peer)
            {
                errs.push(format!(
                    "{at}: Primary in {} with peer {peer_host}/{} ({}): {why}",
                    r.state,
                    peer.name,
                    peer.mode.ident()
                ));
            }
        }
        for (jid, j) in &h.jobs {
            let at = JobAt(hname, jid, j.job_type);
            round_trip!(errs, at, JobState, j.state);
            round_trip!(errs, at, JobType, j.job_type);
            if &j.id != jid || &j.host != hname {
                errs.push(format!("{at}: stored as {} on {}", j.id, j.host));
            }
            if j.is_running() != j.ended.is_none() {
                errs.push(format!("{at}: state {} but ended {:?}", j.state, j.ended));
            }
            if j.percent > 100
                || (j.is_running() && j.percent > 99)
                || (j.state.succeeded() && j.percent != 100)
            {
                errs.push(format!("{at}: state {} with {}%", j.state, j.percent));
            }
            // A running job about a VM that is gone: only a DestroySystem whose test VM was
            // removed by the test failover's rollback.
            if j.is_running()
                && let Some(vm) = j.change.as_ref().and_then(|c| c.vm.as_deref())
                && !h.vms.contains_key(vm)
                && j.job_type != JobType::RemoveTestReplica
            {
                errs.push(format!(
                    "{at}: running for VM {vm}, which {hname} does not have"
                ));
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("\n    "))
    }
}

/// Persistence: the world's JSON reads back to the same world (compared as JSON: events and
/// any derived, unserialized bookkeeping are not part of the saved state).
fn check_json_round_trip(w: &World) -> Result<(), String> {
    let v = serde_json::to_value(w).map_err(|e| e.to_string())?;
    let back: World = serde_json::from_value(v.clone())
        .map_err(|e| format!("the world's JSON does not read back: {e}"))?;
    let again = serde_json::to_value(&back).map_err(|e| e.to_string())?;
    if v == again {
        return Ok(());
    }
    let d = first_difference(&v, &again, "world").unwrap_or_default();
    Err(format!(
        "the world's JSON does not read back to the same world: {d}"
    ))
}

/// The replication pages' codes, and Msvm_ConcreteJob.RequestStateChange's own (DOC
/// requeststatechange-msvm-concretejob: 1 Not Supported, 5 Invalid Parameter, 4097 Invalid
/// State Transition).
fn code_is_documented(code: u32) -> bool {
    matches!(code, 1 | 5 | 4097) || ReturnCode::from_number(code).is_ok()
}

/// The world without what a refused call may change (see `World::without_bookkeeping`).
fn comparable(w: &World) -> World {
    w.without_bookkeeping()
}

fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(xa), Some(ya)) => {
                        if let Some(d) = first_difference(xa, ya, &p) {
                            return Some(d);
                        }
                    }
                    (xa, ya) => return Some(format!("{p}: {xa:?} vs {ya:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (xa, ya))| first_difference(xa, ya, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// One line per VM, for failure messages.
fn summary(w: &World) -> String {
    let mut s = String::new();
    for (h, host) in w.hosts() {
        for v in host.vms.values() {
            let st = |ix| {
                v.rel(ix).map_or("-".to_string(), |r| {
                    format!("{}→{}", r.state.number(), r.peer_host)
                })
            };
            let _ = writeln!(
                s,
                "    {h}/{:<16} {} mode {:<15} power {:<9} rel0 {:<16} rel1 {:<16} busy {:?}",
                v.name,
                short(&v.id),
                v.mode.ident(),
                v.power.ident(),
                st(RelIx::Primary),
                st(RelIx::Extended),
                v.busy_with.as_deref().map(short)
            );
        }
        for j in host.jobs.values().filter(|j| j.is_running()) {
            let _ = writeln!(
                s,
                "    {h} job {} {} {} {}% vm {:?}",
                short(&j.id),
                j.job_type.ident(),
                j.state.ident(),
                j.percent,
                j.change.as_ref().and_then(|c| c.vm.as_deref()).map(short)
            );
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------------

struct Outcome {
    world: Value,
    answers: Vec<Answer>,
    events: Vec<Event>,
    trace: Vec<String>,
}

struct Runner {
    world: World,
    trace: Vec<String>,
    answers: Vec<Answer>,
    events: Vec<Event>,
    last_now: u64,
    check: bool,
}

impl Runner {
    fn fail(&self, why: String) -> String {
        let mut s = format!("{why}\n  trace (profile {}):\n", self.world.profile().name);
        for l in &self.trace {
            let _ = writeln!(s, "    {l}");
        }
        let _ = write!(s, "  world:\n{}", summary(&self.world));
        s
    }

    /// Invariants after a step; also collects the step's events.
    fn after_step(&mut self) -> Result<(), String> {
        let events = self.world.drain_events();
        if self.world.now() < self.last_now {
            return Err(self.fail(format!(
                "time went back: {} < {}",
                self.world.now(),
                self.last_now
            )));
        }
        for e in &events {
            let at = match e {
                Event::StateChanged { at, .. }
                | Event::ModeChanged { at, .. }
                | Event::PowerChanged { at, .. }
                | Event::JobStarted { at, .. }
                | Event::JobEnded { at, .. }
                | Event::VmCreated { at, .. }
                | Event::VmRemoved { at, .. } => *at,
            };
            if at < self.last_now || at > self.world.now() {
                return Err(self.fail(format!(
                    "event at {at} outside [{}, {}]: {e:?}",
                    self.last_now,
                    self.world.now()
                )));
            }
        }
        self.last_now = self.world.now();
        self.events.extend(events);
        if self.check
            && let Err(why) = check_world(&self.world)
        {
            return Err(self.fail(format!("invariant broken:\n    {why}")));
        }
        Ok(())
    }

    fn no_running_jobs(&self, after: &str) -> Result<(), String> {
        let running: Vec<String> = self
            .world
            .running_jobs()
            .map(|j| format!("{} {} ({:?})", j.host, j.job_type.ident(), j.pace))
            .collect();
        if running.is_empty() {
            Ok(())
        } else {
            Err(self.fail(format!("jobs still running after {after}: {running:?}")))
        }
    }

    fn call(&mut self, host_ix: u8, vm: &VmPick, call: &CallGen, polls: u8) -> Result<(), String> {
        let host = pick(&host_names(&self.world), host_ix).expect("a host");
        let op = avoid_known(
            &self.world,
            &host,
            resolve_call(&self.world, &host, vm, call),
        );
        let host = match &op {
            Operation::RequestJobStateChange { job, .. } => self
                .world
                .hosts()
                .values()
                .find(|h| h.jobs.contains_key(job))
                .map_or(host, |h| h.name.clone()),
            _ => host,
        };
        let now = self.world.now();
        // Catch up first, so the comparison below sees only what the call itself does.
        self.world.advance(now);
        self.after_step()?;
        let before = self.check.then(|| comparable(&self.world));
        let vm_name = op
            .vm()
            .and_then(|v| self.world.find_vm(&host, v))
            .map_or("?".to_string(), |v| v.name.clone());
        let ans = self.world.apply(&host, &op, now);
        let op_text = serde_json::to_string(&op).unwrap_or_default();
        let mut line = format!(
            "#{} {host} [{vm_name}] {op_text} -> {}",
            self.trace.len(),
            ans.code
        );
        if let Some(j) = &ans.job {
            let _ = write!(line, " job {}", short(j));
        }
        if let Some(r) = ans.rule {
            let _ = write!(line, " rule {r}");
        }
        if let Some(r) = &ans.reason {
            let _ = write!(line, " ({r})");
        }
        if !ans.faults.is_empty() {
            let _ = write!(line, " faults {:?}", ans.faults);
        }
        self.trace.push(line);

        if self.check {
            if !code_is_documented(ans.code) {
                return Err(self.fail(format!("undocumented ReturnValue {}", ans.code)));
            }
            if (ans.code == 4096) != ans.job.is_some() {
                return Err(self.fail(format!(
                    "ReturnValue {} with job {:?}: 4096 must come with a job and only 4096",
                    ans.code, ans.job
                )));
            }
            if let Some(j) = &ans.job
                && self.world.job(&host, j).is_none()
            {
                return Err(self.fail(format!(
                    "the answer names job {j}, which {host} does not have"
                )));
            }
            if let Some(t) = &ans.resulting_system
                && self
                    .world
                    .vm(&host, t)
                    .is_none_or(|v| v.mode != ReplicationMode::TestReplica)
            {
                return Err(self.fail(format!("ResultingSystem {t} is not a test VM on {host}")));
            }
            let fault_answered = ans
                .faults
                .iter()
                .any(|f| matches!(f, FaultKind::ReturnCode { .. } | FaultKind::HostDown));
            let refused = !matches!(ans.code, 0 | 4096);
            if (refused || fault_answered)
                && let Some(before) = &before
            {
                let after = comparable(&self.world);
                // Fast path: equal as values. Otherwise compare the serialized state, which
                // leaves out derived bookkeeping the engine may keep beside the data.
                if *before != after {
                    let b = serde_json::to_value(before).unwrap_or_default();
                    let a = serde_json::to_value(&after).unwrap_or_default();
                    if b != a {
                        let d = first_difference(&b, &a, "world").unwrap_or_default();
                        return Err(self.fail(format!(
                            "the call was refused ({}) but changed the world: {d}",
                            ans.code
                        )));
                    }
                }
            }
        }
        let job = ans.job.clone();
        self.answers.push(ans);
        self.after_step()?;
        if let Some(j) = job {
            for _ in 0..polls {
                self.world.observe_job(&host, &j);
                self.after_step()?;
            }
        }
        Ok(())
    }

    fn step(&mut self, s: &Step) -> Result<(), String> {
        match s {
            Step::Call {
                host,
                vm,
                call,
                polls,
            } => return self.call(*host, vm, call, *polls),
            Step::Advance(ms) => {
                self.trace
                    .push(format!("#{} advance {ms} ms", self.trace.len()));
                let t = self.world.now() + ms;
                self.world.advance(t);
            }
            Step::Settle => {
                self.trace.push(format!("#{} settle", self.trace.len()));
                self.world.settle();
                self.after_step()?;
                self.no_running_jobs("settle()")?;
                return check_json_round_trip(&self.world).map_err(|e| self.fail(e));
            }
            Step::Pace(p) => {
                self.trace.push(format!("#{} pace {p:?}", self.trace.len()));
                self.world
                    .set_pace(p.map_or(PaceMode::Time, PaceMode::Polls));
            }
            Step::Observe(i) => {
                let mut jobs: Vec<(String, String, bool)> = self
                    .world
                    .hosts()
                    .values()
                    .flat_map(|h| h.jobs.values())
                    .map(|j| (j.host.clone(), j.id.clone(), j.is_running()))
                    .collect();
                let running: Vec<_> = jobs.iter().filter(|j| j.2).cloned().collect();
                if !running.is_empty() {
                    jobs = running;
                }
                if let Some((h, id, _)) = pick(&jobs, *i) {
                    self.trace.push(format!(
                        "#{} observe {h} job {}",
                        self.trace.len(),
                        short(&id)
                    ));
                    self.world.observe_job(&h, &id);
                }
            }
            Step::Fault(f) => {
                let spec = resolve_fault(&self.world, f);
                let text = serde_json::to_string(&spec).unwrap_or_default();
                self.trace
                    .push(format!("#{} add fault {text}", self.trace.len()));
                // The control API may refuse a rule (e.g. return_code 4096, which would promise
                // a job); a refused rule changes nothing.
                let before = comparable(&self.world);
                if let Err(e) = self.world.add_fault(spec) {
                    self.trace.push(format!("    refused: {e}"));
                    if comparable(&self.world) != before {
                        return Err(self.fail("a refused fault rule changed the world".into()));
                    }
                }
            }
            Step::ClearFaults => {
                self.trace
                    .push(format!("#{} clear faults", self.trace.len()));
                self.world.clear_faults();
            }
        }
        self.after_step()
    }
}

fn execute(input: &Input, check: bool) -> Result<Outcome, String> {
    let mut world = build_world(input);
    world.set_record_events(true);
    world.drain_events();
    let last_now = world.now();
    let mut r = Runner {
        world,
        trace: Vec::new(),
        answers: Vec::new(),
        events: Vec::new(),
        last_now,
        check,
    };
    r.after_step()?;
    for s in &input.steps {
        r.step(s)?;
    }
    // Liveness: every job ends once the world settles and an hour passes.
    r.trace
        .push(format!("#{} (end) settle + 1 h", r.trace.len()));
    r.world.settle();
    let t = r.world.now() + HOUR_MS;
    r.world.advance(t);
    r.after_step()?;
    r.no_running_jobs("settle() and one more hour")?;
    if check {
        check_json_round_trip(&r.world).map_err(|e| r.fail(e))?;
    }
    Ok(Outcome {
        world: serde_json::to_value(&r.world).map_err(|e| e.to_string())?,
        answers: r.answers,
        events: r.events,
        trace: r.trace,
    })
}

fn check_case(input: &Input) -> Result<(), String> {
    let a = execute(input, true)?;
    // Determinism: the same seed and steps give the same answers, events and world.
    let b = execute(input, false)?;
    let trace = || a.trace.join("\n    ");
    if a.trace != b.trace {
        let i = a.trace.iter().zip(&b.trace).position(|(x, y)| x != y);
        return Err(format!(
            "two runs diverge at trace line {i:?}:\n    {}",
            trace()
        ));
    }
    if a.answers != b.answers {
        let i = a.answers.iter().zip(&b.answers).position(|(x, y)| x != y);
        return Err(format!(
            "two runs give different answers (call {i:?}):\n    {}",
            trace()
        ));
    }
    if a.events != b.events {
        return Err(format!("two runs give different events:\n    {}", trace()));
    }
    if a.world != b.world
        && let Some(d) = first_difference(&a.world, &b.world, "world")
    {
        return Err(format!(
            "two runs end in different worlds: {d}\n    {}",
            trace()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Every seed that ever made this test fail, replayed on every run (besides its shrunk
/// sequence in `regressions`, which stays meaningful if the generators change).
const FAILED_SEEDS: &[u64] = &[9_713_903_917_676_320_340];

/// The seed CI always runs, so a red build can be replayed exactly.
const PINNED_SEED: u64 = 0x5EED_CAFE_F00D_0001;

/// How many fresh seeds CI explores besides the pinned one (`PROPTEST_FRESH_SEEDS` changes it).
const CI_FRESH_SEEDS: usize = 2;

/// Where the run's cases come from, each printed before it runs so any failure can be replayed.
/// `PROPTEST_SEED` (decimal or 0x-hex): that seed alone. Otherwise the failed seeds, then: in CI
/// (`CI` set) the pinned seed and `CI_FRESH_SEEDS` fresh ones (CI keeps exploring, and the
/// pinned seed keeps a red build reproducible); locally one fresh seed.
fn run_seeds() -> Vec<(&'static str, u64)> {
    if let Ok(s) = std::env::var("PROPTEST_SEED") {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => s.parse(),
        };
        return vec![(
            "given",
            parsed.unwrap_or_else(|e| panic!("PROPTEST_SEED={s}: {e}")),
        )];
    }
    let mut seeds: Vec<(&'static str, u64)> =
        FAILED_SEEDS.iter().map(|s| ("failed once", *s)).collect();
    let fresh = if std::env::var_os("CI").is_some() {
        seeds.push(("pinned", PINNED_SEED));
        std::env::var("PROPTEST_FRESH_SEEDS")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(CI_FRESH_SEEDS)
    } else {
        1
    };
    for i in 0..fresh {
        seeds.push(("fresh", fresh_seed(i as u64)));
    }
    seeds
}

fn fresh_seed(salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u64(salt);
    h.finish()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

#[test]
fn random_operation_sequences_keep_the_model_invariants() {
    for (kind, seed) in run_seeds() {
        eprintln!("properties: {kind} seed {seed} (replay with PROPTEST_SEED={seed})");
        run_property(seed);
    }
}

fn run_property(seed: u64) {
    let mut bytes = [0u8; 32];
    let mut st = seed;
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix(&mut st).to_le_bytes());
    }
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 4096,
        // A failing run shrinks for at most 10 s.
        max_shrink_time: 10_000,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let result = runner.run(&input(), |input| {
        check_case(&input).map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, input)) => {
            let mut steps = String::new();
            for (i, s) in input.steps.iter().enumerate() {
                let _ = writeln!(steps, "    {i:>2}: {s:?}");
            }
            panic!(
                "property failed; replay with PROPTEST_SEED={seed}, then add the seed to \
                 FAILED_SEEDS and the shrunk sequence to `regressions`\n\
                 {reason}\n\
                 shrunk input: {} topology, world_seed {}, profile {:?}, {} steps:\n{steps}",
                if input.chain { "chain" } else { "default" },
                input.world_seed,
                PROFILE_NAMES[input.profile % PROFILE_NAMES.len()],
                input.steps.len()
            );
        }
        Err(TestError::Abort(why)) => {
            panic!("property run aborted (PROPTEST_SEED={seed}): {why}")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regression sequences: the shrunk cases of model bugs found by the random test, replayed on
// every run so that a fix is confirmed (and a regression caught) without depending on the seed.
// Hosts and VMs are by index: default topology HV-PRIMARY 0, HV-REPLICA 1; app-01 0, web-01 1,
// db-01 2, build-01 3. Chain topology HV-A 0, HV-B 1, HV-C 2.
// ---------------------------------------------------------------------------------------------

fn call(host: u8, vm: u8, call: CallGen) -> Step {
    Step::Call {
        host,
        vm: VmPick::Index(vm),
        call,
        polls: 0,
    }
}

fn no_patch() -> PatchGen {
    PatchGen {
        connection: HostPick::Missing,
        interval: None,
        history: None,
        auth: None,
        thumbprint: false,
    }
}

fn patch_to(host: u8) -> PatchGen {
    PatchGen {
        connection: HostPick::Index(host),
        ..no_patch()
    }
}

fn regressions() -> Vec<(&'static str, Input)> {
    let default = |steps: Vec<Step>| Input {
        chain: false,
        world_seed: 1,
        profile: 0,
        steps,
    };
    let (p, r) = (0, 1);
    let (app, web, db, build) = (0, 1, 2, 3);
    vec![
        (
            "extending a replica toward its own primary's host turns the running primary into \
             an ExtendedReplica (fixed: PeerHasNoCopy)",
            default(vec![call(r, web, CallGen::Create(patch_to(p)))]),
        ),
        (
            "RRSC(2) on a running VM makes a running Replica (fixed)",
            default(vec![call(p, build, CallGen::Rrsc(2, false))]),
        ),
        (
            "a return_code 4096 fault answers 4096 without a job (fixed: the rule is refused)",
            default(vec![
                Step::Fault(FaultGen {
                    kind: FaultKindGen::ReturnCode(1),
                    host: None,
                    method: None,
                    vm: None,
                    count: None,
                    probability_pct: None,
                }),
                call(p, app, CallGen::Rrsc(7, false)),
            ]),
        ),
        (
            "reverse completes while the old primary runs RRSC(4): the new Replica ends in 4",
            default(vec![
                call(r, web, CallGen::Failover(RpPick::None)),
                call(p, web, CallGen::Power(3)),
                Step::Advance(800),
                call(r, web, CallGen::Reverse(no_patch())),
                Step::Advance(1),
                call(p, web, CallGen::Rrsc(4, false)),
            ]),
        ),
        (
            "cancelling the old primary's job after a reverse restores mode Primary: split brain",
            default(vec![
                call(r, web, CallGen::Failover(RpPick::None)),
                Step::Settle,
                Step::Pace(Some(5)),
                call(p, web, CallGen::Rrsc(7, false)),
                Step::Pace(None),
                call(r, web, CallGen::Reverse(no_patch())),
                Step::Advance(1000),
                call(p, 0, CallGen::Cancel(JobPick::Running(0), 4)),
            ]),
        ),
        (
            "StartReplication's PeerState(3) overwrites a failed-over, running replica",
            default(vec![
                call(p, db, CallGen::Rrsc(7, false)),
                Step::Advance(800),
                call(r, db, CallGen::Failover(RpPick::None)),
                Step::Advance(800),
                call(r, db, CallGen::Power(2)),
                call(p, db, CallGen::Rrsc(1, false)),
                Step::Advance(800),
                call(p, db, CallGen::StartReplication(1)),
            ]),
        ),
        (
            "two CreateReplicationRelationship toward the same host both pass PeerHasNoCopy \
             (checked at accept only); the second completion converts the first one's new \
             replica",
            Input {
                chain: true,
                world_seed: 1,
                profile: 0,
                steps: vec![
                    // HV-B's pair-02 (primary toward HV-C) drops its relationship, then
                    // replicates to HV-A while HV-C's pair-02 extends to HV-A too.
                    call(1, 2, CallGen::Remove(false)),
                    Step::Advance(800),
                    call(1, 2, CallGen::Create(patch_to(0))),
                    call(2, 1, CallGen::Create(patch_to(0))),
                ],
            },
        ),
        (
            "ImportInitialReplica on an ExtendedReplica sets its peer's *primary* relationship \
             (a failed-over, running replica goes back to 3)",
            Input {
                chain: true,
                world_seed: 1,
                profile: 0,
                steps: vec![
                    // HV-C's pair-02 (replica of HV-B) extends to HV-A, fails over, runs.
                    call(2, 1, CallGen::Create(patch_to(0))),
                    Step::Advance(800),
                    call(2, 1, CallGen::Failover(RpPick::None)),
                    Step::Advance(800),
                    call(2, 1, CallGen::Power(2)),
                    // HV-A's new ExtendedReplica imports its initial copy.
                    call(0, 2, CallGen::Import),
                ],
            },
        ),
        (
            "ChangeReplicationModeToPrimary after the extended replica removed its relationship \
             makes it a Replica without a relationship (PROPTEST_SEED 9713903917676320340; \
             fixed: only a peer still in ExtendedReplica is promoted)",
            Input {
                chain: true,
                world_seed: 1347200020037176242,
                profile: 0,
                steps: vec![
                    // chain-01: HV-A -> HV-B -> HV-C. A test failover on the extended
                    // replica, a failover on the middle host, HV-C drops its relationship,
                    // HV-B commits and becomes the primary of the extended relationship.
                    call(2, 0, CallGen::TestReplica(RpPick::None)),
                    Step::Advance(800),
                    call(1, 0, CallGen::Failover(RpPick::None)),
                    call(2, 0, CallGen::Remove(false)),
                    Step::Advance(800),
                    call(1, 0, CallGen::Commit),
                    Step::Advance(800),
                    call(1, 0, CallGen::ToPrimary),
                ],
            },
        ),
    ]
}

#[test]
fn known_bug_sequences_keep_the_model_invariants() {
    let mut failures = Vec::new();
    for (name, input) in regressions() {
        if let Err(why) = check_case(&input) {
            failures.push(format!("* {name}\n  {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} regression sequence(s) fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
