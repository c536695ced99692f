//! Dynamic broker configs: the broker settings Kafka lets an admin change at runtime with
//! AlterConfigs/IncrementalAlterConfigs on the BROKER resource, either for this broker
//! (resource name = its node id) or as the cluster-wide default (empty name).
//!
//! Kafka's precedence, highest first: per-broker dynamic (DYNAMIC_BROKER_CONFIG), cluster
//! default dynamic (DYNAMIC_DEFAULT_BROKER_CONFIG), the broker's own configuration
//! (STATIC_BROKER_CONFIG), Kafka's default (DEFAULT_CONFIG). Both dynamic layers are persisted
//! together in `<meta dir>/broker_configs.json` (temp file, fsync, rename) before they take
//! effect, and reloaded on start.
//!
//! What spate can change at runtime is what Kafka can and spate has: every topic-config
//! default (`log.retention.ms`, `log.segment.bytes`, `message.max.bytes`, ...; Kafka's
//! `DynamicLogConfig`), `producer.id.expiration.ms`, and the log cleaner's
//! `log.cleaner.threads`, `.dedupe.buffer.size`, `.io.buffer.size`, `.io.max.bytes.per.second`
//! and `.backoff.ms` (Kafka's `LogCleaner.ReconfigurableConfigs`; the cleaner threads pick them
//! up without a restart). Other keys spate knows are read-only and refused with Kafka's
//! INVALID_REQUEST "Cannot update these configs dynamically".

use std::collections::BTreeMap;
use std::path::PathBuf;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::cleaner::CleanerConfig;
use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::persist;
use crate::topics::config as topic_config;

/// `producer.id.expiration.ms`, dynamic in Kafka (`DynamicProducerStateManagerConfig`).
pub const PRODUCER_ID_EXPIRATION_MS: &str = "producer.id.expiration.ms";

/// Which dynamic layer a change applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This broker (resource name = its node id).
    Broker,
    /// Every broker of the cluster (empty resource name).
    ClusterDefault,
}

/// The two dynamic layers, keyed by Kafka's broker config names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicLayers {
    /// Configs set on this broker (`--entity-name <id>`).
    #[serde(default)]
    pub broker: BTreeMap<String, String>,
    /// Configs set as the cluster-wide default (`--entity-default`).
    #[serde(default)]
    pub cluster_default: BTreeMap<String, String>,
}

impl DynamicLayers {
    /// The configs of layer `scope`.
    pub fn get(&self, scope: Scope) -> &BTreeMap<String, String> {
        match scope {
            Scope::Broker => &self.broker,
            Scope::ClusterDefault => &self.cluster_default,
        }
    }

    fn get_mut(&mut self, scope: Scope) -> &mut BTreeMap<String, String> {
        match scope {
            Scope::Broker => &mut self.broker,
            Scope::ClusterDefault => &mut self.cluster_default,
        }
    }

    /// The dynamic value of `key`, per-broker first, with the layer it came from.
    pub fn lookup(&self, key: &str) -> Option<(Scope, &String)> {
        self.broker
            .get(key)
            .map(|v| (Scope::Broker, v))
            .or_else(|| {
                self.cluster_default
                    .get(key)
                    .map(|v| (Scope::ClusterDefault, v))
            })
    }

    /// The topic-config defaults (keyed by topic config name) these layers put over the
    /// broker's static `log_defaults`.
    pub fn log_defaults(
        &self,
        static_defaults: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut out = static_defaults.clone();
        for layer in [&self.cluster_default, &self.broker] {
            for (k, v) in layer {
                if let Some(def) = topic_config::def_by_broker_name(k) {
                    out.insert(def.name.to_string(), v.clone());
                }
            }
        }
        out
    }

    /// The cleaner settings these layers put over the broker's static ones. A stored value
    /// that no longer parses is skipped with a warning (it was validated when it was set).
    pub fn cleaner_config(&self, static_config: &CleanerConfig) -> CleanerConfig {
        let mut out = static_config.clone();
        for layer in [&self.cluster_default, &self.broker] {
            for (k, v) in layer.iter().filter(|(k, _)| CleanerConfig::is_dynamic(k)) {
                if let Err(e) = out.set(k, v) {
                    tracing::warn!(key = %k, error = %e, "ignoring a stored dynamic cleaner config");
                }
            }
        }
        out
    }
}

/// Whether `key` can change at runtime.
pub fn is_dynamic(key: &str) -> bool {
    key == PRODUCER_ID_EXPIRATION_MS
        || topic_config::def_by_broker_name(key).is_some()
        || CleanerConfig::is_dynamic(key)
}

/// Checks that `key` may change at runtime. Read-only keys are INVALID_REQUEST with Kafka's
/// message; keys spate does not know at all are INVALID_CONFIG (Kafka would store them unused,
/// which would be a config accepted and ignored).
pub fn check_key(key: &str) -> Result<()> {
    if is_dynamic(key) {
        Ok(())
    } else if BrokerConfig::knows(key) {
        Err(BrokerError::ConfigChangeRejected(format!(
            "Cannot update these configs dynamically: Set({key})"
        )))
    } else {
        Err(BrokerError::invalid_config(
            key,
            "",
            "unknown broker config",
        ))
    }
}

/// Checks one dynamic change; returns the value normalised. A value of the wrong type is
/// INVALID_REQUEST, as Kafka wraps its `ConfigException` in an `InvalidRequestException`.
pub fn validate(key: &str, value: &str) -> Result<String> {
    check_key(key)?;
    if let Some(def) = topic_config::def_by_broker_name(key) {
        return topic_config::validate(def.name, value)
            .map_err(|e| BrokerError::ConfigChangeRejected(e.to_string()));
    }
    if CleanerConfig::is_dynamic(key) {
        let mut c = CleanerConfig::default();
        c.set(key, value)
            .map_err(|e| BrokerError::ConfigChangeRejected(e.to_string()))?;
        return Ok(value.trim().to_string());
    }
    match value.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n.to_string()),
        _ => Err(BrokerError::ConfigChangeRejected(format!(
            "Invalid value {value} for configuration {key}: must be an integer of at least 1"
        ))),
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Stored {
    version: u32,
    #[serde(flatten)]
    layers: DynamicLayers,
}

/// The broker's dynamic configs, shared by the request handlers.
pub struct DynamicBrokerConfig {
    path: Option<PathBuf>,
    layers: RwLock<DynamicLayers>,
    /// Serialises changes and their persistence.
    change: Mutex<()>,
}

impl std::fmt::Debug for DynamicBrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicBrokerConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DynamicBrokerConfig {
    /// Loads the persisted layers from `path` (none: in memory only).
    pub fn open(path: Option<PathBuf>) -> Result<Self> {
        let layers = match &path {
            Some(p) => persist::read_json::<Stored>(p)?.unwrap_or_default().layers,
            None => DynamicLayers::default(),
        };
        Ok(DynamicBrokerConfig {
            path,
            layers: RwLock::new(layers),
            change: Mutex::new(()),
        })
    }

    /// A snapshot of both layers.
    pub fn layers(&self) -> DynamicLayers {
        self.layers.read().clone()
    }

    /// `producer.id.expiration.ms` in effect.
    pub fn producer_id_expiration_ms(&self, config: &BrokerConfig) -> i64 {
        self.layers
            .read()
            .lookup(PRODUCER_ID_EXPIRATION_MS)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(config.producer_id_expiration_ms)
    }

    /// Replaces `scope`'s layer with `configs` (validated by the caller): `check` sees the
    /// would-be layers first and may refuse them; then they are persisted, then `apply` makes
    /// them take effect. With `validate_only` nothing is stored or applied.
    pub fn replace(
        &self,
        scope: Scope,
        configs: BTreeMap<String, String>,
        validate_only: bool,
        check: impl FnOnce(&DynamicLayers) -> Result<()>,
        apply: impl FnOnce(&DynamicLayers),
    ) -> Result<()> {
        let _change = self.change.lock();
        let mut next = self.layers.read().clone();
        *next.get_mut(scope) = configs;
        check(&next)?;
        if validate_only {
            return Ok(());
        }
        if let Some(path) = &self.path {
            persist::write_json(
                path,
                &Stored {
                    version: 1,
                    layers: next.clone(),
                },
            )?;
        }
        *self.layers.write() = next.clone();
        apply(&next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_read_only_and_unknown_keys() {
        assert_eq!(validate("log.retention.ms", " 1000 ").unwrap(), "1000");
        assert_eq!(validate(PRODUCER_ID_EXPIRATION_MS, "5").unwrap(), "5");
        let e = validate("log.retention.ms", "soon").unwrap_err();
        assert_eq!(
            e.error_code(),
            kafka_protocol::ResponseError::InvalidRequest
        );
        let e = validate("num.partitions", "3").unwrap_err();
        assert_eq!(
            e.error_code(),
            kafka_protocol::ResponseError::InvalidRequest
        );
        assert!(
            e.to_string()
                .contains("Cannot update these configs dynamically"),
            "{e}"
        );
        let e = validate("no.such.key", "1").unwrap_err();
        assert_eq!(e.error_code(), kafka_protocol::ResponseError::InvalidConfig);
        assert_eq!(validate("log.cleaner.threads", "2").unwrap(), "2");
        let e = validate("log.cleaner.backoff.ms", "later").unwrap_err();
        assert_eq!(
            e.error_code(),
            kafka_protocol::ResponseError::InvalidRequest
        );
        let e = validate("log.cleaner.enable", "false").unwrap_err();
        assert!(
            e.to_string()
                .contains("Cannot update these configs dynamically"),
            "{e}"
        );
    }

    #[test]
    fn cleaner_settings_from_the_layers() {
        let mut l = DynamicLayers::default();
        l.cluster_default
            .insert("log.cleaner.threads".into(), "2".into());
        l.cluster_default
            .insert("log.cleaner.backoff.ms".into(), "100".into());
        l.broker
            .insert("log.cleaner.backoff.ms".into(), "50".into());
        l.broker
            .insert("log.cleaner.io.max.bytes.per.second".into(), "1e6".into());
        let c = l.cleaner_config(&CleanerConfig::default());
        assert_eq!((c.threads, c.backoff_ms), (2, 50));
        assert_eq!(c.io_max_bytes_per_second, 1e6);
        assert_eq!(
            c.dedupe_buffer_bytes,
            CleanerConfig::default().dedupe_buffer_bytes
        );
    }

    #[test]
    fn per_broker_beats_cluster_default_beats_static() {
        let mut l = DynamicLayers::default();
        l.cluster_default
            .insert("log.retention.ms".into(), "2000".into());
        l.cluster_default
            .insert("log.segment.bytes".into(), "4096".into());
        l.broker.insert("log.retention.ms".into(), "1000".into());
        let statics: BTreeMap<_, _> = [("retention.bytes".to_string(), "7".to_string())].into();
        let d = l.log_defaults(&statics);
        assert_eq!(d["retention.ms"], "1000");
        assert_eq!(d["segment.bytes"], "4096");
        assert_eq!(d["retention.bytes"], "7");
        assert_eq!(l.lookup("log.retention.ms").unwrap().0, Scope::Broker);
    }
}
