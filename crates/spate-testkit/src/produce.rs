//! Producing test records with rdkafka: send with backpressure (a full local queue is served,
//! not treated as an error) and wait until the broker acknowledged every record, so a test that
//! reads afterwards sees all of them.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::clients::producer_config;

/// A record to send: partition, optional key, value.
pub type Record = (i32, Option<String>, String);

/// How long the broker gets to acknowledge what was sent before the test fails.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// A key and its value for a compacted topic; `None` is a tombstone (a record without value).
pub type Keyed = (String, Option<String>);

/// Enqueues one record; while the producer's local queue is full, serves delivery reports and
/// retries instead of failing. Panics on any other refusal.
pub fn send<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>)
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                producer.poll(Duration::from_millis(10));
                record = r;
            }
            Err((e, r)) => panic!("cannot enqueue a record for {}: {e}", r.topic),
        }
    }
    producer.poll(Duration::ZERO);
}

/// Waits until the broker acknowledged everything `producer` sent to `topic`.
pub fn flush(producer: &BaseProducer, topic: &str) {
    producer
        .flush(ACK_TIMEOUT)
        .unwrap_or_else(|e| panic!("records for {topic} not acknowledged: {e}"));
}

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
        send(producer, record);
    }
    flush(producer, topic);
}

/// Enqueues `records` in order to partition 0 of `topic` (a `None` value is a tombstone),
/// without waiting for acknowledgements: a transactional producer commits them afterwards.
pub fn send_keyed(producer: &BaseProducer, topic: &str, records: &[Keyed]) {
    for (key, value) in records {
        let mut record = BaseRecord::<String, String>::to(topic)
            .partition(0)
            .key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        send(producer, record);
    }
}

/// Sends `records` in order to partition 0 of `topic` (a `None` value is a tombstone) in
/// small batches of under 1 KB, so that the small segments of a compaction test hold several,
/// and waits until every one is acknowledged.
pub fn produce_keyed(bootstrap: &str, topic: &str, records: &[Keyed]) {
    let producer: BaseProducer = producer_config(bootstrap)
        .set("batch.size", "900")
        .create()
        .unwrap_or_else(|e| panic!("cannot create a producer for {topic}: {e}"));
    send_keyed(&producer, topic, records);
    flush(&producer, topic);
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
