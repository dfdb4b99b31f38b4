//! The `replica-sim` command line: serve the simulated hosts, draw the state machine, run the
//! offline demo or the soak. The binary is only [`main`]; the demo, the soak, the state file and
//! the live page are private to this crate and reached only through here.

use crate::state::{ClockMode, lock};
use crate::{AuthSchemes, Credential, Sim, SimConfig};
use clap::{Parser, Subcommand};
use replica_core::diagram::{self, Format};
use replica_core::topology::TopologySpec;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "replica-sim",
    version,
    about = "A test double of Hyper-V Replica's WMI API over WS-Management"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the simulated hosts (one WS-Management listener each) until SIGTERM or SIGINT.
    Serve(Box<ServeArgs>),
    /// Print the replication state machine, drawn from the model's transition table.
    Diagram {
        #[arg(long, value_enum, default_value_t = DiagramFormat::Mermaid)]
        format: DiagramFormat,
    },
    /// Narrated walk through planned failover, commit, reverse and InitiateFailback on an
    /// in-process simulator (real WS-Management calls over loopback). Colour on a terminal
    /// unless NO_COLOR is set.
    Demo(DemoArgs),
    /// Self-check: mixed WS-Management calls from several threads into one world through the
    /// dispatcher, with a consistency check of the journal, the jobs and the VMs (CI runs a
    /// million). Exit code 1 names the first inconsistency.
    Soak(SoakArgs),
}

/// `diagram --format`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum DiagramFormat {
    /// Mermaid `stateDiagram-v2`.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

#[derive(clap::Args)]
struct SoakArgs {
    /// Calls to make in all.
    #[arg(long, default_value_t = 1_000_000)]
    calls: u64,
    /// Threads sharing the one world.
    #[arg(long, default_value_t = 2)]
    threads: u64,
    /// Seed of the calls' random mix and of the world.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Wait for Enter before each step.
    #[arg(long)]
    step: bool,
    /// How much faster than real time the demo's clock runs.
    #[arg(long, default_value_t = 4.0)]
    speed: f64,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address of the first host, IP:PORT or NAME:PORT (localhost is 127.0.0.1); the next hosts
    /// take the following ports, skipping 5986 for plain HTTP (WinRM's HTTPS port); port 0:
    /// any free port.
    #[arg(long, default_value = "127.0.0.1:5985", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Authentication schemes offered, comma-separated: `basic`, `negotiate` (NTLMv2, raw or in
    /// SPNEGO, with WinRM message encryption over HTTP). Turning one off is what an
    /// administrator does with `winrm/config/service/auth`.
    #[arg(long, default_value = "basic,negotiate", value_parser = AuthSchemes::parse)]
    auth: AuthSchemes,
    /// Topology file (TOML); default: the embedded fixtures/topologies/default.toml. Ignored
    /// (with a warning) when --state-file names an existing file.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Credentials USER:PASS for every scheme (repeatable).
    #[arg(long, default_value = "admin:admin", value_parser = credential)]
    credentials: Vec<Credential>,
    /// Read-only credentials USER:PASS: reads work, method calls answer 32769 Access Denied.
    #[arg(long, value_parser = read_only_credential)]
    read_only_credentials: Vec<Credential>,
    /// Credentials that authenticate but have no rights (USER:PASS): every WS-Management
    /// operation except Identify answers the w:AccessDenied fault.
    #[arg(long, value_parser = credential)]
    denied_credentials: Vec<Credential>,
    /// realtime[:SPEED], manual, or polls:N [default: realtime]. Ignored (with a warning) when
    /// --state-file names an existing file.
    #[arg(long, value_parser = ClockMode::parse)]
    clock: Option<ClockMode>,
    /// Seed for every random choice (GUIDs, job ids, probabilistic faults) [default: 0].
    /// Ignored (with a warning) when --state-file names an existing file.
    #[arg(long)]
    seed: Option<u64>,
    /// Require this token (Authorization: Bearer TOKEN) on the control API.
    #[arg(long)]
    control_token: Option<String>,
    /// Keep every world in FILE: loaded on start (an invalid file is refused, exit 2), saved
    /// atomically on change and on SIGTERM/SIGINT. An existing FILE wins over --topology,
    /// --seed and --clock: they are ignored, and a warning names them.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate made at start (for localhost, 127.0.0.1,
    /// ::1 and the listen address); its SHA-256 fingerprint is logged so clients can pin it.
    #[arg(long)]
    tls: bool,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Change a limit, NAME=VALUE (repeatable), e.g. `--limit max_connections=256`; the
    /// names and defaults are in docs/security.md.
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    limits: Vec<String>,
    /// Answer as a Windows host would: no control API, no `/_replica` or `/worlds` paths
    /// (HTTP.sys' 404 page instead), so a client's real-host path runs end to end (CI's
    /// rehearsal of a lab run).
    #[arg(long)]
    as_real_host: bool,
}

/// `--credentials USER:PASS`.
fn credential(text: &str) -> Result<Credential, String> {
    Credential::parse(text, false)
}

/// `--read-only-credentials USER:PASS`.
fn read_only_credential(text: &str) -> Result<Credential, String> {
    Credential::parse(text, true)
}

/// `--listen`: an IP:PORT as is, or a NAME:PORT resolved now (an IPv4 address first, as the
/// default listens on IPv4). `localhost` is 127.0.0.1 whatever the resolver says, so the ready
/// line and the Host check agree with the default.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "`{text}` has no port: give HOST:PORT, e.g. 127.0.0.1:5985, localhost:5985 or [::1]:5985"
        ));
    };
    let Ok(port) = port.parse::<u16>() else {
        return Err(format!(
            "port `{port}` in `{text}` is not a number from 0 to 65535"
        ));
    };
    if host.is_empty() || host.starts_with('[') {
        return Err(format!(
            "`{text}` is not HOST:PORT: write an IPv6 address in brackets, e.g. [::1]:{port}"
        ));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host}` in `{text}`: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("`{host}` in `{text}` resolves to no address"))
}

/// Refuses a --state-file path that cannot be a file before anything is read or written, so
/// the message blames what is wrong (the directory, not the file).
fn check_state_path(path: &std::path::Path) -> anyhow::Result<()> {
    if path.is_dir() {
        anyhow::bail!(
            "state file {} is a directory: give the path of a file in it, e.g. {}",
            path.display(),
            path.join("state.json").display()
        );
    }
    // A device (e.g. /dev/null) is never a state file: saving renames a file over the path,
    // which would replace the device with a regular file.
    if path.exists() && !path.is_file() {
        anyhow::bail!(
            "state file {} is not a regular file: give the path of a file",
            path.display()
        );
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        anyhow::bail!(
            "state file {}: directory {} does not exist (create it first)",
            path.display(),
            parent.display()
        );
    }
    Ok(())
}

/// An empty token would turn the protection off without saying so, and one with surrounding
/// whitespace could never match (the header value is trimmed): both are refused at start.
fn check_control_token(token: &str) -> anyhow::Result<()> {
    if token.trim().is_empty() {
        anyhow::bail!(
            "--control-token is empty or only whitespace: give a real token, or leave the option out to run the control API without one"
        );
    }
    if token.trim() != token {
        anyhow::bail!(
            "--control-token starts or ends with whitespace, which no request could send back: remove it"
        );
    }
    Ok(())
}

fn load_topology(path: &std::path::Path) -> anyhow::Result<TopologySpec> {
    // Refused before anything listens, with file, line and what was expected.
    crate::topology_file::load(path).map_err(anyhow::Error::new)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut topology = match &args.topology {
        Some(p) => load_topology(p)?,
        None => crate::server::default_topology(),
    };
    let credentials: Vec<Credential> = args
        .credentials
        .iter()
        .chain(&args.read_only_credentials)
        .cloned()
        .collect();
    if let Some(token) = &args.control_token {
        check_control_token(token)?;
    }
    let mut clock = args.clock.unwrap_or(ClockMode::Realtime { speed: 1.0 });
    let mut seed = args.seed.unwrap_or(0);
    let saved = match &args.state_file {
        Some(path) => {
            check_state_path(path)?;
            // The error's text already ends with its cause: flattened, so `{:#}` in main does
            // not print the cause a second time.
            crate::persist::prepare(path, &mut topology, &mut seed, &mut clock)
                .map_err(|e| anyhow::Error::msg(e.to_string()))?
        }
        None => None,
    };
    if let (Some(_), Some(path)) = (&saved, &args.state_file) {
        // The file holds the worlds as they were, with their own topology, seed and clock.
        let ignored: Vec<&str> = [
            ("--topology", args.topology.is_some()),
            ("--seed", args.seed.is_some()),
            ("--clock", args.clock.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        if !ignored.is_empty() {
            tracing::warn!(
                file = %path.display(),
                ignored = %ignored.join(", "),
                "the state file exists and wins: these options are ignored (move the file away to use them)"
            );
        }
    }
    let mut limits = crate::state::Limits::default();
    for l in &args.limits {
        limits.set(l).map_err(anyhow::Error::msg)?;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::TlsSetup::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ if args.tls => Some(crate::tls::TlsSetup::self_signed(&[args
            .listen
            .ip()
            .to_string()])),
        _ => None,
    };
    if !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "listening on a non-loopback address: anyone who can reach it can drive the simulator");
    }
    if args.listen.ip().is_unspecified() {
        // crate::guard accepts any Host then: the names the machine answers to are unknown.
        tracing::warn!(listen = %args.listen, "listening on all addresses: the control API accepts any Host name (no DNS-rebinding check); consider --control-token");
    }
    let mut config = SimConfig {
        topology,
        seed,
        credentials: credentials.clone(),
        clock,
        listen: args.listen,
        control_token: args.control_token.clone(),
        denied_credentials: args.denied_credentials.clone(),
        limits,
        auth: args.auth,
        as_real_host: args.as_real_host,
        ..SimConfig::default()
    };
    config.tls = tls;
    let handle = Sim::start_with(config).await?;
    if let Some(tls) = handle.tls() {
        tracing::info!(
            sha256 = %tls.fingerprint,
            "TLS certificate (pin this fingerprint, or trust the certificate)"
        );
    }
    let saver = match &args.state_file {
        Some(path) => {
            let on_disk = match saved {
                Some(file) => {
                    file.restore(&handle.app.worlds);
                    None
                }
                // A new file is written at once: an unwritable path fails now, not at SIGTERM.
                None => Some(crate::persist::save(&handle.app, path).await?),
            };
            Some(crate::persist::Saver::spawn(
                handle.app.clone(),
                path.clone(),
                crate::persist::CHECK_EVERY,
                on_disk,
            ))
        }
        None => None,
    };
    for c in &credentials {
        tracing::info!(user = %c.user, read_only = c.read_only, auth = %args.auth, "credentials");
    }
    let stop = stop_signal();
    // Key order as docs/facts.md#commands shows it: `ready` first (serde_json's map would sort it
    // last).
    let hosts = serde_json::to_string(&handle.hosts())?;
    println!("{{\"ready\":true,\"hosts\":{hosts}}}");
    {
        let slot = handle
            .app
            .worlds
            .get(crate::state::DEFAULT_WORLD)
            .map_err(anyhow::Error::msg)?;
        let s = lock(&slot);
        tracing::info!(hosts = s.world.hosts().len(), seed, "simulator ready");
    }
    stop.await;
    tracing::info!("stopping");
    handle.shutdown().await;
    if let Some(saver) = saver {
        saver.finish().await?;
    }
    Ok(())
}

/// Installs the SIGTERM/SIGINT handlers now (before the ready line, so a signal sent as soon
/// as a caller sees it stops the simulator cleanly) and returns the wait for one of them.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            match streams {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the command line given to the process (`std::env::args`) and returns its exit code:
/// 0 done, 1 an inconsistency found by `soak`, 2 a usage or start-up error.
pub fn main() -> std::process::ExitCode {
    // Colour only on a terminal, and never with NO_COLOR set (no-color.org): escape codes in a
    // log file make it hard to read and to grep.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Diagram { format } => {
            let f = match format {
                DiagramFormat::Mermaid => Format::Mermaid,
                DiagramFormat::Dot => Format::Dot,
            };
            print!("{}", diagram::render(f, &[]));
            Ok(())
        }
        Command::Demo(args) => crate::demo::run(crate::demo::DemoOptions {
            step: args.step,
            speed: args.speed,
            color: crate::demo::DemoOptions::color_auto(),
        }),
        Command::Soak(args) => {
            match crate::soak::run(crate::soak::SoakOptions {
                calls: args.calls,
                threads: args.threads,
                seed: args.seed,
            }) {
                Ok(report) => {
                    println!("{report}");
                    Ok(())
                }
                Err(e) => {
                    eprintln!("replica-sim soak: inconsistent: {e}");
                    return std::process::ExitCode::from(1);
                }
            }
        }
        Command::Serve(args) => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(serve(*args)),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replica-sim: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
