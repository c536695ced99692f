//! One million small records through real librdkafka clients: batching producer, then a
//! consumer that must see every record exactly once and in order per partition. Prints the
//! throughput it observed (a sanity check, not a benchmark).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use spate_testkit::clients::{consumer_config, producer_config};
use spate_testkit::{random_group, random_topic, TestBroker};

const RECORDS: u64 = 1_000_000;
const PARTITIONS: i32 = 4;

#[test]
fn one_million_records_round_trip() {
    spate_testkit::init_logging();
    let broker =
        TestBroker::start_with(spate_broker::BrokerConfig::default().num_partitions(PARTITIONS));
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("bulk");

    let producer: BaseProducer = producer_config(&bootstrap)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let started = Instant::now();
    let mut bytes = 0u64;
    for i in 0..RECORDS {
        let value = i.to_be_bytes();
        let partition = (i % PARTITIONS as u64) as i32;
        let mut rec = BaseRecord::<(), _>::to(&topic)
            .payload(&value[..])
            .partition(partition);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert_eq!(
                        e.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::QueueFull),
                        "{e}"
                    );
                    rec = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
        bytes += value.len() as u64;
        if i % 10_000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let produce_secs = started.elapsed().as_secs_f64();

    let consumer: BaseConsumer = consumer_config(&bootstrap, &random_group("bulk"))
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let mut next_value = [0u64; PARTITIONS as usize];
    for (p, n) in next_value.iter_mut().enumerate() {
        *n = p as u64;
    }
    let mut got = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while got < RECORDS {
        assert!(Instant::now() < deadline, "consumed {got} of {RECORDS}");
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.unwrap();
        let p = m.partition() as usize;
        let v = u64::from_be_bytes(m.payload().unwrap().try_into().unwrap());
        assert_eq!(v, next_value[p], "partition {p} offset {}", m.offset());
        assert_eq!(m.offset() as u64, v / PARTITIONS as u64);
        next_value[p] += PARTITIONS as u64;
        got += 1;
    }
    let consume_secs = started.elapsed().as_secs_f64();
    println!(
        "produced {RECORDS} records ({bytes} value bytes) in {produce_secs:.2}s = {:.0} rec/s; consumed in {consume_secs:.2}s = {:.0} rec/s",
        RECORDS as f64 / produce_secs,
        RECORDS as f64 / consume_secs
    );
}
