//! The simulator's JSON control API (`/_replica/v1/`): its types ([`WorldState`],
//! [`JournalEntry`], [`ResetDone`], ...), which the server writes its answers from, and
//! [`Control`], a typed async HTTP client of one world. Real hosts have none of it; [`probe`]
//! tells whether a target does.

mod http;
mod types;

pub use http::{Control, ControlCallError, http_client, listener_base, probe};
pub use types::*;
