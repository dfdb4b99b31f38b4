//! replica-ntlm: NTLMv2 as WinRM speaks it, for both ends of the wire.
//!
//! * [`crypto`]: NTOWFv2, the NTLMv2 response, key derivation (MS-NLMP 3.3.2, 3.4.5).
//! * [`messages`]: NEGOTIATE / CHALLENGE / AUTHENTICATE (MS-NLMP 2.2.1) and AV pairs.
//! * [`session`]: sealing and signing with extended session security (MS-NLMP 3.4).
//! * [`spnego`]: the DER of NegTokenInit / NegTokenResp (RFC 4178) around NTLM.
//! * [`acceptor`] / [`initiator`]: the server and client state machines.
//! * [`mime`]: WinRM message encryption framing (MS-WSMV 2.2.9.1, `multipart/encrypted`).
//!
//! Pure: no IO, no clock reads, no randomness of its own. Challenges, nonces, session keys and
//! timestamps come in as arguments, so tests can pin them to MS-NLMP's published values.
//! Every parser takes untrusted bytes and returns [`Error`]; none panics, and every length is
//! checked against the input before it is used.

#![warn(missing_docs)]

pub mod acceptor;
pub mod crypto;
pub mod initiator;
pub mod messages;
pub mod mime;
pub mod session;
pub mod spnego;

pub use acceptor::{Acceptor, Candidate, Step};
pub use initiator::Initiator;
pub use session::Session;

/// The largest token either side accepts (an AUTHENTICATE message with a long target info is a
/// few hundred bytes; Windows caps HTTP headers at 16 KiB by default).
pub const MAX_TOKEN: usize = 64 * 1024;

/// Why a token, a signature or an encrypted body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ended before a field it announces.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Over [`MAX_TOKEN`] or another fixed bound.
    #[error("{0} too large")]
    TooLarge(&'static str),
    /// Not an NTLMSSP message, or not the message type expected at this step.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    /// Malformed DER in a SPNEGO token.
    #[error("bad SPNEGO token: {0}")]
    Der(&'static str),
    /// Something MS-NLMP allows but WinRM clients never use (NTLMv1, no extended session
    /// security, ...).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The NTLMv2 proof did not match any credential (wrong user or wrong password: the caller
    /// cannot tell which, on purpose).
    #[error("logon failure")]
    LogonFailure,
    /// A MIC (the AUTHENTICATE message's or SPNEGO's mechListMIC) did not verify.
    #[error("bad MIC")]
    BadMic,
    /// A sealed or signed message's signature did not verify.
    #[error("bad message signature")]
    BadSignature,
    /// The `multipart/encrypted` framing was not as MS-WSMV describes it.
    #[error("bad encrypted body: {0}")]
    Mime(&'static str),
}
