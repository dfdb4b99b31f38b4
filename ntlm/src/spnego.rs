//! SPNEGO (RFC 4178) as Windows' Negotiate package wraps NTLM: just enough DER to read and
//! write NegTokenInit and NegTokenResp. Lengths are checked against the input at every level.

use crate::{Error, MAX_TOKEN};

/// DER of the SPNEGO OID 1.3.6.1.5.5.2 (tag, length, value).
const SPNEGO_OID: &[u8] = &[0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// DER of the NTLMSSP OID 1.3.6.1.4.1.311.2.2.10.
pub const NTLM_OID: &[u8] = &[
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a,
];

/// negState (RFC 4178 4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NegState {
    /// accept-completed.
    AcceptCompleted = 0,
    /// accept-incomplete.
    AcceptIncomplete = 1,
    /// reject.
    Reject = 2,
    /// request-mic.
    RequestMic = 3,
}

/// A token from the `Authorization: Negotiate` header, classified.
#[derive(Debug, Clone)]
pub enum Token {
    /// A bare NTLMSSP message (what requests-ntlm sends under `Negotiate`).
    Raw(Vec<u8>),
    /// NegTokenInit: the client's mechanism list (DER, as received: the mechListMIC covers
    /// exactly these bytes) and its optimistic token.
    Init {
        /// The DER SEQUENCE OF OID.
        mech_types: Vec<u8>,
        /// Whether NTLM is the first (preferred) mechanism.
        ntlm_first: bool,
        /// Whether NTLM is offered at all.
        ntlm_offered: bool,
        /// The optimistic mechToken.
        mech_token: Option<Vec<u8>>,
    },
    /// NegTokenResp.
    Resp {
        /// negState, when present.
        state: Option<u8>,
        /// responseToken.
        token: Option<Vec<u8>>,
        /// mechListMIC.
        mic: Option<Vec<u8>>,
    },
}

/// One DER TLV: (tag, value, rest).
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), Error> {
    let (&tag, rest) = b.split_first().ok_or(Error::Der("empty"))?;
    let (&first, rest) = rest.split_first().ok_or(Error::Der("no length"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 {
            return Err(Error::Der("length form"));
        }
        let bytes = rest.get(..n).ok_or(Error::Der("truncated length"))?;
        let len = bytes.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
        (len, &rest[n..])
    };
    if len > MAX_TOKEN {
        return Err(Error::TooLarge("DER value"));
    }
    let value = rest.get(..len).ok_or(Error::Der("truncated value"))?;
    Ok((tag, value, &rest[len..]))
}

fn tlv_expect<'a>(
    b: &'a [u8],
    want: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), Error> {
    let (tag, v, rest) = tlv(b)?;
    if tag != want {
        return Err(Error::Der(what));
    }
    Ok((v, rest))
}

/// Encodes one TLV.
fn enc(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else if n < 0x1_0000 {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    } else {
        out.extend_from_slice(&[0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(value);
    out
}

/// The `[n] EXPLICIT` context fields of a SEQUENCE, in order.
fn fields(seq: &[u8]) -> Result<Vec<(u8, &[u8])>, Error> {
    let mut out = Vec::new();
    let mut rest = seq;
    while !rest.is_empty() {
        let (tag, v, r) = tlv(rest)?;
        if !(0xa0..=0xa4).contains(&tag) {
            return Err(Error::Der("unexpected field"));
        }
        out.push((tag - 0xa0, v));
        rest = r;
    }
    Ok(out)
}

fn octets(explicit: &[u8]) -> Result<Vec<u8>, Error> {
    Ok(tlv_expect(explicit, 0x04, "expected OCTET STRING")?
        .0
        .to_vec())
}

/// Classifies and decodes a token sent under `Negotiate`.
pub fn parse(b: &[u8]) -> Result<Token, Error> {
    if b.len() > MAX_TOKEN {
        return Err(Error::TooLarge("token"));
    }
    if b.starts_with(crate::messages::SIGNATURE) {
        return Ok(Token::Raw(b.to_vec()));
    }
    match b.first() {
        Some(0x60) => {
            let (inner, _) = tlv_expect(b, 0x60, "expected InitialContextToken")?;
            let rest = inner
                .strip_prefix(SPNEGO_OID)
                .ok_or(Error::Der("not SPNEGO"))?;
            let (init, _) = tlv_expect(rest, 0xa0, "expected NegTokenInit")?;
            let (seq, _) = tlv_expect(init, 0x30, "expected SEQUENCE")?;
            let mut mech_types = None;
            let mut mech_token = None;
            for (n, v) in fields(seq)? {
                match n {
                    0 => mech_types = Some(v),
                    2 => mech_token = Some(octets(v)?),
                    _ => {}
                }
            }
            let mech_types = mech_types.ok_or(Error::Der("no mechTypes"))?;
            let (list, _) = tlv_expect(mech_types, 0x30, "expected MechTypeList")?;
            let mut oids = Vec::new();
            let mut rest = list;
            while !rest.is_empty() {
                let (tag, _, r) = tlv(rest)?;
                if tag != 0x06 {
                    return Err(Error::Der("expected OID"));
                }
                oids.push(&rest[..rest.len() - r.len()]);
                rest = r;
            }
            Ok(Token::Init {
                // The MIC covers the whole MechTypeList TLV, exactly as sent.
                mech_types: mech_types.to_vec(),
                ntlm_first: oids.first() == Some(&NTLM_OID),
                ntlm_offered: oids.contains(&NTLM_OID),
                mech_token,
            })
        }
        Some(0xa1) => {
            let (resp, _) = tlv_expect(b, 0xa1, "expected NegTokenResp")?;
            let (seq, _) = tlv_expect(resp, 0x30, "expected SEQUENCE")?;
            let (mut state, mut token, mut mic) = (None, None, None);
            for (n, v) in fields(seq)? {
                match n {
                    0 => {
                        let (e, _) = tlv_expect(v, 0x0a, "expected ENUMERATED")?;
                        state = e.first().copied();
                    }
                    2 => token = Some(octets(v)?),
                    3 => mic = Some(octets(v)?),
                    _ => {}
                }
            }
            Ok(Token::Resp { state, token, mic })
        }
        _ => Err(Error::Der("neither NTLMSSP nor SPNEGO")),
    }
}

/// A NegTokenResp from the acceptor.
pub fn encode_resp(
    state: NegState,
    supported_ntlm: bool,
    token: Option<&[u8]>,
    mic: Option<&[u8]>,
) -> Vec<u8> {
    let mut seq = enc(0xa0, &enc(0x0a, &[state as u8]));
    if supported_ntlm {
        seq.extend(enc(0xa1, NTLM_OID));
    }
    if let Some(t) = token {
        seq.extend(enc(0xa2, &enc(0x04, t)));
    }
    if let Some(m) = mic {
        seq.extend(enc(0xa3, &enc(0x04, m)));
    }
    enc(0xa1, &enc(0x30, &seq))
}

/// The MechTypeList a client offering NTLM alone sends.
pub fn ntlm_mech_types() -> Vec<u8> {
    enc(0x30, NTLM_OID)
}

/// A NegTokenInit from the initiator: NTLM alone, with its NEGOTIATE message.
pub fn encode_init(mech_token: &[u8]) -> Vec<u8> {
    encode_init_with(&ntlm_mech_types(), mech_token)
}

/// A NegTokenInit with any MechTypeList (DER) and optimistic token.
pub fn encode_init_with(mech_types: &[u8], mech_token: &[u8]) -> Vec<u8> {
    let mut seq = enc(0xa0, mech_types);
    seq.extend(enc(0xa2, &enc(0x04, mech_token)));
    let mut inner = SPNEGO_OID.to_vec();
    inner.extend(enc(0xa0, &enc(0x30, &seq)));
    enc(0x60, &inner)
}

/// A NegTokenResp from the initiator (no negState, as Windows sends it).
pub fn encode_init_resp(token: Option<&[u8]>, mic: Option<&[u8]>) -> Vec<u8> {
    let mut seq = Vec::new();
    if let Some(t) = token {
        seq.extend(enc(0xa2, &enc(0x04, t)));
    }
    if let Some(m) = mic {
        seq.extend(enc(0xa3, &enc(0x04, m)));
    }
    enc(0xa1, &enc(0x30, &seq))
}
