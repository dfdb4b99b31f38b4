//! The effect primitives the table's rows name, and the state changes they are made of.

use super::*;

impl World {
    /// Sets (or, with `None`, removes) a relationship's state, recording the change.
    pub(super) fn set_state(
        &mut self,
        host: &str,
        vm: &str,
        ix: RelIx,
        to: Option<ReplicationState>,
    ) {
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

    pub(super) fn set_mode(&mut self, host: &str, vm: &str, to: ReplicationMode) {
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

    pub(super) fn set_power(&mut self, host: &str, vm: &str, to: EnabledState) {
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
    pub(super) fn peer_of(&self, host: &str, vm: &str, ix: RelIx) -> Option<HostName> {
        let peer = self.vm(host, vm)?.rel(ix)?.peer_host.clone();
        let peer = self.resolve_host(&peer)?;
        self.vm(&peer, vm).is_some().then_some(peer)
    }

    pub(super) fn add_recovery_point(&mut self, host: &str, vm: &str, kind: RecoveryPointKind) {
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
    pub(super) fn record_replication(
        &mut self,
        host: &str,
        vm: &str,
        ix: RelIx,
        kind: RecoveryPointKind,
    ) {
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
    pub(super) fn effect(
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
                let Some(entry) = op.args().entry.cloned() else {
                    return;
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
    pub(super) fn remove_authorization(&mut self, host: &str, key: &str) {
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
    pub(super) fn stop_replication(&mut self, host: &str, vm: &str, ix: RelIx) {
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

    pub(super) fn destroy_test_vm(&mut self, host: &str, test_vm: &str) {
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
    pub(super) fn reverse(&mut self, host: &str, vm: &str, ix: RelIx, args: &JobArgs) {
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
}
