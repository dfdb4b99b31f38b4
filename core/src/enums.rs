//! Every WMI enumeration the model uses, with its number and its documented name.
//!
//! Source for all values: DOC pages of `root\virtualization\v2` (msvm-replicationrelationship,
//! msvm-computersystem, msvm-concretejob, method pages), as summed up in
//! docs/facts.md#replication-api. A number that is not in an enum is an error value
//! ([`UnknownValue`]), never a panic: WMI numbers arrive from the wire.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A number that does not belong to the named enumeration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{value} is not a valid {enum_name}")]
pub struct UnknownValue {
    pub enum_name: &'static str,
    pub value: u32,
}

/// Declares a WMI enum: variant ↔ number ↔ documented name, plus the list of all variants.
/// One macro so that no enum can forget its reverse mapping.
macro_rules! wmi_enum {
    (
        $(#[$meta:meta])*
        $name:ident : $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $num:literal => $label:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The WMI number.
            pub const fn number(self) -> $repr {
                match self { $( $name::$variant => $num ),+ }
            }

            /// The documented (DOC) name of the value.
            pub const fn label(self) -> &'static str {
                match self { $( $name::$variant => $label ),+ }
            }

            /// The Rust variant name, used in tables, JSON and diagrams.
            pub const fn ident(self) -> &'static str {
                match self { $( $name::$variant => stringify!($variant) ),+ }
            }

            pub fn from_number(value: u32) -> Result<Self, UnknownValue> {
                match value {
                    $( $num => Ok($name::$variant), )+
                    _ => Err(UnknownValue { enum_name: stringify!($name), value }),
                }
            }

            /// Accepts the variant name (case-insensitive) or the number as text.
            pub fn parse(text: &str) -> Option<Self> {
                let t = text.trim();
                if let Ok(n) = t.parse::<u32>() {
                    return Self::from_number(n).ok();
                }
                Self::ALL.iter().copied().find(|v| v.ident().eq_ignore_ascii_case(t))
            }
        }

        impl TryFrom<u32> for $name {
            type Error = UnknownValue;
            fn try_from(value: u32) -> Result<Self, UnknownValue> { Self::from_number(value) }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{} ({})", self.number(), self.label())
            }
        }

        // JSON shows the variant name; the number is available through `number()`.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.ident())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw { N(u32), S(String) }
                match Raw::deserialize(d)? {
                    Raw::N(n) => Self::from_number(n).map_err(serde::de::Error::custom),
                    Raw::S(s) => Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!(
                        "unknown {} `{}`; expected one of: {}",
                        stringify!($name),
                        s,
                        Self::ALL.iter().map(|v| v.ident()).collect::<Vec<_>>().join(", ")
                    ))),
                }
            }
        }
    };
}

wmi_enum! {
    /// `Msvm_ReplicationRelationship.ReplicationState` (0–21) and
    /// `Msvm_ComputerSystem.ReplicationState` (0–14).
    ReplicationState: u16 {
        Disabled = 0 => "Disabled",
        ReadyForReplication = 1 => "Ready for replication",
        WaitingToCompleteInitialReplication = 2 => "Waiting to complete initial replication",
        Replicating = 3 => "Replicating",
        SyncedReplicationComplete = 4 => "Synced replication complete",
        Recovered = 5 => "Recovered",
        Committed = 6 => "Committed",
        Suspended = 7 => "Suspended",
        Critical = 8 => "Critical",
        WaitingToStartResynchronization = 9 => "Waiting to start resynchronization",
        Resynchronizing = 10 => "Resynchronizing",
        ResynchronizationSuspended = 11 => "Resynchronization suspended",
        FailoverInProgress = 12 => "Failover in progress",
        FailbackInProgress = 13 => "Failback in progress",
        FailbackComplete = 14 => "Failback complete",
        DiskUpdateInProgress = 15 => "Disk update in progress",
        DiskUpdateCritical = 16 => "Disk update critical",
        Unknown = 17 => "Unknown",
        RepurposeReplicationInProgress = 18 => "Repurpose replication in progress",
        PreparedForSyncReplication = 19 => "Prepared for sync replication",
        PreparedForGroupReverseReplication = 20 => "Prepared for group reverse replication",
        FiredrillInProgress = 21 => "Firedrill in progress",
    }
}

impl ReplicationState {
    /// The words users know from the InitiateFailback page and DR runbooks, shown beside the WMI
    /// name so nobody has to translate. 13 ↔ *WaitingForFailback* and 14 ↔ *FailbackCompleted*
    /// is INFERRED (docs/facts.md#replication-states); 12 is the MS client's `RecoveryInProgress`.
    pub const fn alias(self) -> Option<&'static str> {
        match self {
            ReplicationState::FailoverInProgress => Some("Recovering"),
            ReplicationState::FailbackInProgress => Some("WaitingForFailback"),
            ReplicationState::FailbackComplete => Some("FailbackCompleted"),
            ReplicationState::SyncedReplicationComplete => Some("PreparedForFailover"),
            _ => None,
        }
    }
}

wmi_enum! {
    /// `ReplicationHealth` (DOC msvm-replicationrelationship).
    ReplicationHealth: u16 {
        NotApplicable = 0 => "Not applicable",
        Ok = 1 => "Ok",
        Warning = 2 => "Warning",
        Critical = 3 => "Critical",
    }
}

wmi_enum! {
    /// `Msvm_ComputerSystem.ReplicationMode` (DOC msvm-computersystem).
    ReplicationMode: u16 {
        None = 0 => "None",
        Primary = 1 => "Primary",
        Replica = 2 => "Replica",
        TestReplica = 3 => "Test Replica",
        ExtendedReplica = 4 => "Extended Replica",
    }
}

wmi_enum! {
    /// `FailedOverReplicationType` / `LastReplicationType`.
    ReplicationType: u16 {
        None = 0 => "None",
        Regular = 1 => "Regular",
        ApplicationConsistent = 2 => "Application consistent",
        Planned = 3 => "Planned",
    }
}

wmi_enum! {
    /// `StartReplication`'s `InitialReplicationType` (DOC startreplication).
    InitialReplicationType: u16 {
        Network = 1 => "Network Transfer",
        Export = 2 => "Export",
        SeededNetwork = 3 => "Seeded Network Transfer",
    }
}

wmi_enum! {
    /// `Msvm_ReplicationSettingData.AuthenticationType`.
    AuthenticationType: u16 {
        Kerberos = 1 => "Kerberos",
        Certificate = 2 => "Certificate",
    }
}

wmi_enum! {
    /// The `EnabledState` values a simulated VM takes (DOC msvm-computersystem; LIBVIRT list).
    EnabledState: u16 {
        Unknown = 0 => "Unknown",
        Enabled = 2 => "Enabled",
        Disabled = 3 => "Disabled",
        Paused = 32768 => "Paused",
        Suspended = 32769 => "Suspended",
        Starting = 32770 => "Starting",
        Stopping = 32774 => "Stopping",
    }
}

wmi_enum! {
    /// `Msvm_ReplicationService.RequestStateChange`'s `RequestedState` (DOC
    /// msvm-replicationservice-requeststatechange).
    RequestedServiceState: u16 {
        Enabled = 2 => "Enabled",
        Disabled = 3 => "Disabled",
        ShutDown = 4 => "Shut Down",
        Offline = 6 => "Offline",
        Test = 7 => "Test",
        Defer = 8 => "Defer",
        Quiesce = 9 => "Quiesce",
        Reboot = 10 => "Reboot",
        Reset = 11 => "Reset",
    }
}

wmi_enum! {
    /// `Msvm_ConcreteJob.JobState` (DOC msvm-concretejob).
    JobState: u16 {
        New = 2 => "New",
        Starting = 3 => "Starting",
        Running = 4 => "Running",
        Suspended = 5 => "Suspended",
        ShuttingDown = 6 => "Shutting Down",
        Completed = 7 => "Completed",
        Terminated = 8 => "Terminated",
        Killed = 9 => "Killed",
        Exception = 10 => "Exception",
        Service = 11 => "Service",
        // Vendor range (DOC msvm-concretejob: 32768..65535 vendor reserved). Hyper-V ends a
        // job that succeeded with warnings here: os-win's jobutils counts 32768
        // (JOB_STATE_COMPLETED_WITH_WARNINGS) as completed and successful.
        CompletedWithWarnings = 32768 => "Completed with Warnings",
    }
}

impl JobState {
    /// Terminal states as libvirt treats them: 7 success; 8, 9, 10, 11 failure
    /// (docs/facts.md#job-states).
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Terminated
                | JobState::Killed
                | JobState::Exception
                | JobState::Service
                | JobState::CompletedWithWarnings
        )
    }

    /// The job did what it was asked: 7, or 32768 with warnings (os-win's successful states).
    pub const fn succeeded(self) -> bool {
        matches!(self, JobState::Completed | JobState::CompletedWithWarnings)
    }
}

wmi_enum! {
    /// `Msvm_ConcreteJob.JobType` values 90–125 (DOC msvm-concretejob; MSWMI
    /// ConcreteJob_JobType.go).
    JobType: u16 {
        ModifyReplicationServerSettings = 90 => "Modify Replication Server Settings",
        CreateReplicationRelationship = 91 => "Create Replication Relationship",
        ModifyReplicationRelationshipSettings = 92 => "Modify Replication Relationship Settings",
        RemoveReplicationRelationship = 93 => "Remove Replication Relationship",
        StartInbandInitialReplication = 94 => "Start Inband Initial Replication",
        ImportReplication = 95 => "Import Replication",
        ReplicateStateChange = 96 => "Replicate State Change",
        InitiateFailover = 97 => "Initiate Failover",
        RevertFailover = 98 => "Revert Failover",
        CommitFailover = 99 => "Commit Failover",
        InitiateSyncedReplication = 100 => "Initiate Synced Replication",
        CancelSyncedReplication = 101 => "Cancel Synced Replication",
        InitiateTestReplica = 102 => "Initiate Test Replica",
        RemoveTestReplica = 103 => "Remove Test Replica",
        ReverseReplication = 104 => "Reverse Replication",
        ReplicationSendingDelta = 105 => "Replication Sending Delta",
        ReplicationReceivingDelta = 106 => "Replication Receiving Delta",
        Resynchronizing = 107 => "Resynchronizing",
        ApplyChangeLog = 108 => "Apply change log",
        StopInitialReplication = 109 => "Stop Initial Replication",
        StopResynchronizing = 110 => "Stop Resynchronizing",
        GetReplicaStatistics = 111 => "Get Replica statistics",
        PrepareForConsistencyChecker = 112 => "Prepare for Consistency Checker",
        ConsistencyChecker = 113 => "Consistency Checker",
        StopConsistencyChecker = 114 => "Stop Consistency Checker",
        TestReplicationConnection = 115 => "Test Replication Connection",
        SendingInitialReplica = 116 => "Sending Initial Replica",
        StartResyncInitialReplication = 117 => "Start Resync Initial Replication",
        StartExportInitialReplication = 118 => "Start Export Initial Replication",
        ResetReplicaStatistics = 119 => "Reset Replica Statistics",
        ApplyRegisteredDeltas = 120 => "Apply Registered Deltas",
        ResynchronizingExtendedReplication = 121 => "Resynchronizing Extended Replication",
        ReadingTestReplicaConfiguration = 122 => "Reading Test Replica Configuration",
        ChangeReplicationModeToPrimary = 123 => "Change the replication mode to primary",
        InitiateFailback = 124 => "Initiate Failback",
        UpdateDiskSet = 125 => "Update Disk Set",
    }
}

wmi_enum! {
    /// Return codes shared by every `Msvm_ReplicationService` method (DOC,
    /// docs/facts.md#return-codes).
    ReturnCode: u32 {
        Completed = 0 => "Completed with No Error",
        JobStarted = 4096 => "Method Parameters Checked - Job Started",
        Failed = 32768 => "Failed",
        AccessDenied = 32769 => "Access Denied",
        NotSupported = 32770 => "Not Supported",
        StatusUnknown = 32771 => "Status is unknown",
        Timeout = 32772 => "Timeout",
        InvalidParameter = 32773 => "Invalid parameter",
        SystemInUse = 32774 => "System is in use",
        InvalidState = 32775 => "Invalid state for this operation",
        IncorrectDataType = 32776 => "Incorrect data type",
        SystemNotAvailable = 32777 => "System is not available",
        OutOfMemory = 32778 => "Out of memory",
        FileNotFound = 32779 => "File not found",
    }
}

impl ReturnCode {
    pub const fn is_error(self) -> bool {
        !matches!(self, ReturnCode::Completed | ReturnCode::JobStarted)
    }
}

wmi_enum! {
    /// `RequestReplicationStateChange[Ex]`'s documented `RequestedState` values (DOC).
    RequestedReplicationState: u16 {
        ReadyToStartInitialReplication = 1 => "Ready to start initial replication",
        WaitingToCompleteInitialReplication = 2 => "Waiting to complete initial replication",
        Replicating = 3 => "Replicating",
        SyncedReplicationComplete = 4 => "Synced replication complete",
        Suspend = 7 => "Suspend",
        CancelResynchronize = 9 => "Cancel Resynchronize",
    }
}

wmi_enum! {
    /// `Msvm_ComputerSystem.RequestStateChange` values the simulator accepts
    /// (CIM_EnabledLogicalElement).
    RequestedPowerState: u16 {
        Enabled = 2 => "Enabled",
        Disabled = 3 => "Disabled",
        ShutDown = 4 => "Shut Down",
        Offline = 6 => "Offline",
        Reboot = 10 => "Reboot",
        Reset = 11 => "Reset",
        Paused = 9 => "Quiesce",
        Saved = 32769 => "Saved",
    }
}

wmi_enum! {
    /// `Msvm_ConcreteJob.RequestStateChange`'s `RequestedState` (DOC
    /// requeststatechange-msvm-concretejob).
    RequestedJobState: u16 {
        Start = 2 => "Start",
        Suspend = 3 => "Suspend",
        Terminate = 4 => "Terminate",
        Kill = 5 => "Kill",
        Service = 6 => "Service",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_its_number_and_name() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            num: impl Fn(T) -> u32,
            from: impl Fn(u32) -> Result<T, UnknownValue>,
        ) {
            for &v in all {
                assert_eq!(from(num(v)), Ok(v));
            }
        }
        check(
            ReplicationState::ALL,
            |v| v.number().into(),
            ReplicationState::from_number,
        );
        check(JobType::ALL, |v| v.number().into(), JobType::from_number);
        check(JobState::ALL, |v| v.number().into(), JobState::from_number);
        check(ReturnCode::ALL, |v| v.number(), ReturnCode::from_number);
        assert_eq!(ReplicationState::ALL.len(), 22);
        assert_eq!(JobType::ALL.len(), 36);
        assert_eq!(ReturnCode::ALL.len(), 14);
    }

    #[test]
    fn unknown_numbers_are_error_values() {
        assert_eq!(
            ReplicationState::from_number(22),
            Err(UnknownValue {
                enum_name: "ReplicationState",
                value: 22
            })
        );
        assert!(JobState::from_number(12).is_err());
        assert!(ReturnCode::from_number(1).is_err());
        assert!(JobType::from_number(89).is_err());
    }

    #[test]
    fn json_uses_names_and_accepts_numbers() {
        let s = serde_json::to_string(&ReplicationState::FailbackComplete).unwrap();
        assert_eq!(s, "\"FailbackComplete\"");
        let back: ReplicationState = serde_json::from_str("13").unwrap();
        assert_eq!(back, ReplicationState::FailbackInProgress);
        let err = serde_json::from_str::<ReplicationState>("\"Nope\"").unwrap_err();
        assert!(err.to_string().contains("expected one of"));
    }
}
