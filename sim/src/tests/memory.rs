//! Memory bounded in bytes (issue 14), checked on a world directly: client text quoted in a
//! refusal is cut in the journal, journals and enumeration contexts are charged to one
//! process-wide budget, and a short job retention keeps the job table small. Each test failed
//! before its fix. (The same rules over the wire are in `tests/it/budget.rs`.)

use super::support::*;
use crate::dispatch::{self, Access};
use crate::state::{Budget, ClockMode, Kept as _, Limits, WorldSlot};
use replica_core::profile::Profile;
use replica_core::topology::ProfileSpec;

fn world() -> WorldSlot {
    WorldSlot::new("default", crate::default_topology(), 1, ClockMode::Manual).expect("world")
}

fn invoke_xml(class: &str, selectors: &[(&str, &str)], method: &str, params: &str) -> String {
    let uri = format!("{V2}{class}");
    let body = format!(r#"<p:{method}_INPUT xmlns:p="{uri}">{params}</p:{method}_INPUT>"#);
    envelope(&format!("{uri}/{method}"), &uri, selectors, "", &body).0
}

/// ModifyReplicationSettings with ReplicationInterval = 'A' × 480,000: the refusal quoted all
/// of it, and 3,000 such calls took the process to 3.1 GiB.
#[test]
fn client_text_quoted_in_a_refusal_is_cut_in_the_journal() {
    let mut slot = world();
    let limits = Limits::default();
    let huge = "A".repeat(480_000);
    let instance = format!(
        r#"<INSTANCE CLASSNAME="Msvm_ReplicationSettingData"><PROPERTY NAME="ReplicationInterval" TYPE="uint16"><VALUE>{huge}</VALUE></PROPERTY></INSTANCE>"#
    );
    let params = format!(
        "{}<p:ReplicationSettingData><![CDATA[{instance}]]></p:ReplicationSettingData>",
        vm_ref("p:ComputerSystem", WEB_01)
    );
    let xml = invoke_xml(
        "Msvm_ReplicationService",
        &service_keys("HV-PRIMARY"),
        "ModifyReplicationSettings",
        &params,
    );
    let reply = dispatch::handle(
        &mut slot,
        "HV-PRIMARY",
        xml.as_bytes(),
        Access::ReadWrite,
        &limits,
    );
    assert_eq!(
        reply.status,
        200,
        "{}",
        &reply.body[..reply.body.len().min(2000)]
    );
    let entry = slot.journal.back().expect("journalled");
    assert!(entry.code.is_some_and(|c| c != 0 && c != 4096), "{entry:?}");
    let reason = entry.reason.as_deref().unwrap_or_default();
    assert!(reason.len() < 2048, "reason of {} bytes", reason.len());
    assert!(
        reason.contains("bytes cut"),
        "the reason quotes the value: {reason}"
    );
    assert!(
        entry.approx_bytes() < 4096,
        "{} bytes",
        entry.approx_bytes()
    );

    // Read-only credentials and a 400 KB Action URI: the same through the method name.
    let uri = format!("{V2}Msvm_ReplicationService");
    let method = "X".repeat(400_000);
    let xml = envelope(
        &format!("{uri}/{method}"),
        &uri,
        &service_keys("HV-PRIMARY"),
        "",
        "",
    )
    .0;
    dispatch::handle(
        &mut slot,
        "HV-PRIMARY",
        xml.as_bytes(),
        Access::ReadOnly,
        &limits,
    );
    let entry = slot.journal.back().expect("journalled");
    assert!(entry.approx_bytes() < 4096, "{entry:?}");
}

/// A world whose own size leaves no room for an enumeration: the `w:QuotaLimit` fault.
#[test]
fn an_enumeration_that_cannot_fit_the_budget_is_quota_limit() {
    let resource = format!("{V2}Msvm_ComputerSystem");
    let body = "<n:Enumerate/>";
    let mut tiny = Limits::default();
    let mut slot = world();
    tiny.max_memory_bytes = slot.charged() + 64;
    slot.attach(std::sync::Arc::new(Budget::new(tiny.max_memory_bytes)))
        .expect("the world itself fits");
    let xml = envelope(ENUMERATE, &resource, &[], "", body).0;
    let reply = dispatch::handle(
        &mut slot,
        "HV-PRIMARY",
        xml.as_bytes(),
        Access::ReadWrite,
        &tiny,
    );
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(reply.body.contains("QuotaLimit"), "{}", reply.body);
}

/// Journals of many worlds share one budget: past it, each world's oldest entries go.
#[test]
fn journals_are_charged_to_the_budget() {
    let budget = std::sync::Arc::new(Budget::new(4 << 20));
    let mut worlds: Vec<WorldSlot> = (0..4)
        .map(|i| {
            let mut w = WorldSlot::new(
                &format!("w{i}"),
                crate::default_topology(),
                1,
                ClockMode::Manual,
            )
            .expect("world");
            w.attach(budget.clone()).expect("fits");
            w
        })
        .collect();
    let limits = Limits::default();
    let xml = envelope(
        GET,
        &format!("{V2}Msvm_ComputerSystem"),
        &vm_keys(APP_01),
        "",
        "",
    )
    .0;
    for round in 0..20_000 {
        let w = &mut worlds[round % 4];
        dispatch::handle(w, "HV-PRIMARY", xml.as_bytes(), Access::ReadWrite, &limits);
        assert!(budget.used() <= budget.max() + 4096, "{}", budget.used());
    }
    assert!(worlds.iter().all(|w| !w.journal.is_empty()));
    assert!(worlds.iter().map(|w| w.journal.len()).sum::<usize>() < 20_000);
    drop(worlds);
    assert_eq!(budget.used(), 0, "dropped worlds give their bytes back");
}

#[test]
fn ten_thousand_jobs_under_a_short_retention_leave_a_bounded_table() {
    let mut spec = crate::default_topology();
    spec.profile = Some(ProfileSpec::Custom(Profile {
        job_ms: 20,
        job_retention_ms: 100,
        ..Profile::default()
    }));
    let mut slot = WorldSlot::new("default", spec, 3, ClockMode::Manual).expect("world");
    let limits = Limits::default();
    let call = |state: u32| {
        let uri = format!("{V2}Msvm_ComputerSystem");
        let body = format!(
            r#"<p:RequestReplicationStateChange_INPUT xmlns:p="{uri}"><p:RequestedState>{state}</p:RequestedState></p:RequestReplicationStateChange_INPUT>"#
        );
        envelope(
            &format!("{uri}/RequestReplicationStateChange"),
            &uri,
            &vm_keys(WEB_01),
            "",
            &body,
        )
        .0
    };
    // Suspend and resume, over and over: each call starts a job that ends 20 ms later.
    let (suspend, resume) = (call(7), call(3));
    let mut most = 0;
    for i in 0..10_000 {
        let req = if i % 2 == 0 { &suspend } else { &resume };
        let reply = dispatch::handle(
            &mut slot,
            "HV-PRIMARY",
            req.as_bytes(),
            Access::ReadWrite,
            &limits,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.contains(">4096<"), "call {i}: {}", reply.body);
        slot.clock.advance(25);
        let jobs = slot
            .world
            .hosts()
            .get("HV-PRIMARY")
            .map_or(0, |h| h.jobs.len());
        most = most.max(jobs);
    }
    // One job per 25 ms, each kept 20 ms + 100 ms: never more than a handful at once.
    assert!(most <= 6, "the job table reached {most}");
    assert_eq!(slot.next_seq, 10_001);
    assert!(slot.journal.len() <= limits.max_journal);
}
