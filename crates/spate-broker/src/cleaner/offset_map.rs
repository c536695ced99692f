//! The cleaner's key → last offset map, bounded in memory (Kafka's `SkimpyOffsetMap`).
//!
//! A key is stored as a 128-bit hash (XXH3-128 with a per-map random seed), never as its bytes,
//! so every entry costs the same 24 bytes whatever the key size: the memory a cleaning needs is
//! known before it starts and never exceeds `log.cleaner.dedupe.buffer.size` (divided between
//! the cleaner threads). Two distinct keys would have to collide on all 128 bits for one to be
//! mistaken for the other, the same trade Kafka makes with MD5.
//!
//! The table is open-addressed with linear probing and is filled to at most
//! `log.cleaner.io.buffer.load.factor` (0.9) of its slots; a dirty section with more distinct
//! keys than that is cleaned in several passes (the caller stops adding at a batch boundary when
//! [`OffsetMap::has_room_for`] says no).

use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Bytes one entry occupies: a 128-bit key hash and an offset.
pub const ENTRY_BYTES: usize = 24;

/// Kafka's `log.cleaner.io.buffer.load.factor` default.
pub const LOAD_FACTOR: f64 = 0.9;

#[derive(Clone, Copy)]
struct Slot {
    hash: u128,
    /// `-1` marks a free slot (offsets are never negative).
    offset: i64,
}

const FREE: Slot = Slot {
    hash: 0,
    offset: -1,
};

/// Key hash → largest offset seen for it.
pub struct OffsetMap {
    slots: Vec<Slot>,
    /// The most slots this map may ever allocate (its memory bound / [`ENTRY_BYTES`]).
    max_slots: usize,
    used: usize,
    seed: u64,
    /// The last offset the map covers: every offset up to here was looked at while filling it.
    latest_offset: i64,
}

impl std::fmt::Debug for OffsetMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetMap")
            .field("max_slots", &self.max_slots)
            .field("used", &self.used)
            .field("latest_offset", &self.latest_offset)
            .finish_non_exhaustive()
    }
}

impl OffsetMap {
    /// A map that will never use more than `memory_bytes` (at least one slot's worth).
    pub fn new(memory_bytes: usize) -> OffsetMap {
        OffsetMap {
            slots: Vec::new(),
            max_slots: (memory_bytes / ENTRY_BYTES).max(16),
            used: 0,
            seed: rand::random(),
            latest_offset: -1,
        }
    }

    /// Empties the map and sizes it for about `expected_keys` distinct keys, within its bound.
    /// Memory already allocated is kept for the next cleaning (as Kafka keeps its buffer).
    pub fn reset(&mut self, expected_keys: u64) {
        let wanted = ((expected_keys as f64 / LOAD_FACTOR) as u64).saturating_add(16);
        let slots = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .min(self.max_slots);
        self.slots.clear();
        self.slots.resize(slots, FREE);
        self.used = 0;
        self.latest_offset = -1;
        self.seed = rand::random();
    }

    /// Slots allocated right now.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Bytes allocated right now.
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * ENTRY_BYTES
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether the map holds no key.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Whether `n` more keys fit without passing the load factor.
    pub fn has_room_for(&self, n: usize) -> bool {
        let limit = (self.slots.len() as f64 * LOAD_FACTOR) as usize;
        self.used.saturating_add(n) <= limit
    }

    /// Fraction of the slots in use (Kafka's "buffer utilization").
    pub fn utilization(&self) -> f64 {
        if self.slots.is_empty() {
            0.0
        } else {
            self.used as f64 / self.slots.len() as f64
        }
    }

    fn hash(&self, key: &[u8]) -> u128 {
        xxh3_128_with_seed(key, self.seed)
    }

    fn slot_of(&self, hash: u128) -> usize {
        // The low bits of the hash spread keys uniformly over the table.
        (hash as u64 % self.slots.len() as u64) as usize
    }

    /// Records that `key` appears at `offset` (offsets arrive in increasing order, so the last
    /// put wins). The caller checks [`Self::has_room_for`] first; a full table refuses new keys.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let hash = self.hash(key);
        let mut i = self.slot_of(hash);
        let len = self.slots.len();
        for _ in 0..len {
            let slot = &mut self.slots[i];
            if slot.offset < 0 {
                if self.used + 1 >= len {
                    return false;
                }
                *slot = Slot { hash, offset };
                self.used += 1;
                return true;
            }
            if slot.hash == hash {
                slot.offset = slot.offset.max(offset);
                return true;
            }
            i = if i + 1 == len { 0 } else { i + 1 };
        }
        false
    }

    /// The last offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        if self.slots.is_empty() {
            return None;
        }
        let hash = self.hash(key);
        let mut i = self.slot_of(hash);
        for _ in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.offset < 0 {
                return None;
            }
            if slot.hash == hash {
                return Some(slot.offset);
            }
            i = if i + 1 == self.slots.len() { 0 } else { i + 1 };
        }
        None
    }

    /// Marks every offset up to `offset` as looked at.
    pub fn update_latest_offset(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }

    /// The last offset the map covers (`-1` when empty).
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_offset_per_key() {
        let mut m = OffsetMap::new(1 << 16);
        m.reset(100);
        for i in 0..300i64 {
            assert!(m.put(format!("k{}", i % 100).as_bytes(), i));
        }
        assert_eq!(m.len(), 100);
        assert_eq!(m.get(b"k7"), Some(207));
        assert_eq!(m.get(b"absent"), None);
    }

    #[test]
    fn is_bounded_by_its_memory() {
        let mut m = OffsetMap::new(ENTRY_BYTES * 100);
        m.reset(1_000_000);
        assert_eq!(m.slots(), 100);
        let mut stored = 0;
        for i in 0..1000i64 {
            if !m.has_room_for(1) {
                break;
            }
            assert!(m.put(format!("key-{i}").as_bytes(), i));
            stored += 1;
        }
        assert_eq!(stored, 90);
        assert!(m.memory_bytes() <= ENTRY_BYTES * 100 + ENTRY_BYTES * 16);
    }
}
