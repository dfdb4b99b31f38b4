//! Topologies: the starting world as data (`fixtures/topologies/*.toml`). Parsing the text is
//! the edge's job; this module validates the structure and builds a [`World`] from it, with
//! errors that name the field path, what is wrong and what was expected.

use crate::enums::*;
use crate::profile::{PROFILE_NAMES, Profile};
use crate::time::Millis;
use crate::world::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    /// A profile name (see `profile::PROFILE_NAMES`) or a table `{ name = "...", field = ... }`.
    #[serde(default)]
    pub profile: Option<ProfileSpec>,
    pub hosts: Vec<HostSpec>,
    #[serde(default)]
    pub vms: Vec<VmSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProfileSpec {
    Named(String),
    Custom(Profile),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub name: String,
    #[serde(default)]
    pub authorization: Vec<AuthorizationEntry>,
    #[serde(default)]
    pub service: Option<ServiceSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerSpec {
    On,
    #[default]
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    pub name: String,
    /// The VM GUID; generated from the seed when left out.
    #[serde(default)]
    pub id: Option<String>,
    pub host: String,
    #[serde(default)]
    pub power: PowerSpec,
    #[serde(default)]
    pub replication: Option<ReplicationSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSpec {
    pub replica_host: String,
    /// The primary side's state.
    #[serde(default = "replicating")]
    pub state: ReplicationState,
    /// The replica side's state; by default the one that goes with `state`.
    #[serde(default)]
    pub replica_state: Option<ReplicationState>,
    #[serde(default = "ok")]
    pub health: ReplicationHealth,
    /// Recovery points on the replica, oldest first, one per `replication_interval`.
    #[serde(default = "two")]
    pub recovery_points: u32,
    /// Minutes since the last replication (None: never replicated).
    #[serde(default = "one")]
    pub last_replication_minutes_ago: Option<u32>,
    #[serde(default)]
    pub settings: SettingsPatch,
    /// Extended replication from the replica to this host.
    #[serde(default)]
    pub extended_host: Option<String>,
}

fn replicating() -> ReplicationState {
    ReplicationState::Replicating
}
fn ok() -> ReplicationHealth {
    ReplicationHealth::Ok
}
fn two() -> u32 {
    2
}
fn one() -> Option<u32> {
    Some(1)
}

/// A topology that does not make sense, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}; expected {expected}")]
pub struct TopologyError {
    /// The field path, e.g. `vms[2].replication.replica_host`.
    pub path: String,
    pub problem: String,
    pub expected: String,
}

fn err(
    path: impl Into<String>,
    problem: impl Into<String>,
    expected: impl Into<String>,
) -> TopologyError {
    TopologyError {
        path: path.into(),
        problem: problem.into(),
        expected: expected.into(),
    }
}

fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// The replica-side state that goes with a primary-side state (INFERRED from the PS mapping,
/// docs/facts.md#replication-states: a replica waiting for its initial copy shows 2).
fn replica_state_for(primary: ReplicationState) -> ReplicationState {
    match primary {
        ReplicationState::ReadyForReplication => {
            ReplicationState::WaitingToCompleteInitialReplication
        }
        s => s,
    }
}

impl TopologySpec {
    pub fn profile(&self) -> Result<Profile, TopologyError> {
        match &self.profile {
            None => Ok(Profile::default()),
            Some(ProfileSpec::Named(n)) => Profile::named(n).ok_or_else(|| {
                err(
                    "profile",
                    format!("unknown profile `{n}`"),
                    format!("one of {}", PROFILE_NAMES.join(", ")),
                )
            }),
            Some(ProfileSpec::Custom(p)) => Ok(p.clone()),
        }
    }

    /// Builds the world at time `now`, with every random choice drawn from `seed`.
    pub fn build(&self, seed: u64, now: Millis) -> Result<World, TopologyError> {
        let mut world = World::new(self.profile()?, seed, now);
        if self.hosts.is_empty() {
            return Err(err("hosts", "no host", "at least one [[hosts]] entry"));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            let name = h.name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(err(
                    format!("hosts[{i}].name"),
                    format!("`{}` is not a host name", h.name),
                    "a non-empty name without spaces",
                ));
            }
            if world.resolve_host(name).is_some() {
                return Err(err(
                    format!("hosts[{i}].name"),
                    format!("host `{name}` appears twice"),
                    "unique host names",
                ));
            }
            world.hosts.insert(
                name.to_string(),
                Host {
                    name: name.to_string(),
                    vms: BTreeMap::new(),
                    jobs: BTreeMap::new(),
                    service_settings: h.service.clone().unwrap_or_default(),
                    authorization: h.authorization.clone(),
                    service_running: true,
                    service_requested_state: 12,
                },
            );
        }
        let host_list = || {
            self.hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        // (host, VM name) pairs seen so far: a set, so a 10,000-VM topology builds in linear time.
        let mut names = std::collections::HashSet::new();
        for (i, v) in self.vms.iter().enumerate() {
            let at = |f: &str| format!("vms[{i}].{f}");
            let Some(host) = world.resolve_host(&v.host) else {
                return Err(err(
                    at("host"),
                    format!("unknown host `{}`", v.host),
                    format!("one of {}", host_list()),
                ));
            };
            if v.name.trim().is_empty() {
                return Err(err(at("name"), "empty VM name", "a display name"));
            }
            let id = match &v.id {
                Some(id) if is_guid(id) => id.to_ascii_uppercase(),
                Some(id) => {
                    return Err(err(
                        at("id"),
                        format!("`{id}` is not a GUID"),
                        "8-4-4-4-12 hex digits",
                    ));
                }
                None => world.rng.guid(),
            };
            if world.hosts.values().any(|h| h.vms.contains_key(&id)) {
                return Err(err(
                    at("id"),
                    format!("VM id {id} is used twice"),
                    "a unique GUID per VM",
                ));
            }
            if !names.insert((host.clone(), v.name.clone())) {
                return Err(err(
                    at("name"),
                    format!("`{}` appears twice on {host}", v.name),
                    "unique VM names per host",
                ));
            }
            let power = match v.power {
                PowerSpec::On => EnabledState::Enabled,
                PowerSpec::Off => EnabledState::Disabled,
            };
            let mut vm = Vm {
                id: id.clone(),
                name: v.name.clone(),
                power,
                mode: ReplicationMode::None,
                rels: [None, None],
                recovery_points: Vec::new(),
                test_replica: None,
                test_of: None,
                busy_with: None,
            };
            let Some(r) = &v.replication else {
                if let Some(h) = world.hosts.get_mut(&host) {
                    h.vms.insert(id, vm);
                }
                continue;
            };
            let Some(replica_host) = world.resolve_host(&r.replica_host) else {
                return Err(err(
                    at("replication.replica_host"),
                    format!("unknown host `{}`", r.replica_host),
                    format!("one of {}", host_list()),
                ));
            };
            if replica_host == host {
                return Err(err(
                    at("replication.replica_host"),
                    "a VM cannot replicate to its own host",
                    "another host",
                ));
            }
            if r.state == ReplicationState::Disabled {
                return Err(err(
                    at("replication.state"),
                    "Disabled means no relationship",
                    "leave out [vms.replication] instead",
                ));
            }
            crate::engine::validate_settings_public(&r.settings).map_err(|why| {
                err(
                    at("replication.settings"),
                    why,
                    "valid Msvm_ReplicationSettingData values",
                )
            })?;
            let mut settings = ReplicationSettings::default().patched(&r.settings);
            settings.primary_connection_point = host.clone();
            settings.recovery_connection_point = replica_host.clone();
            let interval = u64::from(settings.replication_interval) * 1000;
            let last = r
                .last_replication_minutes_ago
                .map(|m| now.saturating_sub(u64::from(m) * 60_000));
            let rel = |state, peer: &str| Relationship {
                state,
                health: r.health,
                peer_host: peer.to_string(),
                settings: settings.clone(),
                last_replication_time: last,
                last_replication_type: if last.is_some() {
                    ReplicationType::Regular
                } else {
                    ReplicationType::None
                },
                last_apply_time: last,
                failed_over_replication_type: ReplicationType::None,
                pre_failover_state: None,
                failover_point: None,
                replication_count: u64::from(r.recovery_points),
            };
            vm.mode = ReplicationMode::Primary;
            vm.rels[0] = Some(rel(r.state, &replica_host));
            let mut replica = Vm {
                power: EnabledState::Disabled,
                mode: ReplicationMode::Replica,
                rels: [
                    Some(rel(
                        r.replica_state
                            .unwrap_or_else(|| replica_state_for(r.state)),
                        &host,
                    )),
                    None,
                ],
                ..vm.clone()
            };
            let history = usize::from(settings.recovery_history.max(1));
            let points = (r.recovery_points as usize).min(history.max(1));
            for k in 0..points {
                let created = last
                    .unwrap_or(now)
                    .saturating_sub(interval * (points - 1 - k) as u64);
                let kind = if k % 4 == 3 {
                    RecoveryPointKind::ApplicationConsistent
                } else {
                    RecoveryPointKind::Standard
                };
                let id = format!("Microsoft:{}", world.rp_rng.guid());
                replica
                    .recovery_points
                    .push(RecoveryPoint::new(id, kind, created, &v.name));
            }
            if let Some(ext) = &r.extended_host {
                let Some(ext_host) = world.resolve_host(ext) else {
                    return Err(err(
                        at("replication.extended_host"),
                        format!("unknown host `{ext}`"),
                        format!("one of {}", host_list()),
                    ));
                };
                if ext_host == host || ext_host == replica_host {
                    return Err(err(
                        at("replication.extended_host"),
                        "the extended replica must be a third host",
                        "a host other than the primary and the replica",
                    ));
                }
                replica.rels[1] = Some(Relationship {
                    peer_host: ext_host.clone(),
                    ..rel(ReplicationState::Replicating, &ext_host)
                });
                let extended = Vm {
                    power: EnabledState::Disabled,
                    mode: ReplicationMode::ExtendedReplica,
                    rels: [
                        Some(rel(ReplicationState::Replicating, &replica_host)),
                        None,
                    ],
                    recovery_points: replica.recovery_points.clone(),
                    ..vm.clone()
                };
                if let Some(h) = world.hosts.get_mut(&ext_host) {
                    h.vms.insert(id.clone(), extended);
                }
            }
            if let Some(h) = world.hosts.get_mut(&replica_host) {
                h.vms.insert(id.clone(), replica);
            }
            if let Some(h) = world.hosts.get_mut(&host) {
                h.vms.insert(id, vm);
            }
        }
        // Work already due at `now` (a delta whose interval has passed) happens now, so every
        // user of the model starts from the same point as the simulator.
        world.advance(now);
        Ok(world)
    }
}
