//! `replica-sim demo` as a user runs it: the built binary, stdout a pipe, `NO_COLOR=1`.
//! The narration must name every call with its ReturnValue, follow each job to its end, show
//! the state changes on both hosts, contain no ANSI escape, and end at Failback complete.

use std::io::{Read as _, Write as _};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `replica-sim demo ARGS` with `stdin` fed in, killing it after `limit`.
fn demo(args: &[&str], stdin: &str, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_replica-sim"))
        .arg("demo")
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("replica-sim starts");
    let mut input = child.stdin.take().expect("stdin");
    let feed = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(feed.as_bytes());
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("replica-sim demo {args:?} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let _ = writer.join();
    let stdout = reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    (
        Output {
            status,
            stdout,
            stderr,
        },
        elapsed,
    )
}

/// Asserts that `needles` appear in `text` in this order; returns nothing, panics with context.
fn assert_in_order(text: &str, needles: &[&str]) {
    let mut at = 0;
    for n in needles {
        match text[at..].find(n) {
            Some(i) => at += i + n.len(),
            None => panic!(
                "the demo's narration lacks, after byte {at}, the line part:\n  {n}\n--- narration:\n{text}"
            ),
        }
    }
}

#[test]
fn demo_narrates_planned_failover_reverse_and_initiate_failback_in_plain_text() {
    let (out, elapsed) = demo(&[], "", Duration::from_secs(60));
    let text = String::from_utf8(out.stdout).expect("UTF-8 narration");
    assert!(
        out.status.success(),
        "demo exited {:?}\nstdout:\n{text}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains('\x1b'),
        "NO_COLOR and a pipe: no ANSI escape expected:\n{text}"
    );
    assert!(
        elapsed < Duration::from_secs(15),
        "the demo took {elapsed:?}; it should take well under 15 s"
    );
    assert_in_order(
        &text,
        &[
            // The real endpoints, found over the wire.
            "HV-PRIMARY  http://127.0.0.1:",
            "Identify: Microsoft Corporation",
            "app-01 is Msvm_ComputerSystem.Name=6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01",
            // 1. Prepare on the primary.
            "Step 1/8",
            "call    Msvm_ComputerSystem.RequestReplicationStateChange(RequestedState=4) on HV-PRIMARY, VM app-01",
            "return  ReturnValue 4096 Method Parameters Checked - Job Started  Job ",
            "state   HV-PRIMARY  app-01  ReplicationState  3 Replicating -> 4 Synced replication complete (PreparedForFailover)",
            "job     [######..................]  25%  JobState 4 Running  (JobType 96 Replicate State Change)",
            "job     [########################] 100%  JobState 7 Completed  (JobType 96 Replicate State Change)",
            // 2. Failover on the replica.
            "Step 2/8",
            "call    Msvm_ReplicationService.InitiateFailover(ComputerSystem=app-01) on HV-REPLICA, VM app-01",
            "ReturnValue 4096 Method Parameters Checked - Job Started",
            "HV-REPLICA  app-01  ReplicationState  3 Replicating -> 12 Failover in progress (Recovering)",
            "JobState 7 Completed  (JobType 97 Initiate Failover)",
            "HV-REPLICA  app-01  ReplicationState  12 Failover in progress (Recovering) -> 5 Recovered",
            // 3. Commit.
            "Step 3/8",
            "Msvm_ReplicationService.CommitFailover(ComputerSystem=app-01) on HV-REPLICA",
            "JobState 7 Completed  (JobType 99 Commit Failover)",
            "HV-REPLICA  app-01  ReplicationState  5 Recovered -> 6 Committed",
            // 4. Reverse: both hosts change.
            "Step 4/8",
            "Msvm_ReplicationService.ReverseReplicationRelationship(ComputerSystem=app-01, ReplicationSettingData.RecoveryConnectionPoint=HV-PRIMARY) on HV-REPLICA",
            "JobState 7 Completed  (JobType 104 Reverse Replication)",
            "mode    HV-PRIMARY  app-01  ReplicationMode  1 Primary -> 2 Replica",
            "mode    HV-REPLICA  app-01  ReplicationMode  2 Replica -> 1 Primary",
            "HV-REPLICA  app-01  ReplicationState  6 Committed -> 3 Replicating",
            // 5. Power on and off at the recovery site: synchronous calls.
            "Step 5/8",
            "Msvm_ComputerSystem.RequestStateChange(RequestedState=2) on HV-REPLICA",
            "return  ReturnValue 0 Completed with No Error",
            "power   HV-REPLICA  app-01  EnabledState  3 Disabled (off) -> 2 Enabled (running)",
            "Msvm_ComputerSystem.RequestStateChange(RequestedState=3) on HV-REPLICA",
            "power   HV-REPLICA  app-01  EnabledState  2 Enabled (running) -> 3 Disabled (off)",
            // 6-7. The way back.
            "Step 6/8",
            "Msvm_ComputerSystem.RequestReplicationStateChange(RequestedState=4) on HV-REPLICA",
            "HV-REPLICA  app-01  ReplicationState  3 Replicating -> 4 Synced replication complete (PreparedForFailover)",
            "Step 7/8",
            "Msvm_ReplicationService.InitiateFailover(ComputerSystem=app-01) on HV-PRIMARY",
            "HV-PRIMARY  app-01  ReplicationState  12 Failover in progress (Recovering) -> 5 Recovered",
            // 8. InitiateFailback: 13 while the job runs, 14 when it ends.
            "Step 8/8",
            "call    Msvm_ReplicationService.InitiateFailback(",
            "return  ReturnValue 4096 Method Parameters Checked - Job Started",
            "state   HV-PRIMARY  app-01  ReplicationState  5 Recovered -> 13 Failback in progress (WaitingForFailback)",
            "job     [############............]  50%  JobState 4 Running  (JobType 124 Initiate Failback)",
            "job     [########################] 100%  JobState 7 Completed  (JobType 124 Initiate Failback)",
            "state   HV-PRIMARY  app-01  ReplicationState  13 Failback in progress (WaitingForFailback) -> 14 Failback complete (FailbackCompleted)",
            "HV-PRIMARY  app-01  2 Replica    14 Failback complete (FailbackCompleted)",
        ],
    );
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert_eq!(
        last,
        "Done: app-01 on HV-PRIMARY is 14 Failback complete (FailbackCompleted)."
    );
    // Every call of the narration answered 0 or 4096: the demo stops at the first refusal.
    assert_eq!(text.matches("call    ").count(), 9, "{text}");
    assert_eq!(text.matches("return  ReturnValue ").count(), 9, "{text}");
}

#[test]
fn demo_step_waits_for_enter_before_each_step() {
    // Eight Enters for eight steps; a fast clock keeps the test short.
    let (out, _) = demo(
        &["--step", "--speed", "50"],
        &"\n".repeat(8),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches("(press Enter for the next step)").count(),
        8,
        "{text}"
    );
    assert!(text.contains("14 Failback complete (FailbackCompleted)"));
}

#[test]
fn demo_refuses_a_bad_speed() {
    let (out, _) = demo(&["--speed", "0"], "", Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--speed must be in (0, 1000]"), "{err}");
}
