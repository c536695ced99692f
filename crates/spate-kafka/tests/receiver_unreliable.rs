//! The unreliable Kafka receiver (write-ahead log off, Spark's default): records land in memory
//! blocks, the consumer auto-commits, several consumer threads share the partitions, and the
//! receiver rate limit bounds how fast it stores.

mod receiver_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use receiver_support::*;
use spate_kafka::receiver::{KafkaReceiverConfig, RunningKafkaReceiver, RECEIVER_MAX_RATE};
use spate_streaming::receiver::BlockStore;
use spate_testkit::{random_group, random_topic};

#[test]
fn unreliable_receiver_stores_in_memory_and_auto_commits() {
    const PARTITIONS: i32 = 4;
    const N: u64 = 2_000;
    let broker = broker_with_partitions(PARTITIONS);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_mem"), random_group("recv_mem"));
    produce_range(&bootstrap, &topic, PARTITIONS, 0, N);

    let mut params = receiver_params(&bootstrap, &group);
    params.push(("auto.commit.interval.ms".into(), "100".into()));
    // Two consumer threads: two group members inside one receiver.
    let config = KafkaReceiverConfig::new(params, [(topic.as_str(), 2)])
        .expect("config")
        .block_interval(Duration::from_millis(50))
        .expect("block interval");
    assert!(
        !config.write_ahead_log_enabled(),
        "off by default, as in Spark"
    );
    let store = Arc::new(BlockStore::new());
    let receiver = RunningKafkaReceiver::builder(0, config)
        .block_store(Arc::clone(&store))
        .start()
        .expect("start receiver");
    assert!(!receiver.is_reliable());
    assert!(
        poll_until(Duration::from_secs(60), || stored_values(&store).len()
            as u64
            >= N),
        "stored {} of {N}",
        stored_values(&store).len()
    );
    assert_eq!(
        receiver.assigned_partitions().len(),
        PARTITIONS as usize,
        "the receiver's consumers own every partition between them"
    );
    let reader = group_reader(&bootstrap, &group);
    assert_commits_reach_end(&reader, &topic, PARTITIONS);
    receiver.stop();
    let values: BTreeSet<u64> = stored_values(&store).into_iter().collect();
    assert_eq!(values, (0..N).collect());
    assert!(
        receiver.stats().blocks_pushed >= 1,
        "records were cut into blocks"
    );
}

#[test]
fn receiver_max_rate_bounds_the_ingestion_rate() {
    const PARTITIONS: i32 = 2;
    const N: u64 = 3_000;
    const RATE: f64 = 1_000.0;
    let broker = broker_with_partitions(PARTITIONS);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_rate"), random_group("recv_rate"));
    produce_range(&bootstrap, &topic, PARTITIONS, 0, N);

    let mut params = receiver_params(&bootstrap, &group);
    params.push((RECEIVER_MAX_RATE.into(), RATE.to_string()));
    let config = KafkaReceiverConfig::new(params, [(topic.as_str(), 1)]).expect("config");
    let store = Arc::new(BlockStore::new());
    let receiver = RunningKafkaReceiver::builder(0, config)
        .block_store(Arc::clone(&store))
        .start()
        .expect("start receiver");
    assert_eq!(receiver.rate_limiter().current_rate(), RATE);
    assert!(poll_until(Duration::from_secs(30), || receiver
        .stats()
        .records_added
        > 0));
    let first = Instant::now();
    assert!(poll_until(Duration::from_secs(30), || receiver
        .stats()
        .records_added
        >= N));
    let took = first.elapsed();
    // 3,000 records at 1,000/s: the bucket saves up at most one second of permits while the
    // consumer joins, so at least 2 s after the first record (minus the observer's lag).
    assert!(took >= Duration::from_millis(1_400), "took only {took:?}");

    // Backpressure lowers the rate; it never exceeds the configured maximum.
    receiver.rate_limiter().update_rate(50.0);
    assert_eq!(receiver.rate_limiter().current_rate(), 50.0);
    receiver.rate_limiter().update_rate(10.0 * RATE);
    assert_eq!(receiver.rate_limiter().current_rate(), RATE);
    receiver.stop();
    eprintln!("{N} records at max rate {RATE}/s took {took:?}");
}
