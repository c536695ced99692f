//! `spate groups` against the embedded broker: describe shows members, committed offsets and
//! lag; reset-offsets plans by default, applies with --execute, and refuses a group with active
//! members; list and delete.

mod common;

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use spate_testkit::clients::consumer_config;
use spate_testkit::{poll_until, random_group, random_topic, wait_until, TestBroker};

/// Produces `per_partition` records `"{p}-{i}"` to each of partitions 0 and 1.
fn produce(bootstrap: &str, topic: &str, per_partition: usize) {
    let records =
        (0..per_partition).flat_map(|i| (0..2).map(move |p| (p, None, format!("{p}-{i}"))));
    spate_testkit::produce::produce(bootstrap, topic, records);
}

/// The describe rows of `topic`: partition → (current offset, log end offset, lag, consumer id).
fn describe_rows(bootstrap: &str, group: &str, topic: &str) -> (String, Vec<Vec<String>>) {
    let run = common::spate(&["groups", "describe", group, "--bootstrap-server", bootstrap])
        .success("groups describe");
    let rows = run
        .stdout
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<String>>()
        })
        .filter(|cols| {
            cols.first().map(String::as_str) == Some(group)
                && cols.get(1).map(String::as_str) == Some(topic)
        })
        .collect();
    (run.stdout, rows)
}

fn groups(args: &[&str], bootstrap: &str) -> common::Run {
    let mut all = vec!["groups"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--bootstrap-server", bootstrap]);
    common::spate(&all)
}

#[test]
fn describe_reset_list_and_delete() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("cligroups");
    let group = random_group("cligroups");
    broker.create_topic(&topic, 2);
    produce(&bootstrap, &topic, 10);

    // An active member that committed 4 and 6.
    let mut cfg = consumer_config(&bootstrap, &group);
    cfg.set("client.id", "describe-me");
    let consumer: BaseConsumer = cfg.create().expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    wait_until("the assignment", Duration::from_secs(30), || {
        consumer.poll(Duration::from_millis(100));
        consumer.assignment().map(|a| a.count()).unwrap_or(0) >= 2
    });
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(4))
        .unwrap();
    tpl.add_partition_offset(&topic, 1, Offset::Offset(6))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");

    let (out, rows) = describe_rows(&bootstrap, &group, &topic);
    assert!(
        out.contains("has 1 active member(s) (state: Stable"),
        "{out}"
    );
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(&rows[0][2..6], &["0", "4", "10", "6"], "{out}");
    assert_eq!(&rows[1][2..6], &["1", "6", "10", "4"], "{out}");
    assert!(rows[0][6].starts_with("describe-me-"), "consumer id: {out}");
    assert_eq!(rows[0][7], "/127.0.0.1", "{out}");
    assert_eq!(rows[0][8], "describe-me", "{out}");
    assert!(out.contains("#PARTITIONS"), "{out}");

    // An active group cannot be reset or deleted.
    groups(
        &[
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
            "--execute",
        ],
        &bootstrap,
    )
    .failure("reset of an active group", "inactive");
    groups(&["delete", &group], &bootstrap).failure("delete of an active group", "not empty");

    consumer.poll(Duration::from_millis(100));
    drop(consumer); // LeaveGroup
    let mut out = String::new();
    let empty = poll_until(Duration::from_secs(20), || {
        out = describe_rows(&bootstrap, &group, &topic).0;
        out.contains("no active members (state: Empty)")
    });
    assert!(empty, "group did not become empty: {out}");

    // Dry run by default: the plan is printed, nothing changes.
    let plan = groups(
        &[
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-offset",
            "3",
        ],
        &bootstrap,
    )
    .success("dry run");
    assert!(plan.stdout.contains("NEW-OFFSET"), "{}", plan.stdout);
    assert!(plan.stdout.contains("Dry run"), "{}", plan.stdout);
    let (_, rows) = describe_rows(&bootstrap, &group, &topic);
    assert_eq!((rows[0][3].as_str(), rows[1][3].as_str()), ("4", "6"));

    let cases: [(&[&str], &str, &str); 5] = [
        (&["--to-offset", "3"], "3", "7"),
        (&["--to-offset", "99"], "10", "0"), // clamped to the log end
        (&["--to-earliest"], "0", "10"),
        (&["--to-latest"], "10", "0"),
        (&["--to-datetime", "2000-01-01T00:00:00.000"], "0", "10"),
    ];
    for (flags, offset, lag) in cases {
        let mut args = vec!["reset-offsets", group.as_str(), "--topic", topic.as_str()];
        args.extend_from_slice(flags);
        args.push("--execute");
        let run = groups(&args, &bootstrap).success("reset --execute");
        assert!(run.stdout.contains("were reset"), "{}", run.stdout);
        let (out, rows) = describe_rows(&bootstrap, &group, &topic);
        for row in &rows {
            assert_eq!(
                (row[3].as_str(), row[5].as_str()),
                (offset, lag),
                "{flags:?}: {out}"
            );
        }
    }
    // --all-topics: every topic the group has offsets for.
    let run = groups(
        &[
            "reset-offsets",
            &group,
            "--all-topics",
            "--to-offset",
            "5",
            "--execute",
        ],
        &bootstrap,
    )
    .success("reset --all-topics");
    assert!(run.stdout.contains(&topic), "{}", run.stdout);
    let (_, rows) = describe_rows(&bootstrap, &group, &topic);
    assert!(rows.iter().all(|r| r[3] == "5"), "{rows:?}");
    // A time after every record: the log end.
    groups(
        &[
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-datetime",
            "2999-01-01T00:00:00Z",
            "--execute",
        ],
        &bootstrap,
    )
    .success("reset to the future");
    let (_, rows) = describe_rows(&bootstrap, &group, &topic);
    assert_eq!(rows[0][3], "10");

    let list = groups(&["list"], &bootstrap).success("list");
    assert!(list.stdout.lines().any(|l| l == group), "{}", list.stdout);
    let list = groups(&["list", "--state"], &bootstrap).success("list --state");
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with(&group) && l.ends_with("Empty")),
        "{}",
        list.stdout
    );

    groups(&["delete", &group], &bootstrap).success("delete");
    let list = groups(&["list"], &bootstrap).success("list");
    assert!(!list.stdout.lines().any(|l| l == group), "{}", list.stdout);
    groups(&["describe", &group], &bootstrap)
        .failure("describe of a deleted group", "does not exist");
    groups(&["delete", &group], &bootstrap).failure("delete twice", "does not exist");
}

#[test]
fn reset_offsets_requires_a_target_and_a_topic() {
    let bad = common::spate(&["groups", "reset-offsets", "g", "--topic", "t"]);
    assert!(!bad.status.success());
    let bad = common::spate(&["groups", "reset-offsets", "g", "--to-earliest"]);
    assert!(!bad.status.success());
    let bad = common::spate(&[
        "groups",
        "reset-offsets",
        "g",
        "--topic",
        "t",
        "--to-datetime",
        "soon",
        "--bootstrap-server",
        "127.0.0.1:1",
    ]);
    assert!(bad.stderr.contains("invalid datetime"), "{}", bad.stderr);
}

/// A consumer-protocol (KIP-848) group: describe says so and shows the member epoch; list
/// shows it.
#[test]
fn describe_shows_a_consumer_protocol_group_and_member_epochs() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("cli848");
    let group = random_group("cli848");
    broker.create_topic(&topic, 2);
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .set("group.protocol", "consumer")
        .set("broker.address.family", "v4")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    wait_until("the assignment", Duration::from_secs(30), || {
        let _ = consumer.poll(Duration::from_millis(50));
        consumer.assignment().map(|a| a.count()).unwrap_or(0) == 2
    });
    let (out, rows) = describe_rows(&bootstrap, &group, &topic);
    println!("{out}");
    assert!(
        out.contains("state: Stable, protocol: consumer, group epoch: 1, assignor: uniform"),
        "{out}"
    );
    assert_eq!(rows.len(), 2, "{out}");
    let member_line = out
        .lines()
        .rfind(|l| l.starts_with(&group))
        .expect("member row");
    // GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS ASSIGNMENT MEMBER-EPOCH
    let cols: Vec<&str> = member_line.split_whitespace().collect();
    assert_eq!(
        cols[cols.len() - 3..],
        ["2", &format!("{topic}(0,1)"), "1"],
        "{member_line}"
    );
    let listed = groups(&["list", "--state"], &bootstrap).success("groups list");
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with(&group) && l.contains("Stable")),
        "{}",
        listed.stdout
    );
    // The consumer is not dropped: rdkafka's BaseConsumer drop waits on its close queue
    // with group.protocol=consumer (see spate-broker's group_consumer_protocol tests).
    std::mem::forget(consumer);
}

/// Static members (`group.instance.id`) of a classic group: the members table names each
/// member's instance id, client id and host and lists the partitions it owns, decoded from the
/// consumer protocol's assignment, and they are exactly the partitions each consumer holds.
#[test]
fn describe_shows_which_static_member_owns_what() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("clistatic");
    let group = random_group("clistatic");
    broker.create_topic(&topic, 4);
    let member = |instance: &str| -> BaseConsumer {
        let mut cfg = consumer_config(&bootstrap, &group);
        cfg.set("group.instance.id", instance)
            .set("client.id", format!("client-{instance}"))
            .set("partition.assignment.strategy", "cooperative-sticky");
        let c: BaseConsumer = cfg.create().expect("consumer");
        c.subscribe(&[&topic]).expect("subscribe");
        c
    };
    let (a, b) = (member("inst-a"), member("inst-b"));
    let owned = |c: &BaseConsumer| -> Vec<i32> {
        let mut ps: Vec<i32> = c
            .assignment()
            .map(|a| a.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        ps.sort_unstable();
        ps
    };
    wait_until("both members assigned", Duration::from_secs(60), || {
        let _ = a.poll(Duration::from_millis(20));
        let _ = b.poll(Duration::from_millis(20));
        owned(&a).len() + owned(&b).len() == 4 && !owned(&a).is_empty() && !owned(&b).is_empty()
    });
    // Keep both members heartbeating while the command runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let pollers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = c.poll(Duration::from_millis(20));
                }
            })
        })
        .collect();
    let (out, rows) = describe_rows(&bootstrap, &group, &topic);
    println!("{out}");
    assert_eq!(rows.len(), 4, "one row per owned partition: {out}");
    let header = out
        .lines()
        .find(|l| l.starts_with("GROUP") && l.contains("GROUP-INSTANCE-ID"))
        .expect("members header with GROUP-INSTANCE-ID");
    assert!(header.contains("ASSIGNMENT"), "{header}");
    for (instance, consumer) in [("inst-a", &a), ("inst-b", &b)] {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(instance))
            .unwrap_or_else(|| panic!("a member row for {instance}: {out}"));
        // GROUP CONSUMER-ID GROUP-INSTANCE-ID HOST CLIENT-ID #PARTITIONS ASSIGNMENT
        let cols: Vec<&str> = line.split_whitespace().collect();
        let ps = owned(consumer);
        let list: Vec<String> = ps.iter().map(ToString::to_string).collect();
        assert_eq!(cols[3], "/127.0.0.1", "{line}");
        assert_eq!(cols[4], format!("client-{instance}"), "{line}");
        assert_eq!(cols[5], ps.len().to_string(), "{line}");
        assert_eq!(cols[6], format!("{topic}({})", list.join(",")), "{line}");
        // The partition table names the same member as the owner of those partitions.
        for p in &ps {
            let row = rows
                .iter()
                .find(|r| r[2] == p.to_string())
                .expect("partition row");
            assert_eq!(row[6], cols[1], "owner of partition {p}: {out}");
        }
        println!("{instance} owns {ps:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in pollers {
        p.join().unwrap();
    }
}
