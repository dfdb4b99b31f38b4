//! What a host showed: its VMs (`Msvm_ComputerSystem`), their relationships
//! (`Msvm_ReplicationRelationship`) and recovery points (`Msvm_VirtualSystemSettingData`
//! snapshots of type `Microsoft:Hyper-V:Snapshot:Replica:*`), turned into core's
//! [`VmView`] so that the wire and the model are checked by the same code. The reading itself
//! is [`crate::target::HostConn::snapshot`]: this module holds no connection, so the lab's
//! decisions (`lab.rs`) can use what was observed without reaching the wire.
//!
//! Everything here reads server data: unknown enum numbers and missing properties become
//! `None` (and a note), never a panic.

use std::collections::BTreeMap;

use replica_core::scenario::VmView;
use replica_core::{
    EnabledState, ReplicationHealth, ReplicationMode, ReplicationState, ReplicationType,
};

use replica_client::wsman::Instance;
use replica_core::world::RecoveryPointKind;

/// The `VirtualSystemType` prefix of a replica recovery point.
pub const RECOVERY_POINT_TYPE: &str = "Microsoft:Hyper-V:Snapshot:Replica:";

/// One VM as `Msvm_ComputerSystem` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct VmRow {
    pub guid: String,
    pub name: String,
    pub mode: Option<ReplicationMode>,
    pub power: Option<EnabledState>,
    pub health: Option<ReplicationHealth>,
    pub failed_over_type: Option<ReplicationType>,
}

/// What one host showed at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostSnapshot {
    pub vms: Vec<VmRow>,
    /// `(VM GUID upper-case, relationship index)` → state.
    pub rels: BTreeMap<(String, u32), Option<ReplicationState>>,
    /// VM GUID upper-case → recovery point ids, oldest first.
    pub points: BTreeMap<String, Vec<String>>,
    /// VM GUID upper-case → the `VirtualSystemType` of its latest recovery point (a planned
    /// failover leaves a `…:PlannedFailover` point, and what a later reverse does depends on it).
    pub latest_point_type: BTreeMap<String, String>,
    /// Values the runner could not read (unknown enum numbers...).
    pub notes: Vec<String>,
}

/// `8-4-4-4-12` hex digits: a VM's `Name` (the host's own `Msvm_ComputerSystem` has the
/// computer name there).
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn enum_of<T>(
    inst: &Instance,
    prop: &str,
    from: fn(u32) -> Result<T, replica_core::UnknownValue>,
    notes: &mut Vec<String>,
) -> Option<T> {
    let raw = inst.get(prop)?;
    if raw.is_null() {
        return None;
    }
    match raw.as_u32().map(from) {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            notes.push(format!("{}.{prop}: {e}", inst.class));
            None
        }
        None => {
            notes.push(format!("{}.{prop}: not a number: {raw:?}", inst.class));
            None
        }
    }
}

/// `Microsoft:<GUID>\HVR\<n>` → `(GUID, n)`.
pub fn parse_relationship_id(id: &str) -> Option<(String, u32)> {
    let rest = id.trim().strip_prefix("Microsoft:")?;
    let mut parts = rest.split('\\');
    let guid = parts.next()?;
    if parts.next()? != "HVR" {
        return None;
    }
    let ix = parts.next()?.trim().parse().ok()?;
    Some((guid.to_ascii_uppercase(), ix))
}

/// Builds a snapshot from the three enumerations (separated from the IO for tests).
pub fn snapshot_from(
    systems: &[Instance],
    relationships: &[Instance],
    settings: &[Instance],
) -> HostSnapshot {
    let mut snap = HostSnapshot::default();
    for cs in systems {
        let Some(guid) = cs.text("Name").map(str::trim).filter(|n| is_guid(n)) else {
            continue;
        };
        let notes = &mut snap.notes;
        let row = VmRow {
            guid: guid.to_ascii_uppercase(),
            name: cs.text("ElementName").unwrap_or_default().to_string(),
            mode: enum_of(cs, "ReplicationMode", ReplicationMode::from_number, notes),
            power: enum_of(cs, "EnabledState", EnabledState::from_number, notes),
            health: enum_of(
                cs,
                "ReplicationHealth",
                ReplicationHealth::from_number,
                notes,
            ),
            failed_over_type: enum_of(
                cs,
                "FailedOverReplicationType",
                ReplicationType::from_number,
                notes,
            ),
        };
        snap.vms.push(row);
    }
    for r in relationships {
        let Some(key) = r.text("InstanceID").and_then(parse_relationship_id) else {
            snap.notes.push(format!(
                "Msvm_ReplicationRelationship with InstanceID {:?} is not Microsoft:<GUID>\\HVR\\<n>",
                r.text("InstanceID")
            ));
            continue;
        };
        let state = enum_of(
            r,
            "ReplicationState",
            ReplicationState::from_number,
            &mut snap.notes,
        );
        snap.rels.insert(key, state);
    }
    let mut points: BTreeMap<String, Vec<(String, usize, String, String)>> = BTreeMap::new();
    for (order, s) in settings.iter().enumerate() {
        let is_point = s
            .text("VirtualSystemType")
            .is_some_and(|t| t.starts_with(RECOVERY_POINT_TYPE));
        let (Some(vm), Some(id)) = (s.text("VirtualSystemIdentifier"), s.text("InstanceID")) else {
            continue;
        };
        if !is_point {
            continue;
        }
        let created = s.text("CreationTime").unwrap_or_default().to_string();
        let kind = s.text("VirtualSystemType").unwrap_or_default().to_string();
        points
            .entry(vm.trim().to_ascii_uppercase())
            .or_default()
            .push((created, order, id.to_string(), kind));
    }
    for (vm, mut list) in points {
        list.sort();
        if let Some((_, _, _, kind)) = list.last() {
            snap.latest_point_type.insert(vm.clone(), kind.clone());
        }
        snap.points
            .insert(vm, list.into_iter().map(|(_, _, id, _)| id).collect());
    }
    snap
}

impl HostSnapshot {
    /// A VM by GUID or, failing that, by ElementName (as the model's `find_vm`).
    pub fn find(&self, key: &str) -> Option<&VmRow> {
        let upper = key.trim().to_ascii_uppercase();
        self.vms
            .iter()
            .find(|v| v.guid == upper)
            .or_else(|| self.vms.iter().find(|v| v.name == key))
    }

    /// Recovery point ids of a VM, oldest first.
    pub fn points(&self, guid: &str) -> Vec<String> {
        self.points
            .get(&guid.to_ascii_uppercase())
            .cloned()
            .unwrap_or_default()
    }

    /// The test VM (mode TestReplica) of this host, if any.
    pub fn test_vm(&self) -> Option<String> {
        let mut tests: Vec<&VmRow> = self
            .vms
            .iter()
            .filter(|v| v.mode == Some(ReplicationMode::TestReplica))
            .collect();
        tests.sort_by(|a, b| a.guid.cmp(&b.guid));
        tests.first().map(|v| v.guid.clone())
    }

    /// Whether a VM's latest recovery point is the one a planned failover left.
    pub fn latest_point_planned(&self, key: &str) -> bool {
        self.find(key)
            .and_then(|row| self.latest_point_type.get(&row.guid))
            .is_some_and(|t| t == RecoveryPointKind::Planned.virtual_system_type())
    }

    /// The view of a VM, comparable with [`replica_core::scenario::model_view`].
    pub fn view(&self, key: &str) -> VmView {
        match self.find(key) {
            Some(row) => self.view_of(row),
            None => VmView::default(),
        }
    }

    fn view_of(&self, row: &VmRow) -> VmView {
        let state = |ix: u32| self.rels.get(&(row.guid.clone(), ix)).copied().flatten();
        let states = [state(0), state(1)];
        let has_rel = self.rels.contains_key(&(row.guid.clone(), 0));
        let test_name = format!("{} - Test", row.name);
        VmView {
            exists: true,
            mode: row.mode,
            states,
            power: row.power,
            health: row.health,
            recovery_points: self.points.get(&row.guid).map_or(0, Vec::len),
            // The model has no FailedOverReplicationType without a relationship; the class
            // shows 0 (None) then.
            failed_over_type: if has_rel { row.failed_over_type } else { None },
            has_test_replica: row.mode != Some(ReplicationMode::TestReplica)
                && self
                    .vms
                    .iter()
                    .any(|v| v.mode == Some(ReplicationMode::TestReplica) && v.name == test_name),
        }
    }

    /// Every VM's view, by ElementName (GUIDs of created VMs differ between targets).
    pub fn views(&self) -> BTreeMap<String, VmView> {
        self.vms
            .iter()
            .map(|v| (v.name.clone(), self.view_of(v)))
            .collect()
    }
}

/// One line describing the differences between two views, empty when they agree on
/// `fields`.
pub fn view_diff(got: &VmView, want: &VmView, full: bool) -> Vec<String> {
    let mut out = Vec::new();
    let show = |o: Option<String>| o.unwrap_or_else(|| "-".into());
    if got.exists != want.exists {
        out.push(format!("exists {} (expected {})", got.exists, want.exists));
        return out;
    }
    if !got.exists {
        return out;
    }
    let mut diff = |what: &str, g: String, w: String| {
        if g != w {
            out.push(format!("{what} {g} (expected {w})"));
        }
    };
    diff(
        "mode",
        show(got.mode.map(|m| m.to_string())),
        show(want.mode.map(|m| m.to_string())),
    );
    for ix in 0..2 {
        diff(
            &format!("state of relationship {ix}"),
            show(got.states[ix].map(|s| s.to_string())),
            show(want.states[ix].map(|s| s.to_string())),
        );
    }
    diff(
        "power",
        show(got.power.map(|p| p.to_string())),
        show(want.power.map(|p| p.to_string())),
    );
    if full {
        diff(
            "health",
            show(got.health.map(|h| h.to_string())),
            show(want.health.map(|h| h.to_string())),
        );
        diff(
            "recovery points",
            got.recovery_points.to_string(),
            want.recovery_points.to_string(),
        );
        diff(
            "FailedOverReplicationType",
            show(got.failed_over_type.map(|t| t.to_string())),
            show(want.failed_over_type.map(|t| t.to_string())),
        );
        diff(
            "test replica present",
            got.has_test_replica.to_string(),
            want.has_test_replica.to_string(),
        );
    }
    out
}

impl replica_core::scenario::HostView for HostSnapshot {
    fn vm_guid(&self, name: &str) -> Option<String> {
        self.find(name).map(|v| v.guid.clone())
    }
    fn recovery_points(&self, guid: &str) -> Vec<String> {
        self.points(guid)
    }
    fn test_vm(&self) -> Option<String> {
        HostSnapshot::test_vm(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replica_client::wsman::PropValue;

    fn inst(class: &str, props: &[(&str, &str)]) -> Instance {
        Instance {
            class: class.into(),
            namespace: String::new(),
            props: props
                .iter()
                .map(|(k, v)| (k.to_string(), PropValue::Text(v.to_string())))
                .collect(),
        }
    }

    const G: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01";

    #[test]
    fn views_from_instances() {
        let systems = vec![
            inst(
                "Msvm_ComputerSystem",
                &[("Name", "HV-REPLICA"), ("ElementName", "HV-REPLICA")],
            ),
            inst(
                "Msvm_ComputerSystem",
                &[
                    ("Name", &G.to_lowercase()),
                    ("ElementName", "app-01"),
                    ("ReplicationMode", "2"),
                    ("EnabledState", "3"),
                    ("ReplicationHealth", "1"),
                    ("FailedOverReplicationType", "0"),
                    ("ReplicationState", "3"),
                ],
            ),
            inst(
                "Msvm_ComputerSystem",
                &[
                    ("Name", "00000000-0000-0000-0000-000000000001"),
                    ("ElementName", "app-01 - Test"),
                    ("ReplicationMode", "3"),
                    ("EnabledState", "99"),
                ],
            ),
        ];
        let rels = vec![
            inst(
                "Msvm_ReplicationRelationship",
                &[
                    ("InstanceID", &format!("Microsoft:{G}\\HVR\\0")),
                    ("ReplicationState", "3"),
                ],
            ),
            inst("Msvm_ReplicationRelationship", &[("InstanceID", "junk")]),
        ];
        let vssd = vec![
            inst(
                "Msvm_VirtualSystemSettingData",
                &[
                    ("VirtualSystemIdentifier", G),
                    ("InstanceID", "Microsoft:B"),
                    (
                        "VirtualSystemType",
                        "Microsoft:Hyper-V:Snapshot:Replica:Standard",
                    ),
                    ("CreationTime", "20260101000200.000000+000"),
                ],
            ),
            inst(
                "Msvm_VirtualSystemSettingData",
                &[
                    ("VirtualSystemIdentifier", G),
                    ("InstanceID", "Microsoft:A"),
                    (
                        "VirtualSystemType",
                        "Microsoft:Hyper-V:Snapshot:Replica:Standard",
                    ),
                    ("CreationTime", "20260101000100.000000+000"),
                ],
            ),
            inst(
                "Msvm_VirtualSystemSettingData",
                &[
                    ("VirtualSystemIdentifier", G),
                    ("InstanceID", "Microsoft:X"),
                    ("VirtualSystemType", "Microsoft:Hyper-V:System:Realized"),
                ],
            ),
        ];
        let snap = snapshot_from(&systems, &rels, &vssd);
        assert_eq!(snap.vms.len(), 2, "the host itself is not a VM");
        assert_eq!(snap.points(G), vec!["Microsoft:A", "Microsoft:B"]);
        let v = snap.view("app-01");
        assert!(v.exists);
        assert_eq!(v.mode, Some(ReplicationMode::Replica));
        assert_eq!(v.states, [Some(ReplicationState::Replicating), None]);
        assert_eq!(v.power, Some(EnabledState::Disabled));
        assert_eq!(v.recovery_points, 2);
        assert_eq!(v.failed_over_type, Some(ReplicationType::None));
        assert!(v.has_test_replica);
        assert_eq!(snap.view(G), v, "by GUID too");
        assert!(!snap.view("nope").exists);
        assert_eq!(
            snap.test_vm().as_deref(),
            Some("00000000-0000-0000-0000-000000000001")
        );
        // EnabledState 99 and the bad InstanceID are notes, not panics.
        assert_eq!(snap.notes.len(), 2, "{:?}", snap.notes);
        let t = snap.view("app-01 - Test");
        assert_eq!(t.power, None);
        assert!(!t.has_test_replica);
        assert_eq!(t.failed_over_type, None);
    }

    #[test]
    fn diffs() {
        let a = VmView {
            exists: true,
            mode: Some(ReplicationMode::Primary),
            ..VmView::default()
        };
        let mut b = a.clone();
        assert!(view_diff(&a, &b, true).is_empty());
        b.recovery_points = 3;
        assert!(view_diff(&a, &b, false).is_empty());
        assert_eq!(view_diff(&a, &b, true).len(), 1);
        b.exists = false;
        assert_eq!(
            view_diff(&a, &b, true),
            vec!["exists true (expected false)"]
        );
    }
}
