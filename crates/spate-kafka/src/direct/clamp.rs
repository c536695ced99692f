//! The direct stream's rate clamp: how far a batch may advance each partition. This is Spark's
//! `DirectKafkaInputDStream.maxMessagesPerPartition` + `clamp` reproduced exactly (so
//! rates tuned for Spark carry over), including its quirks — the lag split by `lag / totalLag * rate`, the NaN when no
//! partition lags (which turns the clamp off), truncation toward zero, and the `minRate` floor.
//!
//! spate's one change is *where the rate comes from* ([`estimated_rate`]): an initial rate
//! bounds the first batch even without backpressure, so a backlog never lands in one batch
//! (in Spark the first batch after a long stop reads the whole backlog).

use std::collections::BTreeMap;

use crate::direct::offset_range::TopicPartition;
use crate::direct::per_partition::PerPartitionConfig;

/// The total rate (records/s) to split across partitions for the next batch, or `None` for "no
/// rate-based limit" (only `max_rate_per_partition` applies then).
///
/// * `backpressure_rate`: `Some(latest)` when backpressure is on, with the rate controller's
///   latest estimate (−1 or 0 before the PID has one). Spark falls back to the initial rate while
///   there is no estimate; so do we.
/// * Without backpressure, spate applies `initial_rate` to the first batch only.
pub fn estimated_rate(
    backpressure_rate: Option<i64>,
    initial_rate: Option<f64>,
    first_batch: bool,
) -> Option<f64> {
    match backpressure_rate {
        Some(latest) if latest > 0 => Some(latest as f64),
        Some(_) => initial_rate,
        None if first_batch => initial_rate,
        None => None,
    }
}

/// Spark's `maxMessagesPerPartition`: records each partition may take in a batch of
/// `batch_secs` seconds, or `None` when no limit is active.
///
/// `current` and `latest` map each planned partition to its next offset to read and its latest
/// available offset; partitions missing from `current` count as not lagging.
pub fn max_messages_per_partition(
    current: &BTreeMap<TopicPartition, i64>,
    latest: &BTreeMap<TopicPartition, i64>,
    rate: Option<f64>,
    batch_secs: f64,
    limits: &PerPartitionConfig,
) -> Option<BTreeMap<TopicPartition, i64>> {
    let effective: BTreeMap<&TopicPartition, f64> = match rate.filter(|r| *r > 0.0) {
        Some(rate) => {
            let lag: BTreeMap<&TopicPartition, i64> = latest
                .iter()
                .map(|(tp, &l)| (tp, (l - current.get(tp).copied().unwrap_or(l)).max(0)))
                .collect();
            let total_lag: i64 = lag.values().sum();
            lag.into_iter()
                .map(|(tp, lag)| {
                    // 0 / 0 is NaN when nothing lags: exactly as in Spark, the NaN sum below
                    // then fails the `> 0` test and no clamp applies.
                    let backpressure_rate = lag as f64 / total_lag as f64 * rate;
                    let max = limits.max_rate(tp);
                    let limit = if max > 0 {
                        backpressure_rate.min(max as f64)
                    } else {
                        backpressure_rate
                    };
                    (tp, limit)
                })
                .collect()
        }
        None => latest
            .keys()
            .map(|tp| (tp, limits.max_rate(tp) as f64))
            .collect(),
    };
    let sum: f64 = effective.values().sum();
    if sum > 0.0 {
        Some(
            effective
                .into_iter()
                .map(|(tp, limit)| {
                    // Scala's `Double.toLong` truncates toward zero and maps NaN to 0.
                    let msgs = (batch_secs * limit) as i64;
                    let floor = i64::try_from(limits.min_rate(tp)).unwrap_or(i64::MAX);
                    (tp.clone(), msgs.max(floor))
                })
                .collect(),
        )
    } else {
        None
    }
}

/// Spark's `clamp`: the `until` offset of each partition for the next batch.
pub fn clamp(
    current: &BTreeMap<TopicPartition, i64>,
    latest: &BTreeMap<TopicPartition, i64>,
    rate: Option<f64>,
    batch_secs: f64,
    limits: &PerPartitionConfig,
) -> BTreeMap<TopicPartition, i64> {
    match max_messages_per_partition(current, latest, rate, batch_secs, limits) {
        Some(max) => latest
            .iter()
            .map(|(tp, &l)| {
                let from = current.get(tp).copied().unwrap_or(l);
                let msgs = max.get(tp).copied().unwrap_or(0);
                (tp.clone(), from.saturating_add(msgs).min(l))
            })
            .collect(),
        None => latest.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn offsets(v: &[(i32, i64)]) -> BTreeMap<TopicPartition, i64> {
        v.iter().map(|&(p, o)| (tp(p), o)).collect()
    }

    #[test]
    fn max_rate_only_caps_each_partition_at_rate_times_batch() {
        // limit 100/s, 2 s batches: 200 records per partition.
        let limits = PerPartitionConfig::default().max_rate_per_partition(100);
        let until = clamp(
            &offsets(&[(0, 0), (1, 0)]),
            &offsets(&[(0, 1000), (1, 50)]),
            None,
            2.0,
            &limits,
        );
        assert_eq!(until, offsets(&[(0, 200), (1, 50)]));
    }

    #[test]
    fn no_limits_means_until_is_latest() {
        let latest = offsets(&[(0, 1_000_000), (1, 7)]);
        let until = clamp(
            &offsets(&[(0, 0), (1, 0)]),
            &latest,
            None,
            1.0,
            &PerPartitionConfig::default(),
        );
        assert_eq!(until, latest);
    }

    #[test]
    fn backpressure_rate_is_split_by_lag_with_min_rate_floor() {
        // rate 300, lags 900/100/0 (total 1000): 270, 30, 0 records/s. Batch 1.5 s:
        // floor(405) = 405, floor(45) = 45, max(floor(0), 1) = 1 (bounded by latest = current).
        let until = clamp(
            &offsets(&[(0, 0), (1, 0), (2, 7)]),
            &offsets(&[(0, 900), (1, 100), (2, 7)]),
            Some(300.0),
            1.5,
            &PerPartitionConfig::default(),
        );
        assert_eq!(until, offsets(&[(0, 405), (1, 45), (2, 7)]));
    }

    #[test]
    fn backpressure_share_is_capped_by_max_rate() {
        // rate 1000, lags 900/100: 900 and 100 records/s; cap 200 → 200 and 100.
        let limits = PerPartitionConfig::default().max_rate_per_partition(200);
        let until = clamp(
            &offsets(&[(0, 10), (1, 20)]),
            &offsets(&[(0, 910), (1, 120)]),
            Some(1000.0),
            1.0,
            &limits,
        );
        assert_eq!(until, offsets(&[(0, 210), (1, 120)]));
    }

    #[test]
    fn fractional_shares_are_truncated() {
        // rate 100, lags 1000/2000: 33.33… and 66.66… records/s over 1 s → 33 and 66.
        let max = max_messages_per_partition(
            &offsets(&[(0, 0), (1, 0)]),
            &offsets(&[(0, 1000), (1, 2000)]),
            Some(100.0),
            1.0,
            &PerPartitionConfig::default(),
        )
        .unwrap();
        assert_eq!(max, offsets(&[(0, 33), (1, 66)]));
    }

    #[test]
    fn zero_total_lag_gives_nan_and_no_clamp() {
        let current = offsets(&[(0, 5), (1, 9)]);
        assert_eq!(
            max_messages_per_partition(
                &current,
                &current,
                Some(500.0),
                1.0,
                &PerPartitionConfig::default()
            ),
            None
        );
        assert_eq!(
            clamp(
                &current,
                &current,
                Some(500.0),
                1.0,
                &PerPartitionConfig::default()
            ),
            current
        );
    }

    #[test]
    fn min_rate_floor_lifts_tiny_limits_and_honours_overrides() {
        // 1 record/s over 0.5 s truncates to 0; the floor (1, or 10 for partition 1) lifts it.
        let limits = PerPartitionConfig::default()
            .max_rate_per_partition(1)
            .min_rate_for(tp(1), 10);
        let until = clamp(
            &offsets(&[(0, 0), (1, 0)]),
            &offsets(&[(0, 100), (1, 100)]),
            None,
            0.5,
            &limits,
        );
        assert_eq!(until, offsets(&[(0, 1), (1, 10)]));
    }

    #[test]
    fn per_partition_max_override() {
        let limits = PerPartitionConfig::default()
            .max_rate_per_partition(10)
            .max_rate_for(tp(1), 0); // partition 1 unlimited
        let until = clamp(
            &offsets(&[(0, 0), (1, 0)]),
            &offsets(&[(0, 100), (1, 100)]),
            None,
            1.0,
            &limits,
        );
        // Partition 1's limit is 0 and Spark floors it to minRate (1) since the sum is > 0.
        assert_eq!(until, offsets(&[(0, 10), (1, 1)]));
    }

    #[test]
    fn rate_source_follows_spark_plus_first_batch_bound() {
        // Backpressure with an estimate: the estimate.
        assert_eq!(estimated_rate(Some(250), Some(10.0), false), Some(250.0));
        // Backpressure without an estimate yet: the initial rate (Spark: initialRate).
        assert_eq!(estimated_rate(Some(-1), Some(10.0), false), Some(10.0));
        assert_eq!(estimated_rate(Some(-1), None, true), None);
        // No backpressure: spate bounds the first batch only.
        assert_eq!(estimated_rate(None, Some(10.0), true), Some(10.0));
        assert_eq!(estimated_rate(None, Some(10.0), false), None);
    }

    #[test]
    fn initial_rate_bounds_first_batch() {
        // initial 100/s split 300:100 → 75 and 25 records/s, 2 s batch → 150 and 50.
        let rate = estimated_rate(None, Some(100.0), true);
        let until = clamp(
            &offsets(&[(0, 0), (1, 0)]),
            &offsets(&[(0, 300), (1, 100)]),
            rate,
            2.0,
            &PerPartitionConfig::default(),
        );
        assert_eq!(until, offsets(&[(0, 150), (1, 50)]));
    }
}
