//! Topic configs: Kafka's names, defaults, types and validation rules, and how a topic's
//! overrides and the broker's `log.*` defaults combine into the [`LogConfig`] the storage uses.
//!
//! One table ([`DEFS`]) drives everything — CreateTopics/AlterConfigs validation, the broker's
//! `--config log.*` settings, and DescribeConfigs — so a key cannot be accepted in one place and
//! unknown in another. Keys the storage does not act on (e.g. `min.insync.replicas`, meaningful
//! only with replicas) are still accepted and described, because clients and tools set them
//! routinely when creating topics.

use std::collections::BTreeMap;

use crate::error::{BrokerError, Result};
use crate::storage::{CleanupPolicy, LogConfig};

/// The value type of a config, as DescribeConfigs v3+ reports it (`config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `BOOLEAN`.
    Boolean,
    /// `STRING`.
    String,
    /// `INT`.
    Int,
    /// `LONG`.
    Long,
    /// `DOUBLE`.
    Double,
    /// `LIST`: comma-separated values.
    List,
}

impl ConfigType {
    /// Kafka's `DescribeConfigsResponse.ConfigType` code.
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// Where a described config value came from (Kafka's `ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (CreateTopics configs, AlterConfigs).
    DynamicTopic,
    /// Set at runtime for this broker (AlterConfigs on BROKER `<node id>`).
    DynamicBroker,
    /// Set at runtime as the cluster-wide default (AlterConfigs on BROKER `""`).
    DynamicDefaultBroker,
    /// Set in the broker's own configuration (`--config log.retention.ms=...`).
    StaticBroker,
    /// Kafka's default.
    Default,
    /// Set on a consumer group (AlterConfigs on GROUP, Kafka 4.0).
    Group,
}

impl ConfigSource {
    /// The `ConfigSource` code of DescribeConfigs v1+.
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::DynamicTopic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
            ConfigSource::Group => 8,
        }
    }
}

/// What values a config accepts.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// An integer no smaller than the bound (Kafka's `atLeast`), and within i32 when `int`.
    AtLeast {
        min: i64,
        int: bool,
    },
    /// A comma-separated list whose items all come from the set (e.g. `cleanup.policy`).
    ListOf(&'static [&'static str]),
    /// One value from the set.
    OneOf(&'static [&'static str]),
    Boolean,
    /// A floating-point number in `[min, max]`.
    Ratio,
}

/// One topic config: its topic-level name, the broker-level name that sets its default, and
/// Kafka's default value.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    /// The topic-level name (`retention.ms`).
    pub name: &'static str,
    /// The broker-level name that sets the default (`log.retention.ms`).
    pub broker_name: &'static str,
    /// Kafka's default value, as text.
    pub default: &'static str,
    /// The config's type, as DescribeConfigs reports it.
    pub config_type: ConfigType,
    rule: Rule,
    /// Kafka's documentation line for the config.
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

/// Every topic config the broker accepts, in the order DescribeConfigs lists them.
pub const DEFS: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        broker_name: "log.cleanup.policy",
        default: "delete",
        config_type: ConfigType::List,
        rule: Rule::ListOf(&["delete", "compact"]),
        doc: "How old log segments are discarded: delete (retention) and/or compact.",
    },
    ConfigDef {
        name: "compression.type",
        broker_name: "compression.type",
        default: "producer",
        config_type: ConfigType::String,
        rule: Rule::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        doc: "Final compression of the topic's data: producer keeps each batch's codec; any other \
              value recompresses produced batches with it (uncompressed: stored uncompressed).",
    },
    ConfigDef {
        name: "delete.retention.ms",
        broker_name: "log.cleaner.delete.retention.ms",
        default: "86400000",
        config_type: ConfigType::Long,
        rule: Rule::AtLeast { min: 0, int: false },
        doc: "How long tombstones are kept on compacted topics.",
    },
    ConfigDef {
        name: "flush.messages",
        broker_name: "log.flush.interval.messages",
        default: LONG_MAX,
        config_type: ConfigType::Long,
        rule: Rule::AtLeast { min: 1, int: false },
        doc: "Force an fsync after this many messages.",
    },
    ConfigDef {
        name: "flush.ms",
        broker_name: "log.flush.interval.ms",
        default: LONG_MAX,
        config_type: ConfigType::Long,
        rule: Rule::AtLeast { min: 0, int: false },
        doc: "Force an fsync when data has been unflushed this long.",
    },
    ConfigDef {
        name: "index.interval.bytes",
        broker_name: "log.index.interval.bytes",
        default: "4096",
        config_type: ConfigType::Int,
        rule: Rule::AtLeast { min: 0, int: true },
        doc: "Bytes between entries of the sparse offset index.",
    },
    ConfigDef {
        name: "max.message.bytes",
        broker_name: "message.max.bytes",
        default: "1048588",
        config_type: ConfigType::Int,
        rule: Rule::AtLeast { min: 0, int: true },
        doc: "The largest record batch the topic accepts.",
    },
    ConfigDef {
        name: "max.compaction.lag.ms",
        broker_name: "log.cleaner.max.compaction.lag.ms",
        default: LONG_MAX,
        config_type: ConfigType::Long,
        rule: Rule::AtLeast { min: 1, int: false },
        doc: "A record older than this is compacted whatever the dirty ratio.",
    },
    ConfigDef {
        name: "message.timestamp.type",
        broker_name: "log.message.timestamp.type",
        default: "CreateTime",
        config_type: ConfigType::String,
        rule: Rule::OneOf(&["CreateTime"]),
        doc: "Timestamps are the producer's (LogAppendTime is not supported by spate).",
    },
    ConfigDef {
        name: "min.cleanable.dirty.ratio",
        broker_name: "log.cleaner.min.cleanable.ratio",
        default: "0.5",
        config_type: ConfigType::Double,
        rule: Rule::Ratio,
        doc: "Dirty-to-total ratio at which compaction runs.",
    },
    ConfigDef {
        name: "min.compaction.lag.ms",
        broker_name: "log.cleaner.min.compaction.lag.ms",
        default: "0",
        config_type: ConfigType::Long,
        rule: Rule::AtLeast { min: 0, int: false },
        doc: "The minimum time a message stays uncompacted.",
    },
    ConfigDef {
        name: "min.insync.replicas",
        broker_name: "min.insync.replicas",
        default: "1",
        config_type: ConfigType::Int,
        rule: Rule::AtLeast { min: 1, int: true },
        doc: "Replicas that must acknowledge acks=all; this broker is the only replica, so \
              acks=all produces fail with NOT_ENOUGH_REPLICAS when it is above 1.",
    },
    ConfigDef {
        name: "retention.bytes",
        broker_name: "log.retention.bytes",
        default: "-1",
        config_type: ConfigType::Long,
        rule: Rule::AtLeast {
            min: i64::MIN,
            int: false,
        },
        doc: "Delete old segments once a partition holds more than this (-1: no limit).",
    },
    ConfigDef {
        name: "retention.ms",
        broker_name: "log.retention.ms",
        default: "604800000",
        config_type: ConfigType::Long,
        rule: Rule::AtLeast {
            min: -1,
            int: false,
        },
        doc: "Delete segments older than this (-1: keep forever).",
    },
    ConfigDef {
        name: "segment.bytes",
        broker_name: "log.segment.bytes",
        default: "1073741824",
        config_type: ConfigType::Int,
        rule: Rule::AtLeast { min: 14, int: true },
        doc: "Roll to a new segment file past this size.",
    },
    ConfigDef {
        name: "segment.ms",
        broker_name: "log.roll.ms",
        default: "604800000",
        config_type: ConfigType::Long,
        rule: Rule::AtLeast { min: 1, int: false },
        doc: "Roll a segment this old even if it is not full.",
    },
    ConfigDef {
        name: "unclean.leader.election.enable",
        broker_name: "unclean.leader.election.enable",
        default: "false",
        config_type: ConfigType::Boolean,
        rule: Rule::Boolean,
        doc: "Meaningless on a single node; accepted for compatibility.",
    },
];

/// The accepted keys that change nothing on this broker, and why that is Kafka's behaviour
/// too. Every other key in [`DEFS`] changes the [`LogConfig`] the storage, the cleaner or the
/// produce path act on (a test walks them all).
pub const INFORMATIONAL: &[(&str, &str)] = &[
    (
        "message.timestamp.type",
        "only CreateTime is accepted, which is what the broker does: it keeps producers' timestamps",
    ),
    (
        "unclean.leader.election.enable",
        "with a single replica there is never another replica to elect, clean or unclean",
    ),
];

/// The definition of topic config `name`.
pub fn def(name: &str) -> Option<&'static ConfigDef> {
    DEFS.iter().find(|d| d.name == name)
}

/// The definition whose broker-level name is `broker_name` (`log.retention.ms`, ...).
pub fn def_by_broker_name(broker_name: &str) -> Option<&'static ConfigDef> {
    DEFS.iter().find(|d| d.broker_name == broker_name)
}

/// Checks `value` for topic config `name` and returns it normalised (trimmed; lists without
/// blanks). Unknown keys are INVALID_CONFIG, as Kafka answers.
pub fn validate(name: &str, value: &str) -> Result<String> {
    let Some(d) = def(name) else {
        return Err(BrokerError::invalid_config(
            name,
            value,
            "not supported by this broker",
        ));
    };
    let v = value.trim();
    let bad = |reason: String| BrokerError::invalid_config(name, value, reason);
    match d.rule {
        Rule::AtLeast { min, int } => {
            let n: i64 = v.parse().map_err(|_| bad("not an integer".to_string()))?;
            if int && i32::try_from(n).is_err() {
                return Err(bad("out of range for a 32-bit integer".to_string()));
            }
            if n < min {
                return Err(bad(format!("must be at least {min}")));
            }
            Ok(n.to_string())
        }
        Rule::ListOf(allowed) => {
            let items: Vec<&str> = v.split(',').map(str::trim).collect();
            if items.iter().any(|i| !allowed.contains(i)) {
                return Err(bad(format!("each item must be one of {allowed:?}")));
            }
            Ok(items.join(","))
        }
        Rule::OneOf(allowed) => {
            if !allowed.contains(&v) {
                return Err(bad(format!("must be one of {allowed:?}")));
            }
            Ok(v.to_string())
        }
        Rule::Boolean => match v.to_ascii_lowercase().as_str() {
            "true" => Ok("true".into()),
            "false" => Ok("false".into()),
            _ => Err(bad("must be true or false".to_string())),
        },
        Rule::Ratio => {
            let f: f64 = v.parse().map_err(|_| bad("not a number".to_string()))?;
            if !(0.0..=1.0).contains(&f) {
                return Err(bad("must be between 0 and 1".to_string()));
            }
            Ok(v.to_string())
        }
    }
}

/// Applies one validated topic config to a [`LogConfig`]; keys the log does not act on are
/// ignored here.
fn apply(config: &mut LogConfig, name: &str, value: &str) -> Result<()> {
    let int = |v: &str| -> Result<i64> {
        v.parse::<i64>()
            .map_err(|_| BrokerError::invalid_config(name, v, "not an integer"))
    };
    match name {
        "segment.bytes" => config.segment_bytes = int(value)?.max(0) as u64,
        "segment.ms" => config.segment_ms = int(value)?,
        "retention.ms" => config.retention_ms = int(value)?,
        "retention.bytes" => config.retention_bytes = int(value)?,
        "max.message.bytes" => config.max_message_bytes = int(value)?.max(0) as usize,
        "flush.messages" => config.flush_messages = never_if_long_max(int(value)?.max(1)),
        "flush.ms" => config.flush_ms = never_if_long_max(int(value)?.max(0)),
        "index.interval.bytes" => config.index_interval_bytes = int(value)?.max(0) as usize,
        "delete.retention.ms" => config.delete_retention_ms = int(value)?,
        "compression.type" => {
            config.compression_type = crate::produce_validation::compression_type(value)
        }
        "min.insync.replicas" => {
            config.min_insync_replicas = int(value)?.clamp(1, i32::MAX as i64) as i32
        }
        "min.compaction.lag.ms" => config.min_compaction_lag_ms = int(value)?,
        "max.compaction.lag.ms" => config.max_compaction_lag_ms = int(value)?,
        "min.cleanable.dirty.ratio" => {
            config.min_cleanable_dirty_ratio = value
                .parse()
                .map_err(|_| BrokerError::invalid_config(name, value, "not a number"))?
        }
        "cleanup.policy" => {
            let delete = value.split(',').any(|p| p == "delete");
            let compact = value.split(',').any(|p| p == "compact");
            config.cleanup_policy = match (delete, compact) {
                (true, true) => CleanupPolicy::CompactDelete,
                (false, true) => CleanupPolicy::Compact,
                _ => CleanupPolicy::Delete,
            };
        }
        _ => {}
    }
    Ok(())
}

/// Kafka spells "never" as `Long.MAX_VALUE`; the storage spells it `u64::MAX`.
fn never_if_long_max(v: i64) -> u64 {
    if v == i64::MAX {
        u64::MAX
    } else {
        v as u64
    }
}

/// The effective log config of a topic: Kafka's defaults, then the broker's `log.*` settings
/// (`broker_defaults`, keyed by topic config name), then the topic's own overrides.
pub fn log_config(
    broker_defaults: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
) -> Result<LogConfig> {
    let mut config = LogConfig::default();
    for (k, v) in broker_defaults.iter().chain(overrides.iter()) {
        apply(&mut config, k, v)?;
    }
    Ok(config)
}

/// One described config entry.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedConfig {
    /// The config's topic-level name.
    pub name: &'static str,
    /// The effective value, as text.
    pub value: String,
    /// Where the value comes from: the topic, the broker or Kafka's default.
    pub source: ConfigSource,
    /// The config's type.
    pub config_type: ConfigType,
    /// Kafka's documentation line for the config.
    pub doc: &'static str,
    /// The value this config would have without the topic override (for synonyms).
    pub broker_value: Option<String>,
}

/// Describes every topic config, with where each value comes from.
pub fn describe(
    broker_defaults: &BTreeMap<String, String>,
    overrides: &BTreeMap<String, String>,
) -> Vec<DescribedConfig> {
    DEFS.iter()
        .map(|d| {
            let broker_value = broker_defaults.get(d.name).cloned();
            let (value, source) = if let Some(v) = overrides.get(d.name) {
                (v.clone(), ConfigSource::DynamicTopic)
            } else if let Some(v) = &broker_value {
                (v.clone(), ConfigSource::StaticBroker)
            } else {
                (d.default.to_string(), ConfigSource::Default)
            };
            DescribedConfig {
                name: d.name,
                value,
                source,
                config_type: d.config_type,
                doc: d.doc,
                broker_value,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_values_and_keys() {
        assert_eq!(validate("retention.ms", " 1000 ").unwrap(), "1000");
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("retention.ms", "abc").is_err());
        assert!(validate("segment.bytes", "10").is_err());
        assert!(validate("segment.bytes", "99999999999").is_err());
        assert_eq!(
            validate("cleanup.policy", "compact, delete").unwrap(),
            "compact,delete"
        );
        assert!(validate("cleanup.policy", "shred").is_err());
        let err = validate("no.such.key", "1").unwrap_err();
        assert!(err.to_string().contains("no.such.key"));
    }

    #[test]
    fn layers_defaults_broker_and_topic() {
        let broker: BTreeMap<_, _> = [("retention.ms".to_string(), "5000".to_string())].into();
        let topic: BTreeMap<_, _> = [("segment.bytes".to_string(), "1024".to_string())].into();
        let c = log_config(&broker, &topic).unwrap();
        assert_eq!(c.retention_ms, 5000);
        assert_eq!(c.segment_bytes, 1024);
        assert_eq!(c.max_message_bytes, LogConfig::default().max_message_bytes);
        let d = describe(&broker, &topic);
        let get = |n: &str| d.iter().find(|e| e.name == n).unwrap().clone();
        assert_eq!(get("retention.ms").source, ConfigSource::StaticBroker);
        assert_eq!(get("segment.bytes").source, ConfigSource::DynamicTopic);
        assert_eq!(get("retention.bytes").source, ConfigSource::Default);
        assert_eq!(get("retention.bytes").value, "-1");
    }

    /// A valid value of `d` other than its default.
    fn other_value(d: &ConfigDef) -> Option<String> {
        match d.rule {
            Rule::AtLeast { min, .. } => {
                let default: i64 = d.default.parse().ok()?;
                let v = if default == i64::MAX {
                    min.max(0) + 1000
                } else {
                    default.max(min) + 1000
                };
                Some(v.to_string())
            }
            Rule::ListOf(items) | Rule::OneOf(items) => items
                .iter()
                .find(|i| **i != d.default)
                .map(|s| s.to_string()),
            Rule::Boolean => Some(if d.default == "true" { "false" } else { "true" }.into()),
            Rule::Ratio => Some("0.9".into()),
        }
    }

    #[test]
    fn every_accepted_key_has_an_effect_or_says_why_not() {
        let none = BTreeMap::new();
        let default = log_config(&none, &none).unwrap();
        for d in DEFS {
            let informational = INFORMATIONAL.iter().find(|(k, _)| *k == d.name);
            let Some(value) = other_value(d) else {
                assert!(
                    informational.is_some(),
                    "{} accepts one value only: say why",
                    d.name
                );
                continue;
            };
            validate(d.name, &value).unwrap();
            let set: BTreeMap<_, _> = [(d.name.to_string(), value.clone())].into();
            let changed = log_config(&none, &set).unwrap() != default;
            match informational {
                None => assert!(
                    changed,
                    "{}={value} is accepted but changes nothing",
                    d.name
                ),
                Some((_, why)) => {
                    assert!(!changed && !why.is_empty(), "{} is informational", d.name)
                }
            }
        }
        for (k, _) in INFORMATIONAL {
            assert!(def(k).is_some(), "{k} is not an accepted key");
        }
    }

    #[test]
    fn defaults_match_log_config_defaults() {
        let none = BTreeMap::new();
        let mut from_defs = LogConfig::default();
        for d in DEFS {
            apply(&mut from_defs, d.name, d.default).unwrap();
        }
        assert_eq!(from_defs, log_config(&none, &none).unwrap());
        for d in DEFS {
            validate(d.name, d.default).unwrap();
        }
    }
}
