//! The simulated world: hosts, VMs, relationships, recovery points, jobs, settings.
//!
//! A replicated VM exists once on each host it is replicated to, with the same GUID, as in real
//! Hyper-V Replica (docs/facts.md#simulated-world). Everything here is plain data (serde), so
//! the control API can show it and persistence can save it; behaviour lives in `engine`.

use crate::enums::*;
use crate::faults::FaultRule;
pub use crate::params::{
    AuthorizationEntry, HostName, JobId, RelIx, ServiceSettingsPatch, SettingsPatch, VmId,
};
use crate::profile::Profile;
use crate::rng::SimRng;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The settings of one relationship (`Msvm_ReplicationSettingData`, DOC
/// msvm-replicationsettingdata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationSettings {
    pub primary_connection_point: String,
    pub recovery_connection_point: String,
    pub recovery_server_port: u16,
    pub authentication_type: AuthenticationType,
    pub certificate_thumbprint: String,
    pub compression_enabled: bool,
    pub bypass_proxy_server: bool,
    pub replicate_host_kvp_items: bool,
    pub recovery_history: u16,
    pub replication_interval: u16,
    pub application_consistent_snapshot_interval: u16,
    pub auto_resynchronize_enabled: bool,
    pub included_disks: Vec<String>,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        // Defaults from the class page: port 0 unless set, history 0, interval 300 s,
        // ReplicateHostKvpItems True, AutoResynchronizeEnabled False.
        ReplicationSettings {
            primary_connection_point: String::new(),
            recovery_connection_point: String::new(),
            recovery_server_port: 80,
            authentication_type: AuthenticationType::Kerberos,
            certificate_thumbprint: String::new(),
            compression_enabled: true,
            bypass_proxy_server: false,
            replicate_host_kvp_items: true,
            recovery_history: 4,
            replication_interval: 300,
            application_consistent_snapshot_interval: 0,
            auto_resynchronize_enabled: false,
            included_disks: Vec::new(),
        }
    }
}

/// One replication relationship as seen from one VM instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relationship {
    pub state: ReplicationState,
    pub health: ReplicationHealth,
    /// The host at the other end of this relationship.
    pub peer_host: HostName,
    pub settings: ReplicationSettings,
    pub last_replication_time: Option<Millis>,
    pub last_replication_type: ReplicationType,
    pub last_apply_time: Option<Millis>,
    pub failed_over_replication_type: ReplicationType,
    /// The state to return to when a failover is reverted. INFERRED from
    /// revertfailover-msvm-replicationservice.md «After this operation, InitiateFailover can be
    /// called again»: the page does not name the state.
    pub pre_failover_state: Option<ReplicationState>,
    /// The recovery point the current failover used (kept by CommitFailover).
    #[serde(default)]
    pub failover_point: Option<String>,
    /// Deltas sent since the statistics were last reset (Msvm_ReplicationStatistics).
    #[serde(default)]
    pub replication_count: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecoveryPointKind {
    Standard,
    ApplicationConsistent,
    Planned,
}

impl RecoveryPointKind {
    /// `VirtualSystemType` of the snapshot VSSD (DOC msvm-virtualsystemsettingdata).
    pub const fn virtual_system_type(self) -> &'static str {
        match self {
            RecoveryPointKind::Standard => "Microsoft:Hyper-V:Snapshot:Replica:Standard",
            RecoveryPointKind::ApplicationConsistent => {
                "Microsoft:Hyper-V:Snapshot:Replica:ApplicationConsistent"
            }
            RecoveryPointKind::Planned => "Microsoft:Hyper-V:Snapshot:Replica:PlannedFailover",
        }
    }
    pub const fn replication_type(self) -> ReplicationType {
        match self {
            RecoveryPointKind::Standard => ReplicationType::Regular,
            RecoveryPointKind::ApplicationConsistent => ReplicationType::ApplicationConsistent,
            RecoveryPointKind::Planned => ReplicationType::Planned,
        }
    }
}

/// A recovery point on a replica VM: an `Msvm_VirtualSystemSettingData` snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    /// Stable identifier: the VSSD InstanceID, `Microsoft:<GUID>` (INFERRED form,
    /// docs/facts.md#recovery-points).
    pub id: String,
    pub kind: RecoveryPointKind,
    pub created: Millis,
    pub name: String,
}

impl RecoveryPoint {
    /// A point of VM `vm_name` taken at `created`, named as Hyper-V Manager shows them.
    pub fn new(
        id: String,
        kind: RecoveryPointKind,
        created: Millis,
        vm_name: &str,
    ) -> RecoveryPoint {
        RecoveryPoint {
            name: format!(
                "{vm_name} - {} - {}",
                kind.replication_type().label(),
                crate::time::rfc3339(created)
            ),
            id,
            kind,
            created,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    pub id: VmId,
    pub name: String,
    pub power: EnabledState,
    pub mode: ReplicationMode,
    /// `[primary relationship, extended relationship]`.
    pub rels: [Option<Relationship>; 2],
    pub recovery_points: Vec<RecoveryPoint>,
    /// On a replica: its test VM while a test failover runs.
    pub test_replica: Option<VmId>,
    /// On a test VM: the replica it was made from.
    pub test_of: Option<VmId>,
    /// The job currently changing this VM, if any (a VM never has two).
    pub busy_with: Option<JobId>,
}

impl Vm {
    /// The relationship a client would create next on this VM, with the settings a template
    /// `Msvm_ReplicationSettingData` offers for it: relationship 0 for a VM without
    /// replication, relationship 1 (extended) for a replica that is not extended yet; `None`
    /// otherwise. Microsoft's Hyper-V Replica sample (ReplicaUtilities.GetReplicationSettings)
    /// reads the settings of a VM that is not replicated over its associations and fills them
    /// in for CreateReplicationRelationship, so a host offers one; what its values are is not
    /// documented: INFERRED, the class page's defaults with this host as the primary.
    pub fn template_settings(&self, host: &str) -> Option<(RelIx, ReplicationSettings)> {
        let ix = match self.mode {
            ReplicationMode::None if self.rels.iter().all(Option::is_none) => RelIx::Primary,
            ReplicationMode::Replica
                if self.rel(RelIx::Primary).is_some() && self.rel(RelIx::Extended).is_none() =>
            {
                RelIx::Extended
            }
            _ => return None,
        };
        let settings = ReplicationSettings {
            primary_connection_point: host.to_string(),
            ..ReplicationSettings::default()
        };
        Some((ix, settings))
    }

    pub fn rel(&self, ix: RelIx) -> Option<&Relationship> {
        self.rels[ix.index()].as_ref()
    }
    pub fn rel_mut(&mut self, ix: RelIx) -> Option<&mut Relationship> {
        self.rels[ix.index()].as_mut()
    }
    /// `Msvm_ComputerSystem.ReplicationState` reflects the primary relationship only (DOC,
    /// docs/facts.md#computer-system-view).
    pub fn replication_state(&self) -> ReplicationState {
        self.rel(RelIx::Primary)
            .map_or(ReplicationState::Disabled, |r| r.state)
    }
    pub fn replication_health(&self) -> ReplicationHealth {
        self.rel(RelIx::Primary)
            .map_or(ReplicationHealth::NotApplicable, |r| r.health)
    }
    pub fn is_off(&self) -> bool {
        self.power == EnabledState::Disabled
    }
}

/// `Msvm_ReplicationServiceSettingData` (DOC msvm-replicationservicesettingdata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceSettings {
    pub recovery_server_enabled: bool,
    pub allowed_authentication_type: u16,
    pub http_port: u16,
    pub https_port: u16,
    pub certificate_thumbprint: String,
    pub monitoring_interval: u32,
}

impl ServiceSettings {
    /// The settings with `p` applied; values that do not fit their type are left out (the
    /// engine's argument check refuses them before this runs).
    pub fn patched(&self, p: &ServiceSettingsPatch) -> ServiceSettings {
        let mut s = self.clone();
        if let Some(v) = p.recovery_server_enabled {
            s.recovery_server_enabled = v;
        }
        if let Some(v) = p
            .allowed_authentication_type
            .and_then(|v| u16::try_from(v).ok())
        {
            s.allowed_authentication_type = v;
        }
        if let Some(v) = &p.certificate_thumbprint {
            s.certificate_thumbprint = v.clone();
        }
        if let Some(v) = p.http_port.and_then(|v| u16::try_from(v).ok()) {
            s.http_port = v;
        }
        if let Some(v) = p.https_port.and_then(|v| u16::try_from(v).ok()) {
            s.https_port = v;
        }
        if let Some(v) = p.monitoring_interval {
            s.monitoring_interval = v;
        }
        s
    }

    /// Whether a relationship using `auth` may connect: DOC msvm-replicationservicesettingdata
    /// AllowedAuthenticationType 1 Kerberos, 2 certificate, 3 both, 0 not defined (none).
    pub fn allows(&self, auth: AuthenticationType) -> bool {
        match auth {
            AuthenticationType::Kerberos => matches!(self.allowed_authentication_type, 1 | 3),
            AuthenticationType::Certificate => matches!(self.allowed_authentication_type, 2 | 3),
        }
    }

    /// The port the recovery server listens on for `auth`: DOC HttpPort "when accepting a
    /// nonsecure connection" (Kerberos), HttpsPort "when accepting secure connection"
    /// (certificate).
    pub fn port_for(&self, auth: AuthenticationType) -> u16 {
        match auth {
            AuthenticationType::Kerberos => self.http_port,
            AuthenticationType::Certificate => self.https_port,
        }
    }
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            recovery_server_enabled: true,
            allowed_authentication_type: 1,
            http_port: 80,
            https_port: 443,
            certificate_thumbprint: String::new(),
            monitoring_interval: 43_200,
        }
    }
}

impl Host {
    /// The authorization entry that admits replication from `primary` on this recovery host:
    /// the entry naming that host (case-insensitive, a DNS suffix on either side ignored), else
    /// the `*` wildcard (DOC msvm-replicationauthorizationsettingdata AllowedPrimaryHostSystem;
    /// the precedence of a named entry over `*` is INFERRED).
    pub fn authorizing_entry(&self, primary: &str) -> Option<&AuthorizationEntry> {
        let short = |s: &str| s.trim().split('.').next().unwrap_or_default().to_string();
        let p = short(primary);
        self.authorization
            .iter()
            .find(|a| {
                a.allowed_primary_host_system.eq_ignore_ascii_case(primary)
                    || (!p.is_empty()
                        && short(&a.allowed_primary_host_system).eq_ignore_ascii_case(&p))
            })
            .or_else(|| {
                self.authorization
                    .iter()
                    .find(|a| a.allowed_primary_host_system.trim() == "*")
            })
    }
}

fn not_applicable() -> u16 {
    12
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: HostName,
    pub vms: BTreeMap<VmId, Vm>,
    pub jobs: BTreeMap<JobId, Job>,
    pub service_settings: ServiceSettings,
    pub authorization: Vec<AuthorizationEntry>,
    /// `Msvm_ReplicationService` StartService/StopService.
    pub service_running: bool,
    /// `Msvm_ReplicationService.RequestedState`: 12 Not Applicable (the class page's default)
    /// until a RequestStateChange is accepted, then the value asked for (DOC
    /// msvm-replicationservice-requeststatechange).
    #[serde(default = "not_applicable")]
    pub service_requested_state: u16,
}

/// How a job's progress is driven.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Pace {
    /// Ends `duration` ms after submission.
    Time { duration: Millis },
    /// Ends after it has been read `needed` times (`polls:N` clock mode).
    Polls { needed: u32, seen: u32 },
}

/// The world-wide pacing of new jobs (the simulator's clock mode decides it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaceMode {
    Time,
    Polls(u32),
}

/// What a job does to the world when it ends well.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredChange")]
pub struct PendingChange {
    /// The row of the transition table this job carries out.
    pub rule: crate::table::RuleRef,
    pub vm: Option<VmId>,
    pub rel: RelIx,
    /// Operation arguments needed at completion.
    pub args: crate::ops::JobArgs,
    /// The call itself, replayed at completion so the effects see exactly its arguments.
    pub op: crate::ops::Operation,
    /// The state before the call, restored when the job fails or is cancelled.
    pub rollback: Option<Rollback>,
    /// The peer VM the job will change, reserved (busy) for the job's length so no other call
    /// races it.
    #[serde(default)]
    pub peer: Option<(HostName, VmId)>,
}

/// A [`PendingChange`] as state files hold it: those written before the call was kept have no
/// `op`, and it is rebuilt from the stored arguments when they load.
#[derive(Deserialize)]
struct StoredChange {
    rule: crate::table::RuleRef,
    vm: Option<VmId>,
    rel: RelIx,
    args: crate::ops::JobArgs,
    #[serde(default)]
    op: Option<crate::ops::Operation>,
    rollback: Option<Rollback>,
    #[serde(default)]
    peer: Option<(HostName, VmId)>,
}

impl TryFrom<StoredChange> for PendingChange {
    type Error = String;
    fn try_from(c: StoredChange) -> Result<PendingChange, String> {
        let op = match c.op {
            Some(op) => op,
            None => crate::ops::Operation::rebuild(c.rule.get().op, c.vm.clone(), c.rel, &c.args)
                .ok_or_else(|| format!("row {} has no job to finish", c.rule.id()))?,
        };
        Ok(PendingChange {
            rule: c.rule,
            vm: c.vm,
            rel: c.rel,
            args: c.args,
            op,
            rollback: c.rollback,
            peer: c.peer,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    pub mode: ReplicationMode,
    pub state: Option<ReplicationState>,
}

/// A planned failure of a job (fault plan "failing job").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedFailure {
    pub after_percent: u8,
    pub error_code: u16,
    pub description: String,
}

/// `Msvm_ConcreteJob` (DOC msvm-concretejob).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub host: HostName,
    pub job_type: JobType,
    pub state: JobState,
    pub percent: u8,
    pub submitted: Millis,
    pub last_change: Millis,
    pub ended: Option<Millis>,
    pub error_code: u16,
    pub error_description: String,
    pub pace: Pace,
    pub failure: Option<PlannedFailure>,
    /// When the job is scheduled to start (StartTime of StartReplication or Resynchronize):
    /// until then it waits in New (DOC msvm-concretejob ScheduledStartTime).
    #[serde(default)]
    pub scheduled: Option<Millis>,
    /// A planned warning (fault plan "complete with warnings"): the job succeeds in 32768.
    #[serde(default)]
    pub warning: Option<String>,
    pub change: Option<PendingChange>,
    pub caption: String,
    /// Since when the job is suspended (RequestStateChange 3), if it is.
    #[serde(default)]
    pub suspended_since: Option<Millis>,
    /// How long it has been suspended before, in total: it does not count as running time.
    #[serde(default)]
    pub suspended_ms: Millis,
}

impl Job {
    pub fn is_running(&self) -> bool {
        !self.state.is_terminal()
    }

    /// How long the job has been executing at `now`: suspended time does not count (DOC
    /// msvm-concretejob ElapsedTime, "the time interval that the job has been executing").
    pub fn executed(&self, now: Millis) -> Millis {
        let end = self.ended.or(self.suspended_since).unwrap_or(now);
        end.saturating_sub(self.started())
            .saturating_sub(self.suspended_ms)
    }

    /// When the job starts (or started) running: its scheduled start, else its submission.
    pub fn started(&self) -> Millis {
        self.scheduled
            .map_or(self.submitted, |s| s.max(self.submitted))
    }
}

fn default_rp_rng() -> SimRng {
    SimRng::seeded(0x005E_ED0F_9017)
}

/// The whole simulated world. Plain data: `engine` implements its behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct World {
    pub(crate) hosts: BTreeMap<HostName, Host>,
    pub(crate) profile: Profile,
    pub(crate) faults: Vec<FaultRule>,
    pub(crate) next_fault_id: u64,
    pub(crate) rng: SimRng,
    /// A separate stream for recovery point ids: background deltas happen at times that
    /// depend on the clock, and must not shift the job ids a seeded run repeats.
    #[serde(default = "default_rp_rng")]
    pub(crate) rp_rng: SimRng,
    /// The latest time the world was told about.
    pub(crate) now: Millis,
    /// How jobs advance: by time or by being read.
    pub(crate) pace: PaceMode,
    /// What changed since the caller last drained it (for journals, demos, live views).
    #[serde(skip)]
    pub(crate) events: Vec<crate::events::Event>,
    /// Whether `events` is filled (off by default; demos and tests turn it on and drain it).
    #[serde(skip)]
    pub(crate) record_events: bool,
    /// A counter of every state change, so clients (the live page, persistence) can tell whether
    /// anything happened.
    pub(crate) generation: u64,
    /// Derived bookkeeping that keeps `advance` cheap; rebuilt from the data when absent.
    #[serde(skip)]
    pub(crate) index: Option<RunIndex>,
}

/// What `advance` would otherwise find by scanning every job and VM on every call.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RunIndex {
    /// Jobs not yet ended, as (host, id).
    pub running: Vec<(HostName, JobId)>,
    /// No ended job is due for removal before this time.
    pub next_purge: Millis,
    /// No replicating primary is due for a delta before this time (0: scan).
    pub next_delta: Millis,
    /// No running job ends or fails before this time (0: scan).
    pub next_due: Millis,
}

/// Read access for the simulator and its tests; the world changes only through its methods
/// (`apply`, `advance`, `add_fault`, ...), so the engine's bookkeeping stays true.
impl World {
    /// This world without what any call may change even when it is refused: the clock, the
    /// RNG, fault counters, the generation counter and the event list. A refused call must
    /// leave the rest as it was (the property tests compare these).
    pub fn without_bookkeeping(&self) -> World {
        let mut w = self.clone();
        w.now = 0;
        w.rng = SimRng::seeded(0);
        w.generation = 0;
        w.events.clear();
        for f in &mut w.faults {
            f.fired = 0;
        }
        w
    }
}

impl World {
    pub fn hosts(&self) -> &BTreeMap<HostName, Host> {
        &self.hosts
    }
    pub fn profile(&self) -> &Profile {
        &self.profile
    }
    /// Replaces the behaviour profile (benchmarks and tests that vary one of its choices).
    pub fn set_profile(&mut self, profile: Profile) {
        self.profile = profile;
    }
    pub fn faults(&self) -> &[FaultRule] {
        &self.faults
    }
    /// The latest time the world was told about.
    pub fn now(&self) -> Millis {
        self.now
    }
    pub fn pace(&self) -> PaceMode {
        self.pace
    }
    /// How new jobs advance (the simulator's clock mode); running jobs keep their pace.
    pub fn set_pace(&mut self, pace: PaceMode) {
        self.pace = pace;
    }
    /// Turns event recording on or off (see `drain_events`).
    pub fn set_record_events(&mut self, on: bool) {
        self.record_events = on;
    }
    /// A counter of every state change.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// Removes a fault rule; `false` if there is none with that id.
    pub fn remove_fault(&mut self, id: u64) -> bool {
        let before = self.faults.len();
        self.faults.retain(|f| f.id != id);
        self.faults.len() != before
    }
    /// Removes every fault rule, returning how many there were.
    pub fn clear_faults(&mut self) -> usize {
        std::mem::take(&mut self.faults).len()
    }
    /// Draws the fault plan for a request that is not a method call (a read): the transport
    /// kinds it fires.
    pub fn draw_faults(&mut self, host: &str, method: &str) -> Vec<crate::faults::FaultKind> {
        crate::faults::draw(&mut self.faults, &mut self.rng, host, method, None, None)
    }
}

impl World {
    pub fn new(profile: Profile, seed: u64, now: Millis) -> World {
        World {
            hosts: BTreeMap::new(),
            profile,
            faults: Vec::new(),
            next_fault_id: 1,
            rng: SimRng::seeded(seed),
            rp_rng: SimRng::seeded(seed ^ 0x005E_ED0F_9017),
            now,
            pace: PaceMode::Time,
            events: Vec::new(),
            record_events: false,
            generation: 0,
            index: None,
        }
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }

    pub fn vm(&self, host: &str, vm: &str) -> Option<&Vm> {
        self.hosts.get(host)?.vms.get(vm)
    }

    pub fn vm_mut(&mut self, host: &str, vm: &str) -> Option<&mut Vm> {
        self.hosts.get_mut(host)?.vms.get_mut(vm)
    }

    pub fn job(&self, host: &str, job: &str) -> Option<&Job> {
        self.hosts.get(host)?.jobs.get(job)
    }

    /// Finds a VM on a host by GUID or, failing that, by ElementName.
    pub fn find_vm(&self, host: &str, key: &str) -> Option<&Vm> {
        let h = self.hosts.get(host)?;
        // Exact GUID first: clients send the Name they read, so the upper-casing copy is rare.
        h.vms
            .get(key)
            .or_else(|| h.vms.get(&key.to_ascii_uppercase()))
            .or_else(|| h.vms.values().find(|v| v.name == key))
    }

    pub fn running_jobs(&self) -> impl Iterator<Item = &Job> {
        self.hosts
            .values()
            .flat_map(|h| h.jobs.values())
            .filter(|j| j.is_running())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(mode: ReplicationMode, rels: [bool; 2]) -> Vm {
        let rel = |on: bool| {
            on.then(|| Relationship {
                state: ReplicationState::Replicating,
                health: ReplicationHealth::Ok,
                peer_host: "OTHER".into(),
                settings: ReplicationSettings::default(),
                last_replication_time: None,
                last_replication_type: ReplicationType::None,
                last_apply_time: None,
                failed_over_replication_type: ReplicationType::None,
                pre_failover_state: None,
                failover_point: None,
                replication_count: 0,
            })
        };
        Vm {
            id: "V".into(),
            name: "v".into(),
            power: EnabledState::Disabled,
            mode,
            rels: [rel(rels[0]), rel(rels[1])],
            recovery_points: Vec::new(),
            test_replica: None,
            test_of: None,
            busy_with: None,
        }
    }

    /// The template is for the relationship a client would create next: 0 on a VM without
    /// replication, 1 on a replica not yet extended, none otherwise; this host is its primary.
    #[test]
    fn template_settings_follow_what_can_be_created() {
        let (ix, s) = vm(ReplicationMode::None, [false, false])
            .template_settings("H")
            .expect("template");
        assert_eq!(ix, RelIx::Primary);
        assert_eq!(s.primary_connection_point, "H");
        assert_eq!(s.recovery_connection_point, "");
        assert_eq!(s.replication_interval, 300);
        let ext = vm(ReplicationMode::Replica, [true, false]).template_settings("H");
        assert_eq!(ext.map(|(ix, _)| ix), Some(RelIx::Extended));
        for (mode, rels) in [
            (ReplicationMode::Primary, [true, false]),
            (ReplicationMode::Replica, [true, true]),
            (ReplicationMode::ExtendedReplica, [true, false]),
            (ReplicationMode::TestReplica, [false, false]),
        ] {
            assert!(vm(mode, rels).template_settings("H").is_none(), "{mode:?}");
        }
    }
}
