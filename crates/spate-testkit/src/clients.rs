//! rdkafka client configurations for tests: short timeouts so a failure shows up in seconds,
//! no auto-commit, and consumers that start from the earliest offset.

use rdkafka::config::ClientConfig;

/// A producer config. Idempotence is off; turn it on with `.set("enable.idempotence", "true")`.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "20000")
        .set("socket.timeout.ms", "10000")
        .set("linger.ms", "1")
        .set("broker.address.family", "v4");
    c
}

/// A consumer config in group `group`, reading from the earliest offset, committing nothing
/// unless the test does.
pub fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("socket.timeout.ms", "10000")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "100")
        .set("broker.address.family", "v4");
    c
}

/// An admin client config.
pub fn admin_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("broker.address.family", "v4");
    c
}

/// Sends `records` (key, value) to `topic`-`partition` and waits until every one is
/// acknowledged; panics naming the topic if the broker does not take them.
pub fn produce_to_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    records: impl IntoIterator<Item = (Option<String>, String)>,
) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::time::Duration;

    let producer: BaseProducer = producer_config(bootstrap)
        .create()
        .unwrap_or_else(|e| panic!("cannot create a producer for {topic}: {e}"));
    for (key, value) in records {
        let mut record = BaseRecord::<str, String>::to(topic)
            .partition(partition)
            .payload(&value);
        if let Some(k) = &key {
            record = record.key(k.as_str());
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    // Queue full: serve delivery reports, then retry.
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("records for {topic}-{partition} not acknowledged: {e}"));
}
