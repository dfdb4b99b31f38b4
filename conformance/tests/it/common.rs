use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use replica_client::wsman::{ClientOptions, Credentials};
use replica_conformance::report::Progress;
use replica_conformance::runner::{self, RunOptions, ScenarioReport, Status};
use replica_conformance::scenarios;
use replica_conformance::target::{Target, TargetSpec};

pub fn creds() -> Credentials {
    Credentials::new("admin", "admin")
}

pub fn all_scenarios() -> Vec<scenarios::Loaded> {
    let dir = scenarios::find_dir(None).expect("fixtures/scenarios");
    scenarios::load_dir(&dir).expect("scenarios load")
}

pub async fn connect(spec: &TargetSpec) -> Arc<Target> {
    Arc::new(
        Target::connect(spec, creds(), ClientOptions::default(), 0)
            .await
            .expect("target connects"),
    )
}

pub fn opts(record: Option<PathBuf>) -> Arc<RunOptions> {
    Arc::new(RunOptions {
        step_timeout: Duration::from_secs(60),
        record,
        vm_prefix: None,
        jobs: 4,
    })
}

pub async fn run(target: &Arc<Target>, record: Option<PathBuf>) -> Vec<ScenarioReport> {
    runner::run_all(
        target.clone(),
        all_scenarios(),
        opts(record),
        Arc::new(Progress::quiet()),
    )
    .await
}

/// Every failure of a run, one line each, for assertion messages.
pub fn failures(reports: &[ScenarioReport]) -> Vec<String> {
    let mut out = Vec::new();
    for r in reports.iter().filter(|r| r.status == Status::Failed) {
        out.push(format!("{}: {:?}", r.name, r.reason));
        for s in &r.steps {
            for f in &s.failures {
                out.push(format!("  {}. {}: {f}", s.index, s.label));
            }
        }
        for d in &r.divergences {
            out.push(format!("  divergence: {d}"));
        }
    }
    out
}

pub async fn shutdown(t: Arc<Target>) {
    if let Ok(t) = Arc::try_unwrap(t) {
        t.shutdown().await;
    }
}

/// A fresh temporary directory under the target dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "replica-conformance-it-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_replica-conformance")
}
