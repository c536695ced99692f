//! A short YSB run against the test broker: preload JSON ad events, run the job on the direct
//! stream until every event is processed, and let the checker recompute the counts from the
//! input topic and compare them with the job's output topic.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate::cli::client_config::ClientArgs;
use spate::streaming::{Config, StreamingContext};
use spate::ysb::checker::check_topics;
use spate::ysb::generator::{now_ms, preload};
use spate::ysb::{Encoding, EventClock, GeneratorConfig, YsbJob, YsbJobConfig, YsbSetup};
use spate_testkit::TestBroker;

fn run(encoding: Encoding, events: u64) {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let input = spate_testkit::random_topic("ysb_in");
    let output = spate_testkit::random_topic("ysb_out");
    broker.create_topic(&input, 2);
    broker.create_topic(&output, 2);
    let client = ClientArgs::new(broker.bootstrap_servers());

    let setup = YsbSetup::new(42);
    let gen = GeneratorConfig {
        topic: input.clone(),
        partitions: 2,
        encoding,
        seed: 1,
    };
    // 2,000 events of event time per second: the run spans several 10 s windows.
    let clock = EventClock {
        start_ms: now_ms() - 60_000,
        events_per_sec: 2_000.0,
    };
    preload(&client, &gen, &setup, events, clock).unwrap();

    let ctx = StreamingContext::new(
        Config::new("ysb-test")
            .batch_interval(Duration::from_millis(100))
            .executor_threads(2),
    )
    .unwrap();
    let mut config = YsbJobConfig::new(broker.bootstrap_servers(), &input, &output);
    config.encoding = encoding;
    config.partitions = 2;
    // Small batches, so the window counts are built up over many updates.
    config.max_records_per_batch = Some(5_000);
    let campaigns = Arc::new(setup.campaign_map());
    let job = YsbJob::build(&ctx, &config, campaigns.clone()).unwrap();
    ctx.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while job.stats.records_completed.load(Ordering::SeqCst) < events {
        assert!(
            job.stats.failures().is_empty(),
            "{:?}",
            job.stats.failures()
        );
        assert!(
            Instant::now() < deadline,
            "only {} of {events} events processed in 30 s",
            job.stats.records_completed.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.stop(true).unwrap();
    assert!(job.stats.batches.load(Ordering::SeqCst) >= 4);
    assert_eq!(job.stats.malformed.load(Ordering::SeqCst), 0);

    let (report, latest) = check_topics(&client, &input, &output, encoding, &campaigns).unwrap();
    assert_eq!(report.input.records, events);
    assert!(report.expected_windows >= 100, "{report:?}");
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.matched, report.expected_windows);
    assert_eq!(
        latest.values().map(|c| c.count).sum::<u64>(),
        job.stats.views.load(Ordering::SeqCst)
    );
    assert!(!job.stats.latencies_ms().is_empty());
}

#[test]
fn ysb_json_counts_match_the_input() {
    run(Encoding::Json, 40_000);
}

#[test]
fn ysb_binary_counts_match_the_input() {
    run(Encoding::Binary, 20_000);
}
