//! [`KeySlab`] (and [`FpSlab`], keyed by fingerprint): values stored densely, each with
//! a small "hot" companion kept in the index itself.
//!
//! A `HashMap<Fingerprint, V>` with a large `V` moves every value when it grows (and
//! faults in a whole new table). The slab keeps values in fixed-size chunks that never
//! move (growth allocates one more chunk: no copy, no page touched twice), and the map
//! holds only a 4-byte position plus the small `H` the hot path reads (for the engine:
//! status, content hash, last seen), so a re-send is answered by one probe of a compact
//! table and a new key costs one insert. Removal is swap-remove plus one position
//! fix-up: O(1), order not kept.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;

use super::group::IndexBuild;
use crate::model::Fingerprint;

/// Values per chunk (a power of two).
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

#[derive(Debug, Clone, Copy)]
struct Slot<H> {
    pos: u32,
    hot: H,
}

/// Values keyed by a 64-bit id (already a hash: fingerprints, group hashes) in
/// never-moving chunks, with a key → (position, hot part) map.
#[derive(Debug, Clone)]
pub struct KeySlab<K, V, H = ()> {
    index: HashMap<K, Slot<H>, IndexBuild>,
    keys: Vec<K>,
    chunks: Vec<Vec<V>>,
}

/// A [`KeySlab`] keyed by fingerprint.
pub type FpSlab<V, H = ()> = KeySlab<Fingerprint, V, H>;

impl<K, V, H> Default for KeySlab<K, V, H> {
    fn default() -> Self {
        KeySlab {
            index: HashMap::default(),
            keys: Vec::new(),
            chunks: Vec::new(),
        }
    }
}

impl<K: Copy + Eq + Hash, V, H: Copy> KeySlab<K, V, H> {
    /// Number of values.
    #[inline]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `fp` has a value.
    #[inline]
    pub fn contains_key(&self, fp: &K) -> bool {
        self.index.contains_key(fp)
    }

    #[inline]
    fn at(&self, pos: u32) -> Option<&V> {
        let p = pos as usize;
        self.chunks.get(p >> CHUNK_BITS)?.get(p & (CHUNK - 1))
    }

    #[inline]
    fn at_mut(&mut self, pos: u32) -> Option<&mut V> {
        let p = pos as usize;
        self.chunks
            .get_mut(p >> CHUNK_BITS)?
            .get_mut(p & (CHUNK - 1))
    }

    /// The value for `fp`.
    #[inline]
    pub fn get(&self, fp: &K) -> Option<&V> {
        let s = self.index.get(fp)?;
        self.at(s.pos)
    }

    /// The value for `fp`, mutably.
    #[inline]
    pub fn get_mut(&mut self, fp: &K) -> Option<&mut V> {
        let pos = self.index.get(fp)?.pos;
        self.at_mut(pos)
    }

    /// The hot part for `fp` (one probe of the index, no access to the value).
    #[inline]
    pub fn hot(&self, fp: &K) -> Option<&H> {
        self.index.get(fp).map(|s| &s.hot)
    }

    /// The hot part for `fp`, mutably.
    #[inline]
    pub fn hot_mut(&mut self, fp: &K) -> Option<&mut H> {
        self.index.get_mut(fp).map(|s| &mut s.hot)
    }

    /// Makes room for `additional` more keys without growing: the index is sized once
    /// (no rehash while filling) and the chunk list's own vector too. Chunks themselves
    /// are still allocated one at a time as they fill (memory is only touched when used).
    pub fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
        self.keys.reserve(additional);
        self.chunks.reserve(
            (self.len() + additional)
                .div_ceil(CHUNK)
                .saturating_sub(self.chunks.len()),
        );
    }

    /// Inserts or replaces the value and hot part for `fp`; returns the previous value.
    pub fn insert(&mut self, fp: K, v: V, hot: H) -> Option<V> {
        // One probe of the index for a new key as for a known one.
        // More than u32::MAX live alerts cannot fit in memory anyway; saturate rather
        // than wrap (a saturated position only makes `get` miss).
        let next = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
        match self.index.entry(fp) {
            Entry::Occupied(mut o) => {
                let s = o.get_mut();
                s.hot = hot;
                let pos = s.pos;
                return self.at_mut(pos).map(|slot| std::mem::replace(slot, v));
            }
            Entry::Vacant(e) => {
                e.insert(Slot { pos: next, hot });
            }
        }
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(v),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(v);
                self.chunks.push(c);
            }
        }
        self.keys.push(fp);
        None
    }

    /// Every value, in storage order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.chunks.iter().flatten()
    }

    /// Removes and returns the value for `fp`.
    pub fn remove(&mut self, fp: &K) -> Option<V> {
        let pos = self.index.remove(fp)?.pos;
        let i = pos as usize;
        if i >= self.keys.len() {
            return None;
        }
        // Take the last value out, then swap it into the removed slot.
        let last = self.chunks.last_mut()?.pop()?;
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        self.keys.swap_remove(i);
        if i == self.keys.len() {
            return Some(last);
        }
        let old = std::mem::replace(self.at_mut(pos)?, last);
        if let Some(&moved) = self.keys.get(i)
            && let Some(s) = self.index.get_mut(&moved)
        {
            s.pos = pos;
        }
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_keep_positions_consistent() {
        let mut s: FpSlab<u64, u8> = FpSlab::default();
        let n = 3 * CHUNK as u64 + 7; // spans several chunks
        for i in 0..n {
            assert_eq!(s.insert(Fingerprint(i), i * 10, (i % 7) as u8), None);
        }
        assert_eq!(s.insert(Fingerprint(5), 55, 99), Some(50));
        assert_eq!(s.hot(&Fingerprint(5)), Some(&99));
        assert_eq!(s.len(), n as usize);
        // Remove from the front, middle, a chunk boundary and the end; the swapped-in
        // values stay reachable with their hot parts.
        let gone = [0u64, 42, CHUNK as u64, n - 1, 1];
        for i in gone {
            let want = if i == 5 { 55 } else { i * 10 };
            assert_eq!(s.remove(&Fingerprint(i)), Some(want));
            assert!(!s.contains_key(&Fingerprint(i)));
            assert_eq!(s.remove(&Fingerprint(i)), None);
        }
        assert_eq!(s.len(), n as usize - gone.len());
        for i in 0..n {
            let want = if gone.contains(&i) {
                None
            } else if i == 5 {
                Some(55)
            } else {
                Some(i * 10)
            };
            assert_eq!(s.get(&Fingerprint(i)).copied(), want, "fingerprint {i}");
            if want.is_some() && i != 5 {
                assert_eq!(s.hot(&Fingerprint(i)), Some(&((i % 7) as u8)));
            }
        }
        if let Some(v) = s.get_mut(&Fingerprint(98)) {
            *v = 7;
        }
        if let Some(h) = s.hot_mut(&Fingerprint(98)) {
            *h = 3;
        }
        assert_eq!(s.get(&Fingerprint(98)), Some(&7));
        assert_eq!(s.hot(&Fingerprint(98)), Some(&3));
        while let Some(&fp) = s.keys.first() {
            assert!(s.remove(&fp).is_some());
        }
        assert!(s.is_empty());
        assert!(s.chunks.is_empty(), "empty chunks are released");
    }
}
