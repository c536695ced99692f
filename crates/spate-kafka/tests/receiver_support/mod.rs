//! Helpers shared by the receiver tests: a broker whose auto-created topics have a given number
//! of partitions, a producer of a known sequence, and reads of committed offsets, high
//! watermarks and the records in a receiver write-ahead log.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use spate_broker::BrokerConfig;
use spate_kafka::receiver::ConsumerRecordCodec;
use spate_kafka::ConsumerRecord;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use spate_streaming::receiver::{
    read_block_from_wal_with, Block, BlockHandler, BlockStore, InMemoryBlockHandler,
    ReceivedBlockInfo,
};
use spate_testkit::clients::consumer_config;
pub use spate_testkit::poll_until;
pub use spate_testkit::produce::produce_range;
use spate_testkit::TestBroker;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A broker whose auto-created topics get `partitions` partitions.
pub fn broker_with_partitions(partitions: i32) -> TestBroker {
    spate_testkit::init_logging();
    TestBroker::start_with(BrokerConfig::new().num_partitions(partitions))
}

/// A consumer in `group` that is never subscribed: for reading committed offsets.
pub fn group_reader(bootstrap: &str, group: &str) -> BaseConsumer {
    consumer_config(bootstrap, group)
        .create()
        .expect("create offset reader")
}

/// Committed next offsets of `topic`'s partitions in the reader's group (missing = none).
pub fn committed(reader: &BaseConsumer, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = reader
        .committed_offsets(tpl, TIMEOUT)
        .expect("fetch committed offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// High watermarks (end offsets) of `topic`'s partitions.
pub fn high_watermarks(reader: &BaseConsumer, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    (0..partitions)
        .map(|p| {
            let (_, high) = reader
                .fetch_watermarks(topic, p, TIMEOUT)
                .expect("fetch watermarks");
            (p, high)
        })
        .collect()
}

/// Records of the blocks in `infos`, read back from the receiver write-ahead log.
pub fn records_in_wal(checkpoint: &Path, infos: &[ReceivedBlockInfo]) -> Vec<ConsumerRecord> {
    infos
        .iter()
        .flat_map(|info| {
            read_block_from_wal_with::<ConsumerRecord>(checkpoint, info, Some(&ConsumerRecordCodec))
                .expect("block readable from the write-ahead log")
                .items
        })
        .collect()
}

/// Asserts that for every partition, every offset below its committed offset is in `stored`.
pub fn assert_committed_records_stored(
    committed: &BTreeMap<i32, i64>,
    stored: &[ConsumerRecord],
    topic: &str,
) {
    let mut by_partition: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for r in stored.iter().filter(|r| &*r.topic == topic) {
        let _ = by_partition
            .entry(r.partition)
            .or_default()
            .insert(r.offset);
    }
    for (p, c) in committed {
        let have = by_partition.get(p).cloned().unwrap_or_default();
        let missing: Vec<i64> = (0..*c).filter(|o| !have.contains(o)).take(5).collect();
        assert!(
            missing.is_empty(),
            "partition {p}: committed offset {c} but offsets {missing:?} are not stored"
        );
    }
}

/// Kafka parameters of a receiver in `group` reading from the earliest offset.
pub fn receiver_params(bootstrap: &str, group: &str) -> Vec<(String, String)> {
    [
        ("bootstrap.servers", bootstrap),
        ("group.id", group),
        ("auto.offset.reset", "earliest"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
        ("fetch.wait.max.ms", "50"),
        ("broker.address.family", "v4"),
        ("socket.timeout.ms", "10000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Holds every block until the gate opens: "not durable yet".
pub struct GatedHandler {
    open: Mutex<bool>,
    opened: Condvar,
    inner: InMemoryBlockHandler<ConsumerRecord>,
}

impl GatedHandler {
    pub fn new(store: Arc<BlockStore<ConsumerRecord>>) -> Self {
        GatedHandler {
            open: Mutex::new(false),
            opened: Condvar::new(),
            inner: InMemoryBlockHandler::new(store),
        }
    }
    pub fn open(&self) {
        *self.open.lock() = true;
        self.opened.notify_all();
    }
}

impl BlockHandler<ConsumerRecord> for GatedHandler {
    fn store_block(
        &self,
        block: Arc<Block<ConsumerRecord>>,
    ) -> spate_streaming::Result<ReceivedBlockInfo> {
        let mut open = self.open.lock();
        while !*open {
            self.opened.wait(&mut open);
        }
        drop(open);
        self.inner.store_block(block)
    }
    fn cleanup_old_blocks(&self, t: i64) -> spate_streaming::Result<()> {
        self.inner.cleanup_old_blocks(t)
    }
}

/// Waits until the group's committed offsets reach the topic's high watermarks (what a receiver
/// owes once it has stored everything), and returns them; panics naming both if they never do.
pub fn assert_commits_reach_end(
    reader: &BaseConsumer,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i64> {
    let ends = high_watermarks(reader, topic, partitions);
    assert!(
        poll_until(Duration::from_secs(20), || committed(
            reader, topic, partitions
        ) == ends),
        "committed {:?}, ends {ends:?}",
        committed(reader, topic, partitions)
    );
    ends
}

/// The values (parsed as numbers) of every record in every block of `store`.
pub fn stored_values(store: &BlockStore<ConsumerRecord>) -> Vec<u64> {
    store
        .block_ids()
        .iter()
        .filter_map(|id| store.get(id))
        .flat_map(|b| {
            b.items
                .iter()
                .filter_map(|r| r.value_str().and_then(|v| v.parse().ok()))
                .collect::<Vec<u64>>()
        })
        .collect()
}
