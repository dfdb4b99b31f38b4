//! The readable WMI classes: each simulated host's view of the world as `Msvm_*` instances,
//! with the properties real clients read (docs/facts.md#replication-api).
//! Views only: every value comes from `replica-core`'s world.

use crate::schema::{self, ClassDef, Served};
use crate::wsman::Epr;
use crate::wsman::cimxml::{self, CimValue};
use crate::wsman::writer::{self, Instance, ReplyHeader, Value};
use replica_core::world::{Host, Job, RecoveryPoint, RelIx, Relationship, ReplicationSettings, Vm};
use replica_core::{EnabledState, JobState, World};
use std::borrow::Cow;

pub const NAMESPACE: &str = "root/virtualization/v2";
pub const CLASS_BASE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/";

/// The classes a client can enumerate (and get, but for associations), from their
/// declarations in `schema`.
pub fn served() -> impl Iterator<Item = &'static ClassDef> {
    schema::CLASSES
        .iter()
        .filter(|c| c.served != Served::Embedded)
}

pub fn class_uri(class: &str) -> String {
    format!("{CLASS_BASE}{class}")
}

/// The class named by a resource URI under `root/virtualization/v2`, case-insensitively.
pub fn class_of_uri(uri: &str) -> Option<&'static str> {
    let rest = uri.strip_prefix(CLASS_BASE).or_else(|| {
        // Some clients spell the base with different case (WinRM is case-insensitive here).
        let lower = uri.to_ascii_lowercase();
        lower
            .starts_with(&CLASS_BASE.to_ascii_lowercase())
            .then(|| &uri[CLASS_BASE.len()..])
    })?;
    served()
        .map(|c| c.name)
        .find(|c| c.eq_ignore_ascii_case(rest))
}

pub fn keys_of(class: &str) -> &'static [&'static str] {
    schema::def(class).map_or(&[], |c| c.keys)
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(Cow::Owned(s.into()))
}
/// A renderer's constant text, borrowed rather than copied per instance.
fn fixed(s: &'static str) -> Value {
    Value::Text(Cow::Borrowed(s))
}
/// An empty string is a NULL property (real hosts send `xsi:nil` for unset strings).
fn text_or_null(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { text(s) }
}

fn int(i: impl Into<i64>) -> Value {
    Value::Int(i.into())
}
fn time(t: Option<u64>) -> Value {
    t.map_or(Value::Null, |ms| Value::Datetime(ms as i64))
}

/// An instance of a declared class: the renderer gives the values that come from the world,
/// the declaration supplies every other property.
fn inst(class: &'static str, computed: Vec<(&'static str, Value)>) -> Rendered {
    Rendered {
        class,
        def: schema::def(class),
        computed,
    }
}

/// An instance as its renderer gives it: the class's declaration and the values from the
/// world. Matching selectors, reading a property and writing a GetResponse need no more, so
/// the full instance (every declared property, most of them constants) is built only where
/// one is listed or kept: a Get or a method call on one instance builds none.
pub struct Rendered {
    class: &'static str,
    def: Option<&'static ClassDef>,
    computed: Vec<(&'static str, Value)>,
}

impl Rendered {
    /// Every property, in written order.
    pub fn build(self) -> Instance {
        let (props, resource_uri) = match self.def {
            Some(def) => (def.build(self.computed), Cow::Borrowed(def.uri())),
            None => (
                self.computed
                    .into_iter()
                    .map(|(k, v)| (Cow::Borrowed(k), v))
                    .collect(),
                class_uri(self.class).into(),
            ),
        };
        Instance {
            class: Cow::Borrowed(self.class),
            resource_uri,
            props,
        }
    }

    /// The value the built instance would have for property `name` (any case).
    fn value(&self, name: &str) -> Option<Cow<'_, Value>> {
        match self.def {
            Some(def) => def.value(&self.computed, name),
            None => self
                .computed
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| Cow::Borrowed(v)),
        }
    }

    /// [`prop_text`] of the built instance.
    pub fn text(&self, name: &str) -> Option<String> {
        value_text(&*self.value(name)?)
    }

    /// [`matches_selectors`] of the built instance.
    pub fn matches_selectors(&self, selectors: &[(String, String)]) -> bool {
        matches(selectors, |k| self.value(k))
    }

    /// The GetResponse of the built instance, byte for byte.
    pub fn get_response(&self, h: &ReplyHeader<'_>) -> String {
        match self.def {
            Some(def) => writer::get_response_with(h, self.class, def.uri(), |out| {
                def.write(out, &self.computed)
            }),
            None => writer::get_response_with(h, self.class, &class_uri(self.class), |out| {
                for (name, value) in &self.computed {
                    writer::write_property(out, name, value);
                }
            }),
        }
    }
}

pub fn vm_epr(vm_id: &str) -> Epr {
    Epr::new(
        class_uri("Msvm_ComputerSystem"),
        [
            ("CreationClassName", "Msvm_ComputerSystem"),
            ("Name", vm_id),
        ],
    )
}

pub fn job_epr(job_id: &str) -> Epr {
    Epr::new(
        class_uri("Msvm_ConcreteJob"),
        [("InstanceID", job_id), ("__cimnamespace", NAMESPACE)],
    )
}

pub fn relationship_id(vm: &str, ix: RelIx) -> String {
    format!("Microsoft:{vm}\\HVR\\{}", ix.index())
}

/// The host itself is an `Msvm_ComputerSystem` too (Caption "Hosting Computer System"); it
/// carries the same properties as a VM row, so WQL conditions behave alike on both.
fn host_system(host: &Host) -> Rendered {
    inst(
        "Msvm_ComputerSystem",
        vec![
            ("Caption", fixed("Hosting Computer System")),
            ("Description", fixed("Microsoft Hosting Computer System")),
            ("ElementName", text(&host.name)),
            ("EnabledState", int(2)),
            ("FailedOverReplicationType", int(0)),
            ("LastReplicationType", int(0)),
            ("Name", text(&host.name)),
            ("OnTimeInMilliseconds", Value::Null),
            ("ReplicationHealth", int(0)),
            ("ReplicationMode", int(0)),
            ("ReplicationState", int(0)),
        ],
    )
}

pub fn computer_system(vm: &Vm) -> Rendered {
    let rel = vm.rel(RelIx::Primary);
    inst(
        "Msvm_ComputerSystem",
        vec![
            ("Caption", fixed("Virtual Machine")),
            ("Description", fixed("Microsoft Virtual Machine")),
            ("ElementName", text(&vm.name)),
            ("EnabledState", int(vm.power.number())),
            (
                "FailedOverReplicationType",
                int(rel.map_or(0, |r| r.failed_over_replication_type.number())),
            ),
            (
                "LastReplicationTime",
                time(rel.and_then(|r| r.last_replication_time)),
            ),
            (
                "LastReplicationType",
                int(rel.map_or(0, |r| r.last_replication_type.number())),
            ),
            ("Name", text(&vm.id)),
            // The model keeps no uptime: 0 for a VM that is off, NULL (unknown) otherwise.
            (
                "OnTimeInMilliseconds",
                if vm.power == EnabledState::Enabled {
                    Value::Null
                } else {
                    int(0)
                },
            ),
            ("ReplicationHealth", int(vm.replication_health().number())),
            ("ReplicationMode", int(vm.mode.number())),
            ("ReplicationState", int(vm.replication_state().number())),
        ],
    )
}

fn service(host: &Host) -> Rendered {
    inst(
        "Msvm_ReplicationService",
        vec![
            (
                "EnabledState",
                int(if host.service_running { 2 } else { 3 }),
            ),
            ("RequestedState", int(host.service_requested_state)),
            ("Started", Value::Bool(host.service_running)),
            ("SystemName", text(&host.name)),
        ],
    )
}

fn vsms(host: &Host) -> Rendered {
    inst(
        "Msvm_VirtualSystemManagementService",
        vec![("SystemName", text(&host.name))],
    )
}

fn relationship(vm: &Vm, ix: RelIx, r: &Relationship) -> Rendered {
    inst(
        "Msvm_ReplicationRelationship",
        vec![
            (
                "FailedOverReplicationType",
                int(r.failed_over_replication_type.number()),
            ),
            ("InstanceID", text(relationship_id(&vm.id, ix))),
            ("LastApplyTime", time(r.last_apply_time)),
            ("LastReplicationTime", time(r.last_replication_time)),
            ("LastReplicationType", int(r.last_replication_type.number())),
            ("ReplicationHealth", int(r.health.number())),
            ("ReplicationState", int(r.state.number())),
        ],
    )
}

pub fn setting_data(vm: &Vm, ix: RelIx, s: &ReplicationSettings) -> Rendered {
    inst(
        "Msvm_ReplicationSettingData",
        vec![
            (
                "ApplicationConsistentSnapshotInterval",
                int(s.application_consistent_snapshot_interval),
            ),
            ("AuthenticationType", int(s.authentication_type.number())),
            (
                "AutoResynchronizeEnabled",
                Value::Bool(s.auto_resynchronize_enabled),
            ),
            ("BypassProxyServer", Value::Bool(s.bypass_proxy_server)),
            (
                "CertificateThumbPrint",
                text_or_null(&s.certificate_thumbprint),
            ),
            ("CompressionEnabled", Value::Bool(s.compression_enabled)),
            ("ElementName", text(&vm.name)),
            (
                "IncludedDisks",
                Value::Array(s.included_disks.iter().map(text).collect()),
            ),
            ("InstanceID", text(relationship_id(&vm.id, ix))),
            ("PrimaryConnectionPoint", text(&s.primary_connection_point)),
            ("PrimaryHostSystem", text(&s.primary_connection_point)),
            (
                "RecoveryConnectionPoint",
                text(&s.recovery_connection_point),
            ),
            ("RecoveryHistory", int(s.recovery_history)),
            ("RecoveryHostSystem", text(&s.recovery_connection_point)),
            ("RecoveryServerPortNumber", int(s.recovery_server_port)),
            (
                "ReplicateHostKvpItems",
                Value::Bool(s.replicate_host_kvp_items),
            ),
            ("ReplicationInterval", int(s.replication_interval)),
            ("VirtualSystemIdentifier", text(&vm.id)),
        ],
    )
}

/// A job; `retention_ms` is the profile's `job_retention_ms`, shown as `TimeBeforeRemoval`.
pub fn job(j: &Job, now: u64, retention_ms: u64) -> Rendered {
    let failed = job_failed(j);
    let status = if failed { "Error" } else { "OK" };
    inst(
        "Msvm_ConcreteJob",
        vec![
            ("Caption", text(&j.caption)),
            ("Description", text(&j.caption)),
            ("ElapsedTime", Value::Interval(j.executed(now))),
            ("ElementName", text(&j.caption)),
            ("ErrorCode", int(j.error_code)),
            ("ErrorDescription", text_or_null(&j.error_description)),
            (
                "ErrorSummaryDescription",
                text_or_null(&j.error_description),
            ),
            ("InstanceID", text(&j.id)),
            ("JobState", int(j.state.number())),
            ("JobStatus", text(j.state.label())),
            ("JobType", int(j.job_type.number())),
            ("Name", text(&j.caption)),
            (
                "OperationalStatus",
                Value::Array(vec![int(if failed { 6 } else { 2 })]),
            ),
            ("PercentComplete", int(j.percent)),
            (
                "ScheduledStartTime",
                j.scheduled
                    .map_or(Value::Null, |t| Value::Datetime(t as i64)),
            ),
            ("StartTime", Value::Datetime(j.started() as i64)),
            ("Status", text(status)),
            ("StatusDescriptions", Value::Array(vec![text(status)])),
            ("TimeBeforeRemoval", Value::Interval(retention_ms)),
            (
                "TimeOfLastStateChange",
                Value::Datetime(j.last_change as i64),
            ),
            ("TimeSubmitted", Value::Datetime(j.submitted as i64)),
        ],
    )
}

/// Whether a job ended in a state other than Completed (what GetError reports on).
pub fn job_failed(j: &Job) -> bool {
    matches!(
        j.state,
        JobState::Exception | JobState::Terminated | JobState::Killed
    )
}

/// The instance id of a VM's realized (active) settings.
pub fn realized_settings_id(vm_id: &str) -> String {
    format!("Microsoft:{vm_id}")
}

fn vssd_common(vm: &Vm) -> Vec<(&'static str, Value)> {
    vec![
        ("BIOSGUID", text(format!("{{{}}}", vm.id))),
        ("ConfigurationID", text(&vm.id)),
        (
            "ConfigurationFile",
            text(format!(
                "{}\\Virtual Machines\\{}.vmcx",
                schema::DATA_ROOT,
                vm.id
            )),
        ),
        ("VirtualSystemIdentifier", text(&vm.id)),
    ]
}

fn realized_settings(vm: &Vm) -> Rendered {
    let mut v = vssd_common(vm);
    v.extend([
        ("CreationTime", Value::Null),
        (
            "Description",
            fixed("Active settings for the virtual machine."),
        ),
        ("ElementName", text(&vm.name)),
        ("InstanceID", text(realized_settings_id(&vm.id))),
        (
            "VirtualSystemType",
            fixed("Microsoft:Hyper-V:System:Realized"),
        ),
    ]);
    inst("Msvm_VirtualSystemSettingData", v)
}

pub fn recovery_point(vm: &Vm, rp: &RecoveryPoint) -> Rendered {
    let mut v = vssd_common(vm);
    v.extend([
        ("CreationTime", Value::Datetime(rp.created as i64)),
        (
            "Description",
            fixed("Snapshot settings for the virtual machine"),
        ),
        ("ElementName", text(&rp.name)),
        ("InstanceID", text(&rp.id)),
        ("VirtualSystemType", text(rp.kind.virtual_system_type())),
    ]);
    inst("Msvm_VirtualSystemSettingData", v)
}

/// The one virtual hard disk each VM is shown with (the model has no disks).
pub fn disk_id(vm_id: &str) -> String {
    // Inferred: the `Microsoft:<VM>\<controller>\<location>\<n>\L` form of real hosts, with a
    // fixed controller id.
    format!("Microsoft:{vm_id}\\83F8638B-8DCA-4152-9EDA-2CA8B33039B4\\0\\0\\L")
}

fn disk(vm: &Vm) -> Rendered {
    inst(
        "Msvm_StorageAllocationSettingData",
        vec![
            (
                "HostResource",
                Value::Array(vec![text(format!(
                    "C:\\ProgramData\\Microsoft\\Windows\\Virtual Hard Disks\\{}.vhdx",
                    vm.name
                ))]),
            ),
            ("InstanceID", text(disk_id(&vm.id))),
        ],
    )
}

pub fn service_settings_id(host: &str) -> String {
    format!("Microsoft:{host}\\ReplicationServiceSettingData")
}

fn service_settings(host: &Host) -> Rendered {
    let s = &host.service_settings;
    inst(
        "Msvm_ReplicationServiceSettingData",
        vec![
            (
                "AllowedAuthenticationType",
                int(s.allowed_authentication_type),
            ),
            (
                "CertificateThumbPrint",
                text_or_null(&s.certificate_thumbprint),
            ),
            ("HttpPort", int(s.http_port)),
            ("HttpsPort", int(s.https_port)),
            ("InstanceID", text(service_settings_id(&host.name))),
            ("MonitoringInterval", int(s.monitoring_interval)),
            (
                "RecoveryServerEnabled",
                Value::Bool(s.recovery_server_enabled),
            ),
        ],
    )
}

fn authorization(host: &Host) -> Vec<Rendered> {
    host.authorization
        .iter()
        .map(|a| {
            inst(
                "Msvm_ReplicationAuthorizationSettingData",
                vec![
                    (
                        "AllowedPrimaryHostSystem",
                        text(&a.allowed_primary_host_system),
                    ),
                    ("ElementName", text(&a.allowed_primary_host_system)),
                    (
                        "InstanceID",
                        text(authorization_id(&host.name, &a.allowed_primary_host_system)),
                    ),
                    ("ReplicaStorageLocation", text(&a.replica_storage_location)),
                    ("TrustGroup", text(&a.trust_group)),
                ],
            )
        })
        .collect()
}

/// An embedded instance (CIM-XML) of a declared class: every declared property, typed by its
/// declaration, the world's values where the caller gives them.
pub fn embedded(class: &'static str, computed: Vec<(&'static str, Value)>) -> String {
    let Some(def) = schema::def(class) else {
        return String::new();
    };
    let props = def.build(computed);
    let typed: Vec<(&str, &str, CimValue)> = props
        .iter()
        .map(|(name, v)| {
            let ty = def
                .prop(name)
                .map_or("string", |p| p.ty.trim_end_matches("[]"));
            let cim = match v {
                Value::Null => CimValue::Null,
                Value::Array(items) => {
                    CimValue::Array(items.iter().filter_map(value_text).collect())
                }
                other => value_text(other).map_or(CimValue::Null, CimValue::Scalar),
            };
            (&**name, ty, cim)
        })
        .collect();
    cimxml::write_instance(class, &typed)
}

/// A WMI object path (`\\HOST\root\virtualization\v2:Class.Key="v",…`), as Msvm_Error's
/// ErrorSource names an instance: msvm-error.md «this property contains the path of the instance
/// encoded as a string parameter».
pub fn object_path(host: &str, epr: &Epr) -> String {
    let class = epr.resource_uri.rsplit('/').next().unwrap_or_default();
    let keys = epr
        .selectors
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("__cimnamespace"))
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(",");
    format!("\\\\{host}\\root\\virtualization\\v2:{class}.{keys}")
}

pub fn authorization_id(host: &str, allowed: &str) -> String {
    format!("Microsoft:{host}\\Authorization\\{allowed}")
}

fn provider() -> Rendered {
    inst("Msvm_ReplicationProvider", Vec::new())
}

/// The instances one at a time, in a stable order, so a filtered query over a large host never holds them all
/// (a WQL lookup by ElementName on a 10,000-VM host keeps one instance alive, not 10,000).
pub fn iter_instances<'a>(
    world: &'a World,
    host: &str,
    class: &str,
) -> Box<dyn Iterator<Item = Instance> + 'a> {
    Box::new(iter_rendered(world, host, class).map(Rendered::build))
}

/// [`iter_instances`], each not yet built.
fn iter_rendered<'a>(
    world: &'a World,
    host: &str,
    class: &str,
) -> Box<dyn Iterator<Item = Rendered> + 'a> {
    let Some(h) = world.host(host) else {
        return Box::new(std::iter::empty());
    };
    let vms = move || h.vms.values();
    match class {
        "Msvm_ComputerSystem" => {
            Box::new(std::iter::once(host_system(h)).chain(vms().map(computer_system)))
        }
        "Msvm_ReplicationService" => Box::new(std::iter::once(service(h))),
        "Msvm_VirtualSystemManagementService" => Box::new(std::iter::once(vsms(h))),
        "Msvm_ReplicationRelationship" => Box::new(vms().flat_map(|v| {
            [RelIx::Primary, RelIx::Extended]
                .into_iter()
                .filter_map(move |ix| v.rel(ix).map(|r| relationship(v, ix, r)))
        })),
        // Each relationship's settings, then the template of the one a client would create
        // next (`Vm::template_settings`, Inferred), after them so a client taking the first
        // settings of a replicated VM gets its real ones.
        "Msvm_ReplicationSettingData" => Box::new(vms().flat_map(move |v| {
            [RelIx::Primary, RelIx::Extended]
                .into_iter()
                .filter_map(move |ix| v.rel(ix).map(|r| setting_data(v, ix, &r.settings)))
                .chain(
                    v.template_settings(&h.name)
                        .map(|(ix, s)| setting_data(v, ix, &s)),
                )
        })),
        "Msvm_ConcreteJob" => Box::new(
            h.jobs
                .values()
                .map(move |j| job(j, world.now(), world.profile().job_retention_ms)),
        ),
        "Msvm_VirtualSystemSettingData" => Box::new(vms().flat_map(|v| {
            std::iter::once(realized_settings(v)).chain(
                v.recovery_points
                    .iter()
                    .map(move |rp| recovery_point(v, rp)),
            )
        })),
        "Msvm_ReplicationServiceSettingData" => Box::new(std::iter::once(service_settings(h))),
        "Msvm_ReplicationAuthorizationSettingData" => Box::new(authorization(h).into_iter()),
        "Msvm_ReplicationProvider" => Box::new(std::iter::once(provider())),
        "Msvm_StorageAllocationSettingData" => Box::new(vms().map(disk)),
        other => match schema::def(other).map(|d| d.served) {
            // Rendered by `assoc`, reached through `instances::iter_instances`.
            Some(Served::Association) => Box::new(std::iter::empty()),
            // Embedded-only classes (Msvm_Error, Msvm_ReplicationStatistics) have no instances.
            Some(Served::Embedded | Served::Instances) | None => Box::new(std::iter::empty()),
        },
    }
}

/// The instance a selector set names: a fast lookup for the Get hot paths (job polling, VM
/// reads), a scan otherwise. Every selector must match, not only the one used to look up:
/// `CreationClassName=Other` names no `Msvm_ComputerSystem`.
pub fn find(
    world: &World,
    host: &str,
    class: &str,
    selectors: &[(String, String)],
) -> Option<Instance> {
    find_rendered(world, host, class, selectors).map(Rendered::build)
}

/// [`find`], not yet built: a Get writes it and a method call reads its keys without the
/// declared properties it does not need.
pub fn find_rendered(
    world: &World,
    host: &str,
    class: &str,
    selectors: &[(String, String)],
) -> Option<Rendered> {
    let sel = |name: &str| {
        selectors
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let h = world.host(host)?;
    let found = match class {
        "Msvm_ConcreteJob" => {
            let id = sel("InstanceID")?;
            h.jobs
                .values()
                .find(|j| j.id.eq_ignore_ascii_case(id))
                .map(|j| job(j, world.now(), world.profile().job_retention_ms))
        }
        "Msvm_ComputerSystem" => {
            let name = sel("Name")?;
            match h.vms.get(&name.to_ascii_uppercase()) {
                Some(v) => Some(computer_system(v)),
                None => h.name.eq_ignore_ascii_case(name).then(|| host_system(h)),
            }
        }
        // Association traversals resolve settings by id: compare ids, render only the match.
        "Msvm_VirtualSystemSettingData" => {
            let id = sel("InstanceID")?;
            h.vms.values().find_map(|v| {
                if realized_settings_id(&v.id).eq_ignore_ascii_case(id) {
                    return Some(realized_settings(v));
                }
                v.recovery_points
                    .iter()
                    .find(|rp| rp.id.eq_ignore_ascii_case(id))
                    .map(|rp| recovery_point(v, rp))
            })
        }
        // Lazily: the scan stops at the match instead of rendering every instance first
        // (and the match needs no second check).
        _ => {
            return iter_rendered(world, host, class).find(|r| r.matches_selectors(selectors));
        }
    };
    found.filter(|r| r.matches_selectors(selectors))
}

/// The text of a property, for WQL comparisons and selector matching (`None` for NULL).
pub fn prop_text(inst: &Instance, name: &str) -> Option<String> {
    let (_, v) = inst
        .props
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))?;
    value_text(v)
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(if *b { "TRUE".into() } else { "FALSE".into() }),
        Value::Datetime(ms) => Some(crate::wsman::xsd::format_dmtf_datetime_ms(*ms as u64)),
        Value::Interval(ms) => Some(crate::wsman::xsd::format_dmtf_interval_ms(*ms)),
        // A reference's text is the referenced instance's relative path, as WMI gives a REF
        // property's value in WQL and object paths; selectors holding a nested EPR carry the
        // same text (`Epr::path_key`), so association keys match like any other key.
        Value::Ref(epr) => Some(epr.path_key()),
        Value::Array(a) => a.first().and_then(value_text),
    }
}

pub fn matches_selectors(inst: &Instance, selectors: &[(String, String)]) -> bool {
    matches(selectors, |k| {
        inst.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| Cow::Borrowed(v))
    })
}

/// Whether every selector but `__cimnamespace` equals the value `value` gives its property.
fn matches<'v>(
    selectors: &[(String, String)],
    value: impl Fn(&str) -> Option<Cow<'v, Value>>,
) -> bool {
    selectors
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("__cimnamespace"))
        .all(|(k, v)| match value(k).as_deref() {
            None => false,
            // Keys are text nearly always: compared in place, without a copy, and in their
            // own case first, as clients send them (one `memcmp`, not a fold per byte).
            Some(Value::Text(t)) => t == v || t.eq_ignore_ascii_case(v),
            Some(other) => value_text(other).is_some_and(|p| p.eq_ignore_ascii_case(v)),
        })
}

/// The EPR of an instance (from its class's key properties).
///
/// The keys of an association class are references: their selectors hold the referenced
/// instances' EPRs (DSP0227; the form issue 16 quotes: `w:Selector Name="Antecedent"` around an
/// `a:EndpointReference`), so a client can Get the association instance back from it.
pub fn epr_of(inst: &Instance) -> Epr {
    let keys = keys_of(&inst.class);
    let mut epr = Epr::new(
        inst.resource_uri.clone(),
        keys.iter()
            .filter_map(|k| prop_text(inst, k).map(|v| ((*k).to_string(), v)))
            .collect::<Vec<_>>(),
    );
    epr.refs = keys
        .iter()
        .filter_map(|k| {
            inst.props.iter().find_map(|(name, v)| match v {
                Value::Ref(r) if name.eq_ignore_ascii_case(k) => {
                    Some(((*k).to_string(), Epr::clone(r)))
                }
                _ => None,
            })
        })
        .collect();
    epr
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::instances;
    use crate::state::{ClockMode, WorldSlot};
    use replica_core::ops::Operation;

    /// The default world with one job on HV-REPLICA, so that every class has instances.
    fn world() -> World {
        let spec = crate::server::default_topology();
        let mut slot = match WorldSlot::new("t", spec, 1, ClockMode::Manual) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let now = slot.world.now();
        let ans = slot.world.apply(
            "HV-REPLICA",
            &Operation::InitiateFailover {
                vm: "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02".into(),
                recovery_point: None,
            },
            now,
        );
        assert_eq!(ans.code, 4096, "{ans:?}");
        slot.world.clone()
    }

    #[test]
    fn every_instance_has_exactly_the_schema_properties_in_order() {
        let w = world();
        for def in served() {
            let (class, keys) = (&def.name, def.keys);
            let schema: Vec<&str> =
                schema::def(class).map_or_else(Vec::new, |d| d.ordered().map(|p| p.name).collect());
            assert!(!schema.is_empty(), "{class} has no schema");
            for k in keys {
                assert!(schema.contains(k), "{class}: key {k} not in the schema");
            }
            for host in ["HV-PRIMARY", "HV-REPLICA"] {
                let all = instances(&w, host, class);
                // Jobs, authorizations and some links exist only on one host of this world.
                if !matches!(
                    *class,
                    "Msvm_ReplicationAuthorizationSettingData" | "Msvm_ConcreteJob"
                ) && def.served != Served::Association
                {
                    assert!(!all.is_empty(), "{class} on {host} has no instance");
                }
                for i in all {
                    let names: Vec<&str> = i.props.iter().map(|(k, _)| &**k).collect();
                    assert_eq!(names, schema, "{class} on {host}");
                    for (name, v) in &i.props {
                        let ty = def.prop(name).map_or("", |p| p.ty);
                        assert!(value_fits(v, ty), "{class}.{name}: {v:?} is not a {ty}");
                    }
                }
            }
        }
        assert!(!instances(&w, "HV-REPLICA", "Msvm_ConcreteJob").is_empty());
    }

    /// What a Get writes and matches from an unbuilt instance must be what the built one
    /// gives, byte for byte: every instance of every class, with the values the built
    /// instance holds as selectors and with a changed copy of each.
    #[test]
    fn an_unbuilt_instance_answers_as_the_built_one() {
        let w = world();
        let h = ReplyHeader {
            message_guid: "G",
            relates_to: Some("uuid:R"),
            lang: None,
        };
        let mut checked = 0;
        for def in served().filter(|d| d.served != Served::Association) {
            for host in ["HV-PRIMARY", "HV-REPLICA"] {
                for rendered in iter_rendered(&w, host, def.name) {
                    let written = rendered.get_response(&h);
                    let texts: Vec<(String, Option<String>)> = def
                        .props
                        .iter()
                        .map(|p| {
                            (
                                p.name.to_ascii_lowercase(),
                                rendered.text(&p.name.to_ascii_lowercase()),
                            )
                        })
                        .collect();
                    let keys: Vec<(String, String)> = def
                        .keys
                        .iter()
                        .filter_map(|k| rendered.text(k).map(|v| ((*k).to_string(), v)))
                        .collect();
                    let mut other = keys.clone();
                    if let Some((_, v)) = other.first_mut() {
                        v.push('x');
                    }
                    let (matches_keys, matches_other) = (
                        rendered.matches_selectors(&keys),
                        rendered.matches_selectors(&other),
                    );
                    let built = rendered.build();
                    assert_eq!(written, writer::get_response(&h, &built), "{}", def.name);
                    for (name, text) in texts {
                        assert_eq!(text, prop_text(&built, &name), "{}.{name}", def.name);
                    }
                    assert_eq!(matches_keys, matches_selectors(&built, &keys));
                    assert_eq!(matches_other, matches_selectors(&built, &other));
                    assert!(matches_keys && !matches_other, "{}: {keys:?}", def.name);
                    checked += 1;
                }
            }
        }
        assert!(checked > 10, "{checked} instances");
    }

    /// Whether a value is written the way its declared CIM type is (NULL fits every type).
    fn value_fits(v: &Value, ty: &str) -> bool {
        match (v, ty.strip_suffix("[]")) {
            (Value::Null, _) => true,
            (Value::Array(items), Some(elem)) => items.iter().all(|i| value_fits(i, elem)),
            (_, Some(_)) | (Value::Array(_), None) => false,
            (Value::Text(_), None) => ty == "string",
            (Value::Bool(_), None) => ty == "boolean",
            (Value::Int(_), None) => ty.starts_with("uint") || ty.starts_with("sint"),
            (Value::Datetime(_) | Value::Interval(_), None) => ty == "datetime",
            (Value::Ref(_), None) => ty.starts_with("ref"),
        }
    }

    /// A renderer that names a property its class does not declare is a bug: `build` would
    /// drop the value silently.
    #[test]
    fn renderers_only_give_declared_world_properties() {
        let w = world();
        for def in served() {
            for host in ["HV-PRIMARY", "HV-REPLICA"] {
                for i in instances(&w, host, def.name) {
                    for (name, _) in &i.props {
                        assert!(def.prop(name).is_some(), "{}.{name}", def.name);
                    }
                }
            }
        }
    }

    #[test]
    fn find_checks_every_selector() {
        let w = world();
        let vm = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01";
        let sel = |ccn: &str| {
            vec![
                ("CreationClassName".to_string(), ccn.to_string()),
                ("Name".to_string(), vm.to_string()),
            ]
        };
        assert!(
            find(
                &w,
                "HV-PRIMARY",
                "Msvm_ComputerSystem",
                &sel("Msvm_ComputerSystem")
            )
            .is_some()
        );
        assert!(find(&w, "HV-PRIMARY", "Msvm_ComputerSystem", &sel("Other")).is_none());
        let host = vec![("Name".to_string(), "hv-primary".to_string())];
        assert!(find(&w, "HV-PRIMARY", "Msvm_ComputerSystem", &host).is_some());
    }

    #[test]
    fn job_shows_the_configured_retention() {
        let w = world();
        let jobs = instances(&w, "HV-REPLICA", "Msvm_ConcreteJob");
        let Some(j) = jobs.first() else {
            panic!("no job")
        };
        assert_eq!(
            prop_text(j, "TimeBeforeRemoval").as_deref(),
            Some(crate::wsman::xsd::format_dmtf_interval_ms(300_000).as_str())
        );
    }
}
