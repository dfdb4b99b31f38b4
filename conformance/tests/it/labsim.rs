//! CI's rehearsal of a real-lab run: a `replica-sim serve --as-real-host` process holding a
//! lab-shaped topology (`fixtures/topologies/lab.toml`: hosts LAB-HV1/LAB-HV2, VMs `lab-01`…,
//! production VMs `prod-*` that fit the roles but are outside the prefix) is driven by the
//! `replica-conformance` binary exactly as a lab owner would drive real hosts. Nothing here
//! uses the simulator's control API (it is hidden in that mode); what the runner did to VMs
//! outside the prefix is checked on the host's side, from the simulator's own log of method
//! calls (a Hyper-V host's VMMS event log has the same), and by reading the VMs over WS-Man.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use replica_client::wsman::{ClientOptions, WsmanClient};
use replica_conformance::observe::HostSnapshot;
use replica_conformance::target::HostConn;

use crate::common::*;

/// The production VMs of lab.toml, by GUID (the simulator's log names VMs by GUID).
const PROD: [(&str, &str); 3] = [
    ("prod-app", "9E0D0000-0000-4000-8000-000000000001"),
    ("prod-sql", "9E0D0000-0000-4000-8000-000000000002"),
    ("prod-build", "9E0D0000-0000-4000-8000-000000000003"),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The `replica-sim` binary: REPLICA_SIM_BIN, else next to this test's target directory
/// (scripts/test.sh builds it before the tests).
fn replica_sim_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REPLICA_SIM_BIN").map(PathBuf::from)
        && p.is_file()
    {
        return Some(p);
    }
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?;
    ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("replica-sim"))
        .find(|p| p.is_file())
}

/// A running `serve --as-real-host`; killed on drop.
struct LabSim {
    child: Child,
    hosts: BTreeMap<String, String>,
    log: PathBuf,
}

impl Drop for LabSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, dir: &Path) -> LabSim {
    let log = dir.join("sim.log");
    let child = Command::new(bin)
        .args([
            "serve",
            "--as-real-host",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "0",
        ])
        // Real time: a lab's jobs take time, and the runner polls them as it would there.
        .args(["--clock", "realtime"])
        .arg("--topology")
        .arg(fixtures().join("topologies/lab.toml"))
        .env("RUST_LOG", "info,replica_sim::calls=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn replica-sim serve --as-real-host");
    let mut sim = LabSim {
        child,
        hosts: BTreeMap::new(),
        log,
    };
    let mut line = String::new();
    if let Some(out) = sim.child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let ready: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
    sim.hosts = ready["hosts"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|u| (k.clone(), u.to_string())))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(sim.hosts.len(), 2, "ready line: {line:?}");
    sim
}

/// `--target` arguments: the scenarios' host names mapped to the lab's hosts.
fn targets(sim: &LabSim) -> Vec<String> {
    vec![
        "--target".into(),
        format!("HV-PRIMARY={}", sim.hosts["LAB-HV1"]),
        "--target".into(),
        format!("HV-REPLICA={}", sim.hosts["LAB-HV2"]),
    ]
}

async fn observe_host(url: &str) -> HostSnapshot {
    let c = WsmanClient::new(url, creds(), ClientOptions::default()).expect("client");
    HostConn::Wire(c)
        .snapshot()
        .await
        .expect("observe the host")
}

/// The production VMs as both hosts show them, by name.
async fn prod_views(sim: &LabSim) -> Vec<String> {
    let mut out = Vec::new();
    for url in sim.hosts.values() {
        let snap = observe_host(url).await;
        for (name, _) in PROD {
            let v = snap.view(name);
            // Recovery points are left out: replication adds them on its own clock.
            out.push(format!(
                "{name}: {} {:?} {:?} {:?} {}",
                v.exists, v.mode, v.states, v.power, v.has_test_replica
            ));
        }
    }
    out
}

/// Every `method call` line of the simulator's log as (method, vm).
fn method_calls(log: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let field = |line: &str, key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or("-")
            .trim_matches('"')
            .to_string()
    };
    text.lines()
        .filter(|l| l.contains("method call"))
        .map(|l| (field(l, "method"), field(l, "vm")))
        .collect()
}

fn run_bin(args: &[String]) -> (Option<i32>, String, String) {
    let out = Command::new(bin()).args(args).output().expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_run_against_a_simulator_answering_as_real_hosts() {
    let Some(sim_bin) = replica_sim_bin() else {
        // CI builds it (scripts/test.sh); there the rehearsal must run, not skip.
        assert!(
            std::env::var("CI").is_err(),
            "no replica-sim binary under CI: set REPLICA_SIM_BIN or build it first"
        );
        eprintln!(
            "skipped: no replica-sim binary (set REPLICA_SIM_BIN or `cargo build -p replica-sim`)"
        );
        return;
    };
    let dir = temp_dir("labsim");
    std::fs::create_dir_all(&dir).expect("dir");
    let sim = start(&sim_bin, &dir);

    // Nothing of the double shows: its control API is the 404 page HTTP.sys gives.
    let base = sim.hosts["LAB-HV1"].trim_end_matches("/wsman").to_string();
    let resp = replica_client::control::http_client(false)
        .expect("http")
        .get(format!("{base}/_replica/v1/health"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(
        resp.headers().get("server").and_then(|v| v.to_str().ok()),
        Some("Microsoft-HTTPAPI/2.0")
    );

    let prod_before = prod_views(&sim).await;
    let (json, rec) = (dir.join("report.json"), dir.join("rec"));
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(targets(&sim));
    args.extend(
        [
            "--vm-prefix",
            "lab-",
            "--allow-changes-to-real-vms",
            "--json",
            json.to_str().expect("path"),
            "--record",
            rec.to_str().expect("path"),
        ]
        .map(String::from),
    );
    let (code, stdout, stderr) = run_bin(&args);
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json");
    let scenarios = report["scenarios"].as_array().cloned().unwrap_or_default();
    let with = |status: &str| {
        scenarios
            .iter()
            .filter(|s| s["status"] == status)
            .collect::<Vec<_>>()
    };
    let (passed, skipped) = (with("passed"), with("skipped"));
    assert!(with("failed").is_empty(), "{stdout}");
    // Every scenario a lab can play ran: the others need the control API, or (enabling
    // replication) leave a VM the model has no way back from.
    for s in &skipped {
        let why = s["reason"].as_str().unwrap_or_default();
        assert!(
            why.contains("control API") || why.contains("no way back"),
            "{}: {why}",
            s["name"]
        );
    }
    assert!(passed.len() >= 12, "{} passed:\n{stdout}", passed.len());
    // Roles were played by lab VMs only, and at least one was arranged (turned off) first.
    for s in &passed {
        for (role, vm) in s["binding"].as_object().cloned().unwrap_or_default() {
            let vm = vm.as_str().unwrap_or_default();
            assert!(vm.starts_with("lab-"), "{}: {role} → {vm}", s["name"]);
        }
    }
    assert!(
        passed.iter().any(|s| s["reason"]
            .as_str()
            .is_some_and(|r| r.contains("arrange: turn off"))),
        "{stdout}"
    );

    // explore on the lab: random sequences on bound VMs, restored the same way.
    let mut ex = vec!["explore".to_string()];
    ex.extend(targets(&sim));
    ex.extend(
        [
            "--vm-prefix",
            "lab-",
            "--allow-changes-to-real-vms",
            "--cases",
            "6",
            "--steps",
            "4",
            "--seed",
            "7",
        ]
        .map(String::from),
    );
    let (code, stdout, stderr) = run_bin(&ex);
    assert_eq!(code, Some(0), "explore:\n{stdout}\n{stderr}");
    assert!(stdout.contains("0 with a divergence"), "{stdout}");

    // VMs outside the prefix: not one method call on the host's side, and unchanged.
    let calls = method_calls(&sim.log);
    assert!(
        calls.len() > 20,
        "the simulator logged {} calls",
        calls.len()
    );
    // The log is read right: calls on lab VMs show their GUIDs.
    assert!(
        calls.iter().any(|(_, vm)| vm.starts_with("1AB0F00D-")),
        "{calls:?}"
    );
    for (method, vm) in &calls {
        assert!(
            !PROD.iter().any(|(_, g)| vm.eq_ignore_ascii_case(g)),
            "{method} was called on a production VM ({vm})"
        );
    }
    assert_eq!(prod_views(&sim).await, prod_before);

    // The recording replays without the lab, and names neither the lab's addresses nor its
    // computer names.
    for entry in std::fs::read_dir(&rec).expect("recordings") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        for secret in ["127.0.0.1", "LAB-HV1", "LAB-HV2", "Authorization"] {
            assert!(!text.contains(secret), "a recording holds `{secret}`");
        }
    }
    let (code, stdout, stderr) = run_bin(&[
        "run".into(),
        "--target".into(),
        format!("replay:{}", rec.display()),
    ]);
    assert_eq!(code, Some(0), "replay:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{} passed", passed.len())),
        "{stdout}"
    );

    // Failure means failure: wrong credentials, then a host nobody answers on.
    let mut bad = vec!["run".to_string()];
    bad.extend(targets(&sim));
    bad.extend(
        [
            "--vm-prefix",
            "lab-",
            "--allow-changes-to-real-vms",
            "--credentials",
            "admin:wrong",
        ]
        .map(String::from),
    );
    let (code, _, stderr) = run_bin(&bad);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("host HV-PRIMARY") && stderr.contains("refused"),
        "{stderr}"
    );
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (code, _, stderr) = run_bin(
        &[
            "run",
            "--target",
            &format!("HV-PRIMARY={}", sim.hosts["LAB-HV1"]),
            "--target",
            &format!("HV-REPLICA=http://127.0.0.1:{closed}/wsman"),
            "--vm-prefix",
            "lab-",
            "--allow-changes-to-real-vms",
        ]
        .map(String::from),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("host HV-REPLICA") && stderr.contains("unreachable"),
        "{stderr}"
    );
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}
