//! A broker outage under a running direct stream: while the broker is down, planning waits and
//! retries with backoff, every retry reaches the listeners (`on_input_error`), and no batch is
//! planned past data it could not see; when the broker is back, the job continues from where it
//! was and reads every record exactly once.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaUtils, RetryPolicy};
use spate_streaming::{Config, InputErrorInfo, StreamingContext, StreamingListener};
use spate_testkit::{wait_until, TestBroker};

use common::*;

#[derive(Default)]
struct Faults(Mutex<Vec<InputErrorInfo>>);

impl StreamingListener for Faults {
    fn on_input_error(&self, info: &InputErrorInfo) {
        self.0.lock().push(info.clone());
    }
}

#[test]
fn an_unreachable_broker_is_retried_reported_and_loses_nothing() {
    spate_testkit::init_logging();
    let mut broker = TestBroker::start();
    let topic = create_topic(&broker, "outage", 2);
    for p in 0..2 {
        produce(&broker, &topic, p, 0, 30);
    }
    let ctx = StreamingContext::new(
        Config::new("kafka-outage-test")
            .batch_interval(Duration::from_millis(200))
            .executor_threads(2),
    )
    .unwrap();
    // Short requests and backoff so the outage shows up within a second; never give up.
    let config = DirectStreamConfig {
        request_timeout: Duration::from_millis(500),
        retry: RetryPolicy::default()
            .initial_backoff(Duration::from_millis(50))
            .max_elapsed(None),
        ..DirectStreamConfig::default()
    };
    let stream = KafkaUtils::create_direct_stream_with(
        &ctx,
        ConsumerStrategy::subscribe([topic.as_str()], params(&broker)),
        config,
    )
    .unwrap();
    let faults = Arc::new(Faults::default());
    ctx.add_streaming_listener(faults.clone());
    let seen: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let sink = seen.clone();
    stream.foreach_batch(move |batch, _time| {
        let mut seen = sink.lock();
        for r in batch.collect()? {
            *seen
                .entry(r.value_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        Ok::<_, spate_streaming::StreamingError>(())
    });
    ctx.start().unwrap();
    wait_until("the first 60 records", Duration::from_secs(30), || {
        seen.lock().len() >= 60
    });

    broker.stop();
    wait_until(
        "retries reported to the listener",
        Duration::from_secs(30),
        || faults.0.lock().len() >= 2,
    );
    broker.start_again();
    for p in 0..2 {
        produce(&broker, &topic, p, 30, 20);
    }
    wait_until("all 100 records", Duration::from_secs(60), || {
        seen.lock().len() >= 100
    });
    ctx.stop(true).unwrap();

    let faults = faults.0.lock().clone();
    let seen = seen.lock().clone();
    eprintln!(
        "{} retries reported during the outage, e.g. {:?}; {} distinct records read",
        faults.len(),
        faults.first().map(|f| &f.message),
        seen.len()
    );
    assert!(faults.iter().all(|f| f.input_id == "kafka_direct-0"));
    assert!(
        faults.iter().any(|f| f.message.contains("retrying in")),
        "{faults:?}"
    );
    assert_eq!(seen.len(), 100, "every record read");
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "records read more than once: {twice:?}");
}
