//! Broker settings of the group coordinator, named and defaulted as Kafka's broker configs.

use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};

/// Group coordinator configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms` (Kafka default 6000): shorter session timeouts are
    /// rejected with INVALID_SESSION_TIMEOUT.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (Kafka default 1800000).
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (Kafka default 3000): the first rebalance of a new
    /// (Empty) group waits this long, capped by the members' rebalance timeout, so that a fleet
    /// of members starting together lands in one generation instead of one rebalance each.
    /// Tests set 0 (as the `server.properties` Kafka ships for development does); the test
    /// broker of `spate-testkit` does so unless told otherwise.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size` (Kafka default unbounded): more members get GROUP_MAX_SIZE_REACHED.
    pub max_size: usize,
    /// `offsets.retention.minutes` (Kafka default 10080 = 7 days): offsets of a group that has
    /// been Empty this long (or, for a group that never used group management, offsets not
    /// committed again for this long) expire.
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms` (Kafka default 600000): how often expiry runs.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (Kafka default 4096): longer commit metadata is rejected
    /// with OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: usize,
    /// `group.consumer.session.timeout.ms` (Kafka default 45000): a consumer-protocol
    /// (KIP-848) member that does not heartbeat for this long is removed. The broker, not the
    /// client, chooses it.
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.min.session.timeout.ms` / `...max...` (Kafka defaults 45000 / 60000):
    /// the bounds of the setting above and of the per-group `consumer.session.timeout.ms`.
    pub consumer_min_session_timeout_ms: i32,
    /// `group.consumer.max.session.timeout.ms` (Kafka default 60000).
    pub consumer_max_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (Kafka default 5000): returned to members in
    /// every ConsumerGroupHeartbeat response.
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.min.heartbeat.interval.ms` / `...max...` (Kafka defaults 5000 / 15000).
    pub consumer_min_heartbeat_interval_ms: i32,
    /// `group.consumer.max.heartbeat.interval.ms` (Kafka default 15000).
    pub consumer_max_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size` (Kafka default unbounded): GROUP_MAX_SIZE_REACHED beyond it.
    pub consumer_max_size: usize,
    /// `group.consumer.assignors` (Kafka default `uniform,range`): the server-side assignors a
    /// member may name; the first is used when no member names one.
    pub consumer_assignors: Vec<String>,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: usize::MAX,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            consumer_session_timeout_ms: 45_000,
            consumer_min_session_timeout_ms: 45_000,
            consumer_max_session_timeout_ms: 60_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_min_heartbeat_interval_ms: 5_000,
            consumer_max_heartbeat_interval_ms: 15_000,
            consumer_max_size: usize::MAX,
            consumer_assignors: vec!["uniform".into(), "range".into()],
        }
    }
}

impl GroupConfig {
    /// Offset retention in milliseconds.
    pub fn offsets_retention_ms(&self) -> i64 {
        self.offsets_retention_minutes.saturating_mul(60_000)
    }

    /// Whether `key` is one of the coordinator's broker configs.
    pub fn handles(key: &str) -> bool {
        matches!(
            key,
            "group.min.session.timeout.ms"
                | "group.max.session.timeout.ms"
                | "group.initial.rebalance.delay.ms"
                | "group.max.size"
                | "offsets.retention.minutes"
                | "offsets.retention.check.interval.ms"
                | "offset.metadata.max.bytes"
                | "group.consumer.session.timeout.ms"
                | "group.consumer.min.session.timeout.ms"
                | "group.consumer.max.session.timeout.ms"
                | "group.consumer.heartbeat.interval.ms"
                | "group.consumer.min.heartbeat.interval.ms"
                | "group.consumer.max.heartbeat.interval.ms"
                | "group.consumer.max.size"
                | "group.consumer.assignors"
        )
    }

    /// Sets one config by its Kafka broker name; values are validated as Kafka does.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |reason: &str| BrokerError::invalid_config(key, value, reason);
        if key == "group.consumer.assignors" {
            self.consumer_assignors = parse_assignors(value).map_err(|r| bad(&r))?;
            return Ok(());
        }
        let n: i64 = value.trim().parse().map_err(|_| bad("not an integer"))?;
        let positive_i32 = || -> Result<i32> {
            i32::try_from(n)
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| bad("must be between 1 and 2147483647"))
        };
        match key {
            "group.min.session.timeout.ms" => self.min_session_timeout_ms = positive_i32()?,
            "group.max.session.timeout.ms" => self.max_session_timeout_ms = positive_i32()?,
            "group.initial.rebalance.delay.ms" => {
                self.initial_rebalance_delay_ms = i32::try_from(n)
                    .ok()
                    .filter(|v| *v >= 0)
                    .ok_or_else(|| bad("must be at least 0"))?
            }
            "group.max.size" => self.max_size = positive_i32()? as usize,
            "offsets.retention.minutes" => self.offsets_retention_minutes = positive_i32()?.into(),
            "offsets.retention.check.interval.ms" => {
                if n < 1 {
                    return Err(bad("must be at least 1"));
                }
                self.offsets_retention_check_interval_ms = n;
            }
            "offset.metadata.max.bytes" => {
                self.offset_metadata_max_bytes = positive_i32()? as usize
            }
            "group.consumer.session.timeout.ms" => {
                self.consumer_session_timeout_ms = positive_i32()?
            }
            "group.consumer.min.session.timeout.ms" => {
                self.consumer_min_session_timeout_ms = positive_i32()?
            }
            "group.consumer.max.session.timeout.ms" => {
                self.consumer_max_session_timeout_ms = positive_i32()?
            }
            "group.consumer.heartbeat.interval.ms" => {
                self.consumer_heartbeat_interval_ms = positive_i32()?
            }
            "group.consumer.min.heartbeat.interval.ms" => {
                self.consumer_min_heartbeat_interval_ms = positive_i32()?
            }
            "group.consumer.max.heartbeat.interval.ms" => {
                self.consumer_max_heartbeat_interval_ms = positive_i32()?
            }
            "group.consumer.max.size" => self.consumer_max_size = positive_i32()? as usize,
            _ => return Err(bad("unknown group coordinator config")),
        }
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return Err(bad(
                "group.min.session.timeout.ms must not exceed group.max.session.timeout.ms",
            ));
        }
        Ok(())
    }
}

/// The assignor names of `group.consumer.assignors`: Kafka's short names or its class names.
fn parse_assignors(value: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    for raw in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = match raw.rsplit('.').next().unwrap_or(raw) {
            "UniformAssignor" | "uniform" => "uniform",
            "RangeAssignor" | "range" => "range",
            _ => return Err(format!("unknown assignor {raw}; supported: uniform, range")),
        };
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    if out.is_empty() {
        return Err("at least one assignor is required".into());
    }
    Ok(out)
}

impl GroupConfig {
    /// The relations Kafka checks between the consumer-protocol settings once all are read
    /// (their order in a properties file does not matter): each value within its bounds, and
    /// the heartbeat interval below the session timeout.
    pub fn check(&self) -> Result<()> {
        let fail = |key: &str, value: i32, reason: String| {
            Err(BrokerError::invalid_config(key, value.to_string(), &reason))
        };
        let within = [
            (
                "group.consumer.session.timeout.ms",
                self.consumer_session_timeout_ms,
                self.consumer_min_session_timeout_ms,
                self.consumer_max_session_timeout_ms,
                "session",
            ),
            (
                "group.consumer.heartbeat.interval.ms",
                self.consumer_heartbeat_interval_ms,
                self.consumer_min_heartbeat_interval_ms,
                self.consumer_max_heartbeat_interval_ms,
                "heartbeat",
            ),
        ];
        for (key, value, min, max, what) in within {
            if value < min {
                let min_key = if what == "session" {
                    "group.consumer.min.session.timeout.ms"
                } else {
                    "group.consumer.min.heartbeat.interval.ms"
                };
                return fail(
                    key,
                    value,
                    format!("{key} must be greater than or equal to {min_key}"),
                );
            }
            if value > max {
                let max_key = if what == "session" {
                    "group.consumer.max.session.timeout.ms"
                } else {
                    "group.consumer.max.heartbeat.interval.ms"
                };
                return fail(
                    key,
                    value,
                    format!("{key} must be less than or equal to {max_key}"),
                );
            }
        }
        if self.consumer_heartbeat_interval_ms >= self.consumer_session_timeout_ms {
            return fail(
                "group.consumer.heartbeat.interval.ms",
                self.consumer_heartbeat_interval_ms,
                "group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::GroupConfig;

    #[test]
    fn set_by_kafka_name_and_validate() {
        let mut c = GroupConfig::default();
        c.set("group.min.session.timeout.ms", "1000").unwrap();
        c.set("group.initial.rebalance.delay.ms", "3000").unwrap();
        assert_eq!(c.min_session_timeout_ms, 1000);
        assert_eq!(c.initial_rebalance_delay_ms, 3000);
        assert!(c.set("group.min.session.timeout.ms", "x").is_err());
        assert!(c.set("group.max.size", "0").is_err());
        assert!(c.set("group.min.session.timeout.ms", "9999999").is_err());
        assert!(GroupConfig::handles("offsets.retention.minutes"));
        assert!(!GroupConfig::handles("num.partitions"));
    }

    #[test]
    fn consumer_protocol_settings() {
        let mut c = GroupConfig::default();
        assert!(c.check().is_ok());
        // Order-independent: the value below the default minimum is fine once the minimum is.
        c.set("group.consumer.session.timeout.ms", "3000").unwrap();
        assert!(c.check().is_err());
        c.set("group.consumer.min.session.timeout.ms", "1000")
            .unwrap();
        c.set("group.consumer.min.heartbeat.interval.ms", "100")
            .unwrap();
        c.set("group.consumer.heartbeat.interval.ms", "500")
            .unwrap();
        assert!(c.check().is_ok());
        c.set("group.consumer.heartbeat.interval.ms", "3000")
            .unwrap();
        assert!(c.check().is_err());
        c.set(
            "group.consumer.assignors",
            "org.apache.kafka.coordinator.group.assignor.RangeAssignor, uniform",
        )
        .unwrap();
        assert_eq!(c.consumer_assignors, vec!["range", "uniform"]);
        assert!(c.set("group.consumer.assignors", "sticky").is_err());
    }
}
