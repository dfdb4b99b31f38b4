//! The associations of the object model: which instances are linked by which association
//! class, in which roles, and the traversals over them (WQL `ASSOCIATORS OF` and
//! `REFERENCES OF`, WS-Management's `AssociatedInstances` and `AssociationInstances`).
//!
//! The links are derived from the world (a view, like `classes.rs`); endpoints are named by
//! their class and keys, and resolved to instances only when returned.

use crate::classes::{self, class_uri};
use crate::schema::{self, Src};
use crate::wsman::Epr;
use crate::wsman::writer::{Instance, Value};
use replica_core::ReplicationMode;
use replica_core::World;
use replica_core::world::{Host, RelIx, Vm};
use std::borrow::Cow;

/// One object, by class and keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obj {
    pub class: &'static str,
    pub keys: Vec<(String, String)>,
}

impl Obj {
    fn new(class: &'static str, keys: &[(&str, &str)]) -> Obj {
        Obj {
            class,
            keys: keys
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        }
    }

    fn id(class: &'static str, id: &str) -> Obj {
        Obj::new(class, &[("InstanceID", id)])
    }

    pub fn epr(&self) -> Epr {
        Epr::new(class_uri(self.class), self.keys.clone())
    }

    /// Whether a path (class and key bindings, as a client wrote them) names this object:
    /// the class is this object's class or one it derives from, and every key of the object
    /// is bound to the same value (case-insensitively, as WMI compares keys).
    pub fn is_named_by(&self, class: &str, keys: &[(String, String)]) -> bool {
        let is_a = schema::def(self.class).is_some_and(|d| d.is_a(class));
        let keys: Vec<_> = keys
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("__cimnamespace"))
            .collect();
        is_a && keys.len() == self.keys.len()
            && self.keys.iter().all(|(k, v)| {
                keys.iter()
                    .any(|(pk, pv)| pk.eq_ignore_ascii_case(k) && pv.eq_ignore_ascii_case(v))
            })
    }
}

/// One instance of an association class: two objects in their roles.
#[derive(Debug, Clone)]
pub struct Link {
    pub assoc: &'static str,
    pub ends: [(&'static str, Obj); 2],
}

impl Link {
    fn new(assoc: &'static str, a: (&'static str, Obj), b: (&'static str, Obj)) -> Link {
        Link {
            assoc,
            ends: [a, b],
        }
    }

    /// The association instance: its two references, plus the declared fixed values.
    pub fn instance(&self) -> Instance {
        let computed = self
            .ends
            .iter()
            .map(|(role, o)| (*role, Value::Ref(Box::new(o.epr()))))
            .collect();
        let props = schema::def(self.assoc).map_or_else(Vec::new, |d| d.build(computed));
        Instance {
            class: Cow::Borrowed(self.assoc),
            resource_uri: class_uri(self.assoc).into(),
            props,
        }
    }
}

fn vm_obj(id: &str) -> Obj {
    Obj::new(
        "Msvm_ComputerSystem",
        &[("CreationClassName", "Msvm_ComputerSystem"), ("Name", id)],
    )
}

fn service_obj(class: &'static str, name: &str, host: &str) -> Obj {
    Obj::new(
        class,
        &[
            ("CreationClassName", class),
            ("Name", name),
            ("SystemCreationClassName", "Msvm_ComputerSystem"),
            ("SystemName", host),
        ],
    )
}

/// A fixed value of a declaration (the services' names are fixed by their pages).
fn fixed(class: &str, prop: &str) -> String {
    match schema::def(class).and_then(|d| d.prop(prop)).map(|p| p.src) {
        Some(Src::Str(s)) => s.to_string(),
        _ => String::new(),
    }
}

/// Every link on `host`, in a stable order.
pub fn links(world: &World, host: &str) -> Vec<Link> {
    let Some(h) = world.host(host) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    host_links(h, &mut out);
    for v in h.vms.values() {
        vm_links(h, v, &mut out);
    }
    for j in h.jobs.values() {
        // Sources: os-win and the Replica sample find a VM's jobs this way (the list).
        if let Some(vm) = j.change.as_ref().and_then(|c| c.vm.as_deref())
            && h.vms.contains_key(vm)
        {
            out.push(Link::new(
                "Msvm_AffectedJobElement",
                ("AffectedElement", vm_obj(vm)),
                ("AffectingElement", Obj::id("Msvm_ConcreteJob", &j.id)),
            ));
        }
    }
    out
}

fn host_links(h: &Host, out: &mut Vec<Link>) {
    let host_obj = vm_obj(&h.name);
    let svc_name = fixed("Msvm_ReplicationService", "Name");
    let vsms_name = fixed("Msvm_VirtualSystemManagementService", "Name");
    let svc = service_obj("Msvm_ReplicationService", &svc_name, &h.name);
    for s in [
        svc.clone(),
        service_obj("Msvm_VirtualSystemManagementService", &vsms_name, &h.name),
    ] {
        out.push(Link::new(
            "Msvm_HostedService",
            ("Antecedent", host_obj.clone()),
            ("Dependent", s),
        ));
    }
    out.push(Link::new(
        "Msvm_ElementSettingData",
        ("ManagedElement", svc.clone()),
        (
            "SettingData",
            Obj::id(
                "Msvm_ReplicationServiceSettingData",
                &classes::service_settings_id(&h.name),
            ),
        ),
    ));
    for a in &h.authorization {
        out.push(Link::new(
            "Msvm_ElementSettingData",
            ("ManagedElement", svc.clone()),
            (
                "SettingData",
                Obj::id(
                    "Msvm_ReplicationAuthorizationSettingData",
                    &classes::authorization_id(&h.name, &a.allowed_primary_host_system),
                ),
            ),
        ));
    }
}

fn vm_links(h: &Host, v: &Vm, out: &mut Vec<Link>) {
    let vm = vm_obj(&v.id);
    let vsms_name = fixed("Msvm_VirtualSystemManagementService", "Name");
    let realized = Obj::id(
        "Msvm_VirtualSystemSettingData",
        &classes::realized_settings_id(&v.id),
    );
    // msvm-settingsdefinestate.md «it associates Msvm_ComputerSystem with instances of
    // Msvm_VirtualSystemSettingData», those that represent the current settings: the VM and
    // its active settings, not recovery points.
    out.push(Link::new(
        "Msvm_SettingsDefineState",
        ("ManagedElement", vm.clone()),
        ("SettingData", realized.clone()),
    ));
    out.push(Link::new(
        "Msvm_VirtualSystemSettingDataComponent",
        ("GroupComponent", realized),
        (
            "PartComponent",
            Obj::id(
                "Msvm_StorageAllocationSettingData",
                &classes::disk_id(&v.id),
            ),
        ),
    ));
    out.push(Link::new(
        "Msvm_ServiceAffectsElement",
        ("AffectedElement", vm.clone()),
        (
            "AffectingElement",
            service_obj("Msvm_VirtualSystemManagementService", &vsms_name, &h.name),
        ),
    ));
    for ix in [RelIx::Primary, RelIx::Extended] {
        let Some(r) = v.rel(ix) else { continue };
        let id = classes::relationship_id(&v.id, ix);
        let rel = Obj::id("Msvm_ReplicationRelationship", &id);
        let rsd = Obj::id("Msvm_ReplicationSettingData", &id);
        out.push(Link::new(
            "Msvm_SystemReplicationRelationship",
            ("Antecedent", vm.clone()),
            ("Dependent", rel.clone()),
        ));
        out.push(Link::new(
            "Msvm_ElementSettingData",
            ("ManagedElement", vm.clone()),
            ("SettingData", rsd.clone()),
        ));
        // The list (how clients reach a relationship's settings); the page's
        // reference types are narrower (Msvm_ComputerSystem, Msvm_VirtualSystemSettingData),
        // so this link is Inferred from client use, not DOC.
        out.push(Link::new(
            "Msvm_SettingsDefineState",
            ("ManagedElement", rel),
            ("SettingData", rsd),
        ));
        // A replica VM is linked to the authorization entry that admitted its primary (the
        // entry naming the primary host, or the `*` wildcard). Inferred.
        if ix == RelIx::Primary
            && matches!(
                v.mode,
                ReplicationMode::Replica | ReplicationMode::ExtendedReplica
            )
            && let Some(a) = h.authorizing_entry(&r.peer_host)
        {
            out.push(Link::new(
                "Msvm_ElementSettingData",
                ("ManagedElement", vm.clone()),
                (
                    "SettingData",
                    Obj::id(
                        "Msvm_ReplicationAuthorizationSettingData",
                        &classes::authorization_id(&h.name, &a.allowed_primary_host_system),
                    ),
                ),
            ));
        }
    }
    // The template settings of the relationship a client would create next (Inferred, see
    // `Vm::template_settings`): reached from the VM like real settings, as Microsoft's Replica
    // sample reaches them (GetRelated("Msvm_ReplicationSettingData") on the VM); after the real
    // settings, since that sample takes the first.
    if let Some((ix, _)) = v.template_settings(&h.name) {
        out.push(Link::new(
            "Msvm_ElementSettingData",
            ("ManagedElement", vm.clone()),
            (
                "SettingData",
                Obj::id(
                    "Msvm_ReplicationSettingData",
                    &classes::relationship_id(&v.id, ix),
                ),
            ),
        ));
    }
    for rp in &v.recovery_points {
        out.push(Link::new(
            "Msvm_SnapshotOfVirtualSystem",
            ("Antecedent", vm.clone()),
            (
                "Dependent",
                Obj::id("Msvm_VirtualSystemSettingData", &rp.id),
            ),
        ));
    }
    if let Some(test) = &v.test_replica {
        out.push(Link::new(
            "Msvm_ReplicaSystemDependency",
            ("Antecedent", vm.clone()),
            ("Dependent", vm_obj(test)),
        ));
    }
}

/// The instances of one association class on `host`.
pub fn association_instances(world: &World, host: &str, class: &str) -> Vec<Instance> {
    links(world, host)
        .iter()
        .filter(|l| l.assoc.eq_ignore_ascii_case(class))
        .map(Link::instance)
        .collect()
}

/// A traversal's filters (CIM semantics, DSP0004 / DSP0227 §8): every one optional.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// The association class (or a superclass of it).
    pub assoc_class: Option<String>,
    /// Associators: the result's class (or a superclass). References: the association's.
    pub result_class: Option<String>,
    /// The source object's role in the association.
    pub role: Option<String>,
    /// Associators: the result's role.
    pub result_role: Option<String>,
    /// WQL `RequiredQualifier`: the result's class (associators) or the association's
    /// (references) has this qualifier (WMI's "ASSOCIATORS OF" / "REFERENCES OF" pages).
    pub required_qualifier: Option<String>,
    /// WQL `RequiredAssocQualifier` (associators): the association class has this qualifier.
    pub required_assoc_qualifier: Option<String>,
}

/// Whether `class` meets a `Required…Qualifier` filter (none: every class does).
fn qualified(class: &str, required: &Option<String>) -> bool {
    required
        .as_deref()
        .is_none_or(|q| schema::has_qualifier(class, q))
}

/// Why a traversal has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraversalError {
    /// The source path names no instance on this host.
    UnknownSource(String),
    /// A filter names a class that does not exist.
    UnknownClass(String),
}

fn eq(a: &str, b: &Option<String>) -> bool {
    b.as_deref().is_none_or(|b| a.eq_ignore_ascii_case(b))
}

fn class_exists(c: &Option<String>) -> Result<(), TraversalError> {
    match c {
        Some(name)
            if schema::def(name).is_none()
                && !schema::CLASSES
                    .iter()
                    .any(|d| d.supers.iter().any(|s| s.eq_ignore_ascii_case(name))) =>
        {
            Err(TraversalError::UnknownClass(name.clone()))
        }
        _ => Ok(()),
    }
}

fn is_a(class: &str, filter: &Option<String>) -> bool {
    filter
        .as_deref()
        .is_none_or(|f| schema::def(class).is_some_and(|d| d.is_a(f)))
}

/// The source object must exist: an unknown source is a fault, not an empty result.
fn check_source(
    world: &World,
    host: &str,
    class: &str,
    keys: &[(String, String)],
) -> Result<&'static str, TraversalError> {
    let unknown = || {
        TraversalError::UnknownSource(format!(
            "{class}.{}",
            keys.iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect::<Vec<_>>()
                .join(",")
        ))
    };
    let known = classes::served()
        .find(|d| d.name.eq_ignore_ascii_case(class))
        .ok_or_else(unknown)?;
    // A path names an instance by all of its keys and nothing else (WMI refuses a partial
    // path), so a partial one is no source rather than a silently empty traversal.
    let named: Vec<&String> = keys
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !k.eq_ignore_ascii_case("__cimnamespace"))
        .collect();
    let exact = named.len() == known.keys.len()
        && known
            .keys
            .iter()
            .all(|k| named.iter().any(|n| n.eq_ignore_ascii_case(k)));
    if !exact {
        return Err(unknown());
    }
    classes::find(world, host, known.name, keys)
        .map(|_| known.name)
        .ok_or_else(unknown)
}

/// The links a traversal from the source crosses, with the source's end index.
fn crossing(
    world: &World,
    host: &str,
    class: &str,
    keys: &[(String, String)],
    assoc_class: &Option<String>,
    role: &Option<String>,
) -> Result<Vec<(Link, usize)>, TraversalError> {
    check_source(world, host, class, keys)?;
    class_exists(assoc_class)?;
    Ok(links(world, host)
        .into_iter()
        .filter(|l| is_a(l.assoc, assoc_class))
        .filter_map(|l| {
            let src = l
                .ends
                .iter()
                .position(|(r, o)| eq(r, role) && o.is_named_by(class, keys))?;
            Some((l, src))
        })
        .collect())
}

/// `ASSOCIATORS OF {path}`: the objects linked to the source, filtered.
pub fn associators(
    world: &World,
    host: &str,
    class: &str,
    keys: &[(String, String)],
    f: &Filters,
) -> Result<Vec<Instance>, TraversalError> {
    class_exists(&f.result_class)?;
    let mut out: Vec<Instance> = Vec::new();
    for (l, src) in crossing(world, host, class, keys, &f.assoc_class, &f.role)? {
        let (role, other) = &l.ends[1 - src];
        if !eq(role, &f.result_role)
            || !is_a(other.class, &f.result_class)
            || !qualified(l.assoc, &f.required_assoc_qualifier)
            || !qualified(other.class, &f.required_qualifier)
        {
            continue;
        }
        if let Some(i) = classes::find(world, host, other.class, &other.keys) {
            // An object linked twice (by two association classes) is returned once, as WMI
            // returns each associator once.
            let path = classes::epr_of(&i);
            if !out.iter().any(|o| classes::epr_of(o) == path) {
                out.push(i);
            }
        }
    }
    Ok(out)
}

/// `REFERENCES OF {path}`: the association instances that name the source.
pub fn references(
    world: &World,
    host: &str,
    class: &str,
    keys: &[(String, String)],
    f: &Filters,
) -> Result<Vec<Instance>, TraversalError> {
    class_exists(&f.result_class)?;
    Ok(crossing(world, host, class, keys, &f.assoc_class, &f.role)?
        .into_iter()
        .filter(|(l, _)| {
            is_a(l.assoc, &f.result_class) && qualified(l.assoc, &f.required_qualifier)
        })
        .map(|(l, _)| l.instance())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ClockMode, WorldSlot};
    use replica_core::ops::Operation;

    const WEB: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02";

    /// The default world with a failover job on HV-REPLICA's web-01.
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
                vm: WEB.into(),
                recovery_point: None,
            },
            now,
        );
        assert_eq!(ans.code, 4096, "{ans:?}");
        slot.world.clone()
    }

    fn keys(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn vm(id: &str) -> Vec<(String, String)> {
        keys(&[("CreationClassName", "Msvm_ComputerSystem"), ("Name", id)])
    }

    /// A traversal's source: its class and keys.
    type Source<'a> = (&'a str, Vec<(String, String)>);

    /// One traversal: from (class, keys) over `assoc`, expecting `n` results of `result`.
    fn check(w: &World, from: (&str, Vec<(String, String)>), assoc: &str, result: &str, n: usize) {
        let f = Filters {
            assoc_class: Some(assoc.into()),
            result_class: Some(result.into()),
            ..Filters::default()
        };
        let got = match associators(w, "HV-REPLICA", from.0, &from.1, &f) {
            Ok(v) => v,
            Err(e) => panic!("{} over {assoc}: {e:?}", from.0),
        };
        assert_eq!(got.len(), n, "{} over {assoc} to {result}: {got:?}", from.0);
        assert!(got.iter().all(|i| i.class == result), "{assoc}");
        let r = Filters {
            result_class: Some(assoc.into()),
            ..Filters::default()
        };
        let refs = references(w, "HV-REPLICA", from.0, &from.1, &r).unwrap_or_default();
        // REFERENCES OF has no result-class filter for the far end: at least these links.
        assert!(refs.len() >= n, "REFERENCES OF {} over {assoc}", from.0);
        assert!(refs.iter().all(|r| r.class == assoc), "{assoc}");
        // And back: each result leads to the source.
        for i in got {
            let back = Filters {
                assoc_class: Some(assoc.into()),
                result_class: Some(from.0.into()),
                ..Filters::default()
            };
            let epr = classes::epr_of(&i);
            let found = associators(w, "HV-REPLICA", &i.class, epr.selectors.as_slice(), &back);
            assert!(
                found.is_ok_and(|v| v.iter().any(|o| classes::matches_selectors(o, &from.1))),
                "{} back over {assoc}",
                i.class
            );
        }
    }

    #[test]
    fn every_traversal_both_ways() {
        let w = world();
        let rel = classes::relationship_id(WEB, RelIx::Primary);
        let id = |v: &str| keys(&[("InstanceID", v)]);
        let svc = keys(&[
            ("CreationClassName", "Msvm_ReplicationService"),
            ("Name", "replicasvc"),
            ("SystemCreationClassName", "Msvm_ComputerSystem"),
            ("SystemName", "HV-REPLICA"),
        ]);
        let cases: Vec<(Source<'_>, &str, &str, usize)> = vec![
            (
                ("Msvm_ComputerSystem", vm(WEB)),
                "Msvm_SystemReplicationRelationship",
                "Msvm_ReplicationRelationship",
                1,
            ),
            // Its own settings (\HVR\0) and the template for extending it (\HVR\1).
            (
                ("Msvm_ComputerSystem", vm(WEB)),
                "Msvm_ElementSettingData",
                "Msvm_ReplicationSettingData",
                2,
            ),
            (
                ("Msvm_ComputerSystem", vm(WEB)),
                "Msvm_ElementSettingData",
                "Msvm_ReplicationAuthorizationSettingData",
                1,
            ),
            (
                ("Msvm_ComputerSystem", vm(WEB)),
                "Msvm_SettingsDefineState",
                "Msvm_VirtualSystemSettingData",
                1,
            ),
            (
                ("Msvm_ComputerSystem", vm(WEB)),
                "Msvm_SnapshotOfVirtualSystem",
                "Msvm_VirtualSystemSettingData",
                4,
            ),
            (
                ("Msvm_ComputerSystem", vm(WEB)),
                "Msvm_AffectedJobElement",
                "Msvm_ConcreteJob",
                1,
            ),
            (
                ("Msvm_ComputerSystem", vm(WEB)),
                "Msvm_ServiceAffectsElement",
                "Msvm_VirtualSystemManagementService",
                1,
            ),
            (
                ("Msvm_ReplicationRelationship", id(&rel)),
                "Msvm_SettingsDefineState",
                "Msvm_ReplicationSettingData",
                1,
            ),
            (
                ("Msvm_ReplicationService", svc.clone()),
                "Msvm_ElementSettingData",
                "Msvm_ReplicationServiceSettingData",
                1,
            ),
            (
                ("Msvm_ReplicationService", svc),
                "Msvm_ElementSettingData",
                "Msvm_ReplicationAuthorizationSettingData",
                1,
            ),
            (
                ("Msvm_ComputerSystem", vm("HV-REPLICA")),
                "Msvm_HostedService",
                "Msvm_ReplicationService",
                1,
            ),
            (
                (
                    "Msvm_VirtualSystemSettingData",
                    id(&classes::realized_settings_id(WEB)),
                ),
                "Msvm_VirtualSystemSettingDataComponent",
                "Msvm_StorageAllocationSettingData",
                1,
            ),
        ];
        for (from, assoc, result, n) in cases {
            check(&w, from, assoc, result, n);
        }
    }

    #[test]
    fn filters_roles_superclasses_and_unknown_sources() {
        let w = world();
        let all = |f: Filters| associators(&w, "HV-REPLICA", "Msvm_ComputerSystem", &vm(WEB), &f);
        // The active settings only, not recovery points, over SettingsDefineState.
        let active = all(Filters {
            assoc_class: Some("Msvm_SettingsDefineState".into()),
            ..Filters::default()
        });
        assert!(active.is_ok_and(|v| v.len() == 1
            && classes::prop_text(&v[0], "VirtualSystemType").as_deref()
                == Some("Microsoft:Hyper-V:System:Realized")));
        // A superclass as AssocClass, ResultRole and Role.
        let deps = all(Filters {
            assoc_class: Some("CIM_Dependency".into()),
            result_role: Some("Dependent".into()),
            ..Filters::default()
        });
        assert!(
            deps.is_ok_and(|v| v.len() == 5),
            "relationship + 4 recovery points"
        );
        let wrong_role = all(Filters {
            role: Some("Dependent".into()),
            assoc_class: Some("Msvm_SystemReplicationRelationship".into()),
            ..Filters::default()
        });
        assert!(wrong_role.is_ok_and(|v| v.is_empty()));
        let unknown = associators(
            &w,
            "HV-REPLICA",
            "Msvm_ComputerSystem",
            &vm("NOPE"),
            &Filters::default(),
        );
        assert!(matches!(unknown, Err(TraversalError::UnknownSource(_))));
        // A path without all of the class's keys names no instance.
        let partial = associators(
            &w,
            "HV-REPLICA",
            "Msvm_ComputerSystem",
            &keys(&[("Name", WEB)]),
            &Filters::default(),
        );
        assert!(matches!(partial, Err(TraversalError::UnknownSource(_))));
        // Qualifiers from the class pages: of web-01's associations, SettingsDefineState (to
        // the active settings) and ServiceAffectsElement (to the VSMS) lack Aggregation.
        let aggregated = all(Filters {
            required_assoc_qualifier: Some("aggregation".into()),
            ..Filters::default()
        });
        let everything = all(Filters::default());
        match (&aggregated, &everything) {
            (Ok(a), Ok(e)) => {
                assert_eq!(a.len() + 2, e.len());
                assert!(
                    !a.iter()
                        .any(|i| i.class == "Msvm_VirtualSystemManagementService")
                );
                assert!(
                    !a.iter()
                        .any(|i| classes::prop_text(i, "VirtualSystemType").as_deref()
                            == Some("Microsoft:Hyper-V:System:Realized"))
                );
            }
            other => panic!("{other:?}"),
        }
        let dynamic = all(Filters {
            required_qualifier: Some("Dynamic".into()),
            ..Filters::default()
        });
        assert_eq!(
            dynamic.map(|v| v.len()).ok(),
            everything.map(|v| v.len()).ok()
        );
        let none = all(Filters {
            required_qualifier: Some("Association".into()),
            ..Filters::default()
        });
        assert!(
            none.is_ok_and(|v| v.is_empty()),
            "no associator is an association"
        );
        let bad_class = all(Filters {
            result_class: Some("Msvm_Nothing".into()),
            ..Filters::default()
        });
        assert!(matches!(bad_class, Err(TraversalError::UnknownClass(_))));
    }
}
