//! The command line: `replica-conformance run` and `replica-conformance explore`.
//!
//! Exit codes: 0 everything passed (skips included, as long as one scenario ran), 1 a scenario
//! failed, no scenario ran, a host could not be reached or refused the credentials, or explore
//! found a divergence; 2 a usage error (bad arguments, the real-host guard) with a precise
//! message.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use replica_core::faults::FaultSpec;

use crate::explore::{self, ExploreOptions};
use crate::report::{self, Progress, RunReport};
use crate::runner::{self, RunOptions, Status};
use crate::scenarios;
use crate::target::{Target, TargetKind, TargetSpec};
use replica_client::wsman::{ClientOptions, Credentials};

#[derive(Debug, Parser)]
#[command(
    name = "replica-conformance",
    version,
    about = "Plays scenarios and random operation sequences against the simulator, real Hyper-V hosts or recordings, with replica-core as the oracle."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Play every scenario (or those selected) against a target; print a table; exit 1 on a failure.
    Run(RunArgs),
    /// Random operation sequences checked step by step against the model, shrunk on failure.
    Explore(ExploreArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Start an in-process simulator and use it as the target.
    #[arg(long)]
    pub sim: bool,
    /// One host of the target as NAME=URL (repeat for every host), e.g.
    /// HV-PRIMARY=http://127.0.0.1:5985/wsman; or replay:DIR to replay a recording.
    #[arg(long = "target", value_name = "NAME=URL|replay:DIR")]
    pub targets: Vec<String>,
    /// WS-Management credentials (HTTP Basic).
    #[arg(long, value_name = "USER:PASS", default_value = "admin:admin")]
    pub credentials: String,
    /// Real hosts: only VMs whose names start with PREFIX may be touched (required there).
    #[arg(long, value_name = "PREFIX")]
    pub vm_prefix: Option<String>,
    /// Real hosts: the explicit consent to change real VMs (required there).
    #[arg(long)]
    pub allow_changes_to_real_vms: bool,
    /// Give up on a step after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub step_timeout: f64,
    /// Accept any TLS certificate (self-signed lab or simulator certificates).
    #[arg(long)]
    pub insecure: bool,
    /// Authentication: `auto` (Basic over HTTPS; over HTTP Negotiate/NTLM with message
    /// encryption, Basic if the host offers no Negotiate), `basic` or `negotiate`.
    #[arg(long, value_name = "SCHEME", default_value = "auto")]
    pub auth: replica_client::wsman::AuthMethod,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Scenario directory (default: fixtures/scenarios, found from the current directory).
    #[arg(long, value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
    /// Only scenarios whose name contains NAME (repeatable).
    #[arg(long, value_name = "NAME")]
    pub filter: Vec<String>,
    /// Only scenarios with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a JSON report.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Record every exchange (request, response, timing) as fixtures, one file per scenario.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Scenarios run at once against a simulator (real hosts: always one).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub jobs: usize,
    /// Seed of the simulator worlds the scenarios run in.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// With --target replay:DIR, do not compare the recording with the simulator.
    #[arg(long)]
    pub no_diff: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ExploreArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Number of random sequences.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub cases: u32,
    /// Longest sequence (each has 1..=N operations).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub steps: usize,
    /// Seed of the campaign (default: random, printed at start).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// A fault rule (core's FaultSpec as JSON) installed in every world of the target, e.g.
    /// '{"method":"CommitFailover","kind":"return_code","code":0}'. Repeatable.
    #[arg(long, value_name = "JSON")]
    pub fault: Vec<String>,
    /// Upper bound on shrinking steps.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_shrink_iters: u32,
}

/// A usage error: printed as `error: …`, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl<T: Into<String>> From<T> for Usage {
    fn from(s: T) -> Usage {
        Usage(s.into())
    }
}

pub fn parse_credentials(s: &str) -> Result<Credentials, Usage> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok(Credentials::new(u, p)),
        _ => Err(Usage(format!(
            "--credentials `{}` must be USER:PASS with a non-empty user",
            s.split(':').next().unwrap_or_default()
        ))),
    }
}

fn step_timeout(t: &TargetArgs) -> Result<Duration, Usage> {
    if t.step_timeout.is_finite() && t.step_timeout > 0.0 && t.step_timeout <= 86_400.0 {
        Ok(Duration::from_secs_f64(t.step_timeout))
    } else {
        Err(Usage(format!(
            "--step-timeout {} must be a number of seconds in (0, 86400]",
            t.step_timeout
        )))
    }
}

/// The real-host guard: a target that is not a simulator is changed only with a VM prefix
/// and the explicit flag.
pub fn real_host_guard(target: &Target, t: &TargetArgs) -> Result<(), Usage> {
    if !target.is_real() {
        return Ok(());
    }
    let prefix_ok = t.vm_prefix.as_deref().is_some_and(|p| !p.trim().is_empty());
    if prefix_ok && t.allow_changes_to_real_vms {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !prefix_ok {
        missing.push("--vm-prefix PREFIX (only VMs whose names start with it are touched)");
    }
    if !t.allow_changes_to_real_vms {
        missing.push("--allow-changes-to-real-vms");
    }
    Err(Usage(format!(
        "refusing to run against real hosts ({}): they answered as Hyper-V, not as replica-sim, and the scenarios change VMs. Pass {}",
        target.label,
        missing.join(" and ")
    )))
}

fn client_options(t: &TargetArgs) -> ClientOptions {
    ClientOptions {
        accept_invalid_certs: t.insecure,
        auth: t.auth,
        ..ClientOptions::default()
    }
}

/// Entry point for `main` and for tests: parses `argv` and runs; returns the exit code.
pub fn main_with<I, S>(argv: I) -> i32
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(mut e) => {
            suggest_subcommand(&mut e);
            let _ = e.print();
            return e.exit_code();
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return 1;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Run(a) => run_cmd(a).await,
            Command::Explore(a) => explore_cmd(a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(Usage(msg)) => {
            eprintln!("error: {msg}");
            2
        }
    }
}

/// clap suggests by Jaro similarity, which misses a swapped letter in a short name (`rnu` is
/// 0.56 from `run`, under its 0.7): add the subcommand one edit or one swap away.
fn suggest_subcommand(e: &mut clap::Error) {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand || e.get(ContextKind::SuggestedSubcommand).is_some()
    {
        return;
    }
    let Some(ContextValue::String(typed)) = e.get(ContextKind::InvalidSubcommand) else {
        return;
    };
    let typed = typed.clone();
    let cmd = <Cli as clap::CommandFactory>::command();
    let near: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|name| one_edit_apart(&typed, name))
        .collect();
    if !near.is_empty() {
        e.insert(
            ContextKind::SuggestedSubcommand,
            ContextValue::Strings(near),
        );
    }
}

/// At most one insertion, deletion, substitution or swap of neighbours turns `a` into `b`.
fn one_edit_apart(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a == b {
        return false;
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    match ra.len().abs_diff(rb.len()) {
        0 => {
            ra[1..] == rb[1..]
                || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        1 if ra.len() > rb.len() => ra[1..] == *rb,
        1 => rb[1..] == *ra,
        _ => false,
    }
}

async fn connect(t: &TargetArgs, world_seed: u64) -> Result<Result<Target, String>, Usage> {
    let creds = parse_credentials(&t.credentials)?;
    let spec = TargetSpec::parse(t.sim, &t.targets)?;
    Ok(Target::connect(&spec, creds, client_options(t), world_seed)
        .await
        .map_err(|e| format!("{e:#}")))
}

/// `replica-conformance run`.
pub async fn run_cmd(a: RunArgs) -> Result<i32, Usage> {
    let timeout = step_timeout(&a.target)?;
    if a.jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    let spec = TargetSpec::parse(a.target.sim, &a.target.targets)?;
    if matches!(spec, TargetSpec::Replay(_)) && a.record.is_some() {
        return Err(
            "--record cannot record a replay: record against --sim or --target NAME=URL".into(),
        );
    }
    let dir = scenarios::find_dir(a.scenarios.as_deref())?;
    let all = scenarios::load_dir(&dir)?;
    let list: Vec<scenarios::Loaded> = all
        .into_iter()
        .filter(|l| scenarios::selected(l, &a.filter, &a.tag))
        .collect();
    if list.is_empty() {
        return Err(format!(
            "no scenario in {} matches --filter {:?} --tag {:?}",
            dir.display(),
            a.filter,
            a.tag
        )
        .into());
    }
    let target = match connect(&a.target, a.seed).await? {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    if let Err(u) = real_host_guard(&target, &a.target) {
        target.shutdown().await;
        return Err(u);
    }
    if target.is_real()
        && let Err(why) = target.check_reachable().await
    {
        eprintln!("error: cannot run against these hosts:\n       {why}");
        return Ok(1);
    }
    let target = Arc::new(target);
    let opts = Arc::new(RunOptions {
        step_timeout: timeout,
        record: a.record.clone(),
        vm_prefix: a.target.vm_prefix.clone(),
        jobs: a.jobs,
    });
    let tty = std::io::stderr().is_terminal();
    let progress = Arc::new(Progress::new(list.len(), tty));
    let start = Instant::now();
    let reports =
        runner::run_all(target.clone(), list.clone(), opts.clone(), progress.clone()).await;
    progress.end();
    let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut report = RunReport::new(&target.label, reports, ms);

    if let TargetKind::Replay(_) = &target.kind
        && !a.no_diff
    {
        report.differences = Some(compare_with_sim(&a, &list, &report, timeout).await);
    }

    print!("{}", report::table(&report));
    if let Some(dir) = &a.record {
        let n = report
            .scenarios
            .iter()
            .filter(|s| s.recording.is_some())
            .count();
        println!("recorded {n} scenario(s) in {}", dir.display());
    }
    let mut code = if report.ok() { 0 } else { 1 };
    // A run that tested nothing is no pass.
    let ran = report
        .scenarios
        .iter()
        .filter(|s| s.status != Status::Skipped)
        .count();
    if ran == 0 {
        eprintln!(
            "error: no scenario ran against {}: all {} were skipped (the reasons are above)",
            target.label,
            report.scenarios.len()
        );
        code = 1;
    }
    if let Some(p) = &a.junit
        && let Err(e) = std::fs::write(p, report::junit(&report))
    {
        eprintln!("error: writing {}: {e}", p.display());
        code = 1;
    }
    if let Some(p) = &a.json
        && let Err(e) = std::fs::write(p, report::json(&report))
    {
        eprintln!("error: writing {}: {e}", p.display());
        code = 1;
    }
    if let Ok(t) = Arc::try_unwrap(target) {
        t.shutdown().await;
    }
    Ok(code)
}

/// The simulator's run of the scenarios a replay played, for the difference report.
#[cfg(feature = "sim")]
async fn compare_with_sim(
    a: &RunArgs,
    list: &[scenarios::Loaded],
    replayed: &RunReport,
    timeout: Duration,
) -> Vec<runner::Divergence> {
    let played: Vec<scenarios::Loaded> = list
        .iter()
        .filter(|l| {
            replayed
                .scenarios
                .iter()
                .any(|r| r.name == l.name && r.status != Status::Skipped)
        })
        .cloned()
        .collect();
    if played.is_empty() {
        return Vec::new();
    }
    let creds = parse_credentials(&a.target.credentials)
        .unwrap_or_else(|_| Credentials::new("admin", "admin"));
    let sim = match Target::connect(&TargetSpec::Sim, creds, ClientOptions::default(), a.seed).await
    {
        Ok(t) => Arc::new(t),
        Err(e) => {
            eprintln!("note: no difference report: the simulator did not start: {e:#}");
            return Vec::new();
        }
    };
    let opts = Arc::new(RunOptions {
        step_timeout: timeout,
        record: None,
        vm_prefix: a.target.vm_prefix.clone(),
        jobs: a.jobs,
    });
    let sim_reports = runner::run_all(sim.clone(), played, opts, Arc::new(Progress::quiet())).await;
    if let Ok(t) = Arc::try_unwrap(sim) {
        t.shutdown().await;
    }
    runner::difference_report(&replayed.scenarios, &sim_reports)
}

#[cfg(not(feature = "sim"))]
async fn compare_with_sim(
    _a: &RunArgs,
    _list: &[scenarios::Loaded],
    _replayed: &RunReport,
    _timeout: Duration,
) -> Vec<runner::Divergence> {
    eprintln!("note: no difference report: built without the in-process simulator (feature `sim`)");
    Vec::new()
}

/// How the replay command names the target.
fn target_args_text(t: &TargetArgs) -> String {
    let mut s = if t.sim {
        "--sim".to_string()
    } else {
        t.targets
            .iter()
            .map(|x| format!("--target {x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if t.credentials != "admin:admin" {
        let user = t.credentials.split(':').next().unwrap_or_default();
        s.push_str(&format!(" --credentials {user}:<password>"));
    }
    if t.insecure {
        s.push_str(" --insecure");
    }
    s
}

/// `replica-conformance explore`.
pub async fn explore_cmd(a: ExploreArgs) -> Result<i32, Usage> {
    let timeout = step_timeout(&a.target)?;
    if a.cases == 0 || a.steps == 0 {
        return Err("--cases and --steps must be at least 1".into());
    }
    let spec = TargetSpec::parse(a.target.sim, &a.target.targets)?;
    if matches!(spec, TargetSpec::Replay(_)) {
        return Err("explore needs a live simulator: a recording cannot answer new sequences (use run --target replay:DIR)".into());
    }
    let mut faults = Vec::new();
    for f in &a.fault {
        let spec: FaultSpec = serde_json::from_str(f)
            .map_err(|e| Usage(format!("--fault `{f}` is not a fault rule: {e}")))?;
        spec.validate()
            .map_err(|e| Usage(format!("--fault `{f}`: {e}")))?;
        faults.push(spec);
    }
    let seed = a.seed.unwrap_or_else(|| {
        use rand::Rng as _;
        rand::rng().next_u64()
    });
    let target = match connect(&a.target, 0).await? {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    if target.is_real() {
        real_host_guard(&target, &a.target)?;
        if !faults.is_empty() {
            return Err(Usage(
                "--fault needs the simulator's control API; real hosts have none".into(),
            ));
        }
        if let Err(why) = target.check_reachable().await {
            eprintln!("error: cannot explore these hosts:\n       {why}");
            return Ok(1);
        }
    }
    let topology =
        match scenarios::find_dir(None).and_then(|d| scenarios::load_topology(&d, "default")) {
            Ok(t) => t,
            Err(_) => crate::oracle::default_topology().map_err(|e| Usage(e.to_string()))?,
        };
    let opts = ExploreOptions {
        cases: a.cases,
        steps: a.steps,
        seed,
        faults,
        max_shrink_iters: a.max_shrink_iters,
        step_timeout: timeout,
        topology,
        world_seed: 0,
        target_args: target_args_text(&a.target),
    };
    eprintln!(
        "explore: seed {seed}, {} case(s) of up to {} step(s) against {}",
        opts.cases, opts.steps, target.label
    );
    if target.is_real() {
        // Random sequences on lab VMs bound, arranged and restored as `run` does.
        let prefix = a.target.vm_prefix.clone().unwrap_or_default();
        let progress = Progress::new(0, std::io::stderr().is_terminal());
        let cases = explore::explore_lab(&target, &opts, &prefix, &progress).await;
        progress.end();
        print!("{}", explore::lab_summary(&cases, &opts));
        let ran = cases.iter().filter(|c| c.skipped.is_none()).count();
        let bad = cases.iter().any(|c| !c.problems.is_empty());
        if ran == 0 {
            eprintln!("error: no case ran: every sequence was skipped (the reasons are above)");
        }
        target.shutdown().await;
        return Ok(if bad || ran == 0 { 1 } else { 0 });
    }
    let target = Arc::new(target);
    let tty = std::io::stderr().is_terminal();
    let handle = tokio::runtime::Handle::current();
    let (t2, o2) = (target.clone(), opts.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let progress = Progress::new(0, tty);
        let r = explore::explore(t2, &o2, &handle, &progress);
        progress.end();
        r
    })
    .await;
    let code = match outcome {
        Ok(Ok(o)) => {
            print!("{}", explore::summary(&o, &opts));
            if o.failure.is_some() { 1 } else { 0 }
        }
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            1
        }
        Err(e) => {
            eprintln!("error: the explore task ended abnormally: {e}");
            1
        }
    };
    if let Ok(t) = Arc::try_unwrap(target) {
        t.shutdown().await;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("replica-conformance").chain(args.iter().copied()))
    }

    #[test]
    fn a_mistyped_subcommand_gets_a_suggestion() {
        for typed in ["rnu", "ru", "runn", "explroe", "xplore"] {
            let mut e = parse(&[typed]).expect_err("refused");
            suggest_subcommand(&mut e);
            let text = e.to_string();
            assert!(
                text.contains("similar subcommand exists"),
                "{typed}: {text}"
            );
        }
        assert!(!one_edit_apart("xyz", "run"));
        assert!(!one_edit_apart("run", "run"));
    }

    #[test]
    fn run_flags() {
        let cli = parse(&[
            "run",
            "--target",
            "HV-PRIMARY=http://h:1/wsman",
            "--target",
            "HV-REPLICA=http://h:2/wsman",
            "--filter",
            "failback",
            "--tag",
            "workflow",
            "--junit",
            "j.xml",
            "--json",
            "r.json",
            "--step-timeout",
            "5",
            "--record",
            "rec",
            "--vm-prefix",
            "lab-",
            "--allow-changes-to-real-vms",
            "--credentials",
            "u:p",
            "--seed",
            "3",
        ])
        .expect("parses");
        let Command::Run(a) = cli.command else {
            panic!("run")
        };
        assert_eq!(a.target.targets.len(), 2);
        assert_eq!(a.filter, vec!["failback"]);
        assert_eq!(a.tag, vec!["workflow"]);
        assert_eq!(a.target.step_timeout, 5.0);
        assert_eq!(a.target.vm_prefix.as_deref(), Some("lab-"));
        assert!(a.target.allow_changes_to_real_vms);
        assert_eq!(a.seed, 3);
        assert_eq!(a.record, Some(PathBuf::from("rec")));
    }

    #[test]
    fn explore_flags() {
        let cli = parse(&[
            "explore",
            "--sim",
            "--cases",
            "3",
            "--steps",
            "4",
            "--seed",
            "9",
            "--fault",
            r#"{"method":"CommitFailover","kind":"return_code","code":0}"#,
        ])
        .expect("parses");
        let Command::Explore(a) = cli.command else {
            panic!("explore")
        };
        assert!(a.target.sim);
        assert_eq!((a.cases, a.steps, a.seed), (3, 4, Some(9)));
        assert_eq!(a.fault.len(), 1);
        assert_eq!(target_args_text(&a.target), "--sim");
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(main_with(["replica-conformance", "run", "--bogus"]), 2);
        assert_eq!(main_with(["replica-conformance"]), 2);
        assert_eq!(main_with(["replica-conformance", "run"]), 2, "no target");
        assert_eq!(
            main_with([
                "replica-conformance",
                "run",
                "--sim",
                "--target",
                "A=http://h/wsman"
            ]),
            2
        );
        assert_eq!(
            main_with([
                "replica-conformance",
                "run",
                "--sim",
                "--credentials",
                "nocolon"
            ]),
            2
        );
        assert_eq!(
            main_with(["replica-conformance", "run", "--sim", "--step-timeout", "0"]),
            2
        );
        assert_eq!(
            main_with([
                "replica-conformance",
                "run",
                "--sim",
                "--filter",
                "no-such-scenario-at-all"
            ]),
            2
        );
        assert_eq!(
            main_with(["replica-conformance", "explore", "--target", "replay:/tmp"]),
            2
        );
        assert_eq!(
            main_with([
                "replica-conformance",
                "explore",
                "--sim",
                "--fault",
                "{\"kind\":\"nope\"}"
            ]),
            2
        );
        assert_eq!(
            main_with([
                "replica-conformance",
                "run",
                "--target",
                "replay:/tmp",
                "--record",
                "/tmp/x"
            ]),
            2
        );
        assert_eq!(main_with(["replica-conformance", "--help"]), 0);
    }

    #[test]
    fn credentials() {
        assert!(parse_credentials("a:b:c").is_ok_and(|c| c.user == "a" && c.pass == "b:c"));
        let e = parse_credentials(":secret").expect_err("empty user");
        assert!(!e.0.contains("secret"), "{e:?}");
    }
}
