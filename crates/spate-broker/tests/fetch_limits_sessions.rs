//! Fetch limits (KIP-74) and incremental fetch sessions (KIP-227) against the embedded broker:
//! raw requests check the exact rules (one oversized batch at most, session errors), an rdkafka
//! consumer with `fetch.max.bytes` of 1 MB reads 900 KB records from three partitions promptly,
//! and a kafka-python consumer of 500 idle partitions shows the bytes a session saves per fetch
//! (measured by a counting proxy between it and the broker).

mod raw_client;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use raw_client::RawClient;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use spate_broker::{BrokerConfig, StorageKind};
use spate_testkit::clients::{consumer_config, producer_config};
use spate_testkit::{random_group, random_topic, TestBroker};

const RECORD: usize = 900 * 1024;

/// Produces `per_partition` records of 900 KB to each partition (one batch each).
fn produce_large(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize) {
    let producer: BaseProducer = producer_config(bootstrap)
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer");
    let value = vec![7u8; RECORD];
    for _ in 0..per_partition {
        for p in 0..partitions {
            let record = BaseRecord::<(), _>::to(topic).partition(p).payload(&value);
            spate_testkit::produce::send(&producer, record);
        }
    }
    spate_testkit::produce::flush(&producer, topic);
}

fn fetch_request(
    topic: &str,
    partitions: &[i32],
    max_bytes: i32,
    partition_max: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(partition_max)
                    })
                    .collect(),
            )])
}

/// Record bytes per partition of a response, in response order.
fn record_bytes(r: &FetchResponse) -> Vec<(i32, usize)> {
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.records.as_ref().map_or(0, |b| b.len())))
        .collect()
}

#[test]
fn a_response_carries_the_first_batch_whatever_its_size_and_no_other_oversized_one() {
    let broker = TestBroker::start();
    let topic = random_topic("kip74");
    broker.create_topic(&topic, 3);
    produce_large(&broker.bootstrap_servers(), &topic, 3, 2);
    let mut c = RawClient::connect(broker.local_addr());
    // Limits far below one batch: the first partition still returns exactly one whole batch.
    let r: FetchResponse = c.call(&fetch_request(&topic, &[0, 1, 2], 100_000, 100_000), 12);
    let got = record_bytes(&r);
    assert!(got[0].1 > RECORD && got[0].1 < 2 * RECORD, "{got:?}");
    assert_eq!((got[1].1, got[2].1), (0, 0), "{got:?}");
    // 1 MB for the request: one 900 KB batch, and the next partitions' batches do not fit.
    let r: FetchResponse = c.call(&fetch_request(&topic, &[2, 0, 1], 1 << 20, 1 << 20), 12);
    let got = record_bytes(&r);
    assert_eq!(got[0].0, 2);
    assert!(got[0].1 > RECORD && got[0].1 < 2 * RECORD, "{got:?}");
    assert_eq!((got[1].1, got[2].1), (0, 0), "{got:?}");
    // Room for two batches per partition and 3 in all: whole batches only, within the limit.
    let r: FetchResponse = c.call(&fetch_request(&topic, &[0, 1, 2], 3 * 930_000, 2 << 20), 12);
    let total: usize = record_bytes(&r).iter().map(|(_, b)| b).sum();
    assert!(
        total <= 3 * 930_000 && total > 2 * RECORD,
        "{:?}",
        record_bytes(&r)
    );
    println!("KIP-74 limits: {:?}", record_bytes(&r));
}

#[test]
fn fetch_max_bytes_of_1mb_reads_900kb_records_from_three_partitions_promptly() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("bigrecords");
    broker.create_topic(&topic, 3);
    let per_partition = 8;
    produce_large(&bootstrap, &topic, 3, per_partition);
    let consumer: BaseConsumer = consumer_config(&bootstrap, &random_group("bigrecords"))
        .set("fetch.max.bytes", "1048576")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let started = Instant::now();
    let mut read = 0;
    while read < 3 * per_partition && started.elapsed() < Duration::from_secs(60) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("record");
            assert_eq!(m.payload().map(<[u8]>::len), Some(RECORD));
            read += 1;
        }
    }
    let took = started.elapsed();
    println!(
        "fetch.max.bytes=1MB: {read} records of 900 KB from 3 partitions in {:.2} s",
        took.as_secs_f64()
    );
    assert_eq!(read, 3 * per_partition);
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

fn session_fetch(topic: &str, id: i32, epoch: i32, partitions: &[i32]) -> FetchRequest {
    let mut r = fetch_request(topic, partitions, 1 << 20, 1 << 20)
        .with_session_id(id)
        .with_session_epoch(epoch);
    if partitions.is_empty() {
        r.topics.clear();
    }
    r
}

#[test]
fn fetch_sessions_open_go_incremental_and_answer_kafkas_errors() {
    let broker = TestBroker::start();
    let topic = random_topic("sessions");
    broker.create_topic(&topic, 4);
    let mut c = RawClient::connect(broker.local_addr());
    let full: FetchResponse = c.call(&session_fetch(&topic, 0, 0, &[0, 1, 2, 3]), 12);
    assert_eq!(full.error_code, 0);
    assert_ne!(
        full.session_id, 0,
        "a full fetch with epoch 0 opens a session"
    );
    assert_eq!(record_bytes(&full).len(), 4);
    let id = full.session_id;
    // Nothing changed: the incremental response names no partition.
    let idle: FetchResponse = c.call(&session_fetch(&topic, id, 1, &[]), 12);
    assert_eq!((idle.error_code, idle.session_id), (0, id));
    assert!(idle.responses.is_empty(), "{:?}", idle.responses);
    // A record on partition 2: only it is sent.
    spate_testkit::clients::produce_to_partition(
        &broker.bootstrap_servers(),
        &topic,
        2,
        [(Some("k".to_owned()), "v".to_owned())],
    );
    let one: FetchResponse = c.call(&session_fetch(&topic, id, 2, &[]), 12);
    let got = record_bytes(&one);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 2);
    assert!(got[0].1 > 0);
    // The same epoch again, and an unknown session.
    let dup: FetchResponse = c.call(&session_fetch(&topic, id, 2, &[]), 12);
    assert_eq!(
        dup.error_code,
        ResponseError::InvalidFetchSessionEpoch.code()
    );
    let unknown: FetchResponse = c.call(&session_fetch(&topic, id ^ 0x5555, 1, &[]), 12);
    assert_eq!(
        unknown.error_code,
        ResponseError::FetchSessionIdNotFound.code()
    );
    // Epoch -1 closes it.
    let close: FetchResponse = c.call(&session_fetch(&topic, id, -1, &[0]), 12);
    assert_eq!((close.error_code, close.session_id), (0, 0));
    let gone: FetchResponse = c.call(&session_fetch(&topic, id, 3, &[]), 12);
    assert_eq!(
        gone.error_code,
        ResponseError::FetchSessionIdNotFound.code()
    );

    // With no cache slots, full fetches never get a session.
    let mut config = BrokerConfig::default();
    config
        .set("max.incremental.fetch.session.cache.slots", "0")
        .expect("config");
    let off = TestBroker::start_with(config);
    off.create_topic(&topic, 1);
    let mut c = RawClient::connect(off.local_addr());
    let full: FetchResponse = c.call(&session_fetch(&topic, 0, 0, &[0]), 12);
    assert_eq!((full.error_code, full.session_id), (0, 0));
}

/// Every Fetch that passed the proxy: (request bytes, response bytes).
type Fetches = Arc<Mutex<Vec<(usize, usize)>>>;

fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut frame = len.to_vec();
    frame.resize(4 + i32::from_be_bytes(len).max(0) as usize, 0);
    s.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

/// A TCP proxy that forwards Kafka frames and records the size of each Fetch and its response.
fn counting_proxy(listener: TcpListener, upstream: SocketAddr) -> Fetches {
    let fetches: Fetches = Arc::default();
    let out = fetches.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let pending: Arc<Mutex<HashMap<i32, usize>>> = Arc::default();
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let p = pending.clone();
            std::thread::spawn(move || {
                while let Some(frame) = read_frame(&mut c_in) {
                    let api_key = i16::from_be_bytes([frame[4], frame[5]]);
                    let correlation =
                        i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                    if api_key == 1 {
                        p.lock().unwrap().insert(correlation, frame.len());
                    }
                    if s_out.write_all(&frame).is_err() {
                        break;
                    }
                }
                // The client went away: so does its broker connection.
                let _ = s_out.shutdown(std::net::Shutdown::Both);
            });
            let (mut s_in, mut c_out) = (server, client);
            let f = fetches.clone();
            std::thread::spawn(move || {
                while let Some(frame) = read_frame(&mut s_in) {
                    let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                    if let Some(request) = pending.lock().unwrap().remove(&correlation) {
                        f.lock().unwrap().push((request, frame.len()));
                    }
                    if c_out.write_all(&frame).is_err() {
                        break;
                    }
                }
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    out
}

fn kafka_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("SPATE_PYCLIENTS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/pyclients/bin/python"));
    assert!(
        python.exists(),
        "the kafka-python venv is missing ({}): run `bash .ci/setup.d/python-clients.sh`",
        python.display()
    );
    python
}

/// Median (request, response) bytes of the idle fetches of a kafka-python consumer of 500
/// partitions, through a broker with `slots` session cache slots.
fn idle_fetch_bytes(slots: &str) -> (usize, usize, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("proxy");
    let proxy_port = listener.local_addr().unwrap().port();
    // In-memory logs: 500 partitions on disk take seconds to create and to close.
    let mut config = BrokerConfig::default().storage(StorageKind::Memory);
    config
        .set("max.incremental.fetch.session.cache.slots", slots)
        .expect("config");
    config.advertised_host = Some("127.0.0.1".into());
    config.advertised_port = Some(proxy_port);
    let broker = TestBroker::start_with(config);
    let fetches = counting_proxy(listener, broker.local_addr());
    let topic = random_topic("idle500");
    broker.create_topic(&topic, 500);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(kafka_python())
        .arg(root.join("tests/clients/python_idle_fetch.py"))
        .arg(format!("127.0.0.1:{proxy_port}"))
        .arg(&topic)
        .args(["500", "4"])
        .output()
        .expect("run kafka-python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK 0"),
        "kafka-python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = fetches.lock().unwrap().clone();
    assert!(all.len() >= 10, "only {} fetches", all.len());
    // The idle phase: the second half of the run.
    let mut idle: Vec<(usize, usize)> = all[all.len() / 2..].to_vec();
    idle.sort_by_key(|(q, r)| q + r);
    let (q, r) = idle[idle.len() / 2];
    (all.len(), q, r)
}

#[test]
fn fetch_sessions_shrink_idle_fetches_of_500_partitions() {
    let (n_off, req_off, resp_off) = idle_fetch_bytes("0");
    let (n_on, req_on, resp_on) = idle_fetch_bytes("1000");
    println!(
        "500 idle partitions, one kafka-python consumer: bytes per idle fetch \
         without sessions {req_off} request + {resp_off} response ({n_off} fetches); \
         with sessions {req_on} request + {resp_on} response ({n_on} fetches)"
    );
    assert!(req_off > 5_000 && resp_off > 10_000, "{req_off} {resp_off}");
    assert!(req_on < 200 && resp_on < 200, "{req_on} {resp_on}");
}
