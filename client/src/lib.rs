//! replica-client: the one client of replica-sim and of real Hyper-V hosts.
//!
//! - [`wsman`]: a WS-Management (WinRM) client over HTTP(S): Basic, or Negotiate (NTLM) with
//!   message encryption on one held connection; `identify`, `get`, `enumerate`, `invoke`, job
//!   polling, a [`wsman::Recorder`] of every exchange. Envelopes and response parsing come from
//!   `replica-wsman`; it knows nothing of replication.
//! - [`control`]: the simulator's JSON control API (`/_replica/v1/`): its answer types, which the
//!   simulator writes its answers from, and [`control::Control`], a typed async HTTP client.
//!
//! It must not know the simulator's internals (it does not depend on `replica-sim`): it talks to
//! every target over the wire.

#![deny(missing_docs)]

pub mod control;
pub mod wsman;

/// Installs ring as rustls' process-wide crypto provider. reqwest is built with
/// `rustls-no-provider`, so rustls has no crypto until one is installed, and reqwest panics
/// while building a client without one (even for plain-HTTP use, since the TLS connector is
/// always built). If something else already installed a provider (another client, a test), it
/// is kept.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error only means another thread won the race; its provider is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
