//! The time index (`.timeindex`) and the bookkeeping that decides when either index gets an
//! entry.
//!
//! A time index entry `(timestamp, offset)` says: the largest batch max timestamp among all
//! batches of the segment up to and including the batch holding `offset` is `timestamp`. Entries
//! are running maxima, so timestamps strictly increase and a binary search can find the last
//! entry older than a target; every batch up to that entry's offset is then known to be older
//! too, and a ListOffsets-by-time lookup scans forward from there. This is Kafka's design
//! (`TimeIndex`, `LogSegment.append`), including appending one last entry when a segment stops
//! being active so that the file always ends with the segment's largest timestamp. That closing
//! entry may repeat the previous timestamp with a later offset (a later batch tied the maximum):
//! the running-max property still holds, and after a restart the file then names the *last*
//! batch with the largest timestamp, as ListOffsets MAX_TIMESTAMP wants. So timestamps are
//! non-decreasing and offsets strictly increasing; the lookup takes the last entry older than the
//! target, which stays correct with such a repeat.

use super::index::{IndexEntry, OffsetEntry};

/// Time index entry: big-endian `i64` timestamp and `u32` offset relative to the segment base,
/// 12 bytes as in Kafka. The offset is the last offset of the batch holding the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;

    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// What a segment's indexes need to know about the batches appended so far; used identically by
/// the append path and by recovery, so that a rebuilt index equals the one appends wrote.
#[derive(Debug, Clone)]
pub(crate) struct IndexTracker {
    base_offset: i64,
    bytes_since_last_entry: usize,
    /// `(max timestamp, last offset of the batch holding it)` so far; ties go to the later batch.
    max_timestamp: Option<(i64, i64)>,
    /// `(timestamp, offset)` of the last time index entry written.
    last_time_entry: Option<(i64, i64)>,
}

/// The index entries one batch produced.
#[derive(Debug, Default)]
pub(crate) struct NewEntries {
    pub offset: Option<OffsetEntry>,
    pub time: Option<TimeEntry>,
}

impl IndexTracker {
    pub(crate) fn new(base_offset: i64) -> Self {
        IndexTracker {
            base_offset,
            bytes_since_last_entry: 0,
            max_timestamp: None,
            last_time_entry: None,
        }
    }

    /// Resumes tracking for a segment whose indexes already hold entries (the last time index
    /// entry is `last_time_entry`) and whose batches after the last offset index entry add up to
    /// `bytes_since_last_entry`.
    pub(crate) fn resume(
        base_offset: i64,
        bytes_since_last_entry: usize,
        max_timestamp: Option<(i64, i64)>,
        last_time_entry: Option<(i64, i64)>,
    ) -> Self {
        IndexTracker {
            base_offset,
            bytes_since_last_entry,
            max_timestamp,
            last_time_entry,
        }
    }

    /// Accounts for a batch written at `position` and returns the entries to add: one offset
    /// entry (and a time entry if the running max grew) each time more than
    /// `index_interval_bytes` were appended since the last entry, as Kafka does.
    pub(crate) fn on_batch(
        &mut self,
        position: u64,
        base_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
        len: usize,
        index_interval_bytes: usize,
    ) -> NewEntries {
        if self.max_timestamp.is_none_or(|(ts, _)| max_timestamp >= ts) {
            self.max_timestamp = Some((max_timestamp, last_offset));
        }
        let mut out = NewEntries::default();
        if self.bytes_since_last_entry > index_interval_bytes {
            out.offset = Some(OffsetEntry {
                relative_offset: (base_offset - self.base_offset) as u32,
                position: position as u32,
            });
            out.time = self.time_entry();
            self.bytes_since_last_entry = 0;
        }
        self.bytes_since_last_entry += len;
        out
    }

    /// The time entry that records the current running max, if it is larger than the last one.
    /// Called with each offset entry.
    pub(crate) fn time_entry(&mut self) -> Option<TimeEntry> {
        let (ts, _) = self.max_timestamp?;
        if self.last_time_entry.is_some_and(|(last, _)| ts <= last) {
            return None;
        }
        self.make_entry()
    }

    /// The entry that closes a segment's time index: the running max, unless the last entry
    /// already names it and its last batch.
    pub(crate) fn closing_time_entry(&mut self) -> Option<TimeEntry> {
        let max = self.max_timestamp?;
        if self.last_time_entry.is_some_and(|last| max <= last) {
            return None;
        }
        self.make_entry()
    }

    fn make_entry(&mut self) -> Option<TimeEntry> {
        let (ts, offset) = self.max_timestamp?;
        self.last_time_entry = Some((ts, offset));
        Some(TimeEntry {
            timestamp: ts,
            relative_offset: (offset - self.base_offset) as u32,
        })
    }

    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.max_timestamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_follow_the_interval_and_the_running_max() {
        let mut t = IndexTracker::new(100);
        // 3 batches of 50 bytes with interval 60: entries before the 3rd batch only.
        let a = t.on_batch(0, 100, 101, 10, 50, 60);
        assert!(a.offset.is_none() && a.time.is_none());
        let b = t.on_batch(50, 102, 102, 5, 50, 60);
        assert!(b.offset.is_none());
        let c = t.on_batch(100, 103, 104, 7, 50, 60);
        assert_eq!(
            c.offset,
            Some(OffsetEntry {
                relative_offset: 3,
                position: 100
            })
        );
        assert_eq!(
            c.time,
            Some(TimeEntry {
                timestamp: 10,
                relative_offset: 1
            })
        );
        // No newer max: no entry, not even to close the segment.
        assert_eq!(t.time_entry(), None);
        assert_eq!(t.closing_time_entry(), None);
        t.on_batch(150, 105, 105, 10, 50, 60);
        assert_eq!(t.max_timestamp(), Some((10, 105)));
        assert_eq!(t.time_entry(), None);
        // A later batch tied the max: the closing entry names it.
        assert_eq!(
            t.closing_time_entry(),
            Some(TimeEntry {
                timestamp: 10,
                relative_offset: 5
            })
        );
        assert_eq!(t.closing_time_entry(), None);
        // The interval is crossed again: the entry records the new max, 11 at offset 106.
        let e = t.on_batch(200, 106, 106, 11, 50, 60);
        assert_eq!(
            e.time,
            Some(TimeEntry {
                timestamp: 11,
                relative_offset: 6
            })
        );
        t.on_batch(250, 107, 107, 12, 50, 60);
        assert_eq!(
            t.time_entry(),
            Some(TimeEntry {
                timestamp: 12,
                relative_offset: 7
            })
        );
    }
}
