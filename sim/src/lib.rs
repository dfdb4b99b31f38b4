//! replica-sim: a fake Hyper-V host speaking Hyper-V Replica's WMI API over WS-Management,
//! plus a JSON control API for tests. Replication rules live in `replica-core`; this crate
//! does the IO: HTTP, XML, clocks, persistence.
//!
//! The library's public face is small: [`Sim`] starts simulators, [`SimHandle`] is one running
//! (its URLs and typed control calls), [`api`] the control API's types (replica-client's, shared
//! with its HTTP client `replica_client::control::Control`) and [`cli`] the `replica-sim`
//! command line. Everything else is private to the crate.
//!
//! The README follows; its Rust example is compiled and run as this crate's doctest.
#![doc = include_str!("../../README.md")]
#![deny(missing_docs)]

pub mod api;
pub mod cli;

mod app;
mod assoc;
mod classes;
mod control;
mod demo;
mod dispatch;
mod framing;
#[cfg(test)]
mod fuzz;
mod guard;
mod instances;
mod persist;
mod save_status;
mod schema;
mod server;
mod soak;
mod state;
mod tls;
mod topology_file;
mod ui;

// The protocol layer is its own crate (shared with replica-client); `crate::wsman::…`
// paths name it.
use replica_wsman as wsman;

// The unit tests in `tests/` share `tests/it/support.rs`, which names this crate `replica_sim`.
#[cfg(test)]
extern crate self as replica_sim;
#[cfg(test)]
mod tests;

pub use replica_core::faults::{FaultKind, FaultSpec};
pub use replica_core::topology::TopologySpec;
pub use server::{
    AuthSchemes, Credential, DEFAULT_TOPOLOGY, Sim, SimConfig, SimHandle, default_topology,
};
pub use state::{ClockMode, Limits};
pub use tls::{Tls, TlsSetup};
