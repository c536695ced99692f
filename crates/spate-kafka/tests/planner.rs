//! The driver planner against a real broker: contiguous and clamped ranges, starting offsets,
//! new partitions joining a subscription, data loss at planning, an unreachable broker.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spate_kafka::{
    ConsumerStrategy, DirectStreamConfig, KafkaParams, OffsetPlanner, OffsetRange, RetryPolicy,
    SpateKafkaError, TopicPartition,
};
use spate_testkit::TestBroker;

use common::*;

const SEC: Duration = Duration::from_secs(1);

fn by_partition(ranges: &[OffsetRange]) -> BTreeMap<i32, (i64, i64)> {
    ranges
        .iter()
        .map(|r| (r.partition, (r.from_offset, r.until_offset)))
        .collect()
}

#[test]
fn ranges_are_contiguous_clamped_and_one_per_partition() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "plan", 2);
    produce(&broker, &topic, 0, 0, 100);
    produce(&broker, &topic, 1, 0, 30);
    // 25 records/s per partition, 1 s batches; no first-batch bound so that only the cap acts.
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(25)
        .initial_rate(None);
    let mut planner = OffsetPlanner::new(
        ConsumerStrategy::subscribe([topic.as_str()], params(&broker)),
        config,
    )
    .unwrap();

    let b1 = planner.plan_next(None, SEC).unwrap();
    assert_eq!(
        by_partition(&b1.ranges),
        BTreeMap::from([(0, (0, 25)), (1, (0, 25))])
    );
    let b2 = planner.plan_next(None, SEC).unwrap();
    assert_eq!(
        by_partition(&b2.ranges),
        BTreeMap::from([(0, (25, 50)), (1, (25, 30))])
    );
    produce(&broker, &topic, 1, 30, 10);
    let b3 = planner.plan_next(None, SEC).unwrap();
    assert_eq!(
        by_partition(&b3.ranges),
        BTreeMap::from([(0, (50, 75)), (1, (30, 40))])
    );
    let b4 = planner.plan_next(None, SEC).unwrap();
    let b5 = planner.plan_next(None, SEC).unwrap();
    assert_eq!(
        by_partition(&b4.ranges),
        BTreeMap::from([(0, (75, 100)), (1, (40, 40))])
    );
    assert_eq!(
        by_partition(&b5.ranges),
        BTreeMap::from([(0, (100, 100)), (1, (40, 40))])
    );

    // Every batch starts where the previous one ended, and together they cover the log.
    for w in [&b1, &b2, &b3, &b4, &b5].windows(2) {
        for (prev, next) in w[0].ranges.iter().zip(&w[1].ranges) {
            assert_eq!(prev.topic_partition(), next.topic_partition());
            assert_eq!(prev.until_offset, next.from_offset);
        }
    }
}

#[test]
fn initial_rate_bounds_the_first_batch_then_the_backlog_drains() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "initial", 2);
    produce(&broker, &topic, 0, 0, 300);
    produce(&broker, &topic, 1, 0, 100);
    let config = DirectStreamConfig::default().initial_rate(Some(100.0));
    let mut planner = OffsetPlanner::new(
        ConsumerStrategy::subscribe([topic.as_str()], params(&broker)),
        config,
    )
    .unwrap();
    // 100 records/s split by lag 300:100 over a 2 s batch: 150 and 50 (Spark would take all).
    let b1 = planner.plan_next(None, 2 * SEC).unwrap();
    assert_eq!(
        by_partition(&b1.ranges),
        BTreeMap::from([(0, (0, 150)), (1, (0, 50))])
    );
    let b2 = planner.plan_next(None, 2 * SEC).unwrap();
    assert_eq!(
        by_partition(&b2.ranges),
        BTreeMap::from([(0, (150, 300)), (1, (50, 100))])
    );
}

#[test]
fn backpressure_rate_is_split_by_lag() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "bp", 2);
    produce(&broker, &topic, 0, 0, 90);
    produce(&broker, &topic, 1, 0, 10);
    let config = DirectStreamConfig::default()
        .backpressure(true)
        .initial_rate(None);
    let mut planner = OffsetPlanner::new(
        ConsumerStrategy::subscribe([topic.as_str()], params(&broker)),
        config,
    )
    .unwrap();
    // Estimated 20 records/s, lags 90:10 → 18 and 2 records/s, 1 s batch.
    let b1 = planner.plan_next(Some(20), SEC).unwrap();
    assert_eq!(
        by_partition(&b1.ranges),
        BTreeMap::from([(0, (0, 18)), (1, (0, 2))])
    );
    // No estimate yet and no initial rate: unbounded, as in Spark.
    let b2 = planner.plan_next(Some(-1), SEC).unwrap();
    assert_eq!(
        by_partition(&b2.ranges),
        BTreeMap::from([(0, (18, 90)), (1, (2, 10))])
    );
}

#[test]
fn starting_offsets_explicit_then_committed_then_reset() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "start", 3);
    for p in 0..3 {
        produce(&broker, &topic, p, 0, 20);
    }
    let params = params(&broker);
    // Commit offset 7 for partition 1 in the group.
    let committer =
        spate_kafka::OffsetCommitter::new(&params, &DirectStreamConfig::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    committer.commit_async_with(&[OffsetRange::create(&topic, 1, 0, 7)], move |r| {
        tx.send(r.is_ok()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(20)).unwrap(),
        "commit failed"
    );

    let latest = params.clone().set("auto.offset.reset", "latest");
    let strategy = ConsumerStrategy::subscribe([topic.as_str()], latest)
        .with_offsets([(TopicPartition::new(&topic, 0), 3)]);
    let mut planner = OffsetPlanner::new(strategy, DirectStreamConfig::default()).unwrap();
    let b1 = planner.plan_next(None, SEC).unwrap();
    // p0 explicit 3, p1 committed 7, p2 auto.offset.reset=latest → 20.
    assert_eq!(
        by_partition(&b1.ranges),
        BTreeMap::from([(0, (3, 20)), (1, (7, 20)), (2, (20, 20))])
    );

    let none = params.clone().set("auto.offset.reset", "none");
    let mut planner = OffsetPlanner::new(
        ConsumerStrategy::subscribe([topic.as_str()], none),
        DirectStreamConfig::default(),
    )
    .unwrap();
    let err = planner.plan_next(None, SEC).unwrap_err();
    assert!(
        matches!(err, SpateKafkaError::InvalidConfig { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&format!("{topic}-0")), "{err}");
}

#[test]
fn new_partitions_join_subscribe_and_pattern_at_the_next_batch() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "grow", 1);
    produce(&broker, &topic, 0, 0, 5);
    let latest = params(&broker).set("auto.offset.reset", "latest");
    let mut sub = OffsetPlanner::new(
        ConsumerStrategy::subscribe([topic.as_str()], latest.clone()),
        DirectStreamConfig::default(),
    )
    .unwrap();
    let pattern = format!("{}.*", regex_escape(&topic));
    let mut pat = OffsetPlanner::new(
        ConsumerStrategy::subscribe_pattern(&pattern, latest.clone()).unwrap(),
        DirectStreamConfig::default(),
    )
    .unwrap();
    let assign = ConsumerStrategy::assign([TopicPartition::new(&topic, 0)], latest);
    let mut fixed = OffsetPlanner::new(assign, DirectStreamConfig::default()).unwrap();
    for planner in [&mut sub, &mut pat, &mut fixed] {
        assert_eq!(
            by_partition(&planner.plan_next(None, SEC).unwrap().ranges),
            BTreeMap::from([(0, (5, 5))])
        );
    }

    add_partitions(&broker, &topic, 3);
    produce(&broker, &topic, 2, 0, 4);
    produce(&broker, &topic, 0, 5, 1);
    // Records written to a new partition before the stream saw it are not skipped, even with
    // auto.offset.reset=latest.
    let expected = BTreeMap::from([(0, (5, 6)), (1, (0, 0)), (2, (0, 4))]);
    assert_eq!(
        by_partition(&sub.plan_next(None, SEC).unwrap().ranges),
        expected
    );
    assert_eq!(
        by_partition(&pat.plan_next(None, SEC).unwrap().ranges),
        expected
    );
    // Assign is fixed.
    assert_eq!(
        by_partition(&fixed.plan_next(None, SEC).unwrap().ranges),
        BTreeMap::from([(0, (5, 6))])
    );
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_alphanumeric() || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

#[test]
fn retention_past_the_position_fails_planning_or_skips_and_reports() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "retention", 1);
    produce(&broker, &topic, 0, 0, 50);
    let strategy = ConsumerStrategy::subscribe([topic.as_str()], params(&broker));
    let limited = DirectStreamConfig::default()
        .max_rate_per_partition(10)
        .initial_rate(None);
    let mut failing = OffsetPlanner::new(strategy.clone(), limited.clone()).unwrap();
    let mut skipping = OffsetPlanner::new(strategy, limited.fail_on_data_loss(false)).unwrap();
    assert_eq!(
        by_partition(&failing.plan_next(None, SEC).unwrap().ranges),
        BTreeMap::from([(0, (0, 10))])
    );
    assert_eq!(
        by_partition(&skipping.plan_next(None, SEC).unwrap().ranges),
        BTreeMap::from([(0, (0, 10))])
    );

    delete_records(&broker, &topic, 0, 30);
    let err = failing.plan_next(None, SEC).unwrap_err();
    match &err {
        SpateKafkaError::OffsetsOutOfRange {
            requested_from: 10,
            available_start: 30,
            available_end: 50,
            ..
        } => {}
        other => panic!("unexpected error: {other}"),
    }
    // The failed plan did not move the position.
    assert_eq!(
        failing.current_offsets()[&TopicPartition::new(&topic, 0)],
        10
    );

    let plan = skipping.plan_next(None, SEC).unwrap();
    assert_eq!(by_partition(&plan.ranges), BTreeMap::from([(0, (30, 40))]));
    assert_eq!(plan.lost.len(), 1);
    assert_eq!(plan.lost[0].count(), 20);
}

#[test]
fn an_unreachable_broker_is_retried_with_each_failure_reported() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let failures = Arc::new(AtomicU32::new(0));
    let f = failures.clone();
    let retry = RetryPolicy::default()
        .initial_backoff(Duration::from_millis(50))
        .max_elapsed(Some(Duration::from_secs(3)))
        .on_retry(move |_| {
            f.fetch_add(1, Ordering::SeqCst);
        });
    let config = DirectStreamConfig::default()
        .retry(retry)
        .request_timeout(Duration::from_millis(500));
    let params = KafkaParams::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("broker.address.family", "v4");
    let mut planner =
        OffsetPlanner::new(ConsumerStrategy::subscribe(["t"], params), config).unwrap();
    let err = planner.plan_next(None, SEC).unwrap_err();
    assert!(
        matches!(err, SpateKafkaError::BrokerUnavailable { .. }),
        "{err}"
    );
    assert!(failures.load(Ordering::SeqCst) >= 1);
    assert!(planner.current_offsets().is_empty());
}

#[test]
fn a_deleted_topic_leaves_the_subscription_without_disturbing_the_others() {
    let broker = TestBroker::start();
    let keep = create_topic(&broker, "keep", 1);
    let drop = create_topic(&broker, "drop", 1);
    produce(&broker, &keep, 0, 0, 5);
    produce(&broker, &drop, 0, 0, 5);
    let config = DirectStreamConfig::default().request_timeout(Duration::from_secs(2));
    let mut planner = OffsetPlanner::new(
        ConsumerStrategy::subscribe([keep.as_str(), drop.as_str()], params(&broker)),
        config,
    )
    .unwrap();
    assert_eq!(planner.plan_next(None, SEC).unwrap().ranges.len(), 2);
    delete_topic(&broker, &drop);
    produce(&broker, &keep, 0, 5, 3);
    let plan = planner.plan_next(None, SEC).unwrap();
    assert_eq!(plan.ranges, vec![OffsetRange::create(&keep, 0, 5, 8)]);
    assert_eq!(planner.current_offsets().len(), 1);
}
