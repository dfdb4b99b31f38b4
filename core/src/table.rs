//! THE transition table. One declarative list of rules feeds the engine, the diagram export,
//! the coverage report and the conformance oracle; no rule is restated anywhere else.
//!
//! A rule reads: for operation `op` on a VM whose mode is in `modes`, whose selected
//! relationship is in `from`, whose power state fits `power`, and whose `guards` hold, the call
//! is accepted; while its job (`job`) runs the relationship shows `via`, and when the job
//! completes it ends at `to` with `effects` applied. A call that matches the operation and mode
//! but not the rest is refused with `refusal` (or the failing guard's own code). A call with no
//! rule for its operation and mode is refused with 32775 as well (INFERRED, reference §4.1).
//!
//! Every row names its `source`: DOC (the class or method page), PS (a client-side check of the
//! PowerShell module, DECOMP ids from reference §0), or INFERRED with the reason.

use crate::enums::InitialReplicationType as I;
use crate::enums::{
    JobType, ReplicationMode as M, ReplicationState as S, RequestedJobState as J,
    RequestedReplicationState as R, RequestedServiceState,
};
use crate::ops::OpKind;

/// What part of the world a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A VM and one of its relationships.
    Vm(RelSel),
    /// The host's replication service (authorization, service settings).
    Host,
    /// A job.
    Job,
}

/// Which relationship of the VM the rule's `from` and `to` are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelSel {
    Primary,
    Extended,
    /// The relationship named by the call's `ReplicationRelationship` argument (Ex methods).
    Arg,
    /// The rule is about the VM itself (power, test replica), not a relationship.
    NoRel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// Any state, including no relationship at all.
    Any,
    /// The selected relationship must exist, in any state.
    AnyRelationship,
    /// The selected relationship must not exist yet.
    NoRelationship,
    States(&'static [S]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Unchanged,
    State(S),
    /// Back to the state saved when the failover started.
    PreFailover,
    /// Decided by the behaviour profile's `reverse` choice (see `profile::ReverseOutcome`).
    ReverseOutcome,
    /// The relationship is removed.
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Any,
    Off,
    On,
    /// Off only if the profile says InitiateFailback requires it (profile choice (b)).
    OffIfProfileSaysFailback,
}

/// Extra preconditions, each with its code and source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// PS Start-VMFailover refuses a replica with no LastReplicationTime (DECOMP 44855487076).
    LastReplicationTimeSet,
    /// "You can only run one test failover on a VM at a time" (LEARN-FO).
    NoTestReplica,
    /// "For a replica virtual machine, primary replication can't be removed if extended
    /// replication is enabled" (DOC removereplicationrelationshipex); extended replication
    /// also blocks reverse (BOOK p.552).
    NoExtendedOnReplica,
    /// ChangeReplicationModeToPrimary works on "the extended replication relationship" (DOC).
    HasExtended,
    /// A replica can only be extended once its own relationship replicates (INFERRED).
    PrimaryRelReplicating,
    /// The call needs the other host: it must exist and not be partitioned or down (INFERRED
    /// 32777 "System is not available").
    PeerReachable,
    /// The recovery host named by the call is another host that does not already hold this VM
    /// in a replication mode: a VM has one replica per relationship, and an extended replica
    /// is a third host (BOOK p.552). INFERRED 32773: the RecoveryConnectionPoint is invalid.
    PeerHasNoCopy,
    /// The peer VM the call will change runs no job: a VM never has two jobs changing it, and
    /// a job on one side must not race a job on the other (profile `busy_code`, 32774).
    PeerIdle,
    /// The peer replica is not failed over (12, 5, 6, 13, 14): replication towards it would
    /// silently discard its failover (INFERRED 32775).
    PeerNotFailedOver,
    /// The authorization entry named by the call must exist (INFERRED 32773).
    AuthorizationExists,
    /// TestReplicationConnection's target must be a reachable host (INFERRED 32777).
    ConnectionPointReachable,
    /// The recovery host accepts replication: its service runs and it is enabled as a recovery
    /// server (DOC msvm-replicationservicesettingdata RecoveryServerEnabled "whether the
    /// Hyper-V host is enabled as a recovery server"). INFERRED 32777: nothing there listens.
    RecoveryServerEnabled,
    /// The recovery host listens on the port the call names for its authentication type (DOC
    /// HttpPort for a nonsecure, i.e. Kerberos, connection; HttpsPort for a secure one).
    /// INFERRED 32777: nothing listens on that port.
    RecoveryServerPort,
    /// The recovery host allows the call's authentication type (DOC AllowedAuthenticationType
    /// 1 Kerberos, 2 certificate, 3 both). INFERRED 32769 Access Denied.
    RecoveryServerAuthentication,
    /// Only a running job can be cancelled (DOC requeststatechange-msvm-concretejob: 4097
    /// Invalid State Transition).
    JobRunning,
    /// Only a running job that is not suspended can be suspended (4097, as above).
    JobNotSuspended,
    /// Only a suspended job can be started again (4097, as above; INFERRED that Start on a
    /// running job is not a no-op 0: it is no transition).
    JobSuspended,
}

impl Guard {
    pub const fn code(self) -> u32 {
        match self {
            Guard::LastReplicationTimeSet
            | Guard::NoTestReplica
            | Guard::NoExtendedOnReplica
            | Guard::HasExtended
            | Guard::PrimaryRelReplicating
            | Guard::PeerNotFailedOver => 32775,
            Guard::PeerIdle => 32774,
            Guard::PeerReachable
            | Guard::ConnectionPointReachable
            | Guard::RecoveryServerEnabled
            | Guard::RecoveryServerPort => 32777,
            Guard::RecoveryServerAuthentication => 32769,
            Guard::AuthorizationExists | Guard::PeerHasNoCopy => 32773,
            Guard::JobRunning | Guard::JobNotSuspended | Guard::JobSuspended => 4097,
        }
    }
}

/// What a completed rule does besides setting `to`. Effects run in order, before `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    SetMode(M),
    PowerOn,
    PowerOff,
    /// Save the state for RevertFailover (runs when the call is accepted).
    RememberPreFailover,
    /// FailedOverReplicationType from the recovery point used.
    SetFailedOverType,
    /// Create this VM's relationship and the VM on the recovery host (Enable-VMReplication
    /// creates the replica VM there; it shows Waiting for initial replication, PS mapping of 2).
    CreatePeerReplica,
    /// Set the peer VM's relationship to this state.
    PeerState(S),
    /// A delta: LastReplicationTime on both sides, a recovery point on the replica.
    Delta,
    /// Planned failover's final sync (BLOG-PFO): a Planned recovery point on the replica.
    FinalSync,
    /// "flattens the recovery points ... by applying the recovery snapshot" (DOC commitfailover).
    KeepFailoverPoint,
    /// Swap the roles of the two sides, states per profile (runs with `To::ReverseOutcome`).
    Reverse,
    /// Create the test VM (mode 3) when the call is accepted, so ResultingSystem can name it.
    CreateTestReplica,
    DestroyTestReplica,
    /// The extended relationship becomes the primary one (DOC changereplicationmodetoprimary).
    PromoteExtended,
    ApplySettings,
    /// The provider reverse-syncs the chosen recovery point: both sides record it (INFERRED).
    FailbackSync,
    AddAuthorization,
    ModifyAuthorization,
    RemoveAuthorization,
    ModifyServiceSettings,
    StartService,
    StopService,
    /// The job stops progressing: JobState 5 Suspended.
    SuspendJob,
    /// A suspended job runs again from where it stopped.
    ResumeJob,
    CancelJob,
    ResetStatistics,
}

impl Effect {
    /// Effects that happen as soon as the call is accepted rather than when its job ends.
    pub const fn at_accept(self) -> bool {
        matches!(
            self,
            Effect::RememberPreFailover | Effect::CreateTestReplica
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A Microsoft documentation page (file name under desktop-src/HyperV_v2).
    Doc(&'static str),
    /// A client-side check of the PowerShell module (DECOMP id).
    PowerShell(&'static str),
    /// No source states it; the text says why we chose it.
    Inferred(&'static str),
}

impl Source {
    pub const fn kind(self) -> &'static str {
        match self {
            Source::Doc(_) => "doc",
            Source::PowerShell(_) => "powershell",
            Source::Inferred(_) => "inferred",
        }
    }
    pub const fn text(self) -> &'static str {
        match self {
            Source::Doc(t) | Source::PowerShell(t) | Source::Inferred(t) => t,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    pub op: OpKind,
    pub scope: Scope,
    /// Modes the VM may be in; empty = any.
    pub modes: &'static [M],
    pub from: From,
    pub power: Power,
    pub guards: &'static [Guard],
    pub via: Option<S>,
    pub to: To,
    /// `None`: synchronous, ReturnValue 0. `Some`: ReturnValue 4096 and a job of this type.
    pub job: Option<JobType>,
    pub refusal: u32,
    pub effects: &'static [Effect],
    pub source: Source,
}

const WRONG_STATE: u32 = 32775;

/// Shorthand for the common case: a VM rule on the primary relationship, refused with 32775.
const fn vm(id: &'static str, op: OpKind, modes: &'static [M], from: From) -> Rule {
    Rule {
        id,
        op,
        scope: Scope::Vm(RelSel::Primary),
        modes,
        from,
        power: Power::Any,
        guards: &[],
        via: None,
        to: To::Unchanged,
        job: None,
        refusal: WRONG_STATE,
        effects: &[],
        source: Source::Inferred("(set per row)"),
    }
}

const fn host(id: &'static str, op: OpKind) -> Rule {
    Rule {
        scope: Scope::Host,
        ..vm(id, op, &[], From::Any)
    }
}

use self::From::{AnyRelationship, NoRelationship, States};
use OpKind as O;

pub static RULES: &[Rule] = &[
    // ---- Enabling replication -------------------------------------------------------------
    Rule {
        to: To::State(S::ReadyForReplication),
        job: Some(JobType::CreateReplicationRelationship),
        guards: &[
            Guard::PeerReachable,
            Guard::RecoveryServerEnabled,
            Guard::RecoveryServerPort,
            Guard::RecoveryServerAuthentication,
            Guard::PeerHasNoCopy,
            Guard::PeerIdle,
        ],
        effects: &[Effect::SetMode(M::Primary), Effect::CreatePeerReplica],
        source: Source::Doc(
            "createreplicationrelationship: enables replication; state 1 Ready INFERRED from the PS mapping of 1 as ReadyForInitialReplication",
        ),
        ..vm(
            "enable-replication",
            O::CreateReplicationRelationship,
            &[M::None],
            NoRelationship,
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Extended),
        to: To::State(S::ReadyForReplication),
        job: Some(JobType::CreateReplicationRelationship),
        guards: &[
            Guard::PrimaryRelReplicating,
            Guard::PeerReachable,
            Guard::RecoveryServerEnabled,
            Guard::RecoveryServerPort,
            Guard::RecoveryServerAuthentication,
            Guard::PeerHasNoCopy,
            Guard::PeerIdle,
        ],
        effects: &[Effect::CreatePeerReplica],
        source: Source::Doc(
            "createreplicationrelationship: on a replica VM it extends the relationship (\\HVR\\1)",
        ),
        ..vm(
            "extend-replication",
            O::CreateReplicationRelationship,
            &[M::Replica],
            NoRelationship,
        )
    },
    Rule {
        via: Some(S::WaitingToCompleteInitialReplication),
        to: To::State(S::WaitingToCompleteInitialReplication),
        job: Some(JobType::ReplicateStateChange),
        power: Power::Off,
        effects: &[Effect::SetMode(M::Replica)],
        source: Source::PowerShell(
            "Enable-VMReplication -AsReplica calls RRSC(2) on a mode-None VM (DECOMP 44426856526); the VM must be off: INFERRED, a replica never runs until failed over",
        ),
        ..vm(
            "enable-as-replica",
            O::RequestReplicationStateChange(R::WaitingToCompleteInitialReplication),
            &[M::None],
            NoRelationship,
        )
    },
    // ---- Initial replication --------------------------------------------------------------
    Rule {
        via: Some(S::WaitingToCompleteInitialReplication),
        to: To::State(S::Replicating),
        job: Some(JobType::StartInbandInitialReplication),
        guards: &[
            Guard::PeerReachable,
            Guard::PeerIdle,
            Guard::PeerNotFailedOver,
        ],
        effects: &[Effect::PeerState(S::Replicating), Effect::Delta],
        source: Source::Doc(
            "startreplication: type 1 network; 1 → 2 → 3 when the replica finishes (reference §4.1); JobType 94 INFERRED from the name",
        ),
        ..vm(
            "start-initial-replication",
            O::StartReplication(I::Network),
            &[M::Primary],
            States(&[S::ReadyForReplication]),
        )
    },
    Rule {
        via: Some(S::WaitingToCompleteInitialReplication),
        to: To::State(S::Replicating),
        job: Some(JobType::StartResyncInitialReplication),
        guards: &[
            Guard::PeerReachable,
            Guard::PeerIdle,
            Guard::PeerNotFailedOver,
        ],
        effects: &[Effect::PeerState(S::Replicating), Effect::Delta],
        source: Source::PowerShell(
            "seeded initial replication runs as JobType 117 (DECOMP 44358932247, Set-VMReplication)",
        ),
        ..vm(
            "start-seeded-replication",
            O::StartReplication(I::SeededNetwork),
            &[M::Primary],
            States(&[S::ReadyForReplication]),
        )
    },
    Rule {
        via: Some(S::WaitingToCompleteInitialReplication),
        to: To::State(S::WaitingToCompleteInitialReplication),
        job: Some(JobType::StartExportInitialReplication),
        source: Source::Doc(
            "startreplication: Export stays in 2 until ImportInitialReplica on the replica (reference §4.1); JobType 118 INFERRED",
        ),
        ..vm(
            "start-export-replication",
            O::StartReplication(I::Export),
            &[M::Primary],
            States(&[S::ReadyForReplication]),
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Extended),
        via: Some(S::WaitingToCompleteInitialReplication),
        to: To::State(S::Replicating),
        job: Some(JobType::StartInbandInitialReplication),
        guards: &[
            Guard::PeerReachable,
            Guard::PeerIdle,
            Guard::PeerNotFailedOver,
        ],
        effects: &[Effect::PeerState(S::Replicating)],
        source: Source::Doc(
            "startreplication: on a replica VM it starts replication to the extended replica",
        ),
        ..vm(
            "start-extended-replication",
            O::StartReplication(I::Network),
            &[M::Replica],
            States(&[S::ReadyForReplication]),
        )
    },
    Rule {
        guards: &[Guard::PeerIdle],
        to: To::State(S::Replicating),
        job: Some(JobType::ImportReplication),
        effects: &[Effect::PeerState(S::Replicating)],
        source: Source::Inferred(
            "importinitialreplica imports an out-of-band initial replica on the replica side (DOC); → 3 on both sides is INFERRED",
        ),
        ..vm(
            "import-initial-replica",
            O::ImportInitialReplica,
            &[M::Replica, M::ExtendedReplica],
            States(&[S::WaitingToCompleteInitialReplication]),
        )
    },
    Rule {
        via: Some(S::ReadyForReplication),
        to: To::State(S::ReadyForReplication),
        job: Some(JobType::StopInitialReplication),
        source: Source::PowerShell(
            "Stop-VMInitialReplication: RRSC(1) from InitialReplicationInProgress/Suspended/Error (DECOMP 44427443833)",
        ),
        ..vm(
            "stop-initial-replication",
            O::RequestReplicationStateChange(R::ReadyToStartInitialReplication),
            &[M::Primary],
            States(&[
                S::WaitingToCompleteInitialReplication,
                S::Suspended,
                S::Critical,
            ]),
        )
    },
    // ---- Suspend, resume, resynchronize ---------------------------------------------------
    Rule {
        scope: Scope::Vm(RelSel::Arg),
        via: Some(S::Suspended),
        to: To::State(S::Suspended),
        job: Some(JobType::ReplicateStateChange),
        source: Source::PowerShell(
            "Suspend-VMReplication: RRSC(7) from {2,3,10} (DECOMP 44391684629); DOC RRSC: 32775 when not supported in the current state",
        ),
        ..vm(
            "suspend",
            O::RequestReplicationStateChange(R::Suspend),
            &[M::Primary, M::Replica, M::ExtendedReplica],
            States(&[
                S::WaitingToCompleteInitialReplication,
                S::Replicating,
                S::Resynchronizing,
            ]),
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Arg),
        via: Some(S::Replicating),
        to: To::State(S::Replicating),
        job: Some(JobType::ReplicateStateChange),
        source: Source::PowerShell(
            "Resume-VMReplication: RRSC(3) from {7,9,11,8} (DECOMP 44586763475)",
        ),
        ..vm(
            "resume",
            O::RequestReplicationStateChange(R::Replicating),
            &[M::Primary, M::Replica, M::ExtendedReplica],
            States(&[
                S::Suspended,
                S::WaitingToStartResynchronization,
                S::ResynchronizationSuspended,
                S::Critical,
            ]),
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Arg),
        via: Some(S::DiskUpdateInProgress),
        to: To::State(S::DiskUpdateInProgress),
        job: Some(JobType::ReplicateStateChange),
        source: Source::PowerShell(
            "Resume-VMReplication requests 15 when the state is 16 (DECOMP 44586763475)",
        ),
        ..vm(
            "resume-disk-update",
            O::RequestReplicationStateChange(R::Replicating),
            &[M::Primary, M::Replica, M::ExtendedReplica],
            States(&[S::DiskUpdateCritical]),
        )
    },
    Rule {
        via: Some(S::Resynchronizing),
        to: To::State(S::Replicating),
        job: Some(JobType::Resynchronizing),
        guards: &[
            Guard::PeerReachable,
            Guard::PeerIdle,
            Guard::PeerNotFailedOver,
        ],
        effects: &[Effect::Delta],
        source: Source::Inferred(
            "Resume-VMReplication -Resynchronize from {7,8,9,11} (DECOMP 44586763475); 10 → 3 INFERRED",
        ),
        ..vm(
            "resynchronize",
            O::Resynchronize,
            &[M::Primary],
            States(&[
                S::Suspended,
                S::Critical,
                S::WaitingToStartResynchronization,
                S::ResynchronizationSuspended,
            ]),
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Extended),
        via: Some(S::Resynchronizing),
        to: To::State(S::Replicating),
        job: Some(JobType::Resynchronizing),
        guards: &[
            Guard::PeerReachable,
            Guard::PeerIdle,
            Guard::PeerNotFailedOver,
        ],
        effects: &[Effect::Delta],
        source: Source::Doc(
            "resynchronize-msvm-replicationservice: 'When a client calls this method for a replica virtual machine, it resynchronizes with extended replica'; the extended relationship's from-states and 10 → 3 mirror the primary's row (INFERRED)",
        ),
        ..vm(
            "resynchronize-extended",
            O::Resynchronize,
            &[M::Replica],
            States(&[
                S::Suspended,
                S::Critical,
                S::WaitingToStartResynchronization,
                S::ResynchronizationSuspended,
            ]),
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Arg),
        to: To::State(S::WaitingToStartResynchronization),
        job: Some(JobType::StopResynchronizing),
        source: Source::Inferred(
            "RRSC(9) Cancel Resynchronize is documented (DOC RRSC); from 10 to 9 INFERRED",
        ),
        ..vm(
            "cancel-resynchronize",
            O::RequestReplicationStateChange(R::CancelResynchronize),
            &[M::Primary],
            States(&[S::Resynchronizing]),
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Primary),
        effects: &[Effect::Delta],
        guards: &[Guard::PeerReachable],
        source: Source::Inferred(
            "a delta every ReplicationInterval updates LastReplicationTime (DOC msvm-replicationrelationship) and adds a recovery point",
        ),
        ..vm(
            "delta-replicated",
            O::ReplicateDelta,
            &[M::Primary],
            States(&[S::Replicating]),
        )
    },
    // ---- Planned failover -----------------------------------------------------------------
    Rule {
        power: Power::Off,
        via: Some(S::SyncedReplicationComplete),
        to: To::State(S::SyncedReplicationComplete),
        job: Some(JobType::ReplicateStateChange),
        guards: &[
            Guard::PeerReachable,
            Guard::PeerIdle,
            Guard::PeerNotFailedOver,
        ],
        effects: &[Effect::FinalSync],
        source: Source::PowerShell(
            "Start-VMFailover -Prepare: RRSC(4), mode Primary, VM Off, state 3 (DECOMP 44855487076 ValidateStatesForPrepareFailover)",
        ),
        ..vm(
            "prepare-planned-failover",
            O::RequestReplicationStateChange(R::SyncedReplicationComplete),
            &[M::Primary],
            States(&[S::Replicating]),
        )
    },
    Rule {
        to: To::State(S::Replicating),
        job: Some(JobType::RevertFailover),
        source: Source::Inferred(
            "Stop-VMFailover on a prepared primary calls RevertFailover (DECOMP 44913315024); 4 → 3 INFERRED",
        ),
        ..vm(
            "cancel-prepared-failover",
            O::RevertFailover,
            &[M::Primary],
            States(&[S::SyncedReplicationComplete]),
        )
    },
    Rule {
        power: Power::Off,
        via: Some(S::FailoverInProgress),
        to: To::State(S::Recovered),
        job: Some(JobType::InitiateFailover),
        guards: &[Guard::LastReplicationTimeSet],
        effects: &[Effect::RememberPreFailover, Effect::SetFailedOverType],
        source: Source::PowerShell(
            "Start-VMFailover on a replica: VM Off, state in {3,10,7,15}, LastReplicationTime set (DECOMP 44855487076); 12 → 5 (DOC initiatefailover, reference §4.2)",
        ),
        ..vm(
            "failover",
            O::InitiateFailover,
            &[M::Replica, M::ExtendedReplica],
            States(&[
                S::Replicating,
                S::Suspended,
                S::Resynchronizing,
                S::DiskUpdateInProgress,
            ]),
        )
    },
    Rule {
        to: To::PreFailover,
        job: Some(JobType::RevertFailover),
        effects: &[Effect::PowerOff],
        source: Source::Doc(
            "revertfailover: discards the failover disk, InitiateFailover can be called again; PS allows it from 5 and 12 (DECOMP 44913315024)",
        ),
        ..vm(
            "revert-failover",
            O::RevertFailover,
            &[M::Replica, M::ExtendedReplica],
            States(&[S::Recovered, S::FailoverInProgress]),
        )
    },
    Rule {
        to: To::State(S::Committed),
        job: Some(JobType::CommitFailover),
        effects: &[Effect::KeepFailoverPoint],
        source: Source::PowerShell(
            "Complete-VMFailover: mode Replica/ExtendedReplica, state 5 exactly (DECOMP 44873510322); → 6 (DOC commitfailover)",
        ),
        ..vm(
            "commit-failover",
            O::CommitFailover,
            &[M::Replica, M::ExtendedReplica],
            States(&[S::Recovered]),
        )
    },
    Rule {
        to: To::ReverseOutcome,
        job: Some(JobType::ReverseReplication),
        guards: &[
            Guard::NoExtendedOnReplica,
            Guard::PeerReachable,
            Guard::PeerIdle,
        ],
        effects: &[Effect::Reverse],
        source: Source::Inferred(
            "reversereplicationrelationship: 'replicates a failed-over VM back to the primary server' (DOC); PS refuses mode Primary (DECOMP 44358932247); modes and states after it are profile choice (c)",
        ),
        ..vm(
            "reverse-replication",
            O::ReverseReplicationRelationship,
            &[M::Replica],
            States(&[S::Recovered, S::Committed, S::FailbackComplete]),
        )
    },
    Rule {
        to: To::State(S::Replicating),
        job: Some(JobType::ChangeReplicationModeToPrimary),
        guards: &[Guard::HasExtended, Guard::PeerIdle],
        effects: &[Effect::PromoteExtended],
        source: Source::Doc(
            "changereplicationmodetoprimary: the replica must be in a failover committed state; the extended relationship becomes primary",
        ),
        ..vm(
            "change-mode-to-primary",
            O::ChangeReplicationModeToPrimary,
            &[M::Replica],
            States(&[S::Committed]),
        )
    },
    // ---- Test failover --------------------------------------------------------------------
    Rule {
        job: Some(JobType::InitiateTestReplica),
        guards: &[Guard::NoTestReplica, Guard::LastReplicationTimeSet],
        effects: &[Effect::CreateTestReplica],
        source: Source::PowerShell(
            "Start-VMFailover -AsTest: replica, not 10 or 15 (DECOMP 44855487076); one test failover at a time (LEARN-FO); TestReplicaSystem makes a mode-3 VM (DOC)",
        ),
        ..vm(
            "test-failover",
            O::TestReplicaSystem,
            &[M::Replica, M::ExtendedReplica],
            States(&[S::Replicating, S::Suspended]),
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::NoRel),
        job: Some(JobType::RemoveTestReplica),
        effects: &[Effect::DestroyTestReplica],
        source: Source::Doc(
            "testreplicasystem: remove the test VM with Msvm_VirtualSystemManagementService.DestroySystem",
        ),
        ..vm(
            "remove-test-replica",
            O::DestroySystem,
            &[M::TestReplica],
            From::Any,
        )
    },
    // ---- Failback through a replication provider ------------------------------------------
    Rule {
        power: Power::OffIfProfileSaysFailback,
        via: Some(S::FailbackInProgress),
        to: To::State(S::FailbackComplete),
        job: Some(JobType::InitiateFailback),
        guards: &[Guard::PeerReachable, Guard::PeerIdle],
        effects: &[Effect::FailbackSync],
        source: Source::Inferred(
            "initiatefailback: works on a recovery VM, WaitingForFailback (13) then FailbackCompleted (14), JobType 124 (DOC); 'recovery VM' read as mode Replica in 5 or 6, preconditions undocumented (reference §8.1)",
        ),
        ..vm(
            "initiate-failback",
            O::InitiateFailback,
            &[M::Replica],
            States(&[S::Recovered, S::Committed]),
        )
    },
    // ---- Settings, statistics, removal ----------------------------------------------------
    Rule {
        job: Some(JobType::ModifyReplicationRelationshipSettings),
        effects: &[Effect::ApplySettings],
        source: Source::Doc("modifyreplicationsettings: same validation as Create"),
        ..vm(
            "modify-settings",
            O::ModifyReplicationSettings,
            &[M::Primary],
            AnyRelationship,
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Extended),
        job: Some(JobType::ModifyReplicationRelationshipSettings),
        effects: &[Effect::ApplySettings],
        source: Source::Doc(
            "modifyreplicationsettings: on a replica VM it changes the extended relationship; PS refuses the simple one (VMReplication_CannotModifySettingsOnReplica, DECOMP 44358932247)",
        ),
        ..vm(
            "modify-extended-settings",
            O::ModifyReplicationSettings,
            &[M::Replica],
            AnyRelationship,
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Arg),
        to: To::Removed,
        job: Some(JobType::RemoveReplicationRelationship),
        guards: &[Guard::NoExtendedOnReplica],
        source: Source::Inferred(
            "removereplicationrelationshipex (DOC); mode 0 / state 0 afterwards INFERRED",
        ),
        ..vm(
            "remove-replication",
            O::RemoveReplicationRelationship,
            &[M::Primary, M::Replica, M::ExtendedReplica],
            AnyRelationship,
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Arg),
        source: Source::Doc("getreplicationstatisticsex: statistics of a chosen relationship"),
        ..vm(
            "get-statistics",
            O::GetReplicationStatistics,
            &[M::Primary, M::Replica, M::ExtendedReplica],
            AnyRelationship,
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::Arg),
        effects: &[Effect::ResetStatistics],
        source: Source::Doc("resetreplicationstatisticsex"),
        ..vm(
            "reset-statistics",
            O::ResetReplicationStatistics,
            &[M::Primary, M::Replica, M::ExtendedReplica],
            AnyRelationship,
        )
    },
    Rule {
        source: Source::Doc("setfailovernetworkadaptersettings: applied after failover"),
        ..vm(
            "set-failover-network",
            O::SetFailoverNetworkAdapterSettings,
            &[M::Primary, M::Replica, M::ExtendedReplica],
            AnyRelationship,
        )
    },
    Rule {
        source: Source::Doc("setauthorizationentry: sets the authorization entry used for a VM"),
        ..vm(
            "set-authorization-entry",
            O::SetAuthorizationEntry,
            &[M::Replica, M::ExtendedReplica],
            AnyRelationship,
        )
    },
    // ---- The host's replication service ---------------------------------------------------
    Rule {
        effects: &[Effect::AddAuthorization],
        source: Source::Doc("addauthorizationentry: runs on the recovery server"),
        ..host("add-authorization-entry", O::AddAuthorizationEntry)
    },
    Rule {
        guards: &[Guard::AuthorizationExists],
        effects: &[Effect::ModifyAuthorization],
        source: Source::Doc("modifyauthorizationentry"),
        ..host("modify-authorization-entry", O::ModifyAuthorizationEntry)
    },
    Rule {
        guards: &[Guard::AuthorizationExists],
        effects: &[Effect::RemoveAuthorization],
        source: Source::Inferred(
            "removeauthorizationentry (DOC): by AllowedPrimaryHostSystem; 'will stop replication for any virtual machines that are authorized with the entry': their relationships on both sides go to Critical, health Critical (the state is INFERRED)",
        ),
        ..host("remove-authorization-entry", O::RemoveAuthorizationEntry)
    },
    Rule {
        job: Some(JobType::ModifyReplicationServerSettings),
        effects: &[Effect::ModifyServiceSettings],
        source: Source::Doc(
            "modifyservicesettings: embedded Msvm_ReplicationServiceSettingData, shown by the class afterwards (msvm-replicationservicesettingdata: 'must call ModifyServiceSettings to modify any of these properties'); JobType 90",
        ),
        ..host("modify-service-settings", O::ModifyServiceSettings)
    },
    Rule {
        job: Some(JobType::TestReplicationConnection),
        guards: &[
            Guard::ConnectionPointReachable,
            Guard::RecoveryServerEnabled,
            Guard::RecoveryServerPort,
            Guard::RecoveryServerAuthentication,
        ],
        source: Source::Doc(
            "testreplicationconnection: checks replication to the recovery system could be enabled (so the recovery server's own checks apply, as for Create); JobType 115",
        ),
        ..host("test-replication-connection", O::TestReplicationConnection)
    },
    Rule {
        source: Source::Doc("getsystemcertificates: synchronous only"),
        ..host("get-system-certificates", O::GetSystemCertificates)
    },
    Rule {
        effects: &[Effect::StartService],
        source: Source::Doc("msvm-replicationservice-startservice: 0 or 1"),
        ..host("start-service", O::StartService)
    },
    Rule {
        effects: &[Effect::StopService],
        source: Source::Doc("msvm-replicationservice-stopservice: 0 or 1"),
        ..host("stop-service", O::StopService)
    },
    Rule {
        effects: &[Effect::StartService],
        source: Source::Inferred(
            "msvm-replicationservice-requeststatechange 2 Enabled (DOC: 0, RequestedState recorded); that it starts the service as StartService does is INFERRED from CIM_EnabledLogicalElement's Enabled",
        ),
        ..host(
            "service-enable",
            O::ServiceStateChange(RequestedServiceState::Enabled),
        )
    },
    Rule {
        effects: &[Effect::StopService],
        source: Source::Inferred(
            "msvm-replicationservice-requeststatechange 3 Disabled (DOC: 0, RequestedState recorded); that it stops the service as StopService does, so replication methods answer 32777, is INFERRED",
        ),
        ..host(
            "service-disable",
            O::ServiceStateChange(RequestedServiceState::Disabled),
        )
    },
    Rule {
        effects: &[Effect::StartService],
        source: Source::Inferred(
            "msvm-replicationservice-requeststatechange 10 Reboot: the service is restarted and runs afterwards (INFERRED from CIM_EnabledLogicalElement's Reboot)",
        ),
        ..host(
            "service-reboot",
            O::ServiceStateChange(RequestedServiceState::Reboot),
        )
    },
    Rule {
        effects: &[Effect::StartService],
        source: Source::Inferred(
            "msvm-replicationservice-requeststatechange 11 Reset: as Reboot, the service runs afterwards (INFERRED)",
        ),
        ..host(
            "service-reset",
            O::ServiceStateChange(RequestedServiceState::Reset),
        )
    },
    // ---- Power ------------------------------------------------------------------------------
    Rule {
        scope: Scope::Vm(RelSel::NoRel),
        power: Power::Off,
        effects: &[Effect::PowerOn],
        source: Source::Inferred(
            "RequestStateChange(2) starts a VM; synchronous here, a real host may answer 4096",
        ),
        ..vm(
            "power-on",
            O::PowerOn,
            &[M::None, M::Primary, M::TestReplica],
            From::Any,
        )
    },
    Rule {
        power: Power::Off,
        effects: &[Effect::PowerOn],
        source: Source::Inferred(
            "a replica VM can only be started once failed over (Start-VM after Start-VMFailover, reference §4.3)",
        ),
        ..vm(
            "power-on-recovered",
            O::PowerOn,
            &[M::Replica, M::ExtendedReplica],
            States(&[
                S::Recovered,
                S::Committed,
                S::FailbackInProgress,
                S::FailbackComplete,
            ]),
        )
    },
    Rule {
        scope: Scope::Vm(RelSel::NoRel),
        power: Power::On,
        effects: &[Effect::PowerOff],
        source: Source::Inferred("RequestStateChange(3) turns a VM off; synchronous here"),
        ..vm("power-off", O::PowerOff, &[], From::Any)
    },
    // ---- Jobs -------------------------------------------------------------------------------
    Rule {
        scope: Scope::Job,
        guards: &[Guard::JobRunning],
        effects: &[Effect::CancelJob],
        refusal: 4097,
        source: Source::Doc(
            "requeststatechange-msvm-concretejob: 4 Terminate 'stops the job cleanly' (JobState 8 Terminated, msvm-concretejob); PS cancels a running replication job with 4 (DECOMP 44427443833)",
        ),
        ..vm(
            "cancel-job",
            O::JobStateChange(J::Terminate),
            &[],
            From::Any,
        )
    },
    Rule {
        scope: Scope::Job,
        guards: &[Guard::JobRunning],
        effects: &[Effect::CancelJob],
        refusal: 4097,
        source: Source::Doc(
            "requeststatechange-msvm-concretejob: 5 Kill 'terminates the job immediately' (JobState 9 Killed); os-win's jobutils kills with 5",
        ),
        ..vm("kill-job", O::JobStateChange(J::Kill), &[], From::Any)
    },
    Rule {
        scope: Scope::Job,
        guards: &[Guard::JobNotSuspended],
        effects: &[Effect::SuspendJob],
        refusal: 4097,
        source: Source::Doc(
            "requeststatechange-msvm-concretejob: 3 Suspend 'stops the job temporarily ... restart the job with Start'; JobState 5 Suspended 'can be restarted in a seamless manner' (msvm-concretejob)",
        ),
        ..vm("suspend-job", O::JobStateChange(J::Suspend), &[], From::Any)
    },
    Rule {
        scope: Scope::Job,
        guards: &[Guard::JobSuspended],
        effects: &[Effect::ResumeJob],
        refusal: 4097,
        source: Source::Doc(
            "requeststatechange-msvm-concretejob: 2 Start 'changes the state to Running' (of a suspended job; on a job not suspended it is 4097 Invalid State Transition, INFERRED)",
        ),
        ..vm("start-job", O::JobStateChange(J::Start), &[], From::Any)
    },
];

pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// Every operation kind the table knows, in table order, without repeats.
pub fn operations() -> Vec<OpKind> {
    let mut out: Vec<OpKind> = Vec::new();
    for r in RULES {
        if !out.contains(&r.op) {
            out.push(r.op);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_row_names_a_real_source() {
        let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "duplicate rule id");
        for r in RULES {
            assert!(
                !r.source.text().starts_with("(set"),
                "rule {} has no source",
                r.id
            );
        }
    }

    #[test]
    fn asynchronous_rows_all_have_a_job_type_and_synchronous_rows_no_via() {
        for r in RULES {
            if r.job.is_none() {
                assert!(r.via.is_none(), "{}: a via state needs a job", r.id);
            }
        }
    }
}
