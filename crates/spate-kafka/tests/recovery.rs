//! A direct stream restarted from its checkpoint continues exactly where the recorded plans end:
//! no offset is skipped, and a batch that runs again reads its identical recorded ranges.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaParams, KafkaUtils, OffsetRange};
use spate_streaming::{Config, StreamingContext, Time};
use spate_testkit::TestBroker;

use common::*;

type Seen = Arc<Mutex<Vec<(Time, Vec<OffsetRange>, Vec<i64>)>>>;

fn run(
    dir: &std::path::Path,
    params: &KafkaParams,
    topic: &str,
    seen: &Seen,
    stop_after: impl Fn(&Seen) -> bool,
) {
    let (params, topic, sink) = (params.clone(), topic.to_owned(), seen.clone());
    let ctx = StreamingContext::get_or_create(dir, move || {
        let ctx = StreamingContext::new(
            Config::new("kafka-recovery").batch_interval(Duration::from_millis(100)),
        )?;
        let config = DirectStreamConfig::default()
            .max_rate_per_partition(100)
            .initial_rate(None);
        let stream = KafkaUtils::create_direct_stream_with(
            &ctx,
            ConsumerStrategy::subscribe([topic.as_str()], params),
            config,
        )
        .map_err(spate_streaming::StreamingError::from)?;
        let handle = stream.clone();
        stream.foreach_batch(move |batch, time| {
            let ranges = handle.offset_ranges(time).unwrap_or_default();
            let offsets = batch.collect()?.iter().map(|r| r.offset).collect();
            sink.lock().push((time, ranges, offsets));
            Ok::<_, spate_streaming::StreamingError>(())
        });
        Ok(ctx)
    })
    .unwrap();
    ctx.start().unwrap();
    spate_testkit::wait_until("the job's progress", Duration::from_secs(30), || {
        stop_after(seen)
    });
    ctx.stop(true).unwrap();
}

#[test]
fn restart_from_checkpoint_continues_from_the_recorded_ranges() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "recovery", 1);
    produce(&broker, &topic, 0, 0, 100);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let params = params(&broker);

    let first: Seen = Arc::default();
    // 100 records/s over 0.1 s batches: 10 offsets per batch. Stop after 3 batches with data.
    run(&ckpt, &params, &topic, &first, |s| {
        s.lock().iter().filter(|(_, _, o)| !o.is_empty()).count() >= 3
    });
    let second: Seen = Arc::default();
    let seen_all = |s: &Seen| {
        s.lock()
            .iter()
            .any(|(_, r, _)| r.iter().any(|r| r.until_offset == 100))
    };
    run(&ckpt, &params, &topic, &second, seen_all);

    let first = first.lock().clone();
    let second = second.lock().clone();
    assert!(
        first.iter().map(|(_, _, o)| o.len()).sum::<usize>() < 100,
        "the first run must stop early"
    );

    // Ranges by batch time; a batch that ran in both runs must have identical ranges.
    let mut by_time: BTreeMap<Time, Vec<OffsetRange>> = BTreeMap::new();
    for (time, ranges, offsets) in first.iter().chain(&second) {
        if let Some(prev) = by_time.insert(*time, ranges.clone()) {
            assert_eq!(&prev, ranges, "batch {time} re-ran with different ranges");
        }
        let want: Vec<i64> = ranges
            .iter()
            .flat_map(|r| r.from_offset..r.until_offset)
            .collect();
        assert_eq!(offsets, &want, "batch {time} read exactly its ranges");
    }
    // Contiguous from the first batch of the first run to the last of the second.
    let mut next = 0;
    for (time, ranges) in &by_time {
        assert_eq!(ranges.len(), 1);
        assert_eq!(
            ranges[0].from_offset, next,
            "batch {time} does not continue at {next}"
        );
        next = ranges[0].until_offset;
    }
    assert_eq!(next, 100);
    let read: BTreeSet<i64> = first
        .iter()
        .chain(&second)
        .flat_map(|(_, _, o)| o.iter().copied())
        .collect();
    assert_eq!(read, (0..100).collect());
}
