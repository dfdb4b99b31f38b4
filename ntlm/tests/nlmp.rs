//! MS-NLMP 4.2.4 (NTLMv2 authentication) published values, then both state machines against
//! each other. The 4.2.4 inputs: user "User", domain "Domain", password "Password", server
//! challenge 0123456789abcdef, client challenge aaaaaaaaaaaaaaaa, time 0, random session key
//! 0x55 x 16, AV pairs NetBIOS domain "Domain" and server "Server".

use replica_ntlm::crypto::*;
use replica_ntlm::messages::{av, encode_av_pairs, flags};
use replica_ntlm::{Acceptor, Candidate, Error, Initiator, Session, Step, mime};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
const CLIENT_CHALLENGE: [u8; 8] = [0xaa; 8];
const RANDOM_SESSION_KEY: [u8; 16] = [0x55; 16];

fn response_key() -> [u8; 16] {
    ntowfv2(&nt_hash("Password"), "User", "Domain")
}

fn temp() -> Vec<u8> {
    let pairs = encode_av_pairs(&[
        (av::NB_DOMAIN_NAME, utf16le("Domain")),
        (av::NB_COMPUTER_NAME, utf16le("Server")),
    ]);
    ntlmv2_temp(0, &CLIENT_CHALLENGE, &pairs)
}

#[test]
fn ntowfv2_matches_4_2_4_1_1() {
    assert_eq!(
        response_key().to_vec(),
        hex("0c868a403bfd7a93a3001ef22ef02e3f")
    );
}

#[test]
fn temp_matches_4_2_4_2_2() {
    assert_eq!(
        temp(),
        hex("0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa 00000000
             02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000
             00000000")
    );
}

#[test]
fn responses_and_keys_match_4_2_4() {
    let key = response_key();
    let proof = nt_proof(&key, &SERVER_CHALLENGE, &temp());
    // 4.2.4.2.2 NTLMv2 response: NTProofStr.
    assert_eq!(proof.to_vec(), hex("68cd0ab851e51c96aabc927bebef6a1c"));
    // 4.2.4.2.1 LMv2 response.
    assert_eq!(
        lmv2_response(&key, &SERVER_CHALLENGE, &CLIENT_CHALLENGE).to_vec(),
        hex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa")
    );
    // 4.2.4.1.2 session base key; 4.2.4.2.3 encrypted session key.
    let base = hmac_md5(&key, &[&proof]);
    assert_eq!(base.to_vec(), hex("8de40ccadbc14a82f15cb0ad0de95ca3"));
    assert_eq!(
        rc4k(&base, &RANDOM_SESSION_KEY),
        hex("c5dad2544fc9799094ce1ce90bc9d03e")
    );
}

#[test]
fn sign_and_seal_keys_match_pyspnego_vectors() {
    // MS-NLMP gives no key values for 4.2.4; these are the ones pyspnego's test suite checks
    // (tests/_ntlm_raw/test_crypto.py), a third-party oracle tested against Windows.
    let f = flags::EXTENDED_SESSION_SECURITY | flags::KEY_128;
    assert_eq!(
        seal_key(&RANDOM_SESSION_KEY, f, true).to_vec(),
        hex("59f600973cc4960a25480a7c196e4c58")
    );
    assert_eq!(
        seal_key(&RANDOM_SESSION_KEY, f, false).to_vec(),
        hex("9355f3a957c1583d25c4c2f11e40390e")
    );
    assert_eq!(
        sign_key(&RANDOM_SESSION_KEY, true).to_vec(),
        hex("4788dc861b4782f35d43fd98fe1a2d39")
    );
    assert_eq!(
        sign_key(&RANDOM_SESSION_KEY, false).to_vec(),
        hex("d04d6f10741041d1d246d64188d7a8ad")
    );
}

#[test]
fn seal_matches_4_2_4_4() {
    let f = flags::SEAL
        | flags::SIGN
        | flags::EXTENDED_SESSION_SECURITY
        | flags::KEY_EXCH
        | flags::KEY_128;
    let mut client = Session::new(&RANDOM_SESSION_KEY, f, true).unwrap();
    let mut msg = utf16le("Plaintext");
    let sig = client.seal(&mut msg);
    assert_eq!(msg, hex("54e50165bf1936dc996020c1811b0f06fb5f"));
    assert_eq!(sig.to_vec(), hex("010000007fb38ec5c55d497600000000"));
    // And the server opens it.
    let mut server = Session::new(&RANDOM_SESSION_KEY, f, false).unwrap();
    server.unseal(&mut msg, &sig).unwrap();
    assert_eq!(msg, utf16le("Plaintext"));
}

fn users() -> Vec<Candidate> {
    vec![
        Candidate::new("admin", "admin"),
        Candidate::new("Reader", "s3cret"),
    ]
}

/// Runs a handshake; returns both sessions and the matched index.
fn handshake(user: &str, pass: &str, spnego: bool) -> Result<(Session, Session, usize), Error> {
    let mut client = Initiator::new(user, pass, spnego);
    let mut server = Acceptor::new("hv-01", [7; 8], 133_000_000_000_000_000);
    let challenge = match server.step(&client.first(), &users())? {
        Step::Continue(t) => t,
        Step::Done { .. } => panic!("done after one token"),
    };
    let auth = client.second(&challenge, [9; 8], [3; 16])?;
    match server.step(&auth, &users())? {
        Step::Done {
            session,
            candidate,
            token,
            ..
        } => {
            let c = client.finish(token.as_deref())?;
            Ok((c, *session, candidate))
        }
        Step::Continue(_) => panic!("not done after AUTHENTICATE"),
    }
}

#[test]
fn raw_and_spnego_handshakes_authenticate_and_encrypt_both_ways() {
    for spnego in [false, true] {
        let (mut c, mut s, i) = handshake("ADMIN", "admin", spnego).unwrap();
        assert_eq!(i, 0);
        for n in 0..3 {
            let req = format!("<s:Envelope>request {n}</s:Envelope>");
            let body = mime::encrypt(&mut c, req.as_bytes());
            assert_eq!(mime::decrypt(&mut s, &body).unwrap(), req.as_bytes());
            let resp = format!("<s:Envelope>response {n}</s:Envelope>");
            let body = mime::encrypt(&mut s, resp.as_bytes());
            assert_eq!(mime::decrypt(&mut c, &body).unwrap(), resp.as_bytes());
        }
    }
}

#[test]
fn any_domain_and_case_insensitive_users_are_accepted() {
    assert_eq!(handshake(r"HV-01\reader", "s3cret", true).unwrap().2, 1);
    assert_eq!(
        handshake(r"WORKGROUP\READER", "s3cret", false).unwrap().2,
        1
    );
}

#[test]
fn wrong_password_and_unknown_user_are_the_same_failure() {
    for spnego in [false, true] {
        assert_eq!(
            handshake("admin", "nope", spnego).err(),
            Some(Error::LogonFailure)
        );
        assert_eq!(
            handshake("nobody", "admin", spnego).err(),
            Some(Error::LogonFailure)
        );
        // The right password for another user is no good either.
        assert_eq!(
            handshake("admin", "s3cret", spnego).err(),
            Some(Error::LogonFailure)
        );
    }
}

#[test]
fn tampered_messages_are_refused() {
    let (mut c, mut s, _) = handshake("admin", "admin", true).unwrap();
    let mut body = mime::encrypt(&mut c, b"<s:Envelope/>");
    let n = body.len();
    body[n - 30] ^= 1;
    assert!(mime::decrypt(&mut s, &body).is_err());
    // A flipped bit in the AUTHENTICATE message breaks its MIC (or its proof).
    let mut client = Initiator::new("admin", "admin", false);
    let mut server = Acceptor::new("hv-01", [7; 8], 1);
    let Step::Continue(ch) = server.step(&client.first(), &users()).unwrap() else {
        panic!()
    };
    let mut auth = client.second(&ch, [9; 8], [3; 16]).unwrap();
    auth[60] ^= 0x10; // a flag bit: covered only by the MIC
    assert_eq!(server.step(&auth, &users()).err(), Some(Error::BadMic));
}

#[test]
fn truncated_and_garbage_tokens_are_errors_not_panics() {
    let mut client = Initiator::new("admin", "admin", true);
    let first = client.first();
    let mut server = Acceptor::new("hv-01", [7; 8], 1);
    let Step::Continue(ch) = server.step(&first, &users()).unwrap() else {
        panic!()
    };
    let auth = client.second(&ch, [9; 8], [3; 16]).unwrap();
    for token in [&first, &ch, &auth] {
        for cut in 0..token.len() {
            let mut a = Acceptor::new("hv-01", [7; 8], 1);
            let _ = a.step(&token[..cut], &users());
            let _ = replica_ntlm::spnego::parse(&token[..cut]);
            let _ = replica_ntlm::messages::parse_authenticate(&token[..cut]);
            let _ = replica_ntlm::messages::parse_challenge(&token[..cut]);
        }
    }
    let (_, mut s, _) = handshake("admin", "admin", false).unwrap();
    let (mut c2, _, _) = handshake("admin", "admin", false).unwrap();
    let body = mime::encrypt(&mut c2, b"<x/>");
    // Up to the closing boundary's CRLF, which is tolerated when missing.
    for cut in 0..body.len() - 2 {
        assert!(mime::decrypt(&mut s, &body[..cut]).is_err());
    }
}

#[test]
fn spnego_with_kerberos_preferred_falls_back_to_ntlm_with_a_protected_mech_list() {
    use replica_ntlm::spnego::{self, NTLM_OID, Token};
    // MechTypeList: Kerberos 5 (1.2.840.113554.1.2.2), then NTLM.
    let kerberos_oid = hex("06092a864886f712010202");
    let mut list = kerberos_oid.clone();
    list.extend_from_slice(NTLM_OID);
    let mut mech_types = vec![0x30, list.len() as u8];
    mech_types.extend(list);
    let init = spnego::encode_init_with(&mech_types, b"an optimistic Kerberos token");
    for with_mic in [true, false] {
        let mut server = Acceptor::new("hv-01", [7; 8], 1);
        // NTLM counter-proposed, mechListMIC requested, no token yet.
        let Step::Continue(resp) = server.step(&init, &users()).unwrap() else {
            panic!()
        };
        assert!(matches!(
            spnego::parse(&resp).unwrap(),
            Token::Resp {
                state: Some(3),
                token: None,
                ..
            }
        ));
        let mut client = Initiator::new("admin", "admin", true);
        client.set_mech_types(mech_types.clone());
        let negotiate =
            replica_ntlm::messages::build_negotiate(replica_ntlm::initiator::CLIENT_FLAGS);
        let Step::Continue(ch) = server
            .step(&spnego::encode_init_resp(Some(&negotiate), None), &users())
            .unwrap()
        else {
            panic!()
        };
        // `negotiate` is byte for byte the initiator's own NEGOTIATE (same flags, same layout),
        // so the AUTHENTICATE's MIC, computed over the initiator's copy, covers what was sent.
        let auth = client.second(&ch, [9; 8], [3; 16]).unwrap();
        let Token::Resp {
            token: Some(a),
            mic,
            ..
        } = spnego::parse(&auth).unwrap()
        else {
            panic!()
        };
        let sent = if with_mic {
            spnego::encode_init_resp(Some(&a), mic.as_deref())
        } else {
            spnego::encode_init_resp(Some(&a), None)
        };
        let outcome = server.step(&sent, &users());
        if with_mic {
            let Ok(Step::Done { token, .. }) = outcome else {
                panic!("{outcome:?}")
            };
            client.finish(token.as_deref()).unwrap();
        } else {
            assert_eq!(outcome.err(), Some(Error::BadMic));
        }
    }
}
