//! The client side, as the conformance runner uses it: NEGOTIATE, then AUTHENTICATE with an
//! NTLMv2 response, key exchange and a MIC; raw NTLM or inside SPNEGO.

use crate::Error;
use crate::crypto::{hmac_md5, lmv2_response, nt_hash, nt_proof, ntlmv2_temp, ntowfv2, rc4k};
use crate::messages::{self, AV_FLAG_MIC, AuthenticateFields, MIC_OFFSET, av, flags};
use crate::session::Session;
use crate::spnego::{self, Token};

/// The flags the initiator asks for: what pyspnego and Windows clients ask for.
pub const CLIENT_FLAGS: u32 = flags::UNICODE
    | flags::REQUEST_TARGET
    | flags::SIGN
    | flags::SEAL
    | flags::NTLM
    | flags::ALWAYS_SIGN
    | flags::EXTENDED_SESSION_SECURITY
    | flags::VERSION
    | flags::KEY_128
    | flags::KEY_EXCH
    | flags::KEY_56;

/// One NTLM handshake on the initiator side.
pub struct Initiator {
    user: String,
    domain: String,
    password: String,
    spnego: bool,
    negotiate: Vec<u8>,
    session: Option<Session>,
    sent_mic: bool,
    mech_types: Vec<u8>,
}

impl Initiator {
    /// `user` may be `DOMAIN\user`; `spnego` wraps the messages in SPNEGO as Windows'
    /// Negotiate package does (otherwise raw NTLM goes under `Negotiate`, as requests-ntlm
    /// sends it).
    pub fn new(user: &str, password: &str, spnego: bool) -> Initiator {
        let (domain, user) = match user.split_once('\\') {
            Some((d, u)) => (d.to_string(), u.to_string()),
            None => (String::new(), user.to_string()),
        };
        Initiator {
            user,
            domain,
            password: password.to_string(),
            spnego,
            negotiate: messages::build_negotiate(CLIENT_FLAGS),
            session: None,
            sent_mic: false,
            mech_types: spnego::ntlm_mech_types(),
        }
    }

    /// The MechTypeList (DER) the mechListMIC covers, when the NegTokenInit was not this
    /// initiator's own (a client that offered Kerberos first and fell back to NTLM).
    pub fn set_mech_types(&mut self, mech_types: Vec<u8>) {
        self.mech_types = mech_types;
    }

    /// The first token (NEGOTIATE).
    pub fn first(&self) -> Vec<u8> {
        if self.spnego {
            spnego::encode_init(&self.negotiate)
        } else {
            self.negotiate.clone()
        }
    }

    /// Answers the server's CHALLENGE token with AUTHENTICATE. `client_challenge` and
    /// `session_key` must be fresh random bytes.
    pub fn second(
        &mut self,
        token: &[u8],
        client_challenge: [u8; 8],
        session_key: [u8; 16],
    ) -> Result<Vec<u8>, Error> {
        let challenge_bytes = match spnego::parse(token)? {
            Token::Raw(m) if !self.spnego => m,
            Token::Resp { token: Some(m), .. } if self.spnego => m,
            _ => return Err(Error::Unexpected("expected a CHALLENGE token")),
        };
        let ch = messages::parse_challenge(&challenge_bytes)?;
        let fl = ch.flags & CLIENT_FLAGS;
        if fl & flags::EXTENDED_SESSION_SECURITY == 0 || fl & flags::UNICODE == 0 {
            return Err(Error::Unsupported(
                "server refused extended session security",
            ));
        }
        let timestamp = ch
            .target_info
            .iter()
            .find(|(id, _)| *id == av::TIMESTAMP)
            .and_then(|(_, v)| v.get(..8))
            .map(|v| u64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]));
        // With the server's timestamp present the client adds a MIC and says so
        // (MS-NLMP 3.1.5.1.2), and sends a zero LM response.
        let mut pairs: Vec<(u16, Vec<u8>)> = ch
            .target_info
            .iter()
            .filter(|(id, _)| *id != av::FLAGS)
            .cloned()
            .collect();
        if timestamp.is_some() {
            pairs.push((av::FLAGS, AV_FLAG_MIC.to_le_bytes().to_vec()));
        }
        let av_bytes = messages::encode_av_pairs(&pairs);
        let key = ntowfv2(&nt_hash(&self.password), &self.user, &self.domain);
        let temp = ntlmv2_temp(timestamp.unwrap_or(0), &client_challenge, &av_bytes);
        let proof = nt_proof(&key, &ch.server_challenge, &temp);
        let mut nt_response = proof.to_vec();
        nt_response.extend_from_slice(&temp);
        let lm = match timestamp {
            Some(_) => [0u8; 24],
            None => lmv2_response(&key, &ch.server_challenge, &client_challenge),
        };
        let base = hmac_md5(&key, &[&proof]);
        let (exported, encrypted) = if fl & flags::KEY_EXCH != 0 {
            (session_key, rc4k(&base, &session_key))
        } else {
            (base, Vec::new())
        };
        let mut auth = messages::build_authenticate(&AuthenticateFields {
            lm_response: &lm,
            nt_response: &nt_response,
            domain: &self.domain,
            user: &self.user,
            workstation: "",
            encrypted_session_key: &encrypted,
            flags: fl,
        });
        if timestamp.is_some() {
            let mic = hmac_md5(&exported, &[&self.negotiate, &challenge_bytes, &auth]);
            auth[MIC_OFFSET..MIC_OFFSET + 16].copy_from_slice(&mic);
        }
        let mut session = Session::new(&exported, fl, true)?;
        let out = if self.spnego {
            let mic = session.sign(&self.mech_types);
            session.reset_out();
            self.sent_mic = true;
            spnego::encode_init_resp(Some(&auth), Some(&mic))
        } else {
            auth
        };
        self.session = Some(session);
        Ok(out)
    }

    /// Takes the server's final token (SPNEGO accept-completed, with its mechListMIC) and
    /// hands over the session.
    pub fn finish(mut self, token: Option<&[u8]>) -> Result<Session, Error> {
        let mut session = self
            .session
            .take()
            .ok_or(Error::Unexpected("finish before second"))?;
        if self.spnego && self.sent_mic {
            let Some(t) = token else {
                return Err(Error::BadMic);
            };
            match spnego::parse(t)? {
                Token::Resp {
                    state: Some(0),
                    mic: Some(mic),
                    ..
                } => {
                    session.verify(&self.mech_types, &mic)?;
                    session.reset_in();
                }
                _ => return Err(Error::BadMic),
            }
        }
        Ok(session)
    }
}
