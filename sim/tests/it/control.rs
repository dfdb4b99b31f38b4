//! The control API over HTTP: every endpoint, the OpenAPI document held against the server,
//! the fault kinds, the clock modes, seeded determinism, isolated worlds in parallel, and the
//! worked example of the issue (InitiateFailback's job fails with 32768 after 40 %).
//!
//! Everything goes over loopback sockets through the one raw sender (`raw.rs`), so the tests
//! see exactly what a test suite in another language sees: status lines, headers, raw JSON
//! (a typed client such as `replica_client::control::Control` would hide what is checked here).

use replica_sim::{Sim, SimConfig, SimHandle};
use replica_wsman::request;
use serde_json::{Value as Json, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Harness: an in-process simulator on its own runtime, and a blocking HTTP client.

pub const PRIMARY: &str = "HV-PRIMARY";
pub const REPLICA: &str = "HV-REPLICA";
/// app-01 of the default topology: off, Replicating, ready for a planned failover.
pub const APP01: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01";
pub const WEB01: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02";

pub struct TestSim {
    rt: tokio::runtime::Runtime,
    handle: Option<SimHandle>,
}

impl TestSim {
    pub fn start(config: SimConfig) -> TestSim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let handle = rt
            .block_on(Sim::start_with(config))
            .expect("simulator starts");
        TestSim {
            rt,
            handle: Some(handle),
        }
    }

    /// A simulator on a manual clock with a fixed seed.
    pub fn manual(seed: u64) -> TestSim {
        TestSim::start(SimConfig {
            seed,
            clock: replica_sim::ClockMode::Manual,
            ..SimConfig::default()
        })
    }

    pub fn addr(&self, host: &str) -> SocketAddr {
        *self
            .handle
            .as_ref()
            .and_then(|h| h.addrs().get(host))
            .expect("host listens")
    }
}

impl Drop for TestSim {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}

pub use crate::raw::Resp;

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`), through the one raw
/// sender. An error means the server closed the connection without an answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    crate::raw::blocking(addr, method, path, headers, body)
}

/// The control API of `world` through the path prefix (`None`: the default world).
pub fn control_path(world: Option<&str>, endpoint: &str) -> String {
    match world {
        Some(w) => format!("/worlds/{w}/_replica/v1/{endpoint}"),
        None => format!("/_replica/v1/{endpoint}"),
    }
}

pub fn call(addr: SocketAddr, method: &str, path: &str, body: Option<Json>) -> Resp {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    request(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        &bytes,
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// A control call that must answer `status`; returns its JSON.
pub fn ctl(
    addr: SocketAddr,
    world: Option<&str>,
    method: &str,
    endpoint: &str,
    body: Option<Json>,
    status: u16,
) -> Json {
    let r = call(addr, method, &control_path(world, endpoint), body);
    assert_eq!(r.status, status, "{method} {endpoint}: {}", r.text());
    r.json()
}

// ---------------------------------------------------------------------------------------------
// A little WS-Management client: raw SOAP over HTTP, as any WinRM client writes it.

pub use replica_wsman::ns::V2_BASE as V2;

/// A request in winrm.exe's layout, from the protocol crate's request builder.
pub fn envelope(
    to: &str,
    resource: &str,
    action: &str,
    selectors: &[(&str, &str)],
    body: &str,
    message_id: &str,
) -> String {
    let selectors = request::SelectorSet::from(selectors.to_vec());
    request::envelope(
        &request::Headers {
            to,
            resource_uri: resource,
            action,
            message_id,
            max_envelope_size: 512_000,
            locale: "en-US",
            selectors: Some(&selectors),
            operation_timeout: Duration::from_secs(60),
        },
        body,
    )
}

/// A WS-Management client for one host of one world.
#[derive(Clone)]
pub struct Wsman {
    pub addr: SocketAddr,
    pub host: String,
    /// `/wsman` or `/worlds/NAME/wsman`.
    pub path: String,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The answer to an Invoke.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub status: u16,
    pub code: Option<u32>,
    pub job: Option<String>,
    pub message_id: Option<String>,
    pub xml: String,
}

fn text_of(xml: &str, local: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .find(|n| n.tag_name().name() == local)
        .and_then(|n| n.text())
        .map(str::to_string)
}

fn job_selector(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    doc.descendants()
        .find(|n| n.tag_name().name() == "Selector" && n.attribute("Name") == Some("InstanceID"))
        .and_then(|n| n.text())
        .map(str::to_string)
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub state: u32,
    pub percent: u32,
    pub error_code: u32,
    pub error_description: String,
}

impl Wsman {
    pub fn new(sim: &TestSim, host: &str, world: Option<&str>) -> Wsman {
        Wsman {
            addr: sim.addr(host),
            host: host.to_string(),
            path: world.map_or_else(|| "/wsman".to_string(), |w| format!("/worlds/{w}/wsman")),
            counter: Default::default(),
        }
    }

    /// A client for `host` at `addr` (default world).
    pub fn at(addr: SocketAddr, host: &str) -> Wsman {
        Wsman {
            addr,
            host: host.to_string(),
            path: "/wsman".into(),
            counter: Default::default(),
        }
    }

    fn next_id(&self) -> String {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("uuid:00000000-0000-4000-8000-{n:012X}")
    }

    pub fn send(&self, xml: &str) -> std::io::Result<Resp> {
        request(
            self.addr,
            "POST",
            &self.path,
            &[
                ("Content-Type", "application/soap+xml;charset=UTF-8"),
                ("Authorization", "Basic YWRtaW46YWRtaW4="),
            ],
            xml.as_bytes(),
        )
    }

    fn to(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    /// `Msvm_ReplicationService.<method>(ComputerSystem = vm)`.
    pub fn service_call(&self, method: &str, vm: &str) -> std::io::Result<Invoked> {
        let rs = format!("{V2}Msvm_ReplicationService");
        let vm_ref = request::Param::Epr(replica_wsman::Epr::new(
            format!("{V2}Msvm_ComputerSystem"),
            [("CreationClassName", "Msvm_ComputerSystem"), ("Name", vm)],
        ));
        let body = request::invoke_body(&rs, method, &[("ComputerSystem", vm_ref)])
            .map_err(std::io::Error::other)?;
        let xml = envelope(
            &self.to(),
            &rs,
            &format!("{rs}/{method}"),
            &[
                ("CreationClassName", "Msvm_ReplicationService"),
                ("Name", "replicasvc"),
                ("SystemCreationClassName", "Msvm_ComputerSystem"),
                ("SystemName", &self.host),
            ],
            &body,
            &self.next_id(),
        );
        let r = self.send(&xml)?;
        let text = r.text();
        Ok(Invoked {
            status: r.status,
            code: text_of(&text, "ReturnValue").and_then(|c| c.parse().ok()),
            job: job_selector(&text),
            message_id: text_of(&text, "MessageID"),
            xml: text,
        })
    }

    /// `Get` of a job.
    pub fn get_job(&self, id: &str) -> std::io::Result<Option<JobView>> {
        let uri = format!("{V2}Msvm_ConcreteJob");
        let xml = envelope(
            &self.to(),
            &uri,
            "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
            &[("InstanceID", id)],
            "",
            &self.next_id(),
        );
        let r = self.send(&xml)?;
        let t = r.text();
        if r.status != 200 {
            return Ok(None);
        }
        let num = |k: &str| text_of(&t, k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Some(JobView {
            state: num("JobState"),
            percent: num("PercentComplete"),
            error_code: num("ErrorCode"),
            error_description: text_of(&t, "ErrorDescription").unwrap_or_default(),
        }))
    }

    /// An optimised WQL Enumerate returning the raw answer.
    pub fn wql(&self, query: &str) -> std::io::Result<Resp> {
        let body = format!(
            concat!(
                r#"<n:Enumerate><w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">{q}</w:Filter>"#,
                r#"<w:OptimizeEnumeration/><w:MaxElements>100</w:MaxElements></n:Enumerate>"#
            ),
            q = query
        );
        let xml = envelope(
            &self.to(),
            &format!("{V2}*"),
            "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
            &[],
            &body,
            &self.next_id(),
        );
        self.send(&xml)
    }
}

/// The VM with `id` on `host` in a state document.
pub fn vm_in<'a>(state: &'a Json, host: &str, id: &str) -> &'a Json {
    state["hosts"][host]["vms"]
        .as_array()
        .and_then(|vms| vms.iter().find(|v| v["id"] == id))
        .unwrap_or_else(|| panic!("no VM {id} on {host}"))
}

pub fn job_in<'a>(state: &'a Json, host: &str, id: &str) -> Option<&'a Json> {
    state["hosts"][host]["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["id"] == id))
}

fn advance(addr: SocketAddr, world: Option<&str>, ms: u64) {
    ctl(
        addr,
        world,
        "POST",
        "clock",
        Some(json!({ "advance_ms": ms })),
        200,
    );
}

/// InitiateFailover of app-01 on the replica, run to completion on a manual clock.
fn fail_over_app01(sim: &TestSim, world: Option<&str>) -> Wsman {
    let replica = Wsman::new(sim, REPLICA, world);
    let r = replica
        .service_call("InitiateFailover", APP01)
        .expect("answer");
    assert_eq!(r.code, Some(4096), "{}", r.xml);
    advance(sim.addr(REPLICA), world, 1000);
    let job = replica
        .get_job(r.job.as_deref().expect("job"))
        .expect("answer")
        .expect("job");
    assert_eq!(job.state, 7, "failover completed");
    replica
}

// ---------------------------------------------------------------------------------------------
// The worked example (issue item 6).

/// Arrange a fault (InitiateFailback's job fails with 32768 after 40 %), drive a client over
/// raw SOAP, and assert on the journal and the coverage.
#[test]
fn example_failback_job_fails_at_40_percent() {
    let sim = TestSim::manual(1);
    let addr = sim.addr(REPLICA);
    let replica = fail_over_app01(&sim, None);

    let added = ctl(
        addr,
        None,
        "POST",
        "faults",
        Some(json!({
            "kind": "fail_job", "host": REPLICA, "method": "InitiateFailback",
            "error_code": 32768, "description": "The provider could not reverse-sync the recovery point.",
            "after_percent": 40, "count": 1
        })),
        201,
    );
    let fault_id = added["id"].as_u64().expect("id");

    let call = replica
        .service_call("InitiateFailback", APP01)
        .expect("answer");
    assert_eq!((call.status, call.code), (200, Some(4096)));
    let job_id = call.job.clone().expect("job");

    // 25 %: still running, the VM shows 13 (Failback in progress).
    advance(addr, None, 200);
    let job = replica.get_job(&job_id).expect("answer").expect("job");
    assert_eq!((job.state, job.percent), (4, 25), "{job:?}");
    let state = ctl(addr, None, "GET", "state", None, 200);
    assert_eq!(vm_in(&state, REPLICA, APP01)["state"]["value"], 13);
    assert_eq!(
        vm_in(&state, REPLICA, APP01)["state"]["alias"],
        "WaitingForFailback"
    );

    // Past 40 %: Exception (10) with the planned error; the VM is back to Recovered (5).
    advance(addr, None, 200);
    let job = replica.get_job(&job_id).expect("answer").expect("job");
    assert_eq!(job.state, 10);
    assert_eq!(job.error_code, 32768);
    assert_eq!(
        job.error_description,
        "The provider could not reverse-sync the recovery point."
    );
    let state = ctl(addr, None, "GET", "state", None, 200);
    assert_eq!(vm_in(&state, REPLICA, APP01)["state"]["value"], 5);

    // The journal has the call with its answer and the fault that fired.
    let journal = ctl(addr, None, "GET", "journal", None, 200);
    let entries = journal["entries"].as_array().expect("entries");
    let failback: Vec<&Json> = entries
        .iter()
        .filter(|e| e["method"] == "InitiateFailback")
        .collect();
    assert_eq!(failback.len(), 1);
    assert_eq!(failback[0]["operation"], "Invoke");
    assert_eq!(failback[0]["code"], 4096);
    assert_eq!(failback[0]["job"], job_id.as_str());
    assert_eq!(failback[0]["vm"], APP01);
    assert_eq!(failback[0]["faults"], json!(["fail_job"]));
    assert_eq!(failback[0]["host"], REPLICA);
    let job_reads = entries
        .iter()
        .filter(|e| e["operation"] == "Get" && e["class"] == "Msvm_ConcreteJob")
        .count();
    assert_eq!(job_reads, 3);

    // Coverage: the failback rule and the fault kind were exercised; partition was not.
    let cov = ctl(addr, None, "GET", "coverage", None, 200);
    let count = |list: &str, id: &str| {
        cov[list]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["id"] == id))
            .and_then(|r| r["count"].as_u64())
            .unwrap_or_else(|| panic!("no {id} in {list}"))
    };
    assert_eq!(count("fault_kinds", "fail_job"), 1);
    assert_eq!(count("return_codes", "4096"), 2);
    assert!(
        cov["missing_fault_kinds"]
            .as_array()
            .expect("list")
            .contains(&json!("partition"))
    );
    assert!(count("rules", "failover") >= 1);
    assert!(cov["rules_covered"].as_u64().expect("n") >= 2);

    // The rule fired once and is spent; the retry completes.
    let faults = ctl(addr, None, "GET", "faults", None, 200);
    assert_eq!(faults["faults"][0]["id"], fault_id);
    assert_eq!(faults["faults"][0]["fired"], 1);
    let retry = replica
        .service_call("InitiateFailback", APP01)
        .expect("answer");
    assert_eq!(retry.code, Some(4096));
    advance(addr, None, 1000);
    let done = replica
        .get_job(retry.job.as_deref().expect("job"))
        .expect("answer")
        .expect("job");
    assert_eq!(done.state, 7);
    let state = ctl(addr, None, "GET", "state", None, 200);
    assert_eq!(vm_in(&state, REPLICA, APP01)["state"]["value"], 14);
}

// ---------------------------------------------------------------------------------------------
// Every endpoint.

#[test]
fn health_answers_on_every_listener_and_world() {
    let sim = TestSim::manual(0);
    for host in [PRIMARY, REPLICA] {
        let h = ctl(sim.addr(host), None, "GET", "health", None, 200);
        assert_eq!(h["ok"], true);
        assert_eq!(h["host"], host);
        assert_eq!(h["world"], "default");
        assert_eq!(h["hosts"].as_object().expect("hosts").len(), 2);
    }
    let h = ctl(sim.addr(PRIMARY), Some("w1"), "GET", "health", None, 200);
    assert_eq!(h["world"], "w1");
    let r = request(
        sim.addr(PRIMARY),
        "GET",
        "/_replica/v1/health",
        &[("X-Replica-World", "w2")],
        b"",
    )
    .expect("answer");
    assert_eq!(r.json()["world"], "w2");
    let r = request(
        sim.addr(PRIMARY),
        "GET",
        "/_replica/v1/health",
        &[("X-Replica-World", "bad name!")],
        b"",
    )
    .expect("answer");
    assert_eq!(r.status, 400);
    assert_eq!(
        call(sim.addr(PRIMARY), "GET", "/_replica/v1/nothing", None).status,
        404
    );
}

#[test]
fn reset_restores_default_or_takes_a_topology() {
    let sim = TestSim::manual(3);
    let addr = sim.addr(PRIMARY);
    fail_over_app01(&sim, Some("r"));
    let s = ctl(addr, Some("r"), "GET", "state", None, 200);
    assert_eq!(vm_in(&s, REPLICA, APP01)["state"]["value"], 5);
    let seq_before = s["journal_next"].as_u64().expect("cursor");

    // Empty body: the default topology again; the journal empties but its cursor goes on.
    let r = ctl(addr, Some("r"), "POST", "reset", None, 200);
    assert_eq!(r["reset"], true);
    let s = ctl(addr, Some("r"), "GET", "state", None, 200);
    assert_eq!(vm_in(&s, REPLICA, APP01)["state"]["value"], 3);
    assert_eq!(s["journal_next"].as_u64(), Some(seq_before));
    let j = ctl(addr, Some("r"), "GET", "journal", None, 200);
    assert_eq!(j["entries"], json!([]));

    // A TOML topology with a profile and a seed.
    let toml = "[[hosts]]\nname = \"A\"\n\n[[hosts]]\nname = \"B\"\n\n[[vms]]\nname = \"only\"\nhost = \"A\"\nreplication = { replica_host = \"B\" }\n";
    let r = ctl(
        addr,
        Some("r"),
        "POST",
        "reset",
        Some(json!({ "topology_toml": toml, "profile": "wrong-state-job", "seed": 9 })),
        200,
    );
    assert_eq!(r["seed"], 9);
    let s = ctl(addr, Some("r"), "GET", "state", None, 200);
    assert_eq!(
        s["hosts"]
            .as_object()
            .expect("hosts")
            .keys()
            .collect::<Vec<_>>(),
        ["A", "B"]
    );
    assert_eq!(s["profile"]["name"], "wrong-state-job");
    assert_eq!(s["seed"], 9);

    // A JSON topology.
    let r = ctl(
        addr,
        Some("r"),
        "POST",
        "reset",
        Some(json!({ "topology": { "hosts": [{ "name": "X" }] } })),
        200,
    );
    assert_eq!(r["world"], "r");
    let s = ctl(addr, Some("r"), "GET", "state", None, 200);
    assert_eq!(s["hosts"]["X"]["vms"], json!([]));

    // Refusals say where, and leave the world as it was.
    let bad = "[[hosts]]\nname = \"A\"\n\n[[vms]]\nname = \"v\"\nhost = \"A\"\nreplication = { replica_host = \"NOPE\" }\n";
    let e = ctl(
        addr,
        Some("r"),
        "POST",
        "reset",
        Some(json!({ "topology_toml": bad })),
        400,
    );
    assert_eq!(e["line"], 7);
    assert_eq!(e["field"], "vms[0].replication.replica_host");
    assert!(
        e["error"]
            .as_str()
            .expect("text")
            .contains("unknown host `NOPE`; expected one of A"),
        "{e}"
    );
    let e = ctl(
        addr,
        Some("r"),
        "POST",
        "reset",
        Some(json!({ "topology_toml": "[[hosts]\nname = 1" })),
        400,
    );
    assert_eq!(e["line"], 1);
    let e = ctl(
        addr,
        Some("r"),
        "POST",
        "reset",
        Some(json!({ "topology": { "hosts": [] } })),
        400,
    );
    assert_eq!(e["field"], "hosts");
    ctl(
        addr,
        Some("r"),
        "POST",
        "reset",
        Some(json!({ "profile": "no-such-profile" })),
        400,
    );
    ctl(
        addr,
        Some("r"),
        "POST",
        "reset",
        Some(json!({ "topolgy": {} })),
        400,
    );
    let r = call(addr, "POST", &control_path(Some("r"), "reset"), None);
    assert_eq!(r.status, 200);
    let r = request(
        addr,
        "POST",
        &control_path(Some("r"), "reset"),
        &[("Content-Type", "application/json")],
        b"{not json",
    )
    .expect("answer");
    assert_eq!(r.status, 400);
    let s = ctl(addr, Some("r"), "GET", "state", None, 200);
    assert_eq!(vm_in(&s, PRIMARY, APP01)["name"], "app-01");
}

#[test]
fn faults_are_added_listed_matched_and_cleared() {
    let sim = TestSim::manual(0);
    let addr = sim.addr(REPLICA);
    let w = Some("f");
    let a = ctl(
        addr,
        w,
        "POST",
        "faults",
        Some(
            json!({ "kind": "return_code", "code": 32775, "method": "InitiateFailover", "vm": "web-01", "count": 2 }),
        ),
        201,
    );
    assert_eq!(a["rule"]["kind"], "return_code");
    assert_eq!(a["rule"]["fired"], 0);
    let b = ctl(
        addr,
        w,
        "POST",
        "faults",
        Some(json!({ "kind": "delay", "ms": 10, "probability": 0.5 })),
        201,
    );
    assert_ne!(a["id"], b["id"]);
    let list = ctl(addr, w, "GET", "faults", None, 200);
    assert_eq!(list["faults"].as_array().map(Vec::len), Some(2));

    // Matched by method and VM (by name): app-01 is not touched, web-01 is.
    let replica = Wsman::new(&sim, REPLICA, w);
    let r = replica
        .service_call("InitiateFailover", WEB01)
        .expect("answer");
    assert_eq!(r.code, Some(32775));
    let r = replica
        .service_call("InitiateFailover", APP01)
        .expect("answer");
    assert_eq!(r.code, Some(4096));
    let list = ctl(addr, w, "GET", "faults", None, 200);
    assert_eq!(list["faults"][0]["fired"], 1);

    // Remove one, then all.
    let id = a["id"].as_u64().expect("id");
    let r = ctl(addr, w, "DELETE", &format!("faults/{id}"), None, 200);
    assert_eq!(r["removed"], 1);
    ctl(addr, w, "DELETE", &format!("faults/{id}"), None, 404);
    ctl(addr, w, "DELETE", "faults/abc", None, 400);
    let r = ctl(addr, w, "DELETE", "faults", None, 200);
    assert_eq!(r["removed"], 1);
    let list = ctl(addr, w, "GET", "faults", None, 200);
    assert_eq!(list["faults"], json!([]));

    // Refusals: each says what is wrong.
    for (body, words) in [
        (
            json!({ "kind": "return_code", "code": 32775, "methd": "X" }),
            "unknown field `methd`",
        ),
        (
            json!({ "kind": "return_code", "ms": 3, "code": 32775 }),
            "unknown field `ms`",
        ),
        (json!({ "kind": "explode" }), "unknown fault kind `explode`"),
        (json!({ "code": 1 }), "needs `kind`"),
        (
            json!({ "kind": "return_code", "code": 12 }),
            "not a documented return code",
        ),
        (
            json!({ "kind": "host_down", "host": "HV-NOWHERE" }),
            "unknown host `HV-NOWHERE`",
        ),
        (
            json!({ "kind": "partition", "a": "HV-PRIMARY", "b": "HV-PRIMARY" }),
            "two different hosts",
        ),
        (
            json!({ "kind": "partition", "a": "HV-PRIMARY", "b": "HV-X" }),
            "b: unknown host",
        ),
        (
            json!({ "kind": "host_down", "method": "InitiateFailbak" }),
            "`InitiateFailbak` is neither",
        ),
        (
            json!({ "kind": "host_down", "method": "RequestReplicationStateChangeEx" }),
            "use that",
        ),
        (
            json!({ "kind": "host_down", "probability": 1.5 }),
            "probability",
        ),
        (json!({ "kind": "host_down", "count": 0 }), "count: 0"),
        (
            json!({ "kind": "delay", "ms": 100_000_000 }),
            "over the limit",
        ),
        (
            json!({ "kind": "fail_job", "error_code": 32768, "after_percent": 101 }),
            "after_percent",
        ),
        (json!({ "kind": "delay", "ms": "soon" }), "fault rule"),
        (json!([1, 2]), "JSON object"),
    ] {
        let e = ctl(addr, w, "POST", "faults", Some(body.clone()), 400);
        assert!(
            e["error"].as_str().expect("text").contains(words),
            "{body}: {e}"
        );
    }
    let r = call(addr, "POST", &control_path(w, "faults"), None);
    assert_eq!(r.status, 400);
}

#[test]
fn clock_modes_manual_polls_and_realtime_over_http() {
    let sim = TestSim::manual(0);
    let addr = sim.addr(REPLICA);
    let w = Some("c");
    let c = ctl(addr, w, "GET", "clock", None, 200);
    assert_eq!(c["clock"]["mode"], "manual");
    let t0 = c["now"].as_u64().expect("now");

    // manual: nothing moves until told; `advance` takes a duration.
    let replica = Wsman::new(&sim, REPLICA, w);
    let r = replica
        .service_call("InitiateFailover", APP01)
        .expect("answer");
    let job = r.job.expect("job");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        replica.get_job(&job).expect("answer").expect("job").percent,
        0
    );
    let c = ctl(
        addr,
        w,
        "POST",
        "clock",
        Some(json!({ "advance": "400ms" })),
        200,
    );
    assert_eq!(c["now"].as_u64(), Some(t0 + 400));
    let j = replica.get_job(&job).expect("answer").expect("job");
    assert_eq!((j.state, j.percent), (4, 50));
    ctl(
        addr,
        w,
        "POST",
        "clock",
        Some(json!({ "advance": "1.5s" })),
        200,
    );
    assert_eq!(
        replica.get_job(&job).expect("answer").expect("job").state,
        7
    );

    // polls:3: a job ends after it was read three times, whatever the time.
    let c = ctl(
        addr,
        w,
        "POST",
        "clock",
        Some(json!({ "mode": "polls", "n": 3 })),
        200,
    );
    assert_eq!(c["clock"], json!({ "mode": "polls", "n": 3 }));
    let r = replica
        .service_call("InitiateFailback", APP01)
        .expect("answer");
    let job = r.job.expect("job");
    let seen: Vec<u32> = (0..3)
        .map(|_| replica.get_job(&job).expect("answer").expect("job").state)
        .collect();
    assert_eq!(seen, vec![3, 4, 7], "Starting, Running, Completed");
    let s = ctl(addr, w, "GET", "state", None, 200);
    assert_eq!(vm_in(&s, REPLICA, APP01)["state"]["value"], 14);

    // The CLI form, and realtime with a speed: a job ends within real milliseconds.
    let c = ctl(
        addr,
        w,
        "POST",
        "clock",
        Some(json!({ "mode": "polls:2" })),
        200,
    );
    assert_eq!(c["clock"]["n"], 2);
    let c = ctl(
        addr,
        w,
        "POST",
        "clock",
        Some(json!({ "mode": "realtime", "speed": 100.0 })),
        200,
    );
    assert_eq!(c["clock"], json!({ "mode": "realtime", "speed": 100.0 }));
    let primary = Wsman::new(&sim, PRIMARY, w);
    let r = primary
        .service_call("InitiateFailover", "no-such-vm")
        .expect("answer");
    assert_eq!(r.code, Some(32773));
    // A reset restores the configured clock unless it names one.
    ctl(
        addr,
        w,
        "POST",
        "reset",
        Some(json!({ "clock": "realtime:100" })),
        200,
    );
    let r = replica
        .service_call("InitiateFailover", WEB01)
        .expect("answer");
    let job = r.job.expect("job");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let j = replica.get_job(&job).expect("answer").expect("job");
        if j.state == 7 {
            break;
        }
        assert!(Instant::now() < deadline, "realtime x100 job never ended");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Refusals.
    for body in [
        json!({ "mode": "sundial" }),
        json!({ "mode": "realtime", "speed": 0 }),
        json!({ "mode": "realtime", "speed": 1e9 }),
        json!({ "mode": "polls", "n": 0 }),
        json!({ "mode": "polls:x" }),
        json!({ "advance": "3 fortnights" }),
        json!({ "advance": "-1s" }),
        json!({ "advance": "1s", "advance_ms": 1 }),
        json!({ "speed": 2 }),
        json!({ "tick": 1 }),
        // Past 9999-12-31T23:59:59.999Z, which no CIM datetime or RFC 3339 text can carry;
        // refused whole, so the mode in the same body is not applied either.
        json!({ "advance_ms": u64::MAX }),
        json!({ "advance_ms": 253_402_300_800_000u64, "mode": "realtime" }),
    ] {
        ctl(addr, w, "POST", "clock", Some(body), 400);
    }
    ctl(addr, w, "POST", "clock", None, 400);
    // In manual mode, so that nothing but a step could move the clock.
    ctl(
        addr,
        w,
        "POST",
        "clock",
        Some(json!({ "mode": "manual" })),
        200,
    );
    let before = ctl(addr, w, "GET", "clock", None, 200);
    let r = ctl(
        addr,
        w,
        "POST",
        "clock",
        Some(json!({ "advance_ms": u64::MAX })),
        400,
    );
    let msg = r["error"].as_str().unwrap_or_default();
    assert!(msg.contains("9999-12-31T23:59:59.999Z"), "{msg}");
    assert_eq!(
        ctl(addr, w, "GET", "clock", None, 200),
        before,
        "a refused step moves nothing"
    );
}

#[test]
fn journal_pages_with_a_cursor() {
    let sim = TestSim::manual(0);
    let addr = sim.addr(PRIMARY);
    let w = Some("j");
    let primary = Wsman::new(&sim, PRIMARY, w);
    for _ in 0..5 {
        let r = primary
            .wql("SELECT * FROM Msvm_ComputerSystem")
            .expect("answer");
        assert_eq!(r.status, 200);
    }
    let r = primary.send("<not-soap/>").expect("answer");
    assert_eq!(r.status, 500);
    let all = ctl(addr, w, "GET", "journal", None, 200);
    let entries = all["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[0]["operation"], "Enumerate");
    assert_eq!(entries[0]["class"], "Msvm_ComputerSystem");
    assert_eq!(entries[0]["http_status"], 200);
    assert!(
        entries[0]["at_rfc3339"]
            .as_str()
            .expect("time")
            .ends_with('Z')
    );
    assert_eq!(entries[5]["operation"], "Rejected");
    assert_eq!(entries[5]["http_status"], 500);
    assert_eq!(all["latest"], 6);
    assert_eq!(all["more"], false);

    let page = ctl(addr, w, "GET", "journal?since=0&limit=2", None, 200);
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["next"], 2);
    assert_eq!(page["more"], true);
    let page = ctl(addr, w, "GET", "journal?since=2&limit=10", None, 200);
    assert_eq!(page["entries"][0]["seq"], 3);
    assert_eq!(page["next"], 6);
    let page = ctl(addr, w, "GET", "journal?since=6", None, 200);
    assert_eq!(page["entries"], json!([]));
    assert_eq!(page["next"], 6);
    ctl(addr, w, "GET", "journal?since=x", None, 400);
    ctl(addr, w, "GET", "journal?limit=0", None, 400);
    ctl(addr, w, "GET", "journal?limit=99999", None, 400);
    // The default world saw none of it.
    let d = ctl(addr, None, "GET", "journal", None, 200);
    assert_eq!(d["entries"], json!([]));
}

#[test]
fn coverage_reports_covered_and_missing() {
    let sim = TestSim::manual(0);
    let addr = sim.addr(REPLICA);
    let w = Some("cov");
    let before = ctl(addr, w, "GET", "coverage", None, 200);
    assert_eq!(before["rules_covered"], 0);
    let total = before["rules_total"].as_u64().expect("total");
    assert!(total > 20);
    assert_eq!(
        before["missing_rules"].as_array().map(Vec::len),
        Some(total as usize)
    );
    assert_eq!(
        before["fault_kinds"].as_array().map(Vec::len),
        Some(replica_core::faults::FaultKind::KINDS.len())
    );
    fail_over_app01(&sim, w);
    let replica = Wsman::new(&sim, REPLICA, w);
    // A refusal is exercised too (InitiateFailover on a Recovered VM).
    let r = replica
        .service_call("InitiateFailover", APP01)
        .expect("answer");
    assert_eq!(r.code, Some(32775));
    let after = ctl(addr, w, "GET", "coverage", None, 200);
    assert_eq!(after["rules_covered"], 1);
    let failover = after["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["id"] == "failover"))
        .expect("the failover row");
    assert_eq!(failover["count"], 2, "accepted once, refused once");
    assert!(
        !after["missing_rules"]
            .as_array()
            .expect("list")
            .contains(&json!("failover"))
    );
    let codes: Vec<&Json> = after["return_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .filter(|r| r["count"].as_u64() > Some(0))
        .collect();
    let ids: Vec<&str> = codes.iter().filter_map(|r| r["id"].as_str()).collect();
    assert!(ids.contains(&"4096") && ids.contains(&"32775"), "{ids:?}");
    assert!(
        !after["missing_return_codes"]
            .as_array()
            .expect("list")
            .contains(&json!(4096))
    );
    // Reset starts coverage over.
    ctl(addr, w, "POST", "reset", None, 200);
    assert_eq!(
        ctl(addr, w, "GET", "coverage", None, 200)["rules_covered"],
        0
    );
}

#[test]
fn diagram_in_mermaid_and_dot_with_highlight() {
    let sim = TestSim::manual(0);
    let addr = sim.addr(PRIMARY);
    let r = call(addr, "GET", "/_replica/v1/diagram", None);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    let mermaid = r.text();
    assert!(
        mermaid.contains("stateDiagram") || mermaid.contains("flowchart"),
        "{mermaid}"
    );
    assert!(mermaid.contains("Failback in progress"));
    let dot = call(addr, "GET", "/_replica/v1/diagram?format=dot", None).text();
    assert!(dot.starts_with("digraph"), "{dot}");
    let plain = call(addr, "GET", "/_replica/v1/diagram?format=dot", None).text();
    let lit = call(
        addr,
        "GET",
        "/_replica/v1/diagram?format=dot&highlight=true",
        None,
    )
    .text();
    assert_ne!(plain, lit, "highlighting marks the current states");
    assert_eq!(
        call(addr, "GET", "/_replica/v1/diagram?format=svg", None).status,
        400
    );
}

#[test]
fn worlds_are_listed_and_removed() {
    let sim = TestSim::manual(0);
    let addr = sim.addr(PRIMARY);
    ctl(addr, Some("alpha"), "GET", "health", None, 200);
    ctl(addr, Some("beta"), "GET", "health", None, 200);
    let l = ctl(addr, None, "GET", "worlds", None, 200);
    assert_eq!(l["worlds"], json!(["alpha", "beta", "default"]));
    let r = ctl(addr, None, "DELETE", "worlds/alpha", None, 200);
    assert_eq!(r["removed"], "alpha");
    ctl(addr, None, "DELETE", "worlds/alpha", None, 404);
    ctl(addr, None, "DELETE", "worlds/default", None, 404);
    let l = ctl(addr, None, "GET", "worlds", None, 200);
    assert_eq!(l["worlds"], json!(["beta", "default"]));
}

#[test]
fn control_token_guards_the_api_but_not_wsman() {
    let sim = TestSim::start(SimConfig {
        control_token: Some("s3cret".into()),
        clock: replica_sim::ClockMode::Manual,
        ..SimConfig::default()
    });
    let addr = sim.addr(PRIMARY);
    let r = call(addr, "GET", "/_replica/v1/state", None);
    assert_eq!(r.status, 401);
    let r = request(
        addr,
        "GET",
        "/_replica/v1/state",
        &[("Authorization", "Bearer wrong")],
        b"",
    )
    .expect("answer");
    assert_eq!(r.status, 401);
    let r = request(
        addr,
        "GET",
        "/_replica/v1/state",
        &[("Authorization", "Bearer s3cret")],
        b"",
    )
    .expect("answer");
    assert_eq!(r.status, 200);
    let w = Wsman::new(&sim, PRIMARY, None);
    assert_eq!(
        w.wql("SELECT * FROM Msvm_ComputerSystem")
            .expect("answer")
            .status,
        200
    );
}

/// Bodies no test suite would send: always a 4xx with a JSON error, never a 5xx or a hang.
#[test]
fn garbage_never_breaks_the_control_api() {
    let sim = TestSim::manual(0);
    let addr = sim.addr(PRIMARY);
    let bodies: &[&[u8]] = &[
        b"",
        b"null",
        b"[]",
        b"\"x\"",
        b"{",
        b"\xff\xfe\x00",
        b"{\"mode\": null}",
        b"{\"kind\": 5}",
        b"{\"topology_toml\": \"\\u0000\"}",
        b"{\"advance_ms\": -1}",
        b"{\"advance_ms\": 18446744073709551615}",
        b"{\"seed\": 1e400}",
    ];
    for (method, endpoint) in [("POST", "reset"), ("POST", "faults"), ("POST", "clock")] {
        for body in bodies {
            let r = request(
                addr,
                method,
                &control_path(Some("g"), endpoint),
                &[("Content-Type", "application/json")],
                body,
            )
            .expect("answer");
            assert!(
                r.status < 500,
                "{method} {endpoint} {:?}: {} {}",
                String::from_utf8_lossy(body),
                r.status,
                r.text()
            );
        }
    }
    // Still alive and sane.
    let c = ctl(addr, Some("g"), "GET", "clock", None, 200);
    assert!(c["now"].as_u64().is_some());
    for path in [
        "/_replica/v1/journal?since=%FF",
        "/_replica/v1/faults/99999999999999999999999",
        "/_replica/v1/../../etc/passwd",
        "/worlds/%2e%2e/_replica/v1/state",
    ] {
        let r = call(addr, "GET", path, None);
        assert!((400..500).contains(&r.status), "{path}: {}", r.status);
        assert!(r.json()["error"].is_string(), "{path}: {}", r.text());
    }
    // Over the 4 MiB body cap: refused before parsing, still as the API's JSON error.
    let big = vec![b' '; 5 * 1024 * 1024];
    let json = [("Content-Type", "application/json")];
    let r = request(addr, "POST", "/_replica/v1/faults", &json, &big).expect("answer");
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].is_string(), "{}", r.text());
}

// ---------------------------------------------------------------------------------------------
// The OpenAPI document against the server.

/// Checks `v` against a schema of the OpenAPI document with the `jsonschema` crate (OpenAPI
/// 3.1 schemas are JSON Schema 2020-12): the schema is wrapped with the document's
/// `components`, so its `#/components/schemas/…` references resolve.
fn validate(doc: &Json, schema: &Json, v: &Json, at: &str, errors: &mut Vec<String>) {
    let wrapped = json!({ "allOf": [schema], "components": doc["components"] });
    let validator = match jsonschema::validator_for(&wrapped) {
        Ok(validator) => validator,
        Err(e) => {
            errors.push(format!("{at}: the document's schema does not compile: {e}"));
            return;
        }
    };
    for e in validator.iter_errors(v) {
        errors.push(format!("{at}{}: {e}", e.instance_path()));
    }
}

fn openapi() -> Json {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("sim/openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// The OpenAPI document's fault rule follows the one declaration of fault kinds
/// (`FaultKind::KINDS`): the same kinds, the common fields plus every kind's own fields, and
/// each own field's description naming the kinds it belongs to.
#[test]
fn openapi_fault_rule_follows_the_fault_kind_declaration() {
    use replica_core::faults::FaultKind;
    let doc = openapi();
    let rule = &doc["components"]["schemas"]["FaultRequest"];
    let kinds: Vec<&str> = rule["properties"]["kind"]["enum"]
        .as_array()
        .expect("kind enum")
        .iter()
        .filter_map(Json::as_str)
        .collect();
    assert_eq!(kinds, FaultKind::names().collect::<Vec<_>>());
    let mut documented: Vec<&str> = rule["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    let mut declared: Vec<&str> = FaultKind::COMMON_FIELDS.to_vec();
    for k in FaultKind::KINDS {
        for f in k.fields {
            if !declared.contains(f) {
                declared.push(f);
            }
        }
    }
    documented.sort_unstable();
    declared.sort_unstable();
    assert_eq!(documented, declared);
    for k in FaultKind::KINDS {
        for f in k.fields {
            let text = rule["properties"][*f]["description"]
                .as_str()
                .unwrap_or_default();
            assert!(
                text.contains(&format!("{}:", k.name)),
                "the description of `{f}` does not name `{}`: {text}",
                k.name
            );
        }
    }
}

#[test]
fn openapi_documents_every_endpoint_and_the_server_agrees() {
    let doc = openapi();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let sim = TestSim::manual(5);
    let addr = sim.addr(REPLICA);

    // The served copy is the file.
    let served = call(addr, "GET", "/_replica/v1/openapi.json", None).json();
    assert_eq!(served, doc);

    // Documented = answered.
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            documented.push((
                method.to_uppercase(),
                path.trim_start_matches('/').to_string(),
            ));
        }
    }
    documented.sort();
    let mut served: Vec<(String, String)> = replica_sim::api::endpoints()
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    assert_eq!(documented, served);

    let mut errors = Vec::new();
    for (n, (method, path)) in documented.iter().enumerate() {
        let op = &doc["paths"][format!("/{path}")][method.to_lowercase()];
        for world in [Some(format!("oa{n}")), None] {
            let w = world.as_deref();
            // Arrange what the example needs.
            let mut concrete = path.clone();
            if path == "faults/{id}" {
                let f = ctl(
                    addr,
                    w,
                    "POST",
                    "faults",
                    Some(json!({ "kind": "host_down", "host": PRIMARY })),
                    201,
                );
                concrete = format!("faults/{}", f["id"]);
            }
            if path == "worlds/{name}" {
                ctl(addr, Some("scratch"), "GET", "health", None, 200);
                concrete = "worlds/scratch".into();
            }
            if path == "state" {
                // A state with jobs, faults and a failed-over VM in it.
                fail_over_app01(&sim, w);
                let replica = Wsman::new(&sim, REPLICA, w);
                let r = replica
                    .service_call("InitiateFailback", APP01)
                    .expect("answer");
                assert_eq!(r.code, Some(4096));
                ctl(
                    addr,
                    w,
                    "POST",
                    "faults",
                    Some(json!({ "kind": "partition", "a": PRIMARY, "b": REPLICA })),
                    201,
                );
            }
            let body = op["requestBody"]["content"]["application/json"]["example"].clone();
            let body = (!body.is_null()).then_some(body);
            let r = call(addr, method, &control_path(w, &concrete), body);
            let documented_status = &op["responses"][r.status.to_string()];
            if documented_status.is_null() {
                errors.push(format!(
                    "{method} {path}: status {} is not documented: {}",
                    r.status,
                    r.text()
                ));
                continue;
            }
            if !(200..300).contains(&r.status) {
                errors.push(format!(
                    "{method} {path}: the example answered {}: {}",
                    r.status,
                    r.text()
                ));
            }
            let content = &documented_status["content"];
            if let Some(schema) = content.get("application/json").map(|c| &c["schema"]) {
                validate(
                    &doc,
                    schema,
                    &r.json(),
                    &format!("{method} {path}"),
                    &mut errors,
                );
            } else if content.get("text/plain").is_some() {
                assert!(
                    r.header("content-type")
                        .is_some_and(|c| c.starts_with("text/plain"))
                );
            }
            // Every other method on the path is refused with 405 and an Allow header.
            for other in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                if doc["paths"][format!("/{path}")]
                    .get(other.to_lowercase())
                    .is_some()
                {
                    continue;
                }
                let r = call(addr, other, &control_path(w, &concrete), None);
                if r.status != 405 || r.header("allow").is_none() {
                    errors.push(format!(
                        "{other} {path}: {} (expected 405 with Allow)",
                        r.status
                    ));
                }
            }
        }
    }
    // Documented error answers are what the server sends: 400, 404 and 401 carry an Error.
    let e = call(
        addr,
        "POST",
        "/_replica/v1/clock",
        Some(json!({ "mode": "x" })),
    );
    validate(
        &doc,
        &json!({ "$ref": "#/components/schemas/Error" }),
        &e.json(),
        "400",
        &mut errors,
    );
    let e = call(addr, "GET", "/_replica/v1/nope", None);
    assert_eq!(e.status, 404);
    validate(
        &doc,
        &json!({ "$ref": "#/components/schemas/Error" }),
        &e.json(),
        "404",
        &mut errors,
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Determinism and isolation.

/// One walk: enumerations, a failover, a failback with a probabilistic fault retried until
/// it passes, job polling. Returns the journal (normalised) and the ids the client saw.
fn seeded_walk(seed: u64) -> (Vec<Json>, Vec<String>) {
    let sim = TestSim::manual(seed);
    let addr = sim.addr(REPLICA);
    ctl(
        addr,
        None,
        "POST",
        "faults",
        Some(
            json!({ "kind": "return_code", "code": 32768, "method": "InitiateFailback", "probability": 0.5 }),
        ),
        201,
    );
    ctl(
        addr,
        None,
        "POST",
        "faults",
        Some(json!({ "kind": "delay", "ms": 1, "method": "Get", "probability": 0.3 })),
        201,
    );
    let replica = Wsman::new(&sim, REPLICA, None);
    let mut ids = Vec::new();
    let mid = |r: &Resp| text_of(&r.text(), "MessageID");
    ids.extend(mid(&replica
        .wql("SELECT * FROM Msvm_ComputerSystem")
        .expect("answer")));
    let f = replica
        .service_call("InitiateFailover", APP01)
        .expect("answer");
    ids.extend(f.message_id.clone());
    ids.extend(f.job.clone());
    advance(addr, None, 1000);
    let mut tries = 0;
    let job = loop {
        tries += 1;
        assert!(tries < 30, "the probabilistic fault never let go");
        let r = replica
            .service_call("InitiateFailback", APP01)
            .expect("answer");
        ids.extend(r.message_id.clone());
        if r.code == Some(4096) {
            break r.job.expect("job");
        }
    };
    ids.push(job.clone());
    for _ in 0..4 {
        advance(addr, None, 250);
        let _ = replica.get_job(&job).expect("answer");
    }
    ids.extend(mid(&replica
        .wql("SELECT * FROM Msvm_ConcreteJob")
        .expect("answer")));
    let j = ctl(addr, None, "GET", "journal", None, 200);
    let entries = j["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let mut e = e.clone();
            for k in ["at", "at_rfc3339", "micros"] {
                e[k] = Json::Null;
            }
            e
        })
        .collect();
    (entries, ids)
}

#[test]
fn same_seed_same_walk_same_journal() {
    let (j1, ids1) = seeded_walk(42);
    let (j2, ids2) = seeded_walk(42);
    assert!(j1.len() > 8);
    assert_eq!(j1, j2);
    assert_eq!(ids1, ids2);
    assert!(ids1.len() >= 5);
    // The probabilistic faults did fire, and the same ones each time.
    let fired: Vec<&Json> = j1.iter().filter(|e| e["faults"] != json!([])).collect();
    assert!(!fired.is_empty(), "no probabilistic fault fired");
    // Another seed: other ids.
    let (_, ids3) = seeded_walk(43);
    assert_ne!(ids1, ids3);
}

#[test]
fn two_worlds_driven_in_parallel_never_see_each_other() {
    let sim = TestSim::manual(7);
    let drive = |world: &'static str, vm: &'static str, fault_code: u32| {
        let addr = sim.addr(REPLICA);
        let replica = Wsman::new(&sim, REPLICA, Some(world));
        ctl(
            addr,
            Some(world),
            "POST",
            "faults",
            Some(
                json!({ "kind": "return_code", "code": fault_code, "method": "GetReplicationStatistics" }),
            ),
            201,
        );
        ctl(
            addr,
            Some(world),
            "POST",
            "clock",
            Some(json!({ "mode": "manual" })),
            200,
        );
        let r = replica
            .service_call("InitiateFailover", vm)
            .expect("answer");
        assert_eq!(r.code, Some(4096), "{world}");
        let job = r.job.expect("job");
        for i in 0..40 {
            let r = replica
                .service_call("GetReplicationStatistics", vm)
                .expect("answer");
            assert_eq!(r.code, Some(fault_code), "{world} call {i}");
            let j = replica.get_job(&job).expect("answer").expect("job");
            assert!(j.state < 7, "{world}: the job ran on someone else's clock");
        }
        advance(addr, Some(world), 900);
        assert_eq!(
            replica.get_job(&job).expect("answer").expect("job").state,
            7
        );
        job
    };
    let (job_a, job_b) = std::thread::scope(|s| {
        let a = s.spawn(|| drive("world-a", APP01, 32768));
        let b = s.spawn(|| drive("world-b", WEB01, 32779));
        (a.join().expect("world a"), b.join().expect("world b"))
    });
    let addr = sim.addr(PRIMARY);
    for (world, vm, other_vm, code, job, other_job) in [
        ("world-a", APP01, WEB01, 32768, &job_a, &job_b),
        ("world-b", WEB01, APP01, 32779, &job_b, &job_a),
    ] {
        let j = ctl(addr, Some(world), "GET", "journal?limit=10000", None, 200);
        let entries = j["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 1 + 40 * 2 + 1, "{world}");
        assert!(
            entries.iter().all(|e| e["vm"].is_null() || e["vm"] == vm),
            "{world} saw the other VM"
        );
        assert!(
            entries
                .iter()
                .all(|e| e["code"].is_null() || e["code"] == code || e["code"] == 4096)
        );
        let s = ctl(addr, Some(world), "GET", "state", None, 200);
        assert_eq!(vm_in(&s, REPLICA, vm)["state"]["value"], 5, "{world}");
        assert_eq!(vm_in(&s, REPLICA, other_vm)["state"]["value"], 3, "{world}");
        assert!(job_in(&s, REPLICA, job).is_some());
        // Same seed, same first job id in both worlds; but the other world's job is not here
        // unless the ids coincide.
        if job != other_job {
            assert!(job_in(&s, REPLICA, other_job).is_none());
        }
        let f = ctl(addr, Some(world), "GET", "faults", None, 200);
        assert_eq!(f["faults"].as_array().map(Vec::len), Some(1));
        assert_eq!(f["faults"][0]["code"], code);
        assert_eq!(f["faults"][0]["fired"], 40);
        let cov = ctl(addr, Some(world), "GET", "coverage", None, 200);
        let fired = cov["fault_kinds"]
            .as_array()
            .and_then(|r| r.iter().find(|x| x["id"] == "return_code"))
            .and_then(|x| x["count"].as_u64());
        assert_eq!(fired, Some(40));
    }
    // The default world was not touched at all.
    let d = ctl(addr, None, "GET", "journal", None, 200);
    assert_eq!(d["entries"], json!([]));
    let s = ctl(addr, None, "GET", "state", None, 200);
    assert_eq!(vm_in(&s, REPLICA, APP01)["state"]["value"], 3);
}

// ---------------------------------------------------------------------------------------------
// Each fault kind as the client sees it.

#[test]
fn each_fault_kind_is_seen_by_a_client() {
    let sim = TestSim::manual(0);
    let addr = sim.addr(REPLICA);
    let replica = Wsman::new(&sim, REPLICA, Some("k"));
    let primary = Wsman::new(&sim, PRIMARY, Some("k"));
    let w = Some("k");

    // delay: the answer waits.
    ctl(
        addr,
        w,
        "POST",
        "faults",
        Some(json!({ "kind": "delay", "ms": 300, "method": "Enumerate", "count": 1 })),
        201,
    );
    let t = Instant::now();
    assert_eq!(
        replica
            .wql("SELECT * FROM Msvm_ComputerSystem")
            .expect("answer")
            .status,
        200
    );
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    // drop_connection: no answer at all.
    ctl(
        addr,
        w,
        "POST",
        "faults",
        Some(json!({ "kind": "drop_connection", "method": "Enumerate", "count": 1 })),
        201,
    );
    assert!(replica.wql("SELECT * FROM Msvm_ComputerSystem").is_err());
    assert_eq!(
        replica
            .wql("SELECT * FROM Msvm_ComputerSystem")
            .expect("answer")
            .status,
        200
    );

    // host_down: methods answer 32777, reads fault.
    let down = ctl(
        addr,
        w,
        "POST",
        "faults",
        Some(json!({ "kind": "host_down", "host": PRIMARY })),
        201,
    );
    let r = primary
        .service_call("GetReplicationStatistics", APP01)
        .expect("answer");
    assert_eq!(r.code, Some(32777));
    assert_eq!(
        primary
            .wql("SELECT * FROM Msvm_ComputerSystem")
            .expect("answer")
            .status,
        500
    );
    ctl(
        addr,
        w,
        "DELETE",
        &format!("faults/{}", down["id"]),
        None,
        200,
    );

    // return_code.
    ctl(
        addr,
        w,
        "POST",
        "faults",
        Some(
            json!({ "kind": "return_code", "code": 32774, "method": "InitiateFailover", "count": 1 }),
        ),
        201,
    );
    assert_eq!(
        replica
            .service_call("InitiateFailover", APP01)
            .expect("answer")
            .code,
        Some(32774)
    );

    // partition: the reverse needs the peer.
    fail_over_app01(&sim, w);
    ctl(
        addr,
        w,
        "POST",
        "faults",
        Some(json!({ "kind": "partition", "a": PRIMARY, "b": REPLICA })),
        201,
    );
    let r = replica
        .service_call("ReverseReplicationRelationship", APP01)
        .expect("answer");
    assert_eq!(r.code, Some(32777));

    let j = ctl(addr, w, "GET", "journal", None, 200);
    let kinds: Vec<String> = j["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .flat_map(|e| e["faults"].as_array().cloned().unwrap_or_default())
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    for k in ["delay", "drop_connection", "host_down", "return_code"] {
        assert!(
            kinds.iter().any(|x| x == k),
            "{k} not in the journal: {kinds:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Browsers: a page the developer visits must not drive the control API (docs/security.md).

fn fault_count(addr: SocketAddr) -> usize {
    ctl(addr, None, "GET", "faults", None, 200)["faults"]
        .as_array()
        .map_or(0, Vec::len)
}

const HOST_DOWN: &[u8] = br#"{"kind":"host_down","host":"HV-PRIMARY"}"#;

#[test]
fn state_changes_need_a_json_body_and_no_foreign_origin() {
    let sim = TestSim::manual(1);
    let addr = sim.addr(PRIMARY);
    let send = |headers: &[(&str, &str)], body: &[u8]| {
        request(addr, "POST", "/_replica/v1/faults", headers, body).expect("answer")
    };
    // What an HTML form can send cross-origin without a preflight.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let r = send(&[("Content-Type", ct)], HOST_DOWN);
        assert_eq!(r.status, 415, "{ct}: {}", r.text());
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap_or_default()
                .contains("application/json")
        );
    }
    let r = send(&[], HOST_DOWN);
    assert_eq!(r.status, 415, "no Content-Type: {}", r.text());
    // A foreign page, even with the right Content-Type (it would need a preflight, but the
    // refusal must not depend on the browser).
    let r = send(
        &[
            ("Content-Type", "application/json"),
            ("Origin", "http://evil.example"),
        ],
        HOST_DOWN,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("evil.example")
    );
    let r = request(
        addr,
        "POST",
        "/_replica/v1/reset",
        &[("Origin", "null")],
        b"",
    )
    .expect("answer");
    assert_eq!(r.status, 403, "a sandboxed page: {}", r.text());
    assert_eq!(fault_count(addr), 0, "nothing refused changed the world");

    // Allowed: no Origin (curl, test suites), the page's own origin, charset parameters, and a
    // bodyless state change without Content-Type.
    let own = format!("http://{addr}");
    let r = send(
        &[
            ("Content-Type", "Application/JSON; charset=utf-8"),
            ("Origin", &own),
        ],
        HOST_DOWN,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = request(addr, "DELETE", "/_replica/v1/faults", &[], b"").expect("answer");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request(addr, "POST", "/_replica/v1/reset", &[], b"").expect("answer");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn the_control_api_and_the_page_answer_only_to_their_own_names() {
    let sim = TestSim::manual(1);
    let addr = sim.addr(PRIMARY);
    let port = addr.port();
    // DNS rebinding: the attacker's name now resolves to 127.0.0.1, the browser sends it as Host.
    let rebound = format!("evil.example:{port}");
    for (method, path) in [
        ("GET", "/_replica/v1/state"),
        ("GET", "/_replica/ui"),
        ("POST", "/worlds/w1/_replica/v1/reset"),
    ] {
        let r = request(addr, method, path, &[("Host", &rebound)], b"").expect("answer");
        assert_eq!(r.status, 421, "{method} {path}: {}", r.text());
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap_or_default()
                .contains("DNS rebinding")
        );
    }
    // Another port on a loopback name is another server.
    let r = request(
        addr,
        "GET",
        "/_replica/v1/health",
        &[("Host", "localhost:1")],
        b"",
    )
    .expect("answer");
    assert_eq!(r.status, 421, "{}", r.text());
    for name in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let r = request(addr, "GET", "/_replica/ui", &[("Host", &name)], b"").expect("answer");
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    // WS-Management is not held to Host, as real WinRM is not (clients use any name for it).
    let wsman = request(
        addr,
        "POST",
        "/wsman",
        &[("Host", &rebound), ("Content-Type", "application/soap+xml")],
        b"<x/>",
    )
    .expect("answer");
    assert_eq!(wsman.status, 401, "{}", wsman.text());
    // But no WinRM client sends Origin, and every browser POST does.
    let browser = request(
        addr,
        "POST",
        "/wsman",
        &[
            ("Origin", "http://evil.example"),
            ("Authorization", "Basic YWRtaW46YWRtaW4="),
        ],
        b"<x/>",
    )
    .expect("answer");
    assert_eq!(browser.status, 403, "{}", browser.text());
}

#[test]
fn listening_on_all_addresses_accepts_any_name_and_shows_a_reachable_url() {
    let sim = TestSim::start(SimConfig {
        listen: "0.0.0.0:0".parse().expect("addr"),
        clock: replica_sim::ClockMode::Manual,
        ..SimConfig::default()
    });
    let addr = sim.addr(PRIMARY);
    assert_eq!(
        addr.ip().to_string(),
        "127.0.0.1",
        "not 0.0.0.0: a URL must reach the host"
    );
    let health = ctl(addr, None, "GET", "health", None, 200);
    let url = health["hosts"][PRIMARY].as_str().unwrap_or_default();
    assert_eq!(url, format!("http://127.0.0.1:{}/wsman", addr.port()));
    let r = request(
        addr,
        "GET",
        "/_replica/v1/health",
        &[("Host", &format!("build-box.lan:{}", addr.port()))],
        b"",
    )
    .expect("answer");
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A refused request: what it does wrong, its extra headers and its body.
type Refused<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8]);

#[test]
fn openapi_documents_the_browser_refusals() {
    let doc = openapi();
    let sim = TestSim::manual(2);
    let addr = sim.addr(PRIMARY);
    let mut errors = Vec::new();
    for (method, path) in replica_sim::api::endpoints() {
        let concrete = path.replace("{id}", "1").replace("{name}", "scratch");
        let target = format!("/_replica/v1/{concrete}");
        let op = &doc["paths"][format!("/{path}")][method.to_lowercase()];
        let mut cases: Vec<Refused> = vec![("foreign Host", vec![("Host", "evil.example:1")], b"")];
        if method != "GET" {
            cases.push((
                "foreign Origin",
                vec![("Origin", "http://evil.example")],
                b"",
            ));
            cases.push((
                "text/plain body",
                vec![("Content-Type", "text/plain")],
                b"{}",
            ));
        }
        for (what, headers, body) in cases {
            let r = request(addr, method, &target, &headers, body).expect("answer");
            if op["responses"][r.status.to_string()].is_null() || r.status < 400 {
                errors.push(format!(
                    "{method} {path} with a {what}: {} {}",
                    r.status,
                    r.text()
                ));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn reset_gives_the_configured_clock_back_unless_the_body_names_one() {
    // Configured: polls:2. A test switches to manual; the next test's reset must not inherit it.
    let sim = TestSim::start(SimConfig {
        clock: replica_sim::ClockMode::Polls { n: 2 },
        ..SimConfig::default()
    });
    let addr = sim.addr(PRIMARY);
    ctl(
        addr,
        None,
        "POST",
        "clock",
        Some(json!({ "mode": "manual" })),
        200,
    );
    let r = ctl(addr, None, "POST", "reset", None, 200);
    assert_eq!(r["clock"], json!({ "mode": "polls", "n": 2 }), "{r}");
    assert_eq!(
        ctl(addr, None, "GET", "clock", None, 200)["clock"],
        r["clock"]
    );
    let r = ctl(
        addr,
        None,
        "POST",
        "reset",
        Some(json!({ "clock": "manual" })),
        200,
    );
    assert_eq!(
        ctl(addr, None, "GET", "clock", None, 200)["clock"],
        r["clock"]
    );
    assert_eq!(r["clock"]["mode"], "manual", "{r}");
    ctl(
        addr,
        None,
        "POST",
        "reset",
        Some(json!({ "clock": "sundial" })),
        400,
    );
}

#[test]
fn the_default_world_has_the_recovery_points_readme_promises() {
    // README's table and fixtures/topologies/default.toml: app-01 3, web-01 4, db-01 2 on the
    // replica at start (db-01's 30 s interval must not be overdue when the world is built).
    for clock in [
        replica_sim::ClockMode::Manual,
        replica_sim::ClockMode::Realtime { speed: 1.0 },
    ] {
        let sim = TestSim::start(SimConfig {
            clock,
            ..SimConfig::default()
        });
        let s = ctl(sim.addr(REPLICA), None, "GET", "state", None, 200);
        for (vm, points) in [
            (APP01, 3),
            (WEB01, 4),
            ("6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B03", 2),
        ] {
            let got = vm_in(&s, REPLICA, vm)["recovery_points"]
                .as_array()
                .map(Vec::len);
            assert_eq!(got, Some(points), "{vm} on {clock:?}");
        }
    }
}

/// replica-client's typed HTTP client and the in-process calls answer the same values: the
/// control types are one set shared by the server and the client, and a refusal read back over
/// HTTP is the server's own `ControlError`, position included.
#[test]
fn the_typed_http_client_reads_what_the_in_process_calls_return() {
    use replica_client::control::{Control, Reset};
    let sim = TestSim::manual(5);
    let handle = sim.handle.as_ref().expect("running");
    let http = replica_client::control::http_client(false).expect("HTTP client");
    let control = Control::new(http, format!("http://{}", sim.addr(REPLICA)), None);
    // Some history to compare: a failover over WS-Management and the time for its job.
    let w = Wsman::new(&sim, REPLICA, None);
    let call = w.service_call("InitiateFailover", APP01).expect("answer");
    assert_eq!(call.code, Some(4096), "{}", call.xml);
    sim.rt.block_on(control.advance(1000)).expect("advance");

    let over_http = sim.rt.block_on(control.state()).expect("state");
    assert_eq!(over_http, handle.state().expect("state"));
    let vm = over_http.hosts[REPLICA]
        .vms
        .iter()
        .find(|v| v.id == APP01)
        .expect("app-01");
    assert_eq!(vm.state.name, "Recovered", "the failover happened: {vm:?}");
    let journal = sim.rt.block_on(control.journal()).expect("journal");
    assert!(!journal.is_empty());
    assert_eq!(journal, handle.journal().expect("journal"));
    assert_eq!(
        sim.rt.block_on(control.clock()).expect("clock"),
        handle.world("default").clock().expect("clock")
    );

    // A refused reset: the same refusal both ways, and the world as it was.
    let bad = Reset {
        topology_toml: Some("[[hosts]]\nname = \"H1\"\n[[vms]]\nname = 7\n".into()),
        ..Reset::default()
    };
    let refused = sim
        .rt
        .block_on(control.reset(&bad))
        .expect_err("a bad topology is refused");
    let in_process = handle.reset(bad).expect_err("refused in-process too");
    assert_eq!(refused.refusal(), Some(&in_process), "{refused}");
    assert_eq!(in_process.status, 400);
    assert!(in_process.line.is_some(), "{in_process:?}");
    assert_eq!(
        sim.rt.block_on(control.state()).expect("state"),
        over_http,
        "a refused reset changes nothing"
    );
}
