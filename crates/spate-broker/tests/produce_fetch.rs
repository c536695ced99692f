//! Real rdkafka producers and consumers against the embedded broker: what is produced is read
//! back exactly (keys, values, headers, timestamps, offsets), with and without idempotence and
//! with every compression codec.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use spate_testkit::clients::{consumer_config, producer_config};
use spate_testkit::{random_group, random_topic, TestBroker};

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn to_rec(m: &BorrowedMessage<'_>) -> Rec {
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                .collect()
        })
        .unwrap_or_default();
    Rec {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(|k| k.to_vec()),
        value: m.payload().map(|v| v.to_vec()),
        timestamp: m.timestamp().to_millis().unwrap_or(-1),
        headers,
    }
}

/// Produces `n` records round-robin over `partitions` and returns what was sent, with offsets
/// as the delivery reports gave them.
fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    n: usize,
    extra: &[(&str, &str)],
) -> Vec<Rec> {
    let mut cfg = producer_config(bootstrap);
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let producer: BaseProducer<_> = cfg.create().expect("producer");
    let base_ts = 1_700_000_000_000i64;
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("key-{i}");
        let value = format!("value-{i}-{}", "x".repeat(i % 50));
        let partition = (i as i32) % partitions;
        let ts = base_ts + i as i64;
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "h1",
                value: Some(format!("hv{i}").as_bytes()),
            })
            .insert(Header {
                key: "null",
                value: None::<&[u8]>,
            });
        let mut rec = BaseRecord::to(topic)
            .key(key.as_bytes())
            .payload(value.as_bytes())
            .partition(partition)
            .timestamp(ts)
            .headers(headers);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((e, back)) => {
                    rec = back;
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "send failed: {e}"
                    );
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        sent.push(Rec {
            partition,
            offset: -1,
            key: Some(key.into_bytes()),
            value: Some(value.into_bytes()),
            timestamp: ts,
            headers: vec![
                ("h1".to_string(), Some(format!("hv{i}").into_bytes())),
                ("null".to_string(), None),
            ],
        });
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    // Offsets within a partition follow send order.
    let mut next: HashMap<i32, i64> = HashMap::new();
    for r in &mut sent {
        let o = next.entry(r.partition).or_insert(0);
        r.offset = *o;
        *o += 1;
    }
    sent
}

fn consume_all(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Vec<Rec> {
    let consumer: BaseConsumer = consumer_config(bootstrap, &random_group("pf"))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < expected {
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {expected} records",
            got.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => got.push(to_rec(&m)),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    // Nothing beyond what was produced.
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(300)) {
        panic!("unexpected extra record at offset {}", m.offset());
    }
    got
}

fn round_trip(extra: &[(&str, &str)], n: usize, partitions: i32) {
    spate_testkit::init_logging();
    let broker =
        TestBroker::start_with(spate_broker::BrokerConfig::default().num_partitions(partitions));
    let topic = random_topic("rt");
    let bootstrap = broker.bootstrap_servers();
    let mut sent = produce(&bootstrap, &topic, partitions, n, extra);
    let mut got = consume_all(&bootstrap, &topic, partitions, n);
    let key = |r: &Rec| (r.partition, r.offset);
    sent.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got.len(), sent.len());
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(g, s);
    }
}

#[test]
fn plain_producer_round_trip() {
    round_trip(&[], 500, 3);
}

#[test]
fn idempotent_producer_round_trip() {
    round_trip(&[("enable.idempotence", "true")], 500, 2);
}

#[test]
fn compressed_round_trips() {
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        round_trip(
            &[("compression.codec", codec), ("enable.idempotence", "true")],
            300,
            2,
        );
    }
}

#[test]
fn assign_then_seek_rereads_from_an_offset() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = random_topic("seek");
    let bootstrap = broker.bootstrap_servers();
    let sent = produce(&bootstrap, &topic, 1, 200, &[]);
    let consumer: BaseConsumer = consumer_config(&bootstrap, &random_group("seek"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(150))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let next = |c: &BaseConsumer| loop {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            break to_rec(&m.unwrap());
        }
    };
    assert_eq!(next(&consumer), sent[150]);
    assert_eq!(next(&consumer), sent[151]);
    // Seek back and forth on the live assignment.
    consumer
        .seek(&topic, 0, Offset::Offset(10), Duration::from_secs(5))
        .unwrap();
    assert_eq!(next(&consumer), sent[10]);
    consumer
        .seek(&topic, 0, Offset::End, Duration::from_secs(5))
        .unwrap();
    assert!(consumer.poll(Duration::from_millis(500)).is_none());
    consumer
        .seek(&topic, 0, Offset::OffsetTail(1), Duration::from_secs(5))
        .unwrap();
    assert_eq!(next(&consumer), sent[199]);
}
