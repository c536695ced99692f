//! Malformed input closes only the offending connection, and requests for APIs or versions the
//! broker does not serve get UNSUPPORTED_VERSION — while a real client keeps producing and
//! consuming on the same broker.

mod raw_client;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ElectLeadersRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use raw_client::{correlation_and_error, RawClient};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use spate_testkit::clients::{consumer_config, producer_config};
use spate_testkit::{random_group, random_topic, TestBroker};

const UNSUPPORTED_VERSION: i16 = 35;

#[test]
fn malformed_frames_close_only_their_connection() {
    spate_testkit::init_logging();
    let broker = TestBroker::start_with(
        spate_broker::BrokerConfig::default().socket_request_max_bytes(1024 * 1024),
    );
    let addr = broker.local_addr();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("malformed");

    // A real producer keeps producing while bad connections come and go.
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let producer_thread = {
        let (stop, delivered) = (stop.clone(), delivered.clone());
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        std::thread::spawn(move || {
            let producer: BaseProducer = producer_config(&bootstrap).create().unwrap();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let payload = format!("m{sent}");
                let record = BaseRecord::<(), _>::to(&topic)
                    .payload(&payload)
                    .partition(0);
                if producer.send(record).is_ok() {
                    sent += 1;
                }
                producer.flush(Duration::from_secs(10)).unwrap();
                delivered.store(sent, Ordering::Relaxed);
            }
            sent
        })
    };
    let wait_for = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while delivered.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "the producer stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(5);

    // Garbage that happens to start with a huge length ("GET " = 1.2 GB).
    let mut c = RawClient::connect(addr);
    c.write_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.is_closed_by_peer(), "garbage must close the connection");

    // A length above socket.request.max.bytes.
    let mut c = RawClient::connect(addr);
    c.write_raw(&0x7fff_ffffi32.to_be_bytes());
    assert!(
        c.is_closed_by_peer(),
        "huge frame must close the connection"
    );

    // A negative length.
    let mut c = RawClient::connect(addr);
    c.write_raw(&(-1i32).to_be_bytes());
    assert!(
        c.is_closed_by_peer(),
        "negative length must close the connection"
    );

    // A frame too short to hold a request header.
    let mut c = RawClient::connect(addr);
    c.write_raw(&[0, 0, 0, 3, 0, 3, 0]);
    assert!(
        c.is_closed_by_peer(),
        "short header must close the connection"
    );

    // A truncated frame: the client announces 100 bytes, sends 10 and half-closes.
    let mut c = RawClient::connect(addr);
    c.write_raw(&100i32.to_be_bytes());
    c.write_raw(&[0u8; 10]);
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        c.is_closed_by_peer(),
        "truncated frame must close the connection"
    );

    // A valid Metadata v12 header followed by a body that does not decode.
    let mut c = RawClient::connect(addr);
    let (_, mut frame) = c.frame(&MetadataRequest::default(), 12);
    let header_only = frame.len() - 4 - 3; // drop the (small) body, keep the header
    frame.truncate(4 + header_only);
    frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x80]);
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    c.stream.write_all(&frame).unwrap();
    assert!(
        c.is_closed_by_peer(),
        "undecodable body must close the connection"
    );

    // The good connection still works: ApiVersions and Metadata on one socket.
    let mut good = RawClient::connect(addr);
    let resp = good.call(&ApiVersionsRequest::default(), 0);
    assert_eq!(resp.error_code, 0);

    // The producer kept getting acknowledgements through all of that.
    wait_for(delivered.load(Ordering::Relaxed) + 5);
    stop.store(true, Ordering::Relaxed);
    let sent = producer_thread.join().unwrap();

    // Everything the producer sent is there.
    let consumer: BaseConsumer = consumer_config(&bootstrap, &random_group("malformed"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < sent {
        assert!(Instant::now() < deadline, "read {got} of {sent}");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            m.unwrap();
            got += 1;
        }
    }
}

#[test]
fn unsupported_apis_and_versions_get_unsupported_version() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let mut c = RawClient::connect(broker.local_addr());

    // An API key no Kafka version has.
    let mut frame = Vec::new();
    frame.extend_from_slice(&12i32.to_be_bytes());
    frame.extend_from_slice(&999i16.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&77i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    c.write_raw(&frame);
    let (cid, code) = correlation_and_error(c.read_frame().unwrap());
    assert_eq!((cid, code), (77, UNSUPPORTED_VERSION));

    // A real Kafka API this broker does not serve (ElectLeaders: one broker, no replicas).
    let cid = c.send(&ElectLeadersRequest::default(), 2);
    let (got_cid, code) = correlation_and_error(c.read_frame().unwrap());
    assert_eq!((got_cid, code), (cid, UNSUPPORTED_VERSION));

    // A served API at a version above the supported range.
    let mut meta = MetadataRequest::default();
    meta.topics = None;
    let cid = c.send(&meta, 13);
    let (got_cid, code) = correlation_and_error(c.read_frame().unwrap());
    assert_eq!((got_cid, code), (cid, UNSUPPORTED_VERSION));

    // ApiVersions at an unsupported version: a v0 response with the error and the full list.
    let mut req = ApiVersionsRequest::default();
    req.client_software_name = StrBytes::from_static_str("raw");
    req.client_software_version = StrBytes::from_static_str("1");
    let cid = c.send(&req, 4);
    let resp = c.receive::<ApiVersionsRequest>(0, cid);
    assert_eq!(resp.error_code, UNSUPPORTED_VERSION);
    let produce = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .expect("Produce listed");
    assert_eq!((produce.min_version, produce.max_version), (3, 11));

    // The connection is still usable afterwards, at the negotiated version.
    let resp = c.call(&req, 3);
    assert_eq!(resp.error_code, 0);
    assert!(resp
        .api_keys
        .iter()
        .all(|k| k.api_key != ApiKey::ElectLeaders as i16));
    let fetch = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Fetch as i16)
        .unwrap();
    assert_eq!((fetch.min_version, fetch.max_version), (4, 16));
}

/// A request header followed by an array count far beyond the frame (2^31 - 1 elements) must
/// not make the broker size an allocation by it (which would abort the process).
#[test]
fn huge_array_counts_close_only_their_connection() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let addr = broker.local_addr();
    // (api key, version, flexible header)
    let cases: &[(i16, i16, bool)] = &[
        (3, 1, false),  // Metadata topics
        (0, 3, false),  // Produce: transactional id then acks/timeout/topics
        (1, 4, false),  // Fetch
        (19, 2, false), // CreateTopics
        (3, 12, true),  // Metadata, compact array
        (18, 3, true),  // ApiVersions v3 (flexible)
    ];
    for &(key, version, flexible) in cases {
        let mut c = RawClient::connect(addr);
        let mut body = Vec::new();
        body.extend_from_slice(&key.to_be_bytes());
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
        if flexible {
            body.push(0); // no tagged fields
                          // A compact array/string length of 2^31 as an unsigned varint.
            body.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
        } else {
            // Enough huge i32s that whichever field is the first array reads one.
            for _ in 0..6 {
                body.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
            }
        }
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        c.write_raw(&frame);
        // Either an error response or a closed connection; the broker itself must live on.
        let _ = c.read_frame();
        let mut probe = RawClient::connect(addr);
        assert_eq!(
            probe.call(&ApiVersionsRequest::default(), 0).error_code,
            0,
            "broker died on api {key} v{version}"
        );
    }
}
