//! Log compaction: the log cleaner of topics with `cleanup.policy=compact` (or
//! `compact,delete`), following Kafka's `LogCleaner`.
//!
//! A compacted log keeps, for every key, at least its latest record: older records of a key are
//! removed, and a tombstone (a record with a null value) removes its key altogether once it has
//! been kept `delete.retention.ms` after the cleaning that first saw it, so consumers that read
//! the log from the start still see the delete. Offsets and timestamps never change, so a
//! compacted log has gaps in its offsets, which every Kafka consumer reads across.
//!
//! - [`range`]: the clean and dirty sections of a log and its dirty ratio.
//! - [`offset_map`]: the bounded key → last offset map (`log.cleaner.dedupe.buffer.size`).
//! - [`records`] / [`codec`]: records inside batches, recompressed with the batch's codec.
//! - [`txn`]: the last stable offset, aborted transactions and markers.
//! - [`pass`]: one cleaning of one log.
//! - [`throttle`]: the I/O budget the threads share (`log.cleaner.io.max.bytes.per.second`).
//! - [`manager`]: the cleaner threads (`log.cleaner.threads`) that pick the filthiest log and
//!   the per-partition status they expose.
//!
//! The disk log provides the segment access and the crash-safe swap (`.cleaned` → `.swap`);
//! the in-memory storage does not compact and refuses the policy.

pub mod codec;
pub mod manager;
pub mod offset_map;
pub mod pass;
pub mod range;
pub mod records;
pub mod throttle;
pub mod txn;

use serde::{Deserialize, Serialize};

pub use manager::{
    describe_topic, topic_report, LastCleaning, LogCleaner, PartitionCleanerReport,
    PartitionCleanerStatus, TopicCleanerReport,
};
pub use pass::{CleanStats, Cleaner, PassOutcome};
pub use txn::{AbortedTxn, NoTransactions, PartitionView};

/// Broker-wide cleaner settings, under Kafka's `log.cleaner.*` names; defaults are Kafka's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanerConfig {
    /// `log.cleaner.enable` (default true): run cleaner threads at all.
    pub enable: bool,
    /// `log.cleaner.threads` (default 1).
    pub threads: usize,
    /// `log.cleaner.dedupe.buffer.size` (default 128 MiB): the offset maps' memory, shared by
    /// the threads.
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.size` (default 512 KiB): how much of a segment is read at once.
    pub io_buffer_bytes: usize,
    /// `log.cleaner.backoff.ms` (default 15 s): how long a thread sleeps when no log needs
    /// cleaning.
    pub backoff_ms: u64,
    /// `log.cleaner.io.max.bytes.per.second` (default: unlimited, Kafka's `Double.MaxValue`):
    /// the bytes all cleaner threads together may read plus write per second.
    pub io_max_bytes_per_second: f64,
    /// The most bytes one batch may decompress to before the cleaner gives up on cleaning
    /// inside it (it is then kept whole). Not a Kafka setting: Kafka grows its buffers up to
    /// `max.message.bytes`, which bounds compressed bytes only.
    pub max_batch_bytes: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enable: true,
            threads: 1,
            dedupe_buffer_bytes: 128 * 1024 * 1024,
            io_buffer_bytes: 512 * 1024,
            backoff_ms: 15_000,
            io_max_bytes_per_second: f64::MAX,
            max_batch_bytes: 64 * 1024 * 1024,
        }
    }
}

impl CleanerConfig {
    /// Each thread's share of the dedupe buffer, as in Kafka.
    pub fn dedupe_buffer_bytes_per_thread(&self) -> usize {
        self.dedupe_buffer_bytes / self.threads.max(1)
    }

    /// Whether `key` is a cleaner setting this broker honours.
    pub fn handles(key: &str) -> bool {
        matches!(
            key,
            "log.cleaner.enable"
                | "log.cleaner.threads"
                | "log.cleaner.dedupe.buffer.size"
                | "log.cleaner.io.buffer.size"
                | "log.cleaner.backoff.ms"
                | "log.cleaner.io.max.bytes.per.second"
        )
    }

    /// Whether `key` may change at runtime (Kafka's `LogCleaner.ReconfigurableConfigs`, less
    /// `log.cleaner.io.buffer.load.factor`, which this broker does not take): the threads pick
    /// the new value up without a restart.
    pub fn is_dynamic(key: &str) -> bool {
        Self::handles(key) && key != "log.cleaner.enable"
    }

    /// Kafka's checks of a runtime change from `self` to `next`: a changed thread count is at
    /// least one, and at most halved or doubled at once.
    pub fn check_reconfiguration(&self, next: &CleanerConfig) -> crate::error::Result<()> {
        let (now, want) = (self.threads, next.threads);
        if now == want {
            return Ok(());
        }
        let refuse = |reason: String| {
            Err(crate::error::BrokerError::ConfigChangeRejected(format!(
                "Invalid value {want} for configuration log.cleaner.threads: {reason}"
            )))
        };
        if want < 1 {
            return refuse("Log cleaner threads should be at least 1".into());
        }
        if want < now / 2 {
            return refuse(format!(
                "Log cleaner threads cannot be reduced to less than half the current value {now}"
            ));
        }
        if want > now.max(1) * 2 {
            return refuse(format!(
                "Log cleaner threads cannot be increased to more than double the current value {now}"
            ));
        }
        Ok(())
    }

    /// Sets one `log.cleaner.*` setting by its Kafka name.
    pub fn set(&mut self, key: &str, value: &str) -> crate::error::Result<()> {
        let v = value.trim();
        let bad = |reason: &str| crate::error::BrokerError::invalid_config(key, value, reason);
        let int = |min: i64| -> crate::error::Result<i64> {
            let n: i64 = v.parse().map_err(|_| bad("not an integer"))?;
            if n < min {
                return Err(bad(&format!("must be at least {min}")));
            }
            Ok(n)
        };
        match key {
            "log.cleaner.enable" => self.enable = v.parse().map_err(|_| bad("not true/false"))?,
            "log.cleaner.threads" => self.threads = int(0)? as usize,
            "log.cleaner.dedupe.buffer.size" => self.dedupe_buffer_bytes = int(1024)? as usize,
            "log.cleaner.io.buffer.size" => self.io_buffer_bytes = int(1024)? as usize,
            "log.cleaner.backoff.ms" => self.backoff_ms = int(0)? as u64,
            "log.cleaner.io.max.bytes.per.second" => {
                let rate: f64 = v.parse().map_err(|_| bad("not a number"))?;
                if rate.is_nan() || rate <= 0.0 {
                    return Err(bad("must be above 0"));
                }
                self.io_max_bytes_per_second = rate;
            }
            _ => return Err(bad("not supported by this broker")),
        }
        Ok(())
    }
}
