//! `uuid:` MessageIDs without a uuid crate.
//!
//! Each id is SplitMix64 applied to `seed + counter`: SplitMix64's finaliser is a bijection on
//! u64, so distinct counters give distinct high halves and ids never repeat within one
//! generator. A seed makes a recording's ids repeatable; without one the seed comes from the
//! OS-seeded thread RNG so that two runs (or two clients) do not collide.

use std::sync::atomic::{AtomicU64, Ordering};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug)]
pub struct MessageIdGen {
    seed: u64,
    counter: AtomicU64,
}

impl MessageIdGen {
    pub fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            use rand::Rng as _;
            rand::rng().next_u64()
        });
        MessageIdGen {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    /// Next id, `uuid:XXXXXXXX-XXXX-4XXX-YXXX-XXXXXXXXXXXX` in upper case as winrm.exe writes
    /// it, with the RFC 4122 version-4 and variant bits set so strict parsers accept it.
    pub fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let hi = mix(self
            .seed
            .wrapping_add(n.wrapping_mul(2).wrapping_mul(GOLDEN)));
        let lo = mix(self
            .seed
            .wrapping_add(n.wrapping_mul(2).wrapping_add(1).wrapping_mul(GOLDEN)));
        // The uuid crate sets the version and variant bits and writes the text.
        let id =
            uuid::Builder::from_random_bytes((u128::from(hi) << 64 | u128::from(lo)).to_be_bytes())
                .into_uuid();
        format!(
            "uuid:{}",
            id.hyphenated()
                .encode_upper(&mut uuid::Uuid::encode_buffer())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn format_and_uniqueness() {
        let g = MessageIdGen::new(None);
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let id = g.next_id();
            assert_eq!(id.len(), 41, "{id}");
            let guid = id.strip_prefix("uuid:").expect("uuid: prefix");
            let parts: Vec<&str> = guid.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(
                guid.chars()
                    .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase())
            );
            assert!(parts[2].starts_with('4'));
            assert!(matches!(
                parts[3].chars().next(),
                Some('8' | '9' | 'A' | 'B')
            ));
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn seeded_is_repeatable() {
        let a = MessageIdGen::new(Some(7));
        let b = MessageIdGen::new(Some(7));
        assert_eq!(a.next_id(), b.next_id());
        assert_ne!(a.next_id(), MessageIdGen::new(Some(8)).next_id());
    }
}
