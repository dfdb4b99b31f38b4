//! The server side: NEGOTIATE in, CHALLENGE out, AUTHENTICATE in, verdict and session out;
//! raw NTLM or NTLM inside SPNEGO, as the client chose.

use crate::crypto::{hmac_md5, nt_proof, ntowfv2, rc4k, utf16le};
use crate::messages::{self, AV_FLAG_MIC, MIC_OFFSET, av, flags};
use crate::session::Session;
use crate::spnego::{self, NegState, Token};
use crate::{Error, MAX_TOKEN};
use subtle::ConstantTimeEq as _;

/// A credential the acceptor may match: a user name (compared case-insensitively, without any
/// `DOMAIN\` prefix) and the NT hash of its password.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The user name as configured.
    pub user: String,
    /// MD4 of the UTF-16LE password.
    pub nt_hash: [u8; 16],
}

impl Candidate {
    /// A candidate from a user name and its password.
    pub fn new(user: &str, password: &str) -> Candidate {
        Candidate {
            user: user.to_string(),
            nt_hash: crate::crypto::nt_hash(password),
        }
    }

    fn name_matches(&self, user: &str) -> bool {
        let mine = self.user.rsplit('\\').next().unwrap_or(&self.user);
        mine.to_lowercase() == user.to_lowercase()
    }
}

/// What one step produced.
#[derive(Debug)]
pub enum Step {
    /// Send this token back in a 401 and wait for the next one.
    Continue(Vec<u8>),
    /// Authenticated.
    Done {
        /// Message protection for the rest of the connection (boxed: RC4 states are large).
        session: Box<Session>,
        /// Index of the matched credential in the candidate list.
        candidate: usize,
        /// The user name as the client sent it.
        user: String,
        /// The domain as the client sent it.
        domain: String,
        /// A final token for the client (SPNEGO accept-completed), if any.
        token: Option<Vec<u8>>,
    },
}

enum State {
    Start,
    /// SPNEGO offered NTLM but not first: the NTLM NEGOTIATE comes in the next token.
    AwaitNegotiate {
        mech_types: Vec<u8>,
    },
    AwaitAuthenticate {
        negotiate: Vec<u8>,
        challenge: Vec<u8>,
        mech_types: Option<Vec<u8>>,
        /// The acceptor sent request-mic: the initiator must send a mechListMIC.
        mic_required: bool,
    },
    Finished,
}

/// One NTLM handshake on the acceptor side.
pub struct Acceptor {
    host: String,
    server_challenge: [u8; 8],
    timestamp: u64,
    state: State,
}

/// Flags the acceptor echoes when the client asks for them.
const ECHOED: u32 = flags::UNICODE
    | flags::REQUEST_TARGET
    | flags::SIGN
    | flags::SEAL
    | flags::ALWAYS_SIGN
    | flags::EXTENDED_SESSION_SECURITY
    | flags::VERSION
    | flags::KEY_128
    | flags::KEY_EXCH
    | flags::KEY_56;

impl Acceptor {
    /// `host`: the computer name the CHALLENGE names (NetBIOS and DNS); `server_challenge`:
    /// 8 random bytes; `timestamp`: now as a FILETIME (100 ns since 1601), sent as
    /// MsvAvTimestamp so that clients add a MIC.
    pub fn new(host: &str, server_challenge: [u8; 8], timestamp: u64) -> Acceptor {
        Acceptor {
            host: host.to_string(),
            server_challenge,
            timestamp,
            state: State::Start,
        }
    }

    /// Takes the client's next token (raw NTLM or SPNEGO) and answers it. A failed step leaves
    /// the acceptor finished: the caller starts over with a new one, as Windows does.
    pub fn step(&mut self, token: &[u8], candidates: &[Candidate]) -> Result<Step, Error> {
        let state = std::mem::replace(&mut self.state, State::Finished);
        match (state, spnego::parse(token)?) {
            (State::Start, Token::Raw(m)) => {
                if messages::message_type(&m)? == 3 {
                    return Err(Error::Unexpected("AUTHENTICATE before NEGOTIATE"));
                }
                let challenge = self.challenge(&m)?;
                self.state = State::AwaitAuthenticate {
                    negotiate: m,
                    challenge: challenge.clone(),
                    mech_types: None,
                    mic_required: false,
                };
                Ok(Step::Continue(challenge))
            }
            (
                State::Start,
                Token::Init {
                    mech_types,
                    ntlm_first,
                    ntlm_offered,
                    mech_token,
                },
            ) => match mech_token {
                Some(m) if ntlm_first => {
                    let challenge = self.challenge(&m)?;
                    let out = spnego::encode_resp(
                        NegState::AcceptIncomplete,
                        true,
                        Some(&challenge),
                        None,
                    );
                    self.state = State::AwaitAuthenticate {
                        negotiate: m,
                        challenge,
                        mech_types: Some(mech_types),
                        mic_required: false,
                    };
                    Ok(Step::Continue(out))
                }
                _ if ntlm_offered => {
                    // Kerberos (or another mechanism) preferred: counter-propose NTLM and ask
                    // for the mechListMIC that protects the downgrade (RFC 4178 5).
                    self.state = State::AwaitNegotiate { mech_types };
                    Ok(Step::Continue(spnego::encode_resp(
                        NegState::RequestMic,
                        true,
                        None,
                        None,
                    )))
                }
                _ => Err(Error::Unsupported(
                    "SPNEGO without NTLM among its mechanisms",
                )),
            },
            (State::AwaitNegotiate { mech_types }, Token::Resp { token: Some(m), .. }) => {
                let challenge = self.challenge(&m)?;
                let out =
                    spnego::encode_resp(NegState::AcceptIncomplete, false, Some(&challenge), None);
                self.state = State::AwaitAuthenticate {
                    negotiate: m,
                    challenge,
                    mech_types: Some(mech_types),
                    mic_required: true,
                };
                Ok(Step::Continue(out))
            }
            (
                State::AwaitAuthenticate {
                    negotiate,
                    challenge,
                    mech_types: None,
                    ..
                },
                Token::Raw(m),
            ) => {
                let (session, candidate, user, domain) =
                    self.verify(&negotiate, &challenge, &m, candidates)?;
                Ok(Step::Done {
                    session: Box::new(session),
                    candidate,
                    user,
                    domain,
                    token: None,
                })
            }
            (
                State::AwaitAuthenticate {
                    negotiate,
                    challenge,
                    mech_types: Some(mech_types),
                    mic_required,
                },
                Token::Resp {
                    token: Some(m),
                    mic,
                    ..
                },
            ) => {
                if mic_required && mic.is_none() {
                    // The downgrade from the initiator's preferred mechanism must be protected.
                    return Err(Error::BadMic);
                }
                let (mut session, candidate, user, domain) =
                    self.verify(&negotiate, &challenge, &m, candidates)?;
                // mechListMIC: verify the client's, send ours; after each, that direction's
                // RC4 stream restarts while its sequence number runs on (what Windows and
                // pyspnego do; MS-SPNG 3.3.5.1 leaves the reset to the mechanism).
                let our_mic = match mic {
                    Some(their) => {
                        session.verify(&mech_types, &their)?;
                        session.reset_in();
                        let ours = session.sign(&mech_types);
                        session.reset_out();
                        Some(ours)
                    }
                    None => None,
                };
                Ok(Step::Done {
                    session: Box::new(session),
                    candidate,
                    user,
                    domain,
                    token: Some(spnego::encode_resp(
                        NegState::AcceptCompleted,
                        false,
                        None,
                        our_mic.as_ref().map(|m| &m[..]),
                    )),
                })
            }
            _ => Err(Error::Unexpected("token out of sequence")),
        }
    }

    fn challenge(&self, negotiate: &[u8]) -> Result<Vec<u8>, Error> {
        let client = messages::parse_negotiate(negotiate)?;
        if client & flags::UNICODE == 0 {
            return Err(Error::Unsupported("OEM strings"));
        }
        if client & flags::EXTENDED_SESSION_SECURITY == 0 {
            return Err(Error::Unsupported("NTLM without extended session security"));
        }
        let fl = (client & ECHOED) | flags::NTLM | flags::TARGET_INFO | flags::TARGET_TYPE_SERVER;
        let nb = utf16le(&self.host.to_uppercase());
        let dns = utf16le(&self.host.to_lowercase());
        // A stand-alone server: its own name is its domain (a workgroup machine's NetBIOS
        // domain is its computer name).
        let info = messages::encode_av_pairs(&[
            (av::NB_DOMAIN_NAME, nb.clone()),
            (av::NB_COMPUTER_NAME, nb.clone()),
            (av::DNS_DOMAIN_NAME, dns.clone()),
            (av::DNS_COMPUTER_NAME, dns),
            (av::TIMESTAMP, self.timestamp.to_le_bytes().to_vec()),
        ]);
        Ok(messages::build_challenge(
            fl,
            &self.server_challenge,
            &nb,
            &info,
        ))
    }

    /// Checks the NTLMv2 proof against every candidate (the same work whatever the user name:
    /// a wrong user and a wrong password cannot be told apart by timing), then the MIC.
    fn verify(
        &self,
        negotiate: &[u8],
        challenge: &[u8],
        auth_bytes: &[u8],
        candidates: &[Candidate],
    ) -> Result<(Session, usize, String, String), Error> {
        if auth_bytes.len() > MAX_TOKEN {
            return Err(Error::TooLarge("AUTHENTICATE"));
        }
        let auth = messages::parse_authenticate(auth_bytes)?;
        // NTLMv1 responses are 24 bytes; NTLMv2 ones are NTProofStr (16) + a blob of at
        // least 28. NTLMv1 is not offered, as on a hardened Windows host.
        if auth.nt_response.len() < 16 + 28 || auth.user.is_empty() {
            return Err(Error::LogonFailure);
        }
        let (proof, temp) = auth.nt_response.split_at(16);
        let dummy = [Candidate {
            user: String::new(),
            nt_hash: [0; 16],
        }];
        let list = if candidates.is_empty() {
            &dummy[..]
        } else {
            candidates
        };
        let mut found: Option<(usize, [u8; 16])> = None;
        for (i, c) in list.iter().enumerate() {
            let key = ntowfv2(&c.nt_hash, &auth.user, &auth.domain);
            let ok = bool::from(nt_proof(&key, &self.server_challenge, temp).ct_eq(proof))
                & c.name_matches(&auth.user)
                & !candidates.is_empty();
            if ok && found.is_none() {
                found = Some((i, key));
            }
        }
        let (index, key) = found.ok_or(Error::LogonFailure)?;
        let base = hmac_md5(&key, &[proof]);
        let exported: [u8; 16] =
            if auth.flags & flags::KEY_EXCH != 0 && auth.flags & (flags::SIGN | flags::SEAL) != 0 {
                let k = rc4k(&base, &auth.encrypted_session_key);
                k.as_slice()
                    .try_into()
                    .map_err(|_| Error::Unexpected("EncryptedRandomSessionKey is not 16 bytes"))?
            } else {
                base
            };
        // The client's AV pairs sit after the blob's 28-byte fixed part.
        let client_av = messages::decode_av_pairs(temp.get(28..).unwrap_or(&[]))?;
        let mic_flag = client_av
            .iter()
            .find(|(id, _)| *id == av::FLAGS)
            .and_then(|(_, v)| v.get(..4))
            .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
            .unwrap_or(0);
        if mic_flag & AV_FLAG_MIC != 0 {
            let their = auth.mic.ok_or(Error::BadMic)?;
            let mut zeroed = auth_bytes.to_vec();
            if let Some(m) = zeroed.get_mut(MIC_OFFSET..MIC_OFFSET + 16) {
                m.fill(0);
            }
            let ours = hmac_md5(&exported, &[negotiate, challenge, &zeroed]);
            if !bool::from(ours.ct_eq(&their)) {
                return Err(Error::BadMic);
            }
        }
        let session = Session::new(&exported, auth.flags, false)?;
        Ok((session, index, auth.user, auth.domain))
    }
}
