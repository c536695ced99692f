//! Durable membership: a Stable group of static rdkafka members, the broker SIGKILLed under it
//! and restarted on the same data directory and port. The group comes back Stable with the same
//! members and assignments, and no member sees an assignment change (no rebalance).
//!
//! The broker runs in a child process: this test binary re-executes itself with
//! `SPATE_MEMBERSHIP_CRASH=<dir>,<port>` set, which turns `membership_crash_child_broker` into
//! the broker's main.

mod group_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use std::time::Duration;

use group_support::{member_config, wait_until, Member, RawClient};
use kafka_protocol::messages::{CreateTopicsRequest, DescribeGroupsRequest, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use spate_broker::group::consumer_protocol::assignment_partitions;
use spate_testkit::child::Running;
use spate_testkit::{random_group, random_topic, ChildJob};

const CHILD: &str = "SPATE_MEMBERSHIP_CRASH";
const PARTITIONS: i32 = 6;

/// The broker side, active only in the child process.
#[test]
fn membership_crash_child_broker() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (dir, port) = spec.split_once(',').expect("dir,port");
    let mut config = spate_broker::BrokerConfig::default()
        .listen(format!("127.0.0.1:{port}").parse().expect("address"))
        .data_dir(dir);
    config
        .set("group.min.session.timeout.ms", "1000")
        .expect("config");
    config.group.initial_rebalance_delay_ms = 0;
    let broker = spate_broker::Broker::start_blocking(config).expect("broker starts");
    spate_testkit::child::announce_listening(broker.local_addr());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Starts the child broker on `dir` and `port`; it is SIGKILLed when the returned handle is
/// dropped.
fn spawn_broker(dir: &std::path::Path, port: u16) -> (Running, SocketAddr) {
    let mut job = ChildJob::test_entry("membership_crash_child_broker");
    job.env(CHILD, format!("{},{port}", dir.display()))
        .capture_stdout()
        .discard_stderr();
    let mut child = job.spawn();
    let addr = child.listening_addr(Duration::from_secs(60));
    (child, addr)
}

/// The group as DescribeGroups shows it: state, and member id → (instance id, partitions).
type Described = (String, BTreeMap<String, (String, BTreeSet<i32>)>);

fn describe(addr: SocketAddr, group: &str) -> Option<Described> {
    let mut client = std::panic::catch_unwind(|| RawClient::connect(addr)).ok()?;
    let r = client.send(
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]),
        5,
    );
    let g = r.groups.first()?;
    let members = g
        .members
        .iter()
        .map(|m| {
            let parts = assignment_partitions(&m.member_assignment)
                .unwrap_or_default()
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            let instance = m
                .group_instance_id
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            (m.member_id.as_str().to_owned(), (instance, parts))
        })
        .collect();
    Some((g.group_state.as_str().to_owned(), members))
}

fn balanced(d: &Described, members: usize) -> bool {
    let all: Vec<i32> = d.1.values().flat_map(|(_, p)| p.iter().copied()).collect();
    let mut sorted = all.clone();
    sorted.sort();
    d.0 == "Stable" && d.1.len() == members && sorted == (0..PARTITIONS).collect::<Vec<_>>()
}

#[test]
fn static_members_keep_their_assignment_when_the_broker_is_sigkilled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (child, addr) = spawn_broker(dir.path(), port);
    let topic = random_topic("durable-members");
    let group = random_group("durable-members");
    let created = RawClient::connect(addr).send(
        &CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.clone())))
                .with_num_partitions(PARTITIONS)
                .with_replication_factor(1),
        ]),
        4,
    );
    assert_eq!(created.topics[0].error_code, 0);
    let bootstrap = addr.to_string();
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let mut c = member_config(&bootstrap, &group);
            c.set("group.instance.id", format!("instance-{i}"))
                .set("session.timeout.ms", "10000");
            Member::start(c, &topic)
        })
        .collect();
    wait_until(
        "three static members balanced",
        Duration::from_secs(60),
        || {
            describe(addr, &group).is_some_and(|d| balanced(&d, 3))
                && members.iter().all(|m| !m.partitions().is_empty())
        },
    );
    // Let the last assignment settle in every client before taking the picture.
    std::thread::sleep(Duration::from_millis(500));
    let before = describe(addr, &group).expect("described");
    let histories: Vec<usize> = members
        .iter()
        .map(|m| m.history.lock().unwrap().len())
        .collect();
    let owned: Vec<BTreeSet<i32>> = members.iter().map(Member::partitions).collect();

    drop(child); // SIGKILL
    let (_child, addr) = spawn_broker(dir.path(), port);
    // Several heartbeat intervals and a few client retries after the restart.
    std::thread::sleep(Duration::from_secs(4));
    let after = describe(addr, &group).expect("described after restart");
    let histories_after: Vec<usize> = members
        .iter()
        .map(|m| m.history.lock().unwrap().len())
        .collect();
    let owned_after: Vec<BTreeSet<i32>> = members.iter().map(Member::partitions).collect();
    let changed = histories_after
        .iter()
        .zip(&histories)
        .filter(|(a, b)| a != b)
        .count();
    println!(
        "broker SIGKILLed under 3 static members: group {} -> {}, members kept {}/{}, \
         members whose assignment changed: {changed}",
        before.0,
        after.0,
        after
            .1
            .keys()
            .filter(|id| before.1.contains_key(*id))
            .count(),
        before.1.len()
    );
    assert_eq!(after, before, "membership after the restart");
    assert_eq!(owned_after, owned, "assignments as the clients see them");
    assert_eq!(changed, 0, "no member went through a rebalance");
    drop(members);
}
