//! `create_rdd` and the range reader against a real broker: exact ranges, 1:1 partitions,
//! consumer reuse, and retention below a planned range.

mod common;

use std::time::Duration;

use spate_kafka::{DirectStreamConfig, HasOffsetRanges, KafkaUtils, OffsetRange, SpateKafkaError};
use spate_testkit::TestBroker;

use common::*;

#[test]
fn create_rdd_reads_exact_ranges_one_partition_per_range() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "rdd", 3);
    for p in 0..3 {
        produce(&broker, &topic, p, 0, 50);
    }
    let ranges = vec![
        OffsetRange::create(&topic, 0, 0, 10),
        OffsetRange::create(&topic, 1, 17, 42),
        OffsetRange::create(&topic, 2, 49, 50),
        OffsetRange::create(&topic, 2, 5, 5),
    ];
    let rdd = KafkaUtils::create_rdd(&params(&broker), &ranges).unwrap();
    assert_eq!(rdd.offset_ranges(), ranges);
    assert_eq!(rdd.partitions().len(), 4);
    assert_eq!(offsets(&rdd.partitions()[0]), (0..10).collect::<Vec<_>>());
    assert_eq!(offsets(&rdd.partitions()[1]), (17..42).collect::<Vec<_>>());
    assert_eq!(values(&rdd.partitions()[1])[0], "1-17");
    assert_eq!(values(&rdd.partitions()[2]), vec!["2-49"]);
    assert!(rdd.partitions()[3].is_empty());
    assert_eq!(rdd.count(), 10 + 25 + 1);
    for (part, range) in rdd.partitions().iter().zip(&ranges) {
        assert!(part
            .iter()
            .all(|r| *r.topic == *topic && r.partition == range.partition));
    }
}

#[test]
fn consecutive_ranges_reuse_the_cached_consumer_and_lose_nothing() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "reuse", 1);
    produce(&broker, &topic, 0, 0, 300);
    let reader =
        spate_kafka::KafkaRangeReader::new(params(&broker), DirectStreamConfig::default()).unwrap();
    let mut all = Vec::new();
    for (from, until) in [(0, 7), (7, 100), (100, 101), (101, 300)] {
        let read = reader
            .read(&OffsetRange::create(&topic, 0, from, until))
            .unwrap();
        all.extend(offsets(&read.records));
        assert_eq!(
            reader.cache().idle_len(),
            1,
            "the consumer went back to the cache"
        );
    }
    assert_eq!(all, (0..300).collect::<Vec<_>>());
    // Going backwards (a re-run batch) seeks and reads the same records again.
    let again = reader.read(&OffsetRange::create(&topic, 0, 5, 9)).unwrap();
    assert_eq!(offsets(&again.records), vec![5, 6, 7, 8]);
}

#[test]
fn deleted_records_below_the_range_fail_with_partition_and_offsets() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "loss", 1);
    produce(&broker, &topic, 0, 0, 100);
    delete_records(&broker, &topic, 0, 60);
    let ranges = [OffsetRange::create(&topic, 0, 20, 80)];
    let err = KafkaUtils::create_rdd(&params(&broker), &ranges).unwrap_err();
    match &err {
        SpateKafkaError::OffsetsOutOfRange {
            topic: t,
            partition: 0,
            requested_from: 20,
            requested_until: 80,
            available_start: 60,
            available_end: 100,
        } if *t == topic => {}
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains(&format!("{topic}-0")), "{err}");
}

#[test]
fn without_fail_on_data_loss_the_read_skips_to_earliest_and_reports() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "skip", 1);
    produce(&broker, &topic, 0, 0, 100);
    delete_records(&broker, &topic, 0, 60);
    let config = DirectStreamConfig::default().fail_on_data_loss(false);
    let rdd = KafkaUtils::create_rdd_with(
        &params(&broker),
        &[OffsetRange::create(&topic, 0, 20, 80)],
        &config,
    )
    .unwrap();
    assert_eq!(offsets(&rdd.partitions()[0]), (60..80).collect::<Vec<_>>());
    assert_eq!(rdd.skipped_offsets(), 40);
}

#[test]
fn a_range_beyond_the_log_end_times_out_with_a_clear_error() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "timeout", 1);
    produce(&broker, &topic, 0, 0, 5);
    let config = DirectStreamConfig::default().poll_timeout(Duration::from_millis(1500));
    let err = KafkaUtils::create_rdd_with(
        &params(&broker),
        &[OffsetRange::create(&topic, 0, 3, 10)],
        &config,
    )
    .unwrap_err();
    match &err {
        SpateKafkaError::PollTimeout {
            offset: 5,
            until: 10,
            ..
        } => {}
        other => panic!("unexpected error: {other}"),
    }
}

/// A partition planned again from its committed offset (it left this instance and came back
/// before its last batch committed) is read *back* with the cached consumer that already read
/// past the range — and pre-fetched further. None of the pre-fetched records may stand in for
/// the range's own: one that did ended the range at once, with none of its records.
#[test]
fn a_range_read_again_with_the_consumer_that_read_past_it_loses_nothing() {
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "reread", 1);
    produce(&broker, &topic, 0, 0, 3_000);
    let reader =
        spate_kafka::KafkaRangeReader::new(params(&broker), DirectStreamConfig::default()).unwrap();
    let mut short = 0;
    for round in 0..20 {
        let ahead = reader
            .read_planned(&OffsetRange::create(&topic, 0, 1_000, 1_100))
            .unwrap();
        assert_eq!(ahead.records.len(), 100, "round {round}");
        // The consumer has pre-fetched records past 1,100 by now.
        std::thread::sleep(Duration::from_millis(50));
        let back = reader
            .read_planned(&OffsetRange::create(&topic, 0, 0, 1_000))
            .unwrap();
        if offsets(&back.records) != (0..1_000).collect::<Vec<_>>() {
            short += 1;
            eprintln!(
                "round {round}: read back {} of 1000 records",
                back.records.len()
            );
        }
    }
    assert_eq!(short, 0, "reads back that lost records, of 20");
}
