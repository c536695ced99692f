//! A short YSB run against the test broker: preload JSON ad events, run the job on the direct
//! stream until every event is processed, and let the checker recompute the counts from the
//! input topic and compare them with the job's output topic.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_client::config::ClientArgs;
use spate_streaming::{Config, StreamingContext};
use spate_testkit::TestBroker;
use spate_ysb::checker::check_topics;
use spate_ysb::generator::{now_ms, preload};
use spate_ysb::{Encoding, EventClock, GeneratorConfig, YsbJob, YsbJobConfig, YsbSetup};

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

/// Live mode: the generator offers a fixed rate while the job runs; every event is counted
/// once and the latency samples are taken.
#[test]
fn ysb_live_run_counts_match_and_measures_latency() {
    use std::sync::atomic::AtomicBool;

    use spate_ysb::generator::produce_at_rate;

    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let input = spate_testkit::random_topic("ysb_live_in");
    let output = spate_testkit::random_topic("ysb_live_out");
    broker.create_topic(&input, 2);
    broker.create_topic(&output, 2);
    let client = ClientArgs::new(broker.bootstrap_servers());
    let setup = YsbSetup::new(7);
    let gen = GeneratorConfig {
        topic: input.clone(),
        partitions: 2,
        encoding: Encoding::Json,
        seed: 3,
    };
    let ctx = StreamingContext::new(
        Config::new("ysb-live-test")
            .batch_interval(Duration::from_millis(50))
            .executor_threads(2),
    )
    .unwrap();
    let mut config = YsbJobConfig::new(broker.bootstrap_servers(), &input, &output);
    config.partitions = 2;
    config.latency_sample_every = 1;
    let campaigns = Arc::new(setup.campaign_map());
    let job = YsbJob::build(&ctx, &config, campaigns.clone()).unwrap();
    ctx.start().unwrap();
    let stop = AtomicBool::new(false);
    let t0 = now_ms();
    let live = produce_at_rate(
        &client,
        &gen,
        &setup,
        5_000.0,
        Duration::from_millis(1500),
        &stop,
    )
    .unwrap();
    assert_eq!(live.events, 7_500);
    let deadline = Instant::now() + Duration::from_secs(20);
    while job.stats.records_completed.load(Ordering::SeqCst) < live.events {
        assert!(Instant::now() < deadline, "the job did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.stop(true).unwrap();

    let (report, latest) =
        check_topics(&client, &input, &output, Encoding::Json, &campaigns).unwrap();
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.input.records, live.events);
    // Event times are the schedule's: they start at the run's start and span its duration.
    assert!(latest.values().all(|c| c.time_updated >= t0));
    let latencies = job.stats.latencies_ms();
    assert_eq!(
        latencies.len() as u64,
        job.stats.views.load(Ordering::SeqCst)
    );
    assert!(latencies.iter().all(|&l| (0.0..20_000.0).contains(&l)));
}
