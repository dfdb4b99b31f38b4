//! `--sim`: a replica-sim started in this process, on free ports, reached over HTTP like any
//! other target (the runner never reaches into its internals).

use anyhow::Context as _;
use replica_sim::ClockMode;
use replica_sim::{Credential, Sim, SimConfig, SimHandle};

use replica_client::wsman::Credentials;

/// Starts a simulator with the default topology, `seed`, the runner's credentials, and a
/// manual clock (the runner moves time itself).
pub async fn start(seed: u64, creds: &Credentials) -> anyhow::Result<SimHandle> {
    let config = SimConfig {
        seed,
        credentials: vec![Credential {
            user: creds.user.clone(),
            pass: creds.pass.clone(),
            read_only: false,
        }],
        clock: ClockMode::Manual,
        ..SimConfig::default()
    };
    Sim::start_with(config)
        .await
        .context("starting the in-process simulator")
}
