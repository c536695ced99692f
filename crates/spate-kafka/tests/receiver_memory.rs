//! The receiver's memory is bounded: with nothing consuming its blocks it stops polling once
//! `spate.streaming.receiver.max.buffered.bytes` of records are held (back-pressure to the
//! consumer), and goes on as soon as blocks are released — as a batch releases its blocks when
//! it completes.

mod receiver_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use receiver_support::*;
use spate_kafka::receiver::block_codec::record_weight;
use spate_kafka::receiver::{
    KafkaReceiverConfig, RunningKafkaReceiver, RECEIVER_MAX_BUFFERED_BYTES,
};
use spate_kafka::ConsumerRecord;
use spate_streaming::receiver::BlockStore;
use spate_testkit::{random_group, random_topic};

/// Bytes (by the receiver's own weigher) held by the blocks in `store`.
fn held_bytes(store: &BlockStore<ConsumerRecord>) -> usize {
    store
        .block_ids()
        .iter()
        .filter_map(|id| store.get(id))
        .map(|b| b.items.iter().map(record_weight).sum::<usize>())
        .sum()
}

/// Waits until the receiver has stored nothing new for `quiet`, at most `limit`.
fn wait_until_stalled(receiver: &RunningKafkaReceiver, quiet: Duration, limit: Duration) -> u64 {
    let t0 = Instant::now();
    let mut last = receiver.stats().records_added;
    let mut since = Instant::now();
    while t0.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
        let now = receiver.stats().records_added;
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet && now > 0 {
            break;
        }
    }
    last
}

#[test]
fn the_block_queue_is_bounded_and_drains_when_blocks_are_released() {
    const PARTITIONS: i32 = 2;
    const N: u64 = 20_000;
    const BUDGET: usize = 256 * 1024;
    let broker = broker_with_partitions(PARTITIONS);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_bound"), random_group("recv_bound"));
    produce_range(&bootstrap, &topic, PARTITIONS, 0, N);

    let mut params = receiver_params(&bootstrap, &group);
    params.push((RECEIVER_MAX_BUFFERED_BYTES.into(), BUDGET.to_string()));
    let config = KafkaReceiverConfig::new(params, [(topic.as_str(), 1)])
        .expect("config")
        .block_interval(Duration::from_millis(20))
        .expect("block interval");
    let store = Arc::new(BlockStore::new());
    let receiver = RunningKafkaReceiver::builder(0, config)
        .block_store(Arc::clone(&store))
        .start()
        .expect("start receiver");

    let stalled_at = wait_until_stalled(&receiver, Duration::from_secs(1), Duration::from_secs(30));
    let held = held_bytes(&store);
    eprintln!(
        "receiver stalled at {stalled_at} of {N} records, {held} bytes in {} stored blocks (budget {BUDGET})",
        store.len()
    );
    assert!(stalled_at > 0, "the receiver stored something");
    assert!(
        stalled_at < N,
        "with nothing released the receiver must stop before reading all {N} records"
    );
    let one_record = 1_024;
    assert!(
        held <= BUDGET + one_record,
        "{held} bytes held, budget {BUDGET}"
    );

    // Release blocks as batches would: the receiver goes on, the bound still holds.
    let t0 = Instant::now();
    let mut max_held = 0;
    while receiver.stats().records_added < N && t0.elapsed() < Duration::from_secs(60) {
        max_held = max_held.max(held_bytes(&store));
        for id in store.block_ids() {
            let _ = store.remove(&id);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    receiver.stop();
    let added = receiver.stats().records_added;
    eprintln!(
        "after releasing blocks: {added} of {N} records received, at most {max_held} bytes held"
    );
    assert_eq!(
        added, N,
        "releasing blocks lets the receiver read everything"
    );
    assert!(
        max_held <= BUDGET + one_record,
        "{max_held} bytes held, budget {BUDGET}"
    );
}
