//! Soak (`replica-sim soak`): a long run of mixed WS-Management calls, as real SOAP bytes,
//! from several threads into one world through [`dispatch::handle`], the sans-IO core the
//! HTTP server calls under the world's lock. Every call is checked as it happens, and the
//! whole run at its end:
//!
//! * the journal records every call exactly once: its cursor equals the calls made, the kept
//!   entries are consecutive, and each entry matches its answer (status, ReturnValue, job);
//! * every accepted call (4096) starts exactly one job, with an id never seen before, and no
//!   refused call starts one; every job ends exactly once, and only a started one;
//! * a VM never has two running jobs, and `busy_with` names a running one;
//! * coverage counted one rule per call that reached the transition table.
//!
//! CI runs a million calls in the release binary (`scripts/test.sh`); `tests/it/soak.rs` runs
//! a short one. It goes through dispatch rather than HTTP so that a million calls fit in well
//! under a minute on two cores; `tests/it/race.rs` races real connections.

use crate::dispatch::{self, Access};
use crate::state::{ClockMode, Limits, WorldSlot, lock};
use replica_core::profile::Profile;
use replica_core::topology::ProfileSpec;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::wsman::ns::{ANONYMOUS, WQL_DIALECT as WQL, class_uri};
use crate::wsman::request::{self, SelectorSet};

const HOSTS: [&str; 2] = ["HV-PRIMARY", "HV-REPLICA"];
const VMS: [&str; 4] = [
    "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01",
    "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02",
    "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B03",
    "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B04",
];
/// Replication service methods that take a VM reference (and nothing else required).
const SERVICE_METHODS: [&str; 9] = [
    "InitiateFailover",
    "RevertFailover",
    "CommitFailover",
    "ReverseReplicationRelationship",
    "InitiateFailback",
    "TestReplicaSystem",
    "Resynchronize",
    "GetReplicationStatisticsEx",
    "ResetReplicationStatistics",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn envelope(
    action: &str,
    resource: &str,
    selectors: &[(&str, &str)],
    body: &str,
    n: u64,
) -> String {
    let selectors = SelectorSet::from(selectors.to_vec());
    request::envelope(
        &request::Headers {
            to: "http://127.0.0.1:5985/wsman",
            resource_uri: resource,
            action,
            message_id: &format!("uuid:50A50A50-0000-4000-8000-{n:012X}"),
            max_envelope_size: 512_000,
            locale: "en-US",
            selectors: Some(&selectors),
            operation_timeout: Duration::from_secs(60),
        },
        body,
    )
}

fn vm_ref(element: &str, vm: &str) -> String {
    let cs = class_uri("Msvm_ComputerSystem");
    format!(
        r#"<p:{element}><a:Address>{ANONYMOUS}</a:Address><a:ReferenceParameters><w:ResourceURI>{cs}</w:ResourceURI><w:SelectorSet><w:Selector Name="CreationClassName">Msvm_ComputerSystem</w:Selector><w:Selector Name="Name">{vm}</w:Selector></w:SelectorSet></a:ReferenceParameters></p:{element}>"#
    )
}

/// What a thread is about to send.
struct Call {
    host: &'static str,
    bytes: Vec<u8>,
    access: Access,
    invoke: bool,
    kind: &'static str,
}

/// What every thread needs to build its next call: ids that earlier answers gave.
#[derive(Default)]
struct Known {
    jobs: Vec<(String, String)>,
    test_vms: Vec<(String, String)>,
}

fn build(rng: &mut Rng, n: u64, contexts: &mut Vec<(&'static str, String)>, known: &Known) -> Call {
    let host = *rng.pick(&HOSTS);
    let vm = *rng.pick(&VMS);
    let get = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get";
    let call = |kind: &'static str, host: &'static str, xml: String, invoke: bool| Call {
        host,
        bytes: xml.into_bytes(),
        access: Access::ReadWrite,
        invoke,
        kind,
    };
    match rng.below(100) {
        0..=2 => call("Identify", host, request::identify_envelope(), false),
        3..=11 => call(
            "Get",
            host,
            envelope(
                get,
                &class_uri("Msvm_ComputerSystem"),
                &[("CreationClassName", "Msvm_ComputerSystem"), ("Name", vm)],
                "",
                n,
            ),
            false,
        ),
        12..=18 => {
            let class = if rng.below(3) == 0 {
                "Msvm_ConcreteJob"
            } else {
                "Msvm_ComputerSystem"
            };
            let body = format!(
                r#"<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>2</w:MaxElements><w:Filter Dialect="{WQL}">SELECT * FROM {class}</w:Filter></n:Enumerate>"#
            );
            call(
                "Enumerate",
                host,
                envelope(
                    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
                    &class_uri("*"),
                    &[],
                    &body,
                    n,
                ),
                false,
            )
        }
        19..=25 => {
            let (h, ctx) = if contexts.is_empty() || rng.below(10) == 0 {
                (
                    host,
                    "uuid:00000000-0000-0000-0000-000000000000".to_string(),
                )
            } else {
                let i = rng.below(contexts.len());
                contexts.swap_remove(i)
            };
            let (action, kind, body) = if rng.below(4) == 0 {
                (
                    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Release",
                    "Release",
                    format!(
                        "<n:Release><n:EnumerationContext>{ctx}</n:EnumerationContext></n:Release>"
                    ),
                )
            } else {
                (
                    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull",
                    "Pull",
                    format!(
                        "<n:Pull><n:EnumerationContext>{ctx}</n:EnumerationContext><n:MaxElements>2</n:MaxElements></n:Pull>"
                    ),
                )
            };
            call(
                kind,
                h,
                envelope(action, &class_uri("Msvm_ComputerSystem"), &[], &body, n),
                false,
            )
        }
        26..=31 => {
            let (h, job) = match known.jobs.len() {
                0 => (
                    host.to_string(),
                    "00000000-0000-0000-0000-000000000000".to_string(),
                ),
                len => known.jobs[len - 1 - rng.below(len.min(8))].clone(),
            };
            let h = if h == HOSTS[0] { HOSTS[0] } else { HOSTS[1] };
            call(
                "Get",
                h,
                envelope(
                    get,
                    &class_uri("Msvm_ConcreteJob"),
                    &[("InstanceID", job.as_str())],
                    "",
                    n,
                ),
                false,
            )
        }
        32..=33 => {
            // A request cut short: a fault, journaled like any other call.
            let whole = envelope(
                get,
                &class_uri("Msvm_ComputerSystem"),
                &[("Name", vm)],
                "",
                n,
            );
            let cut = rng.below(whole.len());
            call("Malformed", host, whole[..cut].to_string(), false)
        }
        34..=35 => {
            let mut c = service_call(rng, host, vm, n);
            c.access = Access::ReadOnly;
            c.kind = "ReadOnly";
            c
        }
        36..=45 => {
            let uri = class_uri("Msvm_ComputerSystem");
            // Suspend, resume, prepare for a planned failover, cancel a resync; power on, off.
            let (method, state) = match rng.below(6) {
                0 => ("RequestReplicationStateChange", 7),
                1 => ("RequestReplicationStateChange", 3),
                2 => ("RequestReplicationStateChange", 4),
                3 => ("RequestReplicationStateChange", 9),
                4 => ("RequestStateChange", 2),
                _ => ("RequestStateChange", 3),
            };
            let body = format!(
                r#"<p:{method}_INPUT xmlns:p="{uri}"><p:RequestedState>{state}</p:RequestedState></p:{method}_INPUT>"#
            );
            call(
                "Invoke",
                host,
                envelope(
                    &format!("{uri}/{method}"),
                    &uri,
                    &[("CreationClassName", "Msvm_ComputerSystem"), ("Name", vm)],
                    &body,
                    n,
                ),
                true,
            )
        }
        46..=48 => {
            // Cancel a recent job.
            let (h, job) = match known.jobs.last() {
                Some(j) => j.clone(),
                None => (
                    host.to_string(),
                    "00000000-0000-0000-0000-000000000000".to_string(),
                ),
            };
            let h = if h == HOSTS[0] { HOSTS[0] } else { HOSTS[1] };
            let uri = class_uri("Msvm_ConcreteJob");
            let body = format!(
                r#"<p:RequestStateChange_INPUT xmlns:p="{uri}"><p:RequestedState>4</p:RequestedState></p:RequestStateChange_INPUT>"#
            );
            call(
                "Invoke",
                h,
                envelope(
                    &format!("{uri}/RequestStateChange"),
                    &uri,
                    &[("InstanceID", job.as_str())],
                    &body,
                    n,
                ),
                true,
            )
        }
        49..=50 if !known.test_vms.is_empty() => {
            let (h, test_vm) = rng.pick(&known.test_vms).clone();
            let h = if h == HOSTS[0] { HOSTS[0] } else { HOSTS[1] };
            let uri = class_uri("Msvm_VirtualSystemManagementService");
            let body = format!(
                r#"<p:DestroySystem_INPUT xmlns:p="{uri}">{}</p:DestroySystem_INPUT>"#,
                vm_ref("AffectedSystem", &test_vm)
            );
            call(
                "Invoke",
                h,
                envelope(
                    &format!("{uri}/DestroySystem"),
                    &uri,
                    &[
                        ("CreationClassName", "Msvm_VirtualSystemManagementService"),
                        ("Name", "vmms"),
                        ("SystemCreationClassName", "Msvm_ComputerSystem"),
                        ("SystemName", h),
                    ],
                    &body,
                    n,
                ),
                true,
            )
        }
        _ => service_call(rng, host, vm, n),
    }
}

fn service_call(rng: &mut Rng, host: &'static str, vm: &str, n: u64) -> Call {
    let method = *rng.pick(&SERVICE_METHODS);
    let uri = class_uri("Msvm_ReplicationService");
    let body = format!(
        r#"<p:{method}_INPUT xmlns:p="{uri}">{}</p:{method}_INPUT>"#,
        vm_ref("ComputerSystem", vm)
    );
    Call {
        host,
        bytes: envelope(
            &format!("{uri}/{method}"),
            &uri,
            &[
                ("CreationClassName", "Msvm_ReplicationService"),
                ("Name", "replicasvc"),
                ("SystemCreationClassName", "Msvm_ComputerSystem"),
                ("SystemName", host),
            ],
            &body,
            n,
        )
        .into_bytes(),
        access: Access::ReadWrite,
        invoke: true,
        kind: "Invoke",
    }
}

/// The text between `open` and the next `<`.
fn after<'a>(body: &'a str, open: &str) -> Option<&'a str> {
    let at = body.find(open)? + open.len();
    body[at..].split('<').next()
}

/// Everything the run learned, under the world's lock.
struct Shared {
    slot: WorldSlot,
    calls: u64,
    /// job → the rule that started it.
    started: HashMap<String, String>,
    ended: HashSet<String>,
    calls_with_rule: u64,
    accepted: u64,
    kinds: BTreeMap<&'static str, u64>,
    known: Known,
}

/// A VM never has two running jobs of its own, its own running job is the one it is busy
/// with, and a VM that is busy is busy with a job that runs (on its host, or on the peer
/// host when that job reserved it).
fn check_invariants(w: &replica_core::World) -> Result<(), String> {
    let running: HashSet<&str> = w
        .hosts()
        .values()
        .flat_map(|h| h.jobs.values())
        .filter(|j| j.is_running())
        .map(|j| j.id.as_str())
        .collect();
    for (hname, h) in w.hosts() {
        for (vid, v) in &h.vms {
            let own: Vec<&str> = h
                .jobs
                .values()
                .filter(|j| j.is_running())
                .filter(|j| j.change.as_ref().and_then(|c| c.vm.as_deref()) == Some(vid.as_str()))
                .map(|j| j.id.as_str())
                .collect();
            if own.len() > 1 {
                return Err(format!("{hname}/{}: running jobs {own:?}", v.name));
            }
            if let Some(j) = own.first()
                && v.busy_with.as_deref() != Some(*j)
            {
                return Err(format!(
                    "{hname}/{}: runs {j} but busy_with {:?}",
                    v.name, v.busy_with
                ));
            }
            if let Some(b) = v.busy_with.as_deref()
                && !running.contains(b)
            {
                return Err(format!(
                    "{hname}/{}: busy_with {b}, which does not run",
                    v.name
                ));
            }
        }
    }
    Ok(())
}

/// Takes the model's events of the last call into the run's books.
fn drain_events(s: &mut Shared) -> Result<Vec<String>, String> {
    let mut started_now = Vec::new();
    for e in s.slot.world.drain_events() {
        match e {
            replica_core::engine::Event::JobStarted {
                host, job, rule, ..
            } => {
                if s.started.insert(job.clone(), rule).is_some() {
                    return Err(format!("job {job} started twice"));
                }
                s.known.jobs.push((host, job.clone()));
                if s.known.jobs.len() > 64 {
                    s.known.jobs.remove(0);
                }
                started_now.push(job);
            }
            replica_core::engine::Event::JobEnded { job, .. } => {
                if !s.started.contains_key(&job) {
                    return Err(format!("job {job} ended but never started"));
                }
                if !s.ended.insert(job.clone()) {
                    return Err(format!("job {job} ended twice"));
                }
            }
            replica_core::engine::Event::VmCreated { host, vm, .. } => {
                s.known.test_vms.push((host, vm));
            }
            replica_core::engine::Event::VmRemoved { vm, .. } => {
                s.known.test_vms.retain(|(_, v)| *v != vm);
            }
            _ => {}
        }
    }
    Ok(started_now)
}

/// One call under the lock, with every per-call check.
fn one_call(
    s: &mut Shared,
    rng: &mut Rng,
    call: &Call,
    limits: &Limits,
) -> Result<Option<String>, String> {
    if rng.below(3) == 0 {
        let ms = rng.below(400) as u64;
        s.slot.clock.advance(ms);
    }
    let reply = dispatch::handle(&mut s.slot, call.host, &call.bytes, call.access, limits);
    s.calls += 1;
    *s.kinds.entry(call.kind).or_default() += 1;
    if !matches!(reply.status, 200 | 400 | 500) {
        return Err(format!("status {}", reply.status));
    }
    // The journal: one entry per call, in order, matching the answer.
    if s.slot.next_seq != s.calls + 1 {
        return Err(format!(
            "journal cursor {} after {} calls",
            s.slot.next_seq, s.calls
        ));
    }
    let entry = s.slot.journal.back().ok_or("empty journal")?;
    if entry.seq != s.calls || entry.http_status != reply.status {
        return Err(format!(
            "journal entry {} (status {}) for call {} (status {})",
            entry.seq, entry.http_status, s.calls, reply.status
        ));
    }
    let (entry_code, entry_job, entry_rule) = (entry.code, entry.job.clone(), entry.rule.is_some());
    s.calls_with_rule += u64::from(entry_rule);
    let started_now = drain_events(s)?;
    let code = after(&reply.body, "ReturnValue>").and_then(|c| c.parse::<u32>().ok());
    if call.invoke && reply.status == 200 && (code.is_none() || code != entry_code) {
        return Err(format!("ReturnValue {code:?}, journal {entry_code:?}"));
    }
    let job = (code == Some(4096))
        .then(|| after(&reply.body, "Name=\"InstanceID\">").map(str::to_string))
        .flatten();
    match (code, &job) {
        (Some(4096), Some(j)) => {
            s.accepted += 1;
            if started_now != [j.clone()] || entry_job.as_deref() != Some(j.as_str()) {
                return Err(format!(
                    "accepted with job {j}; started {started_now:?}; journal {entry_job:?}"
                ));
            }
        }
        (Some(4096), None) => return Err(format!("4096 without a job: {}", reply.body)),
        _ if !started_now.is_empty() => {
            return Err(format!("code {code:?} but jobs started: {started_now:?}"));
        }
        _ => {}
    }
    check_invariants(&s.slot.world)?;
    // Enumeration contexts to pull later.
    Ok(after(&reply.body, "EnumerationContext>")
        .filter(|c| c.starts_with("uuid:"))
        .map(str::to_string))
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct SoakOptions {
    pub calls: u64,
    /// Threads sharing the one world (each takes its lock for 1 to 8 calls at a time).
    pub threads: u64,
    pub seed: u64,
}

impl Default for SoakOptions {
    fn default() -> Self {
        SoakOptions {
            calls: 1_000_000,
            threads: 2,
            seed: 42,
        }
    }
}

/// What a run did, once every check passed.
#[derive(Debug, Clone)]
pub struct SoakReport {
    pub calls: u64,
    pub threads: u64,
    pub elapsed: Duration,
    /// Accepted transitions: calls answered 4096, each with one job that started and ended
    /// exactly once.
    pub accepted: u64,
    /// Accepted transitions per rule of the transition table.
    pub by_rule: BTreeMap<String, u64>,
    /// Calls per kind (Invoke, Get, Enumerate, Pull, Release, Identify, Malformed, ReadOnly).
    pub kinds: BTreeMap<&'static str, u64>,
    /// Calls the journal recorded (its cursor), equal to `calls`.
    pub journaled: u64,
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "soak: {} calls on {} threads in {secs:.1} s ({:.0} calls/s): consistent",
            self.calls,
            self.threads,
            self.calls as f64 / secs.max(1e-9)
        )?;
        writeln!(
            f,
            "  journal: {} entries for {} calls; {} accepted transitions, each one job started and ended once, over {} rules",
            self.journaled,
            self.calls,
            self.accepted,
            self.by_rule.len()
        )?;
        let rules: Vec<String> = self
            .by_rule
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(f, "  transitions: {}", rules.join(", "))?;
        let kinds: Vec<String> = self.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        write!(f, "  calls: {}", kinds.join(", "))
    }
}

/// Runs the soak; `Err` names the first inconsistency (or a worker that panicked).
pub fn run(opts: SoakOptions) -> Result<SoakReport, String> {
    let calls = opts.calls.max(1);
    let threads = opts.threads.clamp(1, 16).min(calls);
    let mut spec = crate::server::default_topology();
    // Jobs end after 800 ms of virtual time and are kept 5 s, so the job table stays small
    // while the run goes through hours of virtual time.
    spec.profile = Some(ProfileSpec::Custom(Profile {
        job_retention_ms: 5_000,
        ..Profile::default()
    }));
    let mut slot = WorldSlot::new("default", spec, opts.seed, ClockMode::Manual)?;
    slot.world.set_record_events(true);
    let limits = Limits::default();
    let shared = Arc::new(Mutex::new(Shared {
        slot,
        calls: 0,
        started: HashMap::new(),
        ended: HashSet::new(),
        calls_with_rule: 0,
        accepted: 0,
        kinds: BTreeMap::new(),
        known: Known::default(),
    }));
    let started = Instant::now();
    let per_thread = calls / threads;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let shared = shared.clone();
            let limits = limits.clone();
            let count = if t == 0 {
                calls - per_thread * (threads - 1)
            } else {
                per_thread
            };
            let seed = opts.seed;
            std::thread::spawn(move || -> Result<(), String> {
                let mut rng = Rng((seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
                let mut contexts: Vec<(&'static str, String)> = Vec::new();
                let mut i = 0;
                while i < count {
                    // The lock is held for 1 to 8 calls, as the server holds it for one:
                    // the threads' calls interleave at random points.
                    let mut s = lock(&shared);
                    let batch = (1 + rng.below(8) as u64).min(count - i);
                    for _ in 0..batch {
                        // Built from what the world has told so far (job ids, test VMs).
                        let call = build(&mut rng, (t << 40) | i, &mut contexts, &s.known);
                        let ctx = one_call(&mut s, &mut rng, &call, &limits)
                            .map_err(|e| format!("call {} ({}): {e}", s.calls, call.kind))?;
                        if let Some(c) = ctx {
                            contexts.push((call.host, c));
                            if contexts.len() > 32 {
                                contexts.remove(0);
                            }
                        }
                        i += 1;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| "a soak worker panicked".to_string())??;
    }
    let elapsed = started.elapsed();
    let mut s = lock(&shared);
    // Let every job end, then close the books.
    s.slot.clock.advance(3_600_000);
    s.slot.tick();
    drain_events(&mut s)?;
    check_invariants(&s.slot.world)?;
    let journaled = s.slot.next_seq - 1;
    if s.calls != calls || journaled != calls {
        return Err(format!(
            "{calls} calls made, {} handled, {journaled} journaled",
            s.calls
        ));
    }
    let mut prev: Option<u64> = None;
    for e in &s.slot.journal {
        if prev.is_some_and(|p| e.seq != p + 1) {
            return Err(format!("journal skips from {prev:?} to {}", e.seq));
        }
        prev = Some(e.seq);
    }
    if prev != Some(calls) {
        return Err(format!("the last journal entry is {prev:?}, not {calls}"));
    }
    if s.accepted as usize != s.started.len() {
        return Err(format!(
            "{} accepted calls but {} jobs started",
            s.accepted,
            s.started.len()
        ));
    }
    if let Some(j) = s.started.keys().find(|j| !s.ended.contains(*j)) {
        return Err(format!("job {j} never ended"));
    }
    let rules: u64 = s.slot.coverage.rules.values().sum();
    if rules != s.calls_with_rule {
        return Err(format!(
            "coverage counted {rules} rules for {} calls that reached the table",
            s.calls_with_rule
        ));
    }
    let mut by_rule: BTreeMap<String, u64> = BTreeMap::new();
    for r in s.started.values() {
        *by_rule.entry(r.clone()).or_default() += 1;
    }
    Ok(SoakReport {
        calls,
        threads,
        elapsed,
        accepted: s.accepted,
        by_rule,
        kinds: s.kinds.clone(),
        journaled,
    })
}
