//! The values a call carries and the names the model gives things: shared by the operations
//! (`ops`), the world (`world`, which re-exports them) and the events, so none of those has to
//! reach into another.

use serde::{Deserialize, Serialize};

pub type HostName = String;
pub type VmId = String;
pub type JobId = String;

/// Index of a relationship on a VM: 0 the primary relationship (`\HVR\0`), 1 the extended one
/// (`\HVR\1`) (DOC msvm-replicationrelationship, InstanceID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RelIx {
    Primary = 0,
    Extended = 1,
}

impl RelIx {
    pub const fn index(self) -> usize {
        self as usize
    }
    pub fn from_index(i: u32) -> Option<RelIx> {
        match i {
            0 => Some(RelIx::Primary),
            1 => Some(RelIx::Extended),
            _ => None,
        }
    }
}

/// A partial settings instance, as a client sends it embedded in a method call. Missing properties
/// keep the values of the existing settings (INFERRED, docs/facts.md#embedded-instances). Field
/// names are the WMI property names, so topology files read like the class page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase", deny_unknown_fields)]
pub struct SettingsPatch {
    pub primary_connection_point: Option<String>,
    pub recovery_connection_point: Option<String>,
    #[serde(rename = "RecoveryServerPortNumber")]
    pub recovery_server_port: Option<u32>,
    pub authentication_type: Option<u32>,
    #[serde(rename = "CertificateThumbPrint")]
    pub certificate_thumbprint: Option<String>,
    pub compression_enabled: Option<bool>,
    pub bypass_proxy_server: Option<bool>,
    pub replicate_host_kvp_items: Option<bool>,
    pub recovery_history: Option<u32>,
    pub replication_interval: Option<u32>,
    pub application_consistent_snapshot_interval: Option<u32>,
    pub auto_resynchronize_enabled: Option<bool>,
    pub included_disks: Option<Vec<String>>,
}

/// An authorization entry of a recovery server (`Msvm_ReplicationAuthorizationSettingData`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationEntry {
    pub allowed_primary_host_system: String,
    pub trust_group: String,
    pub replica_storage_location: String,
}

/// A partial `Msvm_ReplicationServiceSettingData`, as ModifyServiceSettings sends it embedded
/// (DOC modifyservicesettings: "a string representation of the Msvm_ReplicationServiceSettingData
/// class that contains the modified setting data"). Missing properties keep their values
/// (INFERRED, as for `SettingsPatch`). Field names are the WMI property names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase", deny_unknown_fields)]
pub struct ServiceSettingsPatch {
    pub recovery_server_enabled: Option<bool>,
    pub allowed_authentication_type: Option<u32>,
    #[serde(rename = "CertificateThumbPrint")]
    pub certificate_thumbprint: Option<String>,
    pub http_port: Option<u32>,
    pub https_port: Option<u32>,
    pub monitoring_interval: Option<u32>,
}
