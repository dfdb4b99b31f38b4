//! replica-conformance: how the simulator's fidelity is measured and how a lab's real
//! behaviour is captured. It speaks to every target over the wire (its own WS-Management
//! client, `replica_client::wsman`); replica-core is its oracle ([`oracle`]).
//!
//! - [`scenarios`] + [`runner`]: `run`, the scenario files played over the wire, checked by
//!   core's own expectation code, with the model in lockstep.
//! - [`explore`]: random sequences (proptest), model-predicted answers, shrinking.
//! - [`lab`]: real labs: scenario roles bound to lab VMs, arranged and restored.
//! - [`target`]: the simulator (in-process or over HTTP), real hosts, recordings.
//! - [`record`]: `--record DIR` and `--target replay:DIR`.
//! - [`report`]: table, JUnit, JSON, progress.
//! - [`cli`]: the command line.

pub mod cimxml;
pub mod cli;
pub mod explore;
#[cfg(feature = "sim")]
pub mod insim;
pub mod lab;
pub mod observe;
pub mod oracle;
pub mod record;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod target;
