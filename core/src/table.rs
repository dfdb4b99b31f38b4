//! THE transition table. One declarative list of rules feeds the engine, the diagram export,
//! the coverage report and the conformance oracle; no rule is restated anywhere else.
//!
//! A rule reads: for operation `op` on a VM whose mode is in `modes`, whose selected relationship
//! is in `from`, whose power state fits `power`, and whose `guards` hold, the call is accepted;
//! while its job (`job`) runs the relationship shows `via`, and when the job completes it ends at
//! `to` with `effects` applied. A call that matches the operation and mode but not the rest is
//! refused with `refusal` (or the failing guard's own code). A call with no rule for its operation
//! and mode is refused with 32775 as well (INFERRED, docs/facts.md#life-cycle).
//!
//! Every row names its `source`: DOC (the method page states when the call applies and what it
//! leads to), PS (a client-side check of the PowerShell module, DECOMP ids, docs/facts.md#sources),
//! or INFERRED with the reason. Words taken from a page are cited as `<page>.md «words»` and
//! `core/tests/provenance.rs` finds each of them on its page (`fixtures/pages/excerpts.txt`);
//! whatever the row adds beyond those words follows `INFERRED:`. docs/provenance.md lists every
//! Inferred part with the real-host run that would settle it.

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
    /// removereplicationrelationshipex-msvm-replicationservice.md «primary replication can't be
    /// removed if extended replication is enabled»; extended replication also blocks reverse
    /// (BOOK p.552).
    NoExtendedOnReplica,
    /// changereplicationmodetoprimary-msvm-replicationservice.md «Changes the extended
    /// replication relationship to the primary relationship».
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
    /// server (msvm-replicationservicesettingdata.md «Specifies whether the Hyper-V host is
    /// enabled as a recovery server»). INFERRED 32777: nothing there listens.
    RecoveryServerEnabled,
    /// The recovery host listens on the port the call names for its authentication type (DOC
    /// HttpPort for a nonsecure, i.e. Kerberos, connection; HttpsPort for a secure one).
    /// INFERRED 32777: nothing listens on that port.
    RecoveryServerPort,
    /// The recovery host allows the call's authentication type (DOC AllowedAuthenticationType
    /// 1 Kerberos, 2 certificate, 3 both). INFERRED 32769 Access Denied.
    RecoveryServerAuthentication,
    /// Only a running job can be cancelled. INFERRED: the page lists 4097 Invalid State
    /// Transition among its codes but does not say when it is returned.
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

/// A precondition checked before any row of [`RULES`] is looked at. They are data, like the
/// rows: [`PRECONDITIONS`] lists them in the order the engine checks them, each with the code a
/// call that fails it is answered, the operations it does not apply to, and its source. The
/// diagram draws them, coverage counts the calls each refused, and the conformance oracle, which
/// runs the engine, applies them by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The call's enumerated argument (RequestedState, InitialReplicationType, ...) is a value
    /// its method page documents.
    ValueDocumented,
    /// The host's replication service runs.
    ServiceRunning,
    /// The VM the call names exists on the host.
    VmKnown,
    /// An embedded Msvm_ReplicationSettingData is within the page's ranges.
    SettingsValid,
    /// An embedded Msvm_ReplicationServiceSettingData is within the page's ranges.
    ServiceSettingsValid,
    /// CreateReplicationRelationship names a RecoveryConnectionPoint.
    RecoveryConnectionPointGiven,
    /// The recovery point the call names is one the VM has.
    RecoveryPointKnown,
    /// The job the call names exists on the host.
    JobKnown,
    /// The VM runs no job (a VM never has two jobs changing it).
    VmIdle,
}

/// The ReturnValue a failed precondition answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    Code(u32),
    /// The code the method page gives for a value it does not take (1 Not Supported, 5 Invalid
    /// parameter, or 32773 Invalid parameter: see `Operation::kind`).
    PageCodeForValue,
    /// The behaviour profile's `busy_code` (32774 System is in use by default).
    ProfileBusyCode,
}

impl Answered {
    pub fn label(self) -> String {
        match self {
            Answered::Code(c) => c.to_string(),
            Answered::PageCodeForValue => "the page's code".into(),
            Answered::ProfileBusyCode => "busy_code (32774 by default)".into(),
        }
    }
}

/// Operations a precondition does not apply to. A kind that carries a value (a requested
/// state) is written with the value `Any…`: the exemption covers every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exempt {
    Op(OpKind),
    /// `Msvm_ReplicationService.RequestStateChange`, whatever the requested state.
    AnyServiceStateChange,
    /// `Msvm_ConcreteJob.RequestStateChange`, whatever the requested state.
    AnyJobStateChange,
}

impl Exempt {
    pub fn covers(self, k: OpKind) -> bool {
        match self {
            Exempt::Op(o) => o == k,
            Exempt::AnyServiceStateChange => matches!(k, OpKind::ServiceStateChange(_)),
            Exempt::AnyJobStateChange => matches!(k, OpKind::JobStateChange(_)),
        }
    }
    pub fn label(self) -> String {
        match self {
            Exempt::Op(o) => o.label(),
            Exempt::AnyServiceStateChange => "Service.RequestStateChange(*)".into(),
            Exempt::AnyJobStateChange => "Job.RequestStateChange(*)".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Precondition {
    pub id: &'static str,
    pub check: Check,
    pub answered: Answered,
    /// Operations the check is skipped for.
    pub exempt: &'static [Exempt],
    pub source: Source,
}

impl Precondition {
    pub fn applies_to(&self, k: OpKind) -> bool {
        !self.exempt.iter().any(|e| e.covers(k))
    }
}

/// The preconditions, in the order the engine checks them; the first that fails answers the
/// call. (A fault plan's host-down or return-code fault answers before any of them.)
pub static PRECONDITIONS: &[Precondition] = &[
    Precondition {
        id: "value-documented",
        check: Check::ValueDocumented,
        answered: Answered::PageCodeForValue,
        exempt: &[],
        source: Source::Inferred(
            "a value outside the method page's list is no operation the table can hold; the code is the one the page lists for it (see Operation::kind)",
        ),
    },
    Precondition {
        id: "service-running",
        check: Check::ServiceRunning,
        answered: Answered::Code(32777),
        exempt: &[
            Exempt::Op(OpKind::StartService),
            Exempt::AnyServiceStateChange,
            Exempt::Op(OpKind::PowerOn),
            Exempt::Op(OpKind::PowerOff),
        ],
        source: Source::Inferred(
            "a stopped replication service (StopService or RequestStateChange 3) answers 32777 System is not available; what starts it again, and the VM's own power, still answer",
        ),
    },
    Precondition {
        id: "vm-known",
        check: Check::VmKnown,
        answered: Answered::Code(32773),
        exempt: &[],
        source: Source::Inferred(
            "a reference to a VM the host does not have is an invalid parameter (32773)",
        ),
    },
    Precondition {
        id: "settings-valid",
        check: Check::SettingsValid,
        answered: Answered::Code(32773),
        exempt: &[],
        source: Source::Doc(
            "msvm-replicationsettingdata.md «Valid values are from 0 to 24» (RecoveryHistory), and the page's lists for ReplicationInterval (30, 300, 900), AuthenticationType (1, 2) and ApplicationConsistentSnapshotInterval (1 to 12 hours); PS: certificate authentication needs a thumbprint (DECOMP 44358932247); INFERRED: 32773 Invalid parameter, and 0 turns application-consistent points off",
        ),
    },
    Precondition {
        id: "service-settings-valid",
        check: Check::ServiceSettingsValid,
        answered: Answered::Code(32773),
        exempt: &[],
        source: Source::Inferred(
            "msvm-replicationservicesettingdata gives AllowedAuthenticationType 0..3, MonitoringInterval 3600..604800 seconds and CertificateThumbPrint MaxLen 128; ports are uint16 and not 0; the code 32773 Invalid parameter is our choice",
        ),
    },
    Precondition {
        id: "recovery-connection-point-given",
        check: Check::RecoveryConnectionPointGiven,
        answered: Answered::Code(32773),
        exempt: &[],
        source: Source::Inferred(
            "CreateReplicationRelationship without a RecoveryConnectionPoint names no recovery host (32773)",
        ),
    },
    Precondition {
        id: "recovery-point-known",
        check: Check::RecoveryPointKnown,
        answered: Answered::Code(32773),
        exempt: &[],
        source: Source::Inferred(
            "an unknown recovery point identifier is an invalid parameter (docs/facts.md#recovery-points)",
        ),
    },
    Precondition {
        id: "job-known",
        check: Check::JobKnown,
        answered: Answered::Code(32773),
        exempt: &[],
        source: Source::Inferred("a job the host does not have is an invalid parameter (32773)"),
    },
    Precondition {
        id: "vm-idle",
        check: Check::VmIdle,
        answered: Answered::ProfileBusyCode,
        exempt: &[
            Exempt::Op(OpKind::GetReplicationStatistics),
            Exempt::AnyJobStateChange,
        ],
        source: Source::Inferred(
            "a VM never has two running jobs: 32774 System is in use (docs/facts.md#return-codes), or the profile's busy_code; reading statistics and changing the job itself still answer",
        ),
    },
];

/// What a refusal by the rows becomes under a behaviour-profile choice, checked in order after
/// no row accepted a call.
#[derive(Debug, Clone, Copy)]
pub struct RefusalPolicy {
    pub id: &'static str,
    /// The refusal code it changes.
    pub code: u32,
    pub when: PolicySwitch,
    pub source: Source,
}

/// The profile choice that turns a [`RefusalPolicy`] on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySwitch {
    /// Profile choice (a) `wrong_state = failing-job`: an operation that has an asynchronous
    /// row answers 4096, and its job fails at 0 % with the refusal code as ErrorCode.
    WrongStateAsFailingJob,
}

pub static REFUSAL_POLICIES: &[RefusalPolicy] = &[RefusalPolicy {
    id: "wrong-state-as-failing-job",
    code: WRONG_STATE,
    when: PolicySwitch::WrongStateAsFailingJob,
    source: Source::Inferred(
        "profile choice (a): no page says whether a call in the wrong state is refused at once or through a job that fails (docs/facts.md#open-questions)",
    ),
}];

/// Every row, precondition and policy with its source, for provenance checks.
pub fn sources() -> Vec<(&'static str, Source)> {
    let rules = RULES.iter().map(|r| (r.id, r.source));
    let pre = PRECONDITIONS.iter().map(|p| (p.id, p.source));
    let pol = REFUSAL_POLICIES.iter().map(|p| (p.id, p.source));
    rules.chain(pre).chain(pol).collect()
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
    /// Set the peer VM's relationship to `to`, but only if it is in one of `from`: a peer that
    /// failed over or was reversed meanwhile keeps its state.
    PeerState {
        from: &'static [S],
        to: S,
    },
    /// Deltas cannot reach the replica: the relationship's health becomes Warning.
    HealthWarning,
    /// A delta: LastReplicationTime on both sides, a recovery point on the replica.
    Delta,
    /// Planned failover's final sync (BLOG-PFO): a Planned recovery point on the replica.
    FinalSync,
    /// commitfailover-msvm-replicationservice.md «flattens the recovery points on the recovery
    /// virtual machine by applying the recovery snapshot».
    KeepFailoverPoint,
    /// Swap the roles of the two sides, states per profile (runs with `To::ReverseOutcome`).
    Reverse,
    /// Create the test VM (mode 3) when the call is accepted, so ResultingSystem can name it.
    CreateTestReplica,
    DestroyTestReplica,
    /// The extended relationship becomes the primary one (changereplicationmodetoprimary page).
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
    /// A Microsoft documentation page (file name under desktop-src/HyperV_v2) states the rule.
    /// The text starts with a citation, `<file>.md «the page's words»`; more citations may
    /// follow, and anything the page does not say comes after `INFERRED:`.
    Doc(&'static str),
    /// A client-side check of the PowerShell module (DECOMP id).
    PowerShell(&'static str),
    /// No source states it; the text says why we chose it, citing (`<file>.md «words»`) what the
    /// pages do say.
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

/// A peer still waiting for its initial copy (INFERRED: only such a side is moved by the
/// primary's initial replication; one that failed over or was reversed meanwhile is not).
const PEER_WAITING: &[S] = &[
    S::ReadyForReplication,
    S::WaitingToCompleteInitialReplication,
];

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
        source: Source::Inferred(
            "createreplicationrelationship-msvm-replicationservice.md «Creates a new replication relationship for a virtual machine»; INFERRED: mode 1 Primary and state 1, because PowerShell shows 1 as ReadyForInitialReplication (DECOMP 44433016989), and the replica VM made on the recovery host (Enable-VMReplication, DECOMP 44426856526)",
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
        source: Source::Inferred(
            "createreplicationrelationship-msvm-replicationservice.md «When a client calls this method for a replica virtual machine, it extends the replication relationship to the specified provider»; msvm-replicationrelationship.md «0 indicates primary and 1 indicates»; INFERRED: the extended relationship starts in state 1, as a primary one does",
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
            "Enable-VMReplication -AsReplica calls RRSC(2) on a mode-None VM (DECOMP 44426856526); msvm-computersystem-requestreplicationstatechange.md «While the state change is in progress, the ReplicationState property is changed to the value of the RequestedState parameter»; INFERRED: the VM must be off, a replica never runs until failed over",
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
        effects: &[
            Effect::PeerState {
                from: PEER_WAITING,
                to: S::Replicating,
            },
            Effect::Delta,
        ],
        source: Source::Inferred(
            "startreplication-msvm-replicationservice.md «Starts the replication of a virtual machine»; startreplication-msvm-replicationservice.md «Network Transfer (1)»; INFERRED: 1 → 2 while the job runs → 3 on both sides when it ends (no page gives this path), JobType 94 by its name",
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
        effects: &[
            Effect::PeerState {
                from: PEER_WAITING,
                to: S::Replicating,
            },
            Effect::Delta,
        ],
        source: Source::PowerShell(
            "seeded initial replication runs as JobType 117 (DECOMP 44358932247, Set-VMReplication); startreplication-msvm-replicationservice.md «Seeded Network Transfer (3)»; INFERRED: the same 1 → 2 → 3 path as a network transfer",
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
        source: Source::Inferred(
            "startreplication-msvm-replicationservice.md «the fully qualified path of the directory to which the initial replication is to be exported»; INFERRED: the primary stays in 2 until ImportInitialReplica on the replica, JobType 118 by its name",
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
        effects: &[Effect::PeerState {
            from: PEER_WAITING,
            to: S::Replicating,
        }],
        source: Source::Inferred(
            "startreplication-msvm-replicationservice.md «When a client calls this method for a replica virtual machine, it starts the replication with extended replica»; INFERRED: 1 → 2 → 3 as on a primary",
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
        effects: &[Effect::PeerState {
            from: PEER_WAITING,
            to: S::Replicating,
        }],
        source: Source::Inferred(
            "importinitialreplica-msvm-replicationservice.md «Imports the initial replication for a virtual machine»; INFERRED: accepted in 2 only, and → 3 on both sides",
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
            "Suspend-VMReplication: RRSC(7) from {2,3,10} (DECOMP 44391684629); other states get 32775, msvm-requestreplicationstatechangeex-computersystem.md «not supported in the current replication mode or state»",
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
            "resynchronize-msvm-replicationservice.md «When a client calls this method for a replica virtual machine, it resynchronizes with extended replica»; INFERRED: the extended relationship's from-states and 10 → 3 mirror the primary's row",
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
            "msvm-requestreplicationstatechangeex-computersystem.md «Cancel Resynchronize (9)»; INFERRED: accepted from 10 only, and it ends in 9",
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
            "msvm-replicationrelationship.md «The date and time at which the last replication is received on recovery for the replication relationship»; INFERRED: a delta every ReplicationInterval updates it and adds a recovery point",
        ),
        ..vm(
            "delta-replicated",
            O::ReplicateDelta,
            &[M::Primary],
            States(&[S::Replicating]),
        )
    },
    Rule {
        effects: &[Effect::HealthWarning],
        source: Source::Inferred(
            "msvm-replicationrelationship.md «The date and time at which the last replication is received on recovery for the replication relationship»; INFERRED: when the row above cannot run because the replica is unreachable (down or partitioned), no delta is sent and the health degrades to Warning",
        ),
        ..vm(
            "delta-undelivered",
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
            "Start-VMFailover on a replica: VM Off, state in {3,10,7,15}, LastReplicationTime set (DECOMP 44855487076); initiatefailover-msvm-replicationservice.md «Initiates a failover for a virtual machine to an application or standard replication point image»; INFERRED: 12 while the job runs, then 5 (PS shows 5 as FailedOverWaitingCompletion, DECOMP 44433016989)",
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
        source: Source::Inferred(
            "revertfailover-msvm-replicationservice.md «Reverts the current failover for a virtual machine by discarding the current failover disk»; revertfailover-msvm-replicationservice.md «After this operation, InitiateFailover can be called again»; PS allows it from 5 and 12 (DECOMP 44913315024); INFERRED: the state saved at InitiateFailover comes back, and the VM is turned off (Stop-VMFailover turns it off first, DECOMP 44913315024)",
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
            "Complete-VMFailover: mode Replica/ExtendedReplica, state 5 exactly (DECOMP 44873510322); commitfailover-msvm-replicationservice.md «After this is done, the failover operation cannot be canceled»; INFERRED: → 6 (PS shows 6 as FailedOver, DECOMP 44433016989)",
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
            "reversereplicationrelationship-msvm-replicationservice.md «Replicates a failed-over virtual machine back to the primary server»; PS refuses mode Primary (DECOMP 44358932247); INFERRED: modes and states after it are profile choice (c)",
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
        source: Source::Inferred(
            "changereplicationmodetoprimary-msvm-replicationservice.md «Changes the extended replication relationship to the primary relationship for a replica virtual machine»; changereplicationmodetoprimary-msvm-replicationservice.md «The replica virtual machine must be in a failover committed state»; INFERRED: the VM becomes Primary and its relationship Replicating (3) at once; no page names the state after the call",
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
            "Start-VMFailover -AsTest: replica, not 10 or 15 (DECOMP 44855487076); one test failover at a time (LEARN-FO); testreplicasystem-msvm-replicationservice.md «Creates a new replica of a virtual machine with the specified snapshot for testing purposes»; INFERRED: the new VM has mode 3 and the replica's state does not change",
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
        source: Source::Inferred(
            "testreplicasystem-msvm-replicationservice.md «When this system is no longer needed, destroy it by calling the DestroySystem method»; INFERRED: JobType 103 by its name (a DestroySystem job may be 3 Destroy Virtual Machine instead), and a running test VM is accepted although destroysystem-msvm-virtualsystemmanagementservice.md «The virtual machine must be in the powered off or saved state prior to calling this method»",
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
            "initiatefailback-msvm-replicationservice.md «works on a recovery virtual machine and takes the virtual machine to WaitingForFailback state»; initiatefailback-msvm-replicationservice.md «the replication state moves to FailbackCompleted state»; INFERRED: WaitingForFailback read as 13 and FailbackCompleted as 14 (no enumeration has those names), JobType 124 by its name, 'recovery VM' read as mode Replica in 5 or 6; no page gives a precondition",
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
        source: Source::Doc(
            "modifyreplicationsettings-msvm-replicationservice.md «Modifies the replication settings for a virtual machine»; modifyreplicationsettings-msvm-replicationservice.md «Input FRSD is validated for valid settings for each property for the default provider»",
        ),
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
            "modifyreplicationsettings-msvm-replicationservice.md «When a client calls this method for a replica virtual machine, it modifies the replication settings of the replication relationship with the extended replica»; PS refuses the simple one (VMReplication_CannotModifySettingsOnReplica, DECOMP 44358932247)",
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
            "removereplicationrelationshipex-msvm-replicationservice.md «Removes the specified virtual machine replication relationship»; INFERRED: mode 0 / state 0 afterwards",
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
        source: Source::Doc(
            "getreplicationstatisticsex-msvm-replicationservice.md «Retrieves the replication statistics that are associated with the specified replication relationship of the virtual machine»",
        ),
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
        source: Source::Doc(
            "resetreplicationstatisticsex-msvm-replicationservice.md «Resets replication statistics that are associated with the specified replication relationship of the specified virtual machine»",
        ),
        ..vm(
            "reset-statistics",
            O::ResetReplicationStatistics,
            &[M::Primary, M::Replica, M::ExtendedReplica],
            AnyRelationship,
        )
    },
    Rule {
        source: Source::Doc(
            "setfailovernetworkadaptersettings-msvm-replicationservice.md «These configuration parameters are applied after a failover operation»",
        ),
        ..vm(
            "set-failover-network",
            O::SetFailoverNetworkAdapterSettings,
            &[M::Primary, M::Replica, M::ExtendedReplica],
            AnyRelationship,
        )
    },
    Rule {
        source: Source::Inferred(
            "setauthorizationentry-msvm-replicationservice.md «Sets the replication authorization entry for a virtual machine»; INFERRED: replica modes only, since entries authorize connections to a recovery server and Enable-VMReplication -AsReplica calls it after RRSC(2) (DECOMP 44426856526)",
        ),
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
        source: Source::Doc(
            "addauthorizationentry-msvm-replicationservice.md «Adds an authorization entry to a recovery server»",
        ),
        ..host("add-authorization-entry", O::AddAuthorizationEntry)
    },
    Rule {
        guards: &[Guard::AuthorizationExists],
        effects: &[Effect::ModifyAuthorization],
        source: Source::Doc(
            "modifyauthorizationentry-msvm-replicationservice.md «Modifies an authorization entry for a recovery server»",
        ),
        ..host("modify-authorization-entry", O::ModifyAuthorizationEntry)
    },
    Rule {
        guards: &[Guard::AuthorizationExists],
        effects: &[Effect::RemoveAuthorization],
        source: Source::Doc(
            "removeauthorizationentry-msvm-replicationservice.md «The primary server for which the authorization entry will be removed from the server»; removeauthorizationentry-msvm-replicationservice.md «Removing an authorization entry will stop replication for any virtual machines that are authorized with the entry»; INFERRED: their relationships on both sides go to Critical, health Critical (the page names no state)",
        ),
        ..host("remove-authorization-entry", O::RemoveAuthorizationEntry)
    },
    Rule {
        job: Some(JobType::ModifyReplicationServerSettings),
        effects: &[Effect::ModifyServiceSettings],
        source: Source::Doc(
            "modifyservicesettings-msvm-replicationservice.md «Modifies the settings for the Hyper-V Replica service»; msvm-replicationservicesettingdata.md «The client must call the Msvm_ReplicationService.ModifyServiceSettings method to modify any of these properties»; INFERRED: JobType 90, by its name on msvm-concretejob.md «Modify Replication Server Settings (90)»",
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
            "testreplicationconnection-msvm-replicationservice.md «Verifies if the replication can be enabled from the current host system to the specified recovery system»; INFERRED: the recovery server's own checks apply, as for Create; JobType 115, by its name on msvm-concretejob.md «Test Replication Connection (115)»",
        ),
        ..host("test-replication-connection", O::TestReplicationConnection)
    },
    Rule {
        source: Source::Doc(
            "getsystemcertificates-msvm-replicationservice.md «Retrieves the system certificates on a host system»; INFERRED: answered at once, since the signature has no Job parameter (the page's list still has 4096)",
        ),
        ..host("get-system-certificates", O::GetSystemCertificates)
    },
    Rule {
        effects: &[Effect::StartService],
        source: Source::Doc(
            "msvm-replicationservice-startservice.md «Starts the service»; msvm-replicationservice-startservice.md «Completed with No Error (0)»",
        ),
        ..host("start-service", O::StartService)
    },
    Rule {
        effects: &[Effect::StopService],
        source: Source::Doc(
            "msvm-replicationservice-stopservice.md «Stops the service»; msvm-replicationservice-stopservice.md «Completed with No Error (0)»",
        ),
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
            "a replica VM can only be started once failed over (Start-VM after Start-VMFailover, BOOK p.551-552)",
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
            "requeststatechange-msvm-concretejob.md «Stops the job cleanly, saving data» (4 Terminate); msvm-concretejob.md «The job has been stopped by a \"Terminate\" state change request»; PS cancels a running replication job with 4 (DECOMP 44427443833); INFERRED: a job that is not running gets requeststatechange-msvm-concretejob.md «Invalid State Transition (4097)», the page does not say when",
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
            "requeststatechange-msvm-concretejob.md «Terminates the job immediately with no requirement to save data» (5 Kill); msvm-concretejob.md «The job has been stopped by a \"Kill\" state change request»; os-win's jobutils kills with 5; INFERRED: a job that is not running gets 4097, as for Terminate",
        ),
        ..vm("kill-job", O::JobStateChange(J::Kill), &[], From::Any)
    },
    Rule {
        scope: Scope::Job,
        guards: &[Guard::JobNotSuspended],
        effects: &[Effect::SuspendJob],
        refusal: 4097,
        source: Source::Doc(
            "requeststatechange-msvm-concretejob.md «Stops the job temporarily. The intention is to subsequently restart the job with \"Start\"» (3 Suspend); INFERRED: a job already suspended gets 4097",
        ),
        ..vm("suspend-job", O::JobStateChange(J::Suspend), &[], From::Any)
    },
    Rule {
        scope: Scope::Job,
        guards: &[Guard::JobSuspended],
        effects: &[Effect::ResumeJob],
        refusal: 4097,
        source: Source::Doc(
            "requeststatechange-msvm-concretejob.md «Changes the state to \"Running\"» (2 Start, of a suspended job); INFERRED: on a job not suspended it is 4097 Invalid State Transition",
        ),
        ..vm("start-job", O::JobStateChange(J::Start), &[], From::Any)
    },
];

/// A row of the table held by a running job. It is stored as the row's id, and a state file
/// naming a row the table does not have fails to load rather than leaving a job that cannot
/// finish.
#[derive(Clone, Copy)]
pub struct RuleRef(&'static Rule);

impl RuleRef {
    pub fn new(rule: &'static Rule) -> RuleRef {
        RuleRef(rule)
    }
    pub fn get(self) -> &'static Rule {
        self.0
    }
    pub fn id(self) -> &'static str {
        self.0.id
    }
}

impl PartialEq for RuleRef {
    fn eq(&self, other: &RuleRef) -> bool {
        self.0.id == other.0.id
    }
}

impl std::fmt::Debug for RuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RuleRef({})", self.0.id)
    }
}

impl serde::Serialize for RuleRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.id)
    }
}

impl<'de> serde::Deserialize<'de> for RuleRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RuleRef, D::Error> {
        let id = String::deserialize(d)?;
        rule(&id)
            .map(RuleRef)
            .ok_or_else(|| serde::de::Error::custom(format!("no table row {id}")))
    }
}

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
    fn preconditions_start_with_the_value_check_and_every_id_is_unique() {
        // The engine gives a call its `OpKind` from the first precondition's check, and
        // exemptions are written as kinds.
        assert_eq!(PRECONDITIONS[0].check, Check::ValueDocumented);
        assert!(PRECONDITIONS[0].exempt.is_empty());
        let mut ids: Vec<_> = sources().into_iter().map(|(id, _)| id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "a precondition shares an id with a row");
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
