//! The cleaner's key → latest offset map (Kafka's `SkimpyOffsetMap`), bounded in memory.
//!
//! Keys are not stored: each is reduced to a 128-bit digest (two SipHash-1-3 hashes with keys
//! drawn at random for each map, the std `RandomState`), as Kafka stores an MD5 digest. A false
//! match would need two different keys to collide on 128 bits, and since the hash keys are
//! random per map, a producer cannot craft keys that collide with another's to get its records
//! dropped. The map holds at most `max_entries`; once full, the cleaning pass stops its dirty
//! range at the last batch whose keys all went in (the rest stays dirty for the next pass).

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Bytes one entry costs: the digest and offset (24) plus hashbrown's control byte, times two
/// for the map's growth by doubling (the budget bounds the worst case, not the average).
pub const BYTES_PER_ENTRY: u64 = 50;

/// The digests are already uniform: the map uses their low 64 bits as its hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Key digest → the latest offset seen for it, plus the last offset the map covers.
pub struct OffsetMap {
    map: HashMap<u128, i64, BuildHasherDefault<DigestHasher>>,
    h1: RandomState,
    h2: RandomState,
    max_entries: usize,
    latest: i64,
}

impl OffsetMap {
    /// A map holding at most `max_entries` keys (at least one).
    pub fn new(max_entries: usize) -> Self {
        OffsetMap {
            map: HashMap::default(),
            h1: RandomState::new(),
            h2: RandomState::new(),
            max_entries: max_entries.max(1),
            latest: -1,
        }
    }

    /// A map sized for `budget_bytes` of memory.
    pub fn with_budget(budget_bytes: u64) -> Self {
        Self::new((budget_bytes / BYTES_PER_ENTRY) as usize)
    }

    fn digest(&self, key: &[u8]) -> u128 {
        ((self.h1.hash_one(key) as u128) << 64) | self.h2.hash_one(key) as u128
    }

    /// Records `offset` as the latest for `key`; false (and nothing recorded) when the map is
    /// full and `key` is new.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let d = self.digest(key);
        if self.map.len() >= self.max_entries && !self.map.contains_key(&d) {
            return false;
        }
        self.map.insert(d, offset);
        true
    }

    /// The latest offset recorded for `key`, -1 if none (Kafka's answer).
    pub fn get(&self, key: &[u8]) -> i64 {
        self.map.get(&self.digest(key)).copied().unwrap_or(-1)
    }

    /// The last offset whose batch went entirely into the map (-1 before any).
    pub fn latest_offset(&self) -> i64 {
        self.latest
    }

    pub fn update_latest_offset(&mut self, offset: i64) {
        self.latest = self.latest.max(offset);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Empties the map for the next pass (keeps its allocation).
    pub fn clear(&mut self) {
        self.map.clear();
        self.latest = -1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_wins_and_full_map_refuses_new_keys() {
        let mut m = OffsetMap::new(2);
        assert!(m.put(b"a", 1));
        assert!(m.put(b"b", 2));
        assert!(m.put(b"a", 5), "an existing key still updates when full");
        assert!(!m.put(b"c", 6));
        assert_eq!(m.get(b"a"), 5);
        assert_eq!(m.get(b"b"), 2);
        assert_eq!(m.get(b"c"), -1);
        m.update_latest_offset(6);
        assert_eq!(m.latest_offset(), 6);
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.latest_offset(), -1);
    }
}
