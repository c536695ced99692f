//! [`DirectStreamConfig`]: the stream settings that are not Kafka client settings — Spark's
//! `spark.streaming.kafka.*` / `spark.streaming.backpressure.*` keys, with spate's defaults.

use std::time::Duration;

use crate::direct::per_partition::PerPartitionConfig;
use crate::direct::retry::RetryPolicy;

/// Rate limits, data-loss policy, timeouts and the consumer cache of a direct stream.
#[derive(Debug, Clone)]
pub struct DirectStreamConfig {
    /// Static per-partition cap and floor.
    pub per_partition: PerPartitionConfig,
    /// `spark.streaming.backpressure.enabled` (default off, as in Spark).
    pub backpressure: bool,
    /// Records/s that bound the first batch (and every batch until backpressure has an
    /// estimate). Spark's direct stream defaults to none, so its first batch reads the whole backlog; spate to
    /// [`DirectStreamConfig::DEFAULT_INITIAL_RATE`]. `None` restores Spark's behaviour.
    pub initial_rate: Option<f64>,
    /// Fail a batch whose offsets were deleted (true), or skip to the earliest available offset
    /// and report how many offsets were lost (false).
    pub fail_on_data_loss: bool,
    /// How long a task may wait for the next record before failing with a clear error
    /// (`spark.streaming.kafka.consumer.poll.ms`; Spark falls back to 120 s).
    pub poll_timeout: Duration,
    /// Maximum number of idle cached task consumers (`consumer.cache.maxCapacity`, 64).
    pub consumer_cache_capacity: usize,
    /// KiB all task consumers may pre-fetch together: each consumer of a batch of *n*
    /// partitions gets `prefetch_kbytes / n` (at least [`DirectStreamConfig::MIN_PREFETCH_KBYTES`])
    /// as its `queued.max.messages.kbytes`, unless the Kafka params set that key. Records are
    /// streamed to the task from this queue, so it bounds what a batch holds of its input.
    pub prefetch_kbytes: u64,
    /// Timeout of one metadata / offset request to the broker.
    pub request_timeout: Duration,
    /// Backoff for an unreachable broker.
    pub retry: RetryPolicy,
}

impl Default for DirectStreamConfig {
    fn default() -> Self {
        DirectStreamConfig {
            per_partition: PerPartitionConfig::default(),
            backpressure: false,
            initial_rate: Some(Self::DEFAULT_INITIAL_RATE),
            fail_on_data_loss: true,
            poll_timeout: Duration::from_secs(120),
            consumer_cache_capacity: 64,
            prefetch_kbytes: Self::DEFAULT_PREFETCH_KBYTES,
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

impl DirectStreamConfig {
    /// Default pre-fetch budget of a stream's task consumers together (16 MiB).
    pub const DEFAULT_PREFETCH_KBYTES: u64 = 16 * 1024;
    /// Smallest share of the budget a consumer gets (a quarter of a 1 MiB partition fetch).
    pub const MIN_PREFETCH_KBYTES: u64 = 256;

    /// One consumer's share of [`DirectStreamConfig::prefetch_kbytes`] when a batch reads
    /// `partitions` partitions at once.
    pub fn prefetch_share_kbytes(&self, partitions: usize) -> u64 {
        let n = u64::try_from(partitions.max(1)).unwrap_or(u64::MAX);
        (self.prefetch_kbytes / n).max(Self::MIN_PREFETCH_KBYTES)
    }

    /// Sets [`DirectStreamConfig::prefetch_kbytes`].
    pub fn prefetch_kbytes(mut self, kbytes: u64) -> Self {
        self.prefetch_kbytes = kbytes;
        self
    }

    /// Default first-batch bound, records/s across the stream.
    pub const DEFAULT_INITIAL_RATE: f64 = 100_000.0;

    /// Caps every partition at `rate` records/s (`spark.streaming.kafka.maxRatePerPartition`).
    pub fn max_rate_per_partition(mut self, rate: u64) -> Self {
        self.per_partition = self.per_partition.max_rate_per_partition(rate);
        self
    }

    /// Lets backpressure lower a partition's rate no further than `rate` records/s
    /// (`spark.streaming.kafka.minRatePerPartition`).
    pub fn min_rate_per_partition(mut self, rate: u64) -> Self {
        self.per_partition = self.per_partition.min_rate_per_partition(rate);
        self
    }

    /// Replaces the per-partition rate settings.
    pub fn per_partition(mut self, c: PerPartitionConfig) -> Self {
        self.per_partition = c;
        self
    }

    /// Turns rate control from the batches' processing times on or off
    /// (`spark.streaming.backpressure.enabled`).
    pub fn backpressure(mut self, on: bool) -> Self {
        self.backpressure = on;
        self
    }

    /// Bounds the first batch under backpressure to `rate` records/s across the stream
    /// (`None`: unbounded).
    pub fn initial_rate(mut self, rate: Option<f64>) -> Self {
        self.initial_rate = rate;
        self
    }

    /// Sets [`DirectStreamConfig::fail_on_data_loss`].
    pub fn fail_on_data_loss(mut self, fail: bool) -> Self {
        self.fail_on_data_loss = fail;
        self
    }

    /// Sets [`DirectStreamConfig::poll_timeout`].
    pub fn poll_timeout(mut self, d: Duration) -> Self {
        self.poll_timeout = d;
        self
    }

    /// Sets [`DirectStreamConfig::consumer_cache_capacity`].
    pub fn consumer_cache_capacity(mut self, n: usize) -> Self {
        self.consumer_cache_capacity = n;
        self
    }

    /// Sets [`DirectStreamConfig::request_timeout`].
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Sets the backoff for an unreachable broker.
    pub fn retry(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }
}
