//! Sealing and signing after authentication (MS-NLMP 3.4, extended session security).
//!
//! Each direction has its own signing key, sealing key, RC4 state and sequence number; the
//! RC4 state runs on across messages (connection-oriented NTLM), so messages must be sealed and
//! unsealed in order on one connection.

use crate::Error;
use crate::crypto::{hmac_md5, seal_key, sign_key};
use crate::messages::flags;
use rc4::{KeyInit as _, Rc4, StreamCipher as _};
use subtle::ConstantTimeEq as _;

/// Length of an NTLMSSP_MESSAGE_SIGNATURE.
pub const SIGNATURE_LEN: usize = 16;

struct Direction {
    sign_key: [u8; 16],
    seal_key: [u8; 16],
    rc4: Rc4,
    seq: u32,
}

impl Direction {
    fn new(sign_key: [u8; 16], seal_key: [u8; 16]) -> Direction {
        Direction {
            sign_key,
            seal_key,
            rc4: new_rc4(&seal_key),
            seq: 0,
        }
    }

    /// The signature of `msg` at the current sequence number (MS-NLMP 3.4.4.2); advances it.
    fn signature(&mut self, msg: &[u8], key_exch: bool) -> [u8; 16] {
        let seq = self.seq.to_le_bytes();
        self.seq = self.seq.wrapping_add(1);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&hmac_md5(&self.sign_key, &[&seq, msg])[..8]);
        if key_exch {
            self.rc4.apply_keystream(&mut checksum);
        }
        let mut sig = [0u8; 16];
        sig[..4].copy_from_slice(&1u32.to_le_bytes());
        sig[4..12].copy_from_slice(&checksum);
        sig[12..].copy_from_slice(&seq);
        sig
    }
}

fn new_rc4(key: &[u8; 16]) -> Rc4 {
    // A 16-byte key is always valid for RC4 (1..=256 bytes); the fallback is never taken and
    // keeps this a total function rather than a panic path.
    Rc4::new_from_slice(key).unwrap_or_else(|_| Rc4::new(&Default::default()))
}

/// An established NTLM security context's message protection.
pub struct Session {
    flags: u32,
    out: Direction,
    inbound: Direction,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys.
        f.debug_struct("Session")
            .field("flags", &format_args!("{:#010x}", self.flags))
            .field("seq_out", &self.out.seq)
            .field("seq_in", &self.inbound.seq)
            .finish()
    }
}

impl Session {
    /// The session of one side: `client` picks which direction's keys are "out".
    /// Needs extended session security (the only kind NTLMv2 clients negotiate).
    pub fn new(
        exported_session_key: &[u8; 16],
        flags: u32,
        client: bool,
    ) -> Result<Session, Error> {
        if flags & flags::EXTENDED_SESSION_SECURITY == 0 {
            return Err(Error::Unsupported("NTLM without extended session security"));
        }
        let c2s = Direction::new(
            sign_key(exported_session_key, true),
            seal_key(exported_session_key, flags, true),
        );
        let s2c = Direction::new(
            sign_key(exported_session_key, false),
            seal_key(exported_session_key, flags, false),
        );
        let (out, inbound) = if client { (c2s, s2c) } else { (s2c, c2s) };
        Ok(Session {
            flags,
            out,
            inbound,
        })
    }

    /// The negotiated flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    fn key_exch(&self) -> bool {
        self.flags & flags::KEY_EXCH != 0
    }

    /// Seals `msg` in place and returns its signature (GSS_WrapEx, MS-NLMP 3.4.3): the message
    /// is encrypted first, then the checksum with the same RC4 stream.
    pub fn seal(&mut self, msg: &mut [u8]) -> [u8; 16] {
        let plain = msg.to_vec();
        self.out.rc4.apply_keystream(msg);
        let kx = self.key_exch();
        self.out.signature(&plain, kx)
    }

    /// Unseals `msg` in place and checks `signature` (GSS_UnwrapEx).
    pub fn unseal(&mut self, msg: &mut [u8], signature: &[u8]) -> Result<(), Error> {
        self.inbound.rc4.apply_keystream(msg);
        let kx = self.key_exch();
        let expected = self.inbound.signature(msg, kx);
        if bool::from(expected.ct_eq(signature)) {
            Ok(())
        } else {
            Err(Error::BadSignature)
        }
    }

    /// Signs `msg` (GSS_GetMICEx), e.g. SPNEGO's mechListMIC.
    pub fn sign(&mut self, msg: &[u8]) -> [u8; 16] {
        let kx = self.key_exch();
        self.out.signature(msg, kx)
    }

    /// Verifies a signature over `msg` (GSS_VerifyMICEx).
    pub fn verify(&mut self, msg: &[u8], signature: &[u8]) -> Result<(), Error> {
        let kx = self.key_exch();
        let expected = self.inbound.signature(msg, kx);
        if bool::from(expected.ct_eq(signature)) {
            Ok(())
        } else {
            Err(Error::BadMic)
        }
    }

    /// Restarts the outgoing RC4 stream (sequence numbers run on). Windows does this after the
    /// SPNEGO mechListMIC, and so do pyspnego and every client that talks to it.
    pub fn reset_out(&mut self) {
        self.out.rc4 = new_rc4(&self.out.seal_key);
    }

    /// Restarts the incoming RC4 stream (see [`Session::reset_out`]).
    pub fn reset_in(&mut self) {
        self.inbound.rc4 = new_rc4(&self.inbound.seal_key);
    }
}
