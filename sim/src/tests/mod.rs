//! Unit tests that need the crate's insides (a world and the dispatcher without HTTP). They
//! share the integration tests' helpers, compiled here too (`replica_sim` names this crate in
//! tests, see lib.rs).

#[allow(dead_code, unused_imports)]
#[path = "../../tests/it/support.rs"]
mod support;

#[allow(dead_code)]
#[path = "../../tests/it/raw.rs"]
mod raw;

mod memory;
mod soak;
