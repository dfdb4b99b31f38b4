//! What the integration tests share: a simulator on port 0, POSTs through the one raw-bytes
//! sender (`raw.rs`, so a test can send anything, malformed or huge), envelope builders in
//! pypsrp's layout, and XML readers that match on namespace URIs.

use base64::Engine as _;
use replica_sim::{Credential, Sim, SimConfig, SimHandle};
use roxmltree::{Document, Node};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// The protocol crate's one namespace table, under the short names these tests use.
pub use replica_wsman::ns::action::{ENUMERATE, GET, PULL, RELEASE};
pub use replica_wsman::ns::{
    ADDRESSING, ANONYMOUS, ENUMERATION, IDENTIFY, SOAP, V2_BASE as V2, WQL_DIALECT as WQL, WSMAN,
    WSMAN_FAULT, XSI,
};

/// The bare Identify request every client sends (no addressing headers).
pub fn identify_body() -> String {
    replica_wsman::request::identify_envelope()
}

/// VMs of the default topology (fixtures/topologies/default.toml).
pub const APP_01: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01";
pub const WEB_01: &str = "6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B02";

/// Credentials the test simulators accept: full rights, and authenticated-but-denied.
pub const ADMIN: (&str, &str) = ("admin", "admin");
pub const DENIED: (&str, &str) = ("nobody", "nobody");

/// Every test is bounded: a hang fails it instead of the CI job.
pub async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {secs} s"),
    }
}

/// The configuration every test starts from: the default topology on loopback port 0,
/// seed 1, `admin:admin`, plus `nobody:nobody` with no rights.
pub fn config() -> SimConfig {
    SimConfig {
        seed: 1,
        denied_credentials: vec![Credential {
            user: DENIED.0.into(),
            pass: DENIED.1.into(),
            read_only: false,
        }],
        ..SimConfig::default()
    }
}

pub async fn start() -> SimHandle {
    start_with(config()).await
}

pub async fn start_with(config: SimConfig) -> SimHandle {
    match Sim::start_with(config).await {
        Ok(h) => h,
        Err(e) => panic!("simulator did not start: {e:#}"),
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn doc(&self) -> Document<'_> {
        match Document::parse(&self.body) {
            Ok(d) => d,
            Err(e) => panic!("response is not XML ({e}): {}", self.body),
        }
    }
}

pub fn basic(user: &str, pass: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {token}")
}

/// POSTs `body` to `url` (`http://127.0.0.1:PORT/path`) on a fresh connection and reads the
/// whole answer (through the one raw sender, [`super::raw`]).
pub async fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    match super::raw::exchange(authority, "POST", &format!("/{path}"), headers, body).await {
        Ok(r) => Resp {
            status: r.status,
            body: String::from_utf8_lossy(&r.body).into_owned(),
            headers: r.headers,
        },
        Err(e) => panic!("POST {url}: {e}"),
    }
}

/// A client of one host: Basic credentials and the SOAP content type, as WinRM clients send.
#[derive(Clone)]
pub struct Client {
    pub url: String,
    pub auth: Option<String>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh `uuid:` MessageID.
pub fn message_id() -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("uuid:0000AAAA-0000-4000-8000-{n:012X}")
}

/// A request envelope in pypsrp's layout (prefixes `s`, `wsa`, `wsman`, pypsrp's header order);
/// returns the XML and its MessageID. `extra` goes into the header as is. Deliberately not the
/// protocol crate's request builder (winrm.exe's layout, which replica-client, the soak and the
/// bench send): the simulator must read both, so its tests speak the other one.
pub fn envelope(
    action: &str,
    resource: &str,
    selectors: &[(&str, &str)],
    extra: &str,
    body: &str,
) -> (String, String) {
    let id = message_id();
    let mut sel = String::new();
    if !selectors.is_empty() {
        sel.push_str("<wsman:SelectorSet>");
        for (k, v) in selectors {
            sel.push_str(&format!(
                r#"<wsman:Selector Name="{k}">{v}</wsman:Selector>"#
            ));
        }
        sel.push_str("</wsman:SelectorSet>");
    }
    let xml = format!(
        r#"<s:Envelope xmlns:s="{SOAP}" xmlns:wsa="{ADDRESSING}" xmlns:wsman="{WSMAN}" xmlns:n="{ENUMERATION}"><s:Header><wsa:Action s:mustUnderstand="true">{action}</wsa:Action><wsman:Locale s:mustUnderstand="false" xml:lang="en-US"/><wsman:MaxEnvelopeSize s:mustUnderstand="true">153600</wsman:MaxEnvelopeSize><wsa:MessageID>{id}</wsa:MessageID><wsman:OperationTimeout>PT20S</wsman:OperationTimeout><wsa:ReplyTo><wsa:Address s:mustUnderstand="true">{ANONYMOUS}</wsa:Address></wsa:ReplyTo><wsman:ResourceURI s:mustUnderstand="true">{resource}</wsman:ResourceURI><wsa:To>http://127.0.0.1/wsman</wsa:To>{sel}{extra}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    );
    (xml, id)
}

/// The body of an Enumerate through `.../v2/*` with a WQL filter.
pub fn wql_enumerate(query: &str, extra: &str) -> String {
    format!(
        r#"<n:Enumerate>{extra}<wsman:Filter Dialect="{WQL}">{query}</wsman:Filter></n:Enumerate>"#
    )
}

/// One instance as `property → text` (`cim:Datetime` and the like unwrapped; NULLs left out;
/// arrays keep their first value).
pub type Row = BTreeMap<String, String>;

pub fn row(node: Node<'_, '_>) -> Row {
    let mut r = Row::new();
    for p in node.children().filter(Node::is_element) {
        if p.attribute((XSI, "nil")) == Some("true") {
            continue;
        }
        let text = match p.first_element_child() {
            Some(inner) => inner.text().unwrap_or_default(),
            None => p.text().unwrap_or_default(),
        };
        r.entry(p.tag_name().name().to_string())
            .or_insert_with(|| text.to_string());
    }
    r
}

pub fn find<'a, 'i>(n: Node<'a, 'i>, ns: &str, local: &str) -> Option<Node<'a, 'i>> {
    n.descendants()
        .find(|d| d.tag_name().namespace() == Some(ns) && d.tag_name().name() == local)
}

pub fn text_of(doc: &Document<'_>, ns: &str, local: &str) -> Option<String> {
    find(doc.root_element(), ns, local).map(|n| n.text().unwrap_or_default().trim().to_string())
}

/// The items of an enumeration page, whichever Items element holds them.
pub fn items<'a, 'i>(doc: &'a Document<'i>) -> Vec<Node<'a, 'i>> {
    let holder = find(doc.root_element(), ENUMERATION, "Items")
        .or_else(|| find(doc.root_element(), WSMAN, "Items"));
    holder.map_or_else(Vec::new, |h| {
        h.children().filter(Node::is_element).collect()
    })
}

/// A fault as a client reads it: HTTP 500, a SOAP 1.2 Fault, the subcode QName resolved to
/// its namespace URI, the `f:WSManFault Code`, and `a:RelatesTo`.
#[derive(Debug, PartialEq, Eq)]
pub struct FaultSeen {
    pub status: u16,
    /// The subcode QName as (namespace URI, local name).
    pub subcode: Option<(String, String)>,
    pub code: Option<String>,
    pub relates_to: Option<String>,
    pub action: Option<String>,
}

pub fn fault_of(r: &Resp) -> FaultSeen {
    let doc = r.doc();
    let root = doc.root_element();
    assert!(
        find(root, SOAP, "Fault").is_some(),
        "not a fault ({}): {}",
        r.status,
        r.body
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/soap+xml;charset=UTF-8")
    );
    // The subcode; for SOAP's own codes (s:MustUnderstand) the top-level code.
    let subcode = find(root, SOAP, "Subcode")
        .or_else(|| find(root, SOAP, "Code"))
        .and_then(|s| find(s, SOAP, "Value"))
        .and_then(|v| {
            let qname = v.text()?.trim();
            let (prefix, local) = qname.split_once(':').unwrap_or(("", qname));
            let uri = v.lookup_namespace_uri((!prefix.is_empty()).then_some(prefix))?;
            Some((uri.to_string(), local.to_string()))
        });
    FaultSeen {
        status: r.status,
        subcode,
        code: find(root, WSMAN_FAULT, "WSManFault")
            .and_then(|f| f.attribute("Code"))
            .map(str::to_string),
        relates_to: text_of(&doc, ADDRESSING, "RelatesTo"),
        action: text_of(&doc, ADDRESSING, "Action"),
    }
}

impl Client {
    pub fn new(url: String) -> Client {
        Client {
            url,
            auth: Some(basic(ADMIN.0, ADMIN.1)),
        }
    }

    pub fn as_user(&self, user: &str, pass: &str) -> Client {
        Client {
            url: self.url.clone(),
            auth: Some(basic(user, pass)),
        }
    }

    pub async fn send(&self, xml: &str) -> Resp {
        self.send_with(xml, &[]).await
    }

    pub async fn send_with(&self, xml: &str, extra: &[(&str, &str)]) -> Resp {
        let mut headers = vec![("Content-Type", "application/soap+xml;charset=UTF-8")];
        if let Some(a) = &self.auth {
            headers.push(("Authorization", a.as_str()));
        }
        headers.extend_from_slice(extra);
        post(&self.url, &headers, xml.as_bytes()).await
    }

    /// Sends and expects HTTP 200 with `a:RelatesTo` equal to the MessageID.
    pub async fn ok(&self, (xml, id): (String, String)) -> Resp {
        let r = self.send(&xml).await;
        assert_eq!(r.status, 200, "{}\nrequest: {xml}", r.body);
        assert_eq!(
            text_of(&r.doc(), ADDRESSING, "RelatesTo").as_deref(),
            Some(id.as_str()),
            "RelatesTo"
        );
        r
    }

    /// A WQL query, the libvirt way: Enumerate through `.../v2/*`, then Pull (to the class
    /// URI, as libvirt does) until no context is left.
    pub async fn query(&self, wql: &str) -> Vec<Row> {
        let r = self
            .ok(envelope(
                ENUMERATE,
                &format!("{V2}*"),
                &[],
                "",
                &wql_enumerate(wql, ""),
            ))
            .await;
        let mut ctx = text_of(&r.doc(), ENUMERATION, "EnumerationContext");
        let mut rows = Vec::new();
        let class = wql.split_whitespace().nth(3).unwrap_or("*").to_string();
        for _ in 0..1000 {
            let Some(c) = ctx.take() else { break };
            let body = format!("<n:Pull><n:EnumerationContext>{c}</n:EnumerationContext></n:Pull>");
            let r = self
                .ok(envelope(PULL, &format!("{V2}{class}"), &[], "", &body))
                .await;
            let doc = r.doc();
            rows.extend(items(&doc).into_iter().map(row));
            ctx = text_of(&doc, ENUMERATION, "EnumerationContext");
        }
        rows
    }

    pub async fn vm(&self, name: &str) -> Row {
        let rows = self
            .query(&format!(
                "SELECT * FROM Msvm_ComputerSystem WHERE ElementName = '{name}'"
            ))
            .await;
        match <[Row; 1]>::try_from(rows) {
            Ok([r]) => r,
            Err(rows) => panic!("{name}: {} rows", rows.len()),
        }
    }

    /// Invokes `method` on `class` at `selectors`; `params` is the XML inside `_INPUT`, with
    /// the prefix `p` bound to the class URI. Returns ReturnValue, the job id, and the reply.
    pub async fn invoke(
        &self,
        class: &str,
        selectors: &[(&str, &str)],
        method: &str,
        params: &str,
    ) -> (u32, Option<String>, Resp) {
        let uri = format!("{V2}{class}");
        let body = format!(r#"<p:{method}_INPUT xmlns:p="{uri}">{params}</p:{method}_INPUT>"#);
        let r = self
            .ok(envelope(
                &format!("{uri}/{method}"),
                &uri,
                selectors,
                "",
                &body,
            ))
            .await;
        let (code, job) = {
            let doc = r.doc();
            let code = text_of(&doc, &uri, "ReturnValue")
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("no ReturnValue: {}", r.body));
            let job = find(doc.root_element(), &uri, "Job")
                .and_then(|j| find(j, WSMAN, "SelectorSet"))
                .and_then(|s| {
                    s.children()
                        .find(|c| c.attribute("Name") == Some("InstanceID"))
                })
                .and_then(|s| s.text())
                .map(str::to_string);
            (code, job)
        };
        (code, job, r)
    }

    /// A `Msvm_ReplicationService` method on this host's service, about one VM.
    pub async fn service_call(
        &self,
        host: &str,
        method: &str,
        vm: &str,
        more: &str,
    ) -> (u32, Option<String>) {
        let (code, job, _) = self
            .invoke(
                "Msvm_ReplicationService",
                &service_keys(host),
                method,
                &format!("{}{more}", vm_ref("p:ComputerSystem", vm)),
            )
            .await;
        (code, job)
    }

    /// Polls a job by WQL every 100 ms until it ends; returns every (JobState, PercentComplete)
    /// seen and the last row.
    pub async fn wait_job(&self, id: &str) -> (Vec<(u32, u32)>, Row) {
        let mut seen = Vec::new();
        for _ in 0..300 {
            let rows = self
                .query(&format!(
                    "SELECT * FROM Msvm_ConcreteJob WHERE InstanceID = '{id}'"
                ))
                .await;
            let Ok([job]) = <[Row; 1]>::try_from(rows) else {
                panic!("job {id} is not readable");
            };
            let num = |k: &str| job.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            let state: u32 = num("JobState");
            seen.push((state, num("PercentComplete")));
            if !(2..=6).contains(&state) {
                return (seen, job);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {id} did not end in 30 s: {seen:?}");
    }
}

pub fn service_keys(host: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("CreationClassName", "Msvm_ReplicationService"),
        ("Name", "replicasvc"),
        ("SystemCreationClassName", "Msvm_ComputerSystem"),
        ("SystemName", host),
    ]
}

pub fn vm_keys(vm: &str) -> Vec<(&'static str, &str)> {
    vec![("CreationClassName", "Msvm_ComputerSystem"), ("Name", vm)]
}

/// A REF parameter naming a VM: `a:Address` and `a:ReferenceParameters` as direct children of
/// the parameter element (winrm.exe's and libvirt's form).
pub fn vm_ref(element: &str, vm: &str) -> String {
    format!(
        r#"<{element} xmlns:a="{ADDRESSING}" xmlns:w="{WSMAN}"><a:Address>{ANONYMOUS}</a:Address><a:ReferenceParameters><w:ResourceURI>{V2}Msvm_ComputerSystem</w:ResourceURI><w:SelectorSet><w:Selector Name="CreationClassName">Msvm_ComputerSystem</w:Selector><w:Selector Name="Name">{vm}</w:Selector></w:SelectorSet></a:ReferenceParameters></{element}>"#
    )
}

/// Reads the ready line a spawned `replica-sim serve` prints, giving up after `secs` (the read
/// runs on its own thread so a silent child cannot hang the test).
pub fn read_ready_line(child: &mut std::process::Child, secs: u64) -> String {
    use std::io::{BufRead as _, BufReader};
    let Some(stdout) = child.stdout.take() else {
        return String::new();
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_default()
}

/// A fresh directory under the system temp dir, unique per process, test and call.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "replica-it-{}-{name}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
