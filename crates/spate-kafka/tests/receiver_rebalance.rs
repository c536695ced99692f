//! Two reliable receivers in one consumer group: Kafka splits the partitions between them, and
//! when one joins or leaves, the rebalance commits what was stored before partitions move — no
//! record is lost, and the duplicates a rebalance causes are counted and printed.

mod receiver_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use receiver_support::*;
use spate_kafka::receiver::{KafkaReceiverConfig, RunningKafkaReceiver};
use spate_kafka::ConsumerRecord;
use spate_streaming::receiver::{
    BlockHandler, BlockStore, InMemoryBlockHandler, ReceivedBlockTracker,
};
use spate_streaming::wal::WalConfig;
use spate_testkit::{random_group, random_topic};

const PARTITIONS: i32 = 4;

fn start(
    stream_id: u32,
    bootstrap: &str,
    group: &str,
    topic: &str,
    checkpoint: &std::path::Path,
    tracker: &Arc<ReceivedBlockTracker>,
) -> RunningKafkaReceiver {
    let config = KafkaReceiverConfig::new(receiver_params(bootstrap, group), [(topic, 1)])
        .expect("config")
        .write_ahead_log(true)
        .block_interval(Duration::from_millis(50))
        .expect("block interval");
    let report_to = Arc::clone(tracker);
    RunningKafkaReceiver::builder(stream_id, config)
        .checkpoint_dir(checkpoint)
        .reporter(Box::new(move |info| report_to.add_block(info.clone())))
        .start()
        .expect("start receiver")
}

fn stored(checkpoint: &std::path::Path, tracker: &ReceivedBlockTracker) -> Vec<ConsumerRecord> {
    let mut all = records_in_wal(checkpoint, &tracker.unallocated_blocks(0));
    all.extend(records_in_wal(checkpoint, &tracker.unallocated_blocks(1)));
    all
}

fn values(records: &[ConsumerRecord]) -> BTreeMap<u64, u32> {
    let mut seen = BTreeMap::new();
    for r in records {
        if let Some(v) = r.value_str().and_then(|v| v.parse::<u64>().ok()) {
            *seen.entry(v).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn two_receivers_split_the_partitions_and_survive_rebalances_without_loss() {
    let broker = broker_with_partitions(PARTITIONS);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_rebal"), random_group("recv_rebal"));
    let checkpoint = tempfile::tempdir().expect("temp dir");
    let tracker = Arc::new(
        ReceivedBlockTracker::open([0, 1], checkpoint.path(), WalConfig::default())
            .expect("tracker"),
    );
    let reader = group_reader(&bootstrap, &group);
    let stored_count = |n: u64| {
        poll_until(Duration::from_secs(60), || {
            values(&stored(checkpoint.path(), &tracker)).len() as u64 >= n
        })
    };

    produce_range(&bootstrap, &topic, PARTITIONS, 0, 1_000);
    let first = start(0, &bootstrap, &group, &topic, checkpoint.path(), &tracker);
    assert!(
        poll_until(Duration::from_secs(30), || first
            .assigned_partitions()
            .len()
            == PARTITIONS as usize),
        "the only member owns every partition: {:?}",
        first.assigned_partitions()
    );
    assert!(stored_count(1_000), "first receiver stored the first part");

    // A second receiver joins while records keep arriving: Kafka splits the partitions.
    let producer = {
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        std::thread::spawn(move || {
            for chunk in 0..10 {
                let from = 1_000 + chunk * 100;
                produce_range(&bootstrap, &topic, PARTITIONS, from, from + 100);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let second = start(1, &bootstrap, &group, &topic, checkpoint.path(), &tracker);
    let split = poll_until(Duration::from_secs(30), || {
        let (a, b) = (first.assigned_partitions(), second.assigned_partitions());
        !a.is_empty()
            && !b.is_empty()
            && a.is_disjoint(&b)
            && a.union(&b).count() == PARTITIONS as usize
    });
    assert!(
        split,
        "partitions split between the receivers: {:?} / {:?}",
        first.assigned_partitions(),
        second.assigned_partitions()
    );
    let split_seen = (first.assigned_partitions(), second.assigned_partitions());
    producer.join().expect("producer");
    assert!(
        stored_count(2_000),
        "both receivers together stored the second part"
    );
    let from_second: BTreeSet<i32> = tracker
        .unallocated_blocks(1)
        .iter()
        .flat_map(|info| {
            records_in_wal(checkpoint.path(), std::slice::from_ref(info))
                .into_iter()
                .map(|r| r.partition)
        })
        .collect();
    assert!(
        !from_second.is_empty(),
        "the second receiver received records"
    );

    // The first leaves: its partitions move to the second, after committing what it stored.
    first.stop();
    assert!(
        poll_until(Duration::from_secs(30), || second
            .assigned_partitions()
            .len()
            == PARTITIONS as usize),
        "the remaining member owns every partition: {:?}",
        second.assigned_partitions()
    );
    produce_range(&bootstrap, &topic, PARTITIONS, 2_000, 3_000);
    assert!(
        stored_count(3_000),
        "the second receiver stored the third part"
    );

    assert_commits_reach_end(&reader, &topic, PARTITIONS);
    second.stop();
    let all = stored(checkpoint.path(), &tracker);
    assert_committed_records_stored(&committed(&reader, &topic, PARTITIONS), &all, &topic);
    let seen = values(&all);
    let missing: Vec<u64> = (0..3_000)
        .filter(|v| !seen.contains_key(v))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "lost records, e.g. {missing:?}");
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "two receivers, one group: split {:?} / {:?}; 3000 produced, 0 lost, {duplicates} duplicates",
        split_seen.0, split_seen.1
    );
}

#[test]
fn a_revoke_waits_for_received_records_to_be_durable_and_commits_them() {
    const N: u64 = 1_000;
    let broker = broker_with_partitions(PARTITIONS);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_revoke"), random_group("recv_revoke"));
    produce_range(&bootstrap, &topic, PARTITIONS, 0, N);
    let start_with = |stream_id: u32, handler: Arc<dyn BlockHandler<ConsumerRecord>>| {
        let config = KafkaReceiverConfig::new(receiver_params(&bootstrap, &group), [(&topic, 1)])
            .expect("config")
            .write_ahead_log(true)
            .block_interval(Duration::from_millis(50))
            .expect("block interval");
        RunningKafkaReceiver::builder(stream_id, config)
            .block_handler(handler)
            .start()
            .expect("start receiver")
    };
    // The first receiver's blocks are not durable until the gate opens: when the second joins,
    // the first's revoke must wait for them and commit them before its partitions move;
    // otherwise their new owner reads them again.
    let gate = Arc::new(GatedHandler::new(Arc::new(BlockStore::new())));
    let first = start_with(0, gate.clone());
    assert!(poll_until(Duration::from_secs(30), || first
        .stats()
        .records_added
        == N));
    let second_store = Arc::new(BlockStore::new());
    let second = start_with(1, Arc::new(InMemoryBlockHandler::new(second_store)));
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(
        second.assigned_partitions().is_empty(),
        "the rebalance waits for the first receiver's revoke"
    );
    gate.open();
    assert!(
        poll_until(Duration::from_secs(30), || !second
            .assigned_partitions()
            .is_empty()),
        "the second receiver got partitions"
    );
    let reader = group_reader(&bootstrap, &group);
    assert_commits_reach_end(&reader, &topic, PARTITIONS);
    // Give the second receiver time to (wrongly) re-read anything.
    std::thread::sleep(Duration::from_millis(1_500));
    first.stop();
    second.stop();
    assert_eq!(first.stats().records_pushed, N, "nothing lost");
    assert_eq!(
        second.stats().records_added,
        0,
        "nothing re-read by the new owner: the revoke committed the stored records"
    );
}
