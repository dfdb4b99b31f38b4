//! A running job holds its table row and its call as typed values. State files store the row
//! by id: one written before calls were kept gets its call rebuilt when it loads, and one that
//! names a row the table does not have fails to load.

use replica_core::topology::TopologySpec;
use replica_core::world::RelIx;
use replica_core::{Operation, World};
use serde_json::Value;
use std::path::Path;

const T0: u64 = 1_767_225_600_000;
const WEB: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02";

fn world_with_a_job() -> (World, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/topologies/default.toml");
    let text = std::fs::read_to_string(&path).expect("default topology");
    let spec: TopologySpec = toml::from_str(&text).expect("topology parses");
    let mut w = spec.build(42, T0).expect("topology builds");
    let suspend = Operation::RequestReplicationStateChange {
        vm: WEB.into(),
        rel: RelIx::Primary,
        requested: 7,
    };
    let a = w.apply("HV-PRIMARY", &suspend, T0);
    (w, a.job.expect("a job"))
}

/// Every stored change of the state's jobs, to edit.
fn changes(v: &mut Value) -> Vec<&mut Value> {
    let mut out = Vec::new();
    if let Value::Object(m) = v {
        for (k, x) in m.iter_mut() {
            if k == "change" && x.is_object() {
                out.push(x);
            } else {
                out.extend(changes(x));
            }
        }
    } else if let Value::Array(a) = v {
        for x in a {
            out.extend(changes(x));
        }
    }
    out
}

#[test]
fn a_job_written_without_its_call_gets_it_rebuilt_on_load() {
    let (w, job) = world_with_a_job();
    let mut v = serde_json::to_value(&w).expect("serialises");
    let mut seen = 0;
    for c in changes(&mut v) {
        assert_eq!(c["rule"], "suspend", "the row is stored by its id");
        c.as_object_mut().expect("object").remove("op");
        seen += 1;
    }
    assert_eq!(seen, 1);
    let back: World = serde_json::from_value(v).expect("an old state file loads");
    let change = back
        .job("HV-PRIMARY", &job)
        .and_then(|j| j.change.clone())
        .expect("the job keeps its change");
    assert_eq!(change.rule.id(), "suspend");
    assert_eq!(
        change.op,
        Operation::RequestReplicationStateChange {
            vm: WEB.into(),
            rel: RelIx::Primary,
            requested: 7,
        }
    );
}

#[test]
fn a_job_naming_a_row_the_table_does_not_have_fails_to_load() {
    let (w, _) = world_with_a_job();
    let mut v = serde_json::to_value(&w).expect("serialises");
    for c in changes(&mut v) {
        c["rule"] = Value::String("no-such-row".into());
    }
    let err = serde_json::from_value::<World>(v).expect_err("an unknown row is refused");
    assert!(
        err.to_string().contains("no table row no-such-row"),
        "{err}"
    );
}
