//! Per-group configs (the GROUP config resource of Kafka 4.0, KIP-848/KIP-932): Kafka's
//! `GroupConfig` keys with its defaults and validation, stored per group id in
//! `<meta dir>/group_configs.json` (temp file, fsync, rename).
//!
//! These keys tune the consumer (KIP-848) and share (KIP-932) group protocols: session timeout
//! and heartbeat interval a coordinator hands to members, and the share record lock. The
//! `consumer.*` keys take effect for consumer-protocol groups (read on each
//! ConsumerGroupHeartbeat); share groups are not served, so the `share.*` values are kept and
//! described for tools (`kafka-configs.sh --entity-type groups`). The bounds below are Kafka's
//! default broker bounds, not this broker's `group.consumer.min/max.*` settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};
use crate::persist;

/// One group config: name, Kafka's default, its bounds (Kafka's broker-level min/max defaults,
/// `group.consumer.min.session.timeout.ms` etc.) and documentation.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfigDef {
    /// The config's name (`consumer.session.timeout.ms`, …).
    pub name: &'static str,
    /// Kafka's default value.
    pub default: i32,
    /// The smallest value the broker allows (its `min_name` setting).
    pub min: i32,
    /// The largest value the broker allows (its `max_name` setting).
    pub max: i32,
    /// The broker config that sets the bounds (named in Kafka's error message).
    pub min_name: &'static str,
    /// The broker config that sets the upper bound (named in Kafka's error message).
    pub max_name: &'static str,
    /// Kafka's documentation line for the config.
    pub doc: &'static str,
}

/// How long a consumer-protocol member may go without heartbeating.
pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
/// How often consumer-protocol members are told to heartbeat.
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";
/// Share groups: how long a member may go without heartbeating (kept and described; share groups are not served).
pub const SHARE_SESSION_TIMEOUT_MS: &str = "share.session.timeout.ms";
/// Share groups: how often members are told to heartbeat (kept and described; share groups are not served).
pub const SHARE_HEARTBEAT_INTERVAL_MS: &str = "share.heartbeat.interval.ms";
/// Share groups: how long a delivered record stays locked (kept and described; share groups are not served).
pub const SHARE_RECORD_LOCK_DURATION_MS: &str = "share.record.lock.duration.ms";

/// Kafka's `GroupConfig`, in its order.
pub const DEFS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: CONSUMER_SESSION_TIMEOUT_MS,
        default: 45_000,
        min: 45_000,
        max: 60_000,
        min_name: "group.consumer.min.session.timeout.ms",
        max_name: "group.consumer.max.session.timeout.ms",
        doc: "The timeout to detect client failures when using the consumer group protocol.",
    },
    GroupConfigDef {
        name: CONSUMER_HEARTBEAT_INTERVAL_MS,
        default: 5_000,
        min: 5_000,
        max: 15_000,
        min_name: "group.consumer.min.heartbeat.interval.ms",
        max_name: "group.consumer.max.heartbeat.interval.ms",
        doc: "The heartbeat interval given to the members of a consumer group.",
    },
    GroupConfigDef {
        name: SHARE_SESSION_TIMEOUT_MS,
        default: 45_000,
        min: 45_000,
        max: 60_000,
        min_name: "group.share.min.session.timeout.ms",
        max_name: "group.share.max.session.timeout.ms",
        doc: "The timeout to detect client failures when using the share group protocol.",
    },
    GroupConfigDef {
        name: SHARE_HEARTBEAT_INTERVAL_MS,
        default: 5_000,
        min: 5_000,
        max: 15_000,
        min_name: "group.share.min.heartbeat.interval.ms",
        max_name: "group.share.max.heartbeat.interval.ms",
        doc: "The heartbeat interval given to the members of a share group.",
    },
    GroupConfigDef {
        name: SHARE_RECORD_LOCK_DURATION_MS,
        default: 30_000,
        min: 15_000,
        max: 60_000,
        min_name: "group.share.min.record.lock.duration.ms",
        max_name: "group.share.max.record.lock.duration.ms",
        doc: "The record acquisition lock duration in milliseconds for share groups.",
    },
];

/// The definition of group config `name`, if Kafka has one.
pub fn def(name: &str) -> Option<&'static GroupConfigDef> {
    DEFS.iter().find(|d| d.name == name)
}

fn invalid(key: &str, value: impl Into<String>, reason: impl Into<String>) -> BrokerError {
    BrokerError::invalid_config(key, value, reason)
}

/// Validates a group's whole set of configs as Kafka's `GroupConfig.validate` does: known
/// names, integers within the broker's bounds, and each session timeout above its heartbeat
/// interval. All failures are INVALID_CONFIG. Returns the values normalised.
pub fn validate(configs: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in configs {
        let d = def(k)
            .ok_or_else(|| invalid(k, v.as_str(), format!("Unknown group config name: {k}")))?;
        let n: i32 = v
            .trim()
            .parse()
            .map_err(|_| invalid(k, v.as_str(), "not a 32-bit integer"))?;
        if n < d.min {
            return Err(invalid(
                k,
                v,
                format!("{k} must be greater than or equal to {}", d.min_name),
            ));
        }
        if n > d.max {
            return Err(invalid(
                k,
                v,
                format!("{k} must be less than or equal to {}", d.max_name),
            ));
        }
        out.insert(k.clone(), n.to_string());
    }
    let value = |name: &str| -> i32 {
        out.get(name)
            .and_then(|v| v.parse().ok())
            .or_else(|| def(name).map(|d| d.default))
            .unwrap_or_default()
    };
    for (session, heartbeat) in [
        (CONSUMER_SESSION_TIMEOUT_MS, CONSUMER_HEARTBEAT_INTERVAL_MS),
        (SHARE_SESSION_TIMEOUT_MS, SHARE_HEARTBEAT_INTERVAL_MS),
    ] {
        if value(session) <= value(heartbeat) {
            return Err(invalid(
                session,
                value(session).to_string(),
                format!("{session} must be greater than {heartbeat}"),
            ));
        }
    }
    Ok(out)
}

#[derive(Serialize, Deserialize, Default)]
struct Stored {
    version: u32,
    groups: BTreeMap<String, BTreeMap<String, String>>,
}

/// Every group's configs.
pub struct GroupConfigStore {
    path: Option<PathBuf>,
    groups: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
    change: Mutex<()>,
}

impl std::fmt::Debug for GroupConfigStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConfigStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl GroupConfigStore {
    /// Loads the stored configs from `path` (none: in memory only).
    pub fn open(path: Option<PathBuf>) -> Result<Self> {
        let groups = match &path {
            Some(p) => persist::read_json::<Stored>(p)?.unwrap_or_default().groups,
            None => BTreeMap::new(),
        };
        Ok(GroupConfigStore {
            path,
            groups: RwLock::new(groups),
            change: Mutex::new(()),
        })
    }

    /// The configs set on `group`.
    pub fn get(&self, group: &str) -> BTreeMap<String, String> {
        self.groups.read().get(group).cloned().unwrap_or_default()
    }

    /// Validates `configs` and makes them `group`'s whole set (persisted first).
    pub fn set(
        &self,
        group: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<()> {
        if group.is_empty() {
            return Err(BrokerError::ConfigChangeRejected(
                "Group name must not be empty".into(),
            ));
        }
        let configs = validate(&configs)?;
        if validate_only {
            return Ok(());
        }
        let _change = self.change.lock();
        let mut next = self.groups.read().clone();
        if configs.is_empty() {
            next.remove(group);
        } else {
            next.insert(group.to_string(), configs);
        }
        if let Some(path) = &self.path {
            persist::write_json(
                path,
                &Stored {
                    version: 1,
                    groups: next.clone(),
                },
            )?;
        }
        *self.groups.write() = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kafka_validation() {
        assert!(validate(&set(&[(CONSUMER_SESSION_TIMEOUT_MS, "50000")])).is_ok());
        for bad in [
            set(&[(CONSUMER_SESSION_TIMEOUT_MS, "1000")]),
            set(&[(CONSUMER_SESSION_TIMEOUT_MS, "70000")]),
            set(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "x")]),
            set(&[("no.such.key", "1")]),
            set(&[(SHARE_RECORD_LOCK_DURATION_MS, "1000")]),
        ] {
            let e = validate(&bad).unwrap_err();
            assert_eq!(
                e.error_code(),
                kafka_protocol::ResponseError::InvalidConfig,
                "{bad:?}"
            );
        }
        // Heartbeat within its own bounds, but not below the session timeout.
        let e = validate(&set(&[
            (CONSUMER_SESSION_TIMEOUT_MS, "45000"),
            (CONSUMER_HEARTBEAT_INTERVAL_MS, "15000"),
        ]));
        assert!(e.is_ok());
    }
}
