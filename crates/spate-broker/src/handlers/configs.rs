//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and a read-only view
//! of the broker's own settings). Topic values come from [`crate::topics::config`], which knows
//! Kafka's names, defaults and rules; this module only maps requests and responses.

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
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::error::{BrokerError, Result};
use crate::state::BrokerState;
use crate::strings::{str_bytes, str_opt};
use crate::topics::config::{self, ConfigSource, ConfigType};

/// `ConfigResource.Type` codes.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn describe(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DescribeConfigsRequest,
) -> Result<DescribeConfigsResponse> {
    let mut resp = DescribeConfigsResponse::default();
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
        match res.resource_type {
            RESOURCE_TOPIC => match state.topics.get(res.resource_name.as_str()) {
                None => {
                    r.error_code = ResponseError::UnknownTopicOrPartition.code();
                    r.error_message = str_opt(format!("unknown topic {}", res.resource_name));
                }
                Some(topic) => {
                    let overrides = topic.configs();
                    for c in config::describe(state.topics.broker_defaults(), &overrides) {
                        if !wanted(c.name) {
                            continue;
                        }
                        let mut e =
                            entry(c.name, &c.value, c.source, c.config_type, ctx.api_version);
                        if req.include_documentation {
                            e.documentation = str_opt(c.doc);
                        }
                        if req.include_synonyms {
                            e.synonyms = synonyms(&c, &overrides);
                        }
                        r.configs.push(e);
                    }
                }
            },
            RESOURCE_BROKER => {
                let name = res.resource_name.as_str();
                if !name.is_empty() && name != state.advertised.node_id.to_string() {
                    r.error_code = ResponseError::InvalidRequest.code();
                    r.error_message = str_opt(format!(
                        "this broker is node {}, not {name}",
                        state.advertised.node_id
                    ));
                } else {
                    for (k, v, t) in broker_configs(&state) {
                        if wanted(&k) {
                            let mut e =
                                entry(&k, &v, ConfigSource::StaticBroker, t, ctx.api_version);
                            e.read_only = true;
                            r.configs.push(e);
                        }
                    }
                }
            }
            other => {
                r.error_code = ResponseError::InvalidRequest.code();
                r.error_message = str_opt(format!("unsupported config resource type {other}"));
            }
        }
        resp.results.push(r);
    }
    Ok(resp)
}

fn entry(
    name: &str,
    value: &str,
    source: ConfigSource,
    config_type: ConfigType,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default();
    e.name = str_bytes(name);
    e.value = str_opt(value);
    e.config_source = source.code();
    e.documentation = None;
    if version >= 3 {
        e.config_type = config_type.code();
    }
    e
}

/// Synonyms in precedence order: the topic override, the broker setting, Kafka's default.
fn synonyms(
    c: &config::DescribedConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<DescribeConfigsSynonym> {
    let Some(def) = config::def(c.name) else {
        return Vec::new();
    };
    let syn = |name: &str, value: &str, source: ConfigSource| {
        let mut s = DescribeConfigsSynonym::default();
        s.name = str_bytes(name);
        s.value = str_opt(value);
        s.source = source.code();
        s
    };
    let mut out = Vec::new();
    if let Some(v) = overrides.get(c.name) {
        out.push(syn(c.name, v, ConfigSource::DynamicTopic));
    }
    if let Some(v) = &c.broker_value {
        out.push(syn(def.broker_name, v, ConfigSource::StaticBroker));
    }
    out.push(syn(def.broker_name, def.default, ConfigSource::Default));
    out
}

/// The broker settings DescribeConfigs shows for the broker resource (read-only).
fn broker_configs(state: &BrokerState) -> Vec<(String, String, ConfigType)> {
    let c = &state.config;
    let fixed: [(&str, String, ConfigType); 8] = [
        ("node.id", c.node_id.to_string(), ConfigType::Int),
        ("broker.id", c.node_id.to_string(), ConfigType::Int),
        (
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
            ConfigType::Boolean,
        ),
        (
            "num.partitions",
            c.num_partitions.to_string(),
            ConfigType::Int,
        ),
        (
            "default.replication.factor",
            "1".to_string(),
            ConfigType::Int,
        ),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
            ConfigType::Int,
        ),
        (
            "log.retention.check.interval.ms",
            c.log_retention_check_interval_ms.to_string(),
            ConfigType::Long,
        ),
        (
            "producer.id.expiration.ms",
            c.producer_id_expiration_ms.to_string(),
            ConfigType::Long,
        ),
    ];
    let mut v: Vec<(String, String, ConfigType)> = fixed
        .into_iter()
        .map(|(name, value, ty)| (name.to_string(), value, ty))
        .collect();
    for d in config::DEFS {
        let value = c
            .log_defaults
            .get(d.name)
            .cloned()
            .unwrap_or_else(|| d.default.to_string());
        v.push((d.broker_name.to_string(), value, d.config_type));
    }
    v
}

fn alter_error(e: &BrokerError) -> (i16, Option<StrBytes>) {
    (e.code(), str_opt(e.to_string()))
}

pub async fn alter(
    state: Arc<BrokerState>,
    _ctx: RequestContext,
    req: AlterConfigsRequest,
) -> Result<AlterConfigsResponse> {
    let mut resp = AlterConfigsResponse::default();
    for res in req.resources {
        let mut r = alter_configs_response::AlterConfigsResourceResponse::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        r.error_message = None;
        let outcome = match res.resource_type {
            RESOURCE_TOPIC => {
                // Legacy AlterConfigs replaces the whole set of overrides.
                let configs = res
                    .configs
                    .iter()
                    .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                    .collect();
                state
                    .topics
                    .set_configs(res.resource_name.as_str(), configs, req.validate_only)
                    .map_err(|e| alter_error(&e))
            }
            other => Err(read_only_resource(other)),
        };
        if let Err((code, message)) = outcome {
            r.error_code = code;
            r.error_message = message;
        }
        resp.responses.push(r);
    }
    Ok(resp)
}

fn read_only_resource(resource_type: i8) -> (i16, Option<StrBytes>) {
    let message = if resource_type == RESOURCE_BROKER {
        "broker configs are static; set them with `spate broker --config`".to_string()
    } else {
        format!("unsupported config resource type {resource_type}")
    };
    (ResponseError::InvalidRequest.code(), str_opt(message))
}

pub async fn incremental_alter(
    state: Arc<BrokerState>,
    _ctx: RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> Result<IncrementalAlterConfigsResponse> {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let mut r = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        r.error_message = None;
        let outcome = match res.resource_type {
            RESOURCE_TOPIC => match state.topics.get(res.resource_name.as_str()) {
                None => Err(alter_error(&BrokerError::UnknownTopic(
                    res.resource_name.to_string(),
                ))),
                Some(topic) => {
                    let ops = res.configs.iter().map(|c| {
                        (
                            c.name.to_string(),
                            c.config_operation,
                            c.value.as_ref().map(|v| v.to_string()),
                        )
                    });
                    apply_ops(topic.configs(), state.topics.broker_defaults(), ops)
                        .and_then(|configs| {
                            state.topics.set_configs(
                                res.resource_name.as_str(),
                                configs,
                                req.validate_only,
                            )
                        })
                        .map_err(|e| alter_error(&e))
                }
            },
            other => Err(read_only_resource(other)),
        };
        if let Err((code, message)) = outcome {
            r.error_code = code;
            r.error_message = message;
        }
        resp.responses.push(r);
    }
    Ok(resp)
}

/// Applies SET / DELETE / APPEND / SUBTRACT operations to a topic's overrides. APPEND and
/// SUBTRACT work on list configs (`cleanup.policy`), starting from the effective value.
fn apply_ops(
    mut configs: BTreeMap<String, String>,
    broker_defaults: &BTreeMap<String, String>,
    ops: impl Iterator<Item = (String, i8, Option<String>)>,
) -> Result<BTreeMap<String, String>> {
    for (name, op, value) in ops {
        let Some(def) = config::def(&name) else {
            return Err(BrokerError::invalid_config(
                &name,
                value.unwrap_or_default(),
                "unknown topic config",
            ));
        };
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
                if def.config_type != ConfigType::List {
                    return Err(BrokerError::invalid_config(
                        &name,
                        value.unwrap_or_default(),
                        "APPEND and SUBTRACT apply only to list configs",
                    ));
                }
                let current = configs
                    .get(&name)
                    .or_else(|| broker_defaults.get(&name))
                    .cloned()
                    .unwrap_or_else(|| def.default.to_string());
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let given: Vec<String> = value
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
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
                return Err(BrokerError::invalid_config(
                    &name,
                    value.unwrap_or_default(),
                    format!("unknown operation {other}"),
                ))
            }
        }
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations() {
        let none = BTreeMap::new();
        let start: BTreeMap<String, String> =
            [("retention.ms".to_string(), "100".to_string())].into();
        let ops = vec![
            ("retention.ms".to_string(), OP_DELETE, None),
            (
                "segment.bytes".to_string(),
                OP_SET,
                Some("2048".to_string()),
            ),
            (
                "cleanup.policy".to_string(),
                OP_APPEND,
                Some("compact".to_string()),
            ),
        ];
        let out = apply_ops(start, &none, ops.into_iter()).unwrap();
        assert_eq!(out.get("retention.ms"), None);
        assert_eq!(out.get("segment.bytes").unwrap(), "2048");
        assert_eq!(out.get("cleanup.policy").unwrap(), "delete,compact");
        let out = apply_ops(
            out,
            &none,
            vec![(
                "cleanup.policy".to_string(),
                OP_SUBTRACT,
                Some("delete".to_string()),
            )]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(out.get("cleanup.policy").unwrap(), "compact");
        let err = apply_ops(
            out,
            &none,
            vec![("retention.ms".to_string(), OP_APPEND, Some("1".to_string()))].into_iter(),
        )
        .unwrap_err();
        assert_eq!(err.error_code(), ResponseError::InvalidConfig);
    }
}
