//! [`BrokerConfig`]: what a broker listens on, where it keeps data, and the Kafka broker settings
//! it honours, under Kafka's own names (`num.partitions`, `log.retention.ms`, ...).
//!
//! It is plain serde data with a builder, so the `spate broker` command, a TOML file and tests all
//! build it the same way; `set(key, value)` takes Kafka's `key=value` spelling for `--config`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::storage::LogConfig;
use crate::topics::config as topic_config;

/// Which partition log backend the broker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Segment files under `data_dir` (survives restarts). Requires a data dir.
    Disk,
    /// Vectors in memory: nothing survives a restart. For tests and benchmarks.
    Memory,
}

/// The broker's configuration. Defaults are Kafka's where Kafka has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokerConfig {
    /// Address to listen on (`127.0.0.1:9092`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory for partition logs (Kafka's layout, `<topic>-<partition>/`) and broker
    /// metadata (`meta/`). Without one nothing is persisted, which needs the in-memory storage.
    pub data_dir: Option<PathBuf>,
    /// `node.id`.
    pub node_id: i32,
    /// Host clients are told to connect to (Metadata); default: the bound address's IP.
    pub advertised_host: Option<String>,
    /// Port clients are told to connect to; default: the bound port (matters with port 0).
    pub advertised_port: Option<u16>,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `socket.request.max.bytes`: larger request frames close the connection.
    pub socket_request_max_bytes: usize,
    /// `log.retention.check.interval.ms`: how often retention and time-based flushes run.
    pub log_retention_check_interval_ms: u64,
    /// `producer.id.expiration.ms`: how long an idle idempotent producer's sequence state is
    /// kept (checked with retention).
    pub producer_id_expiration_ms: i64,
    /// Topic config defaults set at broker level, keyed by *topic* config name
    /// (`retention.ms`); set them with [`BrokerConfig::set`] under Kafka's broker names
    /// (`log.retention.ms`).
    pub log_defaults: BTreeMap<String, String>,
    /// Partition log backend (default: the disk log, which needs `data_dir`).
    pub storage: StorageKind,
    /// Cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// Group coordinator settings (`group.*`, `offsets.*`).
    pub group: crate::group::GroupConfig,
    /// `max.incremental.fetch.session.cache.slots` (Kafka default 1000): how many incremental
    /// fetch sessions (KIP-227) the broker keeps; 0 turns sessions off.
    pub max_incremental_fetch_session_cache_slots: usize,
    /// `listeners`, `advertised.listeners`, `listener.security.protocol.map` and `ssl.*`.
    pub listener_settings: crate::listener::ListenerSettings,
    /// `sasl.enabled.mechanisms` and each SASL listener's PLAIN users.
    pub sasl: crate::security::SaslSettings,
    /// `authorizer.class.name`, `super.users` and `allow.everyone.if.no.acl.found`.
    pub authorizer: crate::acl::AuthorizerSettings,
    /// Log cleaner settings (`log.cleaner.*`).
    pub cleaner: crate::cleaner::CleanerConfig,
    /// `metrics.listen` (spate's own): where to serve broker metrics in the Prometheus text
    /// format (`HOST:PORT`, port 0 picks one); none by default.
    pub metrics_listen: Option<SocketAddr>,
    /// `shutdown.timeout.ms` (spate's own; Kafka has no such bound): how long a clean
    /// shutdown may take. In-flight requests get half of it (the rest is kept for flushing the
    /// logs and writing the clean-shutdown markers); connections still busy then are closed.
    pub shutdown_timeout_ms: u64,
    /// Transaction coordinator settings (`transaction.*`, `transactional.id.*`).
    #[serde(default)]
    pub txn: crate::txn::TxnConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            data_dir: None,
            node_id: 0,
            advertised_host: None,
            advertised_port: None,
            auto_create_topics_enable: true,
            num_partitions: 1,
            socket_request_max_bytes: 100 * 1024 * 1024,
            log_retention_check_interval_ms: 300_000,
            producer_id_expiration_ms: 86_400_000,
            log_defaults: BTreeMap::new(),
            storage: StorageKind::Disk,
            cluster_id: "spate-cluster".to_string(),
            group: crate::group::GroupConfig::default(),
            max_incremental_fetch_session_cache_slots: 1000,
            listener_settings: Default::default(),
            sasl: Default::default(),
            authorizer: Default::default(),
            cleaner: crate::cleaner::CleanerConfig::default(),
            metrics_listen: None,
            shutdown_timeout_ms: 5_000,
            txn: crate::txn::TxnConfig::default(),
        }
    }
}

impl BrokerConfig {
    /// Kafka's broker defaults, listening on 127.0.0.1:9092, with no data directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens for clients on `addr` (port 0: a free port, reported once started).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Keeps data under `dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Keeps partition logs on disk or in memory.
    pub fn storage(mut self, storage: StorageKind) -> Self {
        self.storage = storage;
        self
    }

    /// Sets `node.id`, the broker id clients see in Metadata.
    pub fn node_id(mut self, id: i32) -> Self {
        self.node_id = id;
        self
    }

    /// Advertises `host:port` to clients instead of the address bound (`advertised.listeners`).
    pub fn advertised(mut self, host: impl Into<String>, port: u16) -> Self {
        self.advertised_host = Some(host.into());
        self.advertised_port = Some(port);
        self
    }

    /// Sets `auto.create.topics.enable`: Metadata and Produce create unknown topics.
    pub fn auto_create_topics(mut self, enable: bool) -> Self {
        self.auto_create_topics_enable = enable;
        self
    }

    /// Sets `num.partitions`, the partition count of auto-created topics.
    pub fn num_partitions(mut self, n: i32) -> Self {
        self.num_partitions = n;
        self
    }

    /// Sets `socket.request.max.bytes`, the largest request the broker reads.
    pub fn socket_request_max_bytes(mut self, n: usize) -> Self {
        self.socket_request_max_bytes = n;
        self
    }

    /// Sets `log.retention.check.interval.ms`, how often retention deletes old segments.
    pub fn log_retention_check_interval_ms(mut self, ms: u64) -> Self {
        self.log_retention_check_interval_ms = ms;
        self
    }

    /// How long `shutdown` waits for in-flight requests before closing connections.
    pub fn shutdown_timeout_ms(mut self, ms: u64) -> Self {
        self.shutdown_timeout_ms = ms;
        self
    }

    /// Sets one setting by its Kafka broker name (`num.partitions=3`, `log.segment.bytes=1024`).
    /// Unknown keys and invalid values are errors naming the key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        let v = value.trim();
        let bad = |reason: &str| BrokerError::invalid_config(key, value, reason);
        let int = |v: &str| v.parse::<i64>().map_err(|_| bad("not an integer"));
        let at_least_one = |v: &str| match int(v)? {
            n if n < 1 => Err(bad("must be at least 1")),
            n => Ok(n),
        };
        match key {
            "node.id" | "broker.id" => {
                self.node_id = i32::try_from(int(v)?).map_err(|_| bad("out of range"))?
            }
            "listen" => self.listen = v.parse().map_err(|_| bad("expected HOST:PORT"))?,
            k if crate::listener::ListenerSettings::handles(k) => {
                self.listener_settings.set(k, v)?;
            }
            k if crate::security::SaslSettings::handles(k) => self.sasl.set(k, v)?,
            k if crate::acl::AuthorizerSettings::handles(k) => self.authorizer.set(k, v)?,
            "advertised.host.name" | "advertised.host" => self.advertised_host = Some(v.into()),
            "advertised.port" => {
                self.advertised_port =
                    Some(u16::try_from(int(v)?).map_err(|_| bad("not a port number"))?)
            }
            "auto.create.topics.enable" => {
                self.auto_create_topics_enable = v.parse().map_err(|_| bad("not true/false"))?
            }
            "num.partitions" => {
                let n = int(v)?;
                if !(1..=i32::MAX as i64).contains(&n) {
                    return Err(bad("must be at least 1"));
                }
                self.num_partitions = n as i32;
            }
            "socket.request.max.bytes" => self.socket_request_max_bytes = at_least_one(v)? as usize,
            "log.retention.check.interval.ms" => {
                self.log_retention_check_interval_ms = at_least_one(v)? as u64
            }
            "producer.id.expiration.ms" => self.producer_id_expiration_ms = at_least_one(v)?,
            "shutdown.timeout.ms" => self.shutdown_timeout_ms = at_least_one(v)? as u64,
            "log.dir" | "log.dirs" => self.data_dir = Some(PathBuf::from(v)),
            "metrics.listen" => {
                self.metrics_listen = Some(v.parse().map_err(|_| bad("expected HOST:PORT"))?)
            }
            "cluster.id" => self.cluster_id = v.to_string(),
            "max.incremental.fetch.session.cache.slots" => {
                self.max_incremental_fetch_session_cache_slots =
                    usize::try_from(int(v)?).map_err(|_| bad("must be at least 0"))?
            }
            k if crate::group::GroupConfig::handles(k) => self.group.set(k, v)?,
            k if crate::cleaner::CleanerConfig::handles(k) => self.cleaner.set(k, v)?,
            k if crate::txn::TxnConfig::handles(k) => self.txn.set(k, v)?,
            _ => self.set_log_default(key, value)?,
        }
        Ok(self)
    }

    /// Sets the broker-level default of a topic config (`log.retention.ms` for
    /// `retention.ms`, …), and `log.retention.hours`/`.minutes` as `retention.ms`.
    fn set_log_default(&mut self, key: &str, value: &str) -> Result<()> {
        let v = value.trim();
        let bad = |reason: &str| BrokerError::invalid_config(key, value, reason);
        if key == "log.retention.hours" || key == "log.retention.minutes" {
            let unit = if key.ends_with("hours") {
                3_600_000
            } else {
                60_000
            };
            let n = v.parse::<i64>().map_err(|_| bad("not an integer"))?;
            let ms = if n < 0 { -1 } else { n.saturating_mul(unit) };
            self.log_defaults
                .insert("retention.ms".into(), ms.to_string());
            return Ok(());
        }
        let Some(def) = topic_config::def_by_broker_name(key) else {
            return Err(bad("not supported by this broker"));
        };
        let normalised = topic_config::validate(def.name, v).map_err(|e| match e {
            BrokerError::InvalidConfig { reason, .. } => bad(&reason),
            other => other,
        })?;
        self.log_defaults.insert(def.name.to_string(), normalised);
        Ok(())
    }

    /// Whether `key` is a broker setting spate knows (one [`set`](Self::set) accepts).
    pub fn knows(key: &str) -> bool {
        matches!(
            key,
            "node.id"
                | "broker.id"
                | "listeners"
                | "listen"
                | "advertised.host.name"
                | "advertised.host"
                | "advertised.port"
                | "auto.create.topics.enable"
                | "num.partitions"
                | "socket.request.max.bytes"
                | "log.retention.check.interval.ms"
                | "producer.id.expiration.ms"
                | "shutdown.timeout.ms"
                | "log.dir"
                | "log.dirs"
                | "metrics.listen"
                | "cluster.id"
                | "log.retention.hours"
                | "log.retention.minutes"
        ) || crate::group::GroupConfig::handles(key)
            || crate::security::SaslSettings::handles(key)
            || crate::acl::AuthorizerSettings::handles(key)
            || crate::cleaner::CleanerConfig::handles(key)
            || topic_config::def_by_broker_name(key).is_some()
    }

    /// The log config a topic without overrides gets.
    pub fn default_log_config(&self) -> Result<LogConfig> {
        topic_config::log_config(&self.log_defaults, &BTreeMap::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_uses_kafka_names() {
        let mut c = BrokerConfig::default();
        c.set("num.partitions", "3").unwrap();
        c.set("log.segment.bytes", "4096").unwrap();
        c.set("log.retention.hours", "1").unwrap();
        assert_eq!(c.num_partitions, 3);
        let log = c.default_log_config().unwrap();
        assert_eq!(log.segment_bytes, 4096);
        assert_eq!(log.retention_ms, 3_600_000);
        let err = c.set("log.segment.bytes", "x").unwrap_err().to_string();
        assert!(err.contains("log.segment.bytes"), "{err}");
        assert!(c.set("no.such.setting", "1").is_err());
        assert!(c.set("num.partitions", "0").is_err());
    }

    /// Every key `set` accepts changes the configuration (each field is read by the broker);
    /// anything else is refused naming the key.
    #[test]
    fn every_accepted_broker_key_changes_the_config() {
        let mut keys: Vec<String> = [
            "node.id",
            "broker.id",
            "listeners",
            "listen",
            "advertised.host.name",
            "advertised.host",
            "advertised.port",
            "auto.create.topics.enable",
            "num.partitions",
            "socket.request.max.bytes",
            "log.retention.check.interval.ms",
            "producer.id.expiration.ms",
            "shutdown.timeout.ms",
            "log.dir",
            "log.dirs",
            "metrics.listen",
            "cluster.id",
            "log.retention.hours",
            "log.retention.minutes",
            "group.min.session.timeout.ms",
            "group.max.session.timeout.ms",
            "group.initial.rebalance.delay.ms",
            "group.max.size",
            "offsets.retention.minutes",
            "offsets.retention.check.interval.ms",
            "offset.metadata.max.bytes",
            "log.cleaner.enable",
            "log.cleaner.threads",
            "log.cleaner.dedupe.buffer.size",
            "log.cleaner.io.buffer.size",
            "log.cleaner.backoff.ms",
            "log.cleaner.io.max.bytes.per.second",
            "authorizer.class.name",
            "super.users",
            "allow.everyone.if.no.acl.found",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        keys.extend(topic_config::DEFS.iter().map(|d| d.broker_name.to_string()));
        let candidates = [
            "12345",
            "2",
            "compact",
            "false",
            "true",
            "0.9",
            "gzip",
            "127.0.0.1:9999",
            "PLAINTEXT://127.0.0.1:9999",
            "/tmp/x",
            "User:admin;User:ops",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ];
        for key in &keys {
            assert!(BrokerConfig::knows(key), "{key} is accepted but not known");
            let informational = topic_config::def_by_broker_name(key).is_some_and(|d| {
                topic_config::INFORMATIONAL
                    .iter()
                    .any(|(k, _)| *k == d.name)
            });
            let changes = candidates.iter().any(|v| {
                let mut c = BrokerConfig::default();
                c.set(key, v).is_ok() && c != BrokerConfig::default()
            });
            assert!(
                changes || informational,
                "{key} is accepted but no value changes anything"
            );
        }
        let err = BrokerConfig::default()
            .set("log.cleaner.io.buffer.load.factor", "0.5")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("log.cleaner.io.buffer.load.factor")
                && err.contains("not supported by this broker"),
            "{err}"
        );
    }

    #[test]
    fn round_trips_through_json() {
        let c = BrokerConfig::default().num_partitions(4).data_dir("/tmp/x");
        let s = serde_json::to_string(&c).unwrap();
        let back: BrokerConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(c, back);
    }
}
