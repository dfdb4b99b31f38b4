//! The scenario suite against the simulator: in-process (`--sim`), over HTTP as a plain
//! `--target` (the probe finds its control API), and as a spawned `replica-sim serve`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use replica_conformance::target::TargetSpec;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulator_named_by_url_is_recognised_and_passes() {
    // Started here, reached only through its URLs like any `--target`.
    let sim = connect(&TargetSpec::Sim).await;
    let hosts = sim.hosts.clone();
    let target = connect(&TargetSpec::Hosts(hosts)).await;
    assert!(
        target.is_simulator(),
        "the control API probe should find a replica-sim"
    );
    let reports = run(&target, None).await;
    shutdown(target).await;
    shutdown(sim).await;
    let bad = failures(&reports);
    assert!(bad.is_empty(), "failures:\n{}", bad.join("\n"));
}

#[test]
fn the_binary_run_sim_exits_0_and_writes_reports() {
    let dir = temp_dir("bin-run");
    std::fs::create_dir_all(&dir).expect("dir");
    let (junit, json) = (dir.join("junit.xml"), dir.join("report.json"));
    let out = Command::new(bin())
        .args(["run", "--sim", "--junit"])
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 failed"), "{stdout}");
    let x = std::fs::read_to_string(&junit).expect("junit written");
    assert!(roxmltree::Document::parse(&x).is_ok());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    assert_eq!(v["failed"], 0);
    // Not a terminal: plain progress lines on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PASS refusals"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_binary_exits_1_on_a_failing_scenario() {
    let dir = temp_dir("bin-fail");
    std::fs::create_dir_all(dir.join("scenarios")).expect("dir");
    std::fs::write(
        dir.join("scenarios").join("wrong.toml"),
        "name = \"wrong\"\n[[step]]\ncall = \"CommitFailover\"\nhost = \"HV-REPLICA\"\nvm = \"app-01\"\nexpect = { code = 0 }\n",
    )
    .expect("write");
    let out = Command::new(bin())
        .args(["run", "--sim", "--scenarios"])
        .arg(dir.join("scenarios"))
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("ReturnValue 32775 (expected 0)"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_real_host_guard_refuses_without_both_flags() {
    // A host that accepts connections but has no control API: treated as real Hyper-V. (A
    // port where nothing listens is refused as unreachable instead.)
    let not_a_sim = not_a_simulator();
    let primary = format!("HV-PRIMARY=http://{not_a_sim}/wsman");
    let replica = format!("HV-REPLICA=http://{not_a_sim}/wsman");
    let targets = ["--target", &primary, "--target", &replica];
    for extra in [
        &[][..],
        &["--vm-prefix", "lab-"][..],
        &["--allow-changes-to-real-vms"][..],
        &["--vm-prefix", "", "--allow-changes-to-real-vms"][..],
    ] {
        let out = Command::new(bin())
            .arg("run")
            .args(targets)
            .args(extra)
            .output()
            .expect("run the binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("refusing to run against real hosts"),
            "{stderr}"
        );
    }
    let out = Command::new(bin())
        .arg("explore")
        .args(targets)
        .args(["--vm-prefix", "lab-", "--allow-changes-to-real-vms"])
        .output()
        .expect("run the binary");
    // With both flags, explore goes on to the hosts, and neither answers WS-Management.
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot explore these hosts") && stderr.contains("host HV-PRIMARY"),
        "{stderr}"
    );
}

/// A listener that answers every request 404 with no control API, as a host that is not
/// replica-sim does; its thread ends with the test process.
fn not_a_simulator() -> std::net::SocketAddr {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    addr
}

/// The `replica-sim` binary, when it has been built (CI builds it first, see scripts/test.sh).
fn replica_sim_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REPLICA_SIM_BIN").map(PathBuf::from)
        && p.is_file()
    {
        return Some(p);
    }
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/it-HASH → target/
    let target = exe.parent()?.parent()?.parent()?;
    ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("replica-sim"))
        .find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_against_a_spawned_replica_sim_serve() {
    let Some(sim) = replica_sim_bin() else {
        eprintln!(
            "skipped: no replica-sim binary (set REPLICA_SIM_BIN or `cargo build -p replica-sim`); \
             the same path is covered over HTTP by a_simulator_named_by_url_is_recognised_and_passes"
        );
        return;
    };
    let mut child = Command::new(&sim)
        .args(["serve", "--listen", "127.0.0.1:0", "--seed", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn replica-sim serve");
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let ready: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
    let hosts: BTreeMap<String, String> = ready["hosts"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|u| (k.clone(), u.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let result = if hosts.is_empty() {
        Err(format!("no ready line from replica-sim serve: {line:?}"))
    } else {
        let target = connect(&TargetSpec::Hosts(hosts)).await;
        let simulator = target.is_simulator();
        let reports = run(&target, None).await;
        shutdown(target).await;
        if simulator {
            Ok(failures(&reports))
        } else {
            Err("not recognised as a simulator".into())
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    match result {
        Ok(bad) => assert!(bad.is_empty(), "failures:\n{}", bad.join("\n")),
        Err(e) => panic!("{e}"),
    }
}
