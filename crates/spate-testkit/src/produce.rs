//! Producing test records with rdkafka: send with backpressure (a full local queue is served,
//! not treated as an error) and wait until the broker acknowledged every record, so a test that
//! reads afterwards sees all of them.

use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::clients::producer_config;

/// A record to send: partition, optional key, value.
pub type Record = (i32, Option<String>, String);

/// How long the broker gets to acknowledge what was sent before the test fails.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `records` to `topic` through `producer` and waits until every one is acknowledged;
/// panics naming the topic if the broker does not take them.
pub fn send_all(producer: &BaseProducer, topic: &str, records: impl IntoIterator<Item = Record>) {
    for (partition, key, value) in records {
        let mut record = BaseRecord::<str, String>::to(topic)
            .partition(partition)
            .payload(&value);
        if let Some(k) = &key {
            record = record.key(k.as_str());
        }
        while let Err((_, r)) = producer.send(record) {
            // Queue full: serve delivery reports, then retry.
            producer.poll(Duration::from_millis(10));
            record = r;
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(ACK_TIMEOUT)
        .unwrap_or_else(|e| panic!("records for {topic} not acknowledged: {e}"));
}

/// Sends `records` to `topic` on the cluster at `bootstrap` with a new producer and waits until
/// every one is acknowledged.
pub fn produce(bootstrap: &str, topic: &str, records: impl IntoIterator<Item = Record>) {
    let producer: BaseProducer = producer_config(bootstrap)
        .create()
        .unwrap_or_else(|e| panic!("cannot create a producer for {topic}: {e}"));
    send_all(&producer, topic, records);
}

/// Sends `records` (key, value) to `topic`-`partition` and waits until every one is
/// acknowledged.
pub fn produce_to_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    records: impl IntoIterator<Item = (Option<String>, String)>,
) {
    produce(
        bootstrap,
        topic,
        records.into_iter().map(|(k, v)| (partition, k, v)),
    );
}

/// Sends values `from..until` as decimal text with key `k<i>`, round-robin over `partitions`
/// (value `i` goes to partition `i % partitions`), and waits for the acknowledgements.
pub fn produce_range(bootstrap: &str, topic: &str, partitions: i32, from: u64, until: u64) {
    let partitions = u64::try_from(partitions.max(1)).unwrap_or(1);
    produce(
        bootstrap,
        topic,
        (from..until).map(|i| {
            let partition = i32::try_from(i % partitions).unwrap_or(0);
            (partition, Some(format!("k{i}")), i.to_string())
        }),
    );
}
