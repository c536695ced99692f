//! A live partition: its [`PartitionLog`] plus what the broker keeps beside it — the producer
//! sequence state and the fetchers waiting for new data. (The flush policy, `flush.messages` and
//! `flush.ms`, is applied by the log itself from its `LogConfig`.)
//!
//! Appends go through one mutex per partition so that the idempotence check and the append are a
//! single step (two retries of one batch can never both pass the check). Reads go straight to the
//! log, which allows them concurrently with appends.
//!
//! Transactions: a transactional batch opens its producer's transaction in this partition (its
//! first offset holds the last stable offset back) and a marker closes it; an ABORT marker adds
//! the transaction's range to the log's transaction index. The first unstable offset is
//! published *before* the data that makes it matter becomes readable, and raised only after
//! the marker (and the index entry) are in the log, so a reader that loads the high watermark
//! first and this second never computes a last stable offset past an open or aborted-but-unindexed
//! transaction.
//!
//! Producer state (sequences, epochs, open transactions) is snapshotted to
//! `producer-state.json` in the partition directory on clean shutdown and by the maintenance
//! task; on open only the log after the snapshot is replayed, as Kafka does with its
//! `.snapshot` files.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::cleaner::PartitionView;
use crate::error::{BrokerError, Result};
use crate::produce_validation::Validated;
use crate::producer_state::{PartitionProducers, ProducerInfo, SequenceCheck};
use crate::record_batch::{self, BatchHeader};
use crate::storage::{AbortedTxn, LogConfig, PartitionLog, TopicPartition};
use crate::txn::marker::{self, MarkerKind};

/// File name of a partition's producer state snapshot.
const SNAPSHOT_FILE: &str = "producer-state.json";

/// A producer state snapshot: the state after every batch below `offset`.
#[derive(Serialize, Deserialize)]
struct ProducerSnapshot {
    offset: i64,
    producers: PartitionProducers,
}

/// Decides whether a transactional batch may be appended: its producer must have this
/// partition in an ongoing transaction at the batch's epoch (the transaction coordinator
/// answers). Called with the partition's append lock held, so a marker cannot slip in
/// between the check and the append.
pub type TxnVerifier<'a> = &'a dyn Fn(i64, i16) -> Result<()>;

/// What a successful produce of one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The offset the broker gave the batch's first record.
    pub base_offset: i64,
    /// The offset of the batch's last record.
    pub last_offset: i64,
    /// The partition's log start offset after the append (Produce v5+ `log_start_offset`).
    pub log_start_offset: i64,
    /// True when the batch was a retry of one already in the log (nothing was appended).
    pub duplicate: bool,
}

struct WriteState {
    producers: PartitionProducers,
    config: LogConfig,
    /// Log end offset at the last snapshot (-1: none written by this process).
    snapshot_offset: i64,
}

/// One partition of a topic.
pub struct Partition {
    /// The topic and partition index.
    pub tp: TopicPartition,
    name: String,
    log: Arc<dyn PartitionLog>,
    write: Mutex<WriteState>,
    /// Fetch requests parked until this partition gets data (each registers, then waits).
    waiters: Mutex<Vec<Weak<Notify>>>,
    /// First offset of the oldest open transaction; `i64::MAX` when none.
    first_unstable: AtomicI64,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("tp", &self.tp)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Partition {
    /// Wraps an opened log and rebuilds the producer state: from the snapshot when one matches
    /// the log, then from the batch headers after it.
    pub fn open(tp: TopicPartition, log: Arc<dyn PartitionLog>, config: LogConfig) -> Result<Self> {
        let name = tp.to_string();
        let (from, mut producers) = load_snapshot(&name, log.as_ref());
        replay(&name, log.as_ref(), from, &mut producers)?;
        let first_unstable = producers.first_unstable_offset().unwrap_or(i64::MAX);
        Ok(Partition {
            name,
            tp,
            log,
            write: Mutex::new(WriteState {
                producers,
                config,
                snapshot_offset: -1,
            }),
            waiters: Mutex::new(Vec::new()),
            first_unstable: AtomicI64::new(first_unstable),
        })
    }

    /// The partition's log, in memory or on disk.
    pub fn log(&self) -> &Arc<dyn PartitionLog> {
        &self.log
    }

    /// The partition's index within its topic.
    pub fn index(&self) -> i32 {
        self.tp.partition
    }

    /// Largest producer id in this partition's state (for the id allocator on start).
    pub fn max_producer_id(&self) -> Option<i64> {
        self.write.lock().producers.max_producer_id()
    }

    /// Validates and appends one RecordBatch (magic 2, CRC, size), applying the idempotent
    /// producer checks. `batch` is rewritten in place (base offset, leader epoch). A
    /// transactional batch needs `verify_txn`; without one it is refused.
    ///
    /// The Produce handler calls this on a tokio worker, under this partition's (synchronous)
    /// write mutex, while OffsetCommit hops to `spawn_blocking`. The difference is the fsync:
    /// an append is a `write` into the page cache (microseconds), and fsyncs only when the
    /// topic opts into `flush.messages`/`flush.ms` (both default to never, as in Kafka, which
    /// leaves durability to replication and the OS); a blocking-pool hop per partition per
    /// request would cost more than the write. A commit is acknowledged only after the offsets
    /// log is fsynced, every time, which takes milliseconds and would stall every connection
    /// served by that worker. A topic configured to fsync each append does block its worker
    /// for the fsync, which bounds that topic's throughput to the disk's sync rate anyway.
    pub fn append(
        &self,
        batch: &mut [u8],
        verify_txn: Option<TxnVerifier<'_>>,
    ) -> Result<Appended> {
        let header = BatchHeader::parse(batch)?;
        check_batch_shape(batch, &header)?;
        let config = self.write.lock().config.clone();
        let validated = crate::produce_validation::validate(batch, &header, &config, &self.name)?;
        let mut w = self.write.lock();
        check_batch_size(batch.len(), &w.config)?;
        let idempotent = header.has_producer_id() && header.base_sequence >= 0;
        if idempotent {
            if let SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } = w.producers.check(&self.name, &header)?
            {
                return Ok(Appended {
                    base_offset,
                    last_offset,
                    log_start_offset: self.log.log_start_offset(),
                    duplicate: true,
                });
            }
        }
        if header.is_transactional() {
            let verify = verify_txn.ok_or_else(|| {
                BrokerError::InvalidRecord("transactional batch outside a transaction".into())
            })?;
            verify(header.producer_id, header.producer_epoch)?;
            if w.producers.open_txn(header.producer_id).is_none() {
                // Publish the transaction before its data is readable (see the module doc).
                self.first_unstable
                    .fetch_min(self.log.log_end_offset(), Ordering::SeqCst);
            }
        }
        let appended = match validated {
            Validated::AsSent => {
                record_batch::set_partition_leader_epoch(batch, 0);
                self.log.append(batch, &header)
            }
            Validated::Rewritten(mut stored) => {
                record_batch::set_partition_leader_epoch(&mut stored, 0);
                BatchHeader::parse(&stored).and_then(|h| self.log.append(&mut stored, &h))
            }
        };
        let info = match appended {
            Ok(info) => info,
            Err(e) => {
                self.publish_first_unstable(&w.producers);
                return Err(e);
            }
        };
        if idempotent {
            w.producers.record(&header, info.base_offset);
        }
        drop(w);
        self.wake_fetchers();
        Ok(Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            log_start_offset: info.log_start_offset,
            duplicate: false,
        })
    }

    /// Appends a transaction marker for `producer_id` (the coordinator ends its transaction
    /// here) and returns its offset. An ABORT adds the transaction's range to the log's
    /// transaction index before the last stable offset moves past it.
    pub fn append_marker(
        &self,
        kind: MarkerKind,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<i64> {
        let now = crate::time::now_ms();
        let mut batch = marker::build(kind, producer_id, producer_epoch, coordinator_epoch, now);
        let header = BatchHeader::parse(&batch)?;
        let mut w = self.write.lock();
        w.producers
            .check_marker(&self.name, producer_id, producer_epoch, coordinator_epoch)?;
        let info = self.log.append(&mut batch, &header)?;
        let first =
            w.producers
                .record_marker(producer_id, producer_epoch, Some(coordinator_epoch), now);
        let lso = w
            .producers
            .first_unstable_offset()
            .unwrap_or(info.last_offset + 1);
        if let (MarkerKind::Abort, Some(first_offset)) = (kind, first) {
            self.log.add_aborted_txn(AbortedTxn {
                producer_id,
                first_offset,
                last_offset: info.base_offset,
                last_stable_offset: lso,
            })?;
        }
        self.publish_first_unstable(&w.producers);
        drop(w);
        self.wake_fetchers();
        Ok(info.base_offset)
    }

    fn publish_first_unstable(&self, producers: &PartitionProducers) {
        let first = producers.first_unstable_offset().unwrap_or(i64::MAX);
        self.first_unstable.store(first, Ordering::SeqCst);
    }

    /// The high watermark: every offset below it is readable (read_uncommitted).
    pub fn high_watermark(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// The last stable offset: the first offset of the oldest open transaction, or the high
    /// watermark when none is open. read_committed consumers read only below it.
    pub fn last_stable_offset(&self) -> i64 {
        // High watermark first: see the module doc for why the order matters.
        let hw = self.log.log_end_offset();
        hw.min(self.first_unstable.load(Ordering::SeqCst))
    }

    /// Aborted transactions overlapping `[from, upto)`.
    pub fn aborted_txns(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        self.log.aborted_txns(from, upto)
    }

    /// The producers this partition remembers (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerInfo> {
        self.write.lock().producers.describe()
    }

    /// Writes a producer state snapshot at the current log end, unless one was written there
    /// already (or the backend does not persist). Returns whether one was written.
    pub fn snapshot_producers(&self) -> Result<bool> {
        let Some(dir) = self.log.state_dir() else {
            return Ok(false);
        };
        let mut w = self.write.lock();
        let offset = self.log.log_end_offset();
        if offset == w.snapshot_offset {
            return Ok(false);
        }
        // The snapshot may only claim offsets the log has made durable.
        self.log.flush()?;
        let snapshot = ProducerSnapshot {
            offset,
            producers: w.producers.clone(),
        };
        crate::persist::write_json(&dir.join(SNAPSHOT_FILE), &snapshot)?;
        w.snapshot_offset = offset;
        Ok(true)
    }

    /// Forgets idempotent producers idle for `expiration_ms` (`producer.id.expiration.ms`).
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.write.lock().producers.expire(now_ms, expiration_ms)
    }

    /// Parks `waiter` until the next append (or until it is woken for another reason).
    /// Register *before* checking for data, so an append in between is not missed: `Notify`
    /// keeps the permit.
    pub fn register_fetcher(&self, waiter: &Arc<Notify>) {
        let mut waiters = self.waiters.lock();
        // Drop waiters of fetches that already answered (their Notify is gone) and
        // an earlier registration of this one, so an idle partition's list stays bounded by the
        // fetches actually parked on it.
        let me = Arc::downgrade(waiter);
        waiters.retain(|w| w.strong_count() > 0 && !w.ptr_eq(&me));
        waiters.push(me);
    }

    /// Wakes every parked fetcher (new data, or the partition went away).
    pub fn wake_fetchers(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock());
        for w in waiters.iter().filter_map(Weak::upgrade) {
            w.notify_one();
        }
    }

    /// The topic's current log config (read by produce validation, outside the append lock).
    pub fn config(&self) -> LogConfig {
        self.write.lock().config.clone()
    }

    /// Applies a new topic config to this partition and its log.
    pub fn update_config(&self, config: LogConfig) {
        self.log.update_config(config.clone());
        self.write.lock().config = config;
    }

    /// Flushes unconditionally and snapshots the producer state (shutdown).
    pub fn flush(&self) -> Result<()> {
        {
            let _w = self.write.lock();
            self.log.flush()?;
        }
        self.snapshot_producers().map(|_| ())
    }
}

/// The snapshot to start from and the offset to replay from: a snapshot is used only if the
/// log still reaches its offset and has not been deleted past it.
fn load_snapshot(name: &str, log: &dyn PartitionLog) -> (i64, PartitionProducers) {
    let start = log.log_start_offset();
    let Some(dir) = log.state_dir() else {
        return (start, PartitionProducers::default());
    };
    match crate::persist::read_json::<ProducerSnapshot>(&dir.join(SNAPSHOT_FILE)) {
        Ok(Some(s)) if s.offset <= log.log_end_offset() && s.offset >= start => {
            (s.offset, s.producers)
        }
        Ok(Some(s)) => {
            tracing::info!(
                partition = name,
                snapshot = s.offset,
                "producer snapshot does not match the log; replaying it whole"
            );
            (start, PartitionProducers::default())
        }
        Ok(None) => (start, PartitionProducers::default()),
        Err(e) => {
            tracing::warn!(partition = name, error = %e, "unreadable producer snapshot; replaying the log");
            (start, PartitionProducers::default())
        }
    }
}

/// A marker met during replay that ended an open transaction: whether it was an ABORT (and so
/// needs a transaction index entry) is only known after reading its record.
struct EndedTxn {
    header: BatchHeader,
    first_offset: i64,
    last_stable_offset: i64,
}

/// Replays batch headers from `from` into `producers`. Markers end transactions; an ABORT
/// whose transaction index entry a crash lost gets it back.
fn replay(
    name: &str,
    log: &dyn PartitionLog,
    from: i64,
    producers: &mut PartitionProducers,
) -> Result<()> {
    let mut ended = Vec::new();
    log.scan_headers(from, &mut |h: &BatchHeader| {
        if h.base_offset < from || !h.has_producer_id() {
            return;
        }
        if !h.is_control() {
            producers.record(h, h.base_offset);
            return;
        }
        if let Some(first_offset) =
            producers.record_marker(h.producer_id, h.producer_epoch, None, h.max_timestamp)
        {
            ended.push(EndedTxn {
                header: *h,
                first_offset,
                last_stable_offset: producers
                    .first_unstable_offset()
                    .unwrap_or(h.base_offset + 1),
            });
        }
    })?;
    for t in ended {
        restore_index_entry(name, log, t)?;
    }
    Ok(())
}

fn restore_index_entry(name: &str, log: &dyn PartitionLog, t: EndedTxn) -> Result<()> {
    let h = &t.header;
    let bytes = log.read(h.base_offset, 1)?;
    let Some(Ok((_, _, batch))) = record_batch::BatchIter::new(&bytes).next() else {
        return Err(BrokerError::CorruptBatch(format!(
            "{name}: marker at offset {} is unreadable",
            h.base_offset
        )));
    };
    if marker::parse(batch, h)? != Some(MarkerKind::Abort) {
        return Ok(());
    }
    let known = log
        .aborted_txns(h.base_offset, h.base_offset + 1)
        .iter()
        .any(|a| a.last_offset == h.base_offset && a.producer_id == h.producer_id);
    if !known {
        tracing::info!(
            partition = name,
            offset = h.base_offset,
            "restoring a lost transaction index entry"
        );
        log.add_aborted_txn(AbortedTxn {
            producer_id: h.producer_id,
            first_offset: t.first_offset,
            last_offset: h.base_offset,
            last_stable_offset: t.last_stable_offset,
        })?;
    }
    Ok(())
}

/// The cleaner never cleans at or past the last stable offset and drops the aborted
/// transactions' data.
impl PartitionView for Partition {
    fn last_stable_offset(&self) -> i64 {
        Partition::last_stable_offset(self)
    }

    fn aborted_transactions(&self, from: i64, to: i64) -> Vec<crate::cleaner::AbortedTxn> {
        self.aborted_txns(from, to)
            .into_iter()
            .map(|a| crate::cleaner::AbortedTxn {
                producer_id: a.producer_id,
                first_offset: a.first_offset,
                last_offset: a.last_offset,
            })
            .collect()
    }

    fn producer_last_offsets(&self) -> HashMap<i64, i64> {
        self.write.lock().producers.last_offsets()
    }
}

/// The checks of a produced batch that need neither the partition nor its config: the size it
/// declares is the size sent, the CRC matches, its offsets are consecutive, it is not a control
/// batch, and a transactional batch carries a producer id and sequence.
fn check_batch_shape(batch: &[u8], header: &BatchHeader) -> Result<()> {
    if header.total_len() != batch.len() {
        return Err(BrokerError::CorruptBatch(format!(
            "batch declares {} bytes but {} were sent",
            header.total_len(),
            batch.len()
        )));
    }
    record_batch::validate_crc(batch, header)?;
    if header.records_count != header.last_offset_delta + 1 && header.records_count > 0 {
        // Only compaction leaves holes; a producer's batch has consecutive offsets.
        return Err(BrokerError::CorruptBatch(format!(
            "records count {} does not match last offset delta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    if header.is_control() {
        return Err(BrokerError::InvalidRecord(
            "clients may not append control batches (transaction markers)".into(),
        ));
    }
    if header.is_transactional() && (!header.has_producer_id() || header.base_sequence < 0) {
        return Err(BrokerError::InvalidRecord(
            "a transactional batch needs a producer id and sequence".into(),
        ));
    }
    Ok(())
}

/// Refuses a batch larger than the topic's `max.message.bytes` or its `segment.bytes`.
fn check_batch_size(len: usize, config: &LogConfig) -> Result<()> {
    if len > config.max_message_bytes {
        return Err(BrokerError::RecordBatchTooLarge {
            size: len,
            max: config.max_message_bytes,
        });
    }
    if len as u64 > config.segment_bytes {
        return Err(BrokerError::RecordListTooLarge {
            size: len,
            segment_bytes: config.segment_bytes,
        });
    }
    Ok(())
}
