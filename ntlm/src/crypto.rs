//! NTLMv2 computations (MS-NLMP 3.3.2) and session key derivation (3.4.5).

use hmac::{Hmac, KeyInit as _, Mac as _};
use md4::{Digest as _, Md4};
use md5::Md5;
use rc4::{Rc4, StreamCipher as _};

/// UTF-16LE, the encoding of every string NTLM hashes when UNICODE is negotiated.
pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// NT hash: MD4 of the UTF-16LE password (MS-NLMP 3.3.1 NTOWFv1).
pub fn nt_hash(password: &str) -> [u8; 16] {
    Md4::digest(utf16le(password)).into()
}

/// HMAC-MD5 over the concatenation of `parts`.
pub fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Md5>>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 16],
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// MD5 over the concatenation of `parts`.
pub fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// NTOWFv2: HMAC-MD5 keyed with the NT hash over UTF-16LE(UPPER(user) + domain). The domain
/// is taken as the client sent it, so any domain works: the simulator is its own DC.
pub fn ntowfv2(nt_hash: &[u8; 16], user: &str, domain: &str) -> [u8; 16] {
    let mut text = user.to_uppercase();
    text.push_str(domain);
    hmac_md5(nt_hash, &[&utf16le(&text)])
}

/// NTProofStr = HMAC-MD5(ResponseKeyNT, ServerChallenge || temp).
pub fn nt_proof(response_key: &[u8; 16], server_challenge: &[u8; 8], temp: &[u8]) -> [u8; 16] {
    hmac_md5(response_key, &[server_challenge, temp])
}

/// LMv2 response = HMAC-MD5(ResponseKeyLM, ServerChallenge || ClientChallenge) || ClientChallenge.
pub fn lmv2_response(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..16].copy_from_slice(&hmac_md5(
        response_key,
        &[server_challenge, client_challenge],
    ));
    out[16..].copy_from_slice(client_challenge);
    out
}

/// The NTLMv2 client blob ("temp" in MS-NLMP 3.3.2): version 1.1, timestamp, client challenge
/// and the AV pairs, with the four reserved zero bytes the spec puts around them.
pub fn ntlmv2_temp(timestamp: u64, client_challenge: &[u8; 8], av_pairs: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(32 + av_pairs.len());
    t.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    t.extend_from_slice(&timestamp.to_le_bytes());
    t.extend_from_slice(client_challenge);
    t.extend_from_slice(&[0; 4]);
    t.extend_from_slice(av_pairs);
    t.extend_from_slice(&[0; 4]);
    t
}

/// RC4 of `data` under a fresh key (RC4K in MS-NLMP), used for the key exchange.
pub fn rc4k(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if let Ok(mut c) = Rc4::new_from_slice(key) {
        c.apply_keystream(&mut out);
    }
    out
}

const CLIENT_SIGN: &[u8] = b"session key to client-to-server signing key magic constant\0";
const SERVER_SIGN: &[u8] = b"session key to server-to-client signing key magic constant\0";
const CLIENT_SEAL: &[u8] = b"session key to client-to-server sealing key magic constant\0";
const SERVER_SEAL: &[u8] = b"session key to server-to-client sealing key magic constant\0";

/// SIGNKEY (MS-NLMP 3.4.5.2, extended session security): the client-to-server key when
/// `client` is true.
pub fn sign_key(exported_session_key: &[u8; 16], client: bool) -> [u8; 16] {
    md5(&[
        exported_session_key,
        if client { CLIENT_SIGN } else { SERVER_SIGN },
    ])
}

/// SEALKEY (MS-NLMP 3.4.5.3, extended session security): 128, 56 or 40 bits of the session
/// key by the negotiated flags, then MD5 with the direction's magic constant.
pub fn seal_key(exported_session_key: &[u8; 16], flags: u32, client: bool) -> [u8; 16] {
    use crate::messages::flags::{KEY_56, KEY_128};
    let n = if flags & KEY_128 != 0 {
        16
    } else if flags & KEY_56 != 0 {
        7
    } else {
        5
    };
    md5(&[
        &exported_session_key[..n],
        if client { CLIENT_SEAL } else { SERVER_SEAL },
    ])
}
