//! Regular-expression subscriptions of the consumer group protocol (KIP-848's
//! `SubscribedTopicRegex`): a librdkafka consumer with `group.protocol=consumer` subscribing to
//! `^prefix.*` hands the pattern to the broker (librdkafka ≥ 2.10 does; the vendored one is
//! 2.12.1), which assigns the matching topics and, once a matching topic is created, assigns
//! it too at the next heartbeat. Over the raw protocol, a pattern RE2 refuses gets Kafka's
//! INVALID_REGULAR_EXPRESSION.

mod group_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use group_support::*;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, GroupId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use spate_testkit::{random_group, random_topic, TestBroker};

/// A broker with a short consumer-protocol heartbeat, so that a new topic is picked up fast.
fn start() -> TestBroker {
    start_consumer_protocol_broker(&[])
}

/// A consumer-protocol member that refreshes metadata every 500 ms, so a new matching topic is
/// seen soon.
fn kip848_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = consumer_protocol_config(bootstrap, group);
    c.set("topic.metadata.refresh.interval.ms", "500");
    c
}

/// Polls until `n` distinct records of `topic` were read; returns them.
fn read_from(consumer: &BaseConsumer, topic: &str, n: usize) -> BTreeSet<(i32, i64)> {
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "read {} of {n} records of {topic}",
            got.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.topic() == topic => {
                got.insert((m.partition(), m.offset()));
            }
            Some(Ok(m)) => panic!("a record of {} which the regex does not match", m.topic()),
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    got
}

#[test]
fn a_regex_subscription_is_resolved_by_the_broker_and_follows_new_topics() {
    let broker = start();
    let bootstrap = broker.bootstrap_servers();
    let prefix = random_topic("kip848re");
    let (first, later, unrelated) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        format!("x{prefix}-c"),
    );
    let group = random_group("kip848re");
    create_topic(&broker, &first, 2);
    create_topic(&broker, &unrelated, 1);
    produce(&bootstrap, &first, 2, 5);
    produce(&bootstrap, &unrelated, 1, 5);

    let consumer: BaseConsumer = kip848_config(&bootstrap, &group)
        .create()
        .expect("consumer");
    let pattern = format!("^{prefix}-.*");
    consumer.subscribe(&[&pattern]).expect("subscribe");
    let a = read_from(&consumer, &first, 10);
    let g = coordinator(&broker).consumer_group(&group).expect("group");
    let member = g.members.values().next().expect("a member");
    let regex = member.subscribed_regex.clone();
    println!(
        "the broker holds regex {regex:?}, resolved to {:?}",
        g.resolved_regexes
    );
    assert!(
        regex.as_deref().is_some_and(|r| r.contains(&pattern)),
        "{regex:?}"
    );
    assert!(member.subscribed.is_empty(), "{:?}", member.subscribed);

    let epoch_before = g.group_epoch;
    let created = Instant::now();
    create_topic(&broker, &later, 3);
    produce(&bootstrap, &later, 3, 4);
    let b = read_from(&consumer, &later, 12);
    let g = coordinator(&broker).consumer_group(&group).expect("group");
    let member = g.members.values().next().expect("a member");
    println!(
        "read {} records of {first}; {} of {later} created afterwards, read {:?} after its \
         creation; group epoch {epoch_before} -> {}; assigned {:?}",
        a.len(),
        b.len(),
        created.elapsed(),
        g.group_epoch,
        member.current.assigned
    );
    assert!(g.group_epoch > epoch_before);
    assert_eq!(
        member.current.assigned.keys().cloned().collect::<Vec<_>>(),
        vec![first.clone(), later.clone()]
    );
    // rdkafka 0.39's BaseConsumer hangs in drop with group.protocol=consumer (see
    // group_consumer_protocol.rs); the broker forgets the member at its session timeout.
    consumer.unsubscribe();
    std::mem::forget(consumer);
}

#[test]
fn an_invalid_regex_is_kafkas_invalid_regular_expression() {
    let broker = start();
    let group = random_group("kip848re_bad");
    let mut client = RawClient::connect(broker.local_addr());
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.clone())))
        .with_member_id(StrBytes::from_static_str("m-1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![]))
        .with_subscribed_topic_regex(Some(StrBytes::from_static_str("orders-(")))
        .with_topic_partitions(Some(vec![]));
    let response = client.send(&request, 1);
    println!(
        "ConsumerGroupHeartbeat v1 with regex `orders-(`: error {} {:?}",
        response.error_code, response.error_message
    );
    assert_eq!(
        response.error_code,
        ResponseError::InvalidRegularExpression.code()
    );
    assert!(coordinator(&broker).consumer_group(&group).is_none());
    // A valid one from the same connection joins.
    let ok = client.send(
        &request.with_subscribed_topic_regex(Some(StrBytes::from_static_str("orders-.*"))),
        1,
    );
    assert_eq!(ok.error_code, 0, "{:?}", ok.error_message);
    assert_eq!(ok.member_epoch, 1);
}
