//! The simulator's state: isolated worlds, each with its own model, clock, journal, coverage
//! and enumeration contexts. Locks are plain `std::sync::Mutex`es held only for the length of
//! one request's model work, never across an `.await`.

use crate::wsman::Epr;
use crate::wsman::writer::{Instance, Value};
use replica_core::World;
use replica_core::coverage::Coverage;
use replica_core::rng::SimRng;
use replica_core::text::clip;
use replica_core::time::Millis;
use replica_core::topology::TopologySpec;
use replica_core::world::PaceMode;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How the world's time moves; the control API's type (shared with the client crate).
pub use replica_client::control::ClockMode;

/// How a clock mode paces jobs (an extension of the shared [`ClockMode`], which knows nothing of
/// the server's pacing).
pub(crate) trait Pace {
    /// The pacing of jobs under this mode.
    fn pace(self) -> PaceMode;
}

impl Pace for ClockMode {
    fn pace(self) -> PaceMode {
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

/// One WS-Management call as the journal keeps it: the control API's own type (replica-client),
/// so what is kept and what `GET journal` shows are declared once.
pub use replica_client::control::JournalCall as JournalEntry;

/// A stored enumeration: what is left to pull.
pub struct EnumContext {
    pub items: VecDeque<EnumItem>,
    pub created: Instant,
    /// What it was charged to the memory budget when stored.
    bytes: usize,
}

impl EnumContext {
    pub fn new(items: VecDeque<EnumItem>) -> EnumContext {
        let bytes = items.iter().map(EnumItem::approx_bytes).sum::<usize>() + 128;
        EnumContext {
            items,
            created: Instant::now(),
            bytes,
        }
    }
}

impl EnumItem {
    /// Heap bytes this item holds, roughly (strings by length, plus each value's slot).
    pub fn approx_bytes(&self) -> usize {
        fn value(v: &Value) -> usize {
            32 + match v {
                Value::Text(t) => t.len(),
                Value::Ref(e) => epr(e),
                Value::Array(a) => a.iter().map(value).sum(),
                Value::Null
                | Value::Int(_)
                | Value::Bool(_)
                | Value::Datetime(_)
                | Value::Interval(_) => 0,
            }
        }
        fn epr(e: &Epr) -> usize {
            96 + e.address.len()
                + e.resource_uri.len()
                + e.selectors
                    .iter()
                    .map(|(k, v)| 48 + k.len() + v.len())
                    .sum::<usize>()
                // An association's keys hold the referenced instances' EPRs as well.
                + e.refs
                    .iter()
                    .map(|(k, r)| 24 + k.len() + epr(r))
                    .sum::<usize>()
        }
        fn instance(i: &Instance) -> usize {
            72 + i.class.len()
                + i.resource_uri.len()
                + i.props
                    .iter()
                    .map(|(k, v)| 24 + k.len() + value(v))
                    .sum::<usize>()
        }
        match self {
            EnumItem::Instance(i) => instance(i),
            EnumItem::Epr(e) => epr(e),
            EnumItem::ObjectAndEpr(i, e) => instance(i) + epr(e),
        }
    }
}

/// The process-wide memory budget: every store a client can grow (journals, enumeration
/// contexts, worlds) charges its bytes here, so the worst case is one number however the
/// clients spread their requests over worlds (README "Limits").
#[derive(Debug)]
pub struct Budget {
    max: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl Budget {
    pub fn new(max: usize) -> Budget {
        Budget {
            max,
            used: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Charges `n` bytes if they fit; `false` (and nothing charged) if they do not.
    pub fn try_charge(&self, n: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.used
            .fetch_update(Relaxed, Relaxed, |u| {
                u.checked_add(n).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    /// Charges `n` bytes even past the maximum (the caller then frees older data).
    pub fn charge(&self, n: usize) {
        self.used.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn release(&self, n: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let _ = self
            .used
            .fetch_update(Relaxed, Relaxed, |u| Some(u.saturating_sub(n)));
    }

    pub fn over(&self) -> bool {
        self.used() > self.max
    }

    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

/// Client text kept in a journal entry is cut to this many bytes: a refusal reason may quote
/// a 480 KB parameter, and the journal keeps 100,000 entries.
pub const JOURNAL_TEXT_MAX: usize = 512;

/// What the journal does with an entry it keeps (a trait: the type is replica-client's).
pub(crate) trait Kept {
    /// Cuts client text to what the journal keeps.
    fn clip_text(&mut self);
    /// Heap and inline bytes, roughly.
    fn approx_bytes(&self) -> usize;
}

impl Kept for JournalEntry {
    fn clip_text(&mut self) {
        for field in [
            &mut self.class,
            &mut self.method,
            &mut self.vm,
            &mut self.job,
            &mut self.rule,
            &mut self.reason,
            &mut self.fault,
        ]
        .into_iter()
        .flatten()
        {
            clip(field, JOURNAL_TEXT_MAX);
        }
        self.faults.truncate(32);
        for f in &mut self.faults {
            clip(f, JOURNAL_TEXT_MAX);
        }
    }

    fn approx_bytes(&self) -> usize {
        let text = [
            &self.class,
            &self.method,
            &self.vm,
            &self.job,
            &self.rule,
            &self.reason,
            &self.fault,
        ]
        .into_iter()
        .flatten()
        .map(String::len)
        .sum::<usize>();
        256 + self.host.len()
            + self.operation.len()
            + text
            + self.faults.iter().map(|f| 24 + f.len()).sum::<usize>()
    }
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
    /// A request body must arrive within this time of the server starting to read it (right
    /// after its header); a client that stalls mid-body gets 408 and is disconnected.
    pub body_read_timeout_ms: u64,
    /// Open connections per listener (each simulated host has its own); over it a new
    /// connection is accepted and closed at once, unanswered.
    pub max_connections: usize,
    /// Enumeration contexts kept per world; past it the oldest go.
    pub max_enum_contexts: usize,
    /// An enumeration context not pulled for this long expires.
    pub enum_context_ttl_ms: u64,
    /// Journal entries kept per world; past it the oldest go.
    pub max_journal: usize,
    /// Worlds at once (the default one included).
    pub max_worlds: usize,
    /// MaxBatchItems.
    pub max_batch_items: u32,
    /// VMs in one world's topology (`--topology`, `POST reset`).
    pub max_topology_vms: usize,
    /// Fault rules in one world.
    pub max_faults: usize,
    /// Bytes all worlds together may hold in journals, enumeration contexts and the worlds
    /// themselves (estimated): the process-wide budget.
    pub max_memory_bytes: usize,
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
            max_topology_vms: 10_000,
            max_faults: 256,
            max_memory_bytes: 1 << 30,
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
            ("max_topology_vms", self.max_topology_vms.to_string()),
            ("max_faults", self.max_faults.to_string()),
            ("max_memory_bytes", self.max_memory_bytes.to_string()),
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
        } else if name == "max_memory_bytes" {
            1 << 40
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
            "max_topology_vms" => self.max_topology_vms = size()?,
            "max_faults" => self.max_faults = size()?,
            "max_memory_bytes" => self.max_memory_bytes = size()?,
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

impl Limits {
    /// Refuses a topology over `max_topology_vms` before it is built.
    pub fn check_topology(&self, spec: &TopologySpec) -> Result<(), String> {
        if spec.vms.len() > self.max_topology_vms {
            return Err(format!(
                "the topology has {} VMs; the limit is {} (--limit max_topology_vms=N)",
                spec.vms.len(),
                self.max_topology_vms
            ));
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
    enums: HashMap<String, EnumContext>,
    /// Response MessageIDs and enumeration contexts: its own stream, so transport ids never
    /// shift the model's ids.
    pub ids: SimRng,
    /// Counts changes the control API makes outside the model (faults cleared, clock set,
    /// reset), so persistence can tell that something happened even when
    /// `world.generation` did not move.
    pub changes: u64,
    /// Where this world's bytes are charged: the process-wide budget once the world is in
    /// `Worlds`, an unbounded one of its own before.
    budget: Arc<Budget>,
    journal_bytes: usize,
    enum_bytes: usize,
    world_bytes: usize,
}

/// A world's own size, estimated at build: its JSON length twice over (strings, maps and
/// vectors take about that much in memory).
fn world_bytes(world: &World) -> usize {
    serde_json::to_vec(world).map_or(0, |v| v.len().saturating_mul(2))
}

impl Drop for WorldSlot {
    fn drop(&mut self) {
        self.budget.release(self.charged());
    }
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
        world.set_pace(clock.pace());
        let bytes = world_bytes(&world);
        let budget = Arc::new(Budget::new(usize::MAX));
        budget.charge(bytes);
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
            budget,
            journal_bytes: 0,
            enum_bytes: 0,
            world_bytes: bytes,
        })
    }

    /// Whether requests to this world may take long (a topology of some thousand VMs): the
    /// server then runs them on the blocking pool, off the async workers.
    pub fn is_large(&self) -> bool {
        self.world_bytes > 2 << 20
    }

    /// Bytes this world holds against the budget.
    pub fn charged(&self) -> usize {
        self.journal_bytes + self.enum_bytes + self.world_bytes
    }

    /// Moves this world's charges to `budget` (the process-wide one); refused, with nothing
    /// moved, when they do not fit.
    pub fn attach(&mut self, budget: Arc<Budget>) -> Result<(), String> {
        let total = self.charged();
        if !budget.try_charge(total) {
            return Err(format!(
                "the simulator's memory budget has no room for world `{}` ({} MB of {} MB in use, this world needs {} MB; --limit max_memory_bytes=N)",
                self.name,
                budget.used() >> 20,
                budget.max() >> 20,
                total >> 20
            ));
        }
        self.budget.release(total);
        self.budget = budget;
        Ok(())
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
        world.set_pace(clock.pace());
        let bytes = world_bytes(&world);
        let journal_bytes = journal.iter().map(JournalEntry::approx_bytes).sum();
        let budget = Arc::new(Budget::new(usize::MAX));
        budget.charge(bytes + journal_bytes);
        WorldSlot {
            name: name.to_string(),
            clock: Clock::new(clock, clock_now.max(world.now())),
            world,
            spec,
            seed,
            journal: journal.into(),
            next_seq,
            coverage,
            enums: HashMap::new(),
            ids,
            changes: 0,
            budget,
            journal_bytes,
            enum_bytes: 0,
            world_bytes: bytes,
        }
    }

    /// A fingerprint of everything persistence saves, cheap to compare: the model's
    /// generation, the journal cursor (every call, including reads that move `polls:N` jobs
    /// and fault counters) and the control API's own changes.
    pub fn fingerprint(&self) -> (u64, u64, u64) {
        (self.world.generation(), self.next_seq, self.changes)
    }

    /// Brings the model to the clock's present.
    pub fn tick(&mut self) -> Millis {
        let now = self.clock.now().max(self.world.now());
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
        // The old world's bytes make room for the new one's; given back if it does not fit.
        self.budget.release(self.charged());
        if let Err(e) = fresh.attach(self.budget.clone()) {
            self.budget.charge(self.charged());
            return Err(e);
        }
        (self.journal_bytes, self.enum_bytes, self.world_bytes) = (0, 0, 0);
        *self = fresh;
        Ok(())
    }

    /// Appends to the journal: the oldest entries go past `max` entries, and while the
    /// memory budget is over (other worlds' share included), down to this one entry. Client
    /// text in the entry is cut to [`JOURNAL_TEXT_MAX`] bytes.
    pub fn record(&mut self, mut e: JournalEntry, max: usize) {
        e.seq = self.next_seq;
        self.next_seq += 1;
        e.clip_text();
        let bytes = e.approx_bytes();
        self.budget.charge(bytes);
        self.journal_bytes += bytes;
        self.journal.push_back(e);
        while self.journal.len() > max || (self.journal.len() > 1 && self.budget.over()) {
            if let Some(old) = self.journal.pop_front() {
                let bytes = old.approx_bytes();
                self.budget.release(bytes);
                self.journal_bytes -= bytes.min(self.journal_bytes);
            }
        }
    }

    /// Keeps an enumeration for later Pulls. Expired contexts go first, then the oldest ones
    /// past `max_enum_contexts` or while the memory budget has no room; `Err` when even
    /// with all of this world's other contexts gone it does not fit.
    pub fn store_context(
        &mut self,
        id: String,
        items: VecDeque<EnumItem>,
        limits: &Limits,
    ) -> Result<(), usize> {
        let ctx = EnumContext::new(items);
        self.expire_contexts(limits.enum_context_ttl_ms);
        while self.enums.len() >= limits.max_enum_contexts.max(1) {
            self.drop_oldest_context();
        }
        while !self.budget.try_charge(ctx.bytes) {
            if !self.drop_oldest_context() {
                return Err(ctx.bytes);
            }
        }
        self.enum_bytes += ctx.bytes;
        self.enums.insert(id, ctx);
        Ok(())
    }

    fn drop_oldest_context(&mut self) -> bool {
        let oldest = self
            .enums
            .iter()
            .min_by_key(|(_, c)| c.created)
            .map(|(k, _)| k.clone());
        oldest.is_some_and(|k| self.take_context(&k).is_some())
    }

    /// Takes a context out (Pull, Release); `put_context` puts a partly pulled one back.
    pub fn take_context(&mut self, id: &str) -> Option<EnumContext> {
        let ctx = self.enums.remove(id)?;
        self.budget.release(ctx.bytes);
        self.enum_bytes -= ctx.bytes.min(self.enum_bytes);
        Some(ctx)
    }

    /// Puts back a context taken by `take_context`, charged again (it only shrank).
    pub fn put_context(&mut self, id: String, mut ctx: EnumContext) {
        ctx.created = Instant::now();
        self.budget.charge(ctx.bytes);
        self.enum_bytes += ctx.bytes;
        self.enums.insert(id, ctx);
    }

    /// Drops the contexts not used for `ttl_ms` (also swept by a timer in the server, so an
    /// idle world's contexts do not wait for its next Enumerate).
    pub fn expire_contexts(&mut self, ttl_ms: u64) {
        let ttl = std::time::Duration::from_millis(ttl_ms);
        let expired: Vec<String> = self
            .enums
            .iter()
            .filter(|(_, c)| c.created.elapsed() >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.take_context(&k);
        }
    }

    /// Enumeration contexts held.
    pub fn context_count(&self) -> usize {
        self.enums.len()
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
    /// The process-wide memory budget every world charges.
    pub budget: Arc<Budget>,
    /// Read on every request, written when a world is made or removed: readers share it.
    slots: RwLock<BTreeMap<String, Arc<Mutex<WorldSlot>>>>,
}

pub const DEFAULT_WORLD: &str = "default";

/// World names travel in paths and headers: 1-64 characters of A-Z, a-z, 0-9, `-` and `_`.
pub fn check_world_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        // Bytes, not chars: every byte of a non-ASCII character fails the test as the
        // character would.
        || !name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
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

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Worlds {
    pub fn new(
        default_spec: TopologySpec,
        seed: u64,
        clock: ClockMode,
        limits: Limits,
    ) -> Result<Worlds, String> {
        limits.check_topology(&default_spec)?;
        let w = Worlds {
            default_spec,
            seed,
            clock,
            budget: Arc::new(Budget::new(limits.max_memory_bytes)),
            limits,
            slots: RwLock::new(BTreeMap::new()),
        };
        w.get(DEFAULT_WORLD)?;
        Ok(w)
    }

    /// A world by name; a new name creates a world from the default topology.
    pub fn get(&self, name: &str) -> Result<Arc<Mutex<WorldSlot>>, String> {
        check_world_name(name)?;
        if let Some(s) = read(&self.slots).get(name) {
            return Ok(s.clone());
        }
        let mut slots = write(&self.slots);
        // Made by another request between the two locks.
        if let Some(s) = slots.get(name) {
            return Ok(s.clone());
        }
        if slots.len() >= self.limits.max_worlds {
            return Err(format!(
                "too many worlds (limit {})",
                self.limits.max_worlds
            ));
        }
        let mut fresh = WorldSlot::new(name, self.default_spec.clone(), self.seed, self.clock)?;
        fresh.attach(self.budget.clone())?;
        let slot = Arc::new(Mutex::new(fresh));
        slots.insert(name.to_string(), slot.clone());
        Ok(slot)
    }

    pub fn names(&self) -> Vec<String> {
        read(&self.slots).keys().cloned().collect()
    }

    /// Every world, in name order (persistence walks them one lock at a time).
    pub fn all(&self) -> Vec<(String, Arc<Mutex<WorldSlot>>)> {
        read(&self.slots)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Puts a loaded world in place (persistence).
    /// A saved world is put back even past the budget: refusing it would lose saved state,
    /// and the budget evicts journal entries as calls come.
    pub fn install(&self, mut slot: WorldSlot) {
        let total = slot.charged();
        if slot.attach(self.budget.clone()).is_err() {
            slot.budget.release(total);
            self.budget.charge(total);
            slot.budget = self.budget.clone();
        }
        write(&self.slots).insert(slot.name.clone(), Arc::new(Mutex::new(slot)));
    }

    /// Drops the expired enumeration contexts of every world (the server's sweep timer).
    pub fn sweep_contexts(&self) {
        for (_, slot) in self.all() {
            lock(&slot).expire_contexts(self.limits.enum_context_ttl_ms);
        }
    }

    pub fn remove(&self, name: &str) -> bool {
        name != DEFAULT_WORLD && write(&self.slots).remove(name).is_some()
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
