//! The transaction protocol through a raw client, where the exact answers matter: produce
//! verification (INVALID_TXN_STATE outside the transaction, INVALID_PRODUCER_EPOCH for a
//! fenced epoch), Fetch's last stable offset and aborted transactions (for read_committed
//! only), ListOffsets by isolation level, OffsetFetch with require_stable while a
//! transactional offset commit is pending, and the admin APIs' view of an open transaction.

mod raw_client;
mod txn_raw;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use raw_client::RawClient;
use spate_testkit::{random_group, random_topic, TestBroker};
use txn_raw::{s, Txn};

const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;

fn fetch(c: &mut RawClient, topic: &str, isolation: i8) -> fetch_response::PartitionData {
    let r = c.call(
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_isolation_level(isolation)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]),
        11,
    );
    r.responses[0].partitions[0].clone()
}

fn latest(c: &mut RawClient, topic: &str, isolation: i8) -> i64 {
    let r = c.call(
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])]),
        5,
    );
    r.topics[0].partitions[0].offset
}

#[test]
fn produce_outside_the_transaction_or_with_an_old_epoch_is_refused() {
    let broker = TestBroker::start();
    let topic = random_topic("txn-verify");
    broker.create_topic(&topic, 2);
    let mut c = RawClient::connect(broker.local_addr());
    let mut t = Txn::init(&mut c, &random_topic("tid"));
    let epoch = t.epoch;
    // Not added yet: a "hanging" transaction is refused up front.
    assert_eq!(t.produce(&topic, 0, &["x"], epoch, 0).0, INVALID_TXN_STATE);
    assert_eq!(t.add_partition(&topic, 0), 0);
    assert_eq!(t.produce(&topic, 0, &["x"], epoch, 0), (0, 0));
    assert_eq!(t.produce(&topic, 1, &["y"], epoch, 0).0, INVALID_TXN_STATE);
    assert_eq!(
        t.add_partition(&random_topic("missing"), 0),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(t.end(true), 0);
    // After the commit the transaction is over: the next batch needs AddPartitionsToTxn again.
    assert_eq!(t.produce(&topic, 0, &["z"], epoch, 1).0, INVALID_TXN_STATE);
    // A newer instance fences this one; its old epoch is refused by the partition.
    let (old_pid, old_epoch) = (t.pid, t.epoch);
    let mut c2 = RawClient::connect(broker.local_addr());
    let t2 = Txn::init(&mut c2, &t.id);
    assert_eq!((t2.pid, t2.epoch), (old_pid, old_epoch + 1));
    assert_eq!(
        t.produce(&topic, 0, &["late"], old_epoch, 1).0,
        INVALID_PRODUCER_EPOCH
    );
    // Kafka answers PRODUCER_FENCED from EndTxn v2 on, INVALID_PRODUCER_EPOCH before.
    assert_eq!(t.end(false), INVALID_PRODUCER_EPOCH);
}

#[test]
fn fetch_and_list_offsets_follow_the_isolation_level() {
    let broker = TestBroker::start();
    let topic = random_topic("txn-fetch");
    broker.create_topic(&topic, 1);
    let mut c = RawClient::connect(broker.local_addr());
    let mut t = Txn::init(&mut c, &random_topic("tid"));
    let (pid, epoch) = (t.pid, t.epoch);
    assert_eq!(t.add_partition(&topic, 0), 0);
    assert_eq!(t.produce(&topic, 0, &["a1", "a2"], epoch, 0), (0, 0));
    // Open: read_committed sees nothing and the LSO is the transaction's first offset.
    let mut reader = RawClient::connect(broker.local_addr());
    let rc = fetch(&mut reader, &topic, 1);
    assert_eq!((rc.high_watermark, rc.last_stable_offset), (2, 0));
    assert_eq!(rc.records.as_ref().map_or(0, |r| r.len()), 0);
    let ru = fetch(&mut reader, &topic, 0);
    assert!(ru.records.as_ref().is_some_and(|r| !r.is_empty()));
    assert_eq!(
        (
            latest(&mut reader, &topic, 1),
            latest(&mut reader, &topic, 0)
        ),
        (0, 2)
    );
    assert_eq!(t.end(false), 0);
    // Aborted: read_committed gets the records and the aborted range; read_uncommitted gets
    // the records and no list at all.
    let rc = fetch(&mut reader, &topic, 1);
    assert_eq!((rc.high_watermark, rc.last_stable_offset), (3, 3));
    let aborted = rc.aborted_transactions.expect("a list for read_committed");
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (aborted[0].producer_id.0, aborted[0].first_offset),
        (pid, 0)
    );
    let ru = fetch(&mut reader, &topic, 0);
    assert_eq!(ru.aborted_transactions, None);
    assert_eq!(
        (
            latest(&mut reader, &topic, 1),
            latest(&mut reader, &topic, 0)
        ),
        (3, 3)
    );
}

#[test]
fn offsets_committed_in_a_transaction_are_unstable_until_it_ends() {
    let broker = TestBroker::start();
    let topic = random_topic("txn-offsets");
    broker.create_topic(&topic, 1);
    let group = random_group("txn-offsets");
    let mut c = RawClient::connect(broker.local_addr());
    let t = Txn::init(&mut c, &random_topic("tid"));
    let (id, pid, epoch) = (t.id.clone(), t.pid, t.epoch);
    let r = c.call(
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(s(&group))),
        0,
    );
    assert_eq!(r.error_code, 0);
    let r = c.call(
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(&id)))
            .with_group_id(GroupId(s(&group)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s(&topic)))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)
                    .with_committed_leader_epoch(-1)])]),
        3,
    );
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let mut reader = RawClient::connect(broker.local_addr());
    let offset_fetch = |reader: &mut RawClient, stable: bool| {
        let r = reader.call(
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_require_stable(stable)
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(&topic)))
                    .with_partition_indexes(vec![0])])),
            7,
        );
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.committed_offset)
    };
    assert_eq!(
        offset_fetch(&mut reader, true),
        (UNSTABLE_OFFSET_COMMIT, -1)
    );
    assert_eq!(offset_fetch(&mut reader, false), (0, -1));
    // The admin view of the open transaction.
    let d = reader.call(
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s(&id))]),
        0,
    );
    assert_eq!(
        d.transaction_states[0].transaction_state.as_str(),
        "Ongoing"
    );
    let l = reader.call(
        &ListTransactionsRequest::default()
            .with_state_filters(vec![s("Ongoing"), s("Bogus")])
            .with_duration_filter(-1),
        1,
    );
    assert!(l
        .transaction_states
        .iter()
        .any(|t| t.transactional_id.0.as_str() == id));
    assert_eq!(l.unknown_state_filters, vec![s("Bogus")]);

    let mut t = Txn {
        c: &mut c,
        id,
        pid,
        epoch,
    };
    assert_eq!(t.end(true), 0);
    assert_eq!(offset_fetch(&mut reader, true), (0, 5));
}

#[test]
fn describe_producers_shows_the_open_transaction() {
    let broker = TestBroker::start();
    let topic = random_topic("txn-producers");
    broker.create_topic(&topic, 1);
    let mut c = RawClient::connect(broker.local_addr());
    let mut t = Txn::init(&mut c, &random_topic("tid"));
    let epoch = t.epoch;
    assert_eq!(t.add_partition(&topic, 0), 0);
    assert_eq!(t.produce(&topic, 0, &["a"], epoch, 0), (0, 0));
    let pid = t.pid;
    let mut admin = RawClient::connect(broker.local_addr());
    let describe = |admin: &mut RawClient| {
        let r = admin.call(
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(TopicName(s(&topic)))
                    .with_partition_indexes(vec![0]),
            ]),
            0,
        );
        r.topics[0].partitions[0].active_producers.clone()
    };
    let producers = describe(&mut admin);
    assert_eq!(producers.len(), 1);
    assert_eq!(
        (
            producers[0].producer_id.0,
            producers[0].last_sequence,
            producers[0].current_txn_start_offset
        ),
        (pid, 0, 0)
    );
    assert_eq!(t.end(true), 0);
    assert_eq!(describe(&mut admin)[0].current_txn_start_offset, -1);
}

fn write_abort_marker(
    c: &mut RawClient,
    topic: &str,
    pid: i64,
    epoch: i16,
    coordinator_epoch: i32,
) -> i16 {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    let r = c.call(
        &WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![0])])]),
        1,
    );
    assert_eq!(r.markers[0].producer_id.0, pid);
    r.markers[0].topics[0].partitions[0].error_code
}

#[test]
fn write_txn_markers_aborts_a_hanging_transaction() {
    const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
    let broker = TestBroker::start();
    let topic = random_topic("txn-hanging");
    broker.create_topic(&topic, 1);
    let mut c = RawClient::connect(broker.local_addr());
    let mut t = Txn::init(&mut c, &random_topic("tid"));
    let (pid, epoch) = (t.pid, t.epoch);
    assert_eq!(t.add_partition(&topic, 0), 0);
    assert_eq!(t.produce(&topic, 0, &["h1", "h2", "h3"], epoch, 0), (0, 0));
    // The producer vanishes: its transaction holds the LSO at 0.
    let mut admin = RawClient::connect(broker.local_addr());
    assert_eq!(fetch(&mut admin, &topic, 1).last_stable_offset, 0);
    // An older producer epoch is fenced and changes nothing.
    assert_eq!(
        write_abort_marker(&mut admin, &topic, pid, epoch - 1, 0),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(write_abort_marker(&mut admin, &topic, pid, epoch, 3), 0);
    let rc = fetch(&mut admin, &topic, 1);
    assert_eq!((rc.high_watermark, rc.last_stable_offset), (4, 4));
    let aborted = rc.aborted_transactions.expect("a list for read_committed");
    assert_eq!(
        aborted
            .iter()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect::<Vec<_>>(),
        vec![(pid, 0)]
    );
    // The partition remembers the marker's coordinator epoch: an older one is fenced.
    assert_eq!(
        write_abort_marker(&mut admin, &topic, pid, epoch, 2),
        TRANSACTION_COORDINATOR_FENCED
    );
    let producers = admin.call(
        &DescribeProducersRequest::default().with_topics(vec![
            describe_producers_request::TopicRequest::default()
                .with_name(TopicName(s(&topic)))
                .with_partition_indexes(vec![0]),
        ]),
        0,
    );
    let p = &producers.topics[0].partitions[0].active_producers[0];
    assert_eq!(
        (
            p.producer_id.0,
            p.coordinator_epoch,
            p.current_txn_start_offset
        ),
        (pid, 3, -1)
    );
    // An unknown partition answers per partition.
    assert_eq!(
        write_abort_marker(&mut admin, &random_topic("missing"), pid, epoch, 3),
        3
    );
}
