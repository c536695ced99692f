//! A ready port means a ready broker: while a large log is being recovered the listener is not
//! bound (connections are refused, so clients retry rather than hang on a socket nobody
//! serves), and the first connection that succeeds sees the whole recovered log.

mod raw_client;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ListOffsetsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use raw_client::RawClient;
use spate_broker::Broker;
use spate_testkit::logs::write_unclean_log;
use spate_testkit::{random_topic, TestBroker};

const PARTITIONS: i32 = 4;
const BATCHES: i64 = 40_000;

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn the_port_opens_only_after_recovery() {
    let mut broker = TestBroker::start();
    let topic = random_topic("recovery");
    broker.create_topic(&topic, PARTITIONS);
    let mut config = broker.config().clone();
    broker.stop();
    write_unclean_log(
        &config.data_dir.clone().unwrap(),
        &topic,
        PARTITIONS,
        BATCHES,
    );
    config.listen = free_port();
    let addr = config.listen;

    let started = Instant::now();
    let starter = std::thread::spawn(move || {
        let b = Broker::start_blocking(config).unwrap();
        (b, started.elapsed())
    });
    let mut refused = 0u32;
    let stream = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(_) => refused += 1,
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never listened"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let connected_after = started.elapsed();
    let mut c = RawClient::from_stream(stream);

    let mut meta = MetadataRequest::default();
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.clone())));
    meta.topics = Some(vec![t]);
    let resp = c.call(&meta, 12);
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].partitions.len(), PARTITIONS as usize);

    let mut lt = ListOffsetsTopic::default();
    lt.name = TopicName(StrBytes::from_string(topic.clone()));
    lt.partitions = (0..PARTITIONS)
        .map(|p| {
            let mut lp = ListOffsetsPartition::default();
            lp.partition_index = p;
            lp.timestamp = -1;
            lp
        })
        .collect();
    let mut req = ListOffsetsRequest::default();
    req.replica_id = (-1).into();
    req.topics = vec![lt];
    let resp = c.call(&req, 7);
    for p in &resp.topics[0].partitions {
        assert_eq!(
            (p.error_code, p.offset),
            (0, BATCHES),
            "partition {}",
            p.partition_index
        );
    }
    let (running, start_took) = starter.join().unwrap();
    println!(
        "recovered {PARTITIONS} x {BATCHES} batches in {start_took:?}; {refused} connection \
         attempts refused meanwhile; first connection at {connected_after:?} served the whole log"
    );
    assert!(refused > 0, "the port accepted connections during recovery");
    running.shutdown().unwrap();
}
