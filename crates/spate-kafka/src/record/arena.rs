//! [`RecordArena`]: where a consumer's records keep their keys and values — slices of shared
//! chunks instead of one heap allocation each.
//!
//! Copying a key and a value out of librdkafka's buffer into two `Vec`s cost two `malloc`s and
//! two `free`s per record; in a release profile of the receiver they were about a sixth of the
//! CPU. An arena copies them instead into the free end of a [`CHUNK_BYTES`] chunk and hands out
//! [`Bytes`] that share the chunk's allocation (a reference count, no allocation per record).
//! Once every record cut from a chunk is dropped, the next fill reuses the chunk in place, so a
//! consumer whose records are dropped as they are processed allocates nothing per record in
//! steady state. A key or value longer than [`OWN_ALLOCATION_ABOVE`] gets an allocation of its
//! own, as before, so that large records neither waste a chunk's tail nor pin one.
//!
//! **Memory.** A chunk stays allocated while any record cut from it lives: a window or a state
//! that keeps one record of a chunk keeps the whole chunk. Chunks are small ([`CHUNK_BYTES`]) so
//! that this costs at most 64 KiB per kept record, and only for records whose neighbours in the
//! partition were dropped; a job that keeps many records keeps their chunks' bytes about once.
//! A job that keeps a few records for a long time and wants exact sizes can copy them out
//! (`Bytes::copy_from_slice`).

use bytes::{Bytes, BytesMut};

/// Size of one chunk: small enough that one kept record pins little (see the module docs),
/// large enough that a chunk holds hundreds of typical records (~600 of 100 bytes).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Keys and values longer than this get their own allocation: they are rare, and copying them
/// into a chunk would leave up to this much of the chunk's tail unused.
pub const OWN_ALLOCATION_ABOVE: usize = CHUNK_BYTES / 4;

/// One consumer's chunk of record bytes (see the module docs). Not shared between threads:
/// each reader (a direct-stream task consumer, a receiver consumer thread) has its own.
#[derive(Debug, Default)]
pub struct RecordArena {
    /// The free end of the current chunk; what was cut from it lives in the records.
    chunk: BytesMut,
}

impl RecordArena {
    /// An arena without a chunk yet (the first copy allocates one).
    pub fn new() -> Self {
        Self::default()
    }

    /// `bytes` as a [`Bytes`] that shares the current chunk's allocation: no allocation unless
    /// the chunk is full (then the chunk is reused in place if no record of it is left, else a
    /// new one is taken) or `bytes` is longer than [`OWN_ALLOCATION_ABOVE`].
    pub fn copy(&mut self, bytes: &[u8]) -> Bytes {
        let len = bytes.len();
        if len == 0 {
            return Bytes::new();
        }
        if len > OWN_ALLOCATION_ABOVE {
            return Bytes::copy_from_slice(bytes);
        }
        // `try_reclaim` succeeds without allocating when the chunk has room or when every
        // record cut from it is gone (then the whole chunk is free again).
        if !self.chunk.try_reclaim(len) {
            self.chunk = BytesMut::with_capacity(CHUNK_BYTES);
        }
        self.chunk.extend_from_slice(bytes);
        self.chunk.split_to(len).freeze()
    }

    /// [`RecordArena::copy`] of an optional key or value.
    pub fn copy_opt(&mut self, bytes: Option<&[u8]>) -> Option<Bytes> {
        bytes.map(|b| self.copy(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a `Bytes`'s data starts, to tell which chunk it was cut from.
    fn start(b: &Bytes) -> usize {
        b.as_ptr() as usize
    }

    #[test]
    fn records_cut_from_one_chunk_stay_valid_after_the_reader_moves_on() {
        let mut arena = RecordArena::new();
        let first = arena.copy(b"first record");
        let second = arena.copy(b"second");
        // Consecutive records are neighbours in one chunk.
        assert_eq!(start(&second), start(&first) + first.len());
        // Fill well past one chunk while `first` and `second` are alive: the reader takes new
        // chunks and never writes over what it handed out.
        let mut kept = Vec::new();
        for i in 0..3 * CHUNK_BYTES / 100 {
            kept.push(arena.copy(format!("{i:0100}").as_bytes()));
        }
        assert_eq!(&first[..], b"first record");
        assert_eq!(&second[..], b"second");
        for (i, b) in kept.iter().enumerate() {
            assert_eq!(&b[..], format!("{i:0100}").as_bytes());
        }
        // Within a chunk each record follows the one before; at least two chunks were filled,
        // so the records break that at least twice.
        let chunk_starts = kept
            .windows(2)
            .filter(|w| start(&w[1]) != start(&w[0]) + w[0].len())
            .count();
        assert!(chunk_starts >= 2, "{chunk_starts} new chunks");
        // Dropping the arena drops its reference only: the records keep their chunks.
        drop(arena);
        assert_eq!(&first[..], b"first record");
        assert_eq!(&kept[7][..], format!("{:0100}", 7).as_bytes());
    }

    #[test]
    fn a_chunk_none_of_whose_records_is_left_is_reused_in_place() {
        let mut arena = RecordArena::new();
        let first = arena.copy(&[1; 1000]);
        let chunk_start = start(&first);
        drop(first);
        for round in 0..5u8 {
            // A chunk's worth of records, each dropped before the next (a pass-through task).
            for _ in 0..CHUNK_BYTES / 1000 {
                let r = arena.copy(&[round; 1000]);
                assert!(r.iter().all(|b| *b == round));
            }
        }
        let last = arena.copy(&[9; 1000]);
        assert!(
            start(&last) >= chunk_start && start(&last) < chunk_start + CHUNK_BYTES,
            "the first chunk is still the one in use"
        );
    }

    #[test]
    fn a_record_larger_than_a_chunk_gets_its_own_allocation() {
        let mut arena = RecordArena::new();
        let small = arena.copy(b"small");
        let big_value: Vec<u8> = (0..3 * CHUNK_BYTES).map(|i| i as u8).collect();
        let big = arena.copy(&big_value);
        assert_eq!(&big[..], &big_value[..]);
        let just_over = arena.copy(&vec![7; OWN_ALLOCATION_ABOVE + 1]);
        assert_eq!(just_over.len(), OWN_ALLOCATION_ABOVE + 1);
        let next = arena.copy(b"next");
        // Large records leave the chunk alone: the next small one follows the last.
        assert_eq!(start(&next), start(&small) + small.len());
        drop(arena);
        assert_eq!(&big[..], &big_value[..]);
        assert_eq!(&small[..], b"small");
    }

    #[test]
    fn empty_and_absent_bytes_take_no_chunk_space() {
        let mut arena = RecordArena::new();
        assert!(arena.copy(b"").is_empty());
        assert_eq!(arena.copy_opt(None), None);
        assert_eq!(arena.copy_opt(Some(b"")), Some(Bytes::new()));
        let a = arena.copy(b"a");
        let b = arena.copy(b"b");
        assert_eq!(start(&b), start(&a) + 1);
    }
}
