//! Shared pieces of the group coordinator's integration tests: a broker with short group
//! timeouts, topic setup, produce, rdkafka group members on their own threads, a look at the
//! coordinator's view of a group, and a tiny raw Kafka client for protocol-level checks.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use spate_broker::group::consumer_protocol::assignment_partitions;
use spate_broker::group::GroupCoordinator;
use spate_broker::topics::NewTopic;
use spate_broker::BrokerConfig;
use spate_testkit::clients::consumer_config;
use spate_testkit::TestBroker;

/// A broker whose coordinator accepts short sessions (tests use 6 s and less).
pub fn start_broker() -> TestBroker {
    spate_testkit::init_logging();
    TestBroker::start_with(broker_config())
}

pub fn broker_config() -> BrokerConfig {
    let mut config = BrokerConfig::default();
    config
        .set("group.min.session.timeout.ms", "1000")
        .expect("group config");
    config
}

/// A broker whose consumer-protocol (KIP-848) heartbeat is fast (250 ms, at least 100 ms), after
/// the group settings `extra`, so that consumer-protocol tests take seconds.
pub fn start_consumer_protocol_broker(extra: &[(&str, &str)]) -> TestBroker {
    spate_testkit::init_logging();
    let mut config = broker_config();
    for (k, v) in extra.iter().copied().chain([
        ("group.consumer.min.heartbeat.interval.ms", "100"),
        ("group.consumer.heartbeat.interval.ms", "250"),
    ]) {
        config.set(k, v).expect("group config");
    }
    TestBroker::start_with(config)
}

/// A librdkafka consumer speaking the consumer group protocol (`group.protocol=consumer`): no
/// client-side session timeout or assignor, the broker decides both; commits only when told.
pub fn consumer_protocol_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("broker.address.family", "v4");
    c
}

pub fn create_topic(broker: &TestBroker, topic: &str, partitions: i32) {
    broker
        .state()
        .topics
        .create(
            NewTopic {
                name: topic.to_owned(),
                partitions,
                configs: Default::default(),
            },
            false,
        )
        .expect("create topic");
}

/// Produces `per_partition` records to each of `partitions` partitions.
pub fn produce(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize) {
    let records = (0..per_partition)
        .flat_map(|i| (0..partitions).map(move |p| (p, None, format!("v{p}-{i}"))));
    spate_testkit::produce::produce(bootstrap, topic, records);
}

/// The broker's coordinator.
pub fn coordinator(broker: &TestBroker) -> Arc<GroupCoordinator> {
    broker.state().groups.clone()
}

/// The coordinator's view of a group: state, generation and each member's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub state: String,
    pub generation: i32,
    pub members: BTreeMap<String, BTreeSet<i32>>,
}

impl GroupView {
    /// Stable, with `n` members whose partitions cover `0..partitions` exactly once.
    pub fn is_balanced(&self, n: usize, partitions: i32) -> bool {
        if self.state != "Stable" || self.members.len() != n {
            return false;
        }
        let mut all: Vec<i32> = self.members.values().flatten().copied().collect();
        all.sort();
        all == (0..partitions).collect::<Vec<_>>() && self.members.values().all(|p| !p.is_empty())
    }
}

pub fn group_view(broker: &TestBroker, group: &str) -> GroupView {
    let d = coordinator(broker).describe_group(group);
    GroupView {
        state: d.state,
        generation: d.generation_id,
        members: d
            .members
            .into_iter()
            .map(|m| {
                let parts = assignment_partitions(&m.assignment)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, p)| p)
                    .collect();
                (m.member_id, parts)
            })
            .collect(),
    }
}

/// Every group test waits with the test kit's helper.
#[allow(unused_imports)] // not every test binary that includes this module waits
pub use spate_testkit::wait_until;

/// Consumer settings for group tests: 6 s sessions, fast heartbeats so rebalances are noticed
/// within half a second.
pub fn member_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = consumer_config(bootstrap, group);
    c.set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("topic.metadata.refresh.interval.ms", "1000");
    c
}

/// An rdkafka consumer subscribed to a topic, polled on its own thread.
pub struct Member {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Its current assignment (partitions), as librdkafka reports it.
    pub assignment: Arc<Mutex<BTreeSet<i32>>>,
    /// Every assignment it has had, in order (to check incremental rebalances).
    pub history: Arc<Mutex<Vec<BTreeSet<i32>>>>,
    /// Records consumed: (partition, offset).
    pub consumed: Arc<Mutex<Vec<(i32, i64)>>>,
}

impl Member {
    pub fn start(config: ClientConfig, topic: &str) -> Member {
        let stop = Arc::new(AtomicBool::new(false));
        let assignment = Arc::new(Mutex::new(BTreeSet::new()));
        let history = Arc::new(Mutex::new(Vec::new()));
        let consumed = Arc::new(Mutex::new(Vec::new()));
        let consumer: BaseConsumer = config.create().expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let (s, a, h, c) = (
            stop.clone(),
            assignment.clone(),
            history.clone(),
            consumed.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    use rdkafka::Message;
                    c.lock().unwrap().push((m.partition(), m.offset()));
                }
                let now: BTreeSet<i32> = consumer
                    .assignment()
                    .map(|l| l.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default();
                let mut cur = a.lock().unwrap();
                if *cur != now {
                    h.lock().unwrap().push(now.clone());
                    *cur = now;
                }
            }
            // Dropping the consumer closes it: librdkafka revokes and sends LeaveGroup
            // (static members do not leave).
            drop(consumer);
        });
        Member {
            stop,
            thread: Some(thread),
            assignment,
            history,
            consumed,
        }
    }

    pub fn partitions(&self) -> BTreeSet<i32> {
        self.assignment.lock().unwrap().clone()
    }

    /// Closes the consumer and waits for it.
    pub fn close(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A minimal blocking Kafka client: one request at a time over one connection.
pub struct RawClient {
    stream: TcpStream,
    correlation_id: i32,
}

impl RawClient {
    pub fn connect(addr: std::net::SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        RawClient {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends `request` at `version` and returns the decoded response.
    pub fn send<R>(&mut self, request: &R, version: i16) -> R::Response
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("raw-test-client")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("encode header");
        request.encode(&mut body, version).expect("encode request");
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).expect("write");
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).expect("read length");
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).expect("read body");
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, R::Response::header_version(version))
            .expect("response header");
        assert_eq!(header.correlation_id, self.correlation_id);
        let response = R::Response::decode(&mut buf, version).expect("decode response");
        assert_eq!(buf.remaining(), 0, "trailing bytes in response");
        response
    }
}
