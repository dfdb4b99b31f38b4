//! Data-driven: every scenario in `fixtures/scenarios/` is played on the model with one `check`
//! helper. Adding a case needs no Rust.

use replica_core::scenario::{Scenario, run_on_model};
use replica_core::topology::TopologySpec;
use std::path::{Path, PathBuf};

/// A fixed start time, so scenario runs do not depend on the wall clock.
const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn load_topology(name: &str, profile: Option<&str>) -> replica_core::World {
    let path = fixtures().join("topologies").join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut spec: TopologySpec =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if let Some(p) = profile {
        spec.profile = Some(replica_core::topology::ProfileSpec::Named(p.to_string()));
    }
    spec.build(42, T0)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(path: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let sc: Scenario = toml::from_str(&text).map_err(|e| format!("parse: {e}"))?;
    let world = load_topology(&sc.topology, sc.profile.as_deref());
    let results = run_on_model(&sc, world);
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.failures.is_empty())
        .map(|r| {
            format!(
                "  step {} ({}): {}",
                r.index + 1,
                r.label,
                r.failures.join("; ")
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(results.len())
    } else {
        Err(failed.join("\n"))
    }
}

#[test]
fn every_scenario_passes_on_the_model() {
    let mut dir: Vec<_> = std::fs::read_dir(fixtures().join("scenarios"))
        .expect("fixtures/scenarios")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    dir.sort();
    assert!(
        dir.len() >= 10,
        "expected the scenario suite, found {} files",
        dir.len()
    );
    let mut errors = Vec::new();
    for p in &dir {
        if let Err(e) = check(p) {
            errors.push(format!("{}:\n{e}", p.display()));
        }
    }
    assert!(
        errors.is_empty(),
        "{} of {} scenarios failed:\n{}",
        errors.len(),
        dir.len(),
        errors.join("\n")
    );
}

#[test]
fn every_topology_builds() {
    for e in std::fs::read_dir(fixtures().join("topologies"))
        .expect("topologies")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
    {
        let name = e
            .path()
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
            .unwrap_or_default();
        let _ = load_topology(&name, None);
    }
}
