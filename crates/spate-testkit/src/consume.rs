//! Reading a topic back in a test: every record of every partition, `read_committed`, from the
//! beginning to the end the partition had when the read reached it, so an exactly-once test
//! sees what consumers would (committed transactions only) and nothing in flight.

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
    let (mut out, mut eof) = (Vec::new(), 0);
    let deadline = Instant::now() + READ_TIMEOUT;
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
