//! The simulator's state: isolated worlds, each with its own model, clock, journal, coverage
//! and enumeration contexts. Locks are plain `std::sync::Mutex`es held only for the length of
//! one request's model work, never across an `.await`.

use crate::wsman::Epr;
use crate::wsman::writer::Instance;
use replica_core::World;
use replica_core::coverage::Coverage;
use replica_core::rng::SimRng;
use replica_core::time::Millis;
use replica_core::topology::TopologySpec;
use replica_core::world::PaceMode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How the world's time moves (DESIGN.md "Time").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum ClockMode {
    /// Wall-clock time times `speed`.
    Realtime { speed: f64 },
    /// Only `POST clock {"advance_ms": N}` moves time.
    Manual,
    /// Time runs as in realtime, but a job ends after it was read `n` times.
    Polls { n: u32 },
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

    pub fn pace(self) -> PaceMode {
        match self {
            ClockMode::Polls { n } => PaceMode::Polls(n),
            _ => PaceMode::Time,
        }
    }
}

/// Virtual time: `base_virtual` at `base_real`, moving at the mode's speed.
#[derive(Debug, Clone)]
pub struct Clock {
    pub mode: ClockMode,
    base_real: Instant,
    base_virtual: Millis,
}

pub fn wall_clock_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

impl Clock {
    pub fn new(mode: ClockMode, start: Millis) -> Clock {
        Clock {
            mode,
            base_real: Instant::now(),
            base_virtual: start,
        }
    }

    pub fn now(&self) -> Millis {
        match self.mode {
            ClockMode::Manual => self.base_virtual,
            ClockMode::Realtime { speed } => {
                self.base_virtual
                    + (self.base_real.elapsed().as_secs_f64() * 1000.0 * speed) as Millis
            }
            ClockMode::Polls { .. } => {
                self.base_virtual + self.base_real.elapsed().as_millis() as Millis
            }
        }
    }

    /// Changes mode without a jump in virtual time.
    pub fn set_mode(&mut self, mode: ClockMode) {
        let now = self.now();
        *self = Clock::new(mode, now);
    }

    pub fn advance(&mut self, ms: Millis) {
        let now = self.now();
        *self = Clock::new(self.mode, now.saturating_add(ms));
    }
}

/// One WS-Management call as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u64,
    /// Virtual time of the call.
    pub at: Millis,
    pub host: String,
    /// Identify, Get, Enumerate, Pull, Release, Invoke, or Rejected for requests that never
    /// parsed.
    pub operation: String,
    pub class: Option<String>,
    pub method: Option<String>,
    pub vm: Option<String>,
    /// ReturnValue of an Invoke.
    pub code: Option<u32>,
    pub job: Option<String>,
    pub rule: Option<String>,
    pub reason: Option<String>,
    /// The WS-Management fault subcode, e.g. `w:InvalidSelectors`.
    pub fault: Option<String>,
    pub http_status: u16,
    /// Fault-plan kinds that fired.
    pub faults: Vec<String>,
    pub micros: u64,
}

/// A stored enumeration: what is left to pull.
pub struct EnumContext {
    pub items: VecDeque<EnumItem>,
    pub created: Instant,
}

pub enum EnumItem {
    Instance(Instance),
    Epr(Epr),
    ObjectAndEpr(Instance, Epr),
}

/// Server-wide limits (the hardening defaults; docs/security.md "Limits and security
/// defaults"). `serve --limit NAME=VALUE` sets any of them by its field name.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// WinRM's MaxEnvelopeSizekb default: 500 KB = 512,000 octets.
    pub max_envelope: usize,
    /// HTTP bodies are refused past this many bytes before any parsing (answered with the
    /// same `w:EncodingLimit` fault as `max_envelope`).
    pub max_body_bytes: usize,
    /// Request line plus headers; past it the connection gets 431 and is closed.
    pub max_header_bytes: usize,
    /// A connection must deliver a request's whole header within this time, and an idle
    /// keep-alive connection is closed after it (HTTP/1.1 `header_read_timeout`).
    pub header_read_timeout_ms: u64,
    /// A request body must arrive within this time of its header; a client that stalls
    /// mid-body gets 408 and is disconnected.
    pub body_read_timeout_ms: u64,
    /// Open connections per listener (each simulated host has its own); over it a new
    /// connection is accepted and closed at once, unanswered.
    pub max_connections: usize,
    pub max_enum_contexts: usize,
    pub enum_context_ttl_ms: u64,
    pub max_journal: usize,
    pub max_worlds: usize,
    /// MaxBatchItems.
    pub max_batch_items: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_envelope: 512_000,
            max_body_bytes: 4 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 60_000,
            max_connections: 4096,
            max_enum_contexts: 1024,
            enum_context_ttl_ms: 120_000,
            max_journal: 100_000,
            max_worlds: 256,
            max_batch_items: 32_000,
        }
    }
}

impl Limits {
    /// The names `set` knows, in declaration order, with their current values.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            ("max_envelope", self.max_envelope.to_string()),
            ("max_body_bytes", self.max_body_bytes.to_string()),
            ("max_header_bytes", self.max_header_bytes.to_string()),
            (
                "header_read_timeout_ms",
                self.header_read_timeout_ms.to_string(),
            ),
            (
                "body_read_timeout_ms",
                self.body_read_timeout_ms.to_string(),
            ),
            ("max_connections", self.max_connections.to_string()),
            ("max_enum_contexts", self.max_enum_contexts.to_string()),
            ("enum_context_ttl_ms", self.enum_context_ttl_ms.to_string()),
            ("max_journal", self.max_journal.to_string()),
            ("max_worlds", self.max_worlds.to_string()),
            ("max_batch_items", self.max_batch_items.to_string()),
        ]
    }

    /// Sets one limit from `NAME=VALUE` (the `serve --limit` form). Values are positive
    /// integers; `max_header_bytes` is at least 8192 (the HTTP layer's floor), times are at
    /// most a week and counts and sizes at most 2^30.
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (name, value) = assignment
            .split_once('=')
            .map(|(n, v)| (n.trim(), v.trim()))
            .ok_or_else(|| format!("limit `{assignment}` must be NAME=VALUE"))?;
        let number: u64 = value
            .replace('_', "")
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("limit {name}: `{value}` is not a positive integer"))?;
        let most = if name.ends_with("_ms") {
            MAX_TIMEOUT_MS
        } else {
            1 << 30
        };
        if number > most {
            return Err(format!("limit {name}: {number} is over {most}"));
        }
        let size = || usize::try_from(number).map_err(|_| format!("limit {name}: too large"));
        match name {
            "max_envelope" => self.max_envelope = size()?,
            "max_body_bytes" => self.max_body_bytes = size()?,
            "max_header_bytes" if number < 8192 => {
                return Err(format!("limit max_header_bytes: {number} is under 8192"));
            }
            "max_header_bytes" => self.max_header_bytes = size()?,
            "header_read_timeout_ms" => self.header_read_timeout_ms = number,
            "body_read_timeout_ms" => self.body_read_timeout_ms = number,
            "max_connections" => self.max_connections = size()?,
            "max_enum_contexts" => self.max_enum_contexts = size()?,
            "enum_context_ttl_ms" => self.enum_context_ttl_ms = number,
            "max_journal" => self.max_journal = size()?,
            "max_worlds" => self.max_worlds = size()?,
            "max_batch_items" => {
                self.max_batch_items =
                    u32::try_from(number).map_err(|_| format!("limit {name}: too large"))?;
            }
            _ => {
                let known: Vec<&str> = self.entries().iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown limit `{name}`; known: {}",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// The longest timeout a limit may set (a week): longer ones would overflow clocks.
pub const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;

/// One isolated world.
pub struct WorldSlot {
    pub name: String,
    pub world: World,
    pub spec: TopologySpec,
    pub seed: u64,
    pub clock: Clock,
    pub journal: VecDeque<JournalEntry>,
    pub next_seq: u64,
    pub coverage: Coverage,
    pub enums: HashMap<String, EnumContext>,
    /// Response MessageIDs and enumeration contexts: its own stream, so transport ids never
    /// shift the model's ids.
    pub ids: SimRng,
    /// Counts changes the control API makes outside the model (faults cleared, clock set,
    /// reset), so persistence can tell that something happened even when
    /// `world.generation` did not move.
    pub changes: u64,
}

impl WorldSlot {
    pub fn new(
        name: &str,
        spec: TopologySpec,
        seed: u64,
        clock: ClockMode,
    ) -> Result<WorldSlot, String> {
        let start = wall_clock_ms();
        let mut world = spec.build(seed, start).map_err(|e| e.to_string())?;
        world.pace = clock.pace();
        Ok(WorldSlot {
            name: name.to_string(),
            world,
            spec,
            seed,
            clock: Clock::new(clock, start),
            journal: VecDeque::new(),
            next_seq: 1,
            coverage: Coverage::default(),
            enums: HashMap::new(),
            ids: SimRng::seeded(seed ^ 0x1D5),
            changes: 0,
        })
    }

    /// Puts a saved world back (persistence): virtual time resumes at `clock_now`, the
    /// journal keeps its cursor. Enumeration contexts are not saved.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        name: &str,
        mut world: World,
        spec: TopologySpec,
        seed: u64,
        clock: ClockMode,
        clock_now: Millis,
        journal: Vec<JournalEntry>,
        next_seq: u64,
        coverage: Coverage,
        ids: SimRng,
    ) -> WorldSlot {
        world.pace = clock.pace();
        WorldSlot {
            name: name.to_string(),
            clock: Clock::new(clock, clock_now.max(world.now)),
            world,
            spec,
            seed,
            journal: journal.into(),
            next_seq,
            coverage,
            enums: HashMap::new(),
            ids,
            changes: 0,
        }
    }

    /// A fingerprint of everything persistence saves, cheap to compare: the model's
    /// generation, the journal cursor (every call, including reads that move `polls:N` jobs
    /// and fault counters) and the control API's own changes.
    pub fn fingerprint(&self) -> (u64, u64, u64) {
        (self.world.generation, self.next_seq, self.changes)
    }

    /// Brings the model to the clock's present.
    pub fn tick(&mut self) -> Millis {
        let now = self.clock.now().max(self.world.now);
        self.world.advance(now);
        now
    }

    /// Replaces the world with a fresh one from `spec`; journal and coverage start over, but
    /// the journal's sequence numbers go on, so a client's `since` cursor stays meaningful.
    pub fn reset(&mut self, spec: TopologySpec) -> Result<(), String> {
        let mode = self.clock.mode;
        let mut fresh = WorldSlot::new(&self.name, spec, self.seed, mode)?;
        fresh.next_seq = self.next_seq;
        fresh.changes = self.changes + 1;
        *self = fresh;
        Ok(())
    }

    pub fn record(&mut self, mut e: JournalEntry, max: usize) {
        e.seq = self.next_seq;
        self.next_seq += 1;
        self.journal.push_back(e);
        while self.journal.len() > max {
            self.journal.pop_front();
        }
    }

    pub fn fresh_guid(&mut self) -> String {
        self.ids.guid()
    }
}

/// Where requests go: the set of worlds, created on first use.
pub struct Worlds {
    pub default_spec: TopologySpec,
    pub seed: u64,
    pub clock: ClockMode,
    pub limits: Limits,
    slots: Mutex<BTreeMap<String, Arc<Mutex<WorldSlot>>>>,
}

pub const DEFAULT_WORLD: &str = "default";

/// World names travel in paths and headers: 1-64 characters of A-Z, a-z, 0-9, `-` and `_`.
pub fn check_world_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "world name `{name}` must be 1-64 characters of A-Z, a-z, 0-9, - and _"
        ));
    }
    Ok(())
}

/// Locks a mutex, recovering the data if a previous holder panicked: one failed request must
/// not take the simulator down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Worlds {
    pub fn new(
        default_spec: TopologySpec,
        seed: u64,
        clock: ClockMode,
        limits: Limits,
    ) -> Result<Worlds, String> {
        let w = Worlds {
            default_spec,
            seed,
            clock,
            limits,
            slots: Mutex::new(BTreeMap::new()),
        };
        w.get(DEFAULT_WORLD)?;
        Ok(w)
    }

    /// A world by name; a new name creates a world from the default topology.
    pub fn get(&self, name: &str) -> Result<Arc<Mutex<WorldSlot>>, String> {
        check_world_name(name)?;
        let mut slots = lock(&self.slots);
        if let Some(s) = slots.get(name) {
            return Ok(s.clone());
        }
        if slots.len() >= self.limits.max_worlds {
            return Err(format!(
                "too many worlds (limit {})",
                self.limits.max_worlds
            ));
        }
        let slot = Arc::new(Mutex::new(WorldSlot::new(
            name,
            self.default_spec.clone(),
            self.seed,
            self.clock,
        )?));
        slots.insert(name.to_string(), slot.clone());
        Ok(slot)
    }

    pub fn names(&self) -> Vec<String> {
        lock(&self.slots).keys().cloned().collect()
    }

    /// Every world, in name order (persistence walks them one lock at a time).
    pub fn all(&self) -> Vec<(String, Arc<Mutex<WorldSlot>>)> {
        lock(&self.slots)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Puts a loaded world in place (persistence).
    pub fn install(&self, slot: WorldSlot) {
        lock(&self.slots).insert(slot.name.clone(), Arc::new(Mutex::new(slot)));
    }

    pub fn remove(&self, name: &str) -> bool {
        name != DEFAULT_WORLD && lock(&self.slots).remove(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_set_by_name() {
        let mut l = Limits::default();
        l.set("max_connections=256").expect("set");
        l.set(" header_read_timeout_ms = 5_000 ").expect("set");
        assert_eq!(l.max_connections, 256);
        assert_eq!(l.header_read_timeout_ms, 5000);
        for (name, value) in Limits::default().entries() {
            let mut fresh = Limits::default();
            fresh.set(&format!("{name}={value}")).expect(name);
            assert_eq!(fresh, Limits::default(), "{name}");
        }
        assert!(l.set("max_header_bytes=100").is_err());
        assert!(l.set("max_connections=0").is_err());
        assert!(l.set("max_connections=99999999999999999999").is_err());
        assert!(
            l.set("header_read_timeout_ms=18446744073709551615")
                .is_err()
        );
        assert!(l.set("max_connections").is_err());
        let e = l.set("max_sockets=3").expect_err("unknown");
        assert!(e.contains("max_connections"), "{e}");
    }
}
