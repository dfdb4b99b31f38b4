//! The WS-Management (WinRM) client.
//!
//! It speaks SOAP 1.2 over HTTP(S) (Basic or Negotiate) to the simulator, to real Hyper-V hosts and
//! (later) to a replay of recorded exchanges. It knows WS-Management and WMI's CIM binding, and
//! nothing about Hyper-V replication: classes are names, properties are values, jobs are
//! `CIM_ConcreteJob` states.
//!
//! - [`WsmanClient`]: `identify`, `get`, `enumerate` (+ `pull`, `release`), `invoke`, raw `send`,
//!   `wait_for_job`.
//! - Responses are read by namespace URI and local name ([`parse`]); faults become
//!   [`ResponseError::Fault`] (inside [`WsmanError::Response`]), 401 becomes
//!   [`ResponseError::Unauthorized`].
//! - [`Recorder`] sees every exchange ([`Exchange`] is JSON-serialisable).

pub mod client;
/// Request envelopes come from the protocol crate (the name the runner has always used).
pub use replica_wsman::request as envelope;
pub mod error;
pub mod job;
mod msgid;
pub use replica_wsman::ns;
/// Response parsing lives in the protocol crate.
pub use replica_wsman::response as parse;
pub mod recorder;
/// Selectors, EPRs, instances and method values live in the protocol crate.
pub use replica_wsman::values as types;

/// The one XML text escaper of the crate (requests, embedded instances, JUnit reports).
pub use replica_wsman::writer::escape;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testserver;

pub use client::{AuthMethod, ClientOptions, Credentials, RawResponse, WsmanClient};
pub use error::{QName, ResponseError, Result, SoapFault, WsmanError};
pub use job::{DEFAULT_JOB_POLL, JobPhase, JobWait, PollStyle, job_phase};
pub use ns::{class_uri, class_uri_in, ns_wildcard_uri};
pub use recorder::{Exchange, MemoryRecorder, OpKind, Recorder};
pub use types::{
    EnumItem, EnumOpts, EnumPage, Epr, EprMode, IdentifyInfo, Instance, InvokeOutput, Param,
    PropValue, SelectorSet,
};
