//! Compacted topics through the broker: the cleaner threads compact K keys × U updates plus
//! tombstones, and a consumer reading from offset 0 — rdkafka and kafka-python (a client not
//! built on librdkafka) — sees exactly the latest value of each key (and the young tombstones) in
//! offset order, across the gaps, with no special setting. A keyless record is refused with
//! INVALID_RECORD and its record errors; retention never deletes from a compact-only topic, and
//! neither does DeleteRecords (POLICY_VIOLATION, as Kafka answers, seen by kafka-python too).

mod python_support;
mod raw_client;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use raw_client::{record_batch, RawClient};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use spate_broker::BrokerConfig;
use spate_testkit::clients::consumer_config;
use spate_testkit::produce::produce_keyed;
use spate_testkit::{random_group, random_topic, TestBroker};

/// `(offset, key, value)` as a consumer saw it.
type Seen = (i64, Option<String>, Option<String>);

/// A single-partition topic with `configs`.
fn create_topic(broker: &TestBroker, topic: &str, configs: &[(&str, &str)]) {
    broker.create_topic_with(topic, 1, configs);
}

/// Everything in partition 0 from offset 0 up to `end`, read with rdkafka.
fn rdkafka_read_all(bootstrap: &str, topic: &str, end: i64) -> Vec<Seen> {
    let consumer: BaseConsumer = consumer_config(bootstrap, &random_group("compact"))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.last().is_none_or(|(o, _, _): &Seen| *o < end - 1) {
        assert!(
            Instant::now() < deadline,
            "rdkafka read only {} records",
            seen.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("message");
            let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
            seen.push((m.offset(), s(m.key()), s(m.payload())));
        }
    }
    seen
}

fn python_read_all(bootstrap: &str, topic: &str) -> Vec<Seen> {
    python_support::admin(&["consume-all", bootstrap, topic])
        .into_iter()
        .map(|d| {
            let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
            (
                d["offset"].as_i64().expect("offset"),
                s(&d["key"]),
                s(&d["value"]),
            )
        })
        .collect()
}

/// What compaction must leave of `all`: below `active_base`, the last record of each key; the
/// active segment untouched.
fn compacted(all: &[Seen], active_base: i64) -> Vec<Seen> {
    let mut last = BTreeMap::new();
    for (o, k, _) in all.iter().filter(|(o, _, _)| *o < active_base) {
        last.insert(k.clone(), *o);
    }
    all.iter()
        .filter(|(o, k, _)| *o >= active_base || last.get(k) == Some(o))
        .cloned()
        .collect()
}

#[test]
fn consumers_from_offset_zero_see_the_latest_value_of_each_key() {
    spate_testkit::init_logging();
    let mut config = BrokerConfig::default();
    config.set("log.cleaner.backoff.ms", "50").unwrap();
    config.set("metrics.listen", "127.0.0.1:0").unwrap();
    let broker = TestBroker::start_with(config);
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("compacted");
    create_topic(
        &broker,
        &topic,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "4096"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "3600000"),
        ],
    );
    let (keys, updates) = (100, 5);
    let mut records = Vec::new();
    for u in 0..updates {
        for k in 0..keys {
            records.push((format!("k{k:03}"), Some(format!("v{u}-{k}"))));
        }
    }
    for k in (0..keys).step_by(7) {
        records.push((format!("k{k:03}"), None));
    }
    for i in 0..20 {
        records.push((format!("filler{i}"), Some("x".repeat(300))));
    }
    produce_keyed(&bootstrap, &topic, &records);
    let partition = broker
        .state()
        .topics
        .partition(&topic, 0)
        .expect("partition");
    let end = partition.log().log_end_offset();
    assert_eq!(end, records.len() as i64);
    // What was produced, offset by offset (the log before any cleaning is its producer order).
    let produced: Vec<Seen> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| (i as i64, Some(k.clone()), v.clone()))
        .collect();

    // The cleaner threads pick the log up (dirty ratio above 0.01) and clean it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = broker
            .state()
            .cleaner
            .status(&partition, spate_broker::time::now_ms())
            .unwrap()
            .expect("disk log");
        if status.last_cleaning.is_some() && status.dirty_bytes == 0 && !status.in_progress {
            println!(
                "cleaned: dirty ratio {:.2}, last cleaning {:?}",
                status.dirty_ratio,
                status
                    .last_cleaning
                    .map(|l| (l.stats.records_read, l.stats.records_kept))
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner did not clean the log: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let disk = partition.log().as_disk().expect("disk log");
    let active_base = *disk.segment_base_offsets().last().unwrap();
    let want = compacted(&produced, active_base);
    assert!(
        want.len() < produced.len() / 2,
        "compaction removed too little to test"
    );
    assert!(
        want.iter().any(|(_, _, v)| v.is_none()),
        "young tombstones are kept"
    );

    // The library side of `topics describe --verbose`, and the metrics endpoint.
    let described = spate_broker::cleaner::describe_topic(broker.state(), &topic).unwrap();
    let p0 = described[0].1.as_ref().expect("compacted partition status");
    assert!(p0.compacted && p0.last_cleaning.is_some());
    // The same over HTTP, as `spate topics describe --verbose` reads it.
    let metrics_addr = broker.state().metrics_addr.get().expect("metrics endpoint");
    let (code, body) = http_get(metrics_addr, &format!("/cleaner/{topic}"));
    assert_eq!(code, 200, "{body}");
    let report: spate_broker::cleaner::TopicCleanerReport =
        serde_json::from_str(&body).expect("cleaner report JSON");
    assert_eq!(report.partitions.len(), 1);
    let served = report.partitions[0].status.as_ref().expect("a disk log");
    assert!(served.compacted);
    // (Floats are compared loosely: serde_json's default parser may be off by one ULP.)
    let brief = |l: &Option<spate_broker::cleaner::LastCleaning>| {
        l.as_ref()
            .map(|l| (l.finished_ms, l.stats.records_read, l.stats.records_kept))
    };
    assert_eq!(brief(&served.last_cleaning), brief(&p0.last_cleaning));
    let (code, body) = http_get(metrics_addr, "/cleaner/no-such-topic");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("unknown topic"), "{body}");
    let metrics = scrape(metrics_addr);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{metrics}"))
    };
    assert!(value("spate_log_cleaner_bytes_read_total") > 0.0);
    assert!(value("spate_log_cleaner_cleanings_total") >= 1.0);
    assert!(value("spate_broker_requests_total{api=\"Produce\"}") >= 1.0);
    assert!(metrics.contains(&format!(
        "spate_log_cleaner_dirty_ratio{{topic=\"{topic}\",partition=\"0\"}} 0"
    )));
    assert!(metrics.contains("spate_broker_request_seconds_bucket{api=\"Produce\",le=\"+Inf\"}"));

    let rd = rdkafka_read_all(&bootstrap, &topic, end);
    assert_eq!(rd, want, "rdkafka");
    let py = python_read_all(&bootstrap, &topic);
    assert_eq!(py, want, "kafka-python");
    println!(
        "{} records produced, {} after compaction; rdkafka read {}, kafka-python read {}",
        produced.len(),
        want.len(),
        rd.len(),
        py.len()
    );
}

/// GETs the metrics page.
fn scrape(addr: &std::net::SocketAddr) -> String {
    let (code, body) = http_get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    body
}

/// GETs `path` from the metrics listener: status code and body.
fn http_get(addr: &std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).expect("connect to metrics");
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

#[test]
fn a_record_without_key_is_refused_with_its_record_errors() {
    let broker = TestBroker::start();
    let topic = random_topic("keyless");
    create_topic(&broker, &topic, &[("cleanup.policy", "compact")]);
    let mut c = RawClient::connect(broker.local_addr());
    let batch = record_batch(
        &[
            (Some("a"), Some("1"), 1),
            (None, Some("2"), 2),
            (Some("c"), None, 3),
        ],
        -1,
        -1,
        -1,
    );
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(&topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let resp = c.call(&req, 9);
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 87, "INVALID_RECORD");
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![1]);
    assert!(p
        .error_message
        .as_deref()
        .is_some_and(|m| m.contains("without key")));
    assert_eq!(
        broker
            .state()
            .topics
            .partition(&topic, 0)
            .unwrap()
            .log()
            .log_end_offset(),
        0
    );
}

#[test]
fn retention_never_deletes_from_a_compact_only_topic() {
    let mut config = BrokerConfig::default();
    config.set("log.retention.check.interval.ms", "50").unwrap();
    let broker = TestBroker::start_with(config);
    let bootstrap = broker.bootstrap_servers();
    let mut logs = Vec::new();
    for policy in ["compact", "compact,delete", "delete"] {
        let topic = random_topic("retention");
        create_topic(
            &broker,
            &topic,
            &[
                ("cleanup.policy", policy),
                ("retention.ms", "1"),
                ("segment.ms", "1"),
                ("segment.bytes", "1024"),
            ],
        );
        let records: Vec<_> = (0..20)
            .map(|i| (format!("k{i}"), Some("y".repeat(200))))
            .collect();
        produce_keyed(&bootstrap, &topic, &records);
        logs.push((policy, broker.state().topics.partition(&topic, 0).unwrap()));
    }
    std::thread::sleep(Duration::from_millis(1500));
    for (policy, p) in logs {
        let start = p.log().log_start_offset();
        println!("cleanup.policy={policy}: log start offset {start}");
        if policy == "compact" {
            assert_eq!(start, 0, "compact-only topics keep their old segments");
        } else {
            assert!(start > 0, "{policy}: retention deletes old segments");
        }
    }
}

#[test]
fn delete_records_on_a_compact_only_topic_is_a_policy_violation() {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::DeleteRecordsRequest;
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let mut c = RawClient::connect(broker.local_addr());
    let mut answers = Vec::new();
    for policy in ["compact", "compact,delete", "delete"] {
        let topic = random_topic("delrec");
        create_topic(&broker, &topic, &[("cleanup.policy", policy)]);
        let records: Vec<_> = (0..5)
            .map(|i| (format!("k{i}"), Some("v".into())))
            .collect();
        produce_keyed(&bootstrap, &topic, &records);
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(s(&topic)))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(3)])]);
        let r = c.call(&req, 2).topics[0].partitions[0].clone();
        let start = broker
            .state()
            .topics
            .partition(&topic, 0)
            .unwrap()
            .log()
            .log_start_offset();
        println!(
            "cleanup.policy={policy}: error {}, low watermark {}, log start {start}",
            r.error_code, r.low_watermark
        );
        answers.push((policy, r.error_code, start));
        if policy == "compact" {
            // kafka-python, a client not built on librdkafka, maps the code to its exception.
            let py = python_support::admin(&["delete-records", &bootstrap, &topic, "3"]);
            assert_eq!(py[0]["error"], "PolicyViolationError", "{py:?}");
        }
    }
    assert_eq!(
        answers,
        vec![
            ("compact", 44, 0),
            ("compact,delete", 0, 3),
            ("delete", 0, 3)
        ],
        "POLICY_VIOLATION (44) for compact only; the log start offset moves otherwise"
    );
}
