//! [`FpSlab`]: values keyed by fingerprint, stored densely.
//!
//! A `HashMap<Fingerprint, V>` with a large `V` moves every value when it grows (and
//! faults in a whole new table). The slab keeps values in a `Vec` (grown by `realloc`,
//! which for large blocks remaps pages instead of copying) and the map holds only a
//! 4-byte index, so growth moves a few bytes per entry. Removal is `swap_remove` plus
//! one index fix-up: O(1), order not kept.

use std::collections::HashMap;

use super::group::IdBuild;
use crate::model::Fingerprint;

/// Values keyed by fingerprint in a dense `Vec`, with a fingerprint → index map.
#[derive(Debug, Clone)]
pub struct FpSlab<V> {
    index: HashMap<Fingerprint, u32, IdBuild>,
    keys: Vec<Fingerprint>,
    values: Vec<V>,
}

impl<V> Default for FpSlab<V> {
    fn default() -> Self {
        FpSlab {
            index: HashMap::default(),
            keys: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<V> FpSlab<V> {
    /// Number of values.
    #[inline]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether `fp` has a value.
    #[inline]
    pub fn contains_key(&self, fp: &Fingerprint) -> bool {
        self.index.contains_key(fp)
    }

    /// The value for `fp`.
    #[inline]
    pub fn get(&self, fp: &Fingerprint) -> Option<&V> {
        let &i = self.index.get(fp)?;
        self.values.get(i as usize)
    }

    /// The value for `fp`, mutably.
    #[inline]
    pub fn get_mut(&mut self, fp: &Fingerprint) -> Option<&mut V> {
        let &i = self.index.get(fp)?;
        self.values.get_mut(i as usize)
    }

    /// Inserts or replaces the value for `fp`; returns the previous one.
    pub fn insert(&mut self, fp: Fingerprint, v: V) -> Option<V> {
        if let Some(&i) = self.index.get(&fp)
            && let Some(slot) = self.values.get_mut(i as usize)
        {
            return Some(std::mem::replace(slot, v));
        }
        // More than u32::MAX live alerts cannot fit in memory anyway; saturate rather
        // than wrap (a saturated index only makes `get` miss).
        let i = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.index.insert(fp, i);
        self.keys.push(fp);
        self.values.push(v);
        None
    }

    /// Removes and returns the value for `fp`.
    pub fn remove(&mut self, fp: &Fingerprint) -> Option<V> {
        let i = self.index.remove(fp)? as usize;
        if i >= self.values.len() {
            return None;
        }
        let v = self.values.swap_remove(i);
        self.keys.swap_remove(i);
        if let Some(&moved) = self.keys.get(i)
            && let Some(slot) = self.index.get_mut(&moved)
        {
            *slot = i as u32;
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_keep_indexes_consistent() {
        let mut s: FpSlab<u64> = FpSlab::default();
        for i in 0..100u64 {
            assert_eq!(s.insert(Fingerprint(i), i * 10), None);
        }
        assert_eq!(s.insert(Fingerprint(5), 55), Some(50));
        assert_eq!(s.len(), 100);
        // Remove from the front, middle and end; the swapped-in values stay reachable.
        for i in [0u64, 42, 99, 1] {
            let want = if i == 5 { 55 } else { i * 10 };
            assert_eq!(s.remove(&Fingerprint(i)), Some(want));
            assert!(!s.contains_key(&Fingerprint(i)));
            assert_eq!(s.remove(&Fingerprint(i)), None);
        }
        assert_eq!(s.len(), 96);
        for i in 0..100u64 {
            let want = match i {
                0 | 1 | 42 | 99 => None,
                5 => Some(55),
                _ => Some(i * 10),
            };
            assert_eq!(s.get(&Fingerprint(i)).copied(), want, "fingerprint {i}");
        }
        if let Some(v) = s.get_mut(&Fingerprint(98)) {
            *v = 7;
        }
        assert_eq!(s.get(&Fingerprint(98)), Some(&7));
        while let Some(&fp) = s.keys.first() {
            assert!(s.remove(&fp).is_some());
        }
        assert!(s.is_empty());
    }
}
