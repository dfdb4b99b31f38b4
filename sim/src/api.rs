//! Typed control calls on a running simulator.
//!
//! The answers of the JSON control API are Rust types shared with the client crate
//! ([`replica_client::control`]), re-exported here: the HTTP control API (`/_replica/v1/`,
//! documented in `sim/openapi.json`) writes its answers from them and the HTTP client reads them
//! back, so a test that calls [`crate::SimHandle::state`] in-process and a tool that reads
//! `GET /_replica/v1/state` over HTTP see one schema. The calls here and the HTTP endpoints run
//! the same code (`control.rs`): a reset or a fault rule refused over HTTP is refused here with
//! the same message.

use crate::app::App;
use replica_core::faults::FaultSpec;
use std::sync::Arc;
use std::time::Duration;

pub use replica_client::control::{
    ClockMode, ClockState, ControlError, FaultAdded, HostState, JobView, JournalEntry, JournalPage,
    MemoryUse, Named, RecoveryPointState, RelationshipState, Reset, ResetDone, VmState, WorldState,
};

/// Every control endpoint: method and path below `/_replica/v1/` (`{x}` is a path parameter),
/// as the server routes them and `sim/openapi.json` documents them.
pub fn endpoints() -> Vec<(&'static str, &'static str)> {
    crate::control::ROUTES
        .iter()
        .map(|(method, path, _)| (*method, *path))
        .collect()
}

/// One world of a running simulator, for typed control calls. The default world is
/// [`crate::SimHandle::world`]`("default")`; the handle's own methods call it.
pub struct WorldRef<'a> {
    pub(crate) app: &'a Arc<App>,
    pub(crate) name: String,
}

impl WorldRef<'_> {
    /// The world's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces the world with a fresh one (`POST reset`); a refused reset leaves it as it was.
    pub fn reset(&self, reset: Reset) -> Result<ResetDone, ControlError> {
        crate::control::typed_reset(self.app, &self.name, reset)
    }

    /// Adds a fault rule (`POST faults`).
    pub fn add_fault(&self, fault: FaultSpec) -> Result<FaultAdded, ControlError> {
        crate::control::typed_add_fault(self.app, &self.name, fault)
    }

    /// Removes every fault rule (`DELETE faults`); returns how many there were.
    pub fn clear_faults(&self) -> Result<usize, ControlError> {
        crate::control::typed_clear_faults(self.app, &self.name)
    }

    /// Moves the world's virtual time forward (`POST clock {"advance_ms": N}`): jobs due by
    /// then complete.
    pub fn advance(&self, by: Duration) -> Result<ClockState, ControlError> {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        crate::control::typed_advance(self.app, &self.name, ms)
    }

    /// The world's clock (`GET clock`).
    pub fn clock(&self) -> Result<ClockState, ControlError> {
        crate::control::typed_clock(self.app, &self.name)
    }

    /// Every journal entry still kept, oldest first (`GET journal`, all pages).
    pub fn journal(&self) -> Result<Vec<JournalEntry>, ControlError> {
        let mut all = Vec::new();
        let mut since = 0;
        loop {
            let page = self.journal_page(since, 10_000)?;
            all.extend(page.entries);
            if !page.more || page.next == since {
                return Ok(all);
            }
            since = page.next;
        }
    }

    /// One page of the journal: up to `limit` (1..=10000) entries after `since`.
    pub fn journal_page(&self, since: u64, limit: usize) -> Result<JournalPage, ControlError> {
        crate::control::typed_journal(self.app, &self.name, since, limit)
    }

    /// Enumeration contexts the world keeps for later Pulls (a client that never pulls
    /// nor releases its enumerations makes this grow up to `max_enum_contexts`).
    pub fn enumeration_contexts(&self) -> Result<usize, ControlError> {
        crate::control::typed_contexts(self.app, &self.name)
    }

    /// The whole world (`GET state`).
    pub fn state(&self) -> Result<WorldState, ControlError> {
        crate::control::typed_state(self.app, &self.name)
    }
}
