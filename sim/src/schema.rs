//! One declaration per served class: its name, its keys, and every property its class page
//! declares (`fixtures/classes/pages.mof`, copied from MicrosoftDocs `win32`), each with its
//! CIM type and where its value comes from. Adding a class touches this table and, when some
//! value comes from the world, one renderer in `classes.rs`.
//!
//! Values are `DOC` where the page's MOF gives a default (`= …`) or its text fixes the value;
//! `Nil` where the simulator has nothing to say (real hosts leave many of these NULL too, and
//! every client that requires the element only needs it present); the rest are marked where
//! they are declared.

use crate::wsman::writer::{self, Value};
use std::borrow::Cow;
use std::sync::OnceLock;

/// Where a property's value comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Src {
    /// Always NULL here: written as `xsi:nil="true"`, present in every instance.
    Nil,
    Str(&'static str),
    Int(i64),
    Bool(bool),
    Ints(&'static [i64]),
    Strs(&'static [&'static str]),
    /// A CIM interval, in milliseconds.
    Interval(u64),
    /// Computed from the world by the class's renderer in `classes.rs`.
    World,
}

impl Src {
    pub fn fixed_value(self) -> Value {
        match self {
            Src::Nil | Src::World => Value::Null,
            Src::Str(s) => Value::Text(Cow::Borrowed(s)),
            Src::Int(i) => Value::Int(i),
            Src::Bool(b) => Value::Bool(b),
            Src::Ints(v) => Value::Array(v.iter().map(|i| Value::Int(*i)).collect()),
            Src::Strs(v) => Value::Array(v.iter().map(|s| Value::Text(Cow::Borrowed(s))).collect()),
            Src::Interval(ms) => Value::Interval(ms),
        }
    }
}

#[derive(Debug)]
pub struct Prop {
    pub name: &'static str,
    /// The CIM type as the page writes it, lower-cased, `[]` for arrays (`uint16[]`).
    pub ty: &'static str,
    pub src: Src,
}

const fn p(name: &'static str, ty: &'static str, src: Src) -> Prop {
    Prop { name, ty, src }
}

/// How a class is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Enumerable and gettable (and a WQL `FROM` target).
    Instances,
    /// Only embedded in method outputs (`Msvm_Error`, `Msvm_ReplicationStatistics`), as on a
    /// real host, where these classes have no instances to enumerate.
    Embedded,
    /// An association: enumerable (its instances are the links `assoc.rs` finds in the
    /// world), returned by REFERENCES OF; its keys are its two references.
    Association,
}

#[derive(Debug)]
pub struct ClassDef {
    pub name: &'static str,
    /// The CIM superclasses, nearest first: what `ISA` and polymorphic `FROM` match.
    pub supers: &'static [&'static str],
    pub keys: &'static [&'static str],
    pub served: Served,
    pub props: &'static [Prop],
    /// Property indices in the order instances are written: alphabetical, case-insensitive,
    /// as WinRM's WMI plugin writes them.
    order: OnceLock<Vec<usize>>,
    /// The class's resource URI, made once: every instance carries it.
    uri: OnceLock<String>,
    /// The properties in written order with the declared values already written (see
    /// [`ClassDef::write`]).
    written: OnceLock<Vec<Piece>>,
    /// The key properties' declarations, in `keys` order (see [`ClassDef::value`]).
    key_props: OnceLock<Vec<&'static Prop>>,
}

/// A stretch of an instance's properties in written order: declared values, written once
/// as the writer writes them, or one value from the world.
#[derive(Debug)]
enum Piece {
    Written(String),
    World(&'static str),
}

impl ClassDef {
    const fn new(
        name: &'static str,
        supers: &'static [&'static str],
        keys: &'static [&'static str],
        served: Served,
        props: &'static [Prop],
    ) -> ClassDef {
        ClassDef {
            name,
            supers,
            keys,
            served,
            props,
            order: OnceLock::new(),
            uri: OnceLock::new(),
            written: OnceLock::new(),
            key_props: OnceLock::new(),
        }
    }

    /// The class's resource URI, borrowed for the process.
    pub fn uri(&'static self) -> &'static str {
        self.uri
            .get_or_init(|| crate::wsman::ns::class_uri(self.name))
    }

    pub fn prop(&self, name: &str) -> Option<&'static Prop> {
        self.props
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    fn order(&self) -> &[usize] {
        self.order.get_or_init(|| {
            let mut ix: Vec<usize> = (0..self.props.len()).collect();
            ix.sort_by_key(|i| self.props[*i].name.to_ascii_lowercase());
            ix
        })
    }

    /// The properties in written order.
    pub fn ordered(&self) -> impl Iterator<Item = &'static Prop> + '_ {
        self.order().iter().map(|i| &self.props[*i])
    }

    /// Whether this class is `class` or derives from it (WQL `ISA`, polymorphic `FROM`).
    pub fn is_a(&self, class: &str) -> bool {
        self.name.eq_ignore_ascii_case(class)
            || self.supers.iter().any(|s| s.eq_ignore_ascii_case(class))
    }

    /// Every property in written order: the world's value for `World` properties (NULL when
    /// the renderer gave none), the declared one otherwise.
    pub fn build(&self, computed: Vec<(&'static str, Value)>) -> Vec<(Cow<'static, str>, Value)> {
        let mut computed = computed;
        // A taken entry's name is blanked (the list keeps its order; see `slot`).
        let mut next = 0;
        let mut props = Vec::with_capacity(self.props.len());
        for p in self.ordered() {
            let v = match p.src {
                Src::World => {
                    let at = slot(&computed, next, p.name);
                    match at.and_then(|i| computed.get_mut(i).map(|e| (i, e))) {
                        Some((i, (name, value))) => {
                            next = i + 1;
                            *name = "";
                            std::mem::replace(value, Value::Null)
                        }
                        None => Value::Null,
                    }
                }
                other => other.fixed_value(),
            };
            props.push((Cow::Borrowed(p.name), v));
        }
        // A value the renderer computed for a property that is not `World` would be lost.
        #[cfg(test)]
        assert!(
            computed.iter().all(|(n, _)| n.is_empty()),
            "{}: undeclared {computed:?}",
            self.name
        );
        props
    }
}

impl ClassDef {
    /// Writes every property in written order, as [`writer::write_property`] writes what
    /// [`ClassDef::build`] gives for `computed`, without building it: the declared values
    /// were written once for the process and are copied (a Get of a VM has 12 values from
    /// the world among 45 properties).
    pub fn write(&self, out: &mut String, computed: &[(&'static str, Value)]) {
        let pieces = self.written.get_or_init(|| {
            let mut pieces = Vec::new();
            let mut run = String::new();
            for p in self.ordered() {
                if p.src == Src::World {
                    if !run.is_empty() {
                        pieces.push(Piece::Written(std::mem::take(&mut run)));
                    }
                    pieces.push(Piece::World(p.name));
                } else {
                    writer::write_property(&mut run, p.name, &p.src.fixed_value());
                }
            }
            if !run.is_empty() {
                pieces.push(Piece::Written(run));
            }
            pieces
        });
        let mut next = 0;
        for piece in pieces {
            match piece {
                Piece::Written(xml) => out.push_str(xml),
                Piece::World(name) => {
                    let value = slot(computed, next, name).and_then(|i| {
                        next = i + 1;
                        computed.get(i).map(|(_, v)| v)
                    });
                    writer::write_property(out, name, value.unwrap_or(&Value::Null));
                }
            }
        }
    }

    /// The value [`ClassDef::build`] gives property `name` (any case), without building the
    /// others; `None` when the class declares no such property.
    pub fn value<'c>(
        &self,
        computed: &'c [(&'static str, Value)],
        name: &str,
    ) -> Option<Cow<'c, Value>> {
        // Selectors name keys: their few declarations are tried before all the others.
        let keys = self
            .key_props
            .get_or_init(|| self.keys.iter().filter_map(|k| self.prop(k)).collect());
        let p = keys
            .iter()
            .copied()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .or_else(|| self.prop(name))?;
        Some(match p.src {
            Src::World => computed
                .iter()
                .find(|(n, _)| same_name(n, p.name))
                .map_or(Cow::Owned(Value::Null), |(_, v)| Cow::Borrowed(v)),
            fixed => Cow::Owned(fixed.fixed_value()),
        })
    }
}

/// Where `computed` holds the renderer's value for property `name`, `next` being the place
/// after the last value taken: renderers list their values in written order, so that place
/// is tried first and the list is searched only when it does not hold the name.
fn slot(computed: &[(&'static str, Value)], next: usize, name: &str) -> Option<usize> {
    if computed.get(next).is_some_and(|(n, _)| same_name(n, name)) {
        Some(next)
    } else {
        computed.iter().position(|(n, _)| same_name(n, name))
    }
}

/// Whether a renderer's property name is the declaration's. Both are literals, which the
/// compiler usually stores once, so the address is compared first (a call to `memcmp` per
/// property was a tenth of building an instance); the bytes decide when it differs.
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

use Src::{Bool, Int, Interval, Ints, Nil, Str, Strs, World};

/// `Msvm_ComputerSystem`, for VMs and the host alike (DOC msvm-computersystem.md).
const COMPUTER_SYSTEM: &[Prop] = &[
    // Inferred: real hosts leave InstanceID NULL on computer systems (Name is the key).
    p("InstanceID", "string", Nil),
    p("Caption", "string", World),
    p("Description", "string", World),
    p("ElementName", "string", World),
    p("InstallDate", "datetime", Nil),
    p("OperationalStatus", "uint16[]", Ints(&[2])),
    // Inferred: what a healthy VM reports next to OperationalStatus 2.
    p(
        "StatusDescriptions",
        "string[]",
        Strs(&["Operating normally"]),
    ),
    p("Status", "string", Str("OK")),
    p("HealthState", "uint16", Int(5)),
    p("CommunicationStatus", "uint16", Nil),
    p("DetailedStatus", "uint16", Nil),
    p("OperatingStatus", "uint16", Nil),
    p("PrimaryStatus", "uint16", Nil),
    p("EnabledState", "uint16", World),
    p("OtherEnabledState", "string", Nil),
    // The reading of the page: 12 (Not Applicable) when no change is in progress;
    // every change here is a job, so the property never shows a pending target (Inferred).
    p("RequestedState", "uint16", Int(12)),
    p("EnabledDefault", "uint16", Int(2)),
    p("TimeOfLastStateChange", "datetime", Nil),
    p("AvailableRequestedStates", "uint16[]", Nil),
    p("TransitioningToState", "uint16", Nil),
    p("CreationClassName", "string", Str("Msvm_ComputerSystem")),
    p("Name", "string", World),
    p("PrimaryOwnerName", "string", Nil),
    p("PrimaryOwnerContact", "string", Nil),
    p("Roles", "string[]", Nil),
    p("NameFormat", "string", Nil),
    p("OtherIdentifyingInfo", "string[]", Nil),
    p("IdentifyingDescriptions", "string[]", Nil),
    p("Dedicated", "uint16[]", Nil),
    p("OtherDedicatedDescriptions", "string[]", Nil),
    p("ResetCapability", "uint16", Int(1)),
    p("PowerManagementCapabilities", "uint16[]", Nil),
    p("OnTimeInMilliseconds", "uint64", World),
    p("ProcessID", "uint32", Nil),
    p("TimeOfLastConfigurationChange", "datetime", Nil),
    p("NumberOfNumaNodes", "uint16", Int(1)),
    p("ReplicationState", "uint16", World),
    p("ReplicationHealth", "uint16", World),
    p("ReplicationMode", "uint16", World),
    p("FailedOverReplicationType", "uint16", World),
    p("LastReplicationType", "uint16", World),
    p("LastApplicationConsistentReplicationTime", "datetime", Nil),
    p("LastReplicationTime", "datetime", World),
    p("LastSuccessfulBackupTime", "datetime", Nil),
    p("EnhancedSessionModeState", "uint16", Nil),
];

/// DOC msvm-replicationservice.md: Name `replicasvc`, Started True and the other defaults.
const REPLICATION_SERVICE: &[Prop] = &[
    p("InstanceID", "string", Nil),
    p("Caption", "string", Str("Hyper-V Replica Service")),
    p("Description", "string", Str("Replication Service")),
    p("ElementName", "string", Str("Hyper-V Replica Service")),
    p("InstallDate", "datetime", Nil),
    p("Name", "string", Str("replicasvc")),
    p("OperationalStatus", "uint16[]", Ints(&[2])),
    p("StatusDescriptions", "string[]", Nil),
    p("Status", "string", Str("OK")),
    p("HealthState", "uint16", Int(5)),
    p("CommunicationStatus", "uint16", Nil),
    p("DetailedStatus", "uint16", Nil),
    p("OperatingStatus", "uint16", Nil),
    p("PrimaryStatus", "uint16", Nil),
    // The page's default is 2; a stopped service (topology `service_running = false`) shows 3.
    p("EnabledState", "uint16", World),
    p("OtherEnabledState", "string", Nil),
    // The page's default 12 until a RequestStateChange is accepted (world).
    p("RequestedState", "uint16", World),
    p("EnabledDefault", "uint16", Int(2)),
    p("TimeOfLastStateChange", "datetime", Nil),
    p("AvailableRequestedStates", "uint16[]", Nil),
    p("TransitioningToState", "uint16", Nil),
    p(
        "SystemCreationClassName",
        "string",
        Str("Msvm_ComputerSystem"),
    ),
    p("SystemName", "string", World),
    p(
        "CreationClassName",
        "string",
        Str("Msvm_ReplicationService"),
    ),
    p("PrimaryOwnerName", "string", Nil),
    p("PrimaryOwnerContact", "string", Nil),
    p("StartMode", "string", Nil),
    // True on the page; False once the service is stopped (world).
    p("Started", "boolean", World),
];

/// DOC msvm-replicationrelationship.md: the page lists exactly these eight.
const REPLICATION_RELATIONSHIP: &[Prop] = &[
    p("InstanceID", "string", World),
    p("ReplicationState", "uint16", World),
    p("ReplicationHealth", "uint16", World),
    p("FailedOverReplicationType", "uint16", World),
    p("LastReplicationType", "uint16", World),
    p("LastApplicationConsistentReplicationTime", "datetime", Nil),
    p("LastReplicationTime", "datetime", World),
    p("LastApplyTime", "datetime", World),
];

/// DOC msvm-replicationsettingdata.md.
const REPLICATION_SETTING_DATA: &[Prop] = &[
    p("InstanceID", "string", World),
    p("Caption", "string", Str("Replication Settings")),
    p(
        "Description",
        "string",
        Str("Virtual Machine Replication Settings Data"),
    ),
    p("ElementName", "string", World),
    p("VirtualSystemIdentifier", "string", World),
    p(
        "VirtualSystemType",
        "string",
        Str("Microsoft:Hyper-V:Replica"),
    ),
    p("Notes", "string[]", Nil),
    p("CreationTime", "datetime", Nil),
    p("ConfigurationID", "string", Nil),
    p("ConfigurationDataRoot", "string", Nil),
    p("ConfigurationFile", "string", Nil),
    p("SnapshotDataRoot", "string", Nil),
    p("SuspendDataRoot", "string", Nil),
    p("SwapFileDataRoot", "string", Nil),
    p("LogDataRoot", "string", Nil),
    p("AutomaticStartupAction", "uint16", Nil),
    p("AutomaticStartupActionDelay", "datetime", Nil),
    p("AutomaticStartupActionSequenceNumber", "uint16", Nil),
    p("AutomaticShutdownAction", "uint16", Nil),
    p("AutomaticRecoveryAction", "uint16", Nil),
    p("RecoveryFile", "string", Nil),
    p("AuthenticationType", "uint16", World),
    p("CertificateThumbPrint", "string", World),
    p("RootCertificateThumbPrint", "string", Nil),
    p("CompressionEnabled", "boolean", World),
    p("BypassProxyServer", "boolean", World),
    p("RecoveryConnectionPoint", "string", World),
    p("RecoveryHostSystem", "string", World),
    p("PrimaryConnectionPoint", "string", World),
    p("PrimaryHostSystem", "string", World),
    p("RecoveryServerPortNumber", "uint16", World),
    p("ReplicateHostKvpItems", "boolean", World),
    p("ApplicationConsistentSnapshotInterval", "uint16", World),
    p("RecoveryHistory", "uint16", World),
    p("IncludedDisks", "string[]", World),
    p("AutoResynchronizeEnabled", "boolean", World),
    // msvm-replicationsettingdata.md «The default value is 18:30 (6:30 P.M.)», to 06:00, in
    // DMTF interval form as the page's MOF writes them.
    p(
        "AutoResynchronizeIntervalStart",
        "datetime",
        Interval(18 * 3_600_000 + 30 * 60_000),
    ),
    p(
        "AutoResynchronizeIntervalEnd",
        "datetime",
        Interval(6 * 3_600_000),
    ),
    // Inferred: Hyper-V Replica preserves write order across disks unless told otherwise.
    p(
        "EnableWriteOrderPreservationAcrossDisks",
        "boolean",
        Bool(true),
    ),
    // Inferred: the in-box Hyper-V Replica provider's id (Msvm_ReplicationProvider below).
    p("ReplicationProvider", "string", Str(REPLICA_PROVIDER_ID)),
    p("AdditionalSettings", "string", Nil),
    p("ReplicationInterval", "uint16", World),
];

/// The id of the one replication provider a host has (Inferred, see `REPLICATION_PROVIDER`).
pub const REPLICA_PROVIDER_ID: &str = "22391CDC-272C-4DDF-BA88-9BEFB1A0975C";

/// DOC msvm-replicationservicesettingdata.md.
const REPLICATION_SERVICE_SETTING_DATA: &[Prop] = &[
    p("InstanceID", "string", World),
    p("Caption", "string", Str("Replication Service Settings")),
    p(
        "Description",
        "string",
        Str("Virtual Machine Replication Service Settings Data"),
    ),
    p("ElementName", "string", Str("Replication Service Settings")),
    p("RecoveryServerEnabled", "boolean", World),
    p("AllowedAuthenticationType", "uint16", World),
    p("CertificateThumbPrint", "string", World),
    p("HttpsPort", "uint16", World),
    p("HttpPort", "uint16", World),
    // msvm-replicationservicesettingdata.md «The default value is 9:00 A.M., local time,
    // represented in UTC», with a zero date part (an interval in DMTF form).
    p("MonitoringStartTime", "datetime", Interval(9 * 3_600_000)),
    p("MonitoringInterval", "uint32", World),
];

/// DOC msvm-replicationauthorizationsettingdata.md.
const REPLICATION_AUTHORIZATION_SETTING_DATA: &[Prop] = &[
    // msvm-replicationauthorizationsettingdata.md «and it is always set to Null» (InstanceID); a
    // stable id is kept so that Get and references work
    // (Inferred; a real-host capture would settle what a Get by selector uses instead).
    p("InstanceID", "string", World),
    p(
        "Caption",
        "string",
        Str("Replication Authorization Settings"),
    ),
    p(
        "Description",
        "string",
        Str("Virtual Machine Replication Authorization Settings Data"),
    ),
    p("ElementName", "string", World),
    p("AllowedPrimaryHostSystem", "string", World),
    p("TrustGroup", "string", World),
    p("ReplicaStorageLocation", "string", World),
];

/// The data root of a default Hyper-V installation (Inferred: Hyper-V's default paths).
pub const DATA_ROOT: &str = "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V";

/// DOC msvm-virtualsystemsettingdata.md; realized settings and recovery points share it.
/// The fixed values are those of a generation-2 VM with Hyper-V's defaults (Inferred).
const VIRTUAL_SYSTEM_SETTING_DATA: &[Prop] = &[
    p("InstanceID", "string", World),
    p("Caption", "string", Str("Virtual Machine Settings")),
    p("Description", "string", World),
    p("ElementName", "string", World),
    p("VirtualSystemIdentifier", "string", World),
    p("VirtualSystemType", "string", World),
    p("Notes", "string[]", Nil),
    p("CreationTime", "datetime", World),
    p("ConfigurationID", "string", World),
    p("ConfigurationDataRoot", "string", Str(DATA_ROOT)),
    p("ConfigurationFile", "string", World),
    p("SnapshotDataRoot", "string", Str(DATA_ROOT)),
    p("SuspendDataRoot", "string", Str(DATA_ROOT)),
    p("SwapFileDataRoot", "string", Str(DATA_ROOT)),
    p("LogDataRoot", "string", Str(DATA_ROOT)),
    // 3 Restart if previously active, 3 Save state, 3 Restart: Hyper-V's defaults.
    p("AutomaticStartupAction", "uint16", Int(3)),
    p("AutomaticStartupActionDelay", "datetime", Interval(0)),
    p("AutomaticStartupActionSequenceNumber", "uint16", Int(0)),
    p("AutomaticShutdownAction", "uint16", Int(3)),
    p("AutomaticRecoveryAction", "uint16", Int(3)),
    p("RecoveryFile", "string", Nil),
    p("BIOSGUID", "string", World),
    p("BIOSSerialNumber", "string", Nil),
    p("BaseBoardSerialNumber", "string", Nil),
    p("ChassisSerialNumber", "string", Nil),
    p("Architecture", "string", Nil),
    p("ChassisAssetTag", "string", Nil),
    p("BIOSNumLock", "boolean", Bool(false)),
    p("BootOrder", "uint16[]", Nil),
    p("Parent", "string", Nil),
    p("UserSnapshotType", "uint16", Nil),
    p("IsSaved", "boolean", Bool(false)),
    p("AdditionalRecoveryInformation", "string", Nil),
    p("AllowFullSCSICommandSet", "boolean", Bool(false)),
    p("DebugChannelId", "uint32", Int(0)),
    p("DebugPortEnabled", "uint16", Int(0)),
    p("DebugPort", "uint32", Int(0)),
    p("Version", "string", Str("9.0")),
    p("IncrementalBackupEnabled", "boolean", Bool(false)),
    p("VirtualNumaEnabled", "boolean", Bool(true)),
    p("AllowReducedFcRedundancy", "boolean", Bool(false)),
    p(
        "VirtualSystemSubType",
        "string",
        Str("Microsoft:Hyper-V:SubType:2"),
    ),
    p("BootSourceOrder", "string[]", Nil),
    p("PauseAfterBootFailure", "boolean", Bool(false)),
    p("NetworkBootPreferredProtocol", "uint16", Nil),
    p("GuestControlledCacheTypes", "boolean", Bool(false)),
    p("AutomaticSnapshotsEnabled", "boolean", Bool(false)),
    p("IsAutomaticSnapshot", "boolean", Bool(false)),
    p("GuestStateFile", "string", Nil),
    p("GuestStateDataRoot", "string", Str(DATA_ROOT)),
    p("LockOnDisconnect", "boolean", Bool(false)),
    p("ParentPackage", "string", Nil),
    p("AutomaticCriticalErrorActionTimeout", "datetime", Nil),
    p("AutomaticCriticalErrorAction", "uint16", Nil),
    p("ConsoleMode", "uint16", Nil),
    p("SecureBootEnabled", "boolean", Bool(true)),
    p("SecureBootTemplateId", "string", Nil),
    p("LowMmioGapSize", "uint64", Nil),
    p("HighMmioGapSize", "uint64", Nil),
    p("EnhancedSessionTransportType", "uint16", Nil),
];

/// DOC msvm-concretejob.md.
const CONCRETE_JOB: &[Prop] = &[
    p("InstanceID", "string", World),
    p("Caption", "string", World),
    p("Description", "string", World),
    p("ElementName", "string", World),
    p("InstallDate", "datetime", Nil),
    p("Name", "string", World),
    p("OperationalStatus", "uint16[]", World),
    p("StatusDescriptions", "string[]", World),
    p("Status", "string", World),
    p("HealthState", "uint16", Int(5)),
    p("CommunicationStatus", "uint16", Nil),
    p("DetailedStatus", "uint16", Nil),
    p("OperatingStatus", "uint16", Nil),
    p("PrimaryStatus", "uint16", Nil),
    p("JobStatus", "string", World),
    p("TimeSubmitted", "datetime", World),
    // StartTime of StartReplication/Resynchronize when the job waits for it; else Null.
    p("ScheduledStartTime", "datetime", World),
    p("StartTime", "datetime", World),
    p("ElapsedTime", "datetime", World),
    p("JobRunTimes", "uint32", Int(1)),
    p("RunMonth", "uint8", Nil),
    p("RunDay", "sint8", Nil),
    p("RunDayOfWeek", "sint8", Nil),
    p("RunStartInterval", "datetime", Nil),
    p("LocalOrUtcTime", "uint16", Int(2)),
    p("UntilTime", "datetime", Nil),
    p("Notify", "string", Nil),
    p("Owner", "string", Nil),
    p("Priority", "uint32", Nil),
    p("PercentComplete", "uint16", World),
    p("DeleteOnCompletion", "boolean", Bool(false)),
    p("ErrorCode", "uint16", World),
    p("ErrorDescription", "string", World),
    p("ErrorSummaryDescription", "string", World),
    p("RecoveryAction", "uint16", Nil),
    p("OtherRecoveryAction", "string", Nil),
    p("JobState", "uint16", World),
    p("TimeOfLastStateChange", "datetime", World),
    // msvm-concretejob.md «The default is five minutes»; the profile's job_retention_ms may
    // change it.
    p("TimeBeforeRemoval", "datetime", World),
    p("Cancellable", "boolean", Bool(true)),
    p("JobType", "uint16", World),
];

/// DOC msvm-error.md; only embedded in GetError/GetErrorEx outputs.
const ERROR: &[Prop] = &[
    p("ErrorType", "uint16", World),
    p("OtherErrorType", "string", Nil),
    // Inferred: the event provider name VMMS errors carry on real hosts.
    p(
        "OwningEntity",
        "string",
        Str("Microsoft-Windows-Hyper-V-VMMS"),
    ),
    p("MessageID", "string", World),
    p("Message", "string", World),
    p("MessageArguments", "string[]", World),
    p("PerceivedSeverity", "uint16", World),
    p("ProbableCause", "uint16", World),
    p("ProbableCauseDescription", "string", Nil),
    p("RecommendedActions", "string[]", Nil),
    p("ErrorSource", "string", World),
    // msvm-error.md «and it is always set to 0» (ErrorSourceFormat).
    p("ErrorSourceFormat", "uint16", Int(0)),
    p("OtherErrorSourceFormat", "string", Nil),
    p("CIMStatusCode", "uint32", World),
    p("CIMStatusCodeDescription", "string", Nil),
];

/// DOC msvm-replicationstatistics.md; only embedded in GetReplicationStatistics outputs.
const REPLICATION_STATISTICS: &[Prop] = &[
    p("InstanceID", "string", Nil),
    p("Caption", "string", Nil),
    p("Description", "string", Nil),
    p("ElementName", "string", Nil),
    p("StartStatisticTime", "datetime", World),
    p("EndStatisticTime", "datetime", World),
    p("ReplicationSuccessCount", "uint32", World),
    p("ReplicationSize", "uint64", World),
    p("MaxReplicationSize", "uint64", World),
    p("ReplicationLatency", "uint32", Int(0)),
    p("ReplicationMissCount", "uint32", Int(0)),
    p("MaxReplicationLatency", "uint32", Int(0)),
    p("NetworkFailureCount", "uint32", Int(0)),
    p("ReplicationFailureCount", "uint32", Int(0)),
    p("PendingReplicationSize", "uint64", World),
    p(
        "ApplicationConsistentSnapshotFailureCount",
        "uint32",
        Int(0),
    ),
    p("ReplicationHealth", "uint32", World),
    p("LastTestFailoverTime", "datetime", Nil),
];

/// DOC msvm-replicationprovider.md: one instance, the in-box provider (values Inferred).
const REPLICATION_PROVIDER: &[Prop] = &[
    p("InstanceID", "string", Str(REPLICA_PROVIDER_ID)),
    p("Caption", "string", Str("Hyper-V Replica Provider")),
    p("Description", "string", Str("Hyper-V Replica Provider")),
    p("ElementName", "string", Str("Hyper-V Replica")),
    p("Name", "string", Str("Microsoft:Hyper-V:Replica")),
    p("OperationalStatus", "uint16[]", Ints(&[2])),
];

/// DOC msvm-virtualsystemmanagementservice.md: every default of the page.
const VIRTUAL_SYSTEM_MANAGEMENT_SERVICE: &[Prop] = &[
    p("InstanceID", "string", Nil),
    p(
        "Caption",
        "string",
        Str("Virtual System Management Service"),
    ),
    p(
        "Description",
        "string",
        Str("Service for creating, manipulating, and managing virtual machines"),
    ),
    p(
        "ElementName",
        "string",
        Str("Hyper-V Virtual System Management Service"),
    ),
    p("InstallDate", "datetime", Nil),
    p("Name", "string", Str("vmms")),
    p("OperationalStatus", "uint16[]", Ints(&[2])),
    p(
        "StatusDescriptions",
        "string[]",
        Strs(&["The service is running normally"]),
    ),
    p("Status", "string", Str("OK")),
    p("HealthState", "uint16", Int(5)),
    p("CommunicationStatus", "uint16", Nil),
    p("DetailedStatus", "uint16", Nil),
    p("OperatingStatus", "uint16", Nil),
    p("PrimaryStatus", "uint16", Nil),
    p("EnabledState", "uint16", Int(2)),
    p("OtherEnabledState", "string", Nil),
    p("RequestedState", "uint16", Int(12)),
    p("EnabledDefault", "uint16", Int(2)),
    p("TimeOfLastStateChange", "datetime", Nil),
    p("AvailableRequestedStates", "uint16[]", Nil),
    p("TransitioningToState", "uint16", Nil),
    p(
        "SystemCreationClassName",
        "string",
        Str("Msvm_ComputerSystem"),
    ),
    p("SystemName", "string", World),
    p(
        "CreationClassName",
        "string",
        Str("Msvm_VirtualSystemManagementService"),
    ),
    p("PrimaryOwnerName", "string", Nil),
    p("PrimaryOwnerContact", "string", Nil),
    p("StartMode", "string", Nil),
    p("Started", "boolean", Bool(true)),
];

/// DOC msvm-storageallocationsettingdata.md: one virtual hard disk per VM (the model has no
/// disks; the values are those of a dynamically expanding VHDX attached to SCSI, Inferred).
const STORAGE_ALLOCATION_SETTING_DATA: &[Prop] = &[
    p("InstanceID", "string", World),
    p("Caption", "string", Str("Hard Disk Image Default Settings")),
    p(
        "Description",
        "string",
        Str("Describes the default settings for the hard disk image resources"),
    ),
    p("ElementName", "string", Str("Hard Disk Image")),
    // 31: Logical Disk.
    p("ResourceType", "uint16", Int(31)),
    p("OtherResourceType", "string", Nil),
    p(
        "ResourceSubType",
        "string",
        Str("Microsoft:Hyper-V:Virtual Hard Disk"),
    ),
    p("PoolID", "string", Str("")),
    p("ConsumerVisibility", "uint16", Nil),
    p("HostResource", "string[]", World),
    p("AllocationUnits", "string", Str("count(fixed size block)")),
    p("VirtualQuantity", "uint64", Int(1)),
    p("Limit", "uint64", Int(1)),
    p("Weight", "uint32", Int(0)),
    p("StorageQoSPolicyID", "string", Nil),
    p("AutomaticAllocation", "boolean", Bool(true)),
    p("AutomaticDeallocation", "boolean", Bool(true)),
    p("Parent", "string", Nil),
    p("Connection", "string[]", Nil),
    p("Address", "string", Nil),
    p("MappingBehavior", "uint16", Nil),
    p("AddressOnParent", "string", Nil),
    p("VirtualResourceBlockSize", "uint64", Int(1)),
    p(
        "VirtualQuantityUnits",
        "string",
        Str("count(fixed size block)"),
    ),
    // 3: Read/Write.
    p("Access", "uint16", Int(3)),
    p("HostResourceBlockSize", "uint64", Int(1)),
    p("Reservation", "uint64", Int(1)),
    p("HostExtentStartingAddress", "uint64", Nil),
    p("HostExtentName", "string", Nil),
    p("HostExtentNameFormat", "uint16", Nil),
    p("OtherHostExtentNameFormat", "string", Nil),
    p("HostExtentNameNamespace", "uint16", Nil),
    p("OtherHostExtentNameNamespace", "string", Nil),
    p("IOPSLimit", "uint64", Int(0)),
    p("IOPSReservation", "uint64", Int(0)),
    p("IOPSAllocationUnits", "string", Str("count(IOPS)")),
    p("PersistentReservationsSupported", "boolean", Bool(false)),
    p("CachingMode", "uint16", Nil),
    p("SnapshotId", "string", Str("")),
    p("IgnoreFlushes", "boolean", Bool(false)),
    p("WriteHardeningMethod", "uint16", Int(0)),
];

/// The association classes (DOC: each page's MOF). A `ref:Class` property is a reference to
/// an instance of Class (or a subclass); both references are the keys.
const SYSTEM_REPLICATION_RELATIONSHIP: &[Prop] = &[
    p("Antecedent", "ref:Msvm_ComputerSystem", World),
    p("Dependent", "ref:Msvm_ReplicationRelationship", World),
];
const ELEMENT_SETTING_DATA: &[Prop] = &[
    p("ManagedElement", "ref:CIM_ManagedElement", World),
    p("SettingData", "ref:CIM_SettingData", World),
    p("IsDefault", "uint16", Int(0)),
    p("IsCurrent", "uint16", Int(0)),
    p("IsNext", "uint16", Int(0)),
];
const SETTINGS_DEFINE_STATE: &[Prop] = &[
    p("ManagedElement", "ref:Msvm_ComputerSystem", World),
    p("SettingData", "ref:Msvm_VirtualSystemSettingData", World),
];
const SNAPSHOT_OF_VIRTUAL_SYSTEM: &[Prop] = &[
    p("Antecedent", "ref:Msvm_ComputerSystem", World),
    p("Dependent", "ref:Msvm_VirtualSystemSettingData", World),
];
const AFFECTED_JOB_ELEMENT: &[Prop] = &[
    p("AffectedElement", "ref:CIM_ManagedElement", World),
    p("AffectingElement", "ref:Msvm_ConcreteJob", World),
    // Inferred: 2 "Exclusive Use", since a job reserves its VM (ARCHITECTURE.md invariant).
    p("ElementEffects", "uint16[]", Ints(&[2])),
    p("OtherElementEffectsDescriptions", "string[]", Nil),
];
const REPLICA_SYSTEM_DEPENDENCY: &[Prop] = &[
    p("Antecedent", "ref:CIM_ComputerSystem", World),
    p("Dependent", "ref:CIM_ComputerSystem", World),
];
const HOSTED_SERVICE: &[Prop] = &[
    p("Antecedent", "ref:CIM_ManagedElement", World),
    p("Dependent", "ref:CIM_Service", World),
];
const SERVICE_AFFECTS_ELEMENT: &[Prop] = &[
    p("AffectedElement", "ref:CIM_ManagedElement", World),
    p("AffectingElement", "ref:CIM_Service", World),
    p("ElementEffects", "uint16[]", Ints(&[5])),
    p("OtherElementEffectsDescriptions", "string[]", Nil),
];
const VIRTUAL_SYSTEM_SETTING_DATA_COMPONENT: &[Prop] = &[
    p("GroupComponent", "ref:CIM_VirtualSystemSettingData", World),
    p(
        "PartComponent",
        "ref:CIM_ResourceAllocationSettingData",
        World,
    ),
];

const SERVICE: &[&str] = &[
    "CreationClassName",
    "Name",
    "SystemCreationClassName",
    "SystemName",
];
const INSTANCE_ID: &[&str] = &["InstanceID"];
const SETTING_DATA: &[&str] = &[
    "CIM_VirtualSystemSettingData",
    "CIM_SettingData",
    "CIM_ManagedElement",
];

pub static CLASSES: [ClassDef; 22] = [
    ClassDef::new(
        "Msvm_ComputerSystem",
        &[
            "CIM_ComputerSystem",
            "CIM_System",
            "CIM_EnabledLogicalElement",
            "CIM_LogicalElement",
            "CIM_ManagedSystemElement",
            "CIM_ManagedElement",
        ],
        &["CreationClassName", "Name"],
        Served::Instances,
        COMPUTER_SYSTEM,
    ),
    ClassDef::new(
        "Msvm_ReplicationService",
        &[
            "CIM_Service",
            "CIM_EnabledLogicalElement",
            "CIM_LogicalElement",
            "CIM_ManagedSystemElement",
            "CIM_ManagedElement",
        ],
        SERVICE,
        Served::Instances,
        REPLICATION_SERVICE,
    ),
    ClassDef::new(
        "Msvm_ReplicationRelationship",
        &["CIM_ManagedSystemElement", "CIM_ManagedElement"],
        INSTANCE_ID,
        Served::Instances,
        REPLICATION_RELATIONSHIP,
    ),
    ClassDef::new(
        "Msvm_ReplicationSettingData",
        SETTING_DATA,
        INSTANCE_ID,
        Served::Instances,
        REPLICATION_SETTING_DATA,
    ),
    ClassDef::new(
        "Msvm_ConcreteJob",
        &[
            "CIM_ConcreteJob",
            "CIM_Job",
            "CIM_LogicalElement",
            "CIM_ManagedSystemElement",
            "CIM_ManagedElement",
        ],
        INSTANCE_ID,
        Served::Instances,
        CONCRETE_JOB,
    ),
    ClassDef::new(
        "Msvm_VirtualSystemSettingData",
        SETTING_DATA,
        INSTANCE_ID,
        Served::Instances,
        VIRTUAL_SYSTEM_SETTING_DATA,
    ),
    ClassDef::new(
        "Msvm_ReplicationServiceSettingData",
        &["CIM_SettingData", "CIM_ManagedElement"],
        INSTANCE_ID,
        Served::Instances,
        REPLICATION_SERVICE_SETTING_DATA,
    ),
    ClassDef::new(
        "Msvm_ReplicationAuthorizationSettingData",
        &["CIM_SettingData", "CIM_ManagedElement"],
        INSTANCE_ID,
        Served::Instances,
        REPLICATION_AUTHORIZATION_SETTING_DATA,
    ),
    ClassDef::new(
        "Msvm_VirtualSystemManagementService",
        &[
            "CIM_VirtualSystemManagementService",
            "CIM_Service",
            "CIM_EnabledLogicalElement",
            "CIM_LogicalElement",
            "CIM_ManagedSystemElement",
            "CIM_ManagedElement",
        ],
        SERVICE,
        Served::Instances,
        VIRTUAL_SYSTEM_MANAGEMENT_SERVICE,
    ),
    ClassDef::new(
        "Msvm_ReplicationProvider",
        &["CIM_ManagedSystemElement", "CIM_ManagedElement"],
        INSTANCE_ID,
        Served::Instances,
        REPLICATION_PROVIDER,
    ),
    ClassDef::new(
        "Msvm_StorageAllocationSettingData",
        &[
            "CIM_StorageAllocationSettingData",
            "CIM_ResourceAllocationSettingData",
            "CIM_SettingData",
            "CIM_ManagedElement",
        ],
        INSTANCE_ID,
        Served::Instances,
        STORAGE_ALLOCATION_SETTING_DATA,
    ),
    ClassDef::new("Msvm_Error", &["CIM_Error"], &[], Served::Embedded, ERROR),
    ClassDef::new(
        "Msvm_ReplicationStatistics",
        &["CIM_ManagedElement"],
        &[],
        Served::Embedded,
        REPLICATION_STATISTICS,
    ),
    ClassDef::new(
        "Msvm_SystemReplicationRelationship",
        &["CIM_Dependency"],
        &["Antecedent", "Dependent"],
        Served::Association,
        SYSTEM_REPLICATION_RELATIONSHIP,
    ),
    ClassDef::new(
        "Msvm_ElementSettingData",
        &["CIM_ElementSettingData"],
        &["ManagedElement", "SettingData"],
        Served::Association,
        ELEMENT_SETTING_DATA,
    ),
    ClassDef::new(
        "Msvm_SettingsDefineState",
        &["CIM_SettingsDefineState"],
        &["ManagedElement", "SettingData"],
        Served::Association,
        SETTINGS_DEFINE_STATE,
    ),
    ClassDef::new(
        "Msvm_SnapshotOfVirtualSystem",
        &["CIM_SnapshotOfVirtualSystem", "CIM_Dependency"],
        &["Antecedent", "Dependent"],
        Served::Association,
        SNAPSHOT_OF_VIRTUAL_SYSTEM,
    ),
    ClassDef::new(
        "Msvm_AffectedJobElement",
        &["CIM_AffectedJobElement"],
        &["AffectedElement", "AffectingElement"],
        Served::Association,
        AFFECTED_JOB_ELEMENT,
    ),
    ClassDef::new(
        "Msvm_ReplicaSystemDependency",
        &["CIM_Dependency"],
        &["Antecedent", "Dependent"],
        Served::Association,
        REPLICA_SYSTEM_DEPENDENCY,
    ),
    ClassDef::new(
        "Msvm_HostedService",
        &[
            "CIM_HostedService",
            "CIM_HostedDependency",
            "CIM_Dependency",
        ],
        &["Antecedent", "Dependent"],
        Served::Association,
        HOSTED_SERVICE,
    ),
    ClassDef::new(
        "Msvm_ServiceAffectsElement",
        &["CIM_ServiceAffectsElement"],
        &["AffectedElement", "AffectingElement"],
        Served::Association,
        SERVICE_AFFECTS_ELEMENT,
    ),
    ClassDef::new(
        "Msvm_VirtualSystemSettingDataComponent",
        &["CIM_VirtualSystemSettingDataComponent", "CIM_Component"],
        &["GroupComponent", "PartComponent"],
        Served::Association,
        VIRTUAL_SYSTEM_SETTING_DATA_COMPONENT,
    ),
];

/// The declaration of `name`, case-insensitively.
pub fn def(name: &str) -> Option<&'static ClassDef> {
    CLASSES.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// The enumerable classes (instances and associations) that are `name` or derive from it.
pub fn served_under(name: &str) -> impl Iterator<Item = &'static ClassDef> + '_ {
    CLASSES
        .iter()
        .filter(move |c| c.served != Served::Embedded && c.is_a(name))
}

/// The class qualifiers a class page lists above its syntax block (`[Association, Dynamic,
/// Provider(…), AMENDMENT]`), by name, as WQL's `RequiredQualifier` and
/// `RequiredAssocQualifier` test them. DOC: copied from the pages (fixtures/classes/pages.mof;
/// `page_qualifiers_are_kept` checks them). Only the Msvm class's own qualifiers are known:
/// what its CIM superclasses would pass down is not on the pages.
pub fn qualifiers(class: &str) -> &'static [&'static str] {
    const INSTANCE: &[&str] = &["Dynamic", "Provider", "AMENDMENT"];
    const AGGREGATION: &[&str] = &[
        "Association",
        "Aggregation",
        "Dynamic",
        "Provider",
        "AMENDMENT",
    ];
    const ASSOCIATION: &[&str] = &["Association", "Dynamic", "Provider", "AMENDMENT"];
    match def(class).map(|d| d.name) {
        Some(
            "Msvm_SystemReplicationRelationship"
            | "Msvm_ElementSettingData"
            | "Msvm_SnapshotOfVirtualSystem"
            | "Msvm_AffectedJobElement"
            | "Msvm_ReplicaSystemDependency"
            | "Msvm_VirtualSystemSettingDataComponent",
        ) => AGGREGATION,
        // The only page without AMENDMENT.
        Some("Msvm_SettingsDefineState") => &["Association", "Dynamic", "Provider"],
        Some("Msvm_HostedService" | "Msvm_ServiceAffectsElement") => ASSOCIATION,
        Some(_) => INSTANCE,
        None => &[],
    }
}

/// Whether `class` carries the qualifier `name` (qualifier names are case-insensitive in WMI).
pub fn has_qualifier(class: &str, name: &str) -> bool {
    qualifiers(class)
        .iter()
        .any(|q| q.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Every page's qualifier line, read back, is what `qualifiers` answers for its class.
    #[test]
    fn page_qualifiers_are_kept() {
        let text = include_str!("../../fixtures/classes/pages.mof");
        let mut pending: Option<Vec<String>> = None;
        let mut seen = 0;
        for line in text.lines().map(str::trim) {
            if let Some(list) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                pending = Some(
                    list.split(',')
                        .map(|q| q.split('(').next().unwrap_or_default().trim().to_string())
                        .collect(),
                );
                continue;
            }
            if let Some(rest) = line.strip_prefix("class ") {
                let class = rest.split_whitespace().next().unwrap_or_default();
                let page = pending.take().unwrap_or_default();
                assert_eq!(qualifiers(class), page.as_slice(), "{class}");
                seen += 1;
            }
        }
        assert_eq!(seen, CLASSES.len(), "every declared class has a page block");
    }

    /// `class Name : Super { type Prop[] = default; … };` blocks of the class pages, as
    /// property name → lower-cased type (`[]` kept).
    fn page_classes() -> BTreeMap<String, BTreeMap<String, String>> {
        let text = include_str!("../../fixtures/classes/pages.mof");
        let mut out = BTreeMap::new();
        let mut current: Option<(String, BTreeMap<String, String>)> = None;
        let mut pending = String::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with("//") || line.starts_with('[') || line == "{" || line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("class ") {
                let name = rest.split_whitespace().next().unwrap_or_default();
                current = Some((name.to_string(), BTreeMap::new()));
                continue;
            }
            if line == "};" {
                if let Some((name, props)) = current.take() {
                    out.insert(name, props);
                }
                continue;
            }
            // A declaration may span lines (Msvm_ConcreteJob's TimeBeforeRemoval).
            pending.push(' ');
            pending.push_str(line);
            if !pending.trim_end().ends_with(';') {
                continue;
            }
            let decl = std::mem::take(&mut pending);
            let decl = decl.split('=').next().unwrap_or_default();
            let mut words = decl.trim().trim_end_matches(';').split_whitespace();
            let (Some(mut ty), Some(mut name)) = (words.next(), words.next()) else {
                panic!("bad declaration {decl}")
            };
            // `Class REF Role`: a reference, written `ref:Class` in the declarations.
            let reference;
            if name == "REF" {
                reference = format!("ref:{ty}");
                ty = &reference;
                name = words.next().unwrap_or_default();
            }
            let array = name.ends_with("[]");
            let name = name.trim_end_matches("[]");
            let ty = if ty.starts_with("ref:") {
                ty.to_string()
            } else {
                format!(
                    "{}{}",
                    ty.to_ascii_lowercase(),
                    if array { "[]" } else { "" }
                )
            };
            if let Some((_, props)) = current.as_mut() {
                props.insert(name.to_string(), ty);
            }
        }
        out
    }

    #[test]
    fn every_class_declares_exactly_its_page_properties_with_their_types() {
        let pages = page_classes();
        assert_eq!(pages.len(), CLASSES.len(), "{:?}", pages.keys());
        for def in &CLASSES {
            let Some(page) = pages.get(def.name) else {
                panic!("{} has no page in fixtures/classes/pages.mof", def.name)
            };
            let ours: BTreeMap<String, String> = def
                .props
                .iter()
                .map(|p| (p.name.to_string(), p.ty.to_string()))
                .collect();
            assert_eq!(&ours, page, "{}", def.name);
            assert_eq!(
                ours.len(),
                def.props.len(),
                "{}: a property twice",
                def.name
            );
            for k in def.keys {
                assert!(def.prop(k).is_some(), "{}: key {k}", def.name);
            }
        }
    }

    /// `prop` finds every declared property, in any case, and it alone: names are unique
    /// without regard to case (a lookup that ignores case could otherwise find either of
    /// two), and absent names are not found.
    #[test]
    fn prop_finds_each_property_in_any_case() {
        for def in &CLASSES {
            for p in def.props {
                for name in [
                    p.name.to_string(),
                    p.name.to_ascii_lowercase(),
                    p.name.to_ascii_uppercase(),
                ] {
                    assert!(
                        def.prop(&name).is_some_and(|found| std::ptr::eq(found, p)),
                        "{}.{name}",
                        def.name
                    );
                }
                for absent in [
                    format!("{}x", p.name),
                    p.name[1..].to_string(),
                    String::new(),
                ] {
                    assert!(def.prop(&absent).is_none(), "{}.{absent}", def.name);
                }
            }
        }
    }

    /// The page's fixed values (`= …` in its MOF) are ours, except where the world decides
    /// (the replication service's EnabledState follows the topology) or the page's default is
    /// a placeholder (`Name = "GUID"`, the setting data's InstanceID pattern).
    #[test]
    fn page_defaults_are_kept() {
        let text = include_str!("../../fixtures/classes/pages.mof");
        let mut class = "";
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("class ") {
                class = rest.split_whitespace().next().unwrap_or_default();
                continue;
            }
            let Some((decl, default)) = line.split_once('=') else {
                continue;
            };
            let Some(name) = decl.split_whitespace().nth(1) else {
                continue;
            };
            let name = name.trim_end_matches("[]");
            let default = default.trim().trim_end_matches(';').trim();
            let Some(def) = def(class) else { continue };
            let Some(prop) = def.prop(name) else {
                panic!("{class}.{name}")
            };
            let world_decides = matches!(
                (class, name),
                ("Msvm_ComputerSystem", "Name" | "EnabledState")
                    | (
                        "Msvm_ReplicationService",
                        "EnabledState" | "RequestedState" | "Started"
                    )
                    | (
                        "Msvm_ReplicationSettingData",
                        "InstanceID"
                            | "RecoveryServerPortNumber"
                            | "ReplicateHostKvpItems"
                            | "RecoveryHistory"
                            | "AutoResynchronizeEnabled"
                            | "ReplicationInterval"
                    )
                    | (
                        "Msvm_ReplicationServiceSettingData",
                        "RecoveryServerEnabled"
                            | "AllowedAuthenticationType"
                            | "HttpsPort"
                            | "HttpPort"
                            | "MonitoringInterval"
                    )
                    | (
                        "Msvm_ConcreteJob",
                        "OperationalStatus" | "StatusDescriptions"
                    )
            );
            if world_decides || default.is_empty() {
                assert!(
                    prop.src == Src::World || prop.src != Src::Nil,
                    "{class}.{name}"
                );
                continue;
            }
            let expected = match prop.src {
                Src::Str(s) => format!("\"{s}\""),
                Src::Int(i) => i.to_string(),
                Src::Bool(b) => {
                    if b {
                        "True".into()
                    } else {
                        "False".into()
                    }
                }
                // `ElementEffects[] = 5`: an array default written as a scalar.
                Src::Ints([one]) if !default.starts_with('{') => one.to_string(),
                Src::Ints(v) => format!(
                    "{{ {} }}",
                    v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                ),
                Src::Strs(v) => format!(
                    "{{ {} }}",
                    v.iter()
                        .map(|s| format!("\"{s}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Src::Interval(ms) => crate::wsman::xsd::format_dmtf_interval_ms(ms),
                other => format!("{other:?}"),
            };
            assert_eq!(expected, default, "{class}.{name}");
        }
    }

    /// libvirt's generated structs fail a whole response when one element is missing.
    #[test]
    fn libvirt_required_properties_are_declared() {
        let text = include_str!("../../fixtures/classes/libvirt-required.txt");
        let mut class = None;
        let mut seen = BTreeSet::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some(name) = line.strip_prefix("class ") {
                class = def(name.trim());
                assert!(class.is_some(), "{name} is not declared");
                seen.insert(name.trim().to_string());
            } else if line.trim() == "end" {
                class = None;
            } else if let Some(def) = class {
                for prop in line.split_whitespace() {
                    assert!(def.prop(prop).is_some(), "{}.{prop} (libvirt)", def.name);
                }
            }
        }
        assert_eq!(seen.len(), 4);
    }
}
