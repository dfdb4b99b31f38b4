//! Fuzz targets beyond the protocol parsers (those are in `wsman::fuzz`): the topology loader
//! on mutated `fixtures/topologies/**/*.toml`, and whole requests through `dispatch::handle`
//! on mutated real requests from `fixtures/wire/*.json`. Plus the regression fixtures: every
//! file under `fixtures/fuzz/` goes through its target on every run.
//!
//! A bounded run is part of `cargo test` (a few seconds); a long run:
//!
//! ```sh
//! REPLICA_FUZZ_CASES=200000 cargo test --release -p replica-wsman -p replica-sim fuzz
//! ```
//!
//! A failure prints the input proptest shrank it to: save it under `fixtures/fuzz/<target>/`
//! (the file name says what it found), fix the bug, and the file keeps it fixed.

use crate::dispatch::{self, Access};
use crate::state::{ClockMode, Limits, WorldSlot};
use crate::topology_file;
use crate::wsman::fuzz::{
    Mutation, apply, config, exercise_instance, exercise_query, exercise_request, mutation,
};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .filter(|p| ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Topology loader

/// Every shipped topology, valid and invalid: the seeds of the topology target.
fn topologies() -> &'static [String] {
    static CORPUS: OnceLock<Vec<String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = root().join("fixtures/topologies");
        files(&dir, Some("toml"))
            .into_iter()
            .chain(files(&dir.join("invalid"), Some("toml")))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    })
}

/// Values that are likely to break a topology's meaning rather than its syntax.
const TOML_VALUES: &[&str] = &[
    "0",
    "-1",
    "4294967296",
    "99999999999999999999999",
    "1e400",
    "nan",
    "inf",
    "\"\"",
    "\"x\"",
    "[]",
    "{}",
    "[[]]",
    "true",
    "1979-05-27T07:32:00Z",
    "\"6B1F4A52-1C0D-4E8B-9A3F-2D7C5E8A1B01\"",
    "\"HV-PRIMARY\"",
    "\"HV-REPLICA\"",
    "\"default\"",
    "{ replica_host = \"HV-PRIMARY\", recovery_points = 65535 }",
    "\"\\u0000\"",
    "'''\n'''",
];

/// Line-level edits: TOML is line-oriented, so whole lines moved, doubled or given another
/// value reach the model's checks (duplicate VMs, dangling hosts) that byte edits rarely do.
#[derive(Debug, Clone)]
enum LineEdit {
    Duplicate(usize),
    Delete(usize),
    Swap(usize, usize),
    Revalue(usize, usize),
    /// A line of another fixture, inserted here.
    Borrow(usize, usize, usize),
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        any::<usize>().prop_map(LineEdit::Duplicate),
        any::<usize>().prop_map(LineEdit::Delete),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| LineEdit::Revalue(a, b)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(a, b, c)| LineEdit::Borrow(a, b, c)),
    ]
}

fn edit_lines(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let corpus = topologies();
    for e in edits {
        let n = lines.len();
        if n == 0 {
            lines.push(String::new());
            continue;
        }
        match *e {
            LineEdit::Duplicate(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            LineEdit::Delete(i) => {
                lines.remove(i % n);
            }
            LineEdit::Swap(a, b) => lines.swap(a % n, b % n),
            LineEdit::Revalue(i, v) => {
                let line = &mut lines[i % n];
                if let Some((key, _)) = line.split_once('=') {
                    *line = format!("{key}= {}", TOML_VALUES[v % TOML_VALUES.len()]);
                }
            }
            LineEdit::Borrow(f, l, at) => {
                if let Some(src) = corpus.get(f % corpus.len().max(1)) {
                    let src: Vec<&str> = src.lines().collect();
                    if !src.is_empty() {
                        lines.insert(at % (n + 1), src[l % src.len()].to_string());
                    }
                }
            }
        }
    }
    lines.join("\n")
}

/// The topology target: parse must refuse or accept, never panic; an error points inside the
/// text; an accepted topology builds a world.
pub(crate) fn exercise_topology(text: &str) {
    match topology_file::parse("fuzz.toml", text) {
        Ok(spec) => {
            assert!(
                spec.build(1, 0).is_ok(),
                "accepted but does not build:\n{text}"
            );
        }
        Err(e) => {
            let lines = text.lines().count() + 1;
            assert!(
                e.line <= lines,
                "error line {} past the end ({lines} lines): {e}",
                e.line
            );
            assert!(!e.message.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Whole requests through dispatch

/// One request of a wire case, and the host it was sent to.
struct WireRequest {
    host: String,
    body: Vec<u8>,
}

/// Every request of every `fixtures/wire/*.json` case: real client envelopes (winrm.exe,
/// pypsrp, pywinrm, WinRb, libvirt) as the corpus of the dispatch target.
fn wire_requests() -> &'static [WireRequest] {
    static CORPUS: OnceLock<Vec<WireRequest>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut out = Vec::new();
        for path in files(&root().join("fixtures/wire"), Some("json")) {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(case) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let host = case["host"].as_str().unwrap_or("HV-REPLICA").to_string();
            for ex in case["exchanges"].as_array().into_iter().flatten() {
                let body = match &ex["request"] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(lines) => lines
                        .iter()
                        .filter_map(|l| l.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => continue,
                };
                let body = placeholders_to_guids(&body);
                out.push(WireRequest {
                    host: ex["host"].as_str().unwrap_or(&host).to_string(),
                    body: body.into_bytes(),
                });
            }
        }
        out
    })
}

/// `{GUID-n}` stands for an id an earlier answer gave; any GUID of the same shape will do.
fn placeholders_to_guids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("{GUID-") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "{GUID-".len()..];
        match after.split_once('}') {
            Some((n, tail)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => {
                let n: u64 = n.parse().unwrap_or(0);
                out.push_str(&format!("0000AAAA-0000-4000-8000-{n:012X}"));
                rest = tail;
            }
            _ => {
                out.push_str("{GUID-");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn fresh_world() -> WorldSlot {
    match WorldSlot::new(
        "default",
        crate::server::default_topology(),
        1,
        ClockMode::Manual,
    ) {
        Ok(w) => w,
        Err(e) => panic!("default world: {e}"),
    }
}

/// The dispatch target: any bytes give an HTTP status WinRM uses and a well-formed SOAP
/// answer, every call is journaled once, and the world keeps its job invariant.
pub(crate) fn exercise_dispatch(slot: &mut WorldSlot, host: &str, bytes: &[u8]) {
    let limits = Limits::default();
    exercise_request(bytes);
    let before = slot.next_seq;
    let reply = dispatch::handle(slot, host, bytes, Access::ReadWrite, &limits);
    assert!(
        matches!(reply.status, 200 | 400 | 500),
        "status {}",
        reply.status
    );
    assert!(
        roxmltree::Document::parse(&reply.body).is_ok(),
        "not well-formed:\n{}",
        reply.body
    );
    assert_eq!(slot.next_seq, before + 1, "journaled once");
    for h in slot.world.hosts().values() {
        for v in h.vms.values() {
            let running = h
                .jobs
                .values()
                .filter(|j| j.is_running())
                .filter(|j| j.change.as_ref().and_then(|c| c.vm.as_deref()) == Some(&v.id))
                .count();
            assert!(running <= 1, "{} has {running} running jobs", v.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regression fixtures: fixtures/fuzz/<target>/*

fn regression_files(target: &str) -> Vec<PathBuf> {
    files(&root().join("fixtures/fuzz").join(target), None)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .collect()
}

#[test]
fn fuzz_regressions_stay_fixed() {
    let mut n = 0;
    for p in regression_files("envelope") {
        let bytes = std::fs::read(&p).unwrap_or_default();
        let mut slot = fresh_world();
        for host in ["HV-PRIMARY", "HV-REPLICA"] {
            exercise_dispatch(&mut slot, host, &bytes);
        }
        n += 1;
    }
    for p in regression_files("topology") {
        let bytes = std::fs::read(&p).unwrap_or_default();
        exercise_topology(&String::from_utf8_lossy(&bytes));
        n += 1;
    }
    for p in regression_files("cimxml") {
        let bytes = std::fs::read(&p).unwrap_or_default();
        exercise_instance(&String::from_utf8_lossy(&bytes));
        n += 1;
    }
    for p in regression_files("wql") {
        let bytes = std::fs::read(&p).unwrap_or_default();
        exercise_query(&String::from_utf8_lossy(&bytes));
        n += 1;
    }
    assert!(n >= 8, "only {n} regression fixtures found");
}

#[test]
fn fuzz_corpora_are_seeded_from_the_fixtures() {
    assert!(topologies().len() >= 10, "{}", topologies().len());
    assert!(wire_requests().len() >= 30, "{}", wire_requests().len());
    // Unmutated, every wire request goes through cleanly.
    let mut slot = fresh_world();
    for r in wire_requests() {
        exercise_dispatch(&mut slot, &r.host, &r.body);
    }
}

// The bounded CI run: a few seconds for all targets in a debug build on 2 cores.
proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn fuzz_topology_loader_survives_mutated_fixtures(
        which in any::<usize>(),
        edits in prop::collection::vec(line_edit(), 0..6),
        mutations in prop::collection::vec(mutation(), 0..6),
    ) {
        let corpus = topologies();
        let base = corpus.get(which % corpus.len().max(1)).map_or("", String::as_str);
        let edited = edit_lines(base, &edits);
        let mutated = apply(edited.as_bytes(), &mutations);
        exercise_topology(&String::from_utf8_lossy(&mutated));
    }

}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn fuzz_dispatch_survives_mutated_wire_requests(
        picks in prop::collection::vec((any::<usize>(), any::<bool>()), 1..4),
        mutations in prop::collection::vec(prop::collection::vec(mutation(), 0..6), 3),
        graft in prop::option::of((any::<usize>(), any::<usize>(), 1usize..400, any::<usize>())),
    ) {
        // A short sequence on one world, so a mutated request can meet the state an earlier
        // one left (a context, a running job).
        let corpus = wire_requests();
        let mut slot = fresh_world();
        let none: Vec<Mutation> = Vec::new();
        for (i, (which, mutate)) in picks.iter().enumerate() {
            let Some(r) = corpus.get(which % corpus.len().max(1)) else { continue };
            let m = if *mutate { mutations.get(i).unwrap_or(&none) } else { &none };
            let mut bytes = apply(&r.body, m);
            // A piece of another client's request grafted in: one client's header with
            // another's body, a selector set inside a parameter, and so on.
            if let Some((from, start, len, at)) = graft.filter(|_| i == 0)
                && let Some(other) = corpus.get(from % corpus.len().max(1))
            {
                let start = start % other.body.len().max(1);
                let end = (start + len).min(other.body.len());
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, other.body[start..end].iter().copied());
            }
            exercise_dispatch(&mut slot, &r.host, &bytes);
            slot.clock.advance(300);
        }
    }
}
