//! Topic configs in DescribeConfigs and IncrementalAlterConfigs: a topic's overrides over the
//! broker's layers (see [`super::broker::layers`]), with Kafka's names, rules and sources.

use crate::error::{BrokerError, Result};
use crate::state::BrokerState;
use crate::topics::config::{self, ConfigSource};

use super::{apply_ops, broker, Described, Op};

/// Every topic config of `name`: its override, else what the broker layers give.
pub fn describe(state: &BrokerState, name: &str) -> Result<Vec<Described>> {
    let topic = state
        .topics
        .get(name)
        .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
    let overrides = topic.configs();
    let layers = state.dynamic.layers();
    Ok(config::DEFS
        .iter()
        .map(|d| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                synonyms.push((d.name.to_string(), v.clone(), ConfigSource::DynamicTopic));
            }
            synonyms.extend(broker::layers(state, &layers, d.broker_name));
            let (value, source) = synonyms
                .first()
                .map(|(_, v, s)| (v.clone(), *s))
                .unwrap_or_else(|| (d.default.to_string(), ConfigSource::Default));
            Described {
                name: d.name.to_string(),
                value,
                source,
                config_type: d.config_type,
                read_only: false,
                doc: d.doc,
                synonyms,
            }
        })
        .collect())
}

/// IncrementalAlterConfigs on a topic: the operations applied to its overrides, then stored
/// as its new set.
pub fn incremental(
    state: &BrokerState,
    name: &str,
    ops: Vec<Op>,
    validate_only: bool,
) -> Result<()> {
    let topic = state
        .topics
        .get(name)
        .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
    let defaults = state.topics.broker_defaults();
    let configs = apply_ops(topic.configs(), ops, |key, configs| {
        let def = config::def(key)
            .ok_or_else(|| BrokerError::invalid_config(key, "", "not supported by this broker"))?;
        let effective = configs
            .get(key)
            .or_else(|| defaults.get(key))
            .cloned()
            .unwrap_or_else(|| def.default.to_string());
        Ok((def.config_type, effective))
    })?;
    state.topics.set_configs(name, configs, validate_only)
}
