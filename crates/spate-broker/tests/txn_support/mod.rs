//! Helpers shared by the transaction tests: transactional producers and consumers reading a
//! partition to its end in either isolation level.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use spate_testkit::clients::{consumer_config, producer_config};
use spate_testkit::random_group;

pub const T: Duration = Duration::from_secs(20);

/// A transactional producer, initialised.
pub fn txn_producer(bootstrap: &str, txn_id: &str, timeout_ms: u32) -> BaseProducer {
    let p: BaseProducer = producer_config(bootstrap)
        .set("transactional.id", txn_id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        // librdkafka requires socket.timeout.ms <= transaction.timeout.ms + 100.
        .set("socket.timeout.ms", timeout_ms.min(10_000).to_string())
        .set("message.timeout.ms", timeout_ms.min(20_000).to_string())
        .create()
        .expect("transactional producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

/// Queues `values` to `topic`-`partition` (the transaction must be begun).
pub fn send(p: &BaseProducer, topic: &str, partition: i32, values: &[&str]) {
    for v in values {
        let mut rec = BaseRecord::<str, str>::to(topic)
            .partition(partition)
            .payload(v);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    p.poll(Duration::from_millis(10));
                    rec = r;
                }
            }
        }
    }
}

/// `(offset, value)` of every record of `topic`-`partition` a consumer in `isolation` sees,
/// read from the beginning until the partition's end (the LSO for read_committed).
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    isolation: &str,
) -> Vec<(i64, String)> {
    let c: BaseConsumer = consumer_config(bootstrap, &random_group("txn-read"))
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consume {topic}-{partition}: {e}"),
            None => {}
        }
    }
    panic!("{topic}-{partition} ({isolation}) did not reach its end in {T:?}; got {out:?}")
}

/// The values only.
pub fn values(records: &[(i64, String)]) -> Vec<&str> {
    records.iter().map(|(_, v)| v.as_str()).collect()
}
