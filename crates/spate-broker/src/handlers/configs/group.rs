//! The GROUP config resource (Kafka 4.0): a group's own settings over Kafka's defaults
//! (see [`crate::group::group_configs`]).

use std::collections::BTreeMap;

use crate::error::{BrokerError, Result};
use crate::group::group_configs::{self, DEFS};
use crate::state::BrokerState;
use crate::topics::config::{ConfigSource, ConfigType};

use super::{apply_ops, Described, Op};

fn check_name(group: &str) -> Result<()> {
    if group.is_empty() {
        return Err(BrokerError::ConfigChangeRejected(
            "Group name must not be empty".into(),
        ));
    }
    Ok(())
}

/// Every group config of `group`: its own value (GROUP_CONFIG) or Kafka's default.
pub fn describe(state: &BrokerState, group: &str) -> Result<Vec<Described>> {
    check_name(group)?;
    let set = state.group_configs.get(group);
    Ok(DEFS
        .iter()
        .map(|d| {
            let default = d.default.to_string();
            let mut synonyms = Vec::new();
            if let Some(v) = set.get(d.name) {
                synonyms.push((d.name.to_string(), v.clone(), ConfigSource::Group));
            }
            synonyms.push((d.name.to_string(), default.clone(), ConfigSource::Default));
            let (value, source) = match set.get(d.name) {
                Some(v) => (v.clone(), ConfigSource::Group),
                None => (default, ConfigSource::Default),
            };
            Described {
                name: d.name.to_string(),
                value,
                source,
                config_type: ConfigType::Int,
                read_only: false,
                doc: d.doc,
                synonyms,
            }
        })
        .collect())
}

/// Legacy AlterConfigs on GROUP: the given configs become the group's whole set.
pub fn replace(
    state: &BrokerState,
    group: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<()> {
    check_name(group)?;
    state.group_configs.set(group, configs, validate_only)
}

/// IncrementalAlterConfigs on GROUP.
pub fn incremental(
    state: &BrokerState,
    group: &str,
    ops: Vec<Op>,
    validate_only: bool,
) -> Result<()> {
    check_name(group)?;
    let next = apply_ops(state.group_configs.get(group), ops, |key, set| {
        let d = group_configs::def(key).ok_or_else(|| {
            BrokerError::invalid_config(key, "", format!("Unknown group config name: {key}"))
        })?;
        let effective = set
            .get(key)
            .cloned()
            .unwrap_or_else(|| d.default.to_string());
        Ok((ConfigType::Int, effective))
    })?;
    state.group_configs.set(group, next, validate_only)
}
