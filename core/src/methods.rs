//! Method signatures (DOC method pages, docs/facts.md#method-signatures) and the one mapping from a
//! call's named arguments to an [`Operation`]. The simulator uses it to read WS-Management Invoke
//! bodies; the conformance runner uses the signatures to encode scenario steps on the wire.

use crate::enums::ReturnCode;
use crate::ops::{Operation, WmiClass};
use crate::params::{AuthorizationEntry, RelIx, ServiceSettingsPatch, SettingsPatch};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A `REF` parameter: an endpoint reference to an instance of this class.
    Ref(&'static str),
    /// A string holding an embedded instance of this class (CIM-XML).
    Instance(&'static str),
    U16,
    Str,
    StrArray,
    Bool,
    Datetime,
}

#[derive(Debug, Clone, Copy)]
pub struct MethodSig {
    pub class: WmiClass,
    pub name: &'static str,
    pub inputs: &'static [(&'static str, ParamKind)],
    /// Output parameters besides ReturnValue.
    pub outputs: &'static [&'static str],
    /// Answered by reading the world, with no operation and no table row (GetError,
    /// GetErrorEx); every other method decodes to an operation the table has rows for
    /// (core/tests/methods.rs holds that).
    pub reads: bool,
}

use ParamKind::*;
const CS: (&str, ParamKind) = ("ComputerSystem", Ref("Msvm_ComputerSystem"));
const RSD: (&str, ParamKind) = (
    "ReplicationSettingData",
    Instance("Msvm_ReplicationSettingData"),
);
const REL: (&str, ParamKind) = (
    "ReplicationRelationship",
    Instance("Msvm_ReplicationRelationship"),
);
const AUTH: (&str, ParamKind) = (
    "AuthorizationEntry",
    Instance("Msvm_ReplicationAuthorizationSettingData"),
);
const SNAP: (&str, ParamKind) = ("SnapshotSettingData", Ref("Msvm_VirtualSystemSettingData"));

const fn rs(name: &'static str, inputs: &'static [(&'static str, ParamKind)]) -> MethodSig {
    MethodSig {
        class: WmiClass::ReplicationService,
        name,
        inputs,
        outputs: &["Job"],
        reads: false,
    }
}

/// Every method the simulator answers, in DOC's parameter order.
pub static METHODS: &[MethodSig] = &[
    rs("AddAuthorizationEntry", &[AUTH]),
    rs("ChangeReplicationModeToPrimary", &[CS, REL]),
    rs("CommitFailover", &[CS]),
    rs("CreateReplicationRelationship", &[CS, RSD]),
    MethodSig {
        outputs: &["ReplicationStatistics", "ReplicationHealthIssues", "Job"],
        reads: false,
        ..rs("GetReplicationStatistics", &[CS])
    },
    MethodSig {
        outputs: &["ReplicationStatistics", "ReplicationHealthIssues", "Job"],
        reads: false,
        ..rs("GetReplicationStatisticsEx", &[CS, REL])
    },
    MethodSig {
        outputs: &["EncodedCertificates"],
        reads: false,
        ..rs("GetSystemCertificates", &[])
    },
    rs(
        "ImportInitialReplica",
        &[CS, ("InitialReplicationImportLocation", Str)],
    ),
    rs(
        "InitiateFailback",
        &[CS, RSD, ("RecoveryPointIdentifier", Str)],
    ),
    rs("InitiateFailover", &[CS, SNAP]),
    rs("ModifyAuthorizationEntry", &[AUTH]),
    rs("ModifyReplicationSettings", &[CS, RSD]),
    rs(
        "ModifyServiceSettings",
        &[(
            "SettingData",
            Instance("Msvm_ReplicationServiceSettingData"),
        )],
    ),
    rs(
        "RemoveAuthorizationEntry",
        &[("AllowedPrimaryHostSystem", Str)],
    ),
    rs("RemoveReplicationRelationship", &[CS]),
    rs("RemoveReplicationRelationshipEx", &[CS, REL]),
    rs("ResetReplicationStatistics", &[CS]),
    rs("ResetReplicationStatisticsEx", &[CS, REL]),
    rs("Resynchronize", &[CS, ("StartTime", Datetime)]),
    rs("ReverseReplicationRelationship", &[CS, RSD]),
    rs("RevertFailover", &[CS]),
    rs("SetAuthorizationEntry", &[CS, AUTH]),
    rs(
        "SetFailoverNetworkAdapterSettings",
        &[CS, ("NetworkSettings", StrArray)],
    ),
    rs(
        "StartReplication",
        &[
            CS,
            ("InitialReplicationType", U16),
            ("InitialReplicationExportLocation", Str),
            ("StartTime", Datetime),
        ],
    ),
    MethodSig {
        outputs: &["ResultingSystem", "Job"],
        reads: false,
        ..rs("TestReplicaSystem", &[CS, SNAP])
    },
    rs(
        "TestReplicationConnection",
        &[
            ("RecoveryConnectionPoint", Str),
            ("RecoveryServerPortNumber", U16),
            ("AuthenticationType", U16),
            ("CertificateThumbPrint", Str),
            ("BypassProxyServer", Bool),
        ],
    ),
    MethodSig {
        outputs: &[],
        reads: false,
        ..rs("StartService", &[])
    },
    MethodSig {
        outputs: &[],
        reads: false,
        ..rs("StopService", &[])
    },
    // DOC msvm-replicationservice-requeststatechange: RequestedState, [out] Job, TimeoutPeriod.
    rs(
        "RequestStateChange",
        &[("RequestedState", U16), ("TimeoutPeriod", Datetime)],
    ),
    MethodSig {
        class: WmiClass::ComputerSystem,
        name: "RequestReplicationStateChange",
        inputs: &[("RequestedState", U16), ("TimeoutPeriod", Datetime)],
        outputs: &["Job"],
        reads: false,
    },
    MethodSig {
        class: WmiClass::ComputerSystem,
        name: "RequestReplicationStateChangeEx",
        inputs: &[REL, ("RequestedState", U16), ("TimeoutPeriod", Datetime)],
        outputs: &["Job"],
        reads: false,
    },
    MethodSig {
        class: WmiClass::ComputerSystem,
        name: "RequestStateChange",
        inputs: &[("RequestedState", U16), ("TimeoutPeriod", Datetime)],
        outputs: &["Job"],
        reads: false,
    },
    MethodSig {
        class: WmiClass::VirtualSystemManagementService,
        name: "DestroySystem",
        inputs: &[("AffectedSystem", Ref("Msvm_ComputerSystem"))],
        outputs: &["Job"],
        reads: false,
    },
    MethodSig {
        class: WmiClass::ConcreteJob,
        name: "RequestStateChange",
        inputs: &[("RequestedState", U16), ("TimeoutPeriod", Datetime)],
        outputs: &[],
        reads: false,
    },
    MethodSig {
        class: WmiClass::ConcreteJob,
        name: "GetError",
        inputs: &[],
        outputs: &["Error"],
        reads: true,
    },
    // DOC geterrorex-msvm-concretejob: `uint32 GetErrorEx([out] string Errors[])`, what
    // real clients (os-win, the PowerShell module) call.
    MethodSig {
        class: WmiClass::ConcreteJob,
        name: "GetErrorEx",
        inputs: &[],
        outputs: &["Errors"],
        reads: true,
    },
];

pub fn signature(class: WmiClass, name: &str) -> Option<&'static MethodSig> {
    METHODS
        .iter()
        .find(|m| m.class == class && m.name.eq_ignore_ascii_case(name))
}

/// One argument value, as the edge decoded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Arg {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    /// An endpoint reference: the class and its selector keys.
    Ref {
        class: String,
        keys: BTreeMap<String, String>,
    },
    /// An embedded instance: class and properties (arrays as several values).
    Instance {
        class: String,
        props: BTreeMap<String, Vec<String>>,
    },
    List(Vec<String>),
}

impl Arg {
    fn text(&self) -> Option<String> {
        match self {
            Arg::Text(s) => Some(s.clone()),
            Arg::Int(i) => Some(i.to_string()),
            Arg::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// A decoded method call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub class: Option<WmiClass>,
    pub method: String,
    /// For `Msvm_ComputerSystem` methods: the VM the call is addressed to (selector Name).
    pub target_vm: Option<String>,
    /// For `Msvm_ConcreteJob` methods: the job addressed (selector InstanceID).
    pub target_job: Option<String>,
    pub args: BTreeMap<String, Arg>,
}

/// A refusal found while decoding: the code a host gives and why.
pub type DecodeError = (ReturnCode, String);

fn bad(code: ReturnCode, why: impl Into<String>) -> DecodeError {
    (code, why.into())
}

impl Call {
    fn arg(&self, name: &str) -> Option<&Arg> {
        self.args
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .filter(|a| **a != Arg::Null)
    }

    fn vm_ref(&self, name: &str) -> Result<String, DecodeError> {
        match self.arg(name) {
            Some(Arg::Ref { keys, .. }) => keys
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("Name"))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    bad(
                        ReturnCode::InvalidParameter,
                        format!("{name} has no Name selector"),
                    )
                }),
            // A WMI object path string (DCOM clients pass paths): the key named `Name`, not
            // the text after the first `Name="` (that is inside `CreationClassName="…"`). A
            // bare name is not a reference and is refused (issue 16 §5).
            Some(Arg::Text(t)) => object_path_keys(t)
                .and_then(|keys| {
                    keys.into_iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("Name"))
                        .map(|(_, v)| v)
                })
                .ok_or_else(|| {
                    bad(
                        ReturnCode::IncorrectDataType,
                        format!("{name} must be a reference to Msvm_ComputerSystem, not `{t}`"),
                    )
                }),
            Some(_) => Err(bad(
                ReturnCode::IncorrectDataType,
                format!("{name} must be a reference to Msvm_ComputerSystem"),
            )),
            None => Err(bad(
                ReturnCode::InvalidParameter,
                format!("{name} is required"),
            )),
        }
    }

    fn u16_arg(&self, name: &str) -> Result<Option<u16>, DecodeError> {
        match self.arg(name) {
            None => Ok(None),
            Some(a) => a
                .text()
                .and_then(|t| t.trim().parse::<u16>().ok())
                .map(Some)
                .ok_or_else(|| {
                    bad(
                        ReturnCode::IncorrectDataType,
                        format!("{name} must be a uint16"),
                    )
                }),
        }
    }

    /// A datetime parameter, as milliseconds since the epoch: the caller (the simulator's
    /// decoder, which knows the wire forms) turns a datetime it could read into `Arg::Int`;
    /// text left over is not a datetime. Absent or Null is `None`.
    fn datetime_arg(&self, name: &str) -> Result<Option<crate::time::Millis>, DecodeError> {
        match self.arg(name) {
            None | Some(Arg::Null) => Ok(None),
            Some(Arg::Int(ms)) => crate::time::Millis::try_from(*ms).map(Some).map_err(|_| {
                bad(
                    ReturnCode::IncorrectDataType,
                    format!("{name} is before the epoch"),
                )
            }),
            Some(other) => Err(bad(
                ReturnCode::IncorrectDataType,
                format!(
                    "{name} `{}` is not a datetime",
                    other.text().unwrap_or_default()
                ),
            )),
        }
    }

    fn text_arg(&self, name: &str) -> Option<String> {
        self.arg(name).and_then(Arg::text)
    }

    fn props(&self, name: &str) -> Result<Option<&BTreeMap<String, Vec<String>>>, DecodeError> {
        match self.arg(name) {
            None => Ok(None),
            Some(Arg::Instance { props, .. }) => Ok(Some(props)),
            Some(_) => Err(bad(
                ReturnCode::InvalidParameter,
                format!("{name} must be an embedded instance (CIM-XML INSTANCE)"),
            )),
        }
    }

    fn settings(&self) -> Result<SettingsPatch, DecodeError> {
        match self.props("ReplicationSettingData")? {
            None => Ok(SettingsPatch::default()),
            Some(p) => settings_from_props(p),
        }
    }

    fn relationship(&self) -> Result<RelIx, DecodeError> {
        let Some(p) = self.props("ReplicationRelationship")? else {
            return Ok(RelIx::Primary);
        };
        let id = prop(p, "InstanceID").unwrap_or_default();
        // InstanceID `Microsoft:<vmid>\HVR\<0|1>` (DOC msvm-replicationrelationship).
        match id.rsplit('\\').next().map(str::trim) {
            Some("1") => Ok(RelIx::Extended),
            Some("0") | Some("") | None => Ok(RelIx::Primary),
            Some(other) => Err(bad(
                ReturnCode::InvalidParameter,
                format!("relationship index {other} in {id} is not 0 or 1"),
            )),
        }
    }

    fn authorization(&self) -> Result<AuthorizationEntry, DecodeError> {
        let p = self.props("AuthorizationEntry")?.ok_or_else(|| {
            bad(
                ReturnCode::InvalidParameter,
                "AuthorizationEntry is required",
            )
        })?;
        Ok(AuthorizationEntry {
            allowed_primary_host_system: prop(p, "AllowedPrimaryHostSystem").ok_or_else(|| {
                bad(
                    ReturnCode::InvalidParameter,
                    "AllowedPrimaryHostSystem is required",
                )
            })?,
            trust_group: prop(p, "TrustGroup").unwrap_or_default(),
            replica_storage_location: prop(p, "ReplicaStorageLocation").unwrap_or_default(),
        })
    }

    fn snapshot(&self) -> Option<String> {
        match self.arg("SnapshotSettingData") {
            Some(Arg::Ref { keys, .. }) => keys
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("InstanceID"))
                .map(|(_, v)| v.clone()),
            Some(Arg::Text(t)) => Some(t.clone()),
            _ => None,
        }
    }

    /// The one mapping from a decoded call to an operation.
    pub fn to_operation(&self) -> Result<Operation, DecodeError> {
        use Operation as O;
        let class = self.class.unwrap_or(WmiClass::ReplicationService);
        let m = self.method.as_str();
        let sig = signature(class, m).ok_or_else(|| {
            bad(
                ReturnCode::NotSupported,
                format!("{}.{m} is not a method the simulator models", class.name()),
            )
        })?;
        let cs = || self.vm_ref("ComputerSystem");
        Ok(match (class, sig.name) {
            (WmiClass::ComputerSystem, name) => {
                let vm = self
                    .target_vm
                    .clone()
                    .ok_or_else(|| bad(ReturnCode::InvalidParameter, "the call names no VM"))?;
                let requested = self.u16_arg("RequestedState")?.ok_or_else(|| {
                    bad(ReturnCode::InvalidParameter, "RequestedState is required")
                })?;
                match name {
                    "RequestStateChange" => O::RequestStateChange { vm, requested },
                    "RequestReplicationStateChangeEx" => O::RequestReplicationStateChange {
                        vm,
                        rel: self.relationship()?,
                        requested,
                    },
                    _ => O::RequestReplicationStateChange {
                        vm,
                        rel: RelIx::Primary,
                        requested,
                    },
                }
            }
            (WmiClass::ConcreteJob, "RequestStateChange") => O::RequestJobStateChange {
                job: self
                    .target_job
                    .clone()
                    .ok_or_else(|| bad(ReturnCode::InvalidParameter, "the call names no job"))?,
                requested: self.u16_arg("RequestedState")?.ok_or_else(|| {
                    bad(ReturnCode::InvalidParameter, "RequestedState is required")
                })?,
            },
            (WmiClass::VirtualSystemManagementService, _) => O::DestroySystem {
                vm: self.vm_ref("AffectedSystem")?,
            },
            (_, "AddAuthorizationEntry") => O::AddAuthorizationEntry {
                entry: self.authorization()?,
            },
            (_, "ModifyAuthorizationEntry") => O::ModifyAuthorizationEntry {
                entry: self.authorization()?,
            },
            (_, "SetAuthorizationEntry") => O::SetAuthorizationEntry {
                vm: cs()?,
                entry: self.authorization()?,
            },
            (_, "RemoveAuthorizationEntry") => O::RemoveAuthorizationEntry {
                allowed_primary_host_system: self.text_arg("AllowedPrimaryHostSystem").ok_or_else(
                    || {
                        bad(
                            ReturnCode::InvalidParameter,
                            "AllowedPrimaryHostSystem is required",
                        )
                    },
                )?,
            },
            (_, "ChangeReplicationModeToPrimary") => {
                O::ChangeReplicationModeToPrimary { vm: cs()? }
            }
            (_, "CommitFailover") => O::CommitFailover { vm: cs()? },
            (_, "CreateReplicationRelationship") => O::CreateReplicationRelationship {
                vm: cs()?,
                settings: self.settings()?,
            },
            (_, "GetReplicationStatistics") => O::GetReplicationStatistics {
                vm: cs()?,
                rel: RelIx::Primary,
            },
            (_, "GetReplicationStatisticsEx") => O::GetReplicationStatistics {
                vm: cs()?,
                rel: self.relationship()?,
            },
            (_, "GetSystemCertificates") => O::GetSystemCertificates,
            (_, "ImportInitialReplica") => O::ImportInitialReplica {
                vm: cs()?,
                // importinitialreplica-msvm-replicationservice.md «from which the initial
                // replication is to be imported. This cannot be Null».
                location: self
                    .text_arg("InitialReplicationImportLocation")
                    .filter(|s| !s.trim().is_empty())
                    .ok_or_else(|| {
                        bad(
                            ReturnCode::InvalidParameter,
                            "InitialReplicationImportLocation cannot be Null (its class page says so)",
                        )
                    })?,
            },
            (_, "InitiateFailback") => O::InitiateFailback {
                vm: cs()?,
                settings: self.settings()?,
                recovery_point: self.text_arg("RecoveryPointIdentifier"),
            },
            (_, "InitiateFailover") => O::InitiateFailover {
                vm: cs()?,
                recovery_point: self.snapshot(),
            },
            (_, "ModifyReplicationSettings") => O::ModifyReplicationSettings {
                vm: cs()?,
                settings: self.settings()?,
            },
            (_, "ModifyServiceSettings") => O::ModifyServiceSettings {
                settings: match self.props("SettingData")? {
                    Some(p) => service_settings_from_props(p)?,
                    // DOC modifyservicesettings: SettingData carries the modified settings; a
                    // call without it has nothing to modify (INFERRED 32773).
                    None => {
                        return Err(bad(ReturnCode::InvalidParameter, "SettingData is required"));
                    }
                },
            },
            (_, "RemoveReplicationRelationship") => O::RemoveReplicationRelationship {
                vm: cs()?,
                rel: RelIx::Primary,
            },
            (_, "RemoveReplicationRelationshipEx") => O::RemoveReplicationRelationship {
                vm: cs()?,
                rel: self.relationship()?,
            },
            (_, "ResetReplicationStatistics") => O::ResetReplicationStatistics {
                vm: cs()?,
                rel: RelIx::Primary,
            },
            (_, "ResetReplicationStatisticsEx") => O::ResetReplicationStatistics {
                vm: cs()?,
                rel: self.relationship()?,
            },
            (_, "Resynchronize") => O::Resynchronize {
                vm: cs()?,
                start_time: self.datetime_arg("StartTime")?,
            },
            (_, "ReverseReplicationRelationship") => O::ReverseReplicationRelationship {
                vm: cs()?,
                settings: self.settings()?,
            },
            (_, "RevertFailover") => O::RevertFailover { vm: cs()? },
            (_, "SetFailoverNetworkAdapterSettings") => {
                O::SetFailoverNetworkAdapterSettings { vm: cs()? }
            }
            (_, "StartReplication") => O::StartReplication {
                vm: cs()?,
                // startreplication-msvm-replicationservice.md «The type of transfer to be used for
                // performing the initial replication»; the page gives no default, so a call
                // without one is refused (INFERRED).
                initial_type: self.u16_arg("InitialReplicationType")?.ok_or_else(|| {
                    bad(
                        ReturnCode::InvalidParameter,
                        "InitialReplicationType is required",
                    )
                })?,
                start_time: self.datetime_arg("StartTime")?,
            },
            (_, "TestReplicaSystem") => O::TestReplicaSystem {
                vm: cs()?,
                recovery_point: self.snapshot(),
            },
            (_, "TestReplicationConnection") => O::TestReplicationConnection {
                connection_point: self.text_arg("RecoveryConnectionPoint").ok_or_else(|| {
                    bad(
                        ReturnCode::InvalidParameter,
                        "RecoveryConnectionPoint is required",
                    )
                })?,
                port: self.u16_arg("RecoveryServerPortNumber")?.unwrap_or(80),
                auth: self.u16_arg("AuthenticationType")?.unwrap_or(1),
            },
            (_, "StartService") => O::StartService,
            (_, "StopService") => O::StopService,
            (_, "RequestStateChange") => O::ServiceStateChange {
                requested: self.u16_arg("RequestedState")?.ok_or_else(|| {
                    bad(ReturnCode::InvalidParameter, "RequestedState is required")
                })?,
            },
            (_, other) => {
                return Err(bad(
                    ReturnCode::NotSupported,
                    format!("{other} is not modelled"),
                ));
            }
        })
    }
}

fn prop(p: &BTreeMap<String, Vec<String>>, name: &str) -> Option<String> {
    p.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().cloned())
}

fn parse_num(p: &BTreeMap<String, Vec<String>>, name: &str) -> Result<Option<u32>, DecodeError> {
    match prop(p, name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<u32>().map(Some).map_err(|_| {
            bad(
                ReturnCode::IncorrectDataType,
                format!("{name} `{v}` is not a number"),
            )
        }),
    }
}

fn parse_bool(p: &BTreeMap<String, Vec<String>>, name: &str) -> Result<Option<bool>, DecodeError> {
    match prop(p, name) {
        None => Ok(None),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(bad(
                ReturnCode::IncorrectDataType,
                format!("{name} `{v}` is not a boolean"),
            )),
        },
    }
}

/// `Msvm_ReplicationServiceSettingData` properties (DOC names) to a service settings patch.
pub fn service_settings_from_props(
    p: &BTreeMap<String, Vec<String>>,
) -> Result<ServiceSettingsPatch, DecodeError> {
    Ok(ServiceSettingsPatch {
        recovery_server_enabled: parse_bool(p, "RecoveryServerEnabled")?,
        allowed_authentication_type: parse_num(p, "AllowedAuthenticationType")?,
        certificate_thumbprint: prop(p, "CertificateThumbPrint"),
        http_port: parse_num(p, "HttpPort")?,
        https_port: parse_num(p, "HttpsPort")?,
        monitoring_interval: parse_num(p, "MonitoringInterval")?,
    })
}

/// `Msvm_ReplicationSettingData` properties (DOC names) to a settings patch.
pub fn settings_from_props(
    p: &BTreeMap<String, Vec<String>>,
) -> Result<SettingsPatch, DecodeError> {
    Ok(SettingsPatch {
        primary_connection_point: prop(p, "PrimaryConnectionPoint"),
        recovery_connection_point: prop(p, "RecoveryConnectionPoint"),
        recovery_server_port: parse_num(p, "RecoveryServerPortNumber")?,
        authentication_type: parse_num(p, "AuthenticationType")?,
        certificate_thumbprint: prop(p, "CertificateThumbPrint"),
        compression_enabled: parse_bool(p, "CompressionEnabled")?,
        bypass_proxy_server: parse_bool(p, "BypassProxyServer")?,
        replicate_host_kvp_items: parse_bool(p, "ReplicateHostKvpItems")?,
        recovery_history: parse_num(p, "RecoveryHistory")?,
        replication_interval: parse_num(p, "ReplicationInterval")?,
        application_consistent_snapshot_interval: parse_num(
            p,
            "ApplicationConsistentSnapshotInterval",
        )?,
        auto_resynchronize_enabled: parse_bool(p, "AutoResynchronizeEnabled")?,
        included_disks: p
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("IncludedDisks"))
            .map(|(_, v)| v.clone()),
    })
}

/// The key bindings of a WMI object path, `[\\\\HOST\\NAMESPACE:]Class.Key="v",Key2=5`
/// (`\\"` and `\\\\` escapes inside quotes). `None` when the text is not such a path (a
/// bare name, a class without keys, unbalanced quotes).
pub fn object_path_keys(path: &str) -> Option<Vec<(String, String)>> {
    // The keys start after the last `.` before the first `=` (a host name in the namespace
    // part may hold dots; a key value may hold `:`).
    let first_eq = path.find('=')?;
    let dot = path[..first_eq].rfind('.')?;
    let mut rest = &path[dot + 1..];
    let mut keys = Vec::new();
    loop {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = match after.chars().next() {
            Some('"') => {
                chars.next();
                let mut close = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next()?.1),
                        '"' => {
                            close = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                close?
            }
            _ => {
                let end = after.find(',').unwrap_or(after.len());
                value.push_str(after[..end].trim());
                end
            }
        };
        keys.push((key.to_string(), value));
        rest = after[end..].trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None if rest.is_empty() => return Some(keys),
            None => return None,
        }
    }
}

#[cfg(test)]
mod object_path_tests {
    use super::object_path_keys;

    #[test]
    fn object_paths_resolve_the_key_they_name() {
        let k = |p: &str| {
            object_path_keys(p).map(|v| {
                v.into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            k(
                r#"\\HV\root\virtualization\v2:Msvm_ComputerSystem.CreationClassName="Msvm_ComputerSystem",Name="6B1F""#
            ),
            Some(vec![
                "CreationClassName=Msvm_ComputerSystem".into(),
                "Name=6B1F".into()
            ])
        );
        assert_eq!(
            k(r#"Msvm_X.Name="a\"b",N=5"#),
            Some(vec!["Name=a\"b".into(), "N=5".into()])
        );
        for bare in [
            "6B1F4A52-1C0D",
            "Msvm_ComputerSystem",
            r#"C.Name="open"#,
            "C.=x",
            "",
        ] {
            assert_eq!(k(bare), None, "{bare}");
        }
    }
}
