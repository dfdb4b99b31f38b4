//! replica-sim: a fake Hyper-V host speaking Hyper-V Replica's WMI API over WS-Management,
//! plus a JSON control API for tests. Replication rules live in `replica-core`; this crate
//! does the IO: HTTP, XML, clocks, persistence.

pub mod assoc;
pub mod classes;
pub mod control;
pub mod demo;
pub mod dispatch;
#[cfg(test)]
mod fuzz;
pub mod guard;
pub mod persist;
pub mod schema;
pub mod server;
pub mod soak;
pub mod state;
pub mod tls;
pub mod topology_file;
pub mod ui;

/// The protocol layer, now its own crate; re-exported so `crate::wsman::…` paths keep working.
pub use replica_wsman as wsman;

pub use server::{Credential, Sim, SimConfig, SimHandle};
