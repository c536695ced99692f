//! A live partition: its [`PartitionLog`] plus what the broker keeps beside it — the producer
//! sequence state and the fetchers waiting for new data. (The flush policy, `flush.messages` and
//! `flush.ms`, is applied by the log itself from its `LogConfig`.)
//!
//! Appends go through one mutex per partition so that the idempotence check and the append are a
//! single step (two retries of one batch can never both pass the check). Reads go straight to the
//! log, which allows them concurrently with appends.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::cleaner::{AbortedTxn, PartitionView};
use crate::error::{BrokerError, Result};
use crate::produce_validation::Validated;
use crate::producer_state::{PartitionProducers, SequenceCheck};
use crate::record_batch::{self, BatchHeader};
use crate::storage::{LogConfig, PartitionLog, TopicPartition};

/// What a successful produce of one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// True when the batch was a retry of one already in the log (nothing was appended).
    pub duplicate: bool,
}

struct WriteState {
    producers: PartitionProducers,
    config: LogConfig,
}

/// One partition of a topic.
pub struct Partition {
    pub tp: TopicPartition,
    name: String,
    log: Arc<dyn PartitionLog>,
    write: Mutex<WriteState>,
    /// Fetch requests parked until this partition gets data (each registers, then waits).
    waiters: Mutex<Vec<Weak<Notify>>>,
}

impl Partition {
    /// Wraps an opened log and rebuilds the producer state from its batch headers.
    pub fn open(tp: TopicPartition, log: Arc<dyn PartitionLog>, config: LogConfig) -> Result<Self> {
        let mut producers = PartitionProducers::default();
        log.scan_headers(log.log_start_offset(), &mut |h: &BatchHeader| {
            if h.has_producer_id() && !h.is_control() {
                producers.record(h, h.base_offset);
            }
        })?;
        Ok(Partition {
            name: tp.to_string(),
            tp,
            log,
            write: Mutex::new(WriteState { producers, config }),
            waiters: Mutex::new(Vec::new()),
        })
    }

    pub fn log(&self) -> &Arc<dyn PartitionLog> {
        &self.log
    }

    pub fn index(&self) -> i32 {
        self.tp.partition
    }

    /// Largest producer id in this partition's state (for the id allocator on start).
    pub fn max_producer_id(&self) -> Option<i64> {
        self.write.lock().producers.max_producer_id()
    }

    /// Validates and appends one RecordBatch (magic 2, CRC, size), applying the idempotent
    /// producer checks. `batch` is rewritten in place (base offset, leader epoch).
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
    pub fn append(&self, batch: &mut [u8]) -> Result<Appended> {
        let header = BatchHeader::parse(batch)?;
        if header.total_len() != batch.len() {
            return Err(BrokerError::CorruptBatch(format!(
                "batch declares {} bytes but {} were sent",
                header.total_len(),
                batch.len()
            )));
        }
        record_batch::validate_crc(batch, &header)?;
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
        if header.is_transactional() {
            return Err(BrokerError::InvalidRecord(
                "transactional batches are not supported by this broker yet".into(),
            ));
        }
        let config = self.write.lock().config.clone();
        let validated = crate::produce_validation::validate(batch, &header, &config, &self.name)?;
        let mut w = self.write.lock();
        if batch.len() > w.config.max_message_bytes {
            return Err(BrokerError::RecordBatchTooLarge {
                size: batch.len(),
                max: w.config.max_message_bytes,
            });
        }
        if batch.len() as u64 > w.config.segment_bytes {
            return Err(BrokerError::RecordListTooLarge {
                size: batch.len(),
                segment_bytes: w.config.segment_bytes,
            });
        }
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
        let info = match validated {
            Validated::AsSent => {
                record_batch::set_partition_leader_epoch(batch, 0);
                self.log.append(batch, &header)?
            }
            Validated::Rewritten(mut stored) => {
                record_batch::set_partition_leader_epoch(&mut stored, 0);
                let stored_header = BatchHeader::parse(&stored)?;
                self.log.append(&mut stored, &stored_header)?
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

    /// Applies a new topic config to this partition and its log.
    pub fn update_config(&self, config: LogConfig) {
        self.log.update_config(config.clone());
        self.write.lock().config = config;
    }

    /// The log's config as this partition applies it.
    pub fn config(&self) -> LogConfig {
        self.write.lock().config.clone()
    }

    /// Flushes unconditionally (shutdown).
    pub fn flush(&self) -> Result<()> {
        let _w = self.write.lock();
        self.log.flush()
    }
}

/// Without transactions the whole log is stable: the last stable offset is the log end offset
/// and nothing is aborted.
impl PartitionView for Partition {
    fn last_stable_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    fn aborted_transactions(&self, _from: i64, _to: i64) -> Vec<AbortedTxn> {
        Vec::new()
    }

    fn producer_last_offsets(&self) -> HashMap<i64, i64> {
        self.write.lock().producers.last_offsets()
    }
}
