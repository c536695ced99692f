//! Shared by the UI tests: a plain HTTP/1.1 GET (no client library needed for a local server),
//! polling with a deadline, producing to the test broker, and the two jobs the tests watch — a
//! queue stream and a Kafka direct stream — each with its UI on 127.0.0.1:0.

#![allow(dead_code)] // each test binary uses a different subset

pub mod browser;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spate_kafka::{ConsumerStrategy, DirectStreamConfig, KafkaParams, KafkaUtils};
use spate_streaming::{Config, StreamingContext, StreamingError};
use spate_testkit::TestBroker;
use spate_ui::{UiConfig, UiServer};

/// A response: status code, content type, the `WWW-Authenticate` challenge, body.
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub challenge: Option<String>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET path` with `Connection: close`; chunked bodies are not expected (axum sends a length).
pub fn get(addr: SocketAddr, path: &str) -> Response {
    get_with(addr, path, None)
}

/// `GET path` with an `Authorization` header when given.
pub fn get_with(addr: SocketAddr, path: &str, authorization: Option<&str>) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to the UI");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    Response {
        status,
        content_type: header("content-type").unwrap_or_default(),
        challenge: header("www-authenticate"),
        body: body.to_owned(),
    }
}

#[allow(unused_imports)] // not every test binary polls
pub use spate_testkit::wait_for;

/// Produces `n` records to one partition of `topic`.
pub fn produce(broker: &TestBroker, topic: &str, partition: i32, n: usize) {
    produce_to(&broker.bootstrap_servers(), topic, partition, n);
}

/// Produces `n` records to one partition of `topic` on the cluster at `bootstrap`.
pub fn produce_to(bootstrap: &str, topic: &str, partition: i32, n: usize) {
    spate_testkit::produce::produce_to_partition(
        bootstrap,
        topic,
        partition,
        (0..n).map(|i| (None, format!("{partition}-{i}"))),
    );
}

/// Direct-stream params for `broker` in a fresh group, from the earliest offset.
pub fn params(broker: &TestBroker) -> KafkaParams {
    KafkaParams::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", spate_testkit::random_group("ui"))
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
}

/// A running direct-stream job with its UI: records counted by the output, and the topic.
pub struct KafkaJob {
    pub ctx: StreamingContext,
    pub ui: UiServer,
    pub topic: String,
    pub seen: Arc<AtomicU64>,
}

/// Starts a direct stream over a new `partitions`-partition topic, `per_partition` records
/// already in each partition, read at most `rate` records/s per partition, with a UI that
/// reads lag from the broker.
pub fn kafka_job(
    broker: &TestBroker,
    partitions: i32,
    per_partition: usize,
    batch: Duration,
    rate: u64,
) -> KafkaJob {
    let config = DirectStreamConfig::default()
        .max_rate_per_partition(rate)
        .initial_rate(None);
    kafka_job_with(broker, partitions, per_partition, batch, config, true)
}

/// [`kafka_job`] with the stream's own `config`; `lag` makes the UI read latest offsets from
/// the broker (leave it off where the broker goes away, as every scrape would wait for it).
pub fn kafka_job_with(
    broker: &TestBroker,
    partitions: i32,
    per_partition: usize,
    batch: Duration,
    config: DirectStreamConfig,
    lag: bool,
) -> KafkaJob {
    let topic = spate_testkit::random_topic("ui");
    broker.create_topic(&topic, partitions);
    for p in 0..partitions {
        produce(broker, &topic, p, per_partition);
    }
    let ctx = StreamingContext::new(
        Config::new("ui-kafka-test")
            .batch_interval(batch)
            .executor_threads(2),
    )
    .unwrap();
    let params = params(broker);
    let stream = KafkaUtils::create_direct_stream_with(
        &ctx,
        ConsumerStrategy::subscribe([topic.as_str()], params.clone()),
        config,
    )
    .unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let sink = seen.clone();
    stream
        .map(|r| r.value.map(|v| v.len()).unwrap_or(0))
        .foreach_batch(move |batch, _time| {
            let n = batch.count()?;
            sink.fetch_add(n, Ordering::SeqCst);
            Ok::<_, StreamingError>(())
        });
    let mut ui_config = UiConfig::default().port(0);
    if lag {
        ui_config = ui_config.kafka_lag(&params).expect("lag client");
    }
    let ui = UiServer::start(&ctx, ui_config).unwrap();
    ctx.start().unwrap();
    KafkaJob {
        ctx,
        ui,
        topic,
        seen,
    }
}
