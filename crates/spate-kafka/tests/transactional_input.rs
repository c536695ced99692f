//! The direct stream over a topic written by a transactional producer: its offsets contain
//! control records (COMMIT/ABORT markers) and aborted records, gaps no record is returned for.
//! With no flag, a `read_committed` stream returns exactly the committed records and a
//! `read_uncommitted` stream every data record, and both reach the log end (their ranges cover
//! the markers) instead of waiting for records that will never come.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create_topic, params};
use parking_lot::Mutex;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use spate_kafka::{ConsumerStrategy, KafkaUtils, TopicPartition};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::{clients, TestBroker};

/// Writes committed "c<i>", aborted "a<i>" and committed "d<i>" records in three transactions;
/// returns the log end offset (records plus one marker per transaction).
fn produce_transactions(broker: &TestBroker, topic: &str) -> i64 {
    let p: ThreadedProducer<DefaultProducerContext> =
        clients::producer_config(&broker.bootstrap_servers())
            .set("transactional.id", spate_testkit::random_group("txn-input"))
            .create()
            .unwrap();
    let t = Duration::from_secs(10);
    p.init_transactions(t).unwrap();
    let batch = |prefix: &str, n: usize, commit: bool| {
        p.begin_transaction().unwrap();
        for i in 0..n {
            let v = format!("{prefix}{i}");
            p.send(BaseRecord::<(), _>::to(topic).partition(0).payload(&v))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        if commit {
            p.commit_transaction(t).unwrap();
        } else {
            p.flush(t).unwrap();
            p.abort_transaction(t).unwrap();
        }
    };
    batch("c", 5, true);
    batch("a", 3, false);
    batch("d", 4, true);
    5 + 3 + 4 + 3
}

/// Runs a direct stream in `isolation` until it has read up to `end`; returns the values.
fn read(broker: &TestBroker, topic: &str, isolation: &str, end: i64) -> Vec<String> {
    let ctx = StreamingContext::new(
        Config::new("transactional-input").batch_interval(Duration::from_millis(100)),
    )
    .unwrap();
    let params = params(broker).set("isolation.level", isolation);
    let stream =
        KafkaUtils::create_direct_stream(&ctx, ConsumerStrategy::subscribe([topic], params))
            .unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    stream.foreach_batch(move |batch, _| {
        let records = batch.collect()?;
        sink.lock().extend(common::values(&records));
        Ok::<_, spate_streaming::StreamingError>(())
    });
    ctx.start().unwrap();
    let tp = TopicPartition::new(topic, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stream.current_offsets().get(&tp).copied().unwrap_or(0) < end {
        assert!(
            Instant::now() < deadline,
            "{isolation} stream did not reach {end}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the batch that reached the end finish its output.
    std::thread::sleep(Duration::from_millis(400));
    ctx.stop(true).unwrap();
    let got = seen.lock().clone();
    got
}

#[test]
fn direct_stream_reads_markers_and_aborted_transactions_in_both_isolation_levels() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "txn_input", 1);
    let end = produce_transactions(&broker, &topic);
    let committed: Vec<String> = (0..5)
        .map(|i| format!("c{i}"))
        .chain((0..4).map(|i| format!("d{i}")))
        .collect();
    let all: Vec<String> = (0..5)
        .map(|i| format!("c{i}"))
        .chain((0..3).map(|i| format!("a{i}")))
        .chain((0..4).map(|i| format!("d{i}")))
        .collect();
    let rc = read(&broker, &topic, "read_committed", end);
    let ru = read(&broker, &topic, "read_uncommitted", end);
    eprintln!(
        "log end {end}: read_committed {} records, read_uncommitted {} records",
        rc.len(),
        ru.len()
    );
    assert_eq!(rc, committed);
    assert_eq!(ru, all);
}
