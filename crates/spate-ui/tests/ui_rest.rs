//! The UI's REST API and `/metrics` against running jobs: a queue stream (exact record counts
//! per batch, a failing output) and a Kafka direct stream on the test broker (offset ranges,
//! per-partition positions and lag; a broker outage's retries as input faults).

mod ui_support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use spate_kafka::{DirectStreamConfig, RetryPolicy};
use spate_streaming::{Config, StreamingContext, StreamingError};
use spate_testkit::TestBroker;
use spate_ui::{UiConfig, UiServer};

use ui_support::*;

/// Parses the exposition text: every line is a comment or `name{labels} value`; returns the
/// samples by `name{labels}`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.insert(series.to_owned(), v);
    }
    out
}

#[test]
fn queue_stream_statistics_batches_and_metrics() {
    spate_testkit::init_logging();
    let ctx = StreamingContext::new(
        Config::new("ui-queue-test")
            .batch_interval(Duration::from_millis(50))
            .executor_threads(2),
    )
    .unwrap();
    let (queue, lines) = ctx.queue_stream::<u32>(true);
    for n in [10u32, 20, 30, 40, 50] {
        queue.push((0..n).collect());
    }
    lines.foreach_batch(|batch, _| batch.count().map(|_| ()));
    let ui = UiServer::start(&ctx, UiConfig::default().port(0)).unwrap();
    assert_ne!(ui.local_addr().port(), 0);
    assert_eq!(ui.url(), format!("http://{}/", ui.local_addr()));
    let addr = ui.local_addr();
    ctx.start().unwrap();

    let stats = wait_for("150 processed records", Duration::from_secs(20), || {
        let s = get(addr, "/api/v1/streaming/statistics").json();
        (s["numProcessedRecords"] == 150 && s["numTotalCompletedBatches"].as_u64()? >= 6)
            .then_some(s)
    });
    assert_eq!(stats["batchDuration"], 50);
    assert_eq!(stats["appName"], "ui-queue-test");
    assert_eq!(stats["state"], "ACTIVE");
    assert_eq!(stats["numReceivers"], 0);
    assert!(stats["startTime"].as_str().unwrap().ends_with('Z'));
    assert!(stats["avgInputRate"].as_f64().unwrap() > 0.0);
    assert!(stats["avgProcessingTime"].is_u64());
    assert!(stats["avgSchedulingDelay"].is_u64());
    assert!(stats["avgTotalDelay"].as_u64() >= stats["avgProcessingTime"].as_u64());

    let batches = get(addr, "/api/v1/streaming/batches?status=completed").json();
    let rows = batches.as_array().unwrap();
    let ids: Vec<u64> = rows
        .iter()
        .map(|b| b["batchId"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(
        ids.iter().all(|t| t % 50 == 0),
        "batch times on the interval"
    );
    let sizes: Vec<u64> = rows
        .iter()
        .rev()
        .map(|b| b["inputSize"].as_u64().unwrap())
        .filter(|&n| n > 0)
        .collect();
    assert_eq!(sizes, vec![10, 20, 30, 40, 50]);
    for b in rows {
        assert_eq!(b["status"], "COMPLETED");
        assert_eq!(b["numTotalOutputOps"], 1);
        assert_eq!(b["numCompletedOutputOps"], 1);
        assert_eq!(b["numFailedOutputOps"], 0);
        assert!(b["processingTime"].is_u64() && b["schedulingDelay"].is_u64());
        assert!(b["firstFailureReason"].is_null());
    }

    let thirty = rows.iter().find(|b| b["inputSize"] == 30).unwrap();
    let id = thirty["batchId"].as_u64().unwrap();
    let detail = get(addr, &format!("/api/v1/streaming/batches/{id}")).json();
    assert_eq!(detail["batchId"], id);
    assert_eq!(detail["inputs"][0]["numRecords"], 30);
    assert_eq!(detail["inputs"][0]["offsetRanges"], serde_json::json!([]));
    let op = &detail["outputOpIds"][0];
    assert_eq!(op["name"], "foreach_batch");
    assert_eq!(op["status"], "SUCCEEDED");
    assert!(op["duration"].is_u64());
    // Spark's own paths answer too, for any application id.
    let apps = get(addr, "/api/v1/applications").json();
    assert_eq!(apps[0]["id"], "ui-queue-test");
    let spark = format!("/api/v1/applications/ui-queue-test/streaming/batches/{id}");
    assert_eq!(get(addr, &spark).json(), detail);
    let ops = get(addr, &format!("/api/v1/streaming/batches/{id}/operations")).json();
    assert_eq!(ops, detail["outputOpIds"]);

    assert_eq!(
        get(addr, "/api/v1/streaming/batches?status=done").status,
        400
    );
    assert_eq!(get(addr, "/api/v1/streaming/batches/123").status, 404);
    assert_eq!(get(addr, "/api/v1/streaming/batches/abc").status, 400);
    assert_eq!(
        get(addr, "/api/v1/streaming/receivers").json(),
        serde_json::json!([])
    );
    assert_eq!(get(addr, "/nope").status, 404);

    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("/static/app.js"));
    for asset in ["/static/app.js", "/static/style.css", "/batch?id=1"] {
        let r = get(addr, asset);
        assert_eq!(r.status, 200, "{asset}");
        assert!(!r.body.trim().is_empty(), "{asset}");
        assert!(
            !r.body.contains("http://") && !r.body.contains("https://"),
            "{asset} must not load anything from the network"
        );
    }

    // Stopped: the bus has delivered everything, so the UI's counts equal the engine's.
    ctx.stop(true).unwrap();
    let stats = get(addr, "/api/v1/streaming/statistics").json();
    assert_eq!(stats["state"], "STOPPED");
    assert_eq!(stats["numActiveBatches"], 0);
    let m = get(addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.content_type.starts_with("text/plain; version=0.0.4"));
    let s = samples(&m.body);
    let app = "{app=\"ui-queue-test\"}";
    assert_eq!(
        s[&format!("spate_streaming_totalProcessedRecords{app}")],
        150.0
    );
    assert_eq!(
        s[&format!("spate_streaming_totalCompletedBatches{app}")],
        stats["numTotalCompletedBatches"].as_f64().unwrap()
    );
    assert_eq!(s[&format!("spate_streaming_batchDuration{app}")], 50.0);
    assert_eq!(s[&format!("spate_streaming_waitingBatches{app}")], 0.0);
    assert_eq!(s[&format!("spate_streaming_totalFailedBatches{app}")], 0.0);
    assert!(s[&format!("spate_streaming_lastCompletedBatch_processingDelay{app}")] >= 0.0);
    assert!(s[&format!("spate_streaming_avgInputRate{app}")] > 0.0);
    assert!(!s.keys().any(|k| k.starts_with("spate_kafka_")));

    ui.shutdown();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "stopped serving"
    );
}

#[test]
fn failed_output_shows_on_the_batch_and_the_ui_outlives_the_job() {
    let ctx = StreamingContext::new(
        Config::new("ui-fail-test").batch_interval(Duration::from_millis(40)),
    )
    .unwrap();
    let (queue, lines) = ctx.queue_stream::<u32>(true);
    queue.push(vec![1, 2]);
    queue.push(vec![7]);
    lines.foreach_batch(|batch, _| {
        if batch.collect()?.contains(&7) {
            return Err(StreamingError::input("test", "the sink rejected record 7"));
        }
        Ok(())
    });
    let ui = UiServer::start(&ctx, UiConfig::default().port(0).retained_batches(50)).unwrap();
    ctx.start().unwrap();
    assert!(
        ctx.await_termination().is_err(),
        "the failing output stops the job"
    );
    let addr = ui.local_addr();
    let stats = wait_for("the stop to reach the UI", Duration::from_secs(10), || {
        let s = get(addr, "/api/v1/streaming/statistics").json();
        (s["state"] == "STOPPED").then_some(s)
    });
    assert_eq!(stats["numFailedBatches"], 1);
    let rows: Vec<Value> = get(addr, "/api/v1/streaming/batches")
        .json()
        .as_array()
        .unwrap()
        .clone();
    let failed = &rows[0];
    assert_eq!(failed["inputSize"], 1);
    assert_eq!(failed["numFailedOutputOps"], 1);
    assert!(failed["firstFailureReason"]
        .as_str()
        .unwrap()
        .contains("rejected record 7"));
    let id = failed["batchId"].as_u64().unwrap();
    let op = &get(addr, &format!("/api/v1/streaming/batches/{id}")).json()["outputOpIds"][0];
    assert_eq!(op["status"], "FAILED");
    assert!(op["failureReason"]
        .as_str()
        .unwrap()
        .contains("rejected record 7"));
}

#[test]
fn kafka_direct_stream_offset_ranges_positions_and_lag() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    // 30 records per partition, read at most 100/s per partition in 100 ms batches: several
    // batches of at most 10 offsets per partition.
    let job = kafka_job(&broker, 2, 30, Duration::from_millis(100), 100);
    let addr = job.ui.local_addr();
    wait_for("60 records", Duration::from_secs(30), || {
        (job.seen.load(Ordering::SeqCst) == 60).then_some(())
    });
    let rows = wait_for("the batches in the UI", Duration::from_secs(10), || {
        let b = get(addr, "/api/v1/streaming/batches?status=COMPLETED").json();
        let total: u64 = b
            .as_array()?
            .iter()
            .filter_map(|r| r["inputSize"].as_u64())
            .sum();
        (total == 60).then_some(b)
    });
    // Walk every batch: offset ranges are 1:1 with partitions, contiguous, and count records.
    let mut next = [0i64; 2];
    let mut with_data = 0;
    for row in rows.as_array().unwrap().iter().rev() {
        let id = row["batchId"].as_u64().unwrap();
        let d = get(addr, &format!("/api/v1/streaming/batches/{id}")).json();
        let input = &d["inputs"][0];
        assert!(input["inputId"]
            .as_str()
            .unwrap()
            .starts_with("kafka_direct"));
        let ranges = input["offsetRanges"].as_array().unwrap();
        assert_eq!(ranges.len(), 2, "one range per partition: {d}");
        let mut sum = 0;
        for r in ranges {
            assert_eq!(r["topic"], job.topic.as_str());
            let p = r["partition"].as_u64().unwrap() as usize;
            let (from, until) = (
                r["fromOffset"].as_i64().unwrap(),
                r["untilOffset"].as_i64().unwrap(),
            );
            assert_eq!(from, next[p], "contiguous ranges");
            assert!(until - from <= 10, "rate limit respected");
            assert_eq!(r["count"].as_i64().unwrap(), until - from);
            next[p] = until;
            sum += until - from;
        }
        assert_eq!(input["numRecords"].as_i64().unwrap(), sum);
        assert_eq!(row["inputSize"].as_i64().unwrap(), sum);
        with_data += usize::from(sum > 0);
    }
    assert_eq!(next, [30, 30]);
    assert!(
        with_data >= 3,
        "the rate limit spreads 60 records over several batches"
    );

    let parts = get(addr, "/api/v1/streaming/kafka/partitions").json();
    let parts = parts.as_array().unwrap();
    assert_eq!(parts.len(), 2);
    for p in parts {
        assert_eq!(
            (
                p["untilOffset"].as_i64(),
                p["latestOffset"].as_i64(),
                p["lag"].as_i64()
            ),
            (Some(30), Some(30), Some(0)),
            "{p}"
        );
    }

    // Stop the job, then produce: the job's position stays, the log end moves, lag shows it.
    job.ctx.stop(true).unwrap();
    produce(&broker, &job.topic, 1, 25);
    let labels = |p: i32| {
        format!(
            "{{app=\"ui-kafka-test\",input=\"kafka_direct-0\",topic=\"{}\",partition=\"{p}\"}}",
            job.topic
        )
    };
    // Latest offsets are cached for a second; the new log end shows up within that.
    let lag1 = format!("spate_kafka_consumer_lag{}", labels(1));
    let s = wait_for("the lag of partition 1", Duration::from_secs(10), || {
        let s = samples(&get(addr, "/metrics").body);
        (s.get(&lag1) == Some(&25.0)).then_some(s)
    });
    let input_id = parts[0]["inputId"].as_str().unwrap();
    assert_eq!(
        input_id, "kafka_direct-0",
        "labels below assume the first input's id"
    );
    assert_eq!(
        s[&format!("spate_kafka_partition_until_offset{}", labels(0))],
        30.0
    );
    assert_eq!(
        s[&format!("spate_kafka_partition_until_offset{}", labels(1))],
        30.0
    );
    assert_eq!(
        s[&format!("spate_kafka_partition_latest_offset{}", labels(1))],
        55.0
    );
    assert_eq!(s[&format!("spate_kafka_consumer_lag{}", labels(0))], 0.0);
    assert_eq!(s[&format!("spate_kafka_consumer_lag{}", labels(1))], 25.0);
    assert_eq!(
        s["spate_streaming_totalProcessedRecords{app=\"ui-kafka-test\"}"],
        60.0
    );
}

#[test]
fn a_broker_outage_shows_as_input_faults_and_the_job_carries_on() {
    spate_testkit::init_logging();
    let mut broker = TestBroker::start();
    // Short requests and backoff so the outage shows within a second; never give up.
    let config = DirectStreamConfig {
        request_timeout: Duration::from_millis(500),
        retry: RetryPolicy::default()
            .initial_backoff(Duration::from_millis(50))
            .max_elapsed(None),
        ..DirectStreamConfig::default()
    };
    let job = kafka_job_with(&broker, 1, 20, Duration::from_millis(100), config, false);
    let addr = job.ui.local_addr();
    wait_for("20 records", Duration::from_secs(20), || {
        (job.seen.load(Ordering::SeqCst) == 20).then_some(())
    });
    let inputs = get(addr, "/api/v1/streaming/inputs").json();
    assert_eq!(inputs[0]["inputId"], "kafka_direct-0", "{inputs}");
    assert_eq!(inputs[0]["numErrors"], 0, "no fault before the outage");
    assert!(inputs[0]["lastError"].is_null());
    let series =
        "spate_streaming_input_errors_total{app=\"ui-kafka-test\",input=\"kafka_direct-0\"}";
    assert_eq!(samples(&get(addr, "/metrics").body)[series], 0.0);

    broker.stop();
    let input = wait_for("a fault of kafka_direct-0", Duration::from_secs(10), || {
        let all = get(addr, "/api/v1/streaming/inputs").json();
        let input = all
            .as_array()?
            .iter()
            .find(|i| i["inputId"] == "kafka_direct-0")?
            .clone();
        (input["numErrors"].as_u64()? >= 1).then_some(input)
    });
    let last = input["lastError"].as_str().unwrap();
    assert!(last.contains("retrying in"), "{input}");
    let recent = input["recentErrors"].as_array().unwrap();
    assert!(!recent.is_empty() && recent.len() <= 20, "{input}");
    assert_eq!(recent[0]["message"], last, "newest first");
    assert_eq!(recent[0]["time"], input["lastErrorTime"]);
    assert!(input["lastErrorTime"].as_str().unwrap().ends_with('Z'));
    // The same document under Spark's prefix, and the counter in /metrics.
    let spark = get(addr, "/api/v1/applications/ui-kafka-test/streaming/inputs").json();
    assert!(spark[0]["numErrors"].as_u64() >= input["numErrors"].as_u64());
    let s = samples(&get(addr, "/metrics").body);
    assert!(s[series] >= 1.0, "{series} = {}", s[series]);
    assert!(get(addr, "/").body.contains("input-fault-rows"));

    broker.start_again();
    let before = get(addr, "/api/v1/streaming/statistics").json()["numTotalCompletedBatches"]
        .as_u64()
        .unwrap();
    produce(&broker, &job.topic, 0, 15);
    wait_for(
        "the records produced after the outage",
        Duration::from_secs(20),
        || (job.seen.load(Ordering::SeqCst) == 35).then_some(()),
    );
    wait_for("batches after the outage", Duration::from_secs(10), || {
        let s = get(addr, "/api/v1/streaming/statistics").json();
        (s["numTotalCompletedBatches"].as_u64()? >= before + 3).then_some(())
    });
    let stats = get(addr, "/api/v1/streaming/statistics").json();
    assert_eq!(
        stats["numFailedBatches"], 0,
        "retries are not batch failures"
    );
    job.ctx.stop(true).unwrap();
}

#[test]
fn receiver_stream_shows_in_the_receivers_table() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = spate_testkit::random_topic("ui_recv");
    broker.create_topic(&topic, 2);
    produce(&broker, &topic, 0, 40);
    produce(&broker, &topic, 1, 40);
    let ctx = StreamingContext::new(
        Config::new("ui-receiver-test").batch_interval(Duration::from_millis(100)),
    )
    .unwrap();
    let params = [
        ("bootstrap.servers", broker.bootstrap_servers()),
        ("group.id", spate_testkit::random_group("ui_recv")),
        ("auto.offset.reset", "earliest".to_owned()),
        ("session.timeout.ms", "6000".to_owned()),
        ("heartbeat.interval.ms", "500".to_owned()),
        ("fetch.wait.max.ms", "50".to_owned()),
        ("broker.address.family", "v4".to_owned()),
        (spate_kafka::receiver::BLOCK_INTERVAL_MS, "50".to_owned()),
    ];
    let stream = spate_kafka::KafkaUtils::create_stream(&ctx, params, [(topic.as_str(), 1)])
        .expect("create_stream");
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = seen.clone();
    stream.dstream().foreach_batch(move |batch, _| {
        sink.fetch_add(batch.count()?, Ordering::SeqCst);
        Ok::<_, StreamingError>(())
    });
    let ui = UiServer::start(&ctx, UiConfig::default().port(0)).unwrap();
    let addr = ui.local_addr();
    ctx.start().unwrap();
    wait_for(
        "80 records through the receiver",
        Duration::from_secs(40),
        || (seen.load(Ordering::SeqCst) == 80).then_some(()),
    );
    let receivers = wait_for("the receiver's rate", Duration::from_secs(10), || {
        let r = get(addr, "/api/v1/streaming/receivers").json();
        let total: f64 = r[0]["eventRates"]
            .as_array()?
            .iter()
            .filter_map(|p| p[1].as_f64())
            .sum();
        // Rates are records / batch interval (0.1 s) per batch: 80 records sum to 800/s.
        ((total - 800.0).abs() < 1e-6).then_some(r)
    });
    let r = &receivers.as_array().unwrap()[0];
    assert_eq!(r["isActive"], true);
    // The receiver is named by the input it feeds, as the batches' inputs are.
    let with_data = get(addr, "/api/v1/streaming/batches")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["inputSize"].as_u64() > Some(0))
        .unwrap()["batchId"]
        .as_u64()
        .unwrap();
    let detail = get(addr, &format!("/api/v1/streaming/batches/{with_data}")).json();
    assert_eq!(r["streamId"], detail["inputs"][0]["inputId"]);
    assert!(!r["streamName"].as_str().unwrap().is_empty());
    assert!(r["avgEventRate"].as_f64().unwrap() > 0.0);
    let stats = get(addr, "/api/v1/streaming/statistics").json();
    assert_eq!(stats["numReceivers"], 1);
    assert_eq!(stats["numActiveReceivers"], 1);
    ctx.stop(true).unwrap();
    let r = get(addr, "/api/v1/streaming/receivers").json();
    assert_eq!(
        r[0]["isActive"], false,
        "stopped receivers are inactive: {r}"
    );
}

#[test]
fn a_taken_port_is_an_error_that_names_the_address() {
    let ctx = StreamingContext::new(Config::new("ui-bind-test")).unwrap();
    let first = UiServer::start(&ctx, UiConfig::default().port(0)).unwrap();
    let err = UiServer::start(&ctx, UiConfig::default().bind(first.local_addr())).unwrap_err();
    assert!(matches!(err, spate_ui::UiError::Bind { .. }), "{err}");
    assert!(
        err.to_string().contains(&first.local_addr().to_string()),
        "{err}"
    );
    // Started without a running job: empty but well-formed.
    let stats = get(first.local_addr(), "/api/v1/streaming/statistics").json();
    assert_eq!(stats["numTotalCompletedBatches"], 0);
    assert!(stats["avgInputRate"].is_null());
    assert_eq!(
        get(first.local_addr(), "/api/v1/streaming/batches").json(),
        serde_json::json!([])
    );
    let m = samples(&get(first.local_addr(), "/metrics").body);
    assert_eq!(
        m["spate_streaming_lastCompletedBatch_totalDelay{app=\"ui-bind-test\"}"],
        -1.0
    );
}

#[test]
fn a_ui_started_after_the_job_shows_the_batches_the_job_retained() {
    let ctx = StreamingContext::new(
        Config::new("ui-late-test")
            .batch_interval(Duration::from_millis(20))
            .retained_batches(5),
    )
    .unwrap();
    let (queue, lines) = ctx.queue_stream::<u32>(true);
    queue.push(vec![1, 2, 3]);
    lines.foreach_batch(|batch, _| batch.count().map(|_| ()));
    ctx.start().unwrap();
    let metrics = ctx.metrics();
    wait_for("8 batches", Duration::from_secs(10), || {
        (metrics.total_completed_batches() >= 8).then_some(())
    });
    let ui = UiServer::start(&ctx, UiConfig::default().port(0)).unwrap();
    let rows = get(
        ui.local_addr(),
        "/api/v1/streaming/batches?status=completed",
    )
    .json();
    let n = rows.as_array().unwrap().len();
    assert_eq!(n, 5, "the context's retained batches");
    let stats = wait_for("more batches", Duration::from_secs(10), || {
        let s = get(ui.local_addr(), "/api/v1/streaming/statistics").json();
        (s["numTotalCompletedBatches"].as_u64()? >= 10).then_some(s)
    });
    assert_eq!(
        stats["numProcessedRecords"], 3,
        "totals include batches before the UI"
    );
    assert_eq!(
        stats["numRetainedCompletedBatches"], 5,
        "bounded by spate.streaming.ui.retained.batches"
    );
    ctx.stop(false).unwrap();
}
