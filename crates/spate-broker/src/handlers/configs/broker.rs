//! The BROKER config resource: this broker's settings with their sources (DescribeConfigs),
//! and runtime changes of the dynamic ones (see [`crate::dynamic_config`]) for this broker
//! (resource name = node id) or as the cluster default (empty name).

use std::collections::BTreeMap;

use crate::config::BrokerConfig;
use crate::dynamic_config::{self, DynamicLayers, Scope, PRODUCER_ID_EXPIRATION_MS};
use crate::error::{BrokerError, Result};
use crate::state::BrokerState;
use crate::topics::config::{self as topic_config, ConfigSource, ConfigType};

use super::{apply_ops, Described, Op};

/// A broker setting that is not a topic-config default.
struct BrokerKey {
    name: &'static str,
    config_type: ConfigType,
    doc: &'static str,
    value: fn(&BrokerConfig) -> String,
}

/// Shown before the topic-config defaults, in this order.
const KEYS: &[BrokerKey] = &[
    BrokerKey {
        name: "node.id",
        config_type: ConfigType::Int,
        doc: "This broker's id.",
        value: |c| c.node_id.to_string(),
    },
    BrokerKey {
        name: "broker.id",
        config_type: ConfigType::Int,
        doc: "This broker's id (the older name of node.id).",
        value: |c| c.node_id.to_string(),
    },
    BrokerKey {
        name: "auto.create.topics.enable",
        config_type: ConfigType::Boolean,
        doc: "Create a topic on first use (Metadata, Produce).",
        value: |c| c.auto_create_topics_enable.to_string(),
    },
    BrokerKey {
        name: "num.partitions",
        config_type: ConfigType::Int,
        doc: "Partitions of auto-created topics.",
        value: |c| c.num_partitions.to_string(),
    },
    BrokerKey {
        name: "socket.request.max.bytes",
        config_type: ConfigType::Int,
        doc: "The largest request frame accepted.",
        value: |c| c.socket_request_max_bytes.to_string(),
    },
    BrokerKey {
        name: "log.retention.check.interval.ms",
        config_type: ConfigType::Long,
        doc: "How often retention and time-based flushes run.",
        value: |c| c.log_retention_check_interval_ms.to_string(),
    },
    BrokerKey {
        name: PRODUCER_ID_EXPIRATION_MS,
        config_type: ConfigType::Int,
        doc: "How long an idle idempotent producer's state is kept.",
        value: |c| c.producer_id_expiration_ms.to_string(),
    },
    BrokerKey {
        name: "log.cleaner.enable",
        config_type: ConfigType::Boolean,
        doc: "Run the log cleaner, which compacts topics with cleanup.policy=compact.",
        value: |c| c.cleaner.enable.to_string(),
    },
    BrokerKey {
        name: "log.cleaner.threads",
        config_type: ConfigType::Int,
        doc: "The number of log cleaner threads.",
        value: |c| c.cleaner.threads.to_string(),
    },
    BrokerKey {
        name: "log.cleaner.dedupe.buffer.size",
        config_type: ConfigType::Long,
        doc: "Memory of the cleaners' offset maps, shared by the threads.",
        value: |c| c.cleaner.dedupe_buffer_bytes.to_string(),
    },
    BrokerKey {
        name: "log.cleaner.io.buffer.size",
        config_type: ConfigType::Int,
        doc: "How many bytes of a segment a cleaner reads at once.",
        value: |c| c.cleaner.io_buffer_bytes.to_string(),
    },
    BrokerKey {
        name: "log.cleaner.io.max.bytes.per.second",
        config_type: ConfigType::Double,
        doc: "The bytes all cleaner threads together may read and write per second.",
        value: |c| format_double(c.cleaner.io_max_bytes_per_second),
    },
    BrokerKey {
        name: "log.cleaner.backoff.ms",
        config_type: ConfigType::Long,
        doc: "How long a cleaner thread sleeps when no log needs cleaning.",
        value: |c| c.cleaner.backoff_ms.to_string(),
    },
    BrokerKey {
        name: "shutdown.timeout.ms",
        config_type: ConfigType::Long,
        doc: "How long a clean shutdown may take (spate's own setting).",
        value: |c| c.shutdown_timeout_ms.to_string(),
    },
];

/// A double as Java prints it where it matters: Kafka's default for an unlimited rate is
/// `Double.MaxValue`, shown as `1.7976931348623157E308`.
fn format_double(v: f64) -> String {
    if v == f64::MAX {
        "1.7976931348623157E308".to_string()
    } else {
        v.to_string()
    }
}

/// Which layer a BROKER resource name addresses: `""` the cluster default, this broker's
/// node id itself; anything else is Kafka's INVALID_REQUEST.
fn scope(state: &BrokerState, name: &str) -> Result<Scope> {
    if name.is_empty() {
        return Ok(Scope::ClusterDefault);
    }
    let node = state.advertised.node_id;
    match name.parse::<i32>() {
        Ok(id) if id == node => Ok(Scope::Broker),
        Ok(_) => Err(BrokerError::ConfigChangeRejected(format!(
            "Unexpected broker id, expected {node}, but received {name}"
        ))),
        Err(_) => Err(BrokerError::ConfigChangeRejected(format!(
            "Node id must be an integer, but it is: {name}"
        ))),
    }
}

/// Every layer that sets broker config `key`, highest precedence first, ending with Kafka's
/// default: `(key, value, source)`.
pub fn layers(
    state: &BrokerState,
    dynamic: &DynamicLayers,
    key: &str,
) -> Vec<(String, String, ConfigSource)> {
    let mut out = Vec::new();
    let mut push = |v: &str, s| out.push((key.to_string(), v.to_string(), s));
    if let Some(v) = dynamic.broker.get(key) {
        push(v, ConfigSource::DynamicBroker);
    }
    if let Some(v) = dynamic.cluster_default.get(key) {
        push(v, ConfigSource::DynamicDefaultBroker);
    }
    if let Some(def) = topic_config::def_by_broker_name(key) {
        if let Some(v) = state.config.log_defaults.get(def.name) {
            push(v, ConfigSource::StaticBroker);
        }
        push(def.default, ConfigSource::Default);
    } else if let Some(k) = KEYS.iter().find(|k| k.name == key) {
        let (current, default) = (
            (k.value)(&state.config),
            (k.value)(&BrokerConfig::default()),
        );
        if current != default {
            push(&current, ConfigSource::StaticBroker);
        }
        push(&default, ConfigSource::Default);
    }
    out
}

fn key_info(key: &str) -> (ConfigType, &'static str) {
    if let Some(def) = topic_config::def_by_broker_name(key) {
        return (def.config_type, def.doc);
    }
    KEYS.iter()
        .find(|k| k.name == key)
        .map_or((ConfigType::String, ""), |k| (k.config_type, k.doc))
}

/// DescribeConfigs on BROKER: every setting with its source for this broker; for the cluster
/// default (`""`) only the dynamic defaults that are set, as Kafka shows them.
pub fn describe(state: &BrokerState, name: &str) -> Result<Vec<Described>> {
    let dynamic = state.dynamic.layers();
    let keys: Vec<&str> = match scope(state, name)? {
        Scope::ClusterDefault => dynamic.cluster_default.keys().map(String::as_str).collect(),
        Scope::Broker => KEYS
            .iter()
            .map(|k| k.name)
            .chain(topic_config::DEFS.iter().map(|d| d.broker_name))
            .collect(),
    };
    let default_only = name.is_empty();
    Ok(keys
        .into_iter()
        .map(|key| {
            let mut synonyms = layers(state, &dynamic, key);
            if default_only {
                synonyms.retain(|(_, _, s)| *s == ConfigSource::DynamicDefaultBroker);
            }
            let (value, source) = synonyms
                .first()
                .map(|(_, v, s)| (v.clone(), *s))
                .unwrap_or((String::new(), ConfigSource::Default));
            let (config_type, doc) = key_info(key);
            Described {
                name: key.to_string(),
                value,
                source,
                config_type,
                read_only: !dynamic_config::is_dynamic(key),
                doc,
                synonyms,
            }
        })
        .collect())
}

/// Legacy AlterConfigs on BROKER: the given configs become the whole dynamic layer.
pub fn replace(
    state: &BrokerState,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<()> {
    let scope = scope(state, name)?;
    let mut normalised = BTreeMap::new();
    for (k, v) in configs {
        let v = dynamic_config::validate(&k, &v)?;
        normalised.insert(k, v);
    }
    commit(state, scope, normalised, validate_only)
}

/// IncrementalAlterConfigs on BROKER: the operations applied to the addressed layer.
pub fn incremental(
    state: &BrokerState,
    name: &str,
    ops: Vec<Op>,
    validate_only: bool,
) -> Result<()> {
    let scope = scope(state, name)?;
    let dynamic = state.dynamic.layers();
    let next = apply_ops(dynamic.get(scope).clone(), ops, |key, layer| {
        dynamic_config::check_key(key)?;
        let effective = layer
            .get(key)
            .cloned()
            .or_else(|| layers(state, &dynamic, key).first().map(|l| l.1.clone()))
            .unwrap_or_default();
        Ok((key_info(key).0, effective))
    })?;
    let mut normalised = BTreeMap::new();
    for (k, v) in next {
        let v = dynamic_config::validate(&k, &v)?;
        normalised.insert(k, v);
    }
    commit(state, scope, normalised, validate_only)
}

/// Persists the new layer and applies it: every partition's log config is recomputed, so
/// retention, segment size and the message size limit change without a restart, and the log
/// cleaner takes its new settings.
fn commit(
    state: &BrokerState,
    scope: Scope,
    layer: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<()> {
    let statics = &state.config.log_defaults;
    state.dynamic.replace(
        scope,
        layer,
        validate_only,
        |next| {
            state
                .topics
                .check_broker_defaults(&next.log_defaults(statics))?;
            state
                .cleaner
                .config()
                .check_reconfiguration(&next.cleaner_config(&state.config.cleaner))
        },
        |next| {
            tracing::info!(?scope, "dynamic broker configs changed");
            state.topics.set_broker_defaults(next.log_defaults(statics));
            if let Err(e) = state
                .cleaner
                .reconfigure(next.cleaner_config(&state.config.cleaner))
            {
                tracing::error!(error = %e, "the log cleaner could not take its new settings");
            }
        },
    )
}
