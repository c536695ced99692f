//! A direct-stream job reading over `SASL_SSL`: the broker's first listener is SASL_SSL (PLAIN,
//! users from the listener's JAAS config, certificate from a throw-away CA), records are produced
//! through its PLAINTEXT listener, and the job — given only the security settings a user would
//! put in its Kafka parameters — reads every record exactly once, in offset order per partition.
//! A job with a wrong password fails (once its retry policy gives up) instead of reading
//! anything, and its error does not repeat the password.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use spate_broker::BrokerConfig;
use spate_kafka::{
    ConsumerStrategy, DirectStreamConfig, KafkaParams, KafkaUtils, OffsetRange, RetryPolicy,
};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::tls::Pki;
use spate_testkit::{free_port, random_group, random_topic, TestBroker};

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_reader=\"reader-secret\";";

fn secured_broker(pki: &Pki, plaintext_port: u16) -> TestBroker {
    let mut config = BrokerConfig::default();
    config
        .set(
            "listeners",
            &format!("SASL_SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:{plaintext_port}"),
        )
        .unwrap();
    config.set("sasl.enabled.mechanisms", "PLAIN").unwrap();
    config
        .set("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS)
        .unwrap();
    config.set("ssl.keystore.type", "PEM").unwrap();
    config
        .set("ssl.keystore.location", &pki.location("server.pem"))
        .unwrap();
    TestBroker::start_with(config)
}

fn sasl_ssl_params(broker: &TestBroker, pki: &Pki, password: &str) -> KafkaParams {
    KafkaParams::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", random_group("sasl-ssl-direct"))
        .set("auto.offset.reset", "earliest")
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", "reader")
        .set("sasl.password", password)
        .set("ssl.ca.location", pki.location("ca.pem"))
        .set("socket.timeout.ms", "10000")
}

#[test]
fn direct_stream_reads_over_sasl_ssl() {
    spate_testkit::init_logging();
    let pki = Pki::new();
    let plaintext_port = free_port();
    let broker = secured_broker(&pki, plaintext_port);
    let topic = random_topic("sasl_ssl_direct");
    broker.create_topic(&topic, 3);
    let plaintext = format!("127.0.0.1:{plaintext_port}");
    let per_partition = 200u64;
    spate_testkit::produce::produce_range(&plaintext, &topic, 3, 0, 3 * per_partition);

    let ctx = StreamingContext::new(
        Config::new("sasl-ssl-direct")
            .batch_interval(Duration::from_millis(100))
            .executor_threads(2),
    )
    .unwrap();
    let params = sasl_ssl_params(&broker, &pki, "reader-secret");
    let stream =
        KafkaUtils::create_direct_stream(&ctx, ConsumerStrategy::subscribe([&topic], params))
            .unwrap();
    // partition -> (next expected offset, records read)
    let seen: Arc<Mutex<BTreeMap<i32, (i64, u64)>>> = Arc::default();
    let (sink, handle) = (seen.clone(), stream.clone());
    stream.foreach_batch(move |batch, time| {
        let ranges: Vec<OffsetRange> = handle.offset_ranges(time).unwrap_or_default();
        let parts = batch.collect_partitions()?;
        let mut s = sink.lock();
        for (range, records) in ranges.iter().zip(&parts) {
            let entry = s.entry(range.partition).or_insert((0, 0));
            for r in records {
                assert_eq!(
                    r.offset, entry.0,
                    "partition {} out of order",
                    range.partition
                );
                entry.0 += 1;
                entry.1 += 1;
            }
        }
        Ok::<_, spate_streaming::StreamingError>(())
    });
    ctx.start().unwrap();
    let want = per_partition * 3;
    let deadline = Instant::now() + Duration::from_secs(30);
    let total = || seen.lock().values().map(|(_, n)| n).sum::<u64>();
    while total() < want {
        assert!(
            Instant::now() < deadline,
            "read {} of {want} over SASL_SSL",
            total()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.stop(true).unwrap();
    let per: Vec<u64> = seen.lock().values().map(|(_, n)| *n).collect();
    assert_eq!(per, vec![per_partition; 3], "records per partition");
    println!("direct stream over SASL_SSL (PLAIN): read {want} records from 3 partitions: {per:?}");
}

#[test]
fn a_direct_stream_with_a_wrong_password_fails_to_start_its_first_batch() {
    spate_testkit::init_logging();
    let pki = Pki::new();
    let broker = secured_broker(&pki, free_port());
    let topic = random_topic("sasl_ssl_denied");
    broker.create_topic(&topic, 1);
    let ctx = StreamingContext::new(
        Config::new("sasl-ssl-denied").batch_interval(Duration::from_millis(100)),
    )
    .unwrap();
    let params = sasl_ssl_params(&broker, &pki, "not-the-password");
    let config = DirectStreamConfig {
        retry: RetryPolicy::default().max_elapsed(Some(Duration::from_secs(8))),
        ..DirectStreamConfig::default()
    };
    let strategy = ConsumerStrategy::subscribe([&topic], params);
    let outcome =
        KafkaUtils::create_direct_stream_with(&ctx, strategy, config).and_then(|stream| {
            stream.foreach_batch(|_, _| Ok::<_, spate_streaming::StreamingError>(()));
            ctx.start().map_err(Into::into)
        });
    let failed = match outcome {
        Err(e) => Some(e.to_string()),
        Ok(()) => {
            let ended = ctx.await_termination_or_timeout(Duration::from_secs(60));
            let _ = ctx.stop(false);
            match ended {
                Ok(true) => None,
                Ok(false) => Some("still waiting after 60 s".to_owned()),
                Err(e) => Some(e.to_string()),
            }
        }
    };
    let failed = failed.expect("a job with a wrong password ended without an error");
    println!("direct stream with a wrong password: {failed}");
    assert!(!failed.contains("not-the-password"), "{failed}");
}
