//! `replica-sim`: serve the simulated hosts, draw the state machine, or run the offline demo.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use replica_core::diagram::{self, Format};
use replica_core::topology::TopologySpec;
use replica_sim::state::{ClockMode, lock};
use replica_sim::{Credential, Sim, SimConfig};
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
    Serve(ServeArgs),
    /// Print the replication state machine, drawn from the model's transition table.
    Diagram {
        #[arg(long, default_value = "mermaid", value_parser = ["mermaid", "dot"])]
        format: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address of the first host; the next hosts take the following ports (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:5985")]
    listen: SocketAddr,
    /// Topology file (TOML); default: the embedded fixtures/topologies/default.toml.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Basic credentials USER:PASS (repeatable).
    #[arg(long, default_value = "admin:admin")]
    credentials: Vec<String>,
    /// Read-only credentials USER:PASS: reads work, method calls answer 32769 Access Denied.
    #[arg(long)]
    read_only_credentials: Vec<String>,
    /// realtime[:SPEED], manual, or polls:N.
    #[arg(long, default_value = "realtime")]
    clock: String,
    /// Seed for every random choice (GUIDs, job ids, probabilistic faults).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Require this token (Authorization: Bearer TOKEN) on the control API.
    #[arg(long)]
    control_token: Option<String>,
}

fn load_topology(path: &std::path::Path) -> anyhow::Result<TopologySpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let spec: TopologySpec =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // Build once now so a bad topology is refused before anything listens.
    spec.build(0, 0)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(spec)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let topology = match &args.topology {
        Some(p) => load_topology(p)?,
        None => replica_sim::server::default_topology(),
    };
    let mut credentials = Vec::new();
    for c in &args.credentials {
        credentials.push(Credential::parse(c, false).map_err(anyhow::Error::msg)?);
    }
    for c in &args.read_only_credentials {
        credentials.push(Credential::parse(c, true).map_err(anyhow::Error::msg)?);
    }
    let clock = ClockMode::parse(&args.clock).map_err(anyhow::Error::msg)?;
    if !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "listening on a non-loopback address: anyone who can reach it can drive the simulator");
    }
    let config = SimConfig {
        topology,
        seed: args.seed,
        credentials: credentials.clone(),
        clock,
        listen: args.listen,
        control_token: args.control_token.clone(),
        ..SimConfig::default()
    };
    let handle = Sim::start(config).await?;
    for c in &credentials {
        tracing::info!(user = %c.user, read_only = c.read_only, "credentials (Basic auth)");
    }
    // Key order as DESIGN.md shows it: `ready` first (serde_json's map would sort it last).
    let hosts = serde_json::to_string(&handle.hosts())?;
    println!("{{\"ready\":true,\"hosts\":{hosts}}}");
    {
        let slot = handle
            .app
            .worlds
            .get(replica_sim::state::DEFAULT_WORLD)
            .map_err(anyhow::Error::msg)?;
        let s = lock(&slot);
        tracing::info!(
            hosts = s.world.hosts.len(),
            seed = args.seed,
            "simulator ready"
        );
    }
    wait_for_signal().await;
    tracing::info!("stopping");
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
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

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Diagram { format } => {
            let f = Format::parse(&format).unwrap_or(Format::Mermaid);
            print!("{}", diagram::render(f, &[]));
            Ok(())
        }
        Command::Serve(args) => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(serve(args)),
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
