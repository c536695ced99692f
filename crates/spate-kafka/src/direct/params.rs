//! [`KafkaParams`]: the user's Kafka settings under Kafka's own names (`bootstrap.servers`,
//! `group.id`, `auto.offset.reset`, `isolation.level`, `security.protocol`, `sasl.*`, `ssl.*`, …)
//! and the rdkafka client configs derived from them for the driver (metadata, offsets, commits)
//! and for the task consumers that read ranges.
//!
//! Task consumers never join the group and never auto-commit: the plan decides what they read
//! (Spark's `fixKafkaParams`, without the forced `spark-executor-` group prefix users disliked).

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::config::ClientConfig;

use crate::error::{Result, SpateKafkaError};

/// `fetch.queue.backoff.ms` for the streams' consumers unless the parameters set it: how long
/// librdkafka waits before fetching again once its queue holds `queued.min.messages` or the
/// kbytes. Both streams keep that queue small (a share of a pre-fetch budget), so it is full
/// right after almost every fetch, and the consumer drains it in a few milliseconds: with
/// librdkafka's 1 s default a receiver read 31,627 records/s where it reads 1.3M, and at 10 ms
/// the direct stream's pass-through reached 1.21M records/s where 2 ms reaches 2.08M
/// (`spate bench direct` / `bench receiver`, 5M x 100 B records, docs/benchmarks.md). The cost
/// is a check of the queue every 2 ms while the job is the slower side.
pub(crate) const FETCH_QUEUE_BACKOFF_MS: &str = "2";

/// Keys whose values never reach logs or `Debug` output.
const SENSITIVE_KEYS: &[&str] = &[
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.key.pem",
    "ssl_key",
];

/// What to do for a partition with no explicit or committed starting offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOffsetReset {
    /// Start at the partition's earliest offset (`earliest`).
    Earliest,
    /// Start at the partition's latest offset, reading only new records (`latest`).
    Latest,
    /// Fail instead of guessing (`none` / `error`).
    None,
}

/// Kafka client settings by Kafka's names. Cloneable, comparable, with secrets redacted in
/// `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaParams {
    map: BTreeMap<String, String>,
}

impl fmt::Debug for KafkaParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted: BTreeMap<&str, &str> = self
            .map
            .iter()
            .map(|(k, v)| {
                let shown = if SENSITIVE_KEYS.contains(&k.as_str()) {
                    "[redacted]"
                } else {
                    v
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_tuple("KafkaParams").field(&redacted).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for KafkaParams {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        KafkaParams {
            map: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl KafkaParams {
    /// Empty parameters (add `bootstrap.servers` and the rest with [`KafkaParams::set`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a Kafka setting (builder style).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.map.insert(key.into(), value.into());
        self
    }

    /// Every setting, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// `bootstrap.servers`, required.
    pub fn bootstrap_servers(&self) -> Result<&str> {
        match self.get("bootstrap.servers") {
            Some(s) if !s.trim().is_empty() => Ok(s),
            other => Err(SpateKafkaError::config(
                "bootstrap.servers",
                other.unwrap_or(""),
                "required: the broker list to connect to",
            )),
        }
    }

    /// `group.id`, if set (needed for committed offsets and `commit_async`).
    pub fn group_id(&self) -> Option<&str> {
        self.get("group.id").filter(|g| !g.is_empty())
    }

    /// `auto.offset.reset` (Kafka's `latest` default).
    pub fn auto_offset_reset(&self) -> Result<AutoOffsetReset> {
        match self.get("auto.offset.reset").unwrap_or("latest") {
            "earliest" | "smallest" | "beginning" => Ok(AutoOffsetReset::Earliest),
            "latest" | "largest" | "end" => Ok(AutoOffsetReset::Latest),
            "none" | "error" => Ok(AutoOffsetReset::None),
            other => Err(SpateKafkaError::config(
                "auto.offset.reset",
                other,
                "expected earliest, latest or none",
            )),
        }
    }

    /// True with `isolation.level=read_committed`: plans end at the last stable offset.
    pub fn read_committed(&self) -> bool {
        self.get("isolation.level") == Some("read_committed")
    }

    /// spate's own settings in the map (`spate.*` keys), which never reach librdkafka.
    pub fn spate_settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map
            .iter()
            .filter(|(k, _)| k.starts_with("spate."))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Settings passed through to librdkafka: everything except keys librdkafka would reject
    /// or that we decide per client.
    fn client_config(&self) -> Result<ClientConfig> {
        self.bootstrap_servers()?;
        let mut c = ClientConfig::new();
        for (k, v) in &self.map {
            match k.as_str() {
                // Decided by the planner, not by the client.
                "auto.offset.reset" | "enable.auto.commit" | "enable.auto.offset.store" => {}
                // Java client settings with no librdkafka equivalent.
                "key.deserializer" | "value.deserializer" => {}
                // spate's own settings (`stream_keys`), not the client's.
                k if k.starts_with("spate.") => {}
                _ => {
                    c.set(k, v);
                }
            }
        }
        c.set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        if self.group_id().is_none() {
            // librdkafka needs a group id for a consumer handle; it is never joined.
            c.set("group.id", "spate-direct-stream");
        }
        Ok(c)
    }

    /// Config of the driver-side client: metadata, watermarks, committed offsets, commits.
    pub fn driver_config(&self) -> Result<ClientConfig> {
        let mut c = self.client_config()?;
        c.set("auto.offset.reset", "error");
        Ok(c)
    }

    /// Config of the member of a group-managed stream ([`crate::direct::group::GroupMember`]):
    /// it joins the group, with Kafka's cooperative-sticky assignor unless the user names
    /// another `partition.assignment.strategy` (so a rebalance moves only the partitions that
    /// must move), and `group.instance.id` passed through for static membership. It never
    /// commits, and it is `read_committed` whatever the job's `isolation.level`: it reads no
    /// records, and its committed-offset reads then wait for pending transactional commits.
    pub fn member_config(&self) -> Result<ClientConfig> {
        let mut c = self.client_config()?;
        if self.get("partition.assignment.strategy").is_none() {
            c.set("partition.assignment.strategy", "cooperative-sticky");
        }
        c.set("isolation.level", "read_committed")
            .set("auto.offset.reset", "latest");
        Ok(c)
    }

    /// Config of a task consumer reading one partition: assign only, no commits, an error
    /// (not a silent reset) when an offset is out of range, and end-of-partition events so a
    /// range that ends in an offset gap is recognised as complete.
    pub fn executor_config(&self) -> Result<ClientConfig> {
        let mut c = self.client_config()?;
        c.set("auto.offset.reset", "error")
            .set("enable.partition.eof", "true");
        if self.get("fetch.wait.max.ms").is_none() {
            c.set("fetch.wait.max.ms", "100");
        }
        if self.get("fetch.queue.backoff.ms").is_none() {
            c.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
        }
        if self.get("queued.max.messages.kbytes").is_none() {
            // One consumer per partition, each pre-fetching up to librdkafka's 64 MiB default,
            // grew a 4-partition job past 1 GiB and page faults cost ~40% of its throughput
            // (`spate bench direct`); 16 MiB still holds more than a batch of most partitions.
            c.set("queued.max.messages.kbytes", "16384");
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let p = KafkaParams::new()
            .set("bootstrap.servers", "b:9092")
            .set("sasl.password", "hunter2");
        let s = format!("{p:?}");
        assert!(s.contains("b:9092") && !s.contains("hunter2"), "{s}");
    }

    #[test]
    fn bootstrap_servers_is_required() {
        let err = KafkaParams::new().driver_config().unwrap_err().to_string();
        assert!(err.contains("bootstrap.servers"), "{err}");
    }

    #[test]
    fn executor_config_turns_off_commits_and_resets() {
        let p = KafkaParams::new()
            .set("bootstrap.servers", "b:9092")
            .set("group.id", "g")
            .set("enable.auto.commit", "true")
            .set("auto.offset.reset", "earliest")
            .set("security.protocol", "plaintext");
        let c = p.executor_config().unwrap();
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("auto.offset.reset"), Some("error"));
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        assert_eq!(c.get("queued.max.messages.kbytes"), Some("16384"));
        assert_eq!(
            c.get("fetch.queue.backoff.ms"),
            Some(FETCH_QUEUE_BACKOFF_MS)
        );
        assert_eq!(p.auto_offset_reset().unwrap(), AutoOffsetReset::Earliest);
    }

    #[test]
    fn isolation_level_reaches_driver_and_task_consumers() {
        let p = KafkaParams::new()
            .set("bootstrap.servers", "b:9092")
            .set("isolation.level", "read_committed");
        assert!(p.read_committed());
        // The driver's ListOffsets then returns the last stable offset, so plans never cover
        // open transactions, and task consumers skip aborted records.
        assert_eq!(
            p.driver_config().unwrap().get("isolation.level"),
            Some("read_committed")
        );
        assert_eq!(
            p.executor_config().unwrap().get("isolation.level"),
            Some("read_committed")
        );
        assert!(!KafkaParams::new().read_committed());
    }

    #[test]
    fn auto_offset_reset_values() {
        let p = |v: &str| {
            KafkaParams::new()
                .set("auto.offset.reset", v)
                .auto_offset_reset()
        };
        assert_eq!(
            KafkaParams::new().auto_offset_reset().unwrap(),
            AutoOffsetReset::Latest
        );
        assert_eq!(p("none").unwrap(), AutoOffsetReset::None);
        assert!(p("sometimes").is_err());
    }
}
