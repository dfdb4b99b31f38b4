//! The answers of the simulator's JSON control API (`/_replica/v1/`, documented in
//! `sim/openapi.json`) as Rust types, and what its calls take.
//!
//! The server writes its answers from these same types and [`super::Control`] reads them back,
//! so a test that calls `replica_sim::SimHandle::state` in-process and a tool that reads
//! `GET /_replica/v1/state` over HTTP see one schema. They live here, not in the simulator, so
//! that a client needs no server to name them.

use replica_core::ReplicationState;
use replica_core::enums::{JobState, JobType};
use replica_core::faults::FaultRule;
use replica_core::profile::Profile;
use replica_core::topology::TopologySpec;
use replica_core::world::{AuthorizationEntry, ReplicationSettings, ServiceSettings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the world's time moves (docs/facts.md#time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum ClockMode {
    /// Wall-clock time times `speed`.
    Realtime {
        /// Virtual milliseconds per wall-clock millisecond.
        speed: f64,
    },
    /// Only `POST clock {"advance_ms": N}` moves time.
    Manual,
    /// Time runs as in realtime, but a job ends after it was read `n` times.
    Polls {
        /// Reads of a job before it ends.
        n: u32,
    },
}

impl ClockMode {
    /// Parses the CLI form: `realtime`, `realtime:10`, `manual`, `polls:3`.
    pub fn parse(s: &str) -> Result<ClockMode, String> {
        let (mode, arg) = s.split_once(':').map_or((s, None), |(m, a)| (m, Some(a)));
        match (mode.trim().to_ascii_lowercase().as_str(), arg) {
            ("realtime", None) => Ok(ClockMode::Realtime { speed: 1.0 }),
            ("realtime", Some(a)) => match a.trim().parse::<f64>() {
                Ok(speed) if speed > 0.0 && speed.is_finite() && speed <= 1e6 => {
                    Ok(ClockMode::Realtime { speed })
                }
                _ => Err(format!(
                    "realtime speed `{a}` must be a number in (0, 1000000]"
                )),
            },
            ("manual", None) => Ok(ClockMode::Manual),
            ("polls", Some(a)) => match a.trim().parse::<u32>() {
                Ok(n) if (1..=10_000).contains(&n) => Ok(ClockMode::Polls { n }),
                _ => Err(format!("polls count `{a}` must be an integer in 1..=10000")),
            },
            _ => Err(format!(
                "unknown clock mode `{s}`; expected realtime[:SPEED], manual or polls:N"
            )),
        }
    }
}

/// Why a control call was refused: the HTTP status the endpoint answers and its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub struct ControlError {
    /// The HTTP status of the same call over the control API (400, 404, ...).
    pub status: u16,
    /// What was wrong, in words (the `error` field of the JSON answer).
    pub message: String,
    /// For a topology refused: the line of the TOML text, from 1.
    pub line: Option<usize>,
    /// For a topology refused: the column of the TOML text, from 1.
    pub column: Option<usize>,
    /// For a topology refused: the field at fault, e.g. `vms[2].primary`.
    pub field: Option<String>,
}

impl ControlError {
    /// A refusal with its status and message, no position.
    pub fn new(status: u16, message: impl Into<String>) -> ControlError {
        ControlError {
            status,
            message: message.into(),
            line: None,
            column: None,
            field: None,
        }
    }
}

/// What `POST reset` takes: a fresh world, by default the server's topology, seed and clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    /// A topology (the same shape as the TOML files); default: the one the server started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<TopologySpec>,
    /// A topology as TOML text (HTTP only; give this or `topology`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_toml: Option<String>,
    /// A named behaviour profile for the new world.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The new world's seed; default: the world's current seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The new world's clock in the CLI form (`manual`, `realtime:10`, `polls:3`); default: the
    /// server's `--clock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
}

/// The answer to a reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetDone {
    /// Always true.
    pub reset: bool,
    /// The world that was reset.
    pub world: String,
    /// Its seed now.
    pub seed: u64,
    /// Its clock now.
    pub clock: ClockMode,
}

/// The answer to a fault rule added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultAdded {
    /// The rule's id (for `DELETE faults/{id}`).
    pub id: u64,
    /// The rule as the world keeps it.
    pub rule: Option<FaultRule>,
}

/// The world's clock (`GET clock`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockState {
    /// How the clock moves.
    pub clock: ClockMode,
    /// Virtual milliseconds since the Unix epoch.
    pub now: u64,
    /// `now` as RFC 3339.
    pub now_rfc3339: String,
}

/// One WS-Management call as `GET journal` shows it: the call as the simulator keeps it, and
/// its time as RFC 3339 text (fields read through to [`JournalCall`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The call.
    #[serde(flatten)]
    pub call: JournalCall,
    /// `at` as RFC 3339.
    pub at_rfc3339: String,
}

impl std::ops::Deref for JournalEntry {
    type Target = JournalCall;

    fn deref(&self) -> &JournalCall {
        &self.call
    }
}

/// One WS-Management call as the simulator's journal keeps it (and its state file saves it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalCall {
    /// Its sequence number in the world, from 1.
    pub seq: u64,
    /// Virtual time of the call, milliseconds since the Unix epoch.
    pub at: u64,
    /// The simulated host called.
    pub host: String,
    /// Identify, Get, Enumerate, Pull, Release, Invoke, or Rejected for requests that never
    /// parsed.
    pub operation: String,
    /// The WMI class of the resource URI.
    pub class: Option<String>,
    /// The WMI method of an Invoke.
    pub method: Option<String>,
    /// The VM the call was about.
    pub vm: Option<String>,
    /// ReturnValue of an Invoke.
    pub code: Option<u32>,
    /// The job an Invoke started.
    pub job: Option<String>,
    /// The transition-table rule that answered.
    pub rule: Option<String>,
    /// Why a call was refused, in words.
    pub reason: Option<String>,
    /// The WS-Management fault subcode, e.g. `w:InvalidSelectors`.
    pub fault: Option<String>,
    /// The HTTP status answered.
    pub http_status: u16,
    /// Fault-plan kinds that fired.
    pub faults: Vec<String>,
    /// Wall-clock microseconds the call took.
    pub micros: u64,
}

/// One page of the journal (`GET journal?since=N&limit=M`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalPage {
    /// The entries after `since`, oldest first.
    pub entries: Vec<JournalEntry>,
    /// The `since` of the next page.
    pub next: u64,
    /// The newest sequence number in the world.
    pub latest: u64,
    /// Whether entries newer than this page exist.
    pub more: bool,
}

/// An enumeration value with its number and names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Named {
    /// The number WMI uses.
    pub value: u16,
    /// The identifier, e.g. `WaitingForFailback`.
    pub name: String,
    /// The documented label, e.g. `Failback in progress`.
    pub label: String,
    /// Another name users know the value by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl Named {
    /// A replication state.
    pub fn state(s: ReplicationState) -> Named {
        Named {
            value: s.number(),
            name: s.ident().into(),
            label: s.label().into(),
            alias: s.alias().map(Into::into),
        }
    }

    /// A job type.
    pub fn job_type(t: JobType) -> Named {
        Named {
            value: t.number(),
            name: t.ident().into(),
            label: t.label().into(),
            alias: None,
        }
    }

    /// A job state.
    pub fn job_state(s: JobState) -> Named {
        Named {
            value: s.number(),
            name: s.ident().into(),
            label: s.label().into(),
            alias: None,
        }
    }
}

/// A whole world (`GET state`): the stable schema documented in `sim/openapi.json` (`State`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldState {
    /// The schema version, 1.
    pub schema: u32,
    /// The world's name.
    pub world: String,
    /// Its seed.
    pub seed: u64,
    /// Virtual milliseconds since the Unix epoch.
    pub now: u64,
    /// `now` as RFC 3339.
    pub now_rfc3339: String,
    /// Bumped by every model change.
    pub generation: u64,
    /// How the clock moves.
    pub clock: ClockMode,
    /// The behaviour profile in force.
    pub profile: Profile,
    /// Every host by name.
    pub hosts: BTreeMap<String, HostState>,
    /// The fault plan.
    pub faults: Vec<FaultRule>,
    /// The next journal sequence number.
    pub journal_next: u64,
}

/// One simulated host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    /// Its name.
    pub name: String,
    /// Whether the replication service runs.
    pub service_running: bool,
    /// Its VMs.
    pub vms: Vec<VmState>,
    /// Its jobs.
    pub jobs: Vec<JobView>,
    /// Its replication authorization entries.
    pub authorization: Vec<AuthorizationEntry>,
    /// Its replication service settings.
    pub service_settings: ServiceSettings,
}

/// One VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmState {
    /// Its GUID (`Msvm_ComputerSystem.Name`).
    pub id: String,
    /// Its name (`ElementName`).
    pub name: String,
    /// Its power state identifier.
    pub power: String,
    /// Its replication mode identifier.
    pub mode: String,
    /// Its replication state.
    pub state: Named,
    /// Its replication health identifier.
    pub health: String,
    /// Its relationships (primary first, then extended).
    pub relationships: Vec<RelationshipState>,
    /// Its recovery points.
    pub recovery_points: Vec<RecoveryPointState>,
    /// The test VM made from it.
    pub test_replica: Option<String>,
    /// The replica VM this test VM was made from.
    pub test_of: Option<String>,
    /// The job changing it.
    pub busy_with: Option<String>,
}

/// One replication relationship of a VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationshipState {
    /// 0 for the primary relationship, 1 for the extended one.
    pub index: u8,
    /// Its `Msvm_ReplicationRelationship.InstanceID`.
    pub instance_id: String,
    /// Its replication state.
    pub state: Named,
    /// Its health identifier.
    pub health: String,
    /// The host at the other end.
    pub peer_host: String,
    /// The last replication, RFC 3339.
    pub last_replication_time: Option<String>,
    /// `FailedOverReplicationType` identifier.
    pub failed_over_replication_type: String,
    /// Its settings.
    pub settings: ReplicationSettings,
}

/// One recovery point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPointState {
    /// Its VSSD InstanceID.
    pub id: String,
    /// Its kind.
    pub kind: replica_core::world::RecoveryPointKind,
    /// When it was taken, RFC 3339.
    pub created: String,
    /// Its name.
    pub name: String,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// Its InstanceID.
    pub id: String,
    /// The host running it.
    pub host: String,
    /// Its JobType.
    #[serde(rename = "type")]
    pub job_type: Named,
    /// Its JobState.
    pub state: Named,
    /// PercentComplete.
    pub percent: u8,
    /// When it was submitted, RFC 3339.
    pub submitted: String,
    /// When it ended, RFC 3339.
    pub ended: Option<String>,
    /// ErrorCode.
    pub error_code: u16,
    /// ErrorDescription.
    pub error_description: String,
    /// The table rule that will complete it.
    pub rule: Option<String>,
    /// The VM it changes.
    pub vm: Option<String>,
}

/// What the simulator's client-fed stores (worlds, journals, enumeration contexts) hold
/// against the process-wide `max_memory_bytes` budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryUse {
    /// Bytes charged now (estimated).
    pub used_bytes: usize,
    /// The budget.
    pub max_bytes: usize,
}
