//! Committed offsets with real clients: manual and auto commit, durability across a broker
//! restart (a new consumer resumes exactly at the commit), generation fencing of commits over
//! the raw protocol, and OffsetFetch of an unknown group.

mod group_support;

use std::time::Duration;

use bytes::Bytes;
use group_support::*;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use spate_testkit::{random_group, random_topic};

fn committed(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Vec<Offset> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .map(|e| e.offset())
        .collect()
}

/// Polls until `n` records arrived (or panics), returning (partition, offset) pairs.
fn consume_n(consumer: &BaseConsumer, n: usize) -> Vec<(i32, i64)> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while out.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed {} of {n}",
            out.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            out.push((m.partition(), m.offset()));
        }
    }
    out
}

#[test]
fn manual_and_auto_commits_survive_broker_restart() {
    let mut broker = start_broker();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("commit");
    let manual_group = random_group("manual");
    let auto_group = random_group("auto");
    create_topic(&broker, &topic, 2);
    produce(&bootstrap, &topic, 2, 20);

    // Manual commit: consume from partition 0 only, commit offset 7 (the next to read).
    let manual: BaseConsumer = member_config(&bootstrap, &manual_group)
        .create()
        .expect("consumer");
    manual.subscribe(&[&topic]).expect("subscribe");
    consume_n(&manual, 10);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(7))
        .unwrap();
    tpl.add_partition_offset(&topic, 1, Offset::Offset(13))
        .unwrap();
    manual
        .commit(&tpl, CommitMode::Sync)
        .expect("manual commit");
    assert_eq!(
        committed(&manual, &topic, 2),
        vec![Offset::Offset(7), Offset::Offset(13)]
    );
    drop(manual);

    // Auto commit: read everything; the consumer commits the positions by itself.
    let mut cfg = member_config(&bootstrap, &auto_group);
    cfg.set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "true")
        .set("auto.commit.interval.ms", "200");
    let auto: BaseConsumer = cfg.create().expect("consumer");
    auto.subscribe(&[&topic]).expect("subscribe");
    consume_n(&auto, 40);
    wait_until(
        "auto commit of every position",
        Duration::from_secs(20),
        || {
            auto.poll(Duration::from_millis(50));
            committed(&auto, &topic, 2) == vec![Offset::Offset(20), Offset::Offset(20)]
        },
    );
    drop(auto);

    broker.restart();
    let bootstrap = broker.bootstrap_servers();

    // A new consumer of the manual group resumes exactly at the commits.
    let resumed: BaseConsumer = member_config(&bootstrap, &manual_group)
        .create()
        .expect("consumer");
    resumed.subscribe(&[&topic]).expect("subscribe");
    let got = consume_n(&resumed, 20);
    let first = |p: i32| got.iter().filter(|(q, _)| *q == p).map(|(_, o)| *o).min();
    assert_eq!(first(0), Some(7));
    assert_eq!(first(1), Some(13));
    assert_eq!(got.len(), 13 + 7);
    drop(resumed);

    let auto_again: BaseConsumer = member_config(&bootstrap, &auto_group)
        .create()
        .expect("consumer");
    assert_eq!(
        committed(&auto_again, &topic, 2),
        vec![Offset::Offset(20), Offset::Offset(20)]
    );
    // The reloaded groups are listed (Empty) by the coordinator.
    let listed: Vec<String> = coordinator(&broker)
        .list_groups(&[])
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert!(listed.contains(&manual_group) && listed.contains(&auto_group));
}

fn join_request(group: &str, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_session_timeout_ms(6000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(StrBytes::from_string(member_id.into()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0\0\0\0\0"))])
}

/// JoinGroup v5 with the KIP-394 two-step join; returns (member id, generation, leader).
fn raw_join(client: &mut RawClient, group: &str, member_id: &str) -> (String, i32, String) {
    let mut r = client.send(&join_request(group, member_id), 5);
    if r.error_code == ResponseError::MemberIdRequired.code() {
        let id = r.member_id.as_str().to_owned();
        r = client.send(&join_request(group, &id), 5);
    }
    assert_eq!(r.error_code, 0, "join failed");
    (
        r.member_id.as_str().to_owned(),
        r.generation_id,
        r.leader.as_str().to_owned(),
    )
}

fn raw_commit(
    client: &mut RawClient,
    topic: &str,
    group: &str,
    member: &str,
    generation: i32,
) -> i16 {
    let r = client.send(
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)])]),
        7,
    );
    r.topics[0].partitions[0].error_code
}

#[test]
fn stale_generation_commit_is_fenced_and_unknown_group_fetches_minus_one() {
    let broker = start_broker();
    let addr = broker.local_addr();
    let group = random_group("fence");
    let topic = random_topic("fence");
    create_topic(&broker, &topic, 1);
    let mut a = RawClient::connect(addr);
    let (a_id, gen1, _) = raw_join(&mut a, &group, "");
    assert_eq!(gen1, 1);
    let sync = |c: &mut RawClient, id: &str, generation: i32| {
        c.send(
            &SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_generation_id(generation)
                .with_member_id(StrBytes::from_string(id.into())),
            3,
        )
        .error_code
    };
    assert_eq!(sync(&mut a, &a_id, gen1), 0);
    assert_eq!(raw_commit(&mut a, &topic, &group, &a_id, gen1), 0);

    // b joins: a rebalance to generation 2 that a must rejoin.
    let group_b = group.clone();
    let b = std::thread::spawn(move || {
        let mut b = RawClient::connect(addr);
        raw_join(&mut b, &group_b, "")
    });
    wait_until("rebalance to start", Duration::from_secs(10), || {
        coordinator(&broker).describe_group(&group).state == "PreparingRebalance"
    });
    let (_, gen2, leader) = raw_join(&mut a, &group, &a_id);
    let (_, b_gen, _) = b.join().expect("b joined");
    assert_eq!((gen2, b_gen), (2, 2));
    assert_eq!(leader, a_id);

    // A commit from generation 1 is a zombie's: ILLEGAL_GENERATION. (CompletingRebalance
    // would answer REBALANCE_IN_PROGRESS first, so finish the rebalance.)
    assert_eq!(sync(&mut a, &a_id, gen2), 0);
    assert_eq!(
        raw_commit(&mut a, &topic, &group, &a_id, gen1),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        raw_commit(&mut a, &topic, &group, "someone-else", gen2),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(raw_commit(&mut a, &topic, &group, &a_id, gen2), 0);
    // Offsets of a partition that does not exist are refused, as Kafka does.
    assert_eq!(
        raw_commit(&mut a, "no-such-topic", &group, &a_id, gen2),
        ResponseError::UnknownTopicOrPartition.code()
    );

    let fetch = a.send(
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(random_group("nobody"))))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![0, 1])])),
        5,
    );
    assert_eq!(fetch.error_code, 0);
    let offsets: Vec<i64> = fetch.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect();
    assert_eq!(offsets, vec![-1, -1]);
}
