//! Retention: with a tiny `segment.bytes` and `retention.bytes` set through AlterConfigs and a
//! short `log.retention.check.interval.ms`, old segments are deleted, the log start offset
//! advances, and a consumer positioned below it gets OFFSET_OUT_OF_RANGE.

use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use spate_broker::BrokerConfig;
use spate_testkit::clients::{admin_config, consumer_config, producer_config};
use spate_testkit::{random_group, random_topic, TestBroker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments() {
    spate_testkit::init_logging();
    let broker =
        TestBroker::start_with(BrokerConfig::default().log_retention_check_interval_ms(100));
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("retention");
    let admin: AdminClient<DefaultClientContext> = admin_config(&bootstrap).create().unwrap();
    admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(&topic))
                .set("segment.bytes", "1024")
                .set("retention.bytes", "2048")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();

    // One record per batch, ~300 bytes each: about three batches per segment.
    let producer: BaseProducer = producer_config(&bootstrap)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .unwrap();
    let value = "v".repeat(200);
    tokio::task::block_in_place(|| {
        for _ in 0..60 {
            producer
                .send(BaseRecord::<(), _>::to(&topic).payload(&value).partition(0))
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    });

    let partition = broker.state().topics.partition(&topic, 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while partition.log().log_start_offset() == 0 {
        assert!(Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = partition.log().log_start_offset();
    assert!(start > 0 && start < 60, "log start offset {start}");
    assert!(
        partition.log().size_bytes() <= 2048 + 1024,
        "{} bytes kept",
        partition.log().size_bytes()
    );
    assert_eq!(partition.log().log_end_offset(), 60);

    // A consumer that insists on offset 0 with auto.offset.reset=error is told it is gone.
    let consumer: BaseConsumer = consumer_config(&bootstrap, &random_group("retention"))
        .set("auto.offset.reset", "error")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(0))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let err = tokio::task::block_in_place(|| loop {
        assert!(Instant::now() < deadline, "no OFFSET_OUT_OF_RANGE");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Err(e)) => break e,
            Some(Ok(_)) => panic!("read a record below the log start offset"),
            None => {}
        }
    });
    assert!(
        matches!(
            err,
            KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange)
                | KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset)
        ),
        "{err:?}"
    );

    // From the earliest offset the consumer reads exactly what retention kept.
    let consumer: BaseConsumer = consumer_config(&bootstrap, &random_group("retention"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let start = partition.log().log_start_offset();
    let mut offsets = Vec::new();
    tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while offsets.len() < (60 - start) as usize {
            assert!(Instant::now() < deadline);
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                use rdkafka::Message;
                offsets.push(m.unwrap().offset());
            }
        }
    });
    assert_eq!(offsets, (start..60).collect::<Vec<_>>());
}
