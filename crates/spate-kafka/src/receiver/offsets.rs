//! [`OffsetBook`]: the reliable receiver's bookkeeping of which Kafka offsets are safe to commit
//! (Spark's `ReliableKafkaReceiver` listener state).
//!
//! The block generator calls back under its buffer lock, so the book sees records and block cuts
//! in exactly the order they happen:
//!
//! - a record is added → its partition's *next offset* (`offset + 1`; Spark commits `offset`,
//!   which re-reads one record per partition after a restart) is noted for the current buffer;
//! - the buffer is cut into block `id` → that note is frozen under `id`;
//! - block `id` is durable (in the write-ahead log, fsynced) and reported → its frozen offsets may
//!   be committed, and nothing else.
//!
//! The book also counts records added but not yet durable per partition, so that a revoke (or a
//! stop) can wait until everything a consumer handed over is stored before committing — the
//! Kafka `onPartitionsRevoked` "commit what you processed" rule.
//!
//! If storing a block fails, committing stops altogether (a later block's offsets would cover the
//! failed block's records); the receiver restarts, its new consumers resume from the last commit,
//! and [`OffsetBook::reset`] forgets everything in flight from the failed run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use spate_streaming::receiver::StreamBlockId;

use crate::TopicPartition;

/// Per partition: the next offset after the newest record, and how many records.
type Snapshot = BTreeMap<TopicPartition, (i64, u64)>;

/// The current buffer's [`Snapshot`], keyed by the records' shared topic name so that noting a
/// record allocates nothing (this runs once per received record).
type Buffered = BTreeMap<(Arc<str>, i32), (i64, u64)>;

#[derive(Debug, Default)]
struct Book {
    buffered: Buffered,
    generated: BTreeMap<StreamBlockId, Snapshot>,
    /// Records in cut blocks that are not durable yet (the buffer's are in `buffered`).
    pending: BTreeMap<TopicPartition, u64>,
    durable: BTreeMap<TopicPartition, i64>,
    poisoned: bool,
}

/// Which offsets are durable, hence committable. See the module docs.
#[derive(Debug, Default)]
pub struct OffsetBook {
    book: Mutex<Book>,
    changed: Condvar,
}

impl OffsetBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// A record of `tp` at `offset` went into the generator's current buffer.
    pub fn record_added(&self, tp: TopicPartition, offset: i64) {
        self.record_of_topic_added(&Arc::from(tp.topic), tp.partition, offset);
    }

    /// A record of `partition` of `topic` at `offset` went into the generator's current buffer.
    pub fn record_of_topic_added(&self, topic: &Arc<str>, partition: i32, offset: i64) {
        let mut book = self.book.lock();
        let entry = book
            .buffered
            .entry((Arc::clone(topic), partition))
            .or_insert((offset + 1, 0));
        entry.0 = offset + 1;
        entry.1 += 1;
    }

    /// The current buffer was cut into block `id`.
    pub fn block_generated(&self, id: StreamBlockId) {
        let mut book = self.book.lock();
        let buffered = std::mem::take(&mut book.buffered);
        if buffered.is_empty() {
            return;
        }
        let snapshot: Snapshot = buffered
            .into_iter()
            .map(|((topic, partition), noted)| (TopicPartition::new(&*topic, partition), noted))
            .collect();
        for (tp, (_, count)) in &snapshot {
            *book.pending.entry(tp.clone()).or_default() += count;
        }
        let _ = book.generated.insert(id, snapshot);
    }

    /// Block `id` is durable. Returns the next offsets that may now be committed (`None` when
    /// the block carries no offsets of this run or committing is stopped by a failure).
    pub fn block_pushed(&self, id: StreamBlockId) -> Option<BTreeMap<TopicPartition, i64>> {
        let mut book = self.book.lock();
        let snapshot = book.generated.remove(&id)?;
        for (tp, (next, count)) in &snapshot {
            if let Some(p) = book.pending.get_mut(tp) {
                *p = p.saturating_sub(*count);
            }
            let _ = book.durable.insert(tp.clone(), *next);
        }
        self.changed.notify_all();
        if book.poisoned {
            return None;
        }
        Some(
            snapshot
                .into_iter()
                .map(|(tp, (next, _))| (tp, next))
                .collect(),
        )
    }

    /// Storing the oldest block in flight failed (blocks are pushed in the order they were
    /// cut): nothing is committed until [`OffsetBook::reset`].
    pub fn block_failed(&self) {
        let mut book = self.book.lock();
        book.poisoned = true;
        if let Some((_, snapshot)) = book.generated.pop_first() {
            for (tp, (_, count)) in snapshot {
                if let Some(p) = book.pending.get_mut(&tp) {
                    *p = p.saturating_sub(count);
                }
            }
        }
        self.changed.notify_all();
    }

    /// A new run of the receiver starts (its consumers resume from the committed offsets):
    /// forget every record and block of earlier runs, and commit again.
    pub fn reset(&self) {
        let mut book = self.book.lock();
        *book = Book::default();
        self.changed.notify_all();
    }

    /// Whether a failed block stopped committing.
    pub fn is_poisoned(&self) -> bool {
        self.book.lock().poisoned
    }

    /// Waits (up to `timeout`) until every record of `tps` added so far is durable, then returns
    /// the durable next offsets of `tps` — what may be committed before giving them up. Returns
    /// an empty map if committing is stopped by a failure; on timeout, returns what is durable
    /// (committing that is still correct: it only covers stored records).
    pub fn wait_durable(
        &self,
        tps: &[TopicPartition],
        timeout: Duration,
    ) -> BTreeMap<TopicPartition, i64> {
        let deadline = Instant::now() + timeout;
        let mut book = self.book.lock();
        loop {
            let buffered = |tp: &TopicPartition| {
                book.buffered.iter().any(|((topic, p), (_, n))| {
                    *p == tp.partition && **topic == *tp.topic && *n > 0
                })
            };
            let waiting = tps
                .iter()
                .any(|tp| book.pending.get(tp).is_some_and(|n| *n > 0) || buffered(tp));
            if !waiting || book.poisoned {
                break;
            }
            if self.changed.wait_until(&mut book, deadline).timed_out() {
                tracing::warn!(
                    ?timeout,
                    "timed out waiting for received records to be stored; committing what is"
                );
                break;
            }
        }
        if book.poisoned {
            return BTreeMap::new();
        }
        tps.iter()
            .filter_map(|tp| book.durable.get(tp).map(|o| (tp.clone(), *o)))
            .collect()
    }

    /// Durable next offsets of every partition seen in this run.
    pub fn durable(&self) -> BTreeMap<TopicPartition, i64> {
        self.book.lock().durable.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn id(n: i64) -> StreamBlockId {
        StreamBlockId {
            stream_id: 0,
            unique_id: n,
        }
    }

    #[test]
    fn commits_only_the_offsets_of_the_pushed_block() {
        let book = OffsetBook::new();
        book.record_added(tp(0), 10);
        book.record_added(tp(1), 4);
        book.block_generated(id(1));
        book.record_added(tp(0), 11);
        book.block_generated(id(2));
        book.record_added(tp(0), 12); // still buffered
        let first = book.block_pushed(id(1)).unwrap();
        assert_eq!(first, BTreeMap::from([(tp(0), 11), (tp(1), 5)]));
        let second = book.block_pushed(id(2)).unwrap();
        assert_eq!(second, BTreeMap::from([(tp(0), 12)]));
        assert_eq!(book.durable().get(&tp(0)), Some(&12));
        assert_eq!(
            book.block_pushed(id(3)),
            None,
            "unknown block commits nothing"
        );
    }

    #[test]
    fn a_failed_block_stops_commits_until_reset() {
        let book = OffsetBook::new();
        book.record_added(tp(0), 1);
        book.block_generated(id(1));
        book.record_added(tp(0), 2);
        book.block_generated(id(2));
        book.block_failed(); // block 1
        assert!(book.is_poisoned());
        assert_eq!(
            book.block_pushed(id(2)),
            None,
            "would skip block 1's record"
        );
        assert!(book.wait_durable(&[tp(0)], Duration::ZERO).is_empty());
        book.reset();
        book.record_added(tp(0), 1);
        book.block_generated(id(3));
        assert_eq!(book.block_pushed(id(3)), Some(BTreeMap::from([(tp(0), 2)])));
    }

    #[test]
    fn wait_durable_returns_once_everything_added_is_pushed() {
        let book = Arc::new(OffsetBook::new());
        book.record_added(tp(0), 7);
        book.record_added(tp(1), 3);
        let pusher = {
            let book = Arc::clone(&book);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                book.block_generated(id(1));
                let _ = book.block_pushed(id(1));
            })
        };
        let started = Instant::now();
        let offsets = book.wait_durable(&[tp(0)], Duration::from_secs(10));
        assert!(started.elapsed() >= Duration::from_millis(40));
        assert_eq!(offsets, BTreeMap::from([(tp(0), 8)]));
        pusher.join().unwrap();
        // Nothing pending: no wait; a partition never seen has nothing to commit.
        assert!(book
            .wait_durable(&[tp(5)], Duration::from_secs(10))
            .is_empty());
    }

    #[test]
    fn wait_durable_times_out_with_what_is_durable() {
        let book = OffsetBook::new();
        book.record_added(tp(0), 1);
        book.block_generated(id(1));
        let _ = book.block_pushed(id(1));
        book.record_added(tp(0), 2); // never pushed
        let offsets = book.wait_durable(&[tp(0)], Duration::from_millis(20));
        assert_eq!(offsets, BTreeMap::from([(tp(0), 2)]));
    }
}
