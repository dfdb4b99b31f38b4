//! The table's guards: whether each holds for a call, and the peer lookups they need.

use super::*;

impl World {
    pub(super) fn guard_holds(
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
                let target = op
                    .args()
                    .creates
                    .and_then(|s| s.recovery_connection_point.as_deref())
                    .and_then(|p| self.resolve_host(p));
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
            Guard::ConnectionPointReachable => op
                .args()
                .connection
                .is_none_or(|(point, _, _)| self.reachable(host, point)),
            Guard::AuthorizationExists => {
                let Some(key) = op.args().existing_entry else {
                    return true;
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
                    Guard::RecoveryServerAuthentication => auth.is_some_and(|a| s.allows(a)),
                    // The arm above holds only these three.
                    Guard::LastReplicationTimeSet
                    | Guard::NoTestReplica
                    | Guard::NoExtendedOnReplica
                    | Guard::HasExtended
                    | Guard::PrimaryRelReplicating
                    | Guard::PeerReachable
                    | Guard::PeerHasNoCopy
                    | Guard::PeerIdle
                    | Guard::PeerNotFailedOver
                    | Guard::AuthorizationExists
                    | Guard::ConnectionPointReachable
                    | Guard::JobRunning
                    | Guard::JobNotSuspended
                    | Guard::JobSuspended => true,
                }
            }
            Guard::JobRunning => self.job_holds(host, op, |_| true),
            Guard::JobNotSuspended => self.job_holds(host, op, |j| j.suspended_since.is_none()),
            Guard::JobSuspended => self.job_holds(host, op, |j| j.suspended_since.is_some()),
        }
    }

    /// A job guard: the job the call names runs and `also` holds for it (true for a call that
    /// names no job).
    fn job_holds(&self, host: &str, op: &Operation, also: impl Fn(&Job) -> bool) -> bool {
        op.args().job.is_none_or(|(id, _)| {
            self.job(host, id)
                .is_some_and(|j| j.is_running() && also(j))
        })
    }

    /// The recovery host a call would replicate to, with the port and authentication type it
    /// connects with (`None` for an authentication type that is not 1 or 2).
    pub(super) fn recovery_target(
        &self,
        op: &Operation,
    ) -> Option<(HostName, u16, Option<AuthenticationType>)> {
        let args = op.args();
        if let Some(settings) = args.creates {
            let s = ReplicationSettings::default().patched(settings);
            let host = self.resolve_host(&s.recovery_connection_point)?;
            return Some((host, s.recovery_server_port, Some(s.authentication_type)));
        }
        let (point, port, auth) = args.connection?;
        Some((
            self.resolve_host(point)?,
            port,
            AuthenticationType::from_number(u32::from(auth)).ok(),
        ))
    }

    /// The other host a call needs: the recovery host it names, or the relationship's peer.
    pub(super) fn peer_named(vm: Option<&Vm>, rel: Option<RelIx>, op: &Operation) -> String {
        let args = op.args();
        if let Some(settings) = args.creates {
            return settings
                .recovery_connection_point
                .clone()
                .unwrap_or_default();
        }
        if let Some((point, _, _)) = args.connection {
            return point.to_string();
        }
        vm.and_then(|v| v.rel(rel.unwrap_or(RelIx::Primary)))
            .map(|r| r.peer_host.clone())
            .unwrap_or_default()
    }

    /// The VM on the other side of the call, if that host has it.
    pub(super) fn peer_vm<'a>(
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
    pub(super) fn back_rel(peer: &Vm, host: &str, world: &World) -> RelIx {
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
    pub(super) fn blame_unreachable(
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
                FaultKind::ReturnCode { .. }
                | FaultKind::FailJob { .. }
                | FaultKind::CompleteWithWarnings { .. }
                | FaultKind::Delay { .. }
                | FaultKind::DropConnection => false,
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
}
