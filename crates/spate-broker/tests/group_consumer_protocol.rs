//! The consumer group protocol (KIP-848) with real librdkafka consumers
//! (`group.protocol=consumer`): one member joins, consumes, commits and leaves; three members
//! split six partitions with no gap or overlap and read every record once; a SIGKILLed member
//! is replaced within the broker's `group.consumer.session.timeout.ms`.

mod group_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use group_support::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use spate_testkit::child::ChildJob;
use spate_testkit::{random_group, random_topic, TestBroker};

const SESSION_TIMEOUT_MS: u64 = 3000;
const CHILD_BOOTSTRAP: &str = "SPATE_KIP848_CHILD_BOOTSTRAP";
const CHILD_GROUP: &str = "SPATE_KIP848_CHILD_GROUP";
const CHILD_TOPIC: &str = "SPATE_KIP848_CHILD_TOPIC";

/// A broker with a short consumer-protocol session and heartbeat, so that tests take seconds.
fn start() -> TestBroker {
    start_consumer_protocol_broker(&[
        ("group.consumer.min.session.timeout.ms", "1000"),
        ("group.consumer.session.timeout.ms", "3000"),
    ])
}

/// A consumer-protocol member that stores offsets only when told and gives up on a silent
/// socket after 10 s.
fn kip848_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = consumer_protocol_config(bootstrap, group);
    c.set("enable.auto.offset.store", "false")
        .set("socket.timeout.ms", "10000");
    c
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Leaves the group the way an application does: unsubscribe, then poll so that the
/// revocation librdkafka hands to the application (the consumer protocol revokes
/// incrementally) completes; librdkafka then sends the leave heartbeat (epoch -1). The
/// consumer is then forgotten rather than dropped: with `group.protocol=consumer`, rdkafka
/// 0.39's `BaseConsumer` drop keeps waiting on its close queue after librdkafka has already
/// terminated the group ("Consumer group sub-system terminated" in its `cgrp` debug log).
/// Callers check on the broker that the member left.
fn leave(consumer: BaseConsumer) {
    consumer.unsubscribe();
    wait_until(
        "the revocation to complete",
        Duration::from_secs(20),
        || {
            let _ = consumer.poll(Duration::from_millis(50));
            assigned(&consumer).is_empty()
        },
    );
    for _ in 0..10 {
        let _ = consumer.poll(Duration::from_millis(20));
    }
    std::mem::forget(consumer);
}

fn wait_for_members(broker: &TestBroker, group: &str, n: usize) {
    wait_until("the members to leave", Duration::from_secs(20), || {
        coordinator(broker)
            .consumer_group(group)
            .is_some_and(|g| g.members.len() == n)
    });
}

/// Polls once; returns the record's (partition, offset) if one came.
fn poll_one(consumer: &BaseConsumer, wait: Duration) -> Option<(i32, i64)> {
    match consumer.poll(wait) {
        Some(Ok(m)) => Some((m.partition(), m.offset())),
        Some(Err(e)) => panic!("consume error: {e}"),
        None => None,
    }
}

#[test]
fn member_joins_consumes_commits_and_leaves() {
    let broker = start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("kip848");
    let group = random_group("kip848");
    create_topic(&broker, &topic, 3);
    produce(&bootstrap, &topic, 3, 10);

    let consumer: BaseConsumer = kip848_config(&bootstrap, &group)
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0;
    while read < 30 {
        assert!(Instant::now() < deadline, "read {read} of 30");
        if let Some((p, o)) = poll_one(&consumer, Duration::from_millis(100)) {
            next.insert(p, o + 1);
            read += 1;
        }
    }
    let g = coordinator(&broker)
        .consumer_group(&group)
        .expect("a consumer group");
    let member = g.members.values().next().expect("one member");
    println!(
        "state {} group epoch {} member epoch {} partitions {:?}",
        g.state(),
        g.group_epoch,
        member.current.member_epoch,
        member.current.assigned
    );
    assert_eq!(g.members.len(), 1);
    assert!(member.current.member_epoch > 0);
    assert_eq!(member.current.assigned[&topic].len(), 3);

    let mut tpl = TopicPartitionList::new();
    for (p, o) in &next {
        tpl.add_partition_offset(&topic, *p, Offset::Offset(*o))
            .expect("tpl");
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .expect("commit with the member epoch");
    let committed = consumer
        .committed(Duration::from_secs(10))
        .expect("committed offsets");
    let committed: BTreeMap<i32, i64> = committed
        .elements()
        .iter()
        .filter_map(|e| e.offset().to_raw().map(|o| (e.partition(), o)))
        .collect();
    assert_eq!(committed, next);
    leave(consumer);
    wait_for_members(&broker, &group, 0);

    // A new member resumes exactly at the commits.
    produce(&bootstrap, &topic, 3, 1);
    let again: BaseConsumer = kip848_config(&bootstrap, &group)
        .create()
        .expect("consumer");
    again.subscribe(&[&topic]).expect("subscribe");
    let mut resumed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while resumed.len() < 3 {
        assert!(Instant::now() < deadline, "resumed {resumed:?}");
        if let Some(r) = poll_one(&again, Duration::from_millis(100)) {
            resumed.push(r);
        }
    }
    resumed.sort();
    assert_eq!(resumed, vec![(0, 10), (1, 10), (2, 10)]);
    leave(again);
    wait_for_members(&broker, &group, 0);
    println!("read 30, committed {next:?}, left; a new member resumed at {resumed:?}");
}

#[test]
fn three_members_split_six_partitions_once() {
    let broker = start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("kip848_split");
    let group = random_group("kip848_split");
    create_topic(&broker, &topic, 6);
    let members: Vec<BaseConsumer> = (0..3)
        .map(|_| {
            let c: BaseConsumer = kip848_config(&bootstrap, &group)
                .create()
                .expect("consumer");
            c.subscribe(&[&topic]).expect("subscribe");
            c
        })
        .collect();
    let started = Instant::now();
    let mut polls = 0;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no 2/2/2 split: {:?}",
            members.iter().map(assigned).collect::<Vec<_>>()
        );
        for m in &members {
            assert_eq!(
                poll_one(m, Duration::from_millis(30)),
                None,
                "nothing produced yet"
            );
            polls += 1;
        }
        let sets: Vec<BTreeSet<i32>> = members.iter().map(assigned).collect();
        let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        let stable = coordinator(&broker)
            .consumer_group(&group)
            .is_some_and(|g| g.state() == "Stable" && g.members.len() == 3);
        if stable && sets.iter().all(|s| s.len() == 2) && union.len() == 6 {
            println!(
                "split {sets:?} after {:?} ({polls} polls)",
                started.elapsed()
            );
            break;
        }
    }
    produce(&bootstrap, &topic, 6, 100);
    let mut seen: Vec<BTreeSet<(i32, i64)>> = vec![BTreeSet::new(); 3];
    let mut duplicates = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.iter().map(BTreeSet::len).sum::<usize>() < 600 {
        assert!(
            Instant::now() < deadline,
            "read {:?}",
            seen.iter().map(BTreeSet::len).collect::<Vec<_>>()
        );
        for (i, m) in members.iter().enumerate() {
            while let Some(r) = poll_one(m, Duration::from_millis(10)) {
                if !seen[i].insert(r)
                    || seen
                        .iter()
                        .enumerate()
                        .any(|(j, s)| j != i && s.contains(&r))
                {
                    duplicates += 1;
                }
            }
        }
    }
    let per_member: Vec<usize> = seen.iter().map(BTreeSet::len).collect();
    let all: BTreeSet<(i32, i64)> = seen.iter().flatten().copied().collect();
    println!(
        "records per member {per_member:?}, distinct {}, duplicates {duplicates}",
        all.len()
    );
    assert_eq!(all.len(), 600);
    assert_eq!(duplicates, 0);
    assert!(per_member.iter().all(|n| *n == 200));
    for m in members {
        leave(m);
    }
    wait_for_members(&broker, &group, 0);
}

/// The member SIGKILLed by `killed_member_is_replaced_within_session_timeout`: active only
/// in the child process. Prints its number of assigned partitions whenever it changes.
#[test]
fn kip848_child_member() {
    let (Ok(bootstrap), Ok(group), Ok(topic)) = (
        std::env::var(CHILD_BOOTSTRAP),
        std::env::var(CHILD_GROUP),
        std::env::var(CHILD_TOPIC),
    ) else {
        return;
    };
    let consumer: BaseConsumer = kip848_config(&bootstrap, &group)
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut last = usize::MAX;
    loop {
        let _ = consumer.poll(Duration::from_millis(50));
        let n = assigned(&consumer).len();
        if n != last {
            println!("{n}");
            last = n;
        }
    }
}

#[test]
fn killed_member_is_replaced_within_session_timeout() {
    let broker = start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("kip848_kill");
    let group = random_group("kip848_kill");
    create_topic(&broker, &topic, 4);
    let mut child = ChildJob::test_entry("kip848_child_member");
    child
        .env(CHILD_BOOTSTRAP, &bootstrap)
        .env(CHILD_GROUP, &group)
        .env(CHILD_TOPIC, &topic)
        .capture_stdout();
    let mut running = child.spawn();
    let survivor: BaseConsumer = kip848_config(&bootstrap, &group)
        .create()
        .expect("consumer");
    survivor.subscribe(&[&topic]).expect("subscribe");
    wait_until("a stable 2/2 split", Duration::from_secs(60), || {
        let _ = survivor.poll(Duration::from_millis(50));
        let g = coordinator(&broker).consumer_group(&group);
        assigned(&survivor).len() == 2
            && g.is_some_and(|g| g.members.len() == 2 && g.state() == "Stable")
    });
    running.assert_alive();
    let printed = running.kill();
    let killed_at = Instant::now();
    println!("child member SIGKILLed holding 2 partitions (it printed {printed:?})");
    wait_until(
        "the survivor to get all 4 partitions",
        Duration::from_secs(30),
        || {
            let _ = survivor.poll(Duration::from_millis(50));
            assigned(&survivor).len() == 4
        },
    );
    let took = killed_at.elapsed();
    println!(
        "survivor owns all 4 partitions {took:?} after the kill (session timeout {SESSION_TIMEOUT_MS} ms)"
    );
    assert!(
        took >= Duration::from_millis(SESSION_TIMEOUT_MS / 2),
        "replaced before the session could time out: {took:?}"
    );
    assert!(
        took < Duration::from_millis(SESSION_TIMEOUT_MS + 3000),
        "took {took:?}"
    );
    // Everything is readable by the survivor, including the dead member's partitions.
    produce(&bootstrap, &topic, 4, 5);
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 20 {
        assert!(Instant::now() < deadline, "read {} of 20", got.len());
        if let Some(r) = poll_one(&survivor, Duration::from_millis(100)) {
            got.insert(r);
        }
    }
    println!("survivor read {} records from all 4 partitions", got.len());
    leave(survivor);
    wait_for_members(&broker, &group, 0);
}

#[test]
fn membership_survives_a_broker_restart() {
    let mut broker = start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("kip848_restart");
    let group = random_group("kip848_restart");
    create_topic(&broker, &topic, 2);
    let consumer: BaseConsumer = kip848_config(&bootstrap, &group)
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    wait_until("the assignment", Duration::from_secs(30), || {
        let _ = consumer.poll(Duration::from_millis(50));
        assigned(&consumer).len() == 2
    });
    // A second member comes and goes, so the epochs are past what a fresh group (one that
    // was not stored) would start at after the restart.
    let other: BaseConsumer = kip848_config(&bootstrap, &group)
        .create()
        .expect("consumer");
    other.subscribe(&[&topic]).expect("subscribe");
    wait_until("a 1/1 split", Duration::from_secs(30), || {
        let _ = consumer.poll(Duration::from_millis(20));
        let _ = other.poll(Duration::from_millis(20));
        assigned(&other).len() == 1 && assigned(&consumer).len() == 1
    });
    leave(other);
    wait_for_members(&broker, &group, 1);
    wait_until("both partitions back", Duration::from_secs(30), || {
        let _ = consumer.poll(Duration::from_millis(50));
        assigned(&consumer).len() == 2
            && coordinator(&broker)
                .consumer_group(&group)
                .is_some_and(|g| g.state() == "Stable")
    });
    let before = coordinator(&broker).consumer_group(&group).expect("group");
    let member = before.members.values().next().expect("member").clone();
    assert!(before.group_epoch >= 3, "{}", before.group_epoch);
    broker.restart();
    // The member keeps heartbeating with its epoch; the group epoch does not move.
    produce(&bootstrap, &topic, 2, 5);
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 10 {
        assert!(
            Instant::now() < deadline,
            "read {} of 10 after the restart",
            got.len()
        );
        // The connection drops with the restart: transport errors are expected, not fatal.
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                got.insert((m.partition(), m.offset()));
            }
            Some(Err(e)) => println!("during the restart: {e}"),
            None => {}
        }
    }
    let after = coordinator(&broker)
        .consumer_group(&group)
        .expect("group after restart");
    let same = &after.members[&member.member_id];
    println!(
        "group epoch {} -> {}, member epoch {} -> {}, partitions {:?} -> {:?}",
        before.group_epoch,
        after.group_epoch,
        member.current.member_epoch,
        same.current.member_epoch,
        member.current.assigned,
        same.current.assigned
    );
    assert_eq!(after.group_epoch, before.group_epoch);
    assert_eq!(same.current.member_epoch, member.current.member_epoch);
    assert_eq!(same.current.assigned, member.current.assigned);
    leave(consumer);
    wait_for_members(&broker, &group, 0);
}
