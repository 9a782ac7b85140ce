//! Event masks: [`EVENT_READ`], [`EVENT_WRITE`] and their union.
//!
//! ```
//! use selectloop::{Interest, EVENT_READ, EVENT_WRITE};
//!
//! let both = EVENT_READ | EVENT_WRITE;
//! assert!(both.is_readable() && both.is_writable());
//! assert!(both.contains(EVENT_WRITE));
//! assert_eq!(Interest::from_bits(1)?, EVENT_READ);
//! assert!(Interest::from_bits(0).is_err()); // empty masks are refused
//! # Ok::<(), selectloop::Error>(())
//! ```

use std::fmt;
use std::ops::BitOr;

use crate::Error;

/// A non-empty set of I/O events: readable, writable or both.
///
/// This is Python's `events` / `mask` integer made into a type. It is never
/// empty, so a value of this type is always a valid argument to
/// `register` and `modify`; bits from outside (an integer from a config
/// file, say) go through [`Interest::from_bits`], which refuses empty and
/// unknown masks with [`Error::InvalidEvents`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

/// The file object is ready for reading (Python's `selectors.EVENT_READ`, `1`).
///
/// Also reported on end of stream, on a hang-up and on a pending socket
/// error, since a read then returns without blocking.
pub const EVENT_READ: Interest = Interest(1);

/// The file object is ready for writing (Python's `selectors.EVENT_WRITE`, `2`).
///
/// Also reported on a hang-up and on a pending socket error, since a write
/// then returns (an error) without blocking.
pub const EVENT_WRITE: Interest = Interest(2);

const ALL: u8 = EVENT_READ.0 | EVENT_WRITE.0;

impl Interest {
    /// Readable only; the same value as [`EVENT_READ`].
    pub const READ: Interest = EVENT_READ;
    /// Writable only; the same value as [`EVENT_WRITE`].
    pub const WRITE: Interest = EVENT_WRITE;
    /// Readable and writable.
    pub const BOTH: Interest = Interest(ALL);

    /// Builds a mask from Python's integer encoding (`1` read, `2` write, `3` both).
    ///
    /// # Errors
    /// - [`Error::InvalidEvents`] if `bits` is `0` or has a bit other than `1` and `2`.
    ///
    /// # Examples
    /// ```
    /// use selectloop::{Error, Interest, EVENT_READ, EVENT_WRITE};
    /// assert_eq!(Interest::from_bits(3)?, EVENT_READ | EVENT_WRITE);
    /// assert!(matches!(Interest::from_bits(4), Err(Error::InvalidEvents { bits: 4 })));
    /// # Ok::<(), Error>(())
    /// ```
    pub const fn from_bits(bits: u8) -> Result<Interest, Error> {
        if bits == 0 || bits & !ALL != 0 {
            Err(Error::InvalidEvents { bits })
        } else {
            Ok(Interest(bits))
        }
    }

    /// Builds a mask from two flags; `None` when both are false.
    pub const fn from_flags(readable: bool, writable: bool) -> Option<Interest> {
        match (readable, writable) {
            (false, false) => None,
            (true, false) => Some(EVENT_READ),
            (false, true) => Some(EVENT_WRITE),
            (true, true) => Some(Interest::BOTH),
        }
    }

    /// Python's integer encoding of this mask: `1`, `2` or `3`.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True if every event in `other` is in `self`.
    pub const fn contains(self, other: Interest) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if [`EVENT_READ`] is in the mask.
    pub const fn is_readable(self) -> bool {
        self.0 & EVENT_READ.0 != 0
    }

    /// True if [`EVENT_WRITE`] is in the mask.
    pub const fn is_writable(self) -> bool {
        self.0 & EVENT_WRITE.0 != 0
    }

    /// The events in both masks, or `None` if they share none.
    ///
    /// ```
    /// use selectloop::{EVENT_READ, EVENT_WRITE};
    /// assert_eq!((EVENT_READ | EVENT_WRITE).intersection(EVENT_READ), Some(EVENT_READ));
    /// assert_eq!(EVENT_READ.intersection(EVENT_WRITE), None);
    /// ```
    pub const fn intersection(self, other: Interest) -> Option<Interest> {
        let bits = self.0 & other.0;
        if bits == 0 {
            None
        } else {
            Some(Interest(bits))
        }
    }

    /// The events of `self` that are not in `other`, or `None` if none are left.
    ///
    /// ```
    /// use selectloop::{EVENT_READ, EVENT_WRITE};
    /// assert_eq!((EVENT_READ | EVENT_WRITE).remove(EVENT_WRITE), Some(EVENT_READ));
    /// assert_eq!(EVENT_READ.remove(EVENT_READ), None);
    /// ```
    pub const fn remove(self, other: Interest) -> Option<Interest> {
        let bits = self.0 & !other.0;
        if bits == 0 {
            None
        } else {
            Some(Interest(bits))
        }
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            1 => "EVENT_READ",
            2 => "EVENT_WRITE",
            _ => "EVENT_READ | EVENT_WRITE",
        })
    }
}

impl TryFrom<u8> for Interest {
    type Error = Error;
    fn try_from(bits: u8) -> Result<Interest, Error> {
        Interest::from_bits(bits)
    }
}

impl From<Interest> for u8 {
    fn from(interest: Interest) -> u8 {
        interest.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_bits_refuses_empty_and_unknown_masks() {
        for bits in [0u8, 4, 5, 8, 255] {
            assert!(
                matches!(Interest::from_bits(bits), Err(Error::InvalidEvents { bits: b }) if b == bits)
            );
        }
        for bits in 1u8..=3 {
            assert_eq!(Interest::from_bits(bits).unwrap().bits(), bits);
        }
    }

    #[test]
    fn flags_and_set_operations() {
        assert_eq!(Interest::from_flags(false, false), None);
        assert_eq!(Interest::from_flags(true, true), Some(Interest::BOTH));
        assert!(!EVENT_READ.contains(Interest::BOTH));
        assert!(Interest::BOTH.contains(EVENT_READ));
        assert_eq!(
            format!("{:?}", EVENT_READ | EVENT_WRITE),
            "EVENT_READ | EVENT_WRITE"
        );
    }
}
