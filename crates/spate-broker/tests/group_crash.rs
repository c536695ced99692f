//! SIGKILL the broker while a client commits offsets as fast as it can, restart it on the same
//! data directory, and check that every acknowledged commit survived: the committed offset of
//! each partition is at least the last acknowledged one (and no more than the last one sent).
//!
//! The broker runs in a child process: this test binary re-executes itself with
//! `SPATE_GROUP_CRASH_DIR` set, which turns `group_crash_child_broker` into the broker's main.

mod group_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use group_support::RawClient;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use spate_testkit::child::Running;
use spate_testkit::ChildJob;

const CHILD_DIR: &str = "SPATE_GROUP_CRASH_DIR";
const TOPIC: &str = "committed";
const PARTITIONS: i32 = 3;
const GROUP: &str = "crash-group";

/// The broker side, active only in the child process.
#[test]
fn group_crash_child_broker() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let config = spate_broker::BrokerConfig::default()
        .listen("127.0.0.1:0".parse().expect("address"))
        .data_dir(dir);
    let mut config = config;
    config.group.initial_rebalance_delay_ms = 0;
    let broker = spate_broker::Broker::start_blocking(config).expect("broker starts");
    spate_testkit::child::announce_listening(broker.local_addr());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Starts the child broker on `dir`; it is SIGKILLed when the returned handle is dropped.
fn spawn_broker(dir: &std::path::Path) -> (Running, SocketAddr) {
    let mut job = ChildJob::test_entry("group_crash_child_broker");
    job.env(CHILD_DIR, dir).capture_stdout().discard_stderr();
    let mut child = job.spawn();
    let addr = child.listening_addr(Duration::from_secs(60));
    (child, addr)
}

fn commit(client: &mut RawClient, partition: i32, offset: i64) -> i16 {
    let r = client.send(
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)])]),
        7,
    );
    r.topics[0].partitions[0].error_code
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, addr) = spawn_broker(dir.path());
    let mut client = RawClient::connect(addr);
    let created = client.send(
        &CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_num_partitions(PARTITIONS)
                .with_replication_factor(1),
        ]),
        4,
    );
    assert_eq!(created.topics[0].error_code, 0);

    // Commit increasing offsets round-robin from a thread; kill the broker under it.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(vec![-1i64; PARTITIONS as usize]));
    let sent = std::sync::Arc::new(std::sync::Mutex::new(vec![-1i64; PARTITIONS as usize]));
    let committer = {
        let (acked, sent) = (acked.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut offset = 0i64;
            loop {
                let partition = (offset % i64::from(PARTITIONS)) as i32;
                sent.lock().expect("lock")[partition as usize] = offset;
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    commit(&mut client, partition, offset)
                }));
                match ok {
                    Ok(0) => acked.lock().expect("lock")[partition as usize] = offset,
                    // The connection died with the broker.
                    _ => return offset,
                }
                offset += 1;
            }
        })
    };
    let started = Instant::now();
    while acked.lock().expect("lock").iter().any(|o| *o < 30) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "commits too slow"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(child); // SIGKILL
    let attempts = committer.join().expect("committer thread");
    assert!(attempts > 30);

    let (_child, addr) = spawn_broker(dir.path());
    let mut client = RawClient::connect(addr);
    let fetched = client.send(
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_indexes((0..PARTITIONS).collect())])),
        5,
    );
    let acked = acked.lock().expect("lock").clone();
    let sent = sent.lock().expect("lock").clone();
    for p in &fetched.topics[0].partitions {
        let i = p.partition_index as usize;
        assert!(
            p.committed_offset >= acked[i] && p.committed_offset <= sent[i],
            "partition {i}: committed {} but acknowledged {} and sent {}",
            p.committed_offset,
            acked[i],
            sent[i]
        );
    }
}
