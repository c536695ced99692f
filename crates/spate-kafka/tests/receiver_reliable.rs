//! The reliable Kafka receiver against the embedded broker: every record lands in a block in the
//! write-ahead log, offsets are committed (as next offsets) only for records already durable,
//! and a store failure restarts the receiver without losing anything.

mod receiver_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use receiver_support::*;
use spate_kafka::receiver::{KafkaReceiverConfig, RunningKafkaReceiver};
use spate_kafka::ConsumerRecord;
use spate_streaming::receiver::{
    Block, BlockHandler, BlockStore, InMemoryBlockHandler, ReceivedBlockInfo, ReceivedBlockTracker,
};
use spate_streaming::wal::WalConfig;
use spate_streaming::StreamingError;
use spate_testkit::{random_group, random_topic};

fn reliable_config(bootstrap: &str, group: &str, topic: &str) -> KafkaReceiverConfig {
    KafkaReceiverConfig::new(receiver_params(bootstrap, group), [(topic, 1)])
        .expect("config")
        .write_ahead_log(true)
        .block_interval(Duration::from_millis(50))
        .expect("block interval")
        .restart_delay(Duration::from_millis(100))
}

#[test]
fn reliable_receiver_commits_only_what_is_in_the_write_ahead_log() {
    const PARTITIONS: i32 = 3;
    const N: u64 = 3_000;
    let broker = broker_with_partitions(PARTITIONS);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_wal"), random_group("recv_wal"));
    produce_range(&bootstrap, &topic, PARTITIONS, 0, N / 2);

    let checkpoint = tempfile::tempdir().expect("temp dir");
    let tracker = Arc::new(
        ReceivedBlockTracker::open([0], checkpoint.path(), WalConfig::default()).expect("tracker"),
    );
    let report_to = Arc::clone(&tracker);
    let receiver = RunningKafkaReceiver::builder(0, reliable_config(&bootstrap, &group, &topic))
        .checkpoint_dir(checkpoint.path())
        .reporter(Box::new(move |info| report_to.add_block(info.clone())))
        .start()
        .expect("start receiver");

    // While the receiver runs (and more records arrive), every commit the broker has must be
    // covered by blocks already in the log.
    let reader = group_reader(&bootstrap, &group);
    let producer = {
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        std::thread::spawn(move || produce_range(&bootstrap, &topic, PARTITIONS, N / 2, N))
    };
    let mut samples = 0;
    let all_stored = poll_until(Duration::from_secs(60), || {
        // Committed first, then the log: anything committed before the read must be in it.
        let committed_now = committed(&reader, &topic, PARTITIONS);
        let stored = records_in_wal(checkpoint.path(), &tracker.unallocated_blocks(0));
        assert_committed_records_stored(&committed_now, &stored, &topic);
        samples += 1;
        stored.len() as u64 >= N
    });
    producer.join().expect("producer");
    assert!(all_stored, "receiver stored only {:?}", receiver.stats());
    assert!(samples > 1);

    // Once everything is stored, the commits reach the end of every partition: next offset,
    // not last offset.
    assert_commits_reach_end(&reader, &topic, PARTITIONS);
    receiver.stop();
    let stored = records_in_wal(checkpoint.path(), &tracker.unallocated_blocks(0));
    let values: BTreeSet<u64> = stored
        .iter()
        .map(|r| r.value_str().and_then(|v| v.parse().ok()).expect("value"))
        .collect();
    assert_eq!(values, (0..N).collect::<BTreeSet<_>>());
    assert_eq!(
        stored.len() as u64,
        N,
        "a clean run stores each record once"
    );
    assert_eq!(
        receiver.assigned_partitions().len(),
        0,
        "consumer left the group"
    );
    assert!(receiver.errors().is_empty(), "{:?}", receiver.errors());
}

#[test]
fn nothing_is_committed_while_blocks_are_not_durable() {
    const PARTITIONS: i32 = 2;
    const N: u64 = 200;
    let broker = broker_with_partitions(PARTITIONS);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_gate"), random_group("recv_gate"));
    produce_range(&bootstrap, &topic, PARTITIONS, 0, N);

    let store = Arc::new(BlockStore::new());
    let handler = Arc::new(GatedHandler::new(Arc::clone(&store)));
    let receiver = RunningKafkaReceiver::builder(0, reliable_config(&bootstrap, &group, &topic))
        .block_handler(handler.clone())
        .block_store(Arc::clone(&store))
        .start()
        .expect("start receiver");
    assert!(
        poll_until(Duration::from_secs(30), || receiver.stats().records_added
            == N),
        "received {:?}",
        receiver.stats()
    );
    // Received, cut into blocks, but not stored: the group must not have moved.
    std::thread::sleep(Duration::from_millis(500));
    let reader = group_reader(&bootstrap, &group);
    assert!(committed(&reader, &topic, PARTITIONS).is_empty());
    assert_eq!(receiver.stats().blocks_pushed, 0);

    handler.open();
    assert_commits_reach_end(&reader, &topic, PARTITIONS);
    receiver.stop();
    let records: usize = store
        .block_ids()
        .iter()
        .filter_map(|id| store.get(id))
        .map(|b| b.items.len())
        .sum();
    assert_eq!(records as u64, N);
}

/// Fails the first `failures` blocks, then stores in memory.
struct FlakyHandler {
    failures: AtomicU32,
    failed_once: AtomicBool,
    inner: InMemoryBlockHandler<ConsumerRecord>,
}

impl BlockHandler<ConsumerRecord> for FlakyHandler {
    fn store_block(
        &self,
        block: Arc<Block<ConsumerRecord>>,
    ) -> spate_streaming::Result<ReceivedBlockInfo> {
        if self
            .failures
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
        {
            self.failed_once.store(true, Ordering::Release);
            return Err(StreamingError::BlockStore {
                block_id: block.id.to_string(),
                reason: "disk full (injected)".into(),
            });
        }
        self.inner.store_block(block)
    }
    fn cleanup_old_blocks(&self, t: i64) -> spate_streaming::Result<()> {
        self.inner.cleanup_old_blocks(t)
    }
}

#[test]
fn a_failed_block_store_restarts_the_receiver_without_loss() {
    const PARTITIONS: i32 = 2;
    const N: u64 = 400;
    let broker = broker_with_partitions(PARTITIONS);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_flaky"), random_group("recv_flaky"));
    produce_range(&bootstrap, &topic, PARTITIONS, 0, N);

    let store = Arc::new(BlockStore::new());
    let handler = Arc::new(FlakyHandler {
        failures: AtomicU32::new(2),
        failed_once: AtomicBool::new(false),
        inner: InMemoryBlockHandler::new(Arc::clone(&store)),
    });
    let started = Instant::now();
    let receiver = RunningKafkaReceiver::builder(0, reliable_config(&bootstrap, &group, &topic))
        .block_handler(handler.clone())
        .block_store(Arc::clone(&store))
        .start()
        .expect("start receiver");
    let stored_values = || -> BTreeSet<u64> { stored_values(&store).into_iter().collect() };
    assert!(
        poll_until(Duration::from_secs(60), || stored_values().len() as u64
            == N),
        "stored {} of {N}; errors {:?}",
        stored_values().len(),
        receiver.errors()
    );
    assert!(handler.failed_once.load(Ordering::Acquire));
    assert!(
        receiver.restarts() >= 1,
        "a failed store restarts the receiver"
    );
    assert!(
        receiver.errors().iter().any(|e| e.contains("disk full")),
        "the error is reported: {:?}",
        receiver.errors()
    );
    let reader = group_reader(&bootstrap, &group);
    assert_commits_reach_end(&reader, &topic, PARTITIONS);
    receiver.stop();
    eprintln!(
        "flaky store: {} restarts in {:?}, {} records stored for {N} produced",
        receiver.restarts(),
        started.elapsed(),
        receiver.stats().records_pushed
    );
}
