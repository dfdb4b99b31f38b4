//! Against a real Hyper-V lab, only when one is configured:
//! `REPLICA_LAB_URL="HV-PRIMARY=https://hv1:5986/wsman,HV-REPLICA=https://hv2:5986/wsman"`,
//! `REPLICA_LAB_CREDENTIALS=USER:PASS`, `REPLICA_LAB_VM_PREFIX=lab-`. Scenario roles are bound to
//! lab VMs under the prefix; what no lab can run is skipped, with the reason.

#[test]
fn round_trip_scenarios_against_a_real_lab() {
    let Ok(urls) = std::env::var("REPLICA_LAB_URL") else {
        eprintln!("skipped: REPLICA_LAB_URL is not set (no real Hyper-V lab configured)");
        return;
    };
    let creds = std::env::var("REPLICA_LAB_CREDENTIALS").unwrap_or_else(|_| "admin:admin".into());
    let prefix = std::env::var("REPLICA_LAB_VM_PREFIX").unwrap_or_else(|_| "lab-".into());
    let mut cmd = std::process::Command::new(crate::common::bin());
    cmd.arg("run")
        .arg("--insecure")
        .arg("--credentials")
        .arg(creds);
    for t in urls.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        cmd.arg("--target").arg(t);
    }
    cmd.arg("--vm-prefix")
        .arg(prefix)
        .arg("--allow-changes-to-real-vms");
    let out = cmd.output().expect("run against the lab");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
