//! `spate configs`: describe and alter topic, broker and group configs, like
//! `kafka-configs.sh` (same flags: `--entity-type`, `--entity-name`/`--entity-default`,
//! `--describe [--all]`, `--alter --add-config k=v,... --delete-config k,...`).
//!
//! It speaks DescribeConfigs v4 and IncrementalAlterConfigs v1 itself (kafka-protocol over one
//! TCP connection) rather than through rdkafka: the Rust wrapper reports every AlterConfigs
//! resource as a success, has no IncrementalAlterConfigs, cannot address the cluster-default
//! broker resource (`""`) and rejects the GROUP_CONFIG source Kafka 4.0 returns.

use anyhow::{anyhow, bail};
use clap::{ArgGroup, Args, ValueEnum};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::raw_admin::{AdminArgs, Connection};

/// `spate configs`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("action").required(true).args(["describe", "alter"])))]
#[command(group(ArgGroup::new("entity").args(["entity_name", "entity_default"])))]
pub struct ConfigsArgs {
    /// The broker and the client's security settings.
    #[command(flatten)]
    pub connect: AdminArgs,
    /// What the configs belong to.
    #[arg(long, value_enum)]
    pub entity_type: EntityType,
    /// The topic name, broker id or group id.
    #[arg(long, value_name = "NAME")]
    pub entity_name: Option<String>,
    /// The cluster-wide default (brokers only).
    #[arg(long)]
    pub entity_default: bool,
    /// Show the entity's configs (dynamic ones; with --all every config).
    #[arg(long)]
    pub describe: bool,
    /// With --describe: every config, including static and default values.
    #[arg(long, requires = "describe")]
    pub all: bool,
    /// Change the entity's configs.
    #[arg(long)]
    pub alter: bool,
    /// With --alter: configs to set, `k1=v1,k2=[v2,v3]`.
    #[arg(long, value_name = "CONFIGS", requires = "alter")]
    pub add_config: Option<String>,
    /// With --alter: configs to remove (back to the default), `k1,k2`.
    #[arg(long, value_name = "KEYS", requires = "alter", value_delimiter = ',')]
    pub delete_config: Vec<String>,
}

/// `--entity-type`, with Kafka's spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EntityType {
    /// Topic configs.
    Topics,
    /// Broker configs (a broker id, or the cluster default).
    Brokers,
    /// Consumer group configs.
    Groups,
}

impl EntityType {
    /// `ConfigResource.Type`.
    fn code(self) -> i8 {
        match self {
            EntityType::Topics => 2,
            EntityType::Brokers => 4,
            EntityType::Groups => 32,
        }
    }
}

/// Kafka's `ConfigSource` names, by code.
fn source_name(code: i8) -> &'static str {
    match code {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "DYNAMIC_GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// Sources set on the entity itself (what `--describe` without `--all` shows).
fn is_dynamic(code: i8) -> bool {
    matches!(code, 1 | 2 | 3 | 8)
}

/// Runs `spate configs` (like kafka-configs.sh).
pub fn run(args: ConfigsArgs) -> anyhow::Result<()> {
    let name = entity_name(&args)?;
    let mut conn = args.connect.connect()?;
    if args.describe {
        describe(&mut conn, &args, &name)
    } else {
        alter(&mut conn, &args, &name)
    }
}

/// The resource name: the entity name, or `""` for the brokers' cluster default.
fn entity_name(args: &ConfigsArgs) -> anyhow::Result<String> {
    match (&args.entity_name, args.entity_default) {
        (Some(n), false) => Ok(n.clone()),
        (None, true) if args.entity_type == EntityType::Brokers => Ok(String::new()),
        (None, true) => bail!("--entity-default is only supported with --entity-type brokers"),
        _ => bail!("one of --entity-name or --entity-default is required"),
    }
}

/// How Kafka's tool names the entity in its output.
fn entity_label(entity_type: EntityType, name: &str) -> String {
    match entity_type {
        EntityType::Brokers if name.is_empty() => "the default broker".into(),
        EntityType::Brokers => format!("broker {name}"),
        EntityType::Topics => format!("topic {name}"),
        EntityType::Groups => format!("group {name}"),
    }
}

fn describe(conn: &mut Connection, args: &ConfigsArgs, name: &str) -> anyhow::Result<()> {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(args.entity_type.code())
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None)]);
    let resp = conn.call(&req, 4)?;
    let result = resp
        .results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the broker answered without a result"))?;
    if result.error_code != 0 {
        bail!(
            "describing {} failed (error {}): {}",
            entity_label(args.entity_type, name),
            result.error_code,
            result.error_message.as_deref().unwrap_or_default()
        );
    }
    if args.entity_type == EntityType::Brokers && name.is_empty() {
        println!("Default configs for brokers in the cluster are:");
    } else {
        let heading = if args.all { "All" } else { "Dynamic" };
        println!(
            "{heading} configs for {} are:",
            entity_label(args.entity_type, name)
        );
    }
    for e in result
        .configs
        .iter()
        .filter(|e| args.all || is_dynamic(e.config_source))
    {
        println!("  {}", format_entry(e));
    }
    Ok(())
}

/// `name=value sensitive=false synonyms={SOURCE:name=value, ...}`, as kafka-configs.sh prints.
fn format_entry(e: &DescribeConfigsResourceResult) -> String {
    let value = |v: &Option<StrBytes>| v.as_deref().unwrap_or("null").to_string();
    let synonyms: Vec<String> = e
        .synonyms
        .iter()
        .map(|s| {
            format!(
                "{}:{}={}",
                source_name(s.source),
                s.name.as_str(),
                value(&s.value)
            )
        })
        .collect();
    format!(
        "{}={} sensitive={} synonyms={{{}}}",
        e.name.as_str(),
        if e.is_sensitive {
            "null".into()
        } else {
            value(&e.value)
        },
        e.is_sensitive,
        synonyms.join(", ")
    )
}

fn alter(conn: &mut Connection, args: &ConfigsArgs, name: &str) -> anyhow::Result<()> {
    let set = match &args.add_config {
        Some(s) => parse_add_config(s)?,
        None => Vec::new(),
    };
    if set.is_empty() && args.delete_config.is_empty() {
        bail!("--alter needs --add-config and/or --delete-config");
    }
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let configs = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(0)
                .with_value(Some(s(v)))
        })
        .chain(args.delete_config.iter().map(|k| {
            AlterableConfig::default()
                .with_name(s(k.trim()))
                .with_config_operation(1)
        }))
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(args.entity_type.code())
            .with_resource_name(s(name))
            .with_configs(configs),
    ]);
    let resp = conn.call(&req, 1)?;
    let r = resp
        .responses
        .first()
        .ok_or_else(|| anyhow!("the broker answered without a result"))?;
    if r.error_code != 0 {
        bail!(
            "altering {} failed (error {}): {}",
            entity_label(args.entity_type, name),
            r.error_code,
            r.error_message.as_deref().unwrap_or_default()
        );
    }
    if args.entity_type == EntityType::Brokers && name.is_empty() {
        println!("Completed updating default config for brokers in the cluster.");
    } else {
        println!(
            "Completed updating config for {}.",
            entity_label(args.entity_type, name)
        );
    }
    Ok(())
}

/// `k1=v1,k2=[a,b]` → `[(k1, v1), (k2, "a,b")]`: commas inside brackets belong to the value,
/// as in kafka-configs.sh.
pub fn parse_add_config(s: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, ch) in s.char_indices() {
        match ch {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items
        .into_iter()
        .filter(|i| !i.trim().is_empty())
        .map(|item| {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| anyhow!("--add-config entry {item:?} is not KEY=VALUE"))?;
            let v = v.trim();
            let v = v
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(v);
            Ok((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_keeps_bracketed_lists() {
        let parsed =
            parse_add_config("retention.ms=1000, cleanup.policy=[compact,delete]").unwrap();
        assert_eq!(
            parsed,
            vec![
                ("retention.ms".to_string(), "1000".to_string()),
                ("cleanup.policy".to_string(), "compact,delete".to_string())
            ]
        );
        assert!(parse_add_config("novalue").is_err());
    }
}
