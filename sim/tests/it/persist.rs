//! `serve --state-file`: the real binary, stopped with SIGTERM in the middle of a failback and
//! started again; broken files refused with exit code 2 and left as they were.

use super::control::{APP01, REPLICA, ctl};
use replica_client::control::{Control, WorldState};
use replica_client::wsman::{
    AuthMethod, ClientOptions, Credentials, Epr, Param, SelectorSet, WsmanClient, class_uri,
};
use replica_sim::FaultSpec;
use serde_json::{Value as Json, json};
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_replica-sim");

/// A `replica-sim serve` child, killed if the test ends early.
struct Served {
    child: Option<Child>,
    hosts: Json,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("replica-sim starts");
        let line = super::support::read_ready_line(&mut child, 20);
        let mut served = Served {
            child: Some(child),
            hosts: Json::Null,
        };
        let ready: Json = serde_json::from_str(&line).unwrap_or_else(|e| {
            let (code, err) = served.wait();
            panic!("no ready line ({e}): `{line}`; exit {code:?}: {err}")
        });
        assert_eq!(ready["ready"], true);
        served.hosts = ready["hosts"].clone();
        served
    }

    fn addr(&self, host: &str) -> SocketAddr {
        let url = self.hosts[host].as_str().expect("host url");
        url.trim_start_matches("http://")
            .trim_end_matches("/wsman")
            .parse()
            .expect("address")
    }

    /// SIGTERM, then the exit code and stderr.
    fn terminate(&mut self) -> (Option<i32>, String) {
        if let Some(c) = &self.child {
            let pid = c.id().to_string();
            // kill(1), or the shell's builtin where the utility is not installed.
            let status = Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .or_else(|_| {
                    Command::new("sh")
                        .args(["-c", &format!("kill -TERM {pid}")])
                        .status()
                })
                .expect("kill");
            assert!(status.success());
        }
        self.wait()
    }

    fn wait(&mut self) -> (Option<i32>, String) {
        let Some(mut c) = self.child.take() else {
            return (None, String::new());
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = c.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("replica-sim did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = c.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.code(), err)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the binary to its end (it must refuse to start).
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("replica-sim runs");
    assert!(out.stdout.is_empty(), "it printed a ready line");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// replica-client's clients of a served simulator's replica host, default world: this test
/// arranges and reads a world like any user of the simulator (the control API's own HTTP is
/// tested in control.rs). Calls run on a runtime of their own.
struct Clients {
    rt: tokio::runtime::Runtime,
    control: Control,
    replica: WsmanClient,
}

impl Clients {
    fn new(addr: SocketAddr) -> Clients {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let http = replica_client::control::http_client(false).expect("HTTP client");
        Clients {
            rt,
            control: Control::new(http, format!("http://{addr}"), None),
            replica: WsmanClient::new(
                format!("http://{addr}/wsman"),
                Credentials::new("admin", "admin"),
                ClientOptions {
                    auth: AuthMethod::Basic,
                    ..ClientOptions::default()
                },
            )
            .expect("WS-Management client"),
        }
    }

    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// `Msvm_ReplicationService.<method>(ComputerSystem = vm)` on the replica host: ReturnValue
    /// and the job started.
    fn service_call(&self, method: &str, vm: &str) -> (u32, Option<String>) {
        let service = SelectorSet::from([
            ("CreationClassName", "Msvm_ReplicationService"),
            ("Name", "replicasvc"),
            ("SystemCreationClassName", "Msvm_ComputerSystem"),
            ("SystemName", REPLICA),
        ]);
        let vm = Param::Epr(Epr::new(
            class_uri("Msvm_ComputerSystem"),
            [("CreationClassName", "Msvm_ComputerSystem"), ("Name", vm)],
        ));
        let out = self
            .run(self.replica.invoke(
                &class_uri("Msvm_ReplicationService"),
                method,
                &service,
                &[("ComputerSystem", vm)],
            ))
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        (out.return_value, out.job_instance_id().map(str::to_string))
    }

    /// A job's (JobState, PercentComplete).
    fn job(&self, id: &str) -> (u16, u16) {
        let j = self
            .run(self.replica.get(
                &class_uri("Msvm_ConcreteJob"),
                &SelectorSet::from([("InstanceID", id)]),
            ))
            .unwrap_or_else(|e| panic!("job {id}: {e}"));
        (
            j.u16("JobState").expect("JobState"),
            j.u16("PercentComplete").expect("PercentComplete"),
        )
    }

    fn advance(&self, ms: u64) {
        self.run(self.control.advance(ms)).expect("advance");
    }

    fn state(&self) -> WorldState {
        self.run(self.control.state()).expect("state")
    }
}

/// The replication state number of `vm` on `host`.
fn vm_state(s: &WorldState, host: &str, vm: &str) -> u16 {
    s.hosts[host]
        .vms
        .iter()
        .find(|v| v.id == vm)
        .unwrap_or_else(|| panic!("no VM {vm} on {host}"))
        .state
        .value
}

fn only_file(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn restart_in_the_middle_of_a_failback_keeps_the_world() {
    let dir = super::support::scratch_dir("restart");
    let file = dir.join("state.json");
    let f = file.to_str().expect("utf8 path");
    let args = ["--clock", "manual", "--seed", "11", "--state-file", f];

    let mut sim = Served::start(&args);
    assert!(file.exists(), "a new state file is written at start");
    let addr = sim.addr(REPLICA);
    let c = Clients::new(addr);
    let (code, _) = c.service_call("InitiateFailover", APP01);
    assert_eq!(code, 4096);
    c.advance(1000);
    let (code, job) = c.service_call("InitiateFailback", APP01);
    assert_eq!(code, 4096);
    let job = job.expect("job");
    c.advance(400);
    assert_eq!(c.job(&job), (4, 50));
    let fault: FaultSpec = serde_json::from_value(
        json!({ "kind": "return_code", "code": 32774, "method": "StopService" }),
    )
    .expect("a fault spec");
    c.run(c.control.add_fault(&fault)).expect("fault added");
    ctl(addr, Some("other"), "GET", "health", None, 200);
    let before = c.state();
    let journal_before = c.run(c.control.journal_page(0, 10_000)).expect("journal");
    drop(c);

    let (code, err) = sim.terminate();
    assert_eq!(code, Some(0), "clean stop: {err}");
    assert_eq!(only_file(&dir), ["state.json"], "no temporary file left");

    let sim = Served::start(&args);
    let c = Clients::new(sim.addr(REPLICA));
    let after = c.state();
    assert_eq!(vm_state(&after, REPLICA, APP01), 13);
    let j = after.hosts[REPLICA]
        .jobs
        .iter()
        .find(|j| j.id == job)
        .expect("the job survived");
    assert_eq!((j.state.value, j.percent), (4, 50));
    assert_eq!(
        after.now, before.now,
        "virtual time resumes where it stopped"
    );
    assert_eq!(after.faults, before.faults);
    assert_eq!(after.hosts, before.hosts);
    assert_eq!(after.seed, 11);
    let worlds = c.run(c.control.worlds()).expect("worlds");
    assert_eq!(worlds, ["default", "other"]);
    // The journal and its cursor go on.
    let journal = c.run(c.control.journal_page(0, 10_000)).expect("journal");
    assert_eq!(journal.entries, journal_before.entries);
    assert_eq!(c.job(&job), (4, 50));
    let journal = c.run(c.control.journal_page(0, 10_000)).expect("journal");
    assert_eq!(journal.latest, journal_before.latest + 1);

    // The job completes once the clock moves on.
    c.advance(400);
    assert_eq!(c.job(&job).0, 7);
    assert_eq!(vm_state(&c.state(), REPLICA, APP01), 14);
    drop(c);
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn changes_are_saved_without_a_signal() {
    let dir = super::support::scratch_dir("onchange");
    let file = dir.join("state.json");
    let sim = Served::start(&[
        "--clock",
        "manual",
        "--state-file",
        file.to_str().expect("utf8"),
    ]);
    let addr = sim.addr(REPLICA);
    ctl(
        addr,
        None,
        "POST",
        "faults",
        Some(json!({ "kind": "host_down", "host": "HV-PRIMARY" })),
        201,
    );
    // The saver checks every 200 ms; the deadline only turns a lost change into a failure
    // instead of a hang, and is generous for a machine busy with other builds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("host_down") {
            break;
        }
        assert!(Instant::now() < deadline, "the change was not saved");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Killed without a chance to save: the file on disk is still a complete state.
    drop(sim);
    let text = std::fs::read_to_string(&file).expect("file");
    // Complete JSON (a torn write would not parse); the restart below proves it valid.
    serde_json::from_str::<serde_json::Value>(&text).expect("a complete state file");
    let sim = Served::start(&["--state-file", file.to_str().expect("utf8")]);
    let f = ctl(sim.addr(REPLICA), None, "GET", "faults", None, 200);
    assert_eq!(f["faults"][0]["kind"], "host_down");
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn broken_state_files_are_refused_and_kept() {
    let dir = super::support::scratch_dir("broken");
    let file = dir.join("state.json");
    let f = file.to_str().expect("utf8");
    // A real state file, cut in half.
    let mut sim = Served::start(&["--clock", "manual", "--state-file", f]);
    let (code, _) = sim.terminate();
    assert_eq!(code, Some(0));
    let good = std::fs::read(&file).expect("saved");
    let cut = &good[..good.len() / 2];
    for (content, words) in [
        (cut.to_vec(), "truncated"),
        (Vec::new(), "empty"),
        (
            b"{\"format\": \"something\"}".to_vec(),
            "not a valid replica-sim state file",
        ),
        (b"\xff\xfe".to_vec(), "not UTF-8"),
        (
            String::from_utf8_lossy(&good)
                .replacen("\"version\":1", "\"version\":99", 1)
                .into_bytes(),
            "version",
        ),
    ] {
        std::fs::write(&file, &content).expect("write");
        let (code, err) = refused(&["--state-file", f]);
        assert_eq!(code, Some(2), "{words}: {err}");
        assert!(err.contains(words), "{words}: {err}");
        assert!(err.contains(f), "names the file: {err}");
        assert_eq!(
            std::fs::read(&file).expect("read"),
            content,
            "left as it was"
        );
    }
    // A directory that cannot hold the file fails at start, not at SIGTERM.
    let (code, err) = refused(&["--state-file", "/nonexistent-dir/state.json"]);
    assert_eq!(code, Some(2), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_topology_file_is_refused_with_its_line() {
    let dir = super::support::scratch_dir("topology");
    let file = dir.join("t.toml");
    std::fs::write(
        &file,
        "[[hosts]]\nname = \"A\"\n\n[[vms]]\nname = \"v\"\nhost = \"B\"\n",
    )
    .expect("write");
    let (code, err) = refused(&["--topology", file.to_str().expect("utf8")]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!("{}:6:", file.display()))
            && err.contains("vms[0].host: unknown host `B`; expected one of A"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
