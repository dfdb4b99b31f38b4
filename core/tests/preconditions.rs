//! The table's preconditions answer the calls they refuse, say so in the answer, and are
//! counted by coverage: the refusals that used to be engine code are now visible rows.

use replica_core::coverage::Coverage;
use replica_core::table::PRECONDITIONS;
use replica_core::topology::TopologySpec;
use replica_core::{Operation, World};
use std::path::Path;

const T0: u64 = 1_767_225_600_000;
const WEB: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02";

fn world() -> World {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/topologies/default.toml");
    let text = std::fs::read_to_string(&path).expect("default topology");
    let spec: TopologySpec = toml::from_str(&text).expect("topology parses");
    spec.build(42, T0).expect("topology builds")
}

fn stats(vm: &str) -> Operation {
    Operation::GetReplicationStatistics {
        vm: vm.into(),
        rel: replica_core::world::RelIx::Primary,
    }
}

#[test]
fn a_stopped_service_refuses_by_its_precondition_and_coverage_counts_it() {
    let mut w = world();
    let mut cov = Coverage::default();
    let a = w.apply("HV-PRIMARY", &Operation::StopService, T0);
    assert_eq!((a.code, a.precondition), (0, None));
    let refused = w.apply("HV-PRIMARY", &stats(WEB), T0);
    assert_eq!(refused.code, 32777);
    assert_eq!(refused.precondition, Some("service-running"));
    assert_eq!(refused.rule, None);
    cov.record(&refused);
    // StartService is exempt from it and answers.
    let started = w.apply("HV-PRIMARY", &Operation::StartService, T0);
    assert_eq!((started.code, started.precondition), (0, None));
    cov.record(&started);
    let report = cov.report();
    let row = report
        .preconditions
        .iter()
        .find(|r| r.id == "service-running")
        .expect("a coverage row per precondition");
    assert_eq!(row.count, 1);
    assert!(
        row.description.contains("not for StartService"),
        "{}",
        row.description
    );
    assert!(
        !report
            .missing_preconditions
            .contains(&"service-running".to_string())
    );
    assert!(
        report
            .missing_preconditions
            .contains(&"vm-idle".to_string())
    );
    assert_eq!(report.preconditions.len(), PRECONDITIONS.len() + 1);
}

#[test]
fn a_busy_vm_refuses_by_its_precondition_but_still_answers_statistics() {
    let mut w = world();
    // Suspend replication: a job (4096) that keeps web-01 busy until it ends.
    let suspend = Operation::RequestReplicationStateChange {
        vm: WEB.into(),
        rel: replica_core::world::RelIx::Primary,
        requested: 7,
    };
    let first = w.apply("HV-PRIMARY", &suspend, T0);
    assert_eq!(first.code, 4096, "{first:?}");
    let again = w.apply("HV-PRIMARY", &suspend, T0);
    assert_eq!((again.code, again.precondition), (32774, Some("vm-idle")));
    let read = w.apply("HV-PRIMARY", &stats(WEB), T0);
    assert_eq!((read.code, read.precondition), (0, None));
}

#[test]
fn an_unknown_vm_is_refused_by_vm_known() {
    let mut w = world();
    let a = w.apply("HV-PRIMARY", &stats("no-such-vm"), T0);
    assert_eq!((a.code, a.precondition), (32773, Some("vm-known")));
}
