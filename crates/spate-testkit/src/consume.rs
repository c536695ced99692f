//! Reading a topic back in a test: every record of every partition, `read_committed`, from the
//! beginning to the end the partition had when the read reached it, so an exactly-once test
//! sees what consumers would (committed transactions only) and nothing in flight.
//!
//! A `read_committed` reader stops at the last stable offset: a transaction a killed producer
//! left open hides every record after its first one — committed or not — until its
//! coordinator aborts it (`transaction.timeout.ms` plus up to the broker's
//! `transaction.abort.timed.out.transaction.cleanup.interval.ms`). So the reader first waits
//! until no transaction is open on the topic (each partition's last stable offset has reached
//! the high watermark it had), or it would report that tail as lost.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::clients::consumer_config;

/// A record read back: key (empty when it had none) and value (`None` for a tombstone).
pub type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// How long reading a topic to its end may take before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Every record of partitions `0..partitions` of `topic`, read `read_committed` to each
/// partition's end, partition by partition in offset order of arrival. Panics (the test's
/// failure report) when the end is not reached within 30 s or a read fails.
pub fn read_committed(bootstrap: &str, topic: &str, partitions: i32) -> Vec<KeyValue> {
    let consumer: BaseConsumer = consumer_config(bootstrap, "testkit-read-committed")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("a read_committed consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("a partition of the topic");
    }
    consumer.assign(&tpl).expect("assign the partitions");
    let deadline = Instant::now() + READ_TIMEOUT;
    wait_stable(bootstrap, &consumer, topic, partitions, deadline);
    let (mut out, mut eof) = (Vec::new(), 0);
    while eof < partitions {
        assert!(
            Instant::now() < deadline,
            "reading {topic} did not reach its end"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().map(<[u8]>::to_vec),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => eof += 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Waits until the transactions open on `topic` when called have completed: each partition's
/// last stable offset (`consumer` reads `read_committed`) reaches the high watermark a
/// `read_uncommitted` ListOffsets gave. Panics at `deadline`.
fn wait_stable(
    bootstrap: &str,
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    deadline: Instant,
) {
    let peek: BaseConsumer = consumer_config(bootstrap, "testkit-read-uncommitted")
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("a read_uncommitted consumer");
    let timeout = Duration::from_secs(10);
    for p in 0..partitions {
        let (_, high_watermark) = peek
            .fetch_watermarks(topic, p, timeout)
            .unwrap_or_else(|e| panic!("the high watermark of {topic}/{p}: {e}"));
        loop {
            let (_, stable) = consumer
                .fetch_watermarks(topic, p, timeout)
                .unwrap_or_else(|e| panic!("the last stable offset of {topic}/{p}: {e}"));
            if stable >= high_watermark {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{topic}/{p} kept a transaction open: last stable offset {stable}, high \
                 watermark {high_watermark}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
