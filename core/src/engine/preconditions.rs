//! The table's preconditions, checked before any row, and the argument checks they name.

use super::*;

impl ReplicationSettings {
    /// Missing properties keep the existing values (INFERRED, docs/facts.md#embedded-instances).
    pub fn patched(&self, p: &SettingsPatch) -> ReplicationSettings {
        let mut s = self.clone();
        if let Some(v) = &p.primary_connection_point {
            s.primary_connection_point = v.clone();
        }
        if let Some(v) = &p.recovery_connection_point {
            s.recovery_connection_point = v.clone();
        }
        if let Some(v) = p.recovery_server_port.and_then(|v| u16::try_from(v).ok()) {
            s.recovery_server_port = v;
        }
        if let Some(v) = p
            .authentication_type
            .and_then(|v| AuthenticationType::from_number(v).ok())
        {
            s.authentication_type = v;
        }
        if let Some(v) = &p.certificate_thumbprint {
            s.certificate_thumbprint = v.clone();
        }
        if let Some(v) = p.compression_enabled {
            s.compression_enabled = v;
        }
        if let Some(v) = p.bypass_proxy_server {
            s.bypass_proxy_server = v;
        }
        if let Some(v) = p.replicate_host_kvp_items {
            s.replicate_host_kvp_items = v;
        }
        if let Some(v) = p.recovery_history.and_then(|v| u16::try_from(v).ok()) {
            s.recovery_history = v;
        }
        if let Some(v) = p.replication_interval.and_then(|v| u16::try_from(v).ok()) {
            s.replication_interval = v;
        }
        if let Some(v) = p
            .application_consistent_snapshot_interval
            .and_then(|v| u16::try_from(v).ok())
        {
            s.application_consistent_snapshot_interval = v;
        }
        if let Some(v) = p.auto_resynchronize_enabled {
            s.auto_resynchronize_enabled = v;
        }
        if let Some(v) = &p.included_disks {
            s.included_disks = v.clone();
        }
        s
    }
}

/// Argument checks made before any rule is looked at. Each names its source.
pub(super) fn validate_settings(p: &SettingsPatch) -> Result<(), String> {
    // msvm-replicationsettingdata.md «Replication interval of a replication relationship in
    // seconds. Valid values are:», then 30, 300 and 900 on lines of their own.
    if let Some(v) = p.replication_interval
        && ![30, 300, 900].contains(&v)
    {
        return Err(format!(
            "ReplicationInterval {v} is not one of 30, 300, 900 (DOC msvm-replicationsettingdata)"
        ));
    }
    // msvm-replicationsettingdata.md «Valid values are from 0 to 24» (RecoveryHistory).
    if let Some(v) = p.recovery_history
        && v > 24
    {
        return Err(format!(
            "RecoveryHistory {v} is outside 0..=24 (DOC msvm-replicationsettingdata)"
        ));
    }
    // AuthenticationType: msvm-replicationsettingdata.md «Kerberos authentication (1)» and
    // msvm-replicationsettingdata.md «Certificate based authentication (2)», nothing else.
    if let Some(v) = p.authentication_type
        && AuthenticationType::from_number(v).is_err()
    {
        return Err(format!(
            "AuthenticationType {v} is not 1 (Kerberos) or 2 (Certificate), the two values Msvm_ReplicationSettingData documents"
        ));
    }
    // PS: certificate authentication requires a thumbprint (DECOMP 44358932247).
    if p.authentication_type == Some(2)
        && p.certificate_thumbprint
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        return Err("AuthenticationType 2 (Certificate) needs CertificateThumbPrint (PS check, DECOMP 44358932247)".into());
    }
    if let Some(v) = p.recovery_server_port
        && v > u32::from(u16::MAX)
    {
        return Err(format!("RecoveryServerPortNumber {v} is not a uint16"));
    }
    // msvm-replicationsettingdata.md «Valid values are from 1 hour to 12 hours»; 0 = off is
    // INFERRED (the page names no value for "no application-consistent points").
    if let Some(v) = p.application_consistent_snapshot_interval
        && v > 12
    {
        return Err(format!(
            "ApplicationConsistentSnapshotInterval {v} is outside 0..=12 hours (Msvm_ReplicationSettingData documents 1 to 12; 0 is taken as off)"
        ));
    }
    Ok(())
}

/// ModifyServiceSettings' argument checks (DOC msvm-replicationservicesettingdata).
pub(super) fn validate_service_settings(p: &ServiceSettingsPatch) -> Result<(), String> {
    // DOC: AllowedAuthenticationType 0 not defined, 1 Kerberos, 2 certificate, 3 both.
    if let Some(v) = p.allowed_authentication_type
        && v > 3
    {
        return Err(format!(
            "AllowedAuthenticationType {v} is not 0..=3 (DOC msvm-replicationservicesettingdata)"
        ));
    }
    // DOC: MonitoringInterval "minimum valid value is 60 minutes (3600 seconds), and the
    // maximum valid value is 7 days (604800 seconds)".
    if let Some(v) = p.monitoring_interval
        && !(3600..=604_800).contains(&v)
    {
        return Err(format!(
            "MonitoringInterval {v} is outside 3600..=604800 seconds (DOC msvm-replicationservicesettingdata)"
        ));
    }
    // DOC: CertificateThumbPrint MaxLen 128.
    if let Some(t) = &p.certificate_thumbprint
        && t.chars().count() > 128
    {
        return Err("CertificateThumbPrint is longer than 128 characters (DOC MaxLen)".into());
    }
    for (name, v) in [("HttpPort", p.http_port), ("HttpsPort", p.https_port)] {
        if let Some(v) = v
            && !(1..=u32::from(u16::MAX)).contains(&v)
        {
            return Err(format!("{name} {v} is not a port number (uint16, not 0)"));
        }
    }
    Ok(())
}

/// The settings checks, for topology validation (same rules as a method call).
pub fn validate_settings_public(p: &SettingsPatch) -> Result<(), String> {
    validate_settings(p)
}

pub(super) fn rp_matches(rp: &RecoveryPoint, key: &str) -> bool {
    let key = key.trim();
    rp.id.eq_ignore_ascii_case(key)
        || rp
            .id
            .strip_prefix("Microsoft:")
            .is_some_and(|g| g.eq_ignore_ascii_case(key))
}

impl World {
    /// Whether a precondition of the table fails for this call: the code and the reason.
    pub(super) fn precondition_fails(
        &self,
        p: &table::Precondition,
        host: &str,
        vm: Option<&str>,
        op: &Operation,
        kind: Result<OpKind, u32>,
    ) -> Option<(u32, String)> {
        let code = match p.answered {
            table::Answered::Code(c) => c,
            table::Answered::ProfileBusyCode => self.profile.busy_code,
            table::Answered::PageCodeForValue => kind.err().unwrap_or(32773),
        };
        let why: String = match p.check {
            Check::ValueDocumented => {
                kind.err()?;
                "the requested value is not one the method page documents".into()
            }
            Check::ServiceRunning => {
                if self.hosts.get(host).is_none_or(|h| h.service_running) {
                    return None;
                }
                "the replication service is stopped (StopService or RequestStateChange); INFERRED 32777".into()
            }
            Check::VmKnown => {
                let named = op.vm()?;
                if vm.is_some() {
                    return None;
                }
                format!("no VM {named} on {host}")
            }
            Check::SettingsValid => validate_settings(op.settings()?).err()?,
            Check::ServiceSettingsValid => {
                validate_service_settings(op.args().service_settings?).err()?
            }
            Check::RecoveryConnectionPointGiven => {
                let point = op.args().creates?.recovery_connection_point.as_deref();
                if point.is_some_and(|s| !s.trim().is_empty()) {
                    return None;
                }
                "CreateReplicationRelationship needs RecoveryConnectionPoint (INFERRED 32773)"
                    .into()
            }
            Check::RecoveryPointKnown => {
                let (key, vm) = (op.recovery_point()?, vm?);
                let known = self
                    .vm(host, vm)
                    .is_some_and(|v| v.recovery_points.iter().any(|rp| rp_matches(rp, key)));
                if known {
                    return None;
                }
                format!("unknown recovery point {key} (docs/facts.md#recovery-points: 32773)")
            }
            Check::JobKnown => {
                let (job, _) = op.args().job?;
                if self.job(host, job).is_some() {
                    return None;
                }
                format!("no job {job} on {host}")
            }
            Check::VmIdle => {
                let busy = self.vm(host, vm?)?.busy_with.clone()?;
                format!("the VM is busy with job {busy}")
            }
        };
        Some((code, why))
    }
}
