//! The engine: carries out operations on a [`World`] by reading the transition table
//! ([`crate::table`]). It holds no rule of its own. By concern:
//! - this file: the answer and events, and `apply`, the order a call goes through;
//! - `preconditions`: the table's `PRECONDITIONS`, checked before any row;
//! - `rows`: choosing the row that accepts a call (or the most specific refusal) and carrying
//!   it out;
//! - `guards`: whether each of the table's guards holds;
//! - `effects`: the effect primitives the rows name;
//! - `jobs`: jobs started by rows, their progress and their end;
//! - `clock`: time moving forward, and background deltas.

use crate::enums::*;
pub use crate::events::Event;
use crate::faults::{self, FaultKind};
use crate::ops::{JobArgs, OpKind, Operation};
use crate::profile::ReverseOutcome;
use crate::table::{self, Check, Effect, From, Guard, Power, RelSel, Rule, Scope, To};
use crate::time::Millis;
use crate::world::*;
use serde::{Deserialize, Serialize};

mod clock;
mod effects;
mod guards;
mod jobs;
mod preconditions;
mod rows;

use preconditions::rp_matches;
pub use preconditions::validate_settings_public;
use rows::Why;

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
