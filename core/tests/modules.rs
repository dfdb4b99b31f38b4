//! Module cycles stay broken: core's and the conformance crate's modules form no cycle (in
//! core, values and events sit below the operations, the table, the world and the engine), the
//! conformance runner does not depend on its reports, the simulator's control API does not
//! depend on its HTTP server, and the simulator's only cycle is the one written down below. Dependencies are read from the source: every `crate::<module>` path
//! and every `use crate::{...}` group, outside comments and test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Module name -> the modules of the same crate it names. Files under `src/<m>/` belong to `m`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("source dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut raw: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a component");
        let name = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("source");
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let deps = raw.entry(name.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let body = &group[..group.find('}').unwrap_or(group.len())];
                for item in body.split(',') {
                    let head = item.trim().split("::").next().unwrap_or_default();
                    deps.insert(head.trim().to_string());
                }
            } else {
                let head: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                deps.insert(head);
            }
        }
    }
    let names: BTreeSet<String> = raw.keys().cloned().collect();
    raw.into_iter()
        .map(|(m, d)| {
            let d = d
                .into_iter()
                .filter(|x| names.contains(x) && *x != m)
                .collect();
            (m, d)
        })
        .collect()
}

/// The modules `from` reaches.
fn reach(g: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        for d in g.get(&m).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn core_modules_form_no_cycle() {
    let g = graph(&root().join("core/src"));
    assert!(g.len() > 10, "read only {} modules", g.len());
    assert!(
        g["engine"].contains("world"),
        "the reader misses `use` paths"
    );
    let cyclic: Vec<&String> = g.keys().filter(|m| reach(&g, m).contains(*m)).collect();
    assert!(cyclic.is_empty(), "modules on a cycle: {cyclic:?}\n{g:#?}");
}

#[test]
fn the_conformance_runner_does_not_depend_on_its_reports() {
    let g = graph(&root().join("conformance/src"));
    assert!(g["report"].contains("runner"));
    assert!(
        !reach(&g, "runner").contains("report"),
        "runner reaches report: {:?}",
        g["runner"]
    );
}

#[test]
fn the_control_api_does_not_depend_on_the_server() {
    let g = graph(&root().join("sim/src"));
    assert!(g["server"].contains("control"));
    assert!(
        !reach(&g, "control").contains("server"),
        "control reaches server: {:?}",
        g["control"]
    );
}

/// The modules of `g` that lie on a cycle.
fn cyclic(g: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    g.keys()
        .filter(|m| reach(g, m).contains(*m))
        .cloned()
        .collect()
}

#[test]
fn conformance_modules_form_no_cycle() {
    let g = graph(&root().join("conformance/src"));
    assert!(g.len() > 10, "read only {} modules", g.len());
    // The lab decides from what was observed; the reading is the connection's (target), so
    // lab -> observe must not lead back to target -> lab.
    assert!(g["lab"].contains("observe") && g["target"].contains("lab"));
    let c = cyclic(&g);
    assert!(c.is_empty(), "modules on a cycle: {c:?}\n{g:#?}");
}

#[test]
fn sim_modules_form_no_cycle() {
    let g = graph(&root().join("sim/src"));
    assert!(g.len() > 15, "read only {} modules", g.len());
    assert!(g["api"].contains("control") && g["persist"].contains("app"));
    // The last one to go: classes handed association classes to assoc, which finds their
    // ends through classes; `instances` now sits in front of both.
    assert!(g["instances"].contains("assoc") && g["instances"].contains("classes"));
    let c = cyclic(&g);
    assert!(c.is_empty(), "modules on a cycle: {c:?}\n{g:#?}");
}
