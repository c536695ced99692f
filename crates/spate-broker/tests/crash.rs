//! SIGKILL the broker process in the middle of a stream of produce requests, restart it on the
//! same data directory, and check that every acknowledged record is there at the offset its
//! acknowledgement named, and that the log has no holes or torn batches.
//!
//! The broker runs in a child process: this test binary re-executes itself with
//! `SPATE_CRASH_CHILD_DIR` set, which turns `crash_child_broker` into the broker's main.

mod raw_client;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, MetadataRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use raw_client::{record_batch, RawClient};
use spate_testkit::child::Running;
use spate_testkit::ChildJob;

const CHILD_DIR: &str = "SPATE_CRASH_CHILD_DIR";
const TOPIC: &str = "crash";

/// The broker side, active only in the child process.
#[test]
fn crash_child_broker() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let config = spate_broker::BrokerConfig::default()
        .listen("127.0.0.1:0".parse().unwrap())
        .data_dir(dir);
    let broker = spate_broker::Broker::start_blocking(config).unwrap();
    spate_testkit::child::announce_listening(broker.local_addr());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Starts the child broker on `dir`; it is SIGKILLed when the returned handle is dropped.
fn spawn_broker(dir: &std::path::Path) -> (Running, SocketAddr) {
    let mut job = ChildJob::test_entry("crash_child_broker");
    job.env(CHILD_DIR, dir).capture_stdout().discard_stderr();
    let mut child = job.spawn();
    let addr = child.listening_addr(Duration::from_secs(60));
    (child, addr)
}

fn produce_req(records: Bytes) -> ProduceRequest {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(records);
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_static_str(TOPIC));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![td];
    req
}

#[test]
fn sigkill_keeps_acknowledged_records() {
    spate_testkit::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_broker(dir.path());
    let mut c = RawClient::connect(addr);
    let mut meta = MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_static_str(TOPIC)));
    meta.topics = Some(vec![t]);
    meta.allow_auto_topic_creation = true;
    assert_eq!(c.call(&meta, 12).topics[0].error_code, 0);

    // Pipelined produce requests (four in flight); kill the broker once 150 are acknowledged.
    let values =
        |batch: usize| -> Vec<String> { (0..10).map(|r| format!("b{batch}-r{r}")).collect() };
    let mut acked: BTreeMap<i64, String> = BTreeMap::new();
    let mut in_flight = std::collections::VecDeque::new();
    let mut next = 0usize;
    let killed = loop {
        while in_flight.len() < 4 {
            let vs = values(next);
            let recs: Vec<_> = vs.iter().map(|v| (None, Some(v.as_str()), 1000)).collect();
            let cid = c.send(&produce_req(record_batch(&recs, -1, -1, -1)), 9);
            in_flight.push_back((cid, next));
            next += 1;
        }
        let (cid, batch) = in_flight.pop_front().unwrap();
        let resp = c.receive::<ProduceRequest>(9, cid);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        for (i, v) in values(batch).into_iter().enumerate() {
            acked.insert(p.base_offset + i as i64, v);
        }
        if acked.len() >= 1500 {
            child.kill();
            break next;
        }
    };
    assert!(killed > 150);

    let (child, addr) = spawn_broker(dir.path());
    let mut c = RawClient::connect(addr);
    let mut stored: BTreeMap<i64, String> = BTreeMap::new();
    let mut offset = 0i64;
    loop {
        let mut p = FetchPartition::default();
        p.fetch_offset = offset;
        p.partition_max_bytes = 1 << 20;
        let mut t = FetchTopic::default();
        t.topic = TopicName(StrBytes::from_static_str(TOPIC));
        t.partitions = vec![p];
        let mut req = FetchRequest::default();
        req.max_wait_ms = 0;
        req.max_bytes = 1 << 20;
        req.topics = vec![t];
        let resp = c.call(&req, 12);
        let part = &resp.responses[0].partitions[0];
        assert_eq!(part.error_code, 0);
        let mut records = part.records.clone().unwrap();
        if records.is_empty() {
            assert_eq!(offset, part.high_watermark);
            break;
        }
        let sets = RecordBatchDecoder::decode_all(&mut records).unwrap();
        for set in sets {
            for r in set.records {
                let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                assert!(stored.insert(r.offset, v).is_none());
                offset = r.offset + 1;
            }
        }
    }
    child.kill();

    // Contiguous from 0, every acknowledged record where its acknowledgement said.
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (0..stored.len() as i64).collect::<Vec<_>>()
    );
    for (o, v) in &acked {
        assert_eq!(stored.get(o), Some(v), "acknowledged offset {o} lost");
    }
    assert!(stored.len() >= acked.len());
}
