//! replica-core: the Hyper-V Replica model, pure and IO-free.
//!
//! No async, no clock reads, no XML, no HTTP: time comes in as [`time::Millis`], randomness
//! from the world's seeded [`rng::SimRng`]. The one transition table ([`table::RULES`]) feeds
//! the engine, the diagram export, the coverage report and the conformance oracle.

pub mod coverage;
pub mod diagram;
pub mod engine;
pub mod enums;
pub mod events;
pub mod faults;
pub mod methods;
pub mod ops;
pub mod params;
pub mod profile;
pub mod rng;
pub mod scenario;
pub mod table;
pub mod text;
pub mod time;
pub mod topology;
pub mod world;

pub use engine::{Answer, Event, Output};
pub use enums::*;
pub use ops::{OpKind, Operation};
pub use world::World;
