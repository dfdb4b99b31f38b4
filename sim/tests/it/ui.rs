//! The live page at `/_replica/ui`: served from the binary, self-contained, and in step with
//! the control API it polls (the browser test in `tests/browser/` drives it in Chromium).

use replica_sim::ClockMode;
use replica_sim::{Sim, SimConfig, SimHandle};
use serde_json::Value as Json;
use std::net::SocketAddr;

/// A simulator on loopback port 0, on its own runtime, stopped on drop.
struct TestSim {
    rt: tokio::runtime::Runtime,
    handle: Option<SimHandle>,
}

impl TestSim {
    fn manual(seed: u64) -> TestSim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let config = SimConfig {
            seed,
            clock: ClockMode::Manual,
            ..SimConfig::default()
        };
        let handle = rt
            .block_on(Sim::start_with(config))
            .expect("simulator starts");
        TestSim {
            rt,
            handle: Some(handle),
        }
    }

    fn addr(&self, host: &str) -> SocketAddr {
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

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        self.body.clone()
    }
}

/// `GET path` over a fresh HTTP/1.1 connection (`Connection: close`, no chunking expected),
/// through the one raw sender: the page's own headers are what is checked.
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    let r = crate::raw::blocking(addr, "GET", path, headers, b"").expect("an HTTP answer");
    assert!(
        r.header("transfer-encoding").is_none(),
        "GET {path}: chunked answers are not expected here"
    );
    Resp {
        status: r.status,
        body: String::from_utf8(r.body).expect("UTF-8 answer"),
        headers: r.headers,
    }
}

fn json(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Json {
    let r = get(addr, path, headers);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.body))
}

#[test]
fn the_page_is_served_whole_from_every_host() {
    let sim = TestSim::manual(1);
    for host in ["HV-PRIMARY", "HV-REPLICA"] {
        for path in ["/_replica/ui", "/_replica/ui?world=team-a"] {
            let r = get(sim.addr(host), path, &[]);
            assert_eq!(r.status, 200, "{host} {path}");
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("text/html")),
                "{:?}",
                r.headers
            );
            assert_eq!(r.header("cache-control"), Some("no-store"));
            let page = r.text();
            assert!(page.starts_with("<!doctype html>"));
            assert!(!page.contains("__REPLICA_ENUMS__"), "enums are filled in");
            // The aliases come from the model, not from a copy in the page.
            assert!(page.contains(r#""alias":"WaitingForFailback""#));
            assert!(page.contains(r#""alias":"FailbackCompleted""#));
            // Nothing from the network: no CDN, no external script, style or font.
            for needle in ["http://", "https://", "<script src", "<link", "@import"] {
                assert!(
                    !page.contains(needle),
                    "the page must not contain `{needle}`"
                );
            }
            // Server data goes in as text only.
            assert!(!page.contains("innerHTML"));
        }
    }
}

#[test]
fn what_the_page_polls_has_the_fields_it_reads() {
    let sim = TestSim::manual(2);
    let addr = sim.addr("HV-PRIMARY");
    for world in [None, Some("ui-world")] {
        let headers: Vec<(&str, &str)> =
            world.map(|w| ("X-Replica-World", w)).into_iter().collect();
        let state = json(addr, "/_replica/v1/state", &headers);
        assert_eq!(state["world"], world.unwrap_or("default"));
        assert!(state["generation"].is_u64());
        assert!(state["now"].is_u64());
        assert!(state["now_rfc3339"].is_string());
        assert!(state["clock"]["mode"].is_string());
        assert!(state["profile"]["name"].is_string());
        let hosts = state["hosts"].as_object().expect("hosts");
        assert_eq!(hosts.len(), 2);
        for (name, h) in hosts {
            assert_eq!(h["name"], name.as_str());
            assert!(h["service_running"].is_boolean());
            assert!(h["jobs"].is_array());
            for vm in h["vms"].as_array().expect("vms") {
                for key in ["id", "name", "mode", "power", "health"] {
                    assert!(vm[key].is_string(), "{key} in {vm}");
                }
                assert!(vm["state"]["value"].is_u64());
                assert!(vm["state"]["label"].is_string());
                assert!(vm["recovery_points"].is_array());
                for r in vm["relationships"].as_array().expect("relationships") {
                    assert!(r["index"].is_u64());
                    assert!(r["state"]["value"].is_u64());
                    assert!(r["peer_host"].is_string());
                }
            }
        }
        let j = json(addr, "/_replica/v1/journal?since=0&limit=500", &headers);
        assert!(j["entries"].is_array());
        assert!(j["next"].is_u64());
        let health = json(addr, "/_replica/v1/health", &headers);
        assert!(health["hosts"]["HV-REPLICA"].is_string());
        let worlds = json(addr, "/_replica/v1/worlds", &headers);
        assert!(worlds["worlds"].is_array());
        let d = get(
            addr,
            "/_replica/v1/diagram?format=mermaid&highlight=true",
            &headers,
        );
        assert_eq!(d.status, 200);
        let text = d.text();
        // The page reads state titles and edges with these two line shapes.
        assert!(text.contains(r#"state "13 Failback in progress (WaitingForFailback)" as S13"#));
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("S13 --> S14 : "))
        );
    }
}
