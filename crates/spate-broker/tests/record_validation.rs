//! Produce validation end to end: batches with a valid CRC but unreadable records (codec 7,
//! the gzip flag over garbage, an overlong varint, a wrong record count, a decompression bomb)
//! are refused with Kafka's error codes and a message naming the fault, nothing of them is
//! stored, and consumers of the partition — librdkafka and a raw-bytes client — keep reading.

mod raw_client;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use raw_client::{record_batch, RawClient};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spate_testkit::clients::consumer_config;
use spate_testkit::{random_group, random_topic, TestBroker};

const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;

fn name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

/// Produces one batch (v9, acks=-1) and returns `(error code, error message)`.
fn produce(c: &mut RawClient, topic: &str, records: Bytes) -> (i16, String) {
    let mut pd = PartitionProduceData::default();
    pd.records = Some(records);
    let mut td = TopicProduceData::default();
    td.name = name(topic);
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![td];
    let resp = c.call(&req, 9);
    let p = &resp.responses[0].partition_responses[0];
    let message = p.error_message.as_ref().map(|m| m.to_string());
    (p.error_code, message.unwrap_or_default())
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One record (length prefix included) with key `k` and `value_len` zero bytes.
fn record(offset_delta: i64, value_len: usize) -> Vec<u8> {
    let mut body = vec![0u8];
    put_varint(&mut body, 0);
    put_varint(&mut body, offset_delta);
    put_varint(&mut body, 1);
    body.push(b'k');
    put_varint(&mut body, value_len as i64);
    body.resize(body.len() + value_len, 0);
    put_varint(&mut body, 0);
    let mut out = Vec::new();
    put_varint(&mut out, body.len() as i64);
    out.extend(body);
    out
}

/// A v2 batch whose CRC is right for whatever `records` holds.
fn batch(codec_bits: i16, count: i32, records: &[u8]) -> Bytes {
    let mut b = vec![0u8; 61];
    b.extend_from_slice(records);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[21..23].copy_from_slice(&codec_bits.to_be_bytes());
    b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
    b[27..43].copy_from_slice(&[0, 0, 0, 0, 0, 0, 3, 232, 0, 0, 0, 0, 0, 0, 3, 232]);
    b[43..57].fill(0xff);
    b[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// A gzip stream of one record whose value is `value_len` zero bytes, written in chunks so the
/// test itself never holds the expanded bytes.
fn gzip_bomb(value_len: usize) -> Vec<u8> {
    let mut head = Vec::new();
    let mut body_len = Vec::new();
    let mut fields = vec![0u8];
    put_varint(&mut fields, 0);
    put_varint(&mut fields, 0);
    put_varint(&mut fields, 1);
    fields.push(b'k');
    put_varint(&mut fields, value_len as i64);
    let total = fields.len() + value_len + 1;
    put_varint(&mut body_len, total as i64);
    head.extend(body_len);
    head.extend(fields);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&head).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = value_len;
    while left > 0 {
        let n = left.min(zeros.len());
        e.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    e.write_all(&[0]).unwrap(); // no headers
    e.finish().unwrap()
}

/// The offsets and values a raw Fetch (v12) returns from offset 0.
fn raw_fetch_all(c: &mut RawClient, topic: &str) -> Vec<(i64, String)> {
    let mut p = FetchPartition::default();
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = name(topic);
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = (-1).into();
    req.min_bytes = 1;
    req.max_bytes = 50 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    let resp: FetchResponse = c.call(&req, 12);
    let part = &resp.responses[0].partitions[0];
    assert_eq!(part.error_code, 0);
    let mut records = part.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
        for r in set.records {
            let v = r.value.map(|v| String::from_utf8_lossy(&v).into_owned());
            out.push((r.offset, v.unwrap_or_default()));
        }
    }
    out
}

fn rdkafka_read_all(bootstrap: &str, topic: &str, expect: usize) -> Vec<(i64, String)> {
    let consumer: BaseConsumer = consumer_config(bootstrap, &random_group("validation"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.len() < expect && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => got.push((
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(e)) => panic!("librdkafka consumer error: {e}"),
            None => {}
        }
    }
    // Nothing else arrives (no stored garbage behind the good batches).
    assert!(consumer.poll(Duration::from_millis(300)).is_none());
    got
}

#[test]
fn malformed_batches_are_refused_and_consumers_keep_reading() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = random_topic("validation");
    broker.create_topic(&topic, 1);
    let mut c = RawClient::connect(broker.local_addr());
    let good = |v: &str| record_batch(&[(Some("k"), Some(v), 1000)], -1, -1, -1);
    assert_eq!(produce(&mut c, &topic, good("before")).0, 0);

    let mut long_varint = vec![0xffu8; 11];
    long_varint.push(0);
    let mut two = record(0, 3);
    two.extend(record(1, 3));
    let cases: Vec<(&str, Bytes, i16, &str)> = vec![
        (
            "codec 7",
            batch(7, 1, &record(0, 3)),
            UNSUPPORTED_COMPRESSION_TYPE,
            "codec id 7",
        ),
        (
            "gzip flag over garbage",
            batch(1, 1, b"definitely not gzip"),
            CORRUPT_MESSAGE,
            "decompress",
        ),
        (
            "overlong varint",
            batch(0, 1, &long_varint),
            CORRUPT_MESSAGE,
            "varint longer",
        ),
        (
            "count too high",
            batch(0, 3, &two),
            CORRUPT_MESSAGE,
            "cut short",
        ),
        (
            "count too low",
            batch(0, 1, &two),
            CORRUPT_MESSAGE,
            "wrong record count",
        ),
        (
            "gzip bomb",
            batch(1, 1, &gzip_bomb(64 << 20)),
            MESSAGE_TOO_LARGE,
            "expand past",
        ),
    ];
    for (what, bytes, code, needle) in cases {
        let (got, message) = produce(&mut c, &topic, bytes);
        println!("{what}: error {got}: {message}");
        assert_eq!(got, code, "{what}: {message}");
        assert!(
            message.contains(needle),
            "{what}: {message:?} lacks {needle:?}"
        );
    }
    assert_eq!(produce(&mut c, &topic, good("after")).0, 0);

    let expected = vec![(0, "before".to_string()), (1, "after".to_string())];
    assert_eq!(raw_fetch_all(&mut c, &topic), expected);
    assert_eq!(
        rdkafka_read_all(&broker.bootstrap_servers(), &topic, 2),
        expected
    );
    println!("6 malformed batches refused; both consumers read offsets 0 and 1 only");
}

/// A memory figure of this process (the broker runs in it) from /proc: `VmHWM` (peak resident
/// set) or `VmRSS`.
fn proc_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap()
}

/// Resets `VmHWM` to the current resident set (Linux `clear_refs` value 5), so the peak
/// measured next is the request's own.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

#[test]
fn a_decompression_bomb_raises_rss_by_less_than_the_bound() {
    let broker = TestBroker::in_memory();
    let topic = random_topic("bomb");
    broker.create_topic(&topic, 1);
    let expanded = 256usize << 20;
    let bomb = batch(1, 1, &gzip_bomb(expanded));
    let bound = spate_broker::validate::uncompressed_limit(1_048_588);
    let mut c = RawClient::connect(broker.local_addr());
    // Warm up connection, topic and allocator before measuring.
    produce(
        &mut c,
        &topic,
        record_batch(&[(None, Some("x"), 1)], -1, -1, -1),
    );
    assert!(bomb.len() < 1_048_588, "the bomb fits max.message.bytes");
    reset_peak_rss();
    let before = proc_kib("VmRSS");
    let (code, message) = produce(&mut c, &topic, bomb.clone());
    let after = proc_kib("VmHWM");
    let rise = after.saturating_sub(before) * 1024;
    println!(
        "bomb: {} compressed bytes expanding to {} MiB; refused with {code} ({message}); \
         peak RSS rise {} KiB, bound {} KiB",
        bomb.len(),
        expanded >> 20,
        rise / 1024,
        bound / 1024
    );
    assert_eq!(code, MESSAGE_TOO_LARGE);
    assert!(rise <= bound, "peak RSS rose {rise} bytes, bound {bound}");
}
