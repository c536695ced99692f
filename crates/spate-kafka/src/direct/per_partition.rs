//! [`PerPartitionConfig`]: the static per-partition rate cap and floor
//! (`spark.streaming.kafka.maxRatePerPartition` / `minRatePerPartition`), with per
//! topic-partition overrides like Spark's `PerPartitionConfig` (SPARK-25233).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::direct::offset_range::TopicPartition;
use crate::error::{Result, SpateKafkaError};

/// Records/s limits per partition. `max_rate` 0 means unlimited (Spark's default); `min_rate`
/// (default 1) is the floor applied whenever some limit is active, so that no partition starves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerPartitionConfig {
    max_rate: u64,
    min_rate: u64,
    max_overrides: BTreeMap<TopicPartition, u64>,
    min_overrides: BTreeMap<TopicPartition, u64>,
}

impl Default for PerPartitionConfig {
    fn default() -> Self {
        PerPartitionConfig {
            max_rate: Self::DEFAULT_MAX_RATE,
            min_rate: Self::DEFAULT_MIN_RATE,
            max_overrides: BTreeMap::new(),
            min_overrides: BTreeMap::new(),
        }
    }
}

impl PerPartitionConfig {
    /// `spark.streaming.kafka.maxRatePerPartition` default: unlimited.
    pub const DEFAULT_MAX_RATE: u64 = 0;
    /// `spark.streaming.kafka.minRatePerPartition` default.
    pub const DEFAULT_MIN_RATE: u64 = 1;

    /// Sets the cap for every partition without an override (0 = unlimited).
    pub fn max_rate_per_partition(mut self, rate: u64) -> Self {
        self.max_rate = rate;
        self
    }

    /// Sets the floor for every partition without an override.
    pub fn min_rate_per_partition(mut self, rate: u64) -> Self {
        self.min_rate = rate;
        self
    }

    /// Overrides the cap of one partition (0 = unlimited).
    pub fn max_rate_for(mut self, tp: TopicPartition, rate: u64) -> Self {
        self.max_overrides.insert(tp, rate);
        self
    }

    /// Overrides the floor of one partition.
    pub fn min_rate_for(mut self, tp: TopicPartition, rate: u64) -> Self {
        self.min_overrides.insert(tp, rate);
        self
    }

    /// The cap for `tp` in records/s (0 = unlimited).
    pub fn max_rate(&self, tp: &TopicPartition) -> u64 {
        self.max_overrides.get(tp).copied().unwrap_or(self.max_rate)
    }

    /// The floor for `tp` in records/s.
    pub fn min_rate(&self, tp: &TopicPartition) -> u64 {
        self.min_overrides.get(tp).copied().unwrap_or(self.min_rate)
    }

    /// Rejects a floor above a cap for the same partition, which would make the cap meaningless.
    pub fn validate(&self) -> Result<()> {
        let check = |tp: Option<&TopicPartition>, max: u64, min: u64| {
            if max > 0 && min > max {
                let key = match tp {
                    Some(tp) => format!("min_rate_per_partition[{tp}]"),
                    None => "min_rate_per_partition".to_owned(),
                };
                return Err(SpateKafkaError::config(
                    key,
                    min.to_string(),
                    format!("must not exceed max_rate_per_partition ({max})"),
                ));
            }
            Ok(())
        };
        check(None, self.max_rate, self.min_rate)?;
        for tp in self.max_overrides.keys().chain(self.min_overrides.keys()) {
            check(Some(tp), self.max_rate(tp), self.min_rate(tp))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sparks() {
        let c = PerPartitionConfig::default();
        let tp = TopicPartition::new("t", 0);
        assert_eq!(c.max_rate(&tp), 0);
        assert_eq!(c.min_rate(&tp), 1);
    }

    #[test]
    fn overrides_win_for_their_partition_only() {
        let a = TopicPartition::new("t", 0);
        let b = TopicPartition::new("t", 1);
        let c = PerPartitionConfig::default()
            .max_rate_per_partition(100)
            .min_rate_per_partition(5)
            .max_rate_for(a.clone(), 10)
            .min_rate_for(b.clone(), 50);
        assert_eq!((c.max_rate(&a), c.min_rate(&a)), (10, 5));
        assert_eq!((c.max_rate(&b), c.min_rate(&b)), (100, 50));
        c.validate().unwrap();
    }

    #[test]
    fn floor_above_cap_is_rejected() {
        let a = TopicPartition::new("t", 0);
        let c = PerPartitionConfig::default()
            .max_rate_for(a, 3)
            .min_rate_per_partition(4);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("min_rate_per_partition[t-0]"), "{err}");
        assert!(PerPartitionConfig::default()
            .min_rate_per_partition(9)
            .validate()
            .is_ok());
    }
}
