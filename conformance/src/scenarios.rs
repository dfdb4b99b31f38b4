//! Finding, loading and selecting scenario files (`fixtures/scenarios/*.toml`).

use std::path::{Path, PathBuf};

use replica_core::scenario::Scenario;
use replica_core::topology::TopologySpec;

use crate::oracle;

/// One scenario file, parsed (or why not).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    /// The scenario's name, or the file stem when it does not parse.
    pub name: String,
    pub scenario: Result<Scenario, String>,
    /// Its topology (profile not yet applied), or why it cannot be loaded.
    pub topology: Result<TopologySpec, String>,
}

impl Loaded {
    pub fn tags(&self) -> Vec<String> {
        self.scenario
            .as_ref()
            .map(|s| s.tags.clone())
            .unwrap_or_default()
    }
}

/// `--scenarios DIR`, or `fixtures/scenarios` found from the current directory upwards, or next
/// to this crate's sources.
pub fn find_dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(d) = explicit {
        return if d.is_dir() {
            Ok(d.to_path_buf())
        } else {
            Err(format!("--scenarios {}: no such directory", d.display()))
        };
    }
    let rel = Path::new("fixtures").join("scenarios");
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let cand = dir.join(&rel);
            if cand.is_dir() {
                return Ok(cand);
            }
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(&rel);
    if built.is_dir() {
        return Ok(built);
    }
    Err("no scenario directory: pass --scenarios DIR (fixtures/scenarios was not found from the current directory)".into())
}

/// The topology named by a scenario: `<scenarios>/../topologies/<name>.toml`, or the embedded
/// default.
pub fn load_topology(scenarios_dir: &Path, name: &str) -> Result<TopologySpec, String> {
    let path = scenarios_dir
        .join("..")
        .join("topologies")
        .join(format!("{name}.toml"));
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(_) if name == "default" => oracle::default_topology().map_err(|e| e.to_string()),
        Err(e) => Err(format!("topology `{name}` ({}): {e}", path.display())),
    }
}

/// Every `*.toml` in `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<Loaded>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let scenario = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|t| {
                    toml::from_str::<Scenario>(&t).map_err(|e| format!("{}: {e}", path.display()))
                });
            let topology = match &scenario {
                Ok(s) => load_topology(dir, &s.topology),
                Err(_) => Err("the scenario does not parse".into()),
            };
            Loaded {
                name: scenario.as_ref().map_or(stem, |s| s.name.clone()),
                path,
                scenario,
                topology,
            }
        })
        .collect())
}

/// Whether a scenario is selected: any `--filter` is a substring of its name (case-insensitive)
/// and it has any of the `--tag`s; an empty list selects everything.
pub fn selected(l: &Loaded, filters: &[String], tags: &[String]) -> bool {
    let name = l.name.to_ascii_lowercase();
    let by_name = filters.is_empty()
        || filters
            .iter()
            .any(|f| name.contains(&f.to_ascii_lowercase()));
    let have = l.tags();
    let by_tag = tags.is_empty() || tags.iter().any(|t| have.iter().any(|h| h == t));
    by_name && by_tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_fixtures_and_selects() {
        let dir = find_dir(None).expect("fixtures");
        let all = load_dir(&dir).expect("load");
        assert!(all.len() >= 18, "{}", all.len());
        for l in &all {
            assert!(l.scenario.is_ok(), "{}: {:?}", l.name, l.scenario);
            assert!(l.topology.is_ok(), "{}: {:?}", l.name, l.topology);
        }
        let pick = |f: &[&str], t: &[&str]| {
            let f: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            let t: Vec<String> = t.iter().map(|s| s.to_string()).collect();
            all.iter()
                .filter(|l| selected(l, &f, &t))
                .map(|l| l.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(pick(&[], &[]).len(), all.len());
        assert_eq!(
            pick(&["REFUSALS"], &[]),
            vec!["initiate-failback-refusals", "refusals"]
        );
        assert!(pick(&[], &["fault"]).iter().all(|n| n.starts_with("fault")));
        assert_eq!(
            pick(&["refusals"], &["initiate-failback"]),
            vec!["initiate-failback-refusals"]
        );
        assert!(pick(&["no-such"], &[]).is_empty());
    }

    #[test]
    fn bad_files_are_reported_not_dropped() {
        let dir = std::env::temp_dir().join(format!("rc-sc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("broken.toml"), "name = ").expect("write");
        std::fs::write(
            dir.join("odd.toml"),
            "name = \"odd\"\ntopology = \"nope\"\n",
        )
        .expect("write");
        let all = load_dir(&dir).expect("load");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, "broken");
        assert!(all[0].scenario.is_err());
        assert!(all[1].topology.as_ref().is_err_and(|e| e.contains("nope")));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(find_dir(Some(Path::new("/no/such/dir"))).is_err());
    }
}
