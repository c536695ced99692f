//! `KafkaUtils::create_stream` in a running `StreamingContext`: two receiver streams in one
//! consumer group, unioned for parallel receiving (Spark's pattern of one stream per receiver, then `union`), with the write-ahead log on; every
//! produced record reaches the job's output and the group's offsets reach the end.

mod receiver_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use receiver_support::*;
use spate_kafka::receiver::{
    BACKPRESSURE_ENABLED, BLOCK_INTERVAL_MS, RECEIVER_MAX_RATE, WRITE_AHEAD_LOG_ENABLE,
};
use spate_kafka::KafkaUtils;
use spate_streaming::{Config, ReceiverInfo, StreamingContext, StreamingError, StreamingListener};
use spate_testkit::{random_group, random_topic};

#[test]
fn create_stream_feeds_batches_through_unioned_receivers() {
    const PARTITIONS: i32 = 4;
    const N: u64 = 2_000;
    let broker = broker_with_partitions(PARTITIONS);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_stream"), random_group("recv_stream"));
    produce_range(&bootstrap, &topic, PARTITIONS, 0, N / 2);

    let checkpoint = tempfile::tempdir().expect("temp dir");
    let ctx = StreamingContext::new(
        Config::new("receiver-stream")
            .batch_interval(Duration::from_millis(200))
            .graceful_stop_timeout(Duration::from_secs(10)),
    )
    .expect("context");
    ctx.checkpoint(checkpoint.path()).expect("checkpoint dir");
    let mut params = receiver_params(&bootstrap, &group);
    params.push((WRITE_AHEAD_LOG_ENABLE.into(), "true".into()));
    params.push((BLOCK_INTERVAL_MS.into(), "50".into()));
    let streams: Vec<_> = (0..2)
        .map(|_| {
            KafkaUtils::create_stream(&ctx, params.clone(), [(topic.as_str(), 1)])
                .expect("create_stream")
                .dstream()
                .clone()
        })
        .collect();
    let lines = ctx.union(&streams).expect("union");
    let seen: Arc<Mutex<BTreeMap<u64, u32>>> = Arc::default();
    let sink = Arc::clone(&seen);
    lines
        .map(|r| r.value_str().and_then(|v| v.parse::<u64>().ok()))
        .foreach_batch(move |batch, _| {
            let mut seen = sink.lock();
            for v in batch.collect()?.into_iter().flatten() {
                *seen.entry(v).or_insert(0) += 1;
            }
            Ok::<_, StreamingError>(())
        });
    ctx.start().expect("start");
    produce_range(&bootstrap, &topic, PARTITIONS, N / 2, N);
    let all = poll_until(Duration::from_secs(60), || seen.lock().len() as u64 == N);
    ctx.stop(true).expect("stop");
    let seen = seen.lock().clone();
    assert!(all, "the job saw {} of {N} records", seen.len());
    assert!(seen.keys().all(|v| *v < N));
    let reader = group_reader(&bootstrap, &group);
    assert_commits_reach_end(&reader, &topic, PARTITIONS);
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    let logs = std::fs::read_dir(checkpoint.path().join("receivers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(logs, 2, "each receiver input keeps its own logs");
    eprintln!("create_stream x2 (union): {N} produced, 0 lost, {duplicates} duplicates");
}

#[derive(Default)]
struct ReceiverEvents {
    started: Mutex<Vec<ReceiverInfo>>,
    errors: Mutex<Vec<ReceiverInfo>>,
    stopped: Mutex<Vec<ReceiverInfo>>,
}

impl StreamingListener for ReceiverEvents {
    fn on_receiver_started(&self, info: &ReceiverInfo) {
        self.started.lock().push(info.clone());
    }
    fn on_receiver_error(&self, info: &ReceiverInfo) {
        self.errors.lock().push(info.clone());
    }
    fn on_receiver_stopped(&self, info: &ReceiverInfo) {
        self.stopped.lock().push(info.clone());
    }
}

#[test]
fn receiver_errors_reach_streaming_listeners() {
    let broker = broker_with_partitions(1);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_events"), random_group("recv_events"));
    produce_range(&bootstrap, &topic, 1, 0, 10);
    let ctx = StreamingContext::new(
        Config::new("receiver-events").batch_interval(Duration::from_millis(100)),
    )
    .expect("context");
    let events = Arc::new(ReceiverEvents::default());
    ctx.add_streaming_listener(events.clone());
    let stream = KafkaUtils::create_stream(
        &ctx,
        receiver_params(&bootstrap, &group),
        [(topic.as_str(), 1)],
    )
    .expect("create_stream");
    let count = Arc::new(Mutex::new(0usize));
    let sink = Arc::clone(&count);
    stream.foreach_batch(move |b, _| {
        *sink.lock() += b.collect()?.len();
        Ok::<_, StreamingError>(())
    });
    ctx.start().expect("start");
    assert!(poll_until(Duration::from_secs(30), || *count.lock() == 10));
    assert_eq!(events.started.lock().len(), 1);
    assert!(events.started.lock()[0].active);

    // The broker goes away: the consumer's errors are reported to listeners.
    broker.shutdown();
    let reported = poll_until(Duration::from_secs(30), || !events.errors.lock().is_empty());
    ctx.stop(false).expect("stop");
    assert!(reported, "no receiver error reached the listener");
    let errors = events.errors.lock().clone();
    assert!(errors.iter().all(|e| e.last_error.is_some()), "{errors:?}");
    eprintln!(
        "receiver error seen by listeners: {:?}",
        errors[0].last_error
    );
    assert_eq!(events.stopped.lock().len(), 1);
    assert!(!events.stopped.lock()[0].active);
}

#[test]
fn backpressure_lowers_the_receiver_rate_when_batches_are_slow() {
    const MAX_RATE: f64 = 20_000.0;
    let broker = broker_with_partitions(2);
    let bootstrap = broker.bootstrap_servers();
    let (topic, group) = (random_topic("recv_bp"), random_group("recv_bp"));
    produce_range(&bootstrap, &topic, 2, 0, 20_000);
    let ctx = StreamingContext::new(
        Config::new("receiver-backpressure").batch_interval(Duration::from_millis(100)),
    )
    .expect("context");
    let mut params = receiver_params(&bootstrap, &group);
    params.push((BACKPRESSURE_ENABLED.into(), "true".into()));
    params.push((RECEIVER_MAX_RATE.into(), MAX_RATE.to_string()));
    params.push((BLOCK_INTERVAL_MS.into(), "20".into()));
    let stream =
        KafkaUtils::create_stream(&ctx, params, [(topic.as_str(), 1)]).expect("create_stream");
    assert_eq!(
        stream.latest_rate(),
        Some(-1),
        "no estimate before two batches"
    );
    assert_eq!(stream.rate_limiter().current_rate(), MAX_RATE);
    // Every batch takes three batch intervals: the job cannot keep up with the max rate.
    stream.foreach_batch(|b, _| {
        let _ = b.collect()?;
        std::thread::sleep(Duration::from_millis(300));
        Ok::<_, StreamingError>(())
    });
    ctx.start().expect("start");
    let estimated = poll_until(Duration::from_secs(30), || {
        stream.latest_rate().is_some_and(|r| r > 0)
    });
    ctx.stop(false).expect("stop");
    assert!(estimated, "no backpressure estimate");
    let rate = stream.latest_rate().unwrap_or(-1);
    assert!(
        (rate as f64) < MAX_RATE / 2.0,
        "the estimate {rate} should be well below the max rate"
    );
    assert!(
        stream.rate_limiter().current_rate() < MAX_RATE,
        "the receiver's limiter follows the estimate"
    );
    eprintln!(
        "backpressure: receiver rate {MAX_RATE}/s -> {rate}/s (limiter {})",
        stream.rate_limiter().current_rate()
    );
}
