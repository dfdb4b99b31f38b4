//! Behaviour profiles: the points the sources leave open (docs/facts.md#open-questions), each a
//! named choice with one default. Conformance against a real host is what settles them; until then
//! every alternative is selectable (topology `profile = "..."` or per-field overrides) and tested.

use crate::enums::{JobType, ReturnCode};
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// (a) How a call in the wrong state is refused. Not documented (docs/facts.md#open-questions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WrongStateAnswer {
    /// ReturnValue 32775 at once, no job. INFERRED from libvirt/MSWMI client behaviour
    /// (docs/facts.md#return-codes: argument and state errors answered at once).
    Immediate,
    /// ReturnValue 4096 and a job that ends in Exception (10) with ErrorCode 32775.
    FailingJob,
}

/// (c) Modes and states after ReverseReplicationRelationship. Only the description text is
/// documented ("Replicates a failed-over virtual machine back to the primary server").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReverseOutcome {
    /// After a planned failover both sides go on Replicating (3): the old primary was prepared
    /// and in sync, so no initial copy is needed. After an unplanned failover the new primary
    /// is Ready (1) and the old primary WaitingToCompleteInitialReplication (2) until
    /// StartReplication. INFERRED from BLOG-PFO (no data loss in a planned failover).
    PlannedResumes,
    /// Always Ready (1) / Waiting (2): a StartReplication is always needed (INFERRED,
    /// docs/provenance.md#reverse-replication).
    AlwaysReady,
    /// Always Replicating (3) on both sides at once.
    AlwaysReplicating,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// (a)
    pub wrong_state: WrongStateAnswer,
    /// (b) Whether InitiateFailback requires the recovery VM to be off. DOC states no
    /// precondition; INFERRED default `false` (the provider reverse-syncs from a running VM).
    pub failback_requires_off: bool,
    /// (c)
    pub reverse: ReverseOutcome,
    /// The code for a state-changing call on a VM that already runs a job (INFERRED: DOC's
    /// 32774 "System is in use").
    pub busy_code: u32,
    /// Default job duration: a failback job visibly passes Running and ends within about a
    /// second (docs/facts.md#time).
    pub job_ms: Millis,
    /// Initial replication and resynchronization take longer.
    pub long_job_ms: Millis,
    /// How long an ended job stays readable: TimeBeforeRemoval, msvm-concretejob.md «The default
    /// is five minutes».
    pub job_retention_ms: Millis,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            name: "default".into(),
            wrong_state: WrongStateAnswer::Immediate,
            failback_requires_off: false,
            reverse: ReverseOutcome::PlannedResumes,
            busy_code: ReturnCode::SystemInUse.number(),
            job_ms: 800,
            long_job_ms: 1500,
            job_retention_ms: 300_000,
        }
    }
}

/// Named profiles a topology can select with `profile = "<name>"`.
pub const PROFILE_NAMES: &[&str] = &[
    "default",
    "wrong-state-job",
    "failback-requires-off",
    "reverse-always-ready",
    "reverse-always-replicating",
    "busy-invalid-state",
];

impl Profile {
    pub fn named(name: &str) -> Option<Profile> {
        let base = Profile {
            name: name.to_string(),
            ..Profile::default()
        };
        Some(match name {
            "default" => base,
            "wrong-state-job" => Profile {
                wrong_state: WrongStateAnswer::FailingJob,
                ..base
            },
            "failback-requires-off" => Profile {
                failback_requires_off: true,
                ..base
            },
            "reverse-always-ready" => Profile {
                reverse: ReverseOutcome::AlwaysReady,
                ..base
            },
            "reverse-always-replicating" => Profile {
                reverse: ReverseOutcome::AlwaysReplicating,
                ..base
            },
            "busy-invalid-state" => Profile {
                busy_code: ReturnCode::InvalidState.number(),
                ..base
            },
            _ => return None,
        })
    }

    /// How long a job of this type runs under `realtime` pacing.
    pub fn job_duration(&self, t: JobType) -> Millis {
        match t {
            JobType::StartInbandInitialReplication
            | JobType::StartExportInitialReplication
            | JobType::StartResyncInitialReplication
            | JobType::Resynchronizing => self.long_job_ms,
            _ => self.job_ms,
        }
    }
}
