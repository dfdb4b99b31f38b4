//! Choosing the row of the table that accepts a call (or the most specific refusal), and
//! carrying out an accepted row: its effects at acceptance, its job, and its completion.

use super::*;

/// Why no rule accepted a call, ranked so the most specific reason wins.
pub(super) struct Refusal {
    pub(super) rank: u8,
    pub(super) code: u32,
    pub(super) rule: &'static str,
    pub(super) why: Why,
}

/// Why a rule did not apply; turned into words only for the refusal that is answered, so
/// the hot path of a refused call allocates nothing for the rules it passed over.
pub(super) enum Why {
    Mode(&'static [ReplicationMode], ReplicationMode),
    State(Option<ReplicationState>),
    Power(bool, EnabledState),
    Guard(Guard),
    NoRule,
}

impl Refusal {
    pub(super) fn reason(&self, kind: OpKind) -> String {
        match &self.why {
            Why::Mode(modes, have) => format!(
                "{} needs mode {:?}; the VM is {have}",
                kind.label(),
                modes.iter().map(|m| m.ident()).collect::<Vec<_>>()
            ),
            // Written into the label's own String: this is the refusal clients meet most
            // (a method in the wrong replication state), and a `format!` around the state's
            // own `to_string` was half the cost of answering it.
            Why::State(current) => {
                use std::fmt::Write;
                let mut reason = kind.label();
                reason.push_str(" is not allowed in ");
                match current {
                    Some(s) => {
                        let _ = write!(reason, "{s}");
                    }
                    None => reason.push_str(NO_RELATIONSHIP),
                }
                reason.push_str(" (rule ");
                reason.push_str(self.rule);
                reason.push(')');
                reason
            }
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

pub(super) fn rel_for(sel: RelSel, op: &Operation) -> Option<RelIx> {
    match sel {
        RelSel::Primary => Some(RelIx::Primary),
        RelSel::Extended => Some(RelIx::Extended),
        RelSel::Arg => Some(op.rel_arg().unwrap_or(RelIx::Primary)),
        RelSel::NoRel => None,
    }
}

/// How a missing relationship reads where a replication state would.
const NO_RELATIONSHIP: &str = "no relationship";

impl World {
    pub(super) fn select(
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
                Scope::Host | Scope::Job => None,
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

    pub(super) fn accept(
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
            Scope::Host | Scope::Job => None,
        };
        let args = JobArgs {
            recovery_point: op.recovery_point().map(str::to_string),
            settings: op.settings().cloned(),
            initial_type: op.args().initial_type,
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
    pub(super) fn finish_rule(
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state refusal is written by hand; its words are those of the plain `format!` over
    /// the state's `Display` (or "no relationship"), for every state.
    #[test]
    fn a_state_refusal_reads_as_its_format() {
        let states = ReplicationState::ALL.iter().map(|s| Some(*s));
        for current in states.chain([None]) {
            let refusal = Refusal {
                rank: 0,
                code: 32775,
                rule: "R7",
                why: Why::State(current),
            };
            let kind = OpKind::InitiateFailover;
            let state = current.map_or("no relationship".to_string(), |s| s.to_string());
            assert_eq!(
                refusal.reason(kind),
                format!("{} is not allowed in {state} (rule R7)", kind.label())
            );
        }
    }
}
