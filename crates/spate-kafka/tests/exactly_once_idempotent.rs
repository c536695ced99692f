//! The idempotent exactly-once pattern: a direct-stream job upserts one row per record keyed by
//! (topic, partition, offset) into SQLite. Replaying records — a second stream started from
//! earlier offsets, and a backfill of an explicit range with `create_rdd` — rewrites the same
//! rows: duplicates collapse, the table keeps exactly one correct row per record.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use spate_kafka::sink::IdempotentSqliteSink;
use spate_kafka::{
    ConsumerRecord, ConsumerStrategy, KafkaParams, KafkaUtils, OffsetRange, TopicPartition,
};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::TestBroker;

const PER_PARTITION: i64 = 200;

/// The row a record becomes: a function of the record alone, so a replay writes the same row.
fn row_value(r: &ConsumerRecord) -> String {
    format!(
        "{}:{}",
        r.key_str().unwrap_or_default(),
        r.value_str().unwrap_or_default()
    )
}

/// Runs a direct stream from `start` and upserts its records until `want` rows were written by
/// this run; returns the rows written.
fn run(db: &Path, strategy: ConsumerStrategy, want: u64) -> u64 {
    let sink = Arc::new(Mutex::new(
        IdempotentSqliteSink::open(db, "records").unwrap(),
    ));
    let ctx = StreamingContext::new(
        Config::new("idempotent-replay").batch_interval(Duration::from_millis(100)),
    )
    .unwrap();
    let stream = KafkaUtils::create_direct_stream(&ctx, strategy).unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let (s, w) = (sink.clone(), written.clone());
    stream.foreach_batch(move |batch, _| {
        let n = s.lock().upsert(&batch.collect()?, row_value)?;
        w.fetch_add(n as u64, Ordering::Relaxed);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
    ctx.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while written.load(Ordering::Relaxed) < want {
        assert!(Instant::now() < deadline, "the job wrote too little");
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.stop(true).unwrap();
    written.load(Ordering::Relaxed)
}

fn rows(db: &Path) -> BTreeMap<(i32, i64), String> {
    let sink = IdempotentSqliteSink::open(db, "records").unwrap();
    let mut stmt = sink
        .connection()
        .prepare("SELECT partition, offset, value FROM records")
        .unwrap();
    stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn idempotent_sink_collapses_replayed_records() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = common::create_topic(&broker, "eo_idem", 2);
    for p in 0..2 {
        common::produce(&broker, &topic, p, 0, PER_PARTITION as usize);
    }
    let total = 2 * PER_PARTITION as u64;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("idempotent.db");
    let params: KafkaParams = common::params(&broker);

    // Run 1: everything once.
    let w1 = run(
        &db,
        ConsumerStrategy::subscribe([topic.as_str()], params.clone()),
        total,
    );
    assert_eq!(w1, total);
    assert_eq!(rows(&db).len() as u64, total);

    // Run 2: a replay from earlier offsets (partition 0 from the start, partition 1 from 120).
    let replay = ConsumerStrategy::subscribe([topic.as_str()], params.clone()).with_offsets([
        (TopicPartition::new(&topic, 0), 0),
        (TopicPartition::new(&topic, 1), 120),
    ]);
    let w2 = run(&db, replay, PER_PARTITION as u64 + 80);
    assert_eq!(w2, PER_PARTITION as u64 + 80);

    // A backfill of an explicit range, written again.
    let rdd = KafkaUtils::create_rdd(&params, &[OffsetRange::create(&topic, 1, 50, 150)]).unwrap();
    let records: Vec<ConsumerRecord> = rdd.into_partitions().into_iter().flatten().collect();
    let w3 = IdempotentSqliteSink::open(&db, "records")
        .unwrap()
        .upsert(&records, row_value)
        .unwrap() as u64;
    assert_eq!(w3, 100);

    let rows = rows(&db);
    eprintln!(
        "idempotent replay test: {total} records, {} rows written in 3 passes, {} rows in the table",
        w1 + w2 + w3,
        rows.len()
    );
    assert_eq!(rows.len() as u64, total, "duplicates collapsed");
    for p in 0..2 {
        for o in 0..PER_PARTITION {
            assert_eq!(
                rows.get(&(p, o)),
                Some(&format!("k{o}:{p}-{o}")),
                "row {p}@{o}"
            );
        }
    }
}
