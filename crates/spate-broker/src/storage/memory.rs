//! The in-memory backend: each partition is a vector of batches. Nothing survives a restart; it
//! serves tests and benchmarks that measure the protocol path without disk. Retention treats
//! each batch as its own segment.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use super::{AbortedTxn, AppendInfo, LogConfig, LogStorage, PartitionLog, TopicPartition};
use crate::error::{BrokerError, Result};
use crate::record_batch::{self, BatchHeader};

#[derive(Clone)]
struct StoredBatch {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    append_time_ms: i64,
    bytes: Bytes,
}

struct State {
    config: LogConfig,
    batches: Vec<StoredBatch>,
    log_start_offset: i64,
    log_end_offset: i64,
    size: u64,
    /// Aborted transactions, in marker order; dropped with the batches below the log start.
    aborted: Vec<AbortedTxn>,
}

/// One in-memory partition log.
pub struct MemoryLog {
    name: String,
    state: RwLock<State>,
}

impl std::fmt::Debug for MemoryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLog")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl MemoryLog {
    /// An empty in-memory log of `tp`.
    pub fn new(tp: &TopicPartition, config: LogConfig) -> Self {
        MemoryLog {
            name: tp.to_string(),
            state: RwLock::new(State {
                config,
                batches: Vec::new(),
                log_start_offset: 0,
                log_end_offset: 0,
                size: 0,
                aborted: Vec::new(),
            }),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl State {
    /// Drops leading batches that lie wholly below the log start offset.
    fn drop_below_start(&mut self) -> usize {
        let keep_from = self
            .batches
            .iter()
            .position(|b| b.last_offset >= self.log_start_offset)
            .unwrap_or(self.batches.len());
        for b in &self.batches[..keep_from] {
            self.size -= b.bytes.len() as u64;
        }
        self.batches.drain(..keep_from);
        let start = self.log_start_offset;
        self.aborted.retain(|t| t.last_offset >= start);
        keep_from
    }
}

impl PartitionLog for MemoryLog {
    fn append(&self, batch: &mut [u8], header: &BatchHeader) -> Result<AppendInfo> {
        if batch.len() != header.total_len() {
            return Err(BrokerError::CorruptBatch(format!(
                "append of {} bytes whose header declares {}",
                batch.len(),
                header.total_len()
            )));
        }
        let mut st = self.state.write();
        if batch.len() > st.config.max_message_bytes {
            return Err(BrokerError::RecordBatchTooLarge {
                size: batch.len(),
                max: st.config.max_message_bytes,
            });
        }
        let base = st.log_end_offset;
        record_batch::set_base_offset(batch, base);
        let last = base + header.last_offset_delta as i64;
        st.batches.push(StoredBatch {
            base_offset: base,
            last_offset: last,
            max_timestamp: header.max_timestamp,
            append_time_ms: now_ms(),
            bytes: Bytes::copy_from_slice(batch),
        });
        st.size += batch.len() as u64;
        st.log_end_offset = last + 1;
        Ok(AppendInfo {
            base_offset: base,
            last_offset: last,
            log_start_offset: st.log_start_offset,
        })
    }

    fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes> {
        let st = self.state.read();
        if offset < st.log_start_offset || offset > st.log_end_offset {
            return Err(BrokerError::OffsetOutOfRange {
                partition: self.name.clone(),
                requested: offset,
                log_start_offset: st.log_start_offset,
                log_end_offset: st.log_end_offset,
            });
        }
        let first = st.batches.partition_point(|b| b.last_offset < offset);
        let mut out = Vec::new();
        for b in &st.batches[first..] {
            if !out.is_empty() && out.len() + b.bytes.len() > max_bytes {
                break;
            }
            out.extend_from_slice(&b.bytes);
        }
        Ok(Bytes::from(out))
    }

    fn log_start_offset(&self) -> i64 {
        self.state.read().log_start_offset
    }

    fn log_end_offset(&self) -> i64 {
        self.state.read().log_end_offset
    }

    fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let st = self.state.read();
        Ok(st
            .batches
            .iter()
            .find(|b| b.max_timestamp >= timestamp)
            .map(|b| (b.base_offset.max(st.log_start_offset), b.max_timestamp)))
    }

    fn max_timestamp(&self) -> Option<(i64, i64)> {
        let st = self.state.read();
        let mut best: Option<(i64, i64)> = None;
        for b in &st.batches {
            if best.is_none_or(|(ts, _)| b.max_timestamp >= ts) {
                best = Some((b.max_timestamp, b.last_offset));
            }
        }
        best
    }

    fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let mut st = self.state.write();
        let target = offset.min(st.log_end_offset);
        if target > st.log_start_offset {
            st.log_start_offset = target;
            st.drop_below_start();
        }
        Ok(st.log_start_offset)
    }

    fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let mut st = self.state.write();
        // Never delete the last batch: it stands for the active segment. As Kafka does, first
        // drop the oldest batches past `retention.ms`, then the oldest past `retention.bytes`.
        let deletable = st.batches.len().saturating_sub(1);
        let mut count = 0;
        if st.config.retention_ms >= 0 {
            while count < deletable {
                let b = &st.batches[count];
                // Aged by the largest batch timestamp; only batches without a timestamp fall
                // back to when they were appended.
                let age_from = if b.max_timestamp >= 0 {
                    b.max_timestamp
                } else {
                    b.append_time_ms
                };
                if now_ms.saturating_sub(age_from) <= st.config.retention_ms {
                    break;
                }
                count += 1;
            }
        }
        if st.config.retention_bytes >= 0 {
            let mut size: u64 = st.batches[count..]
                .iter()
                .map(|b| b.bytes.len() as u64)
                .sum();
            while count < deletable {
                let len = st.batches[count].bytes.len() as u64;
                if size - len < st.config.retention_bytes as u64 {
                    break;
                }
                size -= len;
                count += 1;
            }
        }
        if count > 0 {
            let next_start = st.batches[count - 1].last_offset + 1;
            st.log_start_offset = st.log_start_offset.max(next_start);
            st.drop_below_start();
        }
        Ok(count)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn update_config(&self, config: LogConfig) {
        self.state.write().config = config;
    }

    fn size_bytes(&self) -> u64 {
        self.state.read().size
    }

    fn scan_headers(&self, from_offset: i64, f: &mut dyn FnMut(&BatchHeader)) -> Result<()> {
        let st = self.state.read();
        let first = st.batches.partition_point(|b| b.last_offset < from_offset);
        for b in &st.batches[first..] {
            f(&BatchHeader::parse(&b.bytes)?);
        }
        Ok(())
    }

    fn add_aborted_txn(&self, txn: AbortedTxn) -> Result<()> {
        self.state.write().aborted.push(txn);
        Ok(())
    }

    fn aborted_txns(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        let st = self.state.read();
        st.aborted
            .iter()
            .filter(|t| t.last_offset >= from && t.first_offset < upto)
            .copied()
            .collect()
    }
}

/// The in-memory [`LogStorage`].
#[derive(Default)]
pub struct MemoryStorage {
    logs: Mutex<HashMap<TopicPartition, Arc<MemoryLog>>>,
}

impl std::fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStorage").finish_non_exhaustive()
    }
}

impl MemoryStorage {
    /// An in-memory storage with no partitions.
    pub fn new() -> Self {
        Self::default()
    }
}

impl LogStorage for MemoryStorage {
    fn open(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<dyn PartitionLog>> {
        let mut logs = self.logs.lock();
        let log = logs
            .entry(tp.clone())
            .or_insert_with(|| Arc::new(MemoryLog::new(tp, config)))
            .clone();
        Ok(log)
    }

    fn remove(&self, tp: &TopicPartition) -> Result<()> {
        self.logs.lock().remove(tp);
        Ok(())
    }

    fn partitions(&self) -> Result<Vec<TopicPartition>> {
        let mut v: Vec<_> = self.logs.lock().keys().cloned().collect();
        v.sort();
        Ok(v)
    }
}
