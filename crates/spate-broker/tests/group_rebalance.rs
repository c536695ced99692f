//! Real rdkafka consumers in one group against the embedded broker: partitions are split with
//! no overlap and no gap, move when a member closes (LeaveGroup) and when a member process is
//! SIGKILLed (session timeout), and cooperative-sticky rebalances incrementally. A topic that
//! gains partitions under eager and cooperative-sticky members takes one generation, as in
//! Kafka.

mod group_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use group_support::*;
use spate_testkit::{random_group, random_topic, ChildJob};

const CHILD_ENV: &str = "SPATE_GROUP_TEST_CHILD";

/// Not a test of its own: when re-invoked with `SPATE_GROUP_TEST_CHILD=bootstrap,group,topic`
/// this runs one group member until the parent kills it; otherwise it returns at once.
#[test]
fn child_group_member() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(',').collect();
    let [bootstrap, group, topic] = parts[..] else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let member = Member::start(member_config(bootstrap, group), topic);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let _ = member.partitions();
    }
}

#[test]
fn three_members_split_partitions_and_survive_close_and_sigkill() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("split");
    let group = random_group("split");
    create_topic(&broker, &topic, 6);
    produce(&bootstrap, &topic, 6, 5);

    let a = Member::start(member_config(&bootstrap, &group), &topic);
    let b = Member::start(member_config(&bootstrap, &group), &topic);
    let child = ChildJob::test_entry("child_group_member")
        .env(CHILD_ENV, format!("{bootstrap},{group},{topic}"))
        .discard_stderr()
        .spawn();

    wait_until(
        "three members sharing six partitions",
        Duration::from_secs(60),
        || group_view(&broker, &group).is_balanced(3, 6),
    );
    let view = group_view(&broker, &group);
    assert!(view.members.values().all(|p| p.len() == 2), "{view:?}");
    // librdkafka's own view agrees with the coordinator's for the in-process members.
    wait_until(
        "consumers applying assignments",
        Duration::from_secs(20),
        || {
            let (pa, pb) = (a.partitions(), b.partitions());
            pa.len() == 2 && pb.len() == 2 && pa.is_disjoint(&pb)
        },
    );

    // A clean close: LeaveGroup moves b's partitions to the others right away.
    let generation_before = view.generation;
    let closed_at = Instant::now();
    b.close();
    wait_until("two members after close", Duration::from_secs(30), || {
        group_view(&broker, &group).is_balanced(2, 6)
    });
    assert!(group_view(&broker, &group).generation > generation_before);
    assert!(
        closed_at.elapsed() < Duration::from_secs(5),
        "a closing member leaves at once, without waiting for its session to expire"
    );

    // SIGKILL: no LeaveGroup; the session timeout (6 s) removes the child.
    child.kill();
    let killed_at = Instant::now();
    wait_until("one member after SIGKILL", Duration::from_secs(40), || {
        group_view(&broker, &group).is_balanced(1, 6)
    });
    assert!(
        killed_at.elapsed() >= Duration::from_secs(3),
        "the killed member was removed by its session timeout, not earlier"
    );
    wait_until("a owning every partition", Duration::from_secs(20), || {
        a.partitions() == (0..6).collect::<BTreeSet<_>>()
    });
    // Everything produced was consumed by someone; a saw at least its own partitions.
    assert!(!a.consumed.lock().unwrap().is_empty());
    a.close();
}

#[test]
fn cooperative_sticky_rebalances_incrementally() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("coop");
    let group = random_group("coop");
    create_topic(&broker, &topic, 6);

    let coop = |g: &str| {
        let mut c = member_config(&bootstrap, g);
        c.set("partition.assignment.strategy", "cooperative-sticky");
        c
    };
    let a = Member::start(coop(&group), &topic);
    wait_until("a owning all six", Duration::from_secs(30), || {
        a.partitions().len() == 6 && group_view(&broker, &group).is_balanced(1, 6)
    });
    let b = Member::start(coop(&group), &topic);
    wait_until("a and b sharing", Duration::from_secs(60), || {
        let v = group_view(&broker, &group);
        v.is_balanced(2, 6) && a.partitions().len() == 3 && b.partitions().len() == 3
    });
    assert!(a.partitions().is_disjoint(&b.partitions()));
    assert_eq!(
        group_view(&broker, &group)
            .members
            .values()
            .map(|p| p.len())
            .collect::<Vec<_>>(),
        vec![3, 3]
    );
    // Incremental: a only ever gave partitions up; it never went through an empty assignment
    // after its first one (an eager rebalance revokes everything first).
    let history = a.history.lock().unwrap().clone();
    let first_full = history
        .iter()
        .position(|s| s.len() == 6)
        .expect("a had all six");
    for window in history[first_full..].windows(2) {
        assert!(
            window[1].is_subset(&window[0]),
            "a's assignment grew or changed during an incremental rebalance: {history:?}"
        );
    }
    assert!(
        history[first_full..].iter().all(|s| !s.is_empty()),
        "cooperative rebalance revoked everything: {history:?}"
    );
    a.close();
    b.close();
}

#[test]
fn roundrobin_assignor_works() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("rr");
    let group = random_group("rr");
    create_topic(&broker, &topic, 4);
    let rr = || {
        let mut c = member_config(&bootstrap, &group);
        c.set("partition.assignment.strategy", "roundrobin");
        c
    };
    let a = Member::start(rr(), &topic);
    let b = Member::start(rr(), &topic);
    wait_until("two roundrobin members", Duration::from_secs(60), || {
        group_view(&broker, &group).is_balanced(2, 4)
    });
    let d = coordinator(&broker).describe_group(&group);
    assert_eq!(d.protocol_data, "roundrobin");
    // Roundrobin over one topic deals partitions alternately.
    let mut sets: Vec<Vec<i32>> = group_view(&broker, &group)
        .members
        .values()
        .map(|s| s.iter().copied().collect())
        .collect();
    sets.sort();
    assert_eq!(sets, vec![vec![0, 2], vec![1, 3]]);
    a.close();
    b.close();
}

/// Two members of `strategy` over 4 partitions; the topic grows to 6. Returns the generations
/// the growth took and each member's assignment history from the balanced 2+2 on.
fn grow_topic_under(strategy: &str) -> (i32, Vec<Vec<BTreeSet<i32>>>) {
    let broker = start_broker();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("grow");
    let group = random_group("grow");
    create_topic(&broker, &topic, 4);
    let config = || {
        let mut c = member_config(&bootstrap, &group);
        c.set("partition.assignment.strategy", strategy);
        c
    };
    let members = [
        Member::start(config(), &topic),
        Member::start(config(), &topic),
    ];
    wait_until(
        "two members over 4 partitions",
        Duration::from_secs(60),
        || {
            group_view(&broker, &group).is_balanced(2, 4)
                && members.iter().all(|m| m.partitions().len() == 2)
        },
    );
    let before = group_view(&broker, &group).generation;
    let start: Vec<usize> = members
        .iter()
        .map(|m| m.history.lock().unwrap().len())
        .collect();
    broker
        .state()
        .topics
        .create_partitions(&topic, 6, false)
        .expect("add partitions");
    wait_until(
        "two members over 6 partitions",
        Duration::from_secs(60),
        || {
            group_view(&broker, &group).is_balanced(2, 6)
                && members.iter().all(|m| m.partitions().len() == 3)
        },
    );
    // A second rebalance, if one were coming, would start within a few heartbeats.
    std::thread::sleep(Duration::from_secs(2));
    let generations = group_view(&broker, &group).generation - before;
    let histories = members
        .iter()
        .zip(start)
        .map(|(m, from)| m.history.lock().unwrap()[from - 1..].to_vec())
        .collect();
    for m in members {
        m.close();
    }
    (generations, histories)
}

#[test]
fn a_new_partition_rebalances_once_eager_and_cooperative() {
    let (eager, eager_history) = grow_topic_under("range");
    let (coop, coop_history) = grow_topic_under("cooperative-sticky");
    println!(
        "topic grown from 4 to 6 partitions under two members: range (eager) took {eager} \
         generation(s), assignments {eager_history:?}; cooperative-sticky took {coop}, \
         assignments {coop_history:?}"
    );
    // Kafka: the leader sees the new partitions in its metadata and rejoins; one generation
    // assigns them. Eager members give everything up first; cooperative ones keep theirs.
    assert_eq!(eager, 1, "{eager_history:?}");
    // A cooperative follower sends its owned partitions in its subscription, so when its own
    // metadata refresh notices the growth only after the leader's rebalance, its rejoin carries
    // changed metadata and Kafka's coordinator rebalances once more (GroupCoordinator: a Stable
    // group rebalances on a follower's JoinGroup whose protocols changed). That generation moves
    // nothing; what must hold is one assignment change per member and no partition lost.
    assert!(
        (1..=2).contains(&coop),
        "cooperative growth took {coop} generations: {coop_history:?}"
    );
    for history in &coop_history {
        let mut distinct = history.clone();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            2,
            "a cooperative member's assignment changed more than once: {history:?}"
        );
    }
    for history in &coop_history {
        for w in history.windows(2) {
            assert!(
                w[0].is_subset(&w[1]),
                "a cooperative member lost a partition: {history:?}"
            );
        }
    }
    assert!(
        eager_history
            .iter()
            .all(|h| h.iter().any(BTreeSet::is_empty)),
        "eager members revoke everything before the new assignment: {eager_history:?}"
    );
}
