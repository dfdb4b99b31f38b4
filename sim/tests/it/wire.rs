//! Golden wire exchanges: every `fixtures/wire/*.json` case is replayed against a fresh
//! simulator over HTTP and each response, after volatile fields are normalised, compared with
//! its snapshot `fixtures/wire/<case>/<NN>.xml` through expect-test's `expect_file!`.
//! `fixtures/wire/README.md` says how a case is written; adding one needs no Rust.
//! `UPDATE_EXPECT=1 cargo test -p replica-sim --test it wire` rewrites the snapshots from what
//! the simulator answers now (review the diff before committing).

use crate::support::*;
use replica_sim::ClockMode;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Text that may be given as one string or as lines (joined with `\n`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Text {
    One(String),
    Lines(Vec<String>),
}

impl Text {
    fn joined(&self) -> String {
        match self {
            Text::One(s) => s.clone(),
            Text::Lines(l) => l.join("\n"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    /// Where the request comes from (a capture listed in docs/facts.md#sources, a client's code,
    /// ...).
    source: String,
    /// The host the exchanges go to unless one says otherwise.
    #[serde(default = "default_host")]
    host: String,
    exchanges: Vec<Exchange>,
}

fn default_host() -> String {
    "HV-REPLICA".into()
}

const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

fn default_content_type() -> Option<String> {
    Some(SOAP_CONTENT_TYPE.into())
}

fn default_auth() -> Option<String> {
    Some("admin:admin".into())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exchange {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    host: Option<String>,
    /// Moves the (manual) clock forward this many milliseconds before the request.
    #[serde(default)]
    advance_ms: Option<u64>,
    /// `USER:PASS` for Basic auth; `null` sends no Authorization header.
    #[serde(default = "default_auth")]
    auth: Option<String>,
    /// The request's Content-Type; `null` sends none. Default: WinRM clients' SOAP type.
    #[serde(default = "default_content_type")]
    content_type: Option<String>,
    /// Extra HTTP request headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    request: Text,
    status: u16,
    /// HTTP response headers that must be present with these values; a header sent several
    /// times is compared as its values joined with ", " (RFC 9110 5.3).
    #[serde(default)]
    response_headers: BTreeMap<String, String>,
}

fn wire_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/wire")
}

fn cases() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(wire_dir()) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(e) => panic!("fixtures/wire: {e}"),
    };
    files.sort();
    files
}

/// `UPDATE_EXPECT` set: expect-test rewrites snapshots instead of failing (its own switch, read
/// here only to create the files of a new case, which it does not do).
fn updating() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some()
}

#[tokio::test]
async fn golden_exchanges_replay() {
    within(120, async {
        let files = cases();
        assert!(
            files.len() >= 10,
            "expected the wire cases, found {files:?}"
        );
        let mut failures = Vec::new();
        for path in &files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: {e}"));
            let case: Case = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            if case.source.trim().is_empty() {
                failures.push(format!("{name}: no source for its requests"));
            }
            if let Err(e) = check(&case, &path.with_extension("")).await {
                failures.push(format!("{name} ({}): {e}", case.description));
            }
        }
        failures.extend(stray_snapshots(&files));
        assert!(
            failures.is_empty(),
            "{} case(s) differ (snapshot diffs above):\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    })
    .await;
}

/// `fixtures/wire/…` for messages.
fn shown(p: &Path) -> String {
    p.strip_prefix(wire_dir()).map_or_else(
        |_| p.display().to_string(),
        |rel| format!("fixtures/wire/{}", rel.display()),
    )
}

/// The snapshot of exchange `i` (from 0) of the case whose snapshots are in `dir`.
fn snapshot_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{:02}.xml", i + 1))
}

/// Snapshot files no exchange compares against (a case shortened or removed): a golden that is
/// never checked would read as a promise the tests do not keep.
fn stray_snapshots(cases: &[PathBuf]) -> Vec<String> {
    let mut wanted = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for path in cases {
        let count = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<Case>(&t).ok())
            .map_or(0, |c| c.exchanges.len());
        let dir = path.with_extension("");
        wanted.extend((0..count).map(|i| snapshot_path(&dir, i)));
        dirs.insert(dir);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(wire_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = entry.path();
        if !p.is_dir() {
            continue;
        }
        if !dirs.contains(&p) {
            out.push(format!(
                "{}: a snapshot directory without its case",
                shown(&p)
            ));
            continue;
        }
        for f in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            if !wanted.contains(&f.path()) {
                out.push(format!(
                    "{}: no exchange has this snapshot",
                    shown(&f.path())
                ));
            }
        }
    }
    out
}

/// Replays one case on a fresh simulator (manual clock, seed 1) and compares every answer with
/// its snapshot in `dir`.
async fn check(case: &Case, dir: &Path) -> Result<(), String> {
    let mut config = config();
    config.clock = ClockMode::Manual;
    let sim = start_with(config).await;
    // The topology's VM GUIDs are stable: only other GUIDs are volatile.
    let mut keep: BTreeSet<String> = sim
        .state()
        .map_err(|e| e.to_string())?
        .hosts
        .values()
        .flat_map(|h| h.vms.iter().map(|v| v.id.clone()))
        .collect();
    let mut names = Names::default();
    let mut first_error = None;
    for (i, x) in case.exchanges.iter().enumerate() {
        if let Some(ms) = x.advance_ms {
            sim.advance(std::time::Duration::from_millis(ms))
                .map_err(|e| e.to_string())?;
        }
        let host = x.host.clone().unwrap_or_else(|| case.host.clone());
        // GUIDs written literally in the request are the client's (MessageIDs, a job id
        // that never existed): echoed as they are. Placeholders stay volatile.
        let literal = x.request.joined();
        keep.extend(guids(&literal).into_iter().map(str::to_ascii_uppercase));
        let request = names.substitute(&literal);
        let mut headers: Vec<(String, String)> = x
            .content_type
            .iter()
            .map(|ct| ("Content-Type".to_string(), ct.clone()))
            .collect();
        if let Some((u, p)) = x.auth.as_deref().and_then(|a| a.split_once(':')) {
            headers.push(("Authorization".into(), basic(u, p)));
        }
        headers.extend(x.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = post(&sim.url(&host), &refs, request.as_bytes()).await;
        let mut actual = pretty(&names.normalise(&r.body, &keep)).join("\n");
        if !actual.is_empty() {
            actual.push('\n');
        }
        let mut problems = Vec::new();
        if r.status != x.status {
            problems.push(format!("HTTP status {} instead of {}", r.status, x.status));
        }
        for (k, v) in &x.response_headers {
            let seen: Vec<&str> = r
                .headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, value)| value.as_str())
                .collect();
            let joined = seen.join(", ");
            if joined != *v {
                problems.push(format!("header {k}: {joined:?} instead of {v:?}"));
            }
        }
        let snapshot = snapshot_path(dir, i);
        if !snapshot.exists() {
            if updating() {
                // expect-test writes only a file whose text differs, and into an existing
                // directory: an empty body (a 415) would otherwise never be recorded.
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                std::fs::write(&snapshot, "")
                    .map_err(|e| format!("{}: {e}", snapshot.display()))?;
            } else {
                problems.push(format!(
                    "no snapshot {} yet (record it with UPDATE_EXPECT=1)",
                    shown(&snapshot)
                ));
            }
        }
        if snapshot.exists() {
            // expect-test prints the diff and unwinds; caught so that every case is checked
            // and the failure names the case and the exchange.
            let expect = expect_test::expect_file![&snapshot];
            if catch_unwind(AssertUnwindSafe(|| expect.assert_eq(&actual))).is_err() {
                problems.push(format!(
                    "the response differs from {} (diff above)",
                    shown(&snapshot)
                ));
            }
        }
        if !problems.is_empty() && first_error.is_none() {
            let note = x.note.clone().unwrap_or_default();
            first_error = Some(format!(
                "exchange {} ({note}): {}",
                i + 1,
                problems.join("; ")
            ));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Volatile values get stable names: each GUID not in `keep` becomes `{GUID-n}`, numbered by
/// first appearance in the case, so a later request can use it (a job's InstanceID, an
/// enumeration context). Times become `{DATETIME}` / `{DMTF-DATETIME}`.
#[derive(Default)]
struct Names {
    by_guid: BTreeMap<String, String>,
}

impl Names {
    fn normalise(&mut self, body: &str, keep: &BTreeSet<String>) -> String {
        let mut out = String::with_capacity(body.len());
        let mut rest = body;
        while let Some((start, len)) = next_guid(rest) {
            out.push_str(&rest[..start]);
            let g = rest[start..start + len].to_ascii_uppercase();
            if keep.contains(&g) {
                out.push_str(&rest[start..start + len]);
            } else {
                let n = self.by_guid.len() + 1;
                let name = self
                    .by_guid
                    .entry(g)
                    .or_insert_with(|| format!("{{GUID-{n}}}"));
                out.push_str(name);
            }
            rest = &rest[start + len..];
        }
        out.push_str(rest);
        dmtf_datetimes(&between(
            &out,
            "<cim:Datetime>",
            "</cim:Datetime>",
            "{DATETIME}",
        ))
    }

    /// Puts the real values back into a request that names them.
    fn substitute(&self, request: &str) -> String {
        let mut r = request.to_string();
        for (guid, name) in &self.by_guid {
            r = r.replace(name, guid);
        }
        r
    }
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// The first 8-4-4-4-12 hex GUID in `s`: (byte offset, length).
fn next_guid(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let groups = [8, 4, 4, 4, 12];
    let total = 36;
    (0..b.len().saturating_sub(total - 1)).find_map(|i| {
        if i > 0 && (is_hex(b[i - 1]) || b[i - 1] == b'-') {
            return None;
        }
        let mut p = i;
        for (k, g) in groups.iter().enumerate() {
            if !b.get(p..p + g)?.iter().copied().all(is_hex) {
                return None;
            }
            p += g;
            if k < 4 {
                if b.get(p) != Some(&b'-') {
                    return None;
                }
                p += 1;
            }
        }
        let after = b.get(p).copied();
        (!after.is_some_and(|c| is_hex(c) || c == b'-')).then_some((i, total))
    })
}

fn guids(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut off = 0;
    while let Some((i, len)) = next_guid(&s[off..]) {
        out.push(&s[off + i..off + i + len]);
        off += i + len;
    }
    out
}

/// Replaces the text between every `open` and `close` with `with`.
fn between(s: &str, open: &str, close: &str, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(open) {
        let from = i + open.len();
        let Some(j) = rest[from..].find(close) else {
            break;
        };
        out.push_str(&rest[..from]);
        out.push_str(with);
        rest = &rest[from + j..];
    }
    out.push_str(rest);
    out
}

/// DMTF datetimes (`yyyymmddHHMMSS.mmmmmmsUUU`, inside embedded CIM-XML) that are not
/// intervals (intervals end in `:000`).
fn dmtf_datetimes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 25 <= b.len() {
        let w = &b[i..i + 25];
        let shape = w[..14].iter().all(u8::is_ascii_digit)
            && w[14] == b'.'
            && w[15..21].iter().all(u8::is_ascii_digit)
            && (w[21] == b'+' || w[21] == b'-')
            && w[22..].iter().all(u8::is_ascii_digit);
        if shape && &w[..8] != b"00000000" {
            out.push_str(&s[copied..i]);
            out.push_str("{DMTF-DATETIME}");
            i += 25;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// One element per line, indented; `<a>text</a>` and empty elements stay on one line. Works
/// on the simulator's output (no comments, no CDATA, `>` escaped in attribute values).
fn pretty(xml: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum T<'a> {
        Open(&'a str),
        Close(&'a str),
        Empty(&'a str),
        Text(&'a str),
    }
    let mut tokens = Vec::new();
    let mut rest = xml;
    while !rest.is_empty() {
        if rest.starts_with('<') {
            let end = rest.find('>').map_or(rest.len(), |e| e + 1);
            let tag = &rest[..end];
            tokens.push(if tag.starts_with("</") {
                T::Close(tag)
            } else if tag.ends_with("/>") || tag.starts_with("<?") {
                T::Empty(tag)
            } else {
                T::Open(tag)
            });
            rest = &rest[end..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            tokens.push(T::Text(&rest[..end]));
            rest = &rest[end..];
        }
    }
    let mut lines = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let pad = "  ".repeat(depth);
        match (&tokens[i], tokens.get(i + 1), tokens.get(i + 2)) {
            (T::Open(o), Some(T::Text(t)), Some(T::Close(c))) => {
                lines.push(format!("{pad}{o}{t}{c}"));
                i += 3;
            }
            (T::Open(o), Some(T::Close(c)), _) => {
                lines.push(format!("{pad}{o}{c}"));
                i += 2;
            }
            (T::Open(o), ..) => {
                lines.push(format!("{pad}{o}"));
                depth += 1;
                i += 1;
            }
            (T::Close(c), ..) => {
                depth = depth.saturating_sub(1);
                lines.push(format!("{}{c}", "  ".repeat(depth)));
                i += 1;
            }
            (T::Empty(e), ..) => {
                lines.push(format!("{pad}{e}"));
                i += 1;
            }
            (T::Text(t), ..) => {
                if !t.trim().is_empty() {
                    lines.push(format!("{pad}{t}"));
                }
                i += 1;
            }
        }
    }
    lines
}

#[test]
fn normalisation_and_pretty_printing() {
    let keep: BTreeSet<String> = ["6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01".to_string()].into();
    let mut n = Names::default();
    let body = "<a:MessageID>uuid:7C83B813-1828-46A8-974B-227CED26C82E</a:MessageID><p:Name>6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01</p:Name><p:T><cim:Datetime>2024-05-01T10:00:00.123Z</cim:Datetime></p:T><p:X>F7c83b813-1828-46A8-974B-227CED26C82E</p:X><p:S>20240501100000.123000+000 00000000000500.000000:000</p:S>";
    let out = n.normalise(body, &keep);
    assert_eq!(
        out,
        "<a:MessageID>uuid:{GUID-1}</a:MessageID><p:Name>6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01</p:Name><p:T><cim:Datetime>{DATETIME}</cim:Datetime></p:T><p:X>F7c83b813-1828-46A8-974B-227CED26C82E</p:X><p:S>{DMTF-DATETIME} 00000000000500.000000:000</p:S>"
    );
    assert_eq!(
        n.substitute("<Selector>{GUID-1}</Selector>"),
        "<Selector>7C83B813-1828-46A8-974B-227CED26C82E</Selector>"
    );
    let p = pretty("<a x=\"1\"><b>t</b><c/><d></d><e><f>g</f></e></a>");
    assert_eq!(
        p,
        [
            "<a x=\"1\">",
            "  <b>t</b>",
            "  <c/>",
            "  <d></d>",
            "  <e>",
            "    <f>g</f>",
            "  </e>",
            "</a>"
        ]
    );
}
