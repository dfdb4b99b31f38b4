//! Whatever a client sends, the acceptor and the unsealer answer with a value or an error,
//! never a panic: random bytes, and valid tokens with random bytes changed.

use proptest::prelude::*;
use replica_ntlm::{Acceptor, Candidate, Initiator, Step, mime, spnego};

fn valid_tokens() -> (Vec<u8>, Vec<u8>) {
    let mut client = Initiator::new("admin", "admin", true);
    let first = client.first();
    let mut server = Acceptor::new("hv", [1; 8], 2);
    let users = [Candidate::new("admin", "admin")];
    let Ok(Step::Continue(ch)) = server.step(&first, &users) else {
        panic!("no challenge")
    };
    let auth = client.second(&ch, [3; 8], [4; 16]).expect("authenticate");
    (first, auth)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(a in proptest::collection::vec(any::<u8>(), 0..600),
                                b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let users = [Candidate::new("admin", "admin")];
        let mut server = Acceptor::new("hv", [1; 8], 2);
        let _ = server.step(&a, &users);
        let _ = server.step(&b, &users);
        let _ = spnego::parse(&a);
        let mut s = replica_ntlm::Session::new(&[7; 16], 0xe208_8235, false).expect("session");
        let _ = mime::decrypt(&mut s, &a);
    }

    #[test]
    fn mutated_valid_tokens_never_panic(i in 0usize..400, j in 0usize..400, x in any::<u8>(), y in any::<u8>()) {
        let (mut first, mut auth) = valid_tokens();
        let n = first.len();
        first[i % n] ^= x;
        let n = auth.len();
        auth[j % n] ^= y;
        let users = [Candidate::new("admin", "admin")];
        let mut server = Acceptor::new("hv", [1; 8], 2);
        if let Ok(Step::Continue(_)) = server.step(&first, &users) {
            let _ = server.step(&auth, &users);
        }
    }
}
