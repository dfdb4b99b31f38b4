//! The three NTLM messages (MS-NLMP 2.2.1) and AV pairs (2.2.2.1).

use crate::{Error, MAX_TOKEN};

/// NEGOTIATE flags (MS-NLMP 2.2.2.5) this crate reads or sets.
pub mod flags {
    /// Strings are UTF-16LE.
    pub const UNICODE: u32 = 0x0000_0001;
    /// Strings are OEM (never used here; accepted in NEGOTIATE).
    pub const OEM: u32 = 0x0000_0002;
    /// The client asks for the target name.
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    /// Message integrity.
    pub const SIGN: u32 = 0x0000_0010;
    /// Message confidentiality.
    pub const SEAL: u32 = 0x0000_0020;
    /// NTLM authentication (always set).
    pub const NTLM: u32 = 0x0000_0200;
    /// Signatures even without SIGN.
    pub const ALWAYS_SIGN: u32 = 0x0000_8000;
    /// The target is a server (not a domain).
    pub const TARGET_TYPE_SERVER: u32 = 0x0002_0000;
    /// Extended session security (required here: NTLMv2 clients set it).
    pub const EXTENDED_SESSION_SECURITY: u32 = 0x0008_0000;
    /// CHALLENGE carries TargetInfo.
    pub const TARGET_INFO: u32 = 0x0080_0000;
    /// The VERSION field is present.
    pub const VERSION: u32 = 0x0200_0000;
    /// 128-bit session keys.
    pub const KEY_128: u32 = 0x2000_0000;
    /// The client sends an encrypted random session key.
    pub const KEY_EXCH: u32 = 0x4000_0000;
    /// 56-bit session keys.
    pub const KEY_56: u32 = 0x8000_0000;
}

/// The 8-byte NTLMSSP signature every message starts with.
pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// AV pair ids (MS-NLMP 2.2.2.1) used here.
pub mod av {
    /// End of the list.
    pub const EOL: u16 = 0;
    /// NetBIOS computer name.
    pub const NB_COMPUTER_NAME: u16 = 1;
    /// NetBIOS domain name.
    pub const NB_DOMAIN_NAME: u16 = 2;
    /// DNS computer name.
    pub const DNS_COMPUTER_NAME: u16 = 3;
    /// DNS domain name.
    pub const DNS_DOMAIN_NAME: u16 = 4;
    /// Flags; bit 0x2 says the AUTHENTICATE message carries a MIC.
    pub const FLAGS: u16 = 6;
    /// The server's FILETIME; its presence makes the client send a MIC.
    pub const TIMESTAMP: u16 = 7;
}

/// MsvAvFlags bit: the AUTHENTICATE message has a MIC.
pub const AV_FLAG_MIC: u32 = 0x2;

/// The Windows version the simulator claims in CHALLENGE (10.0 build 17763, NTLM revision 15):
/// informational only (MS-NLMP 2.2.2.10).
const VERSION: [u8; 8] = [10, 0, 0x63, 0x45, 0, 0, 0, 15];

fn u16_at(b: &[u8], at: usize) -> Result<u16, Error> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(Error::Truncated("NTLM header"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, Error> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(Error::Truncated("NTLM header"))
}

/// A payload field (len, maxlen, offset) at `at`, resolved to its bytes.
fn field(b: &[u8], at: usize) -> Result<&[u8], Error> {
    let len = usize::from(u16_at(b, at)?);
    let off = u32_at(b, at + 4)? as usize;
    if len == 0 {
        return Ok(&[]);
    }
    off.checked_add(len)
        .and_then(|end| b.get(off..end))
        .ok_or(Error::Truncated("NTLM payload field"))
}

/// Checks the signature and message type; returns the flags at offset 12 (NEGOTIATE) or the
/// caller reads its own.
fn check_header(b: &[u8], kind: u32, what: &'static str) -> Result<(), Error> {
    if b.len() > MAX_TOKEN {
        return Err(Error::TooLarge("NTLM message"));
    }
    if b.get(..8) != Some(SIGNATURE) {
        return Err(Error::Unexpected("not an NTLMSSP message"));
    }
    if u32_at(b, 8)? != kind {
        return Err(Error::Unexpected(what));
    }
    Ok(())
}

/// The message type of an NTLMSSP message (1, 2 or 3).
pub fn message_type(b: &[u8]) -> Result<u32, Error> {
    if b.get(..8) != Some(SIGNATURE) {
        return Err(Error::Unexpected("not an NTLMSSP message"));
    }
    u32_at(b, 8)
}

/// The flags of a NEGOTIATE message.
pub fn parse_negotiate(b: &[u8]) -> Result<u32, Error> {
    check_header(b, 1, "expected NEGOTIATE")?;
    u32_at(b, 12)
}

/// A NEGOTIATE message as replica-client sends it: no domain or workstation.
pub fn build_negotiate(flags: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&[0; 16]); // DomainNameFields, WorkstationFields: empty
    m.extend_from_slice(&VERSION);
    m
}

/// AV pairs, encoded (each id, length, value; then MsvAvEOL).
pub fn encode_av_pairs(pairs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, v) in pairs {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(v.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
        out.extend_from_slice(&v[..v.len().min(usize::from(u16::MAX))]);
    }
    out.extend_from_slice(&[0; 4]);
    out
}

/// AV pairs, decoded up to MsvAvEOL (or the end of the input).
pub fn decode_av_pairs(mut b: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, Error> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let id = u16::from_le_bytes([b[0], b[1]]);
        let len = usize::from(u16::from_le_bytes([b[2], b[3]]));
        if id == av::EOL {
            return Ok(out);
        }
        let v = b.get(4..4 + len).ok_or(Error::Truncated("AV pair"))?;
        out.push((id, v.to_vec()));
        b = &b[4 + len..];
        if out.len() > 64 {
            return Err(Error::TooLarge("AV pair list"));
        }
    }
    Ok(out)
}

/// The CHALLENGE message (MS-NLMP 2.2.1.2) with VERSION; payload: target name, target info.
pub fn build_challenge(
    flags: u32,
    server_challenge: &[u8; 8],
    target_name: &[u8],
    target_info: &[u8],
) -> Vec<u8> {
    const HEADER: u32 = 56;
    let name_len = target_name.len() as u16;
    let info_len = target_info.len() as u16;
    let mut m = Vec::with_capacity(56 + target_name.len() + target_info.len());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&2u32.to_le_bytes());
    m.extend_from_slice(&name_len.to_le_bytes());
    m.extend_from_slice(&name_len.to_le_bytes());
    m.extend_from_slice(&HEADER.to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(server_challenge);
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&info_len.to_le_bytes());
    m.extend_from_slice(&info_len.to_le_bytes());
    m.extend_from_slice(&(HEADER + u32::from(name_len)).to_le_bytes());
    m.extend_from_slice(&VERSION);
    m.extend_from_slice(target_name);
    m.extend_from_slice(target_info);
    m
}

/// What a client needs from a CHALLENGE message.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The negotiated flags.
    pub flags: u32,
    /// The server's 8-byte nonce.
    pub server_challenge: [u8; 8],
    /// TargetInfo, as AV pairs.
    pub target_info: Vec<(u16, Vec<u8>)>,
}

/// Parses a CHALLENGE message.
pub fn parse_challenge(b: &[u8]) -> Result<Challenge, Error> {
    check_header(b, 2, "expected CHALLENGE")?;
    let flags = u32_at(b, 20)?;
    let mut server_challenge = [0u8; 8];
    server_challenge.copy_from_slice(b.get(24..32).ok_or(Error::Truncated("CHALLENGE"))?);
    let target_info = if flags & flags::TARGET_INFO != 0 {
        decode_av_pairs(field(b, 40)?)?
    } else {
        Vec::new()
    };
    Ok(Challenge {
        flags,
        server_challenge,
        target_info,
    })
}

/// The fields of an AUTHENTICATE message (MS-NLMP 2.2.1.3) the acceptor uses.
#[derive(Debug, Clone)]
pub struct Authenticate {
    /// LmChallengeResponse.
    pub lm_response: Vec<u8>,
    /// NtChallengeResponse: NTProofStr (16 bytes) then the client blob.
    pub nt_response: Vec<u8>,
    /// The domain, decoded from UTF-16LE.
    pub domain: String,
    /// The user name, decoded from UTF-16LE.
    pub user: String,
    /// EncryptedRandomSessionKey (key exchange).
    pub encrypted_session_key: Vec<u8>,
    /// The flags the client settled on.
    pub flags: u32,
    /// The MIC at offset 72, when the message is long enough to carry one.
    pub mic: Option<[u8; 16]>,
}

/// Offset of the MIC in an AUTHENTICATE message with a VERSION field.
pub const MIC_OFFSET: usize = 72;

fn utf16_string(b: &[u8]) -> Result<String, Error> {
    if !b.len().is_multiple_of(2) {
        return Err(Error::Unexpected("odd-length UTF-16 string"));
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| Error::Unexpected("invalid UTF-16 string"))
}

/// Parses an AUTHENTICATE message. Only UNICODE strings are accepted (every NTLMv2 client
/// negotiates UNICODE).
pub fn parse_authenticate(b: &[u8]) -> Result<Authenticate, Error> {
    check_header(b, 3, "expected AUTHENTICATE")?;
    let flags = u32_at(b, 60)?;
    if flags & flags::UNICODE == 0 {
        return Err(Error::Unsupported("OEM strings"));
    }
    // The payload starts after the header; a MIC sits at 72 when the lowest payload offset
    // leaves room for it.
    let min_offset = [12usize, 20, 28, 36, 44, 52]
        .iter()
        .filter_map(|&at| {
            let len = u16_at(b, at).ok()?;
            (len > 0).then(|| u32_at(b, at + 4).ok().map(|o| o as usize))?
        })
        .min()
        .unwrap_or(b.len());
    let mic = if min_offset >= MIC_OFFSET + 16 {
        b.get(MIC_OFFSET..MIC_OFFSET + 16).map(|s| {
            let mut m = [0u8; 16];
            m.copy_from_slice(s);
            m
        })
    } else {
        None
    };
    Ok(Authenticate {
        lm_response: field(b, 12)?.to_vec(),
        nt_response: field(b, 20)?.to_vec(),
        domain: utf16_string(field(b, 28)?)?,
        user: utf16_string(field(b, 36)?)?,
        encrypted_session_key: field(b, 52)?.to_vec(),
        flags,
        mic,
    })
}

/// Builds an AUTHENTICATE message with VERSION and a zeroed MIC (the caller patches the MIC at
/// [`MIC_OFFSET`] once it can compute it over all three messages).
pub struct AuthenticateFields<'a> {
    /// LmChallengeResponse.
    pub lm_response: &'a [u8],
    /// NtChallengeResponse.
    pub nt_response: &'a [u8],
    /// Domain (plain text; encoded as UTF-16LE).
    pub domain: &'a str,
    /// User name.
    pub user: &'a str,
    /// Workstation name.
    pub workstation: &'a str,
    /// EncryptedRandomSessionKey.
    pub encrypted_session_key: &'a [u8],
    /// NegotiateFlags.
    pub flags: u32,
}

/// Encodes an AUTHENTICATE message (see [`AuthenticateFields`]).
pub fn build_authenticate(f: &AuthenticateFields<'_>) -> Vec<u8> {
    const HEADER: usize = 88;
    let domain = crate::crypto::utf16le(f.domain);
    let user = crate::crypto::utf16le(f.user);
    let ws = crate::crypto::utf16le(f.workstation);
    let payloads: [&[u8]; 6] = [
        f.lm_response,
        f.nt_response,
        &domain,
        &user,
        &ws,
        f.encrypted_session_key,
    ];
    let mut m = Vec::with_capacity(HEADER + payloads.iter().map(|p| p.len()).sum::<usize>());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&3u32.to_le_bytes());
    let mut off = HEADER;
    for p in payloads {
        let len = p.len() as u16;
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&(off as u32).to_le_bytes());
        off += p.len();
    }
    m.extend_from_slice(&f.flags.to_le_bytes());
    m.extend_from_slice(&VERSION);
    m.extend_from_slice(&[0; 16]);
    for p in payloads {
        m.extend_from_slice(p);
    }
    m
}
