//! Several idempotent producers write to the same partitions while a consumer reads them live:
//! every record arrives exactly once, each producer's records in the order it sent them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use spate_testkit::clients::{consumer_config, producer_config};
use spate_testkit::{random_group, random_topic, TestBroker};

const PRODUCERS: u32 = 4;
const PER_PRODUCER: u32 = 20_000;
const PARTITIONS: i32 = 2;

#[test]
fn concurrent_producers_and_live_consumer() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = random_topic("concurrent");
    broker.create_topic(&topic, PARTITIONS);
    let bootstrap = broker.bootstrap_servers();

    let consumer: BaseConsumer = consumer_config(&bootstrap, &random_group("concurrent"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
            std::thread::spawn(move || {
                let producer: BaseProducer = producer_config(&bootstrap)
                    .set("enable.idempotence", "true")
                    .set("linger.ms", "2")
                    .create()
                    .unwrap();
                for seq in 0..PER_PRODUCER {
                    let key = id.to_string();
                    let value = seq.to_string();
                    let mut rec = BaseRecord::to(&topic)
                        .key(&key)
                        .payload(&value)
                        .partition((seq % PARTITIONS as u32) as i32);
                    loop {
                        match producer.send(rec) {
                            Ok(()) => break,
                            Err((_, back)) => {
                                rec = back;
                                producer.poll(Duration::from_millis(1));
                            }
                        }
                    }
                    producer.poll(Duration::ZERO);
                }
                producer.flush(Duration::from_secs(60)).unwrap();
            })
        })
        .collect();

    // (producer, partition) -> next sequence expected.
    let mut next: HashMap<(u32, i32), u32> = HashMap::new();
    let mut last_offset: HashMap<i32, i64> = HashMap::new();
    let total = PRODUCERS * PER_PRODUCER;
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while got < total {
        assert!(Instant::now() < deadline, "consumed {got} of {total}");
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.unwrap();
        let producer: u32 = std::str::from_utf8(m.key().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        let seq: u32 = std::str::from_utf8(m.payload().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        let p = m.partition();
        let expected = next.entry((producer, p)).or_insert(p as u32);
        assert_eq!(seq, *expected, "producer {producer} partition {p}");
        *expected += PARTITIONS as u32;
        let last = last_offset.entry(p).or_insert(-1);
        assert_eq!(m.offset(), *last + 1, "offsets are dense");
        *last = m.offset();
        got += 1;
    }
    for p in producers {
        p.join().unwrap();
    }
    assert!(
        consumer.poll(Duration::from_millis(300)).is_none(),
        "no duplicates"
    );
}
