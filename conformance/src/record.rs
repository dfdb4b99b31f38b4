//! Recordings (`--record DIR`) and their replay (`--target replay:DIR`).
//!
//! One JSON file per scenario, `DIR/<scenario>.json`: the target it ran against and every
//! WS-Management exchange in order (request, response, status, timing, as [`Exchange`]), with
//! the control-API actions between them for the reader. A replay serves the recorded responses
//! in order; a request that is not the recorded one is a divergence. Requests are compared by
//! what they mean (action, resource URI, selectors, body), not by MessageID or endpoint, which
//! change from run to run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use replica_client::wsman::{Exchange, Recorder, WsmanError, ns};
use replica_wsman::xml::Element;

pub const FORMAT: u32 = 1;

/// What kind of target a recording was made against: it decides how the replay behaves
/// (a simulator recording has fault steps and no real-host checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedFlavor {
    Simulator,
    Real,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// One WS-Management request and its answer, on `host` (the scenario's host name).
    Wire { host: String, exchange: Exchange },
    /// A control-API action (reset, clock, fault), kept for the reader; replays skip them.
    Control {
        action: String,
        #[serde(default)]
        detail: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub format: u32,
    pub scenario: String,
    /// The target's label (`sim`, the host URLs).
    pub target: String,
    pub flavor: RecordedFlavor,
    #[serde(default)]
    pub vm_prefix: Option<String>,
    /// Host name → WS-Management URL at recording time (on real hosts, a placeholder: see
    /// [`Recording::scrub`]).
    pub hosts: BTreeMap<String, String>,
    /// Real hosts: scenario role → the lab VM that played it (a replay binds the same way).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binding: BTreeMap<String, String>,
    pub entries: Vec<Entry>,
}

/// A file name for a scenario: its name with anything but `[A-Za-z0-9._-]` replaced.
pub fn file_name(scenario: &str) -> String {
    let safe: String = scenario
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.json")
}

/// What a scrubbed recording says instead of a lab host's address: `https://NAME.lab.invalid/wsman`
/// (`.invalid` can never resolve, RFC 2606).
pub fn placeholder_url(name: &str) -> String {
    format!("https://{}.lab.invalid/wsman", name.to_ascii_lowercase())
}

impl Recording {
    /// Makes a real-host recording fit to send: every lab host's URL, address (`host:port`,
    /// host alone) and computer name (`rename`: lab name → scenario host name) is replaced
    /// everywhere (requests, answers, headers, errors) by the scenario's host name, and the
    /// token of a `Negotiate`/`NTLM`/`Kerberos` challenge (it carries domain and host names)
    /// is dropped. Credentials never reach a recording (requests are stored without headers).
    /// The replacement is the same in requests and answers, so the recording still replays.
    pub fn scrub(&mut self, rename: &BTreeMap<String, String>) {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, url) in &self.hosts {
            let fake = placeholder_url(name);
            pairs.push((url.clone(), fake.clone()));
            if let Some(rest) = url.split_once("://").map(|(_, r)| r) {
                let authority = rest.split('/').next().unwrap_or_default();
                let fake_host = format!("{}.lab.invalid", name.to_ascii_lowercase());
                let host_only = authority
                    .rsplit_once(':')
                    .map_or(authority, |(h, _)| h)
                    .to_string();
                pairs.push((authority.to_string(), fake_host.clone()));
                if !host_only.is_empty() {
                    pairs.push((host_only, fake_host));
                }
            }
        }
        for (lab, scenario) in rename {
            if !lab.is_empty() && lab != scenario {
                pairs.push((lab.clone(), scenario.clone()));
            }
        }
        // Longest first, so a URL goes before the address inside it.
        pairs.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        pairs.dedup();
        let fix = |t: &mut String| {
            for (from, to) in &pairs {
                if t.contains(from.as_str()) {
                    *t = t.replace(from.as_str(), to);
                }
            }
        };
        fix(&mut self.target);
        for (name, url) in self.hosts.iter_mut() {
            *url = placeholder_url(name);
        }
        for e in &mut self.entries {
            let Entry::Wire { exchange: x, .. } = e else {
                continue;
            };
            fix(&mut x.endpoint);
            fix(&mut x.request);
            if let Some(r) = &mut x.response {
                fix(r);
            }
            if let Some(r) = &mut x.error {
                fix(r);
            }
            for (n, v) in &mut x.response_headers {
                if n.eq_ignore_ascii_case("www-authenticate") {
                    let scheme = v.split_whitespace().next().unwrap_or_default();
                    if !scheme.eq_ignore_ascii_case("basic") {
                        *v = scheme.to_string();
                    }
                }
                fix(v);
            }
        }
    }

    pub fn path(dir: &Path, scenario: &str) -> PathBuf {
        dir.join(file_name(scenario))
    }

    /// Writes the recording atomically (temporary file, then rename).
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = Self::path(dir, &self.scenario);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The recording of `scenario` in `dir`, `None` when there is none.
    pub fn load(dir: &Path, scenario: &str) -> anyhow::Result<Option<Recording>> {
        let path = Self::path(dir, scenario);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let rec: Recording =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if rec.format != FORMAT {
            anyhow::bail!(
                "{}: recording format {} (this runner reads format {FORMAT})",
                path.display(),
                rec.format
            );
        }
        Ok(Some(rec))
    }

    /// Every recording in `dir`, by scenario name.
    pub fn scenarios_in(dir: &Path) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Ok(text) = std::fs::read_to_string(&p)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && let Some(name) = v.get("scenario").and_then(Value::as_str)
            {
                out.push(name.to_string());
            }
        }
        out.sort();
        Ok(out)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Collects the entries of one scenario run, in order.
#[derive(Debug, Default)]
pub struct Sink {
    entries: Mutex<Vec<Entry>>,
}

impl Sink {
    pub fn push(&self, e: Entry) {
        lock(&self.entries).push(e);
    }
    pub fn control(&self, action: &str, detail: Value) {
        self.push(Entry::Control {
            action: action.to_string(),
            detail,
        });
    }
    pub fn take(&self) -> Vec<Entry> {
        std::mem::take(&mut *lock(&self.entries))
    }
}

/// The WS-Management client's recorder for one host of a scenario run.
pub struct HostRecorder {
    pub host: String,
    pub sink: Arc<Sink>,
}

impl Recorder for HostRecorder {
    fn record(&self, exchange: &Exchange) {
        self.sink.push(Entry::Wire {
            host: self.host.clone(),
            exchange: exchange.clone(),
        });
    }
}

/// What a request means, for comparing a replayed run with its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub action: String,
    pub resource_uri: String,
    pub selectors: Vec<(String, String)>,
    pub body: String,
}

impl RequestKey {
    /// `Invoke InitiateFailback on Msvm_ReplicationService{…}`-style summary.
    pub fn describe(&self) -> String {
        let action = self.action.rsplit('/').next().unwrap_or(&self.action);
        let class = self
            .resource_uri
            .rsplit('/')
            .next()
            .unwrap_or(&self.resource_uri);
        let sel: Vec<String> = self
            .selectors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut s = format!("{action} {class}");
        if !sel.is_empty() {
            s.push_str(&format!("{{{}}}", sel.join(",")));
        }
        s
    }
}

/// An element in a form where prefixes, attribute order and indentation no longer matter:
/// `<{ns}local attrs sorted>text children</>`.
fn canonical(el: &Element<'_>, out: &mut String) {
    out.push('<');
    if let Some(ns) = el.ns.as_deref() {
        out.push('{');
        out.push_str(ns);
        out.push('}');
    }
    out.push_str(&el.local);
    let mut attrs: Vec<String> = el
        .attrs
        .iter()
        .map(|a| {
            format!(
                "{}{}={}",
                a.ns.as_deref()
                    .map(|n| format!("{{{n}}}"))
                    .unwrap_or_default(),
                a.local,
                a.value
            )
        })
        .collect();
    attrs.sort();
    for a in attrs {
        out.push(' ');
        out.push_str(&a);
    }
    out.push('>');
    out.push_str(el.text_trimmed());
    for c in &el.children {
        canonical(c, out);
    }
    out.push_str("</>");
}

/// The meaning of a request envelope; `None` when it is not XML. Read with the protocol
/// crate's request reader, as the simulator reads what a client sends.
pub fn request_key(xml: &str) -> Option<RequestKey> {
    let env = replica_wsman::xml::parse(xml.as_bytes()).ok()?;
    let header = env.child(ns::SOAP, "Header");
    let text = |nsu: &str, local: &str| {
        header
            .and_then(|h| h.child(nsu, local))
            .map(|n| n.text_trimmed().to_string())
            .unwrap_or_default()
    };
    let mut selectors: Vec<(String, String)> = header
        .and_then(|h| h.child(ns::WSMAN, "SelectorSet"))
        .map(|s| {
            s.children
                .iter()
                .map(|n| {
                    (
                        n.attr("Name").unwrap_or_default().to_ascii_lowercase(),
                        n.text_trimmed().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    selectors.sort();
    let mut body = String::new();
    if let Some(b) = env.child(ns::SOAP, "Body") {
        for c in &b.children {
            canonical(c, &mut body);
        }
    }
    Some(RequestKey {
        action: text(ns::ADDRESSING, "Action"),
        resource_uri: text(ns::WSMAN, "ResourceURI"),
        selectors,
        body,
    })
}

/// A recording being replayed: one cursor over its WS-Management exchanges.
#[derive(Debug)]
pub struct ReplayLog {
    pub recording: Recording,
    wire: Vec<(String, Exchange)>,
    state: Mutex<ReplayState>,
}

#[derive(Debug, Default)]
struct ReplayState {
    cursor: usize,
    derailed: bool,
    divergences: Vec<String>,
}

impl ReplayLog {
    pub fn new(recording: Recording) -> ReplayLog {
        let wire = recording
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Wire { host, exchange } => Some((host.clone(), exchange.clone())),
                Entry::Control { .. } => None,
            })
            .collect();
        ReplayLog {
            recording,
            wire,
            state: Mutex::new(ReplayState::default()),
        }
    }

    /// The recorded exchange answering `request_xml` sent to `host`, or a divergence.
    pub fn next(&self, host: &str, request_xml: &str) -> Result<Exchange, WsmanError> {
        let mut st = lock(&self.state);
        if st.derailed {
            return Err(WsmanError::protocol(
                "replay stopped at an earlier divergence",
            ));
        }
        let want = request_key(request_xml);
        let ix = st.cursor;
        let Some((rec_host, ex)) = self.wire.get(ix) else {
            st.derailed = true;
            let what = want
                .as_ref()
                .map_or("a request".into(), RequestKey::describe);
            let msg = format!(
                "exchange {}: the run sent {what} to {host}, the recording has no more exchanges",
                ix + 1
            );
            st.divergences.push(msg.clone());
            return Err(WsmanError::protocol(format!("replay divergence: {msg}")));
        };
        let got = request_key(&ex.request);
        if !rec_host.eq_ignore_ascii_case(host) || want != got {
            st.derailed = true;
            let run = want
                .as_ref()
                .map_or("a request".into(), RequestKey::describe);
            let recorded = got
                .as_ref()
                .map_or("a request".into(), RequestKey::describe);
            let mut msg = format!(
                "exchange {}: the run sent {run} to {host}, the recording has {recorded} to {rec_host}",
                ix + 1
            );
            if let (Some(a), Some(b)) = (&want, &got)
                && a.describe() == b.describe()
                && a.body != b.body
            {
                msg.push_str(&format!(
                    " with another body (run: {}; recorded: {})",
                    excerpt(&a.body),
                    excerpt(&b.body)
                ));
            }
            st.divergences.push(msg.clone());
            return Err(WsmanError::protocol(format!("replay divergence: {msg}")));
        }
        st.cursor += 1;
        Ok(ex.clone())
    }

    /// Ends the replay: exchanges left unused are a divergence too. Returns every divergence.
    pub fn finish(&self) -> Vec<String> {
        let mut st = lock(&self.state);
        if !st.derailed && st.cursor < self.wire.len() {
            let left = self.wire.len() - st.cursor;
            let (h, ex) = &self.wire[st.cursor];
            let what = request_key(&ex.request).map_or("a request".into(), |k| k.describe());
            let msg = format!(
                "the run ended after {} exchanges; the recording has {left} more, starting with {what} to {h}",
                st.cursor
            );
            st.divergences.push(msg);
        }
        st.divergences.clone()
    }
}

fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(240).collect();
    if s.chars().count() > 240 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use replica_client::wsman::envelope::{Headers, envelope, invoke_body};
    use replica_client::wsman::{Epr, OpKind, Param, SelectorSet, class_uri};
    use std::time::Duration;

    fn req(id: &str, to: &str, method: &str, vm: &str) -> String {
        let uri = class_uri("Msvm_ReplicationService");
        let action = format!("{uri}/{method}");
        let sel = SelectorSet::from([("Name", "vmms"), ("SystemName", "HV-REPLICA")]);
        let body = invoke_body(
            &uri,
            method,
            &[(
                "ComputerSystem",
                Param::Epr(Epr::new(class_uri("Msvm_ComputerSystem"), [("Name", vm)])),
            )],
        )
        .expect("body");
        envelope(
            &Headers {
                to,
                resource_uri: &uri,
                action: &action,
                message_id: id,
                max_envelope_size: 512_000,
                locale: "en-US",
                selectors: Some(&sel),
                operation_timeout: Duration::from_secs(60),
            },
            &body,
        )
    }

    fn exchange(request: String) -> Exchange {
        Exchange {
            seq: 0,
            operation: OpKind::Invoke,
            method: Some("CommitFailover".into()),
            resource_uri: None,
            message_id: Some("uuid:A".into()),
            endpoint: "http://a/wsman".into(),
            request,
            status: Some(200),
            response_headers: Vec::new(),
            response: Some("<x/>".into()),
            elapsed_ms: 3,
            error: None,
        }
    }

    fn recording(entries: Vec<Entry>) -> Recording {
        Recording {
            format: FORMAT,
            scenario: "s".into(),
            target: "sim".into(),
            flavor: RecordedFlavor::Simulator,
            vm_prefix: None,
            hosts: BTreeMap::new(),
            binding: BTreeMap::new(),
            entries,
        }
    }

    #[test]
    fn a_lab_recording_is_scrubbed_and_still_keyed_the_same() {
        let url = "https://hv1.corp.example:5986/wsman";
        let mut x = exchange(req("uuid:1", url, "CommitFailover", "HV1"));
        x.endpoint = url.into();
        x.response =
            Some("<f:WSManFault Machine=\"hv1.corp.example\"/><SystemName>HV1</SystemName>".into());
        x.response_headers = vec![
            (
                "WWW-Authenticate".into(),
                "Negotiate TlRMTVNTUAACAAAA".into(),
            ),
            ("WWW-Authenticate".into(), "Basic realm=\"WSMAN\"".into()),
        ];
        let mut rec = recording(vec![Entry::Wire {
            host: "HV-PRIMARY".into(),
            exchange: x,
        }]);
        rec.flavor = RecordedFlavor::Real;
        rec.target = format!("HV-PRIMARY={url}");
        rec.hosts.insert("HV-PRIMARY".into(), url.into());
        let rename = BTreeMap::from([("HV1".to_string(), "HV-PRIMARY".to_string())]);
        rec.scrub(&rename);
        let text = serde_json::to_string(&rec).expect("json");
        for secret in ["corp.example", "5986", "HV1", "TlRMTVNTUAACAAAA"] {
            assert!(!text.contains(secret), "`{secret}` left in {text}");
        }
        let Entry::Wire { exchange: x, .. } = &rec.entries[0] else {
            panic!("wire entry")
        };
        assert_eq!(x.response_headers[0].1, "Negotiate");
        assert_eq!(x.endpoint, placeholder_url("HV-PRIMARY"));
        // The request now reads as the replay will send it: the scenario's host name.
        assert_eq!(
            request_key(&x.request),
            request_key(&req("uuid:9", "replay", "CommitFailover", "HV-PRIMARY"))
        );
    }

    #[test]
    fn keys_ignore_message_id_and_endpoint() {
        let a = request_key(&req("uuid:1", "http://a:1/wsman", "CommitFailover", "X"));
        let b = request_key(&req(
            "uuid:2",
            "http://b:2/worlds/w/wsman",
            "CommitFailover",
            "X",
        ));
        assert!(a.is_some());
        assert_eq!(a, b);
        let c = request_key(&req("uuid:2", "http://b:2/wsman", "CommitFailover", "Y"));
        assert_ne!(a, c);
        assert_eq!(
            a.map(|k| k.describe()).as_deref(),
            Some("CommitFailover Msvm_ReplicationService{name=vmms,systemname=HV-REPLICA}")
        );
    }

    #[test]
    fn replay_serves_in_order_and_reports_divergences() {
        let log = ReplayLog::new(recording(vec![
            Entry::Control {
                action: "reset".into(),
                detail: Value::Null,
            },
            Entry::Wire {
                host: "HV-REPLICA".into(),
                exchange: exchange(req("uuid:A", "http://a", "CommitFailover", "X")),
            },
            Entry::Wire {
                host: "HV-REPLICA".into(),
                exchange: exchange(req("uuid:B", "http://a", "RevertFailover", "X")),
            },
        ]));
        assert!(
            log.next(
                "HV-REPLICA",
                &req("uuid:Z", "http://b", "CommitFailover", "X")
            )
            .is_ok()
        );
        let err = log
            .next(
                "HV-REPLICA",
                &req("uuid:Z", "http://b", "RevertFailover", "Y"),
            )
            .expect_err("differs");
        assert!(err.to_string().contains("another body"), "{err}");
        // Derailed: later requests fail without piling up divergences.
        assert!(log.next("HV-REPLICA", "<x/>").is_err());
        assert_eq!(log.finish().len(), 1);
    }

    #[test]
    fn unused_exchanges_are_a_divergence() {
        let log = ReplayLog::new(recording(vec![Entry::Wire {
            host: "HV-PRIMARY".into(),
            exchange: exchange(req("uuid:A", "http://a", "CommitFailover", "X")),
        }]));
        let d = log.finish();
        assert_eq!(d.len(), 1);
        assert!(d[0].contains("1 more"), "{d:?}");
    }

    #[test]
    fn write_then_load() {
        let dir = std::env::temp_dir().join(format!("rc-rec-{}", std::process::id()));
        let rec = recording(vec![Entry::Control {
            action: "clock".into(),
            detail: serde_json::json!({"mode": "manual"}),
        }]);
        let path = rec.write(&dir).expect("write");
        assert!(path.ends_with("s.json"));
        assert_eq!(Recording::load(&dir, "s").expect("load"), Some(rec));
        assert_eq!(Recording::load(&dir, "none").expect("load"), None);
        assert_eq!(Recording::scenarios_in(&dir).expect("list"), vec!["s"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_name("a b/c"), "a_b_c.json");
    }
}
