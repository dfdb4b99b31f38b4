//! The soak's consistency check on a short run (CI runs a million calls in release through
//! `replica-sim soak`, from scripts/test.sh).

use crate::soak::{SoakOptions, run};

#[test]
fn a_short_soak_is_consistent() {
    let report = run(SoakOptions {
        calls: 5_000,
        threads: 2,
        seed: 7,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.calls, 5_000);
    assert_eq!(report.journaled, 5_000);
    assert!(report.accepted > 50, "{report}");
    assert!(report.by_rule.len() >= 5, "{report}");
    for kind in [
        "Invoke",
        "Get",
        "Enumerate",
        "Pull",
        "Release",
        "Identify",
        "Malformed",
        "ReadOnly",
    ] {
        assert!(
            report.kinds.get(kind).copied().unwrap_or(0) > 0,
            "no {kind}: {report}"
        );
    }
}
