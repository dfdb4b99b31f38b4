//! The engine: carries out operations on a [`World`] by reading the transition table
//! ([`crate::table::RULES`]). It holds no rule of its own: it resolves the rule, checks the
//! call's arguments (`validate`, each check with its source), and implements the effect
//! primitives the table names.

use crate::enums::*;
use crate::faults::{self, FaultKind};
use crate::ops::{JobArgs, OpKind, Operation};
use crate::profile::ReverseOutcome;
use crate::table::{self, Check, Effect, From, Guard, Power, RelSel, Rule, Scope, To};
use crate::time::Millis;
use crate::world::*;
use serde::{Deserialize, Serialize};

/// The answer to a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// ReturnValue.
    pub code: u32,
    /// The job started (ReturnValue 4096).
    pub job: Option<JobId>,
    /// TestReplicaSystem's ResultingSystem.
    pub resulting_system: Option<VmId>,
    /// The table row that accepted or refused the call.
    pub rule: Option<&'static str>,
    /// Why a call was refused, in words.
    pub reason: Option<String>,
    /// The precondition of the table that refused the call before any row was looked at, or
    /// the refusal policy that turned a row's refusal into a failing job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precondition: Option<&'static str>,
    /// Faults of the plan that fired for this call (transport kinds are applied by the caller).
    pub faults: Vec<FaultKind>,
    pub output: Output,
}

/// Method-specific output parameters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Output {
    #[default]
    None,
    Statistics {
        health: ReplicationHealth,
        state: ReplicationState,
        last_replication_time: Option<Millis>,
        replication_count: u64,
        pending_bytes: u64,
    },
    Certificates(Vec<String>),
}

impl Answer {
    fn new() -> Answer {
        Answer {
            code: 0,
            job: None,
            resulting_system: None,
            rule: None,
            reason: None,
            precondition: None,
            faults: Vec::new(),
            output: Output::None,
        }
    }
    fn refused(
        mut self,
        code: u32,
        rule: Option<&'static str>,
        reason: impl Into<String>,
    ) -> Answer {
        self.code = code;
        self.rule = rule;
        // Reasons quote client text; what is kept is bounded (journals hold many).
        self.reason = Some(crate::text::clipped(reason.into()));
        self
    }
    pub fn return_code(&self) -> Result<ReturnCode, UnknownValue> {
        ReturnCode::from_number(self.code)
    }
}

/// Something that changed, for journals, demos and live views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    StateChanged {
        at: Millis,
        host: HostName,
        vm: VmId,
        rel: RelIx,
        from: Option<ReplicationState>,
        to: Option<ReplicationState>,
    },
    ModeChanged {
        at: Millis,
        host: HostName,
        vm: VmId,
        from: ReplicationMode,
        to: ReplicationMode,
    },
    PowerChanged {
        at: Millis,
        host: HostName,
        vm: VmId,
        to: EnabledState,
    },
    JobStarted {
        at: Millis,
        host: HostName,
        job: JobId,
        job_type: JobType,
        rule: String,
    },
    JobEnded {
        at: Millis,
        host: HostName,
        job: JobId,
        job_type: JobType,
        state: JobState,
        error_code: u16,
    },
    VmCreated {
        at: Millis,
        host: HostName,
        vm: VmId,
        name: String,
    },
    VmRemoved {
        at: Millis,
        host: HostName,
        vm: VmId,
    },
}

/// Why no rule accepted a call, ranked so the most specific reason wins.
struct Refusal {
    rank: u8,
    code: u32,
    rule: &'static str,
    why: Why,
}

/// Why a rule did not apply; turned into words only for the refusal that is answered, so
/// the hot path of a refused call allocates nothing for the rules it passed over.
enum Why {
    Mode(&'static [ReplicationMode], ReplicationMode),
    State(Option<ReplicationState>),
    Power(bool, EnabledState),
    Guard(Guard),
    NoRule,
}

impl Refusal {
    fn reason(&self, kind: OpKind) -> String {
        match &self.why {
            Why::Mode(modes, have) => format!(
                "{} needs mode {:?}; the VM is {have}",
                kind.label(),
                modes.iter().map(|m| m.ident()).collect::<Vec<_>>()
            ),
            Why::State(current) => format!(
                "{} is not allowed in {} (rule {})",
                kind.label(),
                state_name(*current),
                self.rule
            ),
            Why::Power(off, have) => format!(
                "{} needs the VM {}; it is {have}",
                kind.label(),
                if *off { "off" } else { "running" }
            ),
            Why::Guard(g) => format!(
                "{} refused: {g:?} does not hold (rule {})",
                kind.label(),
                self.rule
            ),
            Why::NoRule => format!("no rule accepts {} here", kind.label()),
        }
    }
}

fn rel_for(sel: RelSel, op: &Operation) -> Option<RelIx> {
    match sel {
        RelSel::Primary => Some(RelIx::Primary),
        RelSel::Extended => Some(RelIx::Extended),
        RelSel::Arg => Some(op.rel_arg().unwrap_or(RelIx::Primary)),
        RelSel::NoRel => None,
    }
}

fn state_name(s: Option<ReplicationState>) -> String {
    s.map_or("no relationship".into(), |s| s.to_string())
}

impl ReplicationSettings {
    /// Missing properties keep the existing values (INFERRED, docs/facts.md#embedded-instances).
    pub fn patched(&self, p: &SettingsPatch) -> ReplicationSettings {
        let mut s = self.clone();
        if let Some(v) = &p.primary_connection_point {
            s.primary_connection_point = v.clone();
        }
        if let Some(v) = &p.recovery_connection_point {
            s.recovery_connection_point = v.clone();
        }
        if let Some(v) = p.recovery_server_port.and_then(|v| u16::try_from(v).ok()) {
            s.recovery_server_port = v;
        }
        if let Some(v) = p
            .authentication_type
            .and_then(|v| AuthenticationType::from_number(v).ok())
        {
            s.authentication_type = v;
        }
        if let Some(v) = &p.certificate_thumbprint {
            s.certificate_thumbprint = v.clone();
        }
        if let Some(v) = p.compression_enabled {
            s.compression_enabled = v;
        }
        if let Some(v) = p.bypass_proxy_server {
            s.bypass_proxy_server = v;
        }
        if let Some(v) = p.replicate_host_kvp_items {
            s.replicate_host_kvp_items = v;
        }
        if let Some(v) = p.recovery_history.and_then(|v| u16::try_from(v).ok()) {
            s.recovery_history = v;
        }
        if let Some(v) = p.replication_interval.and_then(|v| u16::try_from(v).ok()) {
            s.replication_interval = v;
        }
        if let Some(v) = p
            .application_consistent_snapshot_interval
            .and_then(|v| u16::try_from(v).ok())
        {
            s.application_consistent_snapshot_interval = v;
        }
        if let Some(v) = p.auto_resynchronize_enabled {
            s.auto_resynchronize_enabled = v;
        }
        if let Some(v) = &p.included_disks {
            s.included_disks = v.clone();
        }
        s
    }
}

/// Argument checks made before any rule is looked at. Each names its source.
fn validate_settings(p: &SettingsPatch) -> Result<(), String> {
    // msvm-replicationsettingdata.md «Replication interval of a replication relationship in
    // seconds. Valid values are:», then 30, 300 and 900 on lines of their own.
    if let Some(v) = p.replication_interval
        && ![30, 300, 900].contains(&v)
    {
        return Err(format!(
            "ReplicationInterval {v} is not one of 30, 300, 900 (DOC msvm-replicationsettingdata)"
        ));
    }
    // msvm-replicationsettingdata.md «Valid values are from 0 to 24» (RecoveryHistory).
    if let Some(v) = p.recovery_history
        && v > 24
    {
        return Err(format!(
            "RecoveryHistory {v} is outside 0..=24 (DOC msvm-replicationsettingdata)"
        ));
    }
    // AuthenticationType: msvm-replicationsettingdata.md «Kerberos authentication (1)» and
    // msvm-replicationsettingdata.md «Certificate based authentication (2)», nothing else.
    if let Some(v) = p.authentication_type
        && AuthenticationType::from_number(v).is_err()
    {
        return Err(format!(
            "AuthenticationType {v} is not 1 (Kerberos) or 2 (Certificate) (DOC)"
        ));
    }
    // PS: certificate authentication requires a thumbprint (DECOMP 44358932247).
    if p.authentication_type == Some(2)
        && p.certificate_thumbprint
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        return Err("AuthenticationType 2 (Certificate) needs CertificateThumbPrint (PS check, DECOMP 44358932247)".into());
    }
    if let Some(v) = p.recovery_server_port
        && v > u32::from(u16::MAX)
    {
        return Err(format!("RecoveryServerPortNumber {v} is not a uint16"));
    }
    // msvm-replicationsettingdata.md «Valid values are from 1 hour to 12 hours»; 0 = off is
    // INFERRED (the page names no value for "no application-consistent points").
    if let Some(v) = p.application_consistent_snapshot_interval
        && v > 12
    {
        return Err(format!(
            "ApplicationConsistentSnapshotInterval {v} is outside 0..=12 hours (DOC)"
        ));
    }
    Ok(())
}

/// ModifyServiceSettings' argument checks (DOC msvm-replicationservicesettingdata).
fn validate_service_settings(p: &ServiceSettingsPatch) -> Result<(), String> {
    // DOC: AllowedAuthenticationType 0 not defined, 1 Kerberos, 2 certificate, 3 both.
    if let Some(v) = p.allowed_authentication_type
        && v > 3
    {
        return Err(format!(
            "AllowedAuthenticationType {v} is not 0..=3 (DOC msvm-replicationservicesettingdata)"
        ));
    }
    // DOC: MonitoringInterval "minimum valid value is 60 minutes (3600 seconds), and the
    // maximum valid value is 7 days (604800 seconds)".
    if let Some(v) = p.monitoring_interval
        && !(3600..=604_800).contains(&v)
    {
        return Err(format!(
            "MonitoringInterval {v} is outside 3600..=604800 seconds (DOC msvm-replicationservicesettingdata)"
        ));
    }
    // DOC: CertificateThumbPrint MaxLen 128.
    if let Some(t) = &p.certificate_thumbprint
        && t.chars().count() > 128
    {
        return Err("CertificateThumbPrint is longer than 128 characters (DOC MaxLen)".into());
    }
    for (name, v) in [("HttpPort", p.http_port), ("HttpsPort", p.https_port)] {
        if let Some(v) = v
            && !(1..=u32::from(u16::MAX)).contains(&v)
        {
            return Err(format!("{name} {v} is not a port number (uint16, not 0)"));
        }
    }
    Ok(())
}

/// The settings checks, for topology validation (same rules as a method call).
pub fn validate_settings_public(p: &SettingsPatch) -> Result<(), String> {
    validate_settings(p)
}

fn rp_matches(rp: &RecoveryPoint, key: &str) -> bool {
    let key = key.trim();
    rp.id.eq_ignore_ascii_case(key)
        || rp
            .id
            .strip_prefix("Microsoft:")
            .is_some_and(|g| g.eq_ignore_ascii_case(key))
}

impl World {
    fn emit(&mut self, e: Event) {
        self.generation += 1;
        // Events are opt-in: a long-running simulator that never drains them must not grow.
        if self.record_events {
            self.events.push(e);
        }
    }

    /// Takes the events recorded since the last call.
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Carries out one call on `host` at time `now`.
    pub fn apply(&mut self, host: &str, op: &Operation, now: Millis) -> Answer {
        self.advance(now);
        let ans = Answer::new();
        let Some(host) = self
            .hosts
            .keys()
            .find(|h| h.eq_ignore_ascii_case(host))
            .cloned()
        else {
            return ans.refused(32777, None, format!("no host named {host}"));
        };
        let found = op.vm().and_then(|v| self.find_vm(&host, v));
        let vm_id = found.map(|v| v.id.clone());
        let vm_name = found.map(|v| v.name.clone());
        let fired = faults::draw(
            &mut self.faults,
            &mut self.rng,
            &host,
            op.method(),
            vm_id.as_deref().or(op.vm()),
            vm_name.as_deref(),
        );
        let mut ans = Answer {
            faults: fired,
            ..ans
        };
        let mut planned_failure = None;
        let mut planned_warning = None;
        for f in ans.faults.clone() {
            match f {
                FaultKind::HostDown => {
                    return ans.refused(32777, None, format!("{host} is down (fault plan)"));
                }
                FaultKind::ReturnCode { code } => {
                    return ans.refused(code, None, format!("fault plan answers {code}"));
                }
                FaultKind::FailJob {
                    error_code,
                    description,
                    after_percent,
                } => {
                    planned_failure = Some(PlannedFailure {
                        after_percent,
                        error_code,
                        description,
                    });
                }
                FaultKind::CompleteWithWarnings { description } => {
                    planned_warning = Some(description);
                }
                // The transport applies these; a partition is read by `reachable`.
                FaultKind::Delay { .. }
                | FaultKind::DropConnection
                | FaultKind::Partition { .. } => {}
            }
        }
        let kind = op.kind();
        // The table's preconditions, in its order; the first that fails answers.
        for p in table::PRECONDITIONS {
            if kind.is_ok_and(|k| !p.applies_to(k)) {
                continue;
            }
            if let Some((code, why)) = self.precondition_fails(p, &host, vm_id.as_deref(), op, kind)
            {
                let mut ans = ans.refused(code, None, why);
                ans.precondition = Some(p.id);
                return ans;
            }
        }
        // `value-documented` is a precondition above; this only gives the type its `OpKind`.
        let kind = match kind {
            Ok(k) => k,
            Err(code) => return ans.refused(code, None, "no operation for this value"),
        };
        match self.select(&host, vm_id.as_deref(), op, kind) {
            Ok(rule) => self.accept(
                ans,
                &host,
                vm_id,
                op,
                rule,
                (planned_failure, planned_warning),
            ),
            Err(refusal) => {
                let reason = refusal.reason(kind);
                if matches!(
                    refusal.why,
                    Why::Guard(Guard::PeerReachable | Guard::ConnectionPointReachable)
                ) {
                    self.blame_unreachable(&host, vm_id.as_deref(), op, &mut ans);
                }
                let async_rule = table::RULES
                    .iter()
                    .find(|r| r.op == kind && r.job.is_some());
                let policy = table::REFUSAL_POLICIES.iter().find(|p| {
                    p.code == refusal.code
                        && match p.when {
                            table::PolicySwitch::WrongStateAsFailingJob => {
                                self.profile.wrong_state
                                    == crate::profile::WrongStateAnswer::FailingJob
                            }
                        }
                });
                if let Some(policy) = policy
                    && let Some(r) = async_rule
                    && let Some(t) = r.job
                {
                    // Profile (a), alternative: the state error surfaces through the job.
                    let failure = PlannedFailure {
                        after_percent: 0,
                        error_code: 32775,
                        description: reason.clone(),
                    };
                    let id = self.new_job(&host, t, None, Some(failure));
                    ans.code = 4096;
                    ans.job = Some(id);
                    ans.rule = Some(refusal.rule);
                    ans.precondition = Some(policy.id);
                    ans.reason = Some(crate::text::clipped(reason));
                    return ans;
                }
                ans.refused(refusal.code, Some(refusal.rule), reason)
            }
        }
    }

    /// Whether a precondition of the table fails for this call: the code and the reason.
    fn precondition_fails(
        &self,
        p: &table::Precondition,
        host: &str,
        vm: Option<&str>,
        op: &Operation,
        kind: Result<OpKind, u32>,
    ) -> Option<(u32, String)> {
        let code = match p.answered {
            table::Answered::Code(c) => c,
            table::Answered::ProfileBusyCode => self.profile.busy_code,
            table::Answered::PageCodeForValue => kind.err().unwrap_or(32773),
        };
        let why: String = match p.check {
            Check::ValueDocumented => {
                kind.err()?;
                "the requested value is not one the method page documents".into()
            }
            Check::ServiceRunning => {
                if self.hosts.get(host).is_none_or(|h| h.service_running) {
                    return None;
                }
                "the replication service is stopped (StopService or RequestStateChange); INFERRED 32777".into()
            }
            Check::VmKnown => {
                let named = op.vm()?;
                if vm.is_some() {
                    return None;
                }
                format!("no VM {named} on {host}")
            }
            Check::SettingsValid => validate_settings(op.settings()?).err()?,
            Check::ServiceSettingsValid => match op {
                Operation::ModifyServiceSettings { settings } => {
                    validate_service_settings(settings).err()?
                }
                _ => return None,
            },
            Check::RecoveryConnectionPointGiven => match op {
                Operation::CreateReplicationRelationship { settings, .. }
                    if settings
                        .recovery_connection_point
                        .as_deref()
                        .is_none_or(|s| s.trim().is_empty()) =>
                {
                    "CreateReplicationRelationship needs RecoveryConnectionPoint (INFERRED 32773)"
                        .into()
                }
                _ => return None,
            },
            Check::RecoveryPointKnown => {
                let (key, vm) = (op.recovery_point()?, vm?);
                let known = self
                    .vm(host, vm)
                    .is_some_and(|v| v.recovery_points.iter().any(|rp| rp_matches(rp, key)));
                if known {
                    return None;
                }
                format!("unknown recovery point {key} (reference §5.1: 32773)")
            }
            Check::JobKnown => match op {
                Operation::RequestJobStateChange { job, .. } if self.job(host, job).is_none() => {
                    format!("no job {job} on {host}")
                }
                _ => return None,
            },
            Check::VmIdle => {
                let busy = self.vm(host, vm?)?.busy_with.clone()?;
                format!("the VM is busy with job {busy}")
            }
        };
        Some((code, why))
    }

    fn guard_holds(
        &self,
        g: Guard,
        host: &str,
        vm: Option<&Vm>,
        rel: Option<RelIx>,
        op: &Operation,
    ) -> bool {
        match g {
            Guard::LastReplicationTimeSet => vm
                .and_then(|v| v.rel(rel.unwrap_or(RelIx::Primary)))
                .is_some_and(|r| r.last_replication_time.is_some()),
            Guard::NoTestReplica => vm.is_some_and(|v| v.test_replica.is_none()),
            Guard::NoExtendedOnReplica => vm.is_none_or(|v| {
                !(v.mode == ReplicationMode::Replica
                    && rel != Some(RelIx::Extended)
                    && v.rel(RelIx::Extended).is_some())
            }),
            Guard::HasExtended => vm.is_some_and(|v| v.rel(RelIx::Extended).is_some()),
            Guard::PrimaryRelReplicating => vm
                .and_then(|v| v.rel(RelIx::Primary))
                .is_some_and(|r| r.state == ReplicationState::Replicating),
            Guard::PeerReachable => self.reachable(host, &Self::peer_named(vm, rel, op)),
            Guard::PeerIdle => self
                .peer_vm(host, vm, rel, op)
                .is_none_or(|(_, p)| p.busy_with.is_none()),
            Guard::PeerNotFailedOver => self.peer_vm(host, vm, rel, op).is_none_or(|(_, p)| {
                p.rel(Self::back_rel(p, host, self)).is_none_or(|r| {
                    !matches!(
                        r.state,
                        ReplicationState::FailoverInProgress
                            | ReplicationState::Recovered
                            | ReplicationState::Committed
                            | ReplicationState::FailbackInProgress
                            | ReplicationState::FailbackComplete
                    )
                })
            }),
            Guard::PeerHasNoCopy => {
                let target = match op {
                    Operation::CreateReplicationRelationship { settings, .. } => settings
                        .recovery_connection_point
                        .as_deref()
                        .and_then(|p| self.resolve_host(p)),
                    _ => None,
                };
                match (target, vm) {
                    (Some(t), Some(v)) => {
                        !t.eq_ignore_ascii_case(host)
                            && self
                                .vm(&t, &v.id)
                                .is_none_or(|copy| copy.mode == ReplicationMode::None)
                    }
                    _ => true,
                }
            }
            Guard::ConnectionPointReachable => match op {
                Operation::TestReplicationConnection {
                    connection_point, ..
                } => self.reachable(host, connection_point),
                _ => true,
            },
            Guard::AuthorizationExists => {
                let key = match op {
                    Operation::ModifyAuthorizationEntry { entry } => {
                        &entry.allowed_primary_host_system
                    }
                    Operation::RemoveAuthorizationEntry {
                        allowed_primary_host_system,
                    } => allowed_primary_host_system,
                    _ => return true,
                };
                self.hosts.get(host).is_some_and(|h| {
                    h.authorization
                        .iter()
                        .any(|a| a.allowed_primary_host_system.eq_ignore_ascii_case(key))
                })
            }
            Guard::RecoveryServerEnabled
            | Guard::RecoveryServerPort
            | Guard::RecoveryServerAuthentication => {
                let Some((target, port, auth)) = self.recovery_target(op) else {
                    return true;
                };
                let Some(h) = self.hosts.get(&target) else {
                    return true;
                };
                let s = &h.service_settings;
                match g {
                    Guard::RecoveryServerEnabled => h.service_running && s.recovery_server_enabled,
                    Guard::RecoveryServerPort => auth.is_none_or(|a| s.port_for(a) == port),
                    _ => auth.is_some_and(|a| s.allows(a)),
                }
            }
            Guard::JobRunning | Guard::JobNotSuspended | Guard::JobSuspended => match op {
                Operation::RequestJobStateChange { job, .. } => {
                    self.job(host, job).is_some_and(|j| match g {
                        Guard::JobNotSuspended => j.is_running() && j.suspended_since.is_none(),
                        Guard::JobSuspended => j.is_running() && j.suspended_since.is_some(),
                        _ => j.is_running(),
                    })
                }
                _ => true,
            },
        }
    }

    /// The recovery host a call would replicate to, with the port and authentication type it
    /// connects with (`None` for an authentication type that is not 1 or 2).
    fn recovery_target(
        &self,
        op: &Operation,
    ) -> Option<(HostName, u16, Option<AuthenticationType>)> {
        match op {
            Operation::CreateReplicationRelationship { settings, .. } => {
                let s = ReplicationSettings::default().patched(settings);
                let host = self.resolve_host(&s.recovery_connection_point)?;
                Some((host, s.recovery_server_port, Some(s.authentication_type)))
            }
            Operation::TestReplicationConnection {
                connection_point,
                port,
                auth,
            } => Some((
                self.resolve_host(connection_point)?,
                *port,
                AuthenticationType::from_number(u32::from(*auth)).ok(),
            )),
            _ => None,
        }
    }

    /// The other host a call needs: the recovery host it names, or the relationship's peer.
    fn peer_named(vm: Option<&Vm>, rel: Option<RelIx>, op: &Operation) -> String {
        match op {
            Operation::CreateReplicationRelationship { settings, .. } => settings
                .recovery_connection_point
                .clone()
                .unwrap_or_default(),
            Operation::TestReplicationConnection {
                connection_point, ..
            } => connection_point.clone(),
            _ => vm
                .and_then(|v| v.rel(rel.unwrap_or(RelIx::Primary)))
                .map(|r| r.peer_host.clone())
                .unwrap_or_default(),
        }
    }

    /// The VM on the other side of the call, if that host has it.
    fn peer_vm<'a>(
        &'a self,
        host: &str,
        vm: Option<&Vm>,
        rel: Option<RelIx>,
        op: &Operation,
    ) -> Option<(HostName, &'a Vm)> {
        let peer = self.resolve_host(&Self::peer_named(vm, rel, op))?;
        if peer.eq_ignore_ascii_case(host) {
            return None;
        }
        let v = self.vm(&peer, &vm?.id)?;
        Some((peer, v))
    }

    /// Which of a peer VM's relationships points back at `host` (the extended one for a
    /// replica that extends to it), defaulting to the primary relationship.
    fn back_rel(peer: &Vm, host: &str, world: &World) -> RelIx {
        [RelIx::Extended, RelIx::Primary]
            .into_iter()
            .find(|ix| {
                peer.rel(*ix).is_some_and(|r| {
                    world
                        .resolve_host(&r.peer_host)
                        .is_some_and(|h| h.eq_ignore_ascii_case(host))
                })
            })
            .unwrap_or(RelIx::Primary)
    }

    /// When a call is refused because its peer is unreachable, the partition or host-down
    /// rule responsible has fired: count it and report it, so journals and coverage show it.
    fn blame_unreachable(
        &mut self,
        host: &str,
        vm_id: Option<&str>,
        op: &Operation,
        ans: &mut Answer,
    ) {
        let vm = vm_id.and_then(|id| self.vm(host, id));
        let rel = op.rel_arg().or(Some(RelIx::Primary));
        let Some(peer) = self.resolve_host(&Self::peer_named(vm, rel, op)) else {
            return;
        };
        for r in &mut self.faults {
            let hit = match &r.spec.kind {
                FaultKind::Partition { a, b } => {
                    (a.eq_ignore_ascii_case(host) && b.eq_ignore_ascii_case(&peer))
                        || (a.eq_ignore_ascii_case(&peer) && b.eq_ignore_ascii_case(host))
                }
                FaultKind::HostDown => {
                    r.spec
                        .host
                        .as_deref()
                        .is_some_and(|h| h.eq_ignore_ascii_case(&peer))
                        && r.spec.method.is_none()
                        && r.spec.vm.is_none()
                }
                _ => false,
            };
            if hit {
                r.fired += 1;
                ans.faults.push(r.spec.kind.clone());
            }
        }
    }

    /// Whether `host` can reach `peer`: the peer exists (by name, case-insensitive, ignoring a
    /// DNS suffix), is not down, and no partition separates them.
    pub fn reachable(&self, host: &str, peer: &str) -> bool {
        let Some(peer) = self.resolve_host(peer) else {
            return false;
        };
        let down = self.faults.iter().any(|r| {
            matches!(r.spec.kind, FaultKind::HostDown)
                && r.spec.method.is_none()
                && r.spec.vm.is_none()
                && r.spec.count.is_none_or(|c| r.fired < c)
                && r.spec.probability.is_none()
                && r.spec
                    .host
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&peer))
        });
        !down && !faults::partitioned(&self.faults, host, &peer)
    }

    /// Finds a host by name or by a connection point such as `hv-replica.contoso.com`.
    pub fn resolve_host(&self, name: &str) -> Option<HostName> {
        let name = name.trim();
        let short = name.split('.').next().unwrap_or(name);
        self.hosts
            .keys()
            .find(|h| h.eq_ignore_ascii_case(name) || h.eq_ignore_ascii_case(short))
            .cloned()
    }

    fn select(
        &self,
        host: &str,
        vm_id: Option<&str>,
        op: &Operation,
        kind: OpKind,
    ) -> Result<&'static Rule, Refusal> {
        let vm = vm_id.and_then(|id| self.vm(host, id));
        let mut best: Option<Refusal> = None;
        let mut consider = |r: Refusal| {
            if best.as_ref().is_none_or(|b| r.rank > b.rank) {
                best = Some(r);
            }
        };
        for r in table::RULES.iter().filter(|r| r.op == kind) {
            let rel = match r.scope {
                Scope::Vm(sel) => rel_for(sel, op),
                _ => None,
            };
            if let Scope::Vm(_) = r.scope {
                let Some(v) = vm else { continue };
                if !r.modes.is_empty() && !r.modes.contains(&v.mode) {
                    consider(Refusal {
                        rank: 0,
                        code: r.refusal,
                        rule: r.id,
                        why: Why::Mode(r.modes, v.mode),
                    });
                    continue;
                }
                let current = rel.and_then(|ix| v.rel(ix)).map(|x| x.state);
                let from_ok = match r.from {
                    From::Any => true,
                    From::AnyRelationship => current.is_some(),
                    From::NoRelationship => current.is_none(),
                    From::States(s) => current.is_some_and(|c| s.contains(&c)),
                };
                if !from_ok {
                    consider(Refusal {
                        rank: 1,
                        code: r.refusal,
                        rule: r.id,
                        why: Why::State(current),
                    });
                    continue;
                }
                let need_off = match r.power {
                    Power::Off => Some(true),
                    Power::On => Some(false),
                    Power::OffIfProfileSaysFailback => {
                        self.profile.failback_requires_off.then_some(true)
                    }
                    Power::Any => None,
                };
                if let Some(off) = need_off
                    && v.is_off() != off
                {
                    consider(Refusal {
                        rank: 2,
                        code: r.refusal,
                        rule: r.id,
                        why: Why::Power(off, v.power),
                    });
                    continue;
                }
            }
            if let Some(g) = r
                .guards
                .iter()
                .copied()
                .find(|&g| !self.guard_holds(g, host, vm, rel, op))
            {
                consider(Refusal {
                    rank: 3,
                    code: if g == Guard::PeerIdle {
                        self.profile.busy_code
                    } else {
                        g.code()
                    },
                    rule: r.id,
                    why: Why::Guard(g),
                });
                continue;
            }
            return Ok(r);
        }
        Err(best.unwrap_or(Refusal {
            rank: 0,
            code: 32775,
            rule: "none",
            why: Why::NoRule,
        }))
    }

    fn new_job(
        &mut self,
        host: &str,
        t: JobType,
        change: Option<PendingChange>,
        failure: Option<PlannedFailure>,
    ) -> JobId {
        let id = self.rng.guid();
        let pace = match self.pace {
            PaceMode::Time => Pace::Time {
                duration: self.profile.job_duration(t),
            },
            PaceMode::Polls(n) => Pace::Polls {
                needed: n.max(1),
                seen: 0,
            },
        };
        let job = Job {
            id: id.clone(),
            host: host.to_string(),
            job_type: t,
            state: JobState::New,
            percent: 0,
            submitted: self.now,
            last_change: self.now,
            ended: None,
            error_code: 0,
            error_description: String::new(),
            pace,
            failure,
            caption: t.label().to_string(),
            change,
            warning: None,
            scheduled: None,
            suspended_since: None,
            suspended_ms: 0,
        };
        let rule = job
            .change
            .as_ref()
            .map(|c| c.rule.id().to_string())
            .unwrap_or_default();
        if let Some(h) = self.hosts.get_mut(host) {
            h.jobs.insert(id.clone(), job);
            self.ensure_index();
            if let Some(ix) = self.index.as_mut() {
                ix.running.push((host.to_string(), id.clone()));
                ix.next_due = 0;
            }
        }
        self.emit(Event::JobStarted {
            at: self.now,
            host: host.to_string(),
            job: id.clone(),
            job_type: t,
            rule,
        });
        id
    }

    fn accept(
        &mut self,
        mut ans: Answer,
        host: &str,
        vm_id: Option<VmId>,
        op: &Operation,
        rule: &'static Rule,
        (failure, warning): (Option<PlannedFailure>, Option<String>),
    ) -> Answer {
        ans.rule = Some(rule.id);
        let rel = match rule.scope {
            Scope::Vm(sel) => rel_for(sel, op),
            _ => None,
        };
        let args = JobArgs {
            recovery_point: op.recovery_point().map(str::to_string),
            settings: op.settings().cloned(),
            initial_type: match op {
                Operation::StartReplication { initial_type, .. } => Some(*initial_type),
                _ => None,
            },
        };
        let rollback = vm_id
            .as_deref()
            .and_then(|id| self.vm(host, id))
            .map(|v| Rollback {
                mode: v.mode,
                state: rel.and_then(|ix| v.rel(ix)).map(|r| r.state),
            });
        for e in rule.effects.iter().copied().filter(|e| e.at_accept()) {
            self.effect(
                e,
                host,
                vm_id.as_deref(),
                rel.unwrap_or(RelIx::Primary),
                op,
                &args,
                &mut ans,
            );
        }
        let Some(job_type) = rule.job else {
            self.finish_rule(rule, host, vm_id.as_deref(), rel, op, &args, &mut ans);
            ans.code = 0;
            return ans;
        };
        if let (Some(via), Some(ix), Some(id)) = (rule.via, rel, vm_id.as_deref()) {
            self.set_state(host, id, ix, Some(via));
        }
        let peer = if rule.guards.contains(&Guard::PeerIdle) {
            let v = vm_id.as_deref().and_then(|id| self.vm(host, id));
            self.peer_vm(host, v, rel, op)
                .map(|(h, p)| (h, p.id.clone()))
        } else {
            None
        };
        let change = PendingChange {
            rule: table::RuleRef::new(rule),
            vm: vm_id.clone(),
            rel: rel.unwrap_or(RelIx::Primary),
            args,
            op: op.clone(),
            rollback,
            peer: peer.clone(),
        };
        let job = self.new_job(host, job_type, Some(change), failure);
        let now = self.now;
        if let Some(j) = self.hosts.get_mut(host).and_then(|h| h.jobs.get_mut(&job)) {
            j.warning = warning.map(crate::text::clipped);
            // A StartTime already past starts at once, as Null does (DOC: "If this parameter
            // is Null, the ... operation starts immediately").
            j.scheduled = op.start_time().filter(|&t| t > now);
        }
        if let Some(id) = vm_id.as_deref()
            && let Some(v) = self.vm_mut(host, id)
        {
            v.busy_with = Some(job.clone());
        }
        // The peer the job will change is reserved too, so no call on the other side races it.
        if let Some((ph, pv)) = &peer
            && let Some(v) = self.vm_mut(ph, pv)
        {
            v.busy_with = Some(job.clone());
        }
        // Remember which operation started the job so completion can replay its arguments.
        ans.code = 4096;
        ans.job = Some(job);
        ans
    }

    /// Applies a rule's completion effects and its `to`.
    #[allow(clippy::too_many_arguments)]
    fn finish_rule(
        &mut self,
        rule: &Rule,
        host: &str,
        vm: Option<&str>,
        rel: Option<RelIx>,
        op: &Operation,
        args: &JobArgs,
        ans: &mut Answer,
    ) {
        let ix = rel.unwrap_or(RelIx::Primary);
        for e in rule.effects.iter().copied().filter(|e| !e.at_accept()) {
            self.effect(e, host, vm, ix, op, args, ans);
        }
        let (Some(vm), Some(ix)) = (vm, rel) else {
            return;
        };
        match rule.to {
            To::Unchanged | To::ReverseOutcome => {}
            To::State(s) => self.set_state(host, vm, ix, Some(s)),
            To::PreFailover => {
                let back = self
                    .vm(host, vm)
                    .and_then(|v| v.rel(ix))
                    .and_then(|r| r.pre_failover_state)
                    .unwrap_or(ReplicationState::Replicating);
                self.set_state(host, vm, ix, Some(back));
                if let Some(r) = self.vm_mut(host, vm).and_then(|v| v.rel_mut(ix)) {
                    r.pre_failover_state = None;
                    r.failed_over_replication_type = ReplicationType::None;
                    r.failover_point = None;
                }
            }
            To::Removed => {
                self.set_state(host, vm, ix, None);
                let now_none = self
                    .vm(host, vm)
                    .is_some_and(|v| v.rels.iter().all(Option::is_none));
                if now_none {
                    self.set_mode(host, vm, ReplicationMode::None);
                }
            }
        }
    }

    /// Sets (or, with `None`, removes) a relationship's state, recording the change.
    fn set_state(&mut self, host: &str, vm: &str, ix: RelIx, to: Option<ReplicationState>) {
        let at = self.now;
        if let Some(index) = self.index.as_mut() {
            index.next_delta = 0;
        }
        let Some(v) = self.vm_mut(host, vm) else {
            return;
        };
        let slot = &mut v.rels[ix.index()];
        let from = slot.as_ref().map(|r| r.state);
        match (slot.as_mut(), to) {
            (Some(r), Some(s)) => r.state = s,
            (Some(_), None) => *slot = None,
            (None, Some(s)) => {
                *slot = Some(Relationship {
                    state: s,
                    health: ReplicationHealth::Ok,
                    peer_host: String::new(),
                    settings: ReplicationSettings::default(),
                    last_replication_time: None,
                    last_replication_type: ReplicationType::None,
                    last_apply_time: None,
                    failed_over_replication_type: ReplicationType::None,
                    pre_failover_state: None,
                    failover_point: None,
                    replication_count: 0,
                })
            }
            (None, None) => {}
        }
        if from != to {
            self.emit(Event::StateChanged {
                at,
                host: host.into(),
                vm: vm.into(),
                rel: ix,
                from,
                to,
            });
        }
    }

    fn set_mode(&mut self, host: &str, vm: &str, to: ReplicationMode) {
        let at = self.now;
        let Some(v) = self.vm_mut(host, vm) else {
            return;
        };
        let from = v.mode;
        v.mode = to;
        if from != to {
            self.emit(Event::ModeChanged {
                at,
                host: host.into(),
                vm: vm.into(),
                from,
                to,
            });
        }
    }

    fn set_power(&mut self, host: &str, vm: &str, to: EnabledState) {
        let at = self.now;
        let Some(v) = self.vm_mut(host, vm) else {
            return;
        };
        if v.power != to {
            v.power = to;
            self.emit(Event::PowerChanged {
                at,
                host: host.into(),
                vm: vm.into(),
                to,
            });
        }
    }

    /// The peer of a relationship: (host, same VM id), if that host has the VM.
    fn peer_of(&self, host: &str, vm: &str, ix: RelIx) -> Option<HostName> {
        let peer = self.vm(host, vm)?.rel(ix)?.peer_host.clone();
        let peer = self.resolve_host(&peer)?;
        self.vm(&peer, vm).is_some().then_some(peer)
    }

    fn add_recovery_point(&mut self, host: &str, vm: &str, kind: RecoveryPointKind) {
        let id = format!("Microsoft:{}", self.rp_rng.guid());
        let now = self.now;
        let Some(v) = self.vm_mut(host, vm) else {
            return;
        };
        let history = v
            .rel(RelIx::Primary)
            .map_or(4, |r| r.settings.recovery_history)
            .max(1) as usize;
        let point = RecoveryPoint::new(id, kind, now, &v.name);
        v.recovery_points.push(point);
        // RecoveryHistory is msvm-replicationsettingdata.md «The maximum number of recovery
        // snapshots that will be stored on the recovery server»; 0 keeps only the latest
        // (INFERRED).
        let excess = v.recovery_points.len().saturating_sub(history);
        v.recovery_points.drain(..excess);
    }

    /// Records a replication on both sides of a relationship and a recovery point on the replica.
    fn record_replication(&mut self, host: &str, vm: &str, ix: RelIx, kind: RecoveryPointKind) {
        let now = self.now;
        if let Some(r) = self.vm_mut(host, vm).and_then(|v| v.rel_mut(ix)) {
            r.last_replication_time = Some(now);
            r.last_replication_type = kind.replication_type();
            r.health = ReplicationHealth::Ok;
            r.replication_count += 1;
        }
        if let Some(peer) = self.peer_of(host, vm, ix) {
            let Some(pv) = self.vm(&peer, vm) else { return };
            let peer_ix = Self::back_rel(pv, host, self);
            // Only a replica that is receiving takes the delta; a failed-over or committed one
            // keeps its recovery points as they are (DOC commitfailover flattens them).
            let receiving = pv.rel(peer_ix).is_some_and(|r| {
                matches!(
                    r.state,
                    ReplicationState::WaitingToCompleteInitialReplication
                        | ReplicationState::Replicating
                        | ReplicationState::Resynchronizing
                        | ReplicationState::DiskUpdateInProgress
                )
            });
            if !receiving {
                return;
            }
            if let Some(r) = self.vm_mut(&peer, vm).and_then(|v| v.rel_mut(peer_ix)) {
                r.last_replication_time = Some(now);
                r.last_apply_time = Some(now);
                r.last_replication_type = kind.replication_type();
                r.health = ReplicationHealth::Ok;
                r.replication_count += 1;
            }
            self.add_recovery_point(&peer, vm, kind);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn effect(
        &mut self,
        e: Effect,
        host: &str,
        vm: Option<&str>,
        ix: RelIx,
        op: &Operation,
        args: &JobArgs,
        ans: &mut Answer,
    ) {
        let now = self.now;
        match e {
            Effect::AddAuthorization | Effect::ModifyAuthorization => {
                let entry = match op {
                    Operation::AddAuthorizationEntry { entry }
                    | Operation::ModifyAuthorizationEntry { entry } => entry.clone(),
                    _ => return,
                };
                if let Some(h) = self.hosts.get_mut(host) {
                    h.authorization.retain(|a| {
                        !a.allowed_primary_host_system
                            .eq_ignore_ascii_case(&entry.allowed_primary_host_system)
                    });
                    h.authorization.push(entry);
                    self.generation += 1;
                }
                return;
            }
            Effect::RemoveAuthorization => {
                if let Operation::RemoveAuthorizationEntry {
                    allowed_primary_host_system: key,
                } = op
                {
                    self.remove_authorization(host, key);
                }
                return;
            }
            Effect::ModifyServiceSettings => {
                if let (Operation::ModifyServiceSettings { settings }, Some(h)) =
                    (op, self.hosts.get_mut(host))
                {
                    h.service_settings = h.service_settings.patched(settings);
                    self.generation += 1;
                }
                return;
            }
            Effect::StartService | Effect::StopService => {
                if let Some(h) = self.hosts.get_mut(host) {
                    h.service_running = e == Effect::StartService;
                    // DOC msvm-replicationservice-requeststatechange: "the info is placed in
                    // the RequestedState property of the instance if the return code ... is 0".
                    if let Operation::ServiceStateChange { requested } = op {
                        h.service_requested_state = *requested;
                    }
                    self.generation += 1;
                }
                return;
            }
            Effect::SuspendJob | Effect::ResumeJob => {
                if let Operation::RequestJobStateChange { job, .. } = op {
                    self.suspend_job(host, job, e == Effect::SuspendJob);
                }
                return;
            }
            Effect::CancelJob => {
                if let Operation::RequestJobStateChange { job, requested } = op {
                    // DOC msvm-concretejob JobState: 8 Terminated, 9 Killed.
                    let (state, text) = if *requested == RequestedJobState::Kill.number() {
                        (JobState::Killed, "The job was killed.")
                    } else {
                        (JobState::Terminated, "The job was cancelled.")
                    };
                    self.end_job(host, job, state, 0, text.into());
                }
                return;
            }
            // The effects below change a VM; each is listed so a new effect must be placed.
            Effect::SetMode(_)
            | Effect::PowerOn
            | Effect::PowerOff
            | Effect::RememberPreFailover
            | Effect::SetFailedOverType
            | Effect::CreatePeerReplica
            | Effect::PeerState { .. }
            | Effect::HealthWarning
            | Effect::Delta
            | Effect::FinalSync
            | Effect::KeepFailoverPoint
            | Effect::Reverse
            | Effect::CreateTestReplica
            | Effect::DestroyTestReplica
            | Effect::PromoteExtended
            | Effect::ApplySettings
            | Effect::FailbackSync
            | Effect::ResetStatistics => {}
        }
        let Some(vm) = vm else { return };
        match e {
            Effect::SetMode(m) => self.set_mode(host, vm, m),
            Effect::PowerOn => self.set_power(host, vm, EnabledState::Enabled),
            Effect::PowerOff => self.set_power(host, vm, EnabledState::Disabled),
            Effect::RememberPreFailover => {
                if let Some(r) = self.vm_mut(host, vm).and_then(|v| v.rel_mut(ix)) {
                    r.pre_failover_state = Some(r.state);
                }
            }
            Effect::SetFailedOverType => {
                let prepared = self
                    .peer_of(host, vm, ix)
                    .and_then(|p| self.vm(&p, vm))
                    .and_then(|v| v.rel(RelIx::Primary))
                    .is_some_and(|r| r.state == ReplicationState::SyncedReplicationComplete);
                let v = self.vm(host, vm);
                let point = match &args.recovery_point {
                    Some(key) => {
                        v.and_then(|v| v.recovery_points.iter().find(|rp| rp_matches(rp, key)))
                    }
                    None => v.and_then(|v| v.recovery_points.last()),
                };
                let point_id = point.map(|p| p.id.clone());
                let t = if prepared && args.recovery_point.is_none() {
                    ReplicationType::Planned
                } else {
                    point.map_or(ReplicationType::Regular, |p| p.kind.replication_type())
                };
                if let Some(r) = self.vm_mut(host, vm).and_then(|v| v.rel_mut(ix)) {
                    r.failed_over_replication_type = t;
                    r.failover_point = point_id;
                }
            }
            Effect::CreatePeerReplica => {
                let patch = args.settings.clone().unwrap_or_default();
                let mut settings = ReplicationSettings::default().patched(&patch);
                let peer = self
                    .resolve_host(&settings.recovery_connection_point)
                    .unwrap_or_default();
                settings.primary_connection_point = host.to_string();
                let name = self
                    .vm(host, vm)
                    .map(|v| v.name.clone())
                    .unwrap_or_default();
                self.set_state(host, vm, ix, Some(ReplicationState::ReadyForReplication));
                if let Some(r) = self.vm_mut(host, vm).and_then(|v| v.rel_mut(ix)) {
                    r.peer_host = peer.clone();
                    r.settings = settings.clone();
                }
                let mode = if ix == RelIx::Extended {
                    ReplicationMode::ExtendedReplica
                } else {
                    ReplicationMode::Replica
                };
                let exists = self.vm(&peer, vm).is_some();
                if !exists && let Some(h) = self.hosts.get_mut(&peer) {
                    h.vms.insert(
                        vm.to_string(),
                        Vm {
                            id: vm.to_string(),
                            name: name.clone(),
                            power: EnabledState::Disabled,
                            mode: ReplicationMode::None,
                            rels: [None, None],
                            recovery_points: Vec::new(),
                            test_replica: None,
                            test_of: None,
                            busy_with: None,
                        },
                    );
                    self.emit(Event::VmCreated {
                        at: now,
                        host: peer.clone(),
                        vm: vm.into(),
                        name,
                    });
                }
                // A reused mode-None copy becomes a replica, and replicas are off.
                self.set_power(&peer, vm, EnabledState::Disabled);
                self.set_mode(&peer, vm, mode);
                self.set_state(
                    &peer,
                    vm,
                    RelIx::Primary,
                    Some(ReplicationState::WaitingToCompleteInitialReplication),
                );
                if let Some(r) = self
                    .vm_mut(&peer, vm)
                    .and_then(|v| v.rel_mut(RelIx::Primary))
                {
                    r.peer_host = host.to_string();
                    r.settings = settings;
                }
            }
            Effect::PeerState { from, to } => {
                let peer = self
                    .vm(host, vm)
                    .and_then(|v| v.rel(ix))
                    .map(|r| r.peer_host.clone());
                if let Some(peer) = peer.and_then(|p| self.resolve_host(&p))
                    && let Some(pv) = self.vm(&peer, vm)
                {
                    let back = Self::back_rel(pv, host, self);
                    if pv.rel(back).is_some_and(|r| from.contains(&r.state)) {
                        self.set_state(&peer, vm, back, Some(to));
                    }
                }
            }
            Effect::HealthWarning => {
                if let Some(r) = self.vm_mut(host, vm).and_then(|v| v.rel_mut(ix))
                    && r.health != ReplicationHealth::Warning
                {
                    r.health = ReplicationHealth::Warning;
                    self.generation += 1;
                }
            }
            Effect::Delta => self.record_replication(host, vm, ix, RecoveryPointKind::Standard),
            Effect::FinalSync => self.record_replication(host, vm, ix, RecoveryPointKind::Planned),
            Effect::KeepFailoverPoint => {
                if let Some(v) = self.vm_mut(host, vm) {
                    let keep = v.rel(ix).and_then(|r| r.failover_point.clone());
                    let last = v.recovery_points.last().map(|p| p.id.clone());
                    let keep = keep.or(last);
                    v.recovery_points.retain(|p| Some(&p.id) == keep.as_ref());
                }
            }
            Effect::Reverse => self.reverse(host, vm, ix, args),
            Effect::CreateTestReplica => {
                let id = self.rng.guid();
                let name = self
                    .vm(host, vm)
                    .map(|v| format!("{} - Test", v.name))
                    .unwrap_or_default();
                if let Some(h) = self.hosts.get_mut(host) {
                    h.vms.insert(
                        id.clone(),
                        Vm {
                            id: id.clone(),
                            name: name.clone(),
                            power: EnabledState::Disabled,
                            mode: ReplicationMode::TestReplica,
                            rels: [None, None],
                            recovery_points: Vec::new(),
                            test_replica: None,
                            test_of: Some(vm.to_string()),
                            busy_with: None,
                        },
                    );
                }
                if let Some(v) = self.vm_mut(host, vm) {
                    v.test_replica = Some(id.clone());
                }
                self.emit(Event::VmCreated {
                    at: now,
                    host: host.into(),
                    vm: id.clone(),
                    name,
                });
                ans.resulting_system = Some(id);
            }
            Effect::DestroyTestReplica => self.destroy_test_vm(host, vm),
            Effect::PromoteExtended => {
                let ext_peer = self.peer_of(host, vm, RelIx::Extended);
                if let Some(v) = self.vm_mut(host, vm) {
                    let ext = v.rels[1].take();
                    v.rels[0] = ext;
                }
                self.set_mode(host, vm, ReplicationMode::Primary);
                // Only a peer that still holds the extended copy becomes the replica. One
                // whose relationship was removed on its side (mode None) stays out of it, and
                // this side's relationship dangles, as after RemoveReplicationRelationship on
                // one side alone (INFERRED; found by the property test, PROPTEST_SEED
                // 9713903917676320340: a mode-Replica VM without a relationship).
                if let Some(p) = ext_peer
                    && self
                        .vm(&p, vm)
                        .is_some_and(|copy| copy.mode == ReplicationMode::ExtendedReplica)
                {
                    self.set_mode(&p, vm, ReplicationMode::Replica);
                }
            }
            Effect::ApplySettings => {
                if let Some(p) = &args.settings
                    && let Some(r) = self.vm_mut(host, vm).and_then(|v| v.rel_mut(ix))
                {
                    r.settings = r.settings.patched(p);
                }
            }
            Effect::FailbackSync => {
                let kind = RecoveryPointKind::Standard;
                if let Some(r) = self.vm_mut(host, vm).and_then(|v| v.rel_mut(ix)) {
                    r.last_replication_time = Some(now);
                    r.last_replication_type = kind.replication_type();
                }
                if let Some(peer) = self.peer_of(host, vm, ix)
                    && let Some(r) = self
                        .vm_mut(&peer, vm)
                        .and_then(|v| v.rel_mut(RelIx::Primary))
                {
                    r.last_replication_time = Some(now);
                    r.last_apply_time = Some(now);
                }
            }
            Effect::ResetStatistics => {
                if let Some(r) = self.vm_mut(host, vm).and_then(|v| v.rel_mut(ix)) {
                    r.replication_count = 0;
                }
            }
            // Host effects: carried out (and returned from) in the match above.
            Effect::AddAuthorization
            | Effect::ModifyAuthorization
            | Effect::RemoveAuthorization
            | Effect::ModifyServiceSettings
            | Effect::StartService
            | Effect::StopService
            | Effect::SuspendJob
            | Effect::ResumeJob
            | Effect::CancelJob => {}
        }
        if let Operation::GetReplicationStatistics { .. } = op
            && let Some(r) = self.vm(host, vm).and_then(|v| v.rel(ix))
        {
            ans.output = Output::Statistics {
                health: r.health,
                state: r.state,
                last_replication_time: r.last_replication_time,
                replication_count: r.replication_count,
                pending_bytes: 0,
            };
        }
    }

    /// Removes an authorization entry and stops the replication it admitted: DOC
    /// removeauthorizationentry, "removing an authorization entry will stop replication for any
    /// virtual machines that are authorized with the entry". A replica still admitted by another
    /// entry (its primary named, or `*`) keeps replicating. Stopped replication shows as
    /// Critical (8) with health Critical on the replica and on its primary, whose next delta
    /// would be refused (INFERRED: the page names no state; Critical is where a replication
    /// that cannot continue goes, and Resume-VMReplication takes it back from there).
    fn remove_authorization(&mut self, host: &str, key: &str) {
        let Some(h) = self.hosts.get(host) else {
            return;
        };
        let admitted_by_key = |h: &Host, primary: &str| {
            h.authorizing_entry(primary)
                .is_some_and(|a| a.allowed_primary_host_system.eq_ignore_ascii_case(key))
        };
        let candidates: Vec<(VmId, HostName)> = h
            .vms
            .values()
            .filter(|v| {
                matches!(
                    v.mode,
                    ReplicationMode::Replica | ReplicationMode::ExtendedReplica
                )
            })
            .filter_map(|v| {
                let r = v.rel(RelIx::Primary)?;
                admitted_by_key(h, &r.peer_host).then(|| (v.id.clone(), r.peer_host.clone()))
            })
            .collect();
        if let Some(h) = self.hosts.get_mut(host) {
            h.authorization
                .retain(|a| !a.allowed_primary_host_system.eq_ignore_ascii_case(key));
        }
        self.generation += 1;
        for (vm, primary) in candidates {
            if self
                .hosts
                .get(host)
                .is_some_and(|h| h.authorizing_entry(&primary).is_some())
            {
                continue;
            }
            self.stop_replication(host, &vm, RelIx::Primary);
            if let Some(peer) = self.resolve_host(&primary)
                && let Some(pv) = self.vm(&peer, &vm)
            {
                let back = Self::back_rel(pv, host, self);
                self.stop_replication(&peer, &vm, back);
            }
        }
    }

    /// A relationship that was replicating (or waiting to) goes to Critical, health Critical;
    /// one that is failed over, ready, or already Critical is left as it is.
    fn stop_replication(&mut self, host: &str, vm: &str, ix: RelIx) {
        let active = self.vm(host, vm).and_then(|v| v.rel(ix)).is_some_and(|r| {
            matches!(
                r.state,
                ReplicationState::WaitingToCompleteInitialReplication
                    | ReplicationState::Replicating
                    | ReplicationState::Suspended
                    | ReplicationState::Resynchronizing
                    | ReplicationState::WaitingToStartResynchronization
                    | ReplicationState::ResynchronizationSuspended
                    | ReplicationState::DiskUpdateInProgress
            )
        });
        if !active {
            return;
        }
        self.set_state(host, vm, ix, Some(ReplicationState::Critical));
        if let Some(r) = self.vm_mut(host, vm).and_then(|v| v.rel_mut(ix)) {
            r.health = ReplicationHealth::Critical;
        }
    }

    fn destroy_test_vm(&mut self, host: &str, test_vm: &str) {
        let at = self.now;
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        if let Some(t) = h.vms.remove(test_vm) {
            if let Some(orig) = t.test_of.and_then(|o| h.vms.get_mut(&o)) {
                orig.test_replica = None;
            }
            self.emit(Event::VmRemoved {
                at,
                host: host.into(),
                vm: test_vm.into(),
            });
        }
    }

    /// Profile choice (c): the recovery VM becomes Primary, the old primary its Replica.
    fn reverse(&mut self, host: &str, vm: &str, ix: RelIx, args: &JobArgs) {
        let Some(rel) = self.vm(host, vm).and_then(|v| v.rel(ix)).cloned() else {
            return;
        };
        let planned = rel.failed_over_replication_type == ReplicationType::Planned;
        let (s_new, s_old) = match (self.profile.reverse, planned) {
            (ReverseOutcome::PlannedResumes, true) | (ReverseOutcome::AlwaysReplicating, _) => {
                (ReplicationState::Replicating, ReplicationState::Replicating)
            }
            _ => (
                ReplicationState::ReadyForReplication,
                ReplicationState::WaitingToCompleteInitialReplication,
            ),
        };
        let old_primary = self.resolve_host(&rel.peer_host);
        // PS sets RecoveryConnectionPoint to the old PrimaryConnectionPoint when no name is given
        // (DECOMP 44358932247).
        let mut settings = rel.settings.clone();
        settings.recovery_connection_point = old_primary
            .clone()
            .unwrap_or_else(|| rel.settings.primary_connection_point.clone());
        settings.primary_connection_point = host.to_string();
        if let Some(p) = &args.settings {
            settings = settings.patched(p);
        }
        self.set_mode(host, vm, ReplicationMode::Primary);
        self.set_state(host, vm, ix, Some(s_new));
        let now = self.now;
        if let Some(v) = self.vm_mut(host, vm) {
            v.recovery_points.clear();
            if let Some(r) = v.rel_mut(ix) {
                r.settings = settings.clone();
                r.failed_over_replication_type = ReplicationType::None;
                r.pre_failover_state = None;
                r.failover_point = None;
                r.health = ReplicationHealth::Ok;
                if s_new == ReplicationState::Replicating {
                    r.last_replication_time = Some(now);
                }
            }
        }
        let Some(old) = old_primary else { return };
        if self.vm(&old, vm).is_none() {
            return;
        }
        self.set_power(&old, vm, EnabledState::Disabled);
        self.set_mode(&old, vm, ReplicationMode::Replica);
        self.set_state(&old, vm, RelIx::Primary, Some(s_old));
        if let Some(v) = self.vm_mut(&old, vm) {
            v.recovery_points.clear();
            if let Some(r) = v.rel_mut(RelIx::Primary) {
                r.peer_host = host.to_string();
                r.settings = settings;
                r.failed_over_replication_type = ReplicationType::None;
                r.pre_failover_state = None;
                r.failover_point = None;
                if s_old == ReplicationState::Replicating {
                    r.last_replication_time = Some(now);
                }
            }
        }
        if s_old == ReplicationState::Replicating {
            // The replica starts with the synced point as its first recovery point.
            self.add_recovery_point(&old, vm, RecoveryPointKind::Planned);
        }
    }

    /// Ends a job: success applies its rule; failure and cancel restore the state before it.
    fn end_job(
        &mut self,
        host: &str,
        job_id: &str,
        state: JobState,
        error_code: u16,
        description: String,
    ) {
        if state.succeeded()
            && let Some(why) = self.completion_blocked(host, job_id)
        {
            // The world changed under the job (another call took the recovery host): it fails
            // instead of completing on a stale check.
            return self.end_job(host, job_id, JobState::Exception, 32773, why);
        }
        let now = self.now;
        let Some(job) = self
            .hosts
            .get_mut(host)
            .and_then(|h| h.jobs.get_mut(job_id))
        else {
            return;
        };
        if !job.is_running() {
            return;
        }
        job.state = state;
        job.ended = Some(now);
        job.last_change = now;
        job.error_code = error_code;
        job.error_description = crate::text::clipped(description);
        if state.succeeded() {
            job.percent = 100;
        }
        let job_type = job.job_type;
        let retention = self.profile.job_retention_ms;
        if let Some(ix) = self.index.as_mut() {
            ix.running.retain(|(h, id)| !(h == host && id == job_id));
            ix.next_purge = ix.next_purge.min(now.saturating_add(retention));
            // The VM is free again: it may be due for a delta.
            ix.next_delta = 0;
        }
        let change = job.change.clone();
        if let Some(c) = change {
            if let Some(vm) = c.vm.as_deref()
                && let Some(v) = self.vm_mut(host, vm)
                && v.busy_with.as_deref() == Some(job_id)
            {
                v.busy_with = None;
            }
            if let Some((ph, pv)) = &c.peer
                && let Some(v) = self.vm_mut(ph, pv)
                && v.busy_with.as_deref() == Some(job_id)
            {
                v.busy_with = None;
            }
            let rule = c.rule.get();
            if state.succeeded() {
                let mut scratch = Answer::new();
                let rel = match rule.scope {
                    Scope::Vm(RelSel::NoRel) => None,
                    Scope::Vm(_) => Some(c.rel),
                    Scope::Host | Scope::Job => None,
                };
                self.finish_rule(
                    rule,
                    host,
                    c.vm.as_deref(),
                    rel,
                    &c.op,
                    &c.args,
                    &mut scratch,
                );
            } else if let (Some(vm), Some(rb)) = (c.vm.as_deref(), c.rollback.as_ref()) {
                self.set_mode(host, vm, rb.mode);
                if matches!(rule.scope, Scope::Vm(sel) if sel != RelSel::NoRel) {
                    self.set_state(host, vm, c.rel, rb.state);
                }
                if rule.effects.contains(&Effect::CreateTestReplica) {
                    let test = self.vm(host, vm).and_then(|v| v.test_replica.clone());
                    if let Some(t) = test {
                        self.destroy_test_vm(host, &t);
                    }
                }
            }
        }
        self.emit(Event::JobEnded {
            at: now,
            host: host.into(),
            job: job_id.into(),
            job_type,
            state,
            error_code,
        });
    }

    /// Guards that must still hold when a job completes, not only when it was accepted.
    fn completion_blocked(&self, host: &str, job_id: &str) -> Option<String> {
        let c = self.job(host, job_id)?.change.as_ref()?;
        if !c.rule.get().guards.contains(&Guard::PeerHasNoCopy) {
            return None;
        }
        let vm = c.vm.as_deref().and_then(|id| self.vm(host, id));
        (!self.guard_holds(Guard::PeerHasNoCopy, host, vm, Some(c.rel), &c.op))
            .then(|| "the recovery host already holds this virtual machine".to_string())
    }

    /// When a running job is due to end (or fail), under time pacing.
    fn due(job: &Job) -> Option<(Millis, bool)> {
        let Pace::Time { duration } = job.pace else {
            return None;
        };
        // A suspended job does not progress; time it spent suspended does not count.
        if job.suspended_since.is_some() {
            return None;
        }
        let start = job.started().saturating_add(job.suspended_ms);
        if let Some(f) = &job.failure {
            let at = start + duration * u64::from(f.after_percent.min(100)) / 100;
            return Some((at, false));
        }
        Some((start + duration, true))
    }

    /// Suspends a running job (JobState 5) or resumes a suspended one (DOC
    /// requeststatechange-msvm-concretejob: Suspend "stops the job temporarily", Start "changes
    /// the state to Running"). The table's guards decide which calls get here.
    fn suspend_job(&mut self, host: &str, id: &str, suspend: bool) {
        let now = self.now;
        let Some(job) = self.hosts.get_mut(host).and_then(|h| h.jobs.get_mut(id)) else {
            return;
        };
        if suspend {
            job.suspended_since = Some(now);
            job.state = JobState::Suspended;
        } else if let Some(since) = job.suspended_since.take() {
            job.suspended_ms = job.suspended_ms.saturating_add(now.saturating_sub(since));
            job.state = JobState::Running;
        }
        job.last_change = now;
        self.generation += 1;
        if let Some(ix) = self.index.as_mut() {
            ix.next_due = 0;
        }
    }

    /// Moves time forward to `now`: jobs progress and end in order, ended jobs past their
    /// retention are removed, and replicating primaries send their deltas. Time never goes back.
    pub fn advance(&mut self, now: Millis) {
        if now < self.now {
            return;
        }
        self.ensure_index();
        loop {
            // Nothing is due before `next_due`: the common case (a call while jobs run) skips
            // the scan entirely.
            if self.index.as_ref().is_some_and(|ix| now < ix.next_due) {
                break;
            }
            let mut earliest = Millis::MAX;
            let mut next: Option<(Millis, HostName, JobId, bool)> = None;
            for (h, id) in self.index.as_ref().map_or(&[][..], |ix| &ix.running[..]) {
                let Some((at, ok)) = self.job(h, id).and_then(Self::due) else {
                    continue;
                };
                earliest = earliest.min(at);
                if at <= now
                    && next
                        .as_ref()
                        .is_none_or(|(a, nh, nid, _)| (at, h, id) < (*a, nh, nid))
                {
                    next = Some((at, h.clone(), id.clone(), ok));
                }
            }
            let Some((at, host, id, ok)) = next else {
                if let Some(ix) = self.index.as_mut() {
                    ix.next_due = earliest;
                }
                break;
            };
            self.now = self.now.max(at);
            self.finish_job(&host, &id, ok);
            if let Some(ix) = self.index.as_mut() {
                ix.next_due = 0;
            }
        }
        self.now = now;
        self.refresh_progress();
        self.purge_jobs();
        self.background_deltas();
    }

    /// Builds the run index from the data (after a load, or the first time).
    fn ensure_index(&mut self) {
        if self.index.is_none() {
            let running = self
                .hosts
                .values()
                .flat_map(|h| h.jobs.values())
                .filter(|j| j.is_running())
                .map(|j| (j.host.clone(), j.id.clone()))
                .collect();
            self.index = Some(RunIndex {
                running,
                next_purge: 0,
                next_delta: 0,
                next_due: 0,
            });
        }
    }

    fn finish_job(&mut self, host: &str, id: &str, ok: bool) {
        if ok {
            // A planned warning: the job does its work and says so in 32768 (os-win treats it
            // as success); ErrorCode stays 0, as a successful job's must.
            match self.job(host, id).and_then(|j| j.warning.clone()) {
                Some(w) => self.end_job(host, id, JobState::CompletedWithWarnings, 0, w),
                None => self.end_job(host, id, JobState::Completed, 0, String::new()),
            }
        } else {
            let f = self.job(host, id).and_then(|j| j.failure.clone());
            let (code, text) = f.map_or((32768, String::new()), |f| (f.error_code, f.description));
            self.end_job(host, id, JobState::Exception, code, text);
        }
    }

    fn refresh_progress(&mut self) {
        let now = self.now;
        self.ensure_index();
        let Some(index) = self.index.as_ref() else {
            return;
        };
        for (h, id) in &index.running {
            let Some(job) = self.hosts.get_mut(h).and_then(|h| h.jobs.get_mut(id)) else {
                continue;
            };
            if !job.is_running() || job.suspended_since.is_some() {
                continue;
            }
            // A scheduled job waits in New until its start time.
            if job.scheduled.is_some_and(|t| now < t) {
                continue;
            }
            let (state, pct) = match job.pace {
                Pace::Time { duration } => {
                    let elapsed = job.executed(now);
                    let pct = (elapsed * 100 / duration.max(1)).min(99) as u8;
                    // A job that was suspended has been started: DOC JobState 3 Starting "is
                    // moving from the 2 (New), 5 (Suspended) ... states into 4 (Running)".
                    if elapsed == 0 && job.suspended_ms == 0 {
                        (JobState::New, 0)
                    } else if pct < 10 {
                        (JobState::Starting, pct)
                    } else {
                        (JobState::Running, pct)
                    }
                }
                Pace::Polls { needed, seen } => {
                    let pct = (u64::from(seen) * 100 / u64::from(needed.max(1))).min(99) as u8;
                    match seen {
                        0 => (JobState::New, 0),
                        1 => (JobState::Starting, pct),
                        _ => (JobState::Running, pct),
                    }
                }
            };
            if job.state != state {
                job.last_change = now;
            }
            job.state = state;
            job.percent = pct;
        }
    }

    fn purge_jobs(&mut self) {
        let (now, keep) = (self.now, self.profile.job_retention_ms);
        if self.index.as_ref().is_some_and(|ix| now < ix.next_purge) {
            return;
        }
        let mut next = Millis::MAX;
        for h in self.hosts.values_mut() {
            h.jobs.retain(|_, j| match j.ended {
                Some(e) if now.saturating_sub(e) >= keep => false,
                Some(e) => {
                    next = next.min(e.saturating_add(keep));
                    true
                }
                None => true,
            });
        }
        if let Some(ix) = self.index.as_mut() {
            ix.next_purge = next;
        }
    }

    fn background_deltas(&mut self) {
        let now = self.now;
        if self.index.as_ref().is_some_and(|ix| now < ix.next_delta) {
            return;
        }
        let mut due = Vec::new();
        let mut next = Millis::MAX;
        for (hname, h) in &self.hosts {
            for v in h.vms.values() {
                if v.mode != ReplicationMode::Primary || v.busy_with.is_some() {
                    continue;
                }
                let Some(r) = v.rel(RelIx::Primary) else {
                    continue;
                };
                if r.state != ReplicationState::Replicating {
                    continue;
                }
                let interval = u64::from(r.settings.replication_interval.max(30)) * 1000;
                let at = r
                    .last_replication_time
                    .unwrap_or(0)
                    .saturating_add(interval);
                if now >= at {
                    due.push((hname.clone(), v.id.clone()));
                    next = next.min(now.saturating_add(interval));
                } else {
                    next = next.min(at);
                }
            }
        }
        // The table's ReplicateDelta rows decide: a delta when the replica is reachable,
        // degraded health when it is not.
        for (host, vm) in due {
            let op = Operation::ReplicateDelta { vm: vm.clone() };
            if let Ok(rule) = self.select(&host, Some(&vm), &op, OpKind::ReplicateDelta) {
                let mut scratch = Answer::new();
                self.finish_rule(
                    rule,
                    &host,
                    Some(&vm),
                    Some(RelIx::Primary),
                    &op,
                    &JobArgs::default(),
                    &mut scratch,
                );
            }
        }
        // The scan is the truth for now; a state change since resets `next_delta` to 0.
        if let Some(ix) = self.index.as_mut() {
            ix.next_delta = next;
        }
    }

    /// A client read a job (`polls:N` pacing counts reads).
    pub fn observe_job(&mut self, host: &str, id: &str) {
        let Some(job) = self.hosts.get_mut(host).and_then(|h| h.jobs.get_mut(id)) else {
            return;
        };
        let Pace::Polls { needed, seen } = &mut job.pace else {
            return;
        };
        let waiting = job.scheduled.is_some_and(|t| self.now < t);
        if !job.state.is_terminal() && job.suspended_since.is_none() && !waiting {
            *seen += 1;
            let (seen, needed) = (*seen, *needed);
            let pct = (u64::from(seen) * 100 / u64::from(needed.max(1))) as u8;
            let fail_now = job.failure.as_ref().is_some_and(|f| pct >= f.after_percent);
            if fail_now {
                self.finish_job(host, id, false);
            } else if seen >= needed {
                self.finish_job(host, id, true);
            }
            self.refresh_progress();
        }
    }

    /// The time at which every running job will have ended under time pacing; polls-paced jobs
    /// are ended by reading them. For oracles and tests that want a quiescent world.
    pub fn settle(&mut self) {
        // A suspended job never ends by itself: settling resumes it, as a client's Start would.
        let suspended: Vec<(String, String)> = self
            .running_jobs()
            .filter(|j| j.suspended_since.is_some())
            .map(|j| (j.host.clone(), j.id.clone()))
            .collect();
        for (h, id) in suspended {
            self.suspend_job(&h, &id, false);
        }
        // A scheduled job starts at its time: time moves there first, so polls-paced ones
        // can then be read to their end.
        let scheduled = self.running_jobs().filter_map(|j| j.scheduled).max();
        if let Some(at) = scheduled.filter(|&t| t > self.now) {
            self.advance(at);
        }
        let running: Vec<(String, String)> = self
            .running_jobs()
            .filter(|j| matches!(j.pace, Pace::Polls { .. }))
            .map(|j| (j.host.clone(), j.id.clone()))
            .collect();
        for (h, id) in running {
            for _ in 0..10_000 {
                if self.job(&h, &id).is_none_or(|j| !j.is_running()) {
                    break;
                }
                self.observe_job(&h, &id);
            }
        }
        let latest = self
            .running_jobs()
            .filter_map(Self::due)
            .map(|(at, _)| at)
            .max();
        if let Some(at) = latest {
            self.advance(at.max(self.now));
        }
    }

    /// Adds a fault rule, returning its id.
    pub fn add_fault(
        &mut self,
        spec: crate::faults::FaultSpec,
    ) -> Result<u64, crate::faults::FaultSpecError> {
        spec.validate()?;
        let id = self.next_fault_id;
        self.next_fault_id += 1;
        self.faults
            .push(crate::faults::FaultRule { id, spec, fired: 0 });
        self.generation += 1;
        Ok(id)
    }
}
