//! [`KafkaReceiverConfig`]: the Kafka parameters and topic map of `create_stream`, plus the
//! receiver settings Spark reads from its `SparkConf` (write-ahead log, block interval, block
//! queue size, receiver max rate, restart delay).
//!
//! The receiver settings may be given with the builder methods or as `spate.streaming.*` keys in
//! the Kafka parameter map (the keys are in [`crate::keys`]; they are taken out before the map
//! reaches librdkafka, which would reject them). Every other key is passed to librdkafka unchanged, so Kafka's own names work.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use spate_streaming::receiver::{BlockGeneratorConfig, ReceiverConfig};

use crate::error::{Result, SpateKafkaError};
use crate::keys::{
    canonical, BACKPRESSURE_ENABLED, BACKPRESSURE_INITIAL_RATE, BLOCK_INTERVAL_MS,
    BLOCK_QUEUE_SIZE, RECEIVER_KEYS, RECEIVER_MAX_BUFFERED_BYTES, RECEIVER_MAX_RATE,
    RECEIVER_RESTART_DELAY_MS, WRITE_AHEAD_LOG_ENABLE,
};

/// Default of how long a reliable receiver waits, when its partitions are revoked or it stops,
/// for already-received records to become durable so that their offsets can be committed.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Default of [`RECEIVER_MAX_BUFFERED_BYTES`]: received records in memory, per receiver.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 48 * 1024 * 1024;

/// A block is cut early once it holds this fraction of the memory budget, so that several
/// blocks fit in it (one being filled, some queued or stored, one being read by a batch).
const BLOCKS_PER_BUDGET: usize = 8;

/// The receiver's pre-fetch budget when the parameters set none: librdkafka's
/// `queued.max.messages.kbytes`, in KiB, for all of the receiver's consumers together.
/// librdkafka's default (65536 KiB per consumer) would hold more than the receiver's own
/// memory budget before a record reaches it.
pub const DEFAULT_PREFETCH_KBYTES: u64 = 16 * 1024;

/// A receiver's `queued.min.messages` default per KiB of its pre-fetch budget. librdkafka backs
/// off from fetching once its queue holds that many messages, so with small records the count,
/// not the kbytes, bounds the queue: at one per KiB a receiver read 1.12M–1.21M records/s of
/// 100-byte records (peak RSS 78–84 MiB), at four 1.33M (101–110 MiB), at sixteen no more
/// (148–150 MiB) (`spate bench receiver`, docs/benchmarks.md).
const PREFETCH_MESSAGES_PER_KIB: u64 = 4;

/// The fewest pre-fetched messages a receiver's `queued.min.messages` default allows.
const MIN_PREFETCH_MESSAGES: u64 = 1000;

/// Settings of one Kafka receiver. See the module docs.
#[derive(Debug, Clone)]
pub struct KafkaReceiverConfig {
    kafka_params: BTreeMap<String, String>,
    topics: BTreeMap<String, usize>,
    write_ahead_log: bool,
    block: BlockGeneratorConfig,
    max_rate: Option<f64>,
    initial_rate: Option<f64>,
    restart_delay: Duration,
    max_restart_delay: Duration,
    poll_timeout: Duration,
    flush_timeout: Duration,
    backpressure: bool,
    max_buffered_bytes: usize,
}

fn parse<T: std::str::FromStr>(key: &str, value: &str, what: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| SpateKafkaError::config(key, value, format!("expected {what}")))
}

impl KafkaReceiverConfig {
    /// Settings from Kafka parameters (must include `group.id`; `spate.streaming.*` receiver keys
    /// are taken out) and `topics`: topic → number of consumer threads for it (Spark's
    /// `Map[topic, numThreads]`).
    pub fn new<K, V, T>(
        kafka_params: impl IntoIterator<Item = (K, V)>,
        topics: impl IntoIterator<Item = (T, usize)>,
    ) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
        T: Into<String>,
    {
        let mut config = KafkaReceiverConfig {
            kafka_params: BTreeMap::new(),
            topics: topics.into_iter().map(|(t, n)| (t.into(), n)).collect(),
            write_ahead_log: false,
            block: BlockGeneratorConfig::default(),
            max_rate: None,
            initial_rate: None,
            restart_delay: ReceiverConfig::default().restart_delay,
            max_restart_delay: ReceiverConfig::default().max_restart_delay,
            poll_timeout: Duration::from_millis(100),
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
            backpressure: false,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
        };
        for (k, v) in kafka_params {
            let (k, v): (String, String) = (k.into(), v.into());
            match canonical(&k) {
                WRITE_AHEAD_LOG_ENABLE => {
                    config.write_ahead_log = parse(&k, &v, "true or false")?;
                }
                BLOCK_INTERVAL_MS => {
                    let ms: u64 = parse(&k, &v, "milliseconds")?;
                    config.block.block_interval = Duration::from_millis(ms);
                }
                BLOCK_QUEUE_SIZE => config.block.block_queue_size = parse(&k, &v, "a count")?,
                RECEIVER_MAX_RATE => {
                    config.max_rate = Some(parse(&k, &v, "records per second")?);
                }
                BACKPRESSURE_INITIAL_RATE => {
                    config.initial_rate = Some(parse(&k, &v, "records per second")?);
                }
                BACKPRESSURE_ENABLED => config.backpressure = parse(&k, &v, "true or false")?,
                RECEIVER_MAX_BUFFERED_BYTES => {
                    config.max_buffered_bytes = parse(&k, &v, "a byte count")?;
                }
                RECEIVER_RESTART_DELAY_MS => {
                    let ms: u64 = parse(&k, &v, "milliseconds")?;
                    config.restart_delay = Duration::from_millis(ms);
                }
                other if other.starts_with("spate.") => {
                    return Err(SpateKafkaError::config(
                        other,
                        v,
                        format!(
                            "unknown receiver setting; known: {}",
                            RECEIVER_KEYS.join(", ")
                        ),
                    ));
                }
                _ => {
                    let _ = config.kafka_params.insert(k, v);
                }
            }
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        match self.kafka_params.get("group.id") {
            Some(g) if !g.trim().is_empty() => {}
            other => {
                return Err(SpateKafkaError::config(
                    "group.id",
                    other.cloned().unwrap_or_default(),
                    "a receiver consumes with a consumer group: set group.id",
                ))
            }
        }
        if self.topics.is_empty() {
            return Err(SpateKafkaError::config(
                "topics",
                "",
                "name at least one topic",
            ));
        }
        if let Some((topic, _)) = self.topics.iter().find(|(_, n)| **n == 0) {
            return Err(SpateKafkaError::config(
                format!("topics[{topic}]"),
                "0",
                "each topic needs at least one consumer thread",
            ));
        }
        if self.block.block_interval.is_zero() {
            return Err(SpateKafkaError::config(
                BLOCK_INTERVAL_MS,
                "0",
                "must be at least 1 ms",
            ));
        }
        if self.max_buffered_bytes == 0 {
            return Err(SpateKafkaError::config(
                RECEIVER_MAX_BUFFERED_BYTES,
                "0",
                "must be at least 1",
            ));
        }
        if self.block.block_queue_size == 0 {
            return Err(SpateKafkaError::config(
                BLOCK_QUEUE_SIZE,
                "0",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// Turns the receiver write-ahead log on or off (reliable receiver; default off).
    pub fn write_ahead_log(mut self, enable: bool) -> Self {
        self.write_ahead_log = enable;
        self
    }

    /// Block interval (default 200 ms).
    pub fn block_interval(mut self, interval: Duration) -> Result<Self> {
        self.block.block_interval = interval;
        self.validate().map(|()| self)
    }

    /// Block queue size (default 10).
    pub fn block_queue_size(mut self, n: usize) -> Result<Self> {
        self.block.block_queue_size = n;
        self.validate().map(|()| self)
    }

    /// Bytes of received records held in memory at most (default 48 MiB).
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Result<Self> {
        self.max_buffered_bytes = bytes;
        self.validate().map(|()| self)
    }

    /// Max records/s of this receiver (`None`: unlimited); backpressure never exceeds it.
    pub fn max_rate(mut self, rate: Option<f64>) -> Self {
        self.max_rate = rate.filter(|r| *r > 0.0);
        self
    }

    /// Rate until backpressure has an estimate (`None`: the max rate).
    pub fn initial_rate(mut self, rate: Option<f64>) -> Self {
        self.initial_rate = rate.filter(|r| *r > 0.0);
        self
    }

    /// First restart delay after a failure (doubles per consecutive failure up to 60 s).
    pub fn restart_delay(mut self, delay: Duration) -> Self {
        self.restart_delay = delay;
        self
    }

    /// How long a reliable receiver waits on revoke or stop for received records to be stored
    /// before committing (default 10 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Turns backpressure on or off (default off).
    pub fn backpressure(mut self, enable: bool) -> Self {
        self.backpressure = enable;
        self
    }

    /// Whether backpressure is on.
    pub fn backpressure_enabled(&self) -> bool {
        self.backpressure
    }

    /// Whether the receiver write-ahead log is on.
    pub fn write_ahead_log_enabled(&self) -> bool {
        self.write_ahead_log
    }

    /// The consumer group.
    pub fn group_id(&self) -> &str {
        self.kafka_params.get("group.id").map_or("", String::as_str)
    }

    /// Topic → consumer threads.
    pub fn topics(&self) -> &BTreeMap<String, usize> {
        &self.topics
    }

    /// Total consumer threads of the receiver.
    pub fn num_threads(&self) -> usize {
        self.topics.values().sum()
    }

    /// The Kafka parameters as given (without `spate.*` keys).
    pub fn kafka_params(&self) -> &BTreeMap<String, String> {
        &self.kafka_params
    }

    pub(crate) fn max_rate_limit(&self) -> Option<f64> {
        self.max_rate
    }

    pub(crate) fn initial_rate_limit(&self) -> Option<f64> {
        self.initial_rate
    }

    pub(crate) fn poll_timeout(&self) -> Duration {
        self.poll_timeout
    }

    pub(crate) fn flush_timeout_value(&self) -> Duration {
        self.flush_timeout
    }

    /// Block generation and restart settings for the supervisor.
    pub fn receiver_config(&self) -> ReceiverConfig {
        let budget = self.max_buffered_bytes;
        ReceiverConfig {
            block: spate_streaming::receiver::BlockGeneratorConfig {
                max_buffered_bytes: Some(budget),
                max_block_bytes: Some((budget / BLOCKS_PER_BUDGET).max(1)),
                ..self.block.clone()
            },
            restart_delay: self.restart_delay,
            max_restart_delay: self.max_restart_delay.max(self.restart_delay),
            max_restarts: None,
        }
    }

    /// The librdkafka consumer configuration. The reliable receiver turns auto-commit (and the
    /// automatic offset store) off — it commits the offsets of a block only once the block is in
    /// the write-ahead log — and warns if the parameters asked for it (Spark's
    /// `ReliableKafkaReceiver` does the same).
    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.kafka_params {
            let _ = c.set(k, v);
        }
        if self.write_ahead_log {
            if self
                .kafka_params
                .get("enable.auto.commit")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            {
                tracing::warn!(
                    group = self.group_id(),
                    "enable.auto.commit=true is ignored with the receiver write-ahead log: \
                     offsets are committed after their block is durable"
                );
            }
            let _ = c
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false");
        }
        if !self.kafka_params.contains_key("fetch.queue.backoff.ms") {
            let _ = c.set(
                "fetch.queue.backoff.ms",
                crate::direct::params::FETCH_QUEUE_BACKOFF_MS,
            );
        }
        self.split_prefetch(&mut c);
        c
    }

    /// The pre-fetch budget is the receiver's, not each consumer's: `queued.max.messages.kbytes`
    /// (default [`DEFAULT_PREFETCH_KBYTES`]) and `queued.min.messages` (default: four messages
    /// per KiB of that budget, at least 1000) are divided
    /// evenly over the receiver's consumer threads. librdkafka keeps fetching until its queue
    /// holds `queued.min.messages` messages *or* the kbytes, and keeps each queued message in
    /// an op of a few hundred bytes beyond the record: its own default of 100000 small records
    /// held about 40 MiB beside a 16 MiB budget.
    fn split_prefetch(&self, c: &mut ClientConfig) {
        let threads = self.num_threads().max(1) as u64;
        let total = |key: &str, default: u64| {
            self.kafka_params
                .get(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        let kbytes = total("queued.max.messages.kbytes", DEFAULT_PREFETCH_KBYTES);
        let messages = total(
            "queued.min.messages",
            (kbytes * PREFETCH_MESSAGES_PER_KIB).max(MIN_PREFETCH_MESSAGES),
        );
        let share_kbytes = (kbytes / threads).max(1);
        let _ = c
            .set("queued.max.messages.kbytes", share_kbytes.to_string())
            .set(
                "queued.min.messages",
                (messages / threads).max(1).to_string(),
            );
        self.bound_fetch_sizes(c, share_kbytes);
    }

    /// A fetch response is held in memory beside the pre-fetch queue until its records are
    /// queued, so an unbounded one (librdkafka's `fetch.max.bytes` default is 50 MiB, and with
    /// `max.partition.fetch.bytes` raised a response for many partitions reaches it) would hold
    /// more than the queue itself. Unless the parameters set them, a consumer's fetch asks for
    /// at most a quarter of its pre-fetch share (never less than 1 MiB, the size of one large
    /// record) and 1 MiB per partition, librdkafka's default.
    fn bound_fetch_sizes(&self, c: &mut ClientConfig, share_kbytes: u64) {
        const MIB: u64 = 1024 * 1024;
        let set = |key: &str| self.kafka_params.contains_key(key);
        if !set("fetch.max.bytes") && !set("message.max.bytes") {
            let fetch_max = (share_kbytes * 1024 / 4).max(MIB);
            let _ = c.set("fetch.max.bytes", fetch_max.to_string());
        }
        if !set("max.partition.fetch.bytes") {
            let _ = c.set("max.partition.fetch.bytes", MIB.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut p = vec![
            ("bootstrap.servers".to_string(), "127.0.0.1:1".to_string()),
            ("group.id".to_string(), "g".to_string()),
        ];
        p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        p
    }

    #[test]
    fn spate_keys_are_taken_out_of_the_kafka_params() {
        let c = KafkaReceiverConfig::new(
            params(&[
                (WRITE_AHEAD_LOG_ENABLE, "true"),
                (BLOCK_INTERVAL_MS, "50"),
                (BLOCK_QUEUE_SIZE, "3"),
                (RECEIVER_MAX_RATE, "1000"),
                ("enable.auto.commit", "true"),
            ]),
            [("t", 2), ("u", 1)],
        )
        .unwrap();
        assert!(c.write_ahead_log_enabled());
        assert_eq!(c.num_threads(), 3);
        assert!(c.kafka_params().keys().all(|k| !k.starts_with("spate.")));
        let rc = c.receiver_config();
        assert_eq!(rc.block.block_interval, Duration::from_millis(50));
        assert_eq!(rc.block.block_queue_size, 3);
        assert_eq!(c.max_rate_limit(), Some(1000.0));
        let cc = c.consumer_config();
        assert_eq!(cc.get("enable.auto.commit"), Some("false"));
        assert_eq!(cc.get("enable.auto.offset.store"), Some("false"));
    }

    #[test]
    fn the_old_underscored_write_ahead_log_key_still_turns_the_log_on() {
        let c = KafkaReceiverConfig::new(
            params(&[(crate::keys::WRITE_AHEAD_LOG_ENABLE_ALIAS, "true")]),
            [("t", 1)],
        )
        .unwrap();
        assert!(c.write_ahead_log_enabled());
        assert!(c.kafka_params().keys().all(|k| !k.starts_with("spate.")));
        assert_eq!(c.consumer_config().get("enable.auto.commit"), Some("false"));
    }

    #[test]
    fn unreliable_mode_keeps_the_users_auto_commit() {
        let c = KafkaReceiverConfig::new(params(&[]), [("t", 1)]).unwrap();
        assert!(!c.write_ahead_log_enabled());
        assert_eq!(c.consumer_config().get("enable.auto.commit"), None);
    }

    #[test]
    fn the_fetch_queue_backoff_is_short_unless_set() {
        // librdkafka's 1 s would stall the receiver after nearly every fetch.
        let c = KafkaReceiverConfig::new(params(&[]), [("t", 1)]).unwrap();
        assert_eq!(c.consumer_config().get("fetch.queue.backoff.ms"), Some("2"));
        let c = KafkaReceiverConfig::new(params(&[("fetch.queue.backoff.ms", "500")]), [("t", 1)])
            .unwrap();
        assert_eq!(
            c.consumer_config().get("fetch.queue.backoff.ms"),
            Some("500")
        );
    }

    #[test]
    fn fetch_sizes_are_bounded_by_the_prefetch_share_unless_set() {
        // 16 MiB over 2 threads: 8 MiB each, fetches of at most 2 MiB, 1 MiB per partition.
        let c = KafkaReceiverConfig::new(params(&[]), [("t", 2)]).unwrap();
        let cc = c.consumer_config();
        assert_eq!(cc.get("queued.max.messages.kbytes"), Some("8192"));
        // Four messages per KiB of the receiver's 16 MiB, split over its 2 threads.
        assert_eq!(cc.get("queued.min.messages"), Some("32768"));
        assert_eq!(cc.get("fetch.max.bytes"), Some("2097152"));
        assert_eq!(cc.get("max.partition.fetch.bytes"), Some("1048576"));
        // A small share still fetches one large record.
        let c = KafkaReceiverConfig::new(
            params(&[("queued.max.messages.kbytes", "1024")]),
            [("t", 1)],
        )
        .unwrap();
        assert_eq!(c.consumer_config().get("fetch.max.bytes"), Some("1048576"));
        // What the user sets stands.
        let c = KafkaReceiverConfig::new(
            params(&[
                ("fetch.max.bytes", "33554432"),
                ("max.partition.fetch.bytes", "4194304"),
            ]),
            [("t", 1)],
        )
        .unwrap();
        let cc = c.consumer_config();
        assert_eq!(cc.get("fetch.max.bytes"), Some("33554432"));
        assert_eq!(cc.get("max.partition.fetch.bytes"), Some("4194304"));
    }

    #[test]
    fn bad_settings_name_the_key() {
        let no_group = KafkaReceiverConfig::new([("bootstrap.servers", "x")], [("t", 1)]);
        assert!(no_group.unwrap_err().to_string().contains("group.id"));
        let zero = KafkaReceiverConfig::new(params(&[]), [("t", 0)]);
        assert!(zero.unwrap_err().to_string().contains("topics[t]"));
        let bad = KafkaReceiverConfig::new(params(&[(BLOCK_INTERVAL_MS, "soon")]), [("t", 1)]);
        assert!(bad.unwrap_err().to_string().contains(BLOCK_INTERVAL_MS));
        let typo = KafkaReceiverConfig::new(
            params(&[("spate.streaming.receiver.wal", "true")]),
            [("t", 1)],
        );
        assert!(typo
            .unwrap_err()
            .to_string()
            .contains("unknown receiver setting"));
        let none = KafkaReceiverConfig::new(params(&[]), Vec::<(String, usize)>::new());
        assert!(none.is_err());
    }
}
