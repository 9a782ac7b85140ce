//! [`FdTable`]: which slot each registered descriptor is in, without hashing.
//!
//! Descriptors are small integers on Unix (the kernel hands out the lowest
//! free number), so the table is a dense `Vec` indexed by the descriptor
//! number: a lookup is a bounds check and a load. The vector grows on demand
//! up to [`DENSE_LIMIT`] entries (4 bytes each). Any other value (a Windows
//! `SOCKET` handle above the limit, say) goes to a `HashMap` on the side,
//! which costs nothing while it is empty: no `cfg` is needed, the table
//! simply never uses its map where descriptors stay small.
//!
//! Measured with callgrind on Linux: one loop of `get_key` over 500
//! registered descriptors, built against 0.1 (a SipHash `HashMap`) and
//! against this table, takes 123 and 49 user instructions per lookup
//! (release; the loop's own share included). `bench/run-get-key` measures
//! it on the current tree (32 per lookup in the bench suite's build).

use std::collections::HashMap;

use crate::Fd;

/// Descriptors below this number live in the dense vector (at most 16 MiB
/// of it); larger ones in the map.
pub(crate) const DENSE_LIMIT: usize = 1 << 22;

/// A dense entry with no slot.
const EMPTY: u32 = u32::MAX;

/// A map from registered descriptor to slot.
#[derive(Debug, Default)]
pub(crate) struct FdTable {
    /// `dense[fd]` is the slot of descriptor `fd`, or [`EMPTY`].
    dense: Vec<u32>,
    /// Descriptors (or slots) too large for `dense`.
    sparse: HashMap<Fd, usize>,
    len: usize,
}

/// Where `fd` lives in the dense vector, if it can.
#[inline]
fn dense_index(fd: Fd) -> Option<usize> {
    usize::try_from(fd).ok().filter(|&i| i < DENSE_LIMIT)
}

impl FdTable {
    pub(crate) fn new() -> FdTable {
        FdTable::default()
    }

    /// The slot of `fd`, if registered.
    #[inline]
    pub(crate) fn get(&self, fd: Fd) -> Option<usize> {
        if let Some(&slot) = dense_index(fd).and_then(|i| self.dense.get(i)) {
            if slot != EMPTY {
                return Some(slot as usize);
            }
        }
        if self.sparse.is_empty() {
            None
        } else {
            self.sparse.get(&fd).copied()
        }
    }

    /// True if `fd` is registered.
    #[inline]
    pub(crate) fn contains(&self, fd: Fd) -> bool {
        self.get(fd).is_some()
    }

    /// Records `fd` in `slot`; returns the slot it was in before, if any.
    pub(crate) fn insert(&mut self, fd: Fd, slot: usize) -> Option<usize> {
        let old = self.remove(fd);
        match (dense_index(fd), u32::try_from(slot)) {
            (Some(i), Ok(slot)) if slot != EMPTY => {
                if self.dense.len() <= i {
                    self.dense.resize(i + 1, EMPTY);
                }
                self.dense[i] = slot;
            }
            _ => {
                self.sparse.insert(fd, slot);
            }
        }
        self.len += 1;
        old
    }

    /// Forgets `fd`; returns its slot, if it was registered.
    pub(crate) fn remove(&mut self, fd: Fd) -> Option<usize> {
        let dense = dense_index(fd)
            .and_then(|i| self.dense.get_mut(i))
            .filter(|slot| **slot != EMPTY)
            .map(|slot| std::mem::replace(slot, EMPTY) as usize);
        let removed = dense.or_else(|| {
            if self.sparse.is_empty() {
                None
            } else {
                self.sparse.remove(&fd)
            }
        });
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// How many descriptors are recorded.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Forgets everything and releases the memory.
    pub(crate) fn clear(&mut self) {
        *self = FdTable::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Fd` from a small number, on every platform (`RawFd` is `i32` on
    /// Unix, `RawSocket` is `u64` on Windows).
    fn fd(n: u32) -> Fd {
        Fd::try_from(n).expect("fits")
    }

    #[test]
    fn insert_get_remove() {
        let mut t = FdTable::new();
        assert_eq!(t.get(fd(3)), None);
        assert_eq!(t.insert(fd(3), 0), None);
        assert_eq!(t.insert(fd(7), 1), None);
        assert_eq!((t.get(fd(3)), t.get(fd(7))), (Some(0), Some(1)));
        assert!(t.contains(fd(7)) && !t.contains(fd(4)) && !t.contains(fd(1000)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(fd(3)), Some(0));
        assert_eq!(t.remove(fd(3)), None);
        assert_eq!(t.get(fd(3)), None);
        assert_eq!(t.len(), 1);
        // Nothing was hashed.
        assert!(t.sparse.is_empty());
    }

    #[test]
    fn reuse_of_a_number_and_of_a_slot() {
        let mut t = FdTable::new();
        t.insert(fd(5), 0);
        assert_eq!(t.remove(fd(5)), Some(0));
        // The same number again, in another slot, then another number in the old slot.
        assert_eq!(t.insert(fd(5), 3), None);
        assert_eq!(t.insert(fd(6), 0), None);
        assert_eq!((t.get(fd(5)), t.get(fd(6))), (Some(3), Some(0)));
        // Re-inserting a recorded number moves it and says where it was.
        assert_eq!(t.insert(fd(5), 9), Some(3));
        assert_eq!(t.get(fd(5)), Some(9));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn large_values_go_to_the_map() {
        let mut t = FdTable::new();
        let big = fd(u32::try_from(DENSE_LIMIT).unwrap());
        let huge = fd(0x7fff_ffff); // i32::MAX: the largest on every platform
        t.insert(fd(1), 0);
        t.insert(big, 1);
        t.insert(huge, 2);
        assert_eq!(
            (t.get(fd(1)), t.get(big), t.get(huge)),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!(t.sparse.len(), 2);
        // The dense part did not grow for them.
        assert!(t.dense.len() < 64);
        assert_eq!(t.len(), 3);
        assert_eq!(t.remove(big), Some(1));
        assert_eq!(t.get(big), None);
        assert_eq!(t.remove(huge), Some(2));
        assert!(t.sparse.is_empty());
        assert_eq!(t.len(), 1);
        // The largest dense number stays dense.
        let top = fd(u32::try_from(DENSE_LIMIT - 1).unwrap());
        t.insert(top, 4);
        assert_eq!(t.get(top), Some(4));
        assert!(t.sparse.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn negative_values_are_never_found_in_the_vector() {
        let mut t = FdTable::new();
        t.insert(0, 0);
        assert_eq!(t.get(-1), None);
        t.insert(-1, 1);
        assert_eq!((t.get(-1), t.get(0)), (Some(1), Some(0)));
        assert_eq!(t.sparse.len(), 1);
        assert_eq!(t.remove(-1), Some(1));
    }

    #[test]
    fn a_slot_too_large_for_the_vector_goes_to_the_map() {
        let mut t = FdTable::new();
        let slot = u32::MAX as usize; // the vector's "empty" marker
        t.insert(fd(2), slot);
        assert_eq!(t.get(fd(2)), Some(slot));
        assert_eq!(t.sparse.len(), 1);
        assert_eq!(t.remove(fd(2)), Some(slot));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn grows_on_demand_and_clear_releases() {
        let mut t = FdTable::new();
        for n in (0..10_000).rev() {
            t.insert(fd(n), n as usize);
        }
        assert_eq!(t.len(), 10_000);
        assert!((0..10_000).all(|n| t.get(fd(n)) == Some(n as usize)));
        assert_eq!(t.dense.len(), 10_000);
        t.clear();
        assert_eq!((t.len(), t.dense.capacity()), (0, 0));
        assert_eq!(t.get(fd(42)), None);
    }
}
