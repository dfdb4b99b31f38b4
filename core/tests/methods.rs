//! Every modelled WMI method has a decode to an operation and at least one table row, unless
//! its declaration says it is a read (answered from the world): a method added to
//! `methods::METHODS` without either fails here (issue 15, one declaration per method).

use replica_core::methods::{Arg, Call, METHODS, ParamKind};
use replica_core::ops::WmiClass;
use replica_core::table;
use std::collections::BTreeMap;

/// A plausible value for each parameter kind, enough for the decoder to build its operation.
fn sample(name: &str, kind: ParamKind) -> Arg {
    match kind {
        ParamKind::Ref(class) => Arg::Ref {
            class: class.to_string(),
            keys: [("Name".to_string(), "VM-1".to_string())]
                .into_iter()
                .collect(),
        },
        ParamKind::Instance(class) => {
            let props: BTreeMap<String, Vec<String>> = [
                ("AllowedPrimaryHostSystem", "HV-PRIMARY"),
                ("RecoveryConnectionPoint", "HV-REPLICA"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect();
            Arg::Instance {
                class: class.to_string(),
                props,
            }
        }
        // Values every page documents: 1 (e.g. InitialReplicationType Network), 2 (Enabled,
        // Start) are accepted by the decoder; what the table then does is not this test's
        // business.
        ParamKind::U16 if name == "RequestedState" => Arg::Int(2),
        ParamKind::U16 => Arg::Int(1),
        ParamKind::Str => Arg::Text("HV-REPLICA".into()),
        ParamKind::StrArray => Arg::List(vec!["HV-REPLICA".into()]),
        ParamKind::Bool => Arg::Bool(true),
        ParamKind::Datetime => Arg::Null,
    }
}

#[test]
fn every_method_decodes_to_an_operation_the_table_has_a_row_for() {
    let ops = table::operations();
    let mut problems = Vec::new();
    for sig in METHODS.iter().filter(|s| !s.reads) {
        let call = Call {
            class: Some(sig.class),
            method: sig.name.to_string(),
            target_vm: (sig.class == WmiClass::ComputerSystem).then(|| "VM-1".to_string()),
            target_job: (sig.class == WmiClass::ConcreteJob).then(|| "JOB-1".to_string()),
            args: sig
                .inputs
                .iter()
                .map(|(n, k)| ((*n).to_string(), sample(n, *k)))
                .collect(),
        };
        let label = format!("{}.{}", sig.class.name(), sig.name);
        match call.to_operation() {
            Ok(op) => match op.kind() {
                Ok(kind) if ops.contains(&kind) => {}
                Ok(kind) => problems.push(format!("{label}: no table row for {kind:?}")),
                Err(code) => problems.push(format!("{label}: the sample is refused with {code}")),
            },
            Err((code, why)) => problems.push(format!("{label}: no decode ({code:?}: {why})")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A StartReplication with an undocumented InitialReplicationType is refused (32773) but is
/// still a StartReplication call for the journal and for fault plans (it was named
/// RequestStateChange through a fallback).
#[test]
fn a_refused_start_replication_keeps_its_method_name() {
    let call = Call {
        class: Some(WmiClass::ReplicationService),
        method: "StartReplication".into(),
        target_vm: None,
        target_job: None,
        args: [
            (
                "ComputerSystem".to_string(),
                sample("ComputerSystem", ParamKind::Ref("Msvm_ComputerSystem")),
            ),
            ("InitialReplicationType".to_string(), Arg::Int(9)),
        ]
        .into_iter()
        .collect(),
    };
    let op = call.to_operation().expect("decodes");
    assert_eq!(op.kind(), Err(32773));
    assert_eq!(op.method(), "StartReplication");
}
