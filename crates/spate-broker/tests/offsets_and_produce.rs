//! Exact protocol behaviour through a raw client: Produce validation and idempotent sequence
//! checks, ListOffsets (earliest, latest, max timestamp, by timestamp), DeleteRecords,
//! OFFSET_OUT_OF_RANGE, Fetch by name and by topic id, acks=0, and the Fetch long-poll.

mod raw_client;

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::{
    DeleteRecordsRequest, FetchRequest, FetchResponse, InitProducerIdRequest, ListOffsetsRequest,
    MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use raw_client::{record_batch, RawClient};
use spate_broker::BrokerConfig;
use spate_testkit::{random_topic, TestBroker};
use uuid::Uuid;

fn name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

fn produce_req(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    let mut pd = PartitionProduceData::default();
    pd.index = partition;
    pd.records = Some(records);
    let mut td = TopicProduceData::default();
    td.name = name(topic);
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 5000;
    req.topic_data = vec![td];
    req
}

/// Produces and returns `(error_code, base_offset)`.
fn produce(c: &mut RawClient, topic: &str, records: Bytes) -> (i16, i64) {
    let resp = c.call(&produce_req(topic, 0, records, -1), 9);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn list_offset(c: &mut RawClient, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 0;
    p.timestamp = timestamp;
    let mut t = ListOffsetsTopic::default();
    t.name = name(topic);
    t.partitions = vec![p];
    let mut req = ListOffsetsRequest::default();
    req.replica_id = (-1).into();
    req.topics = vec![t];
    let resp = c.call(&req, 7);
    let r = &resp.topics[0].partitions[0];
    (r.error_code, r.offset, r.timestamp)
}

fn fetch_req(topic: &str, id: Uuid, offset: i64, max_wait_ms: i32) -> FetchRequest {
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = name(topic);
    t.topic_id = id;
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = (-1).into();
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = 1;
    req.max_bytes = 50 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    req
}

/// `(error, high watermark, log start, record bytes)` of partition 0.
fn fetch(c: &mut RawClient, topic: &str, offset: i64) -> (i16, i64, i64, usize) {
    let resp: FetchResponse = c.call(&fetch_req(topic, Uuid::nil(), offset, 0), 12);
    let p = &resp.responses[0].partitions[0];
    (
        p.error_code,
        p.high_watermark,
        p.log_start_offset,
        p.records.as_ref().map_or(0, |r| r.len()),
    )
}

fn create(c: &mut RawClient, topic: &str) -> Uuid {
    let mut meta = MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(name(topic));
    meta.topics = Some(vec![t]);
    meta.allow_auto_topic_creation = true;
    let resp = c.call(&meta, 12);
    assert_eq!(resp.topics[0].error_code, 0);
    resp.topics[0].topic_id
}

#[test]
fn list_offsets_delete_records_and_out_of_range() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let mut c = RawClient::connect(broker.local_addr());
    let topic = random_topic("offsets");
    let id = create(&mut c, &topic);

    // Three batches: offsets 0-1 (ts 1000, 1100), 2-4 (ts 2000..2200), 5 (ts 3000).
    let b1 = record_batch(
        &[(Some("a"), Some("1"), 1000), (None, Some("2"), 1100)],
        -1,
        -1,
        -1,
    );
    let b2 = record_batch(
        &[
            (None, Some("3"), 2000),
            (None, Some("4"), 2100),
            (None, Some("5"), 2200),
        ],
        -1,
        -1,
        -1,
    );
    let b3 = record_batch(&[(None, Some("6"), 3000)], -1, -1, -1);
    assert_eq!(produce(&mut c, &topic, b1), (0, 0));
    assert_eq!(produce(&mut c, &topic, b2), (0, 2));
    assert_eq!(produce(&mut c, &topic, b3), (0, 5));

    assert_eq!(list_offset(&mut c, &topic, -2), (0, 0, -1));
    assert_eq!(list_offset(&mut c, &topic, -1), (0, 6, -1));
    assert_eq!(list_offset(&mut c, &topic, -3), (0, 5, 3000));
    // By timestamp: the first *record* at or after it, even inside a batch.
    assert_eq!(list_offset(&mut c, &topic, 1500), (0, 2, 2000));
    assert_eq!(list_offset(&mut c, &topic, 2050), (0, 3, 2100));
    assert_eq!(list_offset(&mut c, &topic, 1050), (0, 1, 1100));
    assert_eq!(list_offset(&mut c, &topic, 999), (0, 0, 1000));
    assert_eq!(list_offset(&mut c, &topic, 5000), (0, -1, -1));

    // Fetch by name (v12) and by topic id (v16) see the same log.
    let (err, hw, start, bytes) = fetch(&mut c, &topic, 0);
    assert_eq!((err, hw, start), (0, 6, 0));
    assert!(bytes > 0);
    let resp: FetchResponse = c.call(&fetch_req("", id, 2, 0), 16);
    assert_eq!(resp.responses[0].topic_id, id);
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 6));
    let records = p.records.clone().unwrap();
    let header = spate_broker::record_batch::BatchHeader::parse(&records).unwrap();
    assert_eq!(header.base_offset, 2);
    let resp: FetchResponse = c.call(&fetch_req("", Uuid::new_v4(), 0, 0), 16);
    assert_eq!(
        resp.responses[0].partitions[0].error_code, 100,
        "UNKNOWN_TOPIC_ID"
    );

    // Past the end and (after DeleteRecords) below the start: OFFSET_OUT_OF_RANGE.
    assert_eq!(fetch(&mut c, &topic, 7).0, 1);
    assert_eq!(fetch(&mut c, &topic, 6).0, 0, "fetching at the end is fine");

    let mut dp = DeleteRecordsPartition::default();
    dp.partition_index = 0;
    dp.offset = 2;
    let mut dt = DeleteRecordsTopic::default();
    dt.name = name(&topic);
    dt.partitions = vec![dp];
    let mut del = DeleteRecordsRequest::default();
    del.topics = vec![dt];
    del.timeout_ms = 5000;
    let resp = c.call(&del, 1);
    let r = &resp.topics[0].partitions[0];
    assert_eq!((r.error_code, r.low_watermark), (0, 2));
    assert_eq!(list_offset(&mut c, &topic, -2), (0, 2, -1));
    let (err, _, start, _) = fetch(&mut c, &topic, 0);
    assert_eq!((err, start), (1, 2));
    assert_eq!(fetch(&mut c, &topic, 2).0, 0);

    // -1 means the high watermark; beyond it is out of range.
    del.topics[0].partitions[0].offset = 100;
    assert_eq!(c.call(&del, 1).topics[0].partitions[0].error_code, 1);
    del.topics[0].partitions[0].offset = -1;
    let resp = c.call(&del, 1);
    assert_eq!(resp.topics[0].partitions[0].low_watermark, 6);
    assert_eq!(list_offset(&mut c, &topic, -2), (0, 6, -1));

    // OffsetForLeaderEpoch: epoch 0 (the only one) ends at the log end; later epochs are unknown.
    let epoch_end = |c: &mut RawClient, leader_epoch: i32, current: i32| {
        let mut p = OffsetForLeaderPartition::default();
        p.partition = 0;
        p.leader_epoch = leader_epoch;
        p.current_leader_epoch = current;
        let mut t = OffsetForLeaderTopic::default();
        t.topic = name(&topic);
        t.partitions = vec![p];
        let mut req = OffsetForLeaderEpochRequest::default();
        req.replica_id = (-1).into();
        req.topics = vec![t];
        let r = c.call(&req, 4).topics[0].partitions[0].clone();
        (r.error_code, r.leader_epoch, r.end_offset)
    };
    assert_eq!(epoch_end(&mut c, 0, 0), (0, 0, 6));
    assert_eq!(epoch_end(&mut c, 3, 0), (0, -1, -1));
    assert_eq!(epoch_end(&mut c, 0, 2).0, 75, "UNKNOWN_LEADER_EPOCH");
}

#[test]
fn produce_validation_and_idempotence() {
    spate_testkit::init_logging();
    let mut config = BrokerConfig::default();
    config.set("message.max.bytes", "2000").unwrap();
    let broker = TestBroker::start_with(config);
    let mut c = RawClient::connect(broker.local_addr());
    let topic = random_topic("idem");
    create(&mut c, &topic);

    let init = c.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60000),
        4,
    );
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let second = c.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60000),
        4,
    );
    assert_ne!(
        second.producer_id.0, pid,
        "every idempotent producer gets its own id"
    );

    let batch = |seq: i32, epoch: i16, n: usize| {
        let recs: Vec<_> = (0..n).map(|i| (None, Some("v"), 1000 + i as i64)).collect();
        record_batch(&recs, pid, epoch, seq)
    };
    assert_eq!(produce(&mut c, &topic, batch(0, 0, 3)), (0, 0));
    assert_eq!(produce(&mut c, &topic, batch(3, 0, 2)), (0, 3));
    // A retry of either batch is acknowledged with its original offset and not appended again.
    assert_eq!(produce(&mut c, &topic, batch(0, 0, 3)), (0, 0));
    assert_eq!(produce(&mut c, &topic, batch(3, 0, 2)), (0, 3));
    assert_eq!(list_offset(&mut c, &topic, -1).1, 5);
    // A gap is out of order.
    assert_eq!(produce(&mut c, &topic, batch(9, 0, 1)).0, 45);
    // A new epoch restarts at 0; the old epoch is then fenced.
    assert_eq!(produce(&mut c, &topic, batch(0, 1, 1)), (0, 5));
    assert_eq!(produce(&mut c, &topic, batch(5, 0, 1)).0, 47);
    // A producer id without state here, not starting at 0.
    let stray = record_batch(&[(None, Some("x"), 1)], pid + 1000, 0, 7);
    assert_eq!(produce(&mut c, &topic, stray).0, 59);

    // CRC corruption.
    let mut bad = batch(1, 1, 1).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    assert_eq!(
        produce(&mut c, &topic, Bytes::from(bad)).0,
        2,
        "CORRUPT_MESSAGE"
    );
    // Larger than message.max.bytes.
    let big_value = "x".repeat(3000);
    let big = record_batch(&[(None, Some(big_value.as_str()), 1)], -1, -1, -1);
    assert_eq!(produce(&mut c, &topic, big).0, 10, "MESSAGE_TOO_LARGE");
    // Two batches for one partition.
    let mut two = record_batch(&[(None, Some("a"), 1)], -1, -1, -1).to_vec();
    two.extend_from_slice(&record_batch(&[(None, Some("b"), 1)], -1, -1, -1));
    assert_eq!(
        produce(&mut c, &topic, Bytes::from(two)).0,
        87,
        "INVALID_RECORD"
    );
    // A transactional batch without a producer id, and a control batch from a client, are
    // refused (markers are the coordinator's to write).
    for bit in [0x10u8, 0x20] {
        let mut b = record_batch(&[(None, Some("t"), 1)], -1, -1, -1).to_vec();
        b[22] |= bit;
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            produce(&mut c, &topic, Bytes::from(b)).0,
            87,
            "attribute bit {bit:#x}"
        );
    }
    // Garbage instead of a batch.
    assert_eq!(
        produce(&mut c, &topic, Bytes::from_static(b"not a batch")).0,
        2
    );
    // Unknown partition.
    let resp = c.call(&produce_req(&topic, 7, batch(1, 1, 1), -1), 9);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 3);
    // An illegal topic name is INVALID_TOPIC_EXCEPTION, not silently unknown.
    let resp = c.call(&produce_req("bad name!", 0, batch(1, 1, 1), -1), 9);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 17);
    assert_eq!(
        list_offset(&mut c, &topic, -1).1,
        6,
        "nothing invalid was appended"
    );

    // acks=1 is acknowledged like acks=-1; any other value is INVALID_REQUIRED_ACKS.
    let resp = c.call(&produce_req(&topic, 0, batch(1, 1, 1), 1), 9);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 6);
    let resp = c.call(&produce_req(&topic, 0, batch(2, 1, 1), 2), 9);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 21);

    // acks=0 gets no response: the next response on the connection is the Metadata one.
    let cid0 = c.send(&produce_req(&topic, 0, batch(2, 1, 1), 0), 9);
    let meta = MetadataRequest::default();
    let cid = c.send(&meta, 12);
    assert_ne!(cid0, cid);
    let resp = c.receive::<MetadataRequest>(12, cid);
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(list_offset(&mut c, &topic, -1).1, 8);
}

#[test]
fn fetch_long_poll_wakes_on_append() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let addr = broker.local_addr();
    let topic = random_topic("longpoll");
    let mut c = RawClient::connect(addr);
    create(&mut c, &topic);

    // With nothing to read, a fetch waits its max_wait_ms.
    let started = Instant::now();
    let resp: FetchResponse = c.call(&fetch_req(&topic, Uuid::nil(), 0, 300), 12);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(280),
        "returned after {waited:?}"
    );
    assert_eq!(
        resp.responses[0].partitions[0]
            .records
            .as_ref()
            .unwrap()
            .len(),
        0
    );

    // A 5 s long poll returns as soon as data arrives.
    let poller = {
        let topic = topic.clone();
        std::thread::spawn(move || {
            let mut c = RawClient::connect(addr);
            let resp: FetchResponse = c.call(&fetch_req(&topic, Uuid::nil(), 0, 5000), 12);
            (Instant::now(), resp)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let produced_at = Instant::now();
    let (err, _) = produce(
        &mut c,
        &topic,
        record_batch(&[(None, Some("wake"), 1)], -1, -1, -1),
    );
    assert_eq!(err, 0);
    let (answered_at, resp) = poller.join().unwrap();
    let latency = answered_at.saturating_duration_since(produced_at);
    assert!(
        latency < Duration::from_millis(200),
        "long poll answered {latency:?} after the append"
    );
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.high_watermark, 1);
    assert!(!p.records.as_ref().unwrap().is_empty());
}
