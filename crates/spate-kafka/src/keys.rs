//! Every `spate.streaming.*` setting key the crate accepts in a Kafka parameter map, in one
//! table. They are Spark's `spark.streaming.*` settings under dotted lower-case names (Spark's
//! `maxRatePerPartition` is `max.rate.per.partition` here), for jobs configured from files,
//! environment or the command line rather than code. Both streams take their keys out of the map
//! before it reaches librdkafka (which would reject them); an unknown `spate.*` key is an error
//! naming it, so a typo never passes silently.
//!
//! The direct stream reads [`DIRECT_KEYS`] (in `direct::stream_keys`), the receiver stream reads
//! [`RECEIVER_KEYS`] (in `receiver::config`); the backpressure keys belong to both.

// ---- shared by both streams ----

/// Adapt the ingestion rate with the PID estimator (`spark.streaming.backpressure.enabled`,
/// default `false`); a receiver never goes above its max rate.
pub const BACKPRESSURE_ENABLED: &str = "spate.streaming.backpressure.enabled";
/// Rate before backpressure has an estimate (`spark.streaming.backpressure.initialRate`). The
/// direct stream reads it as the total records/s bounding the first batch (`none` = unbounded,
/// as Spark); a receiver as its records/s (0 = start at the max rate).
pub const BACKPRESSURE_INITIAL_RATE: &str = "spate.streaming.backpressure.initial.rate";

// ---- the direct stream ----

/// Records/s cap per partition (Spark's `spark.streaming.kafka.maxRatePerPartition`; 0 = none).
pub const MAX_RATE_PER_PARTITION: &str = "spate.streaming.kafka.max.rate.per.partition";
/// Records/s floor per partition while a limit is active (`…minRatePerPartition`, 1).
pub const MIN_RATE_PER_PARTITION: &str = "spate.streaming.kafka.min.rate.per.partition";
/// Fail a batch whose offsets retention deleted, or skip them and count (`failOnDataLoss`).
pub const FAIL_ON_DATA_LOSS: &str = "spate.streaming.kafka.fail.on.data.loss";
/// How long a task may wait for a record of its range (`spark.streaming.kafka.consumer.poll.ms`).
pub const CONSUMER_POLL_MS: &str = "spate.streaming.kafka.consumer.poll.ms";
/// Idle task consumers kept for reuse (`…consumer.cache.maxCapacity`).
pub const CONSUMER_CACHE_MAX_CAPACITY: &str = "spate.streaming.kafka.consumer.cache.max.capacity";
/// KiB that all task consumers of a stream may pre-fetch together, split across the partitions
/// of a batch (spate's; each consumer's share becomes its `queued.max.messages.kbytes`).
pub const CONSUMER_PREFETCH_KBYTES: &str = "spate.streaming.kafka.consumer.prefetch.kbytes";

// ---- the receiver stream ----

/// Turn the receiver write-ahead log on (Spark's `spark.streaming.receiver.writeAheadLog.enable`,
/// default `false`).
pub const WRITE_AHEAD_LOG_ENABLE: &str = "spate.streaming.receiver.write.ahead.log.enable";
/// The name [`WRITE_AHEAD_LOG_ENABLE`] had before every key was dotted; still accepted.
pub const WRITE_AHEAD_LOG_ENABLE_ALIAS: &str = "spate.streaming.receiver.write_ahead_log.enable";
/// Block interval in ms (Spark's `spark.streaming.blockInterval`, default 200).
pub const BLOCK_INTERVAL_MS: &str = "spate.streaming.block.interval.ms";
/// Blocks that may wait for storage before the receiver blocks (Spark's
/// `spark.streaming.blockQueueSize`, default 10).
pub const BLOCK_QUEUE_SIZE: &str = "spate.streaming.block.queue.size";
/// Max records/s per receiver (Spark's `spark.streaming.receiver.maxRate`; 0 = unlimited).
pub const RECEIVER_MAX_RATE: &str = "spate.streaming.receiver.max.rate";
/// First delay before a failed receiver restarts, doubling per failure (Spark's
/// `spark.streaming.receiverRestartDelay`, default 2000 ms).
pub const RECEIVER_RESTART_DELAY_MS: &str = "spate.streaming.receiver.restart.delay.ms";
/// Bytes of received records a receiver holds in memory at most — its block buffer, block queue
/// and the blocks batches have not finished — before it stops polling (default 48 MiB; no Spark
/// equivalent: Spark bounds the queue in blocks only).
pub const RECEIVER_MAX_BUFFERED_BYTES: &str = "spate.streaming.receiver.max.buffered.bytes";

/// The keys the direct stream reads, for documentation and error messages.
pub const DIRECT_KEYS: &[&str] = &[
    CONSUMER_PREFETCH_KBYTES,
    MAX_RATE_PER_PARTITION,
    MIN_RATE_PER_PARTITION,
    BACKPRESSURE_ENABLED,
    BACKPRESSURE_INITIAL_RATE,
    FAIL_ON_DATA_LOSS,
    CONSUMER_POLL_MS,
    CONSUMER_CACHE_MAX_CAPACITY,
];

/// The keys the receiver stream reads (aliases not included).
pub const RECEIVER_KEYS: &[&str] = &[
    WRITE_AHEAD_LOG_ENABLE,
    BLOCK_INTERVAL_MS,
    BLOCK_QUEUE_SIZE,
    RECEIVER_MAX_RATE,
    BACKPRESSURE_ENABLED,
    BACKPRESSURE_INITIAL_RATE,
    RECEIVER_RESTART_DELAY_MS,
    RECEIVER_MAX_BUFFERED_BYTES,
];

/// Old names still accepted, each with the key it stands for.
pub const ALIASES: &[(&str, &str)] = &[(WRITE_AHEAD_LOG_ENABLE_ALIAS, WRITE_AHEAD_LOG_ENABLE)];

/// The current name of `key`: itself, or the key an old alias stands for.
pub fn canonical(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, current)| current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_dotted_lower_case() {
        for key in DIRECT_KEYS.iter().chain(RECEIVER_KEYS) {
            assert!(key.starts_with("spate.streaming."), "{key}");
            assert!(
                key.chars().all(|c| c.is_ascii_lowercase() || c == '.'),
                "{key} is not dotted lower case"
            );
        }
    }

    #[test]
    fn the_old_write_ahead_log_key_is_an_alias() {
        assert_eq!(
            canonical(WRITE_AHEAD_LOG_ENABLE_ALIAS),
            WRITE_AHEAD_LOG_ENABLE
        );
        assert_eq!(canonical(BLOCK_INTERVAL_MS), BLOCK_INTERVAL_MS);
    }
}
