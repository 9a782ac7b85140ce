//! Properties of `selectloop::Interest::from_bits` and the mask operations,
//! shared by the fuzz target and `tests/fuzz_corpus.rs`: on two bytes `a`
//! and `b` (missing ones count as 0),
//! - `from_bits` accepts exactly 1, 2 and 3, round-trips through `bits`
//!   and `u8::from`, agrees with `TryFrom` and `from_flags`, and refuses the
//!   rest with `Error::InvalidEvents` carrying the bits;
//! - `|`, `contains`, `intersection` and `remove` are the bit operations
//!   (an empty result is `None`), and `Debug` names the events.

use selectloop::{Error, Interest, EVENT_READ, EVENT_WRITE};

fn interest(bits: u8) -> Option<Interest> {
    let parsed = Interest::from_bits(bits);
    let valid = (1..=3).contains(&bits);
    match &parsed {
        Ok(i) => {
            assert!(valid, "{bits} accepted");
            assert_eq!(i.bits(), bits);
            assert_eq!(u8::from(*i), bits);
            assert_eq!(i.is_readable(), bits & 1 != 0);
            assert_eq!(i.is_writable(), bits & 2 != 0);
            assert_eq!(
                Interest::from_flags(i.is_readable(), i.is_writable()),
                Some(*i)
            );
            let name = match bits {
                1 => "EVENT_READ",
                2 => "EVENT_WRITE",
                _ => "EVENT_READ | EVENT_WRITE",
            };
            assert_eq!(format!("{i:?}"), name);
        }
        Err(Error::InvalidEvents { bits: b }) => {
            assert!(!valid, "{bits} refused");
            assert_eq!(*b, bits);
        }
        Err(e) => panic!("{bits}: unexpected error {e:?}"),
    }
    assert_eq!(Interest::try_from(bits).ok(), parsed.as_ref().ok().copied());
    parsed.ok()
}

pub fn check(data: &[u8]) {
    let a = data.first().copied().unwrap_or(0);
    let b = data.get(1).copied().unwrap_or(0);
    let (Some(x), Some(y)) = (interest(a), interest(b)) else {
        return;
    };
    assert_eq!((x | y).bits(), a | b);
    assert_eq!(x.contains(y), a & b == b);
    assert_eq!(
        x.intersection(y).map(Interest::bits),
        Some(a & b).filter(|&m| m != 0)
    );
    assert_eq!(
        x.remove(y).map(Interest::bits),
        Some(a & !b).filter(|&m| m != 0)
    );
    assert!((x | y).contains(x) && (x | y).contains(y));
    assert!((EVENT_READ | EVENT_WRITE).contains(x));
}
