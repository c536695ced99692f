//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs: this module maps requests and
//! responses and routes each resource by type to the module that owns its configs —
//! [`topic`] (topic overrides), [`broker`] (the broker's static and dynamic settings) and
//! [`group`] (Kafka 4.0's per-group settings). Each of those answers in [`Described`] entries
//! and takes changes as a whole new set of values, so the three share one mapping of the
//! incremental operations ([`apply_ops`]).
//!
//! Describing needs DESCRIBE_CONFIGS and altering ALTER_CONFIGS on the resource: the topic
//! (else TOPIC_AUTHORIZATION_FAILED), the group (GROUP_AUTHORIZATION_FAILED) or, for the
//! broker, the cluster (CLUSTER_AUTHORIZATION_FAILED), as in Kafka.

pub mod broker;
pub mod group;
pub mod topic;

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::{AclOperation, RequestAuthz};
use crate::error::{BrokerError, Result};
use crate::state::BrokerState;
use crate::strings::{str_bytes, str_opt};
use crate::topics::config::{ConfigSource, ConfigType};

/// `ConfigResource.Type` codes.
pub const RESOURCE_TOPIC: i8 = 2;
/// `ConfigResource.Type` BROKER: the broker's own (dynamic) configs.
pub const RESOURCE_BROKER: i8 = 4;
/// The BROKER_LOGGER config resource (authorized like BROKER: on the cluster).
pub const RESOURCE_BROKER_LOGGER: i8 = 8;
/// `ConfigResource.Type` GROUP: a consumer group's configs (KIP-848).
pub const RESOURCE_GROUP: i8 = 32;

/// IncrementalAlterConfigs operations.
pub const OP_SET: i8 = 0;
/// IncrementalAlterConfigs DELETE: the config returns to its default.
pub const OP_DELETE: i8 = 1;
/// IncrementalAlterConfigs APPEND: adds values to a list config.
pub const OP_APPEND: i8 = 2;
/// IncrementalAlterConfigs SUBTRACT: removes values from a list config.
pub const OP_SUBTRACT: i8 = 3;

/// One described config, version-independent.
#[derive(Debug, Clone)]
pub struct Described {
    /// The config's Kafka name (`retention.ms`, …).
    pub name: String,
    /// The config's value as DescribeConfigs shows it.
    pub value: String,
    /// The layer the value comes from (topic, dynamic broker, static broker, default).
    pub source: ConfigSource,
    /// The config's type (boolean, int, long, string, list, …).
    pub config_type: ConfigType,
    /// Whether the config cannot be changed at run time.
    pub read_only: bool,
    /// Kafka's documentation line for the config (DescribeConfigs v3+ `documentation`).
    pub doc: &'static str,
    /// Every layer that sets this config, highest precedence first: `(name, value, source)`.
    pub synonyms: Vec<(String, String, ConfigSource)>,
}

/// One IncrementalAlterConfigs operation: `(name, operation, value)`.
pub type Op = (String, i8, Option<String>);

/// The authorization failure of `op` on a config resource, if the client lacks it.
fn refusal(
    authz: &RequestAuthz<'_>,
    resource_type: i8,
    name: &str,
    op: AclOperation,
) -> Option<(ResponseError, String)> {
    let (allowed, error) = match resource_type {
        RESOURCE_TOPIC => (
            authz.topic(op, name),
            ResponseError::TopicAuthorizationFailed,
        ),
        RESOURCE_GROUP => (
            authz.group(op, name),
            ResponseError::GroupAuthorizationFailed,
        ),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER => {
            (authz.cluster(op), ResponseError::ClusterAuthorizationFailed)
        }
        _ => return None,
    };
    (!allowed).then(|| (error, format!("Authorization failed ({op} on {name:?})")))
}

fn unsupported(resource_type: i8) -> BrokerError {
    BrokerError::ConfigChangeRejected(format!("Unknown resource type {resource_type}"))
}

/// DescribeConfigs: the configs of topics, the broker, broker loggers and groups.
pub(crate) async fn describe(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DescribeConfigsRequest,
) -> Result<DescribeConfigsResponse> {
    let mut resp = DescribeConfigsResponse::default();
    let authz = ctx.authz(&state);
    for res in req.resources {
        let mut r = DescribeConfigsResult::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        r.error_message = None;
        // No key list (null, or empty as some clients send) means every config.
        let wanted = |name: &str| {
            res.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
        };
        let name = res.resource_name.as_str();
        if let Some((error, message)) = refusal(
            &authz,
            res.resource_type,
            name,
            AclOperation::DescribeConfigs,
        ) {
            r.error_code = error.code();
            r.error_message = str_opt(message);
            resp.results.push(r);
            continue;
        }
        let described = match res.resource_type {
            RESOURCE_TOPIC => topic::describe(&state, name),
            RESOURCE_BROKER => broker::describe(&state, name),
            RESOURCE_GROUP => group::describe(&state, name),
            other => Err(unsupported(other)),
        };
        match described {
            Ok(entries) => {
                r.configs = entries
                    .into_iter()
                    .filter(|d| wanted(&d.name))
                    .map(|d| {
                        entry(
                            d,
                            ctx.api_version,
                            req.include_synonyms,
                            req.include_documentation,
                        )
                    })
                    .collect()
            }
            Err(e) => {
                r.error_code = e.code();
                r.error_message = str_opt(e.to_string());
            }
        }
        resp.results.push(r);
    }
    Ok(resp)
}

fn entry(
    d: Described,
    version: i16,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default();
    e.name = str_bytes(d.name);
    e.value = str_opt(d.value);
    e.read_only = d.read_only;
    e.config_source = d.source.code();
    e.documentation = None;
    if version >= 3 {
        e.config_type = d.config_type.code();
        if documentation {
            e.documentation = str_opt(d.doc);
        }
    }
    if synonyms && version >= 1 {
        e.synonyms = d
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                let mut s = DescribeConfigsSynonym::default();
                s.name = str_bytes(name);
                s.value = str_opt(value);
                s.source = source.code();
                s
            })
            .collect();
    }
    e
}

/// AlterConfigs: replaces a resource's whole set of dynamic configs.
pub(crate) async fn alter(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: AlterConfigsRequest,
) -> Result<AlterConfigsResponse> {
    let mut resp = AlterConfigsResponse::default();
    let authz = ctx.authz(&state);
    for res in req.resources {
        let mut r = alter_configs_response::AlterConfigsResourceResponse::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        r.error_message = None;
        // Legacy AlterConfigs replaces the resource's whole set of configs.
        let nulls: Vec<String> = res
            .configs
            .iter()
            .filter(|c| c.value.is_none())
            .map(|c| c.name.to_string())
            .collect();
        let configs: BTreeMap<String, String> = res
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let name = res.resource_name.as_str();
        if let Some((error, message)) =
            refusal(&authz, res.resource_type, name, AclOperation::AlterConfigs)
        {
            r.error_code = error.code();
            r.error_message = str_opt(message);
            resp.responses.push(r);
            continue;
        }
        let outcome = if !nulls.is_empty() {
            Err(BrokerError::ConfigChangeRejected(format!(
                "Null value not supported for : {}",
                nulls.join(", ")
            )))
        } else {
            match res.resource_type {
                RESOURCE_TOPIC => state.topics.set_configs(name, configs, req.validate_only),
                RESOURCE_BROKER => broker::replace(&state, name, configs, req.validate_only),
                RESOURCE_GROUP => group::replace(&state, name, configs, req.validate_only),
                other => Err(unsupported(other)),
            }
        };
        if let Err(e) = outcome {
            r.error_code = e.code();
            r.error_message = str_opt(e.to_string());
        }
        resp.responses.push(r);
    }
    Ok(resp)
}

/// IncrementalAlterConfigs: sets, deletes, appends to or subtracts from single configs.
pub(crate) async fn incremental_alter(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> Result<IncrementalAlterConfigsResponse> {
    let mut resp = IncrementalAlterConfigsResponse::default();
    let authz = ctx.authz(&state);
    for res in req.resources {
        let mut r = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        r.error_message = None;
        let ops: Vec<Op> = res
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let name = res.resource_name.as_str();
        if let Some((error, message)) =
            refusal(&authz, res.resource_type, name, AclOperation::AlterConfigs)
        {
            r.error_code = error.code();
            r.error_message = str_opt(message);
            resp.responses.push(r);
            continue;
        }
        let outcome = match res.resource_type {
            RESOURCE_TOPIC => topic::incremental(&state, name, ops, req.validate_only),
            RESOURCE_BROKER => broker::incremental(&state, name, ops, req.validate_only),
            RESOURCE_GROUP => group::incremental(&state, name, ops, req.validate_only),
            other => Err(unsupported(other)),
        };
        if let Err(e) = outcome {
            r.error_code = e.code();
            r.error_message = str_opt(e.to_string());
        }
        resp.responses.push(r);
    }
    Ok(resp)
}

/// Applies SET / DELETE / APPEND / SUBTRACT operations to a resource's configs. APPEND and
/// SUBTRACT work on list configs only, starting from the effective value. `current` gives a
/// key's type and effective value, and fails for keys the resource does not have.
pub fn apply_ops(
    mut configs: BTreeMap<String, String>,
    ops: impl IntoIterator<Item = Op>,
    current: impl Fn(&str, &BTreeMap<String, String>) -> Result<(ConfigType, String)>,
) -> Result<BTreeMap<String, String>> {
    for (name, op, value) in ops {
        let (config_type, effective) = current(&name, &configs)?;
        match op {
            OP_SET => {
                let v = value.ok_or_else(|| {
                    BrokerError::invalid_config(&name, "null", "SET needs a value")
                })?;
                configs.insert(name, v);
            }
            OP_DELETE => {
                configs.remove(&name);
            }
            OP_APPEND | OP_SUBTRACT => {
                if config_type != ConfigType::List {
                    return Err(BrokerError::invalid_config(
                        &name,
                        value.unwrap_or_default(),
                        "APPEND and SUBTRACT apply only to list configs",
                    ));
                }
                let split = |s: &str| -> Vec<String> {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                };
                let mut items = split(&effective);
                let given = split(&value.unwrap_or_default());
                if op == OP_APPEND {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                if items.is_empty() {
                    configs.remove(&name);
                } else {
                    configs.insert(name, items.join(","));
                }
            }
            other => {
                return Err(BrokerError::ConfigChangeRejected(format!(
                    "Unknown operations type {other}"
                )))
            }
        }
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::ResponseError;

    /// A topic-like resource: `cleanup.policy` is a list defaulting to `delete`.
    fn current(key: &str, set: &BTreeMap<String, String>) -> Result<(ConfigType, String)> {
        let (t, d) = match key {
            "cleanup.policy" => (ConfigType::List, "delete"),
            "retention.ms" | "segment.bytes" => (ConfigType::Long, "0"),
            _ => return Err(BrokerError::invalid_config(key, "", "unknown")),
        };
        Ok((t, set.get(key).cloned().unwrap_or_else(|| d.to_string())))
    }

    fn op(name: &str, op: i8, value: Option<&str>) -> Op {
        (name.to_string(), op, value.map(String::from))
    }

    #[test]
    fn incremental_operations() {
        let start: BTreeMap<String, String> =
            [("retention.ms".to_string(), "100".to_string())].into();
        let out = apply_ops(
            start,
            vec![
                op("retention.ms", OP_DELETE, None),
                op("segment.bytes", OP_SET, Some("2048")),
                op("cleanup.policy", OP_APPEND, Some("compact")),
            ],
            current,
        )
        .unwrap();
        assert_eq!(out.get("retention.ms"), None);
        assert_eq!(out["segment.bytes"], "2048");
        assert_eq!(out["cleanup.policy"], "delete,compact");
        let out = apply_ops(
            out,
            vec![op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
            current,
        )
        .unwrap();
        assert_eq!(out["cleanup.policy"], "compact");
        let err = apply_ops(
            out.clone(),
            vec![op("retention.ms", OP_APPEND, Some("1"))],
            current,
        )
        .unwrap_err();
        assert_eq!(err.error_code(), ResponseError::InvalidConfig);
        let err = apply_ops(out, vec![op("nope", OP_SET, Some("1"))], current).unwrap_err();
        assert_eq!(err.error_code(), ResponseError::InvalidConfig);
    }
}
