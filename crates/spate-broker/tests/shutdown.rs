//! SIGTERM stops a busy broker within `shutdown.timeout.ms`, every time: a broker process with a
//! group mid-rebalance (a JoinGroup parked until the other member rejoins), a follower's
//! SyncGroup parked until the leader syncs, a long-poll Fetch on an idle topic and a producer
//! sending as fast as it can, is sent SIGTERM 20 times in a row (restarting on the same data
//! directory). Each time it must exit with status 0 within the bound, answer the parked requests
//! (NOT_COORDINATOR for the group requests, an empty answer for the Fetch) and leave the
//! clean-shutdown marker in every partition directory.
//!
//! The broker runs in a child process: this test binary re-executes itself with
//! `SPATE_SHUTDOWN_CHILD_DIR` set, which turns `shutdown_child_broker` into the broker's main.

mod raw_client;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use raw_client::RawClient;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use spate_testkit::child::{announce_listening, Running};
use spate_testkit::{wait_until, ChildJob};

const CHILD_DIR: &str = "SPATE_SHUTDOWN_CHILD_DIR";
const ROUNDS: usize = 20;
const BOUND_MS: u64 = 5_000;
const PRODUCE_TOPIC: &str = "shutdown-produce";
const IDLE_TOPIC: &str = "shutdown-idle";

/// The broker side, active only in the child process.
#[test]
fn shutdown_child_broker() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let config = spate_broker::BrokerConfig::default()
            .listen("127.0.0.1:0".parse().unwrap())
            .data_dir(dir)
            .shutdown_timeout_ms(BOUND_MS);
        // Groups form at once (Kafka's default initial rebalance delay is 3 s).
        let mut config = config;
        config.group.initial_rebalance_delay_ms = 0;
        let broker = spate_broker::Broker::start(config).await.unwrap();
        announce_listening(broker.local_addr());
        spate_broker::signals::run_until_signal(broker)
            .await
            .unwrap();
    });
    println!("STOPPED");
}

/// Starts the child broker on `dir` (SIGKILLed if the test fails) and waits for its address.
fn spawn_broker(dir: &Path) -> (Running, SocketAddr) {
    let mut child = ChildJob::test_entry("shutdown_child_broker")
        .env(CHILD_DIR, dir)
        .capture_stdout()
        .discard_stderr()
        .spawn();
    let addr = child.listening_addr(Duration::from_secs(30));
    (child, addr)
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(60_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"m"))])
}

/// JoinGroup v3: no MEMBER_ID_REQUIRED round trip.
const JOIN_V: i16 = 3;
const SYNC_V: i16 = 3;
const FETCH_V: i16 = 11;

/// The requests a round leaves parked in the broker, and the connections they wait on.
struct Parked {
    join: (RawClient, i32),
    sync: (RawClient, i32),
    fetch: (RawClient, i32),
}

/// Group `g1` mid-rebalance (member b's JoinGroup waits for member a), group `g2` with the
/// follower's SyncGroup waiting for the leader, and a long-poll Fetch on the idle topic.
fn park_requests(addr: SocketAddr, round: usize, suffix: &str) -> Parked {
    let g1 = format!("shutdown-join-{suffix}-{round}");
    let g2 = format!("shutdown-sync-{suffix}-{round}");

    let mut a = RawClient::connect(addr);
    let r = a.call(&join(&g1, ""), JOIN_V);
    assert_eq!(r.error_code, 0, "first member joins at once");
    let mut b = RawClient::connect(addr);
    let join_cid = b.send(&join(&g1, ""), JOIN_V);
    // b's JoinGroup is only sent: wait until the broker has parked it (on a loaded machine the
    // describe below could otherwise get there first).
    wait_for_state(addr, &g1, "PreparingRebalance");

    let mut leader = RawClient::connect(addr);
    let first = leader.call(&join(&g2, ""), JOIN_V);
    assert_eq!(first.error_code, 0);
    let mut follower = RawClient::connect(addr);
    let follower_cid = follower.send(&join(&g2, ""), JOIN_V);
    // The leader must rejoin after the follower's join started the rebalance, or it would
    // complete a generation of its own.
    wait_for_state(addr, &g2, "PreparingRebalance");
    let rejoined = leader.call(&join(&g2, first.member_id.as_str()), JOIN_V);
    assert_eq!(rejoined.error_code, 0);
    let f = follower.receive::<JoinGroupRequest>(JOIN_V, follower_cid);
    assert_eq!(f.error_code, 0);
    assert_eq!(f.generation_id, rejoined.generation_id);
    let sync_cid = follower.send(
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s(&g2)))
            .with_generation_id(f.generation_id)
            .with_member_id(f.member_id.clone()),
        SYNC_V,
    );

    let mut fetcher = RawClient::connect(addr);
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(60_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(IDLE_TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(0)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let fetch_cid = fetcher.send(&fetch, FETCH_V);

    // The SyncGroup and the Fetch above are only sent: a request still in the socket when the
    // signal lands was never received, so it is not one the broker must answer. Give the
    // broker's connections a moment to read them (one was seen unread on a loaded machine).
    std::thread::sleep(Duration::from_millis(200));
    // Both groups are where this test wants them before the signal.
    let mut admin = RawClient::connect(addr);
    let described = admin.call(
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&g1)), GroupId(s(&g2))]),
        0,
    );
    let states: Vec<&str> = described
        .groups
        .iter()
        .map(|g| g.group_state.as_str())
        .collect();
    assert_eq!(states, ["PreparingRebalance", "CompletingRebalance"]);
    drop(a);
    drop(leader);
    Parked {
        join: (b, join_cid),
        sync: (follower, sync_cid),
        fetch: (fetcher, fetch_cid),
    }
}

/// Polls DescribeGroups until `group` is in `state`.
fn wait_for_state(addr: SocketAddr, group: &str, state: &str) {
    let mut admin = RawClient::connect(addr);
    wait_until(
        &format!("{group} to reach {state}"),
        Duration::from_secs(10),
        || {
            let d = admin.call(
                &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
                0,
            );
            d.groups[0].group_state.as_str() == state
        },
    );
}

/// Produces to [`PRODUCE_TOPIC`] until `stop`, counting acknowledged records.
fn producer(
    bootstrap: String,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let p: BaseProducer = spate_testkit::clients::producer_config(&bootstrap)
            .set("message.timeout.ms", "3000")
            .create()
            .unwrap();
        let mut sent = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let value = sent.to_string();
            let rec = BaseRecord::<(), str>::to(PRODUCE_TOPIC).payload(&value);
            if p.send(rec).is_ok() {
                sent += 1;
            }
            p.poll(Duration::from_millis(1));
            acked.store(
                sent.saturating_sub(p.in_flight_count() as u64),
                Ordering::SeqCst,
            );
        }
    })
}

/// Reads the answer to a parked request: `Some(error code)` or `None` if the connection closed.
fn answer<R: kafka_protocol::protocol::Request>(
    conn: &mut RawClient,
    version: i16,
    cid: i32,
    code: impl Fn(&R::Response) -> i16,
) -> Option<i16> {
    match conn.read_frame() {
        Err(_) => None,
        Ok(mut frame) => {
            use kafka_protocol::protocol::Decodable;
            let key = ApiKey::try_from(R::KEY).unwrap();
            let header =
                ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
            assert_eq!(header.correlation_id, cid);
            Some(code(&R::Response::decode(&mut frame, version).unwrap()))
        }
    }
}

/// Partition directories (`<topic>-<n>`) without the clean-shutdown marker.
fn unclean_partitions(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let is_partition = e.path().is_dir()
            && name
                .rsplit_once('-')
                .is_some_and(|(_, n)| n.parse::<u32>().is_ok());
        if is_partition && !e.path().join("clean-shutdown").exists() {
            out.push(name);
        }
    }
    out
}

#[test]
fn sigterm_stops_a_busy_broker_within_the_bound_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let suffix = format!("{:08x}", rand::random::<u32>());
    let (mut answered, mut dropped, mut produced) = ([0usize; 3], [0usize; 3], 0u64);
    let mut slowest = Duration::ZERO;
    for round in 0..ROUNDS {
        let (mut child, addr) = spawn_broker(dir.path());
        if round == 0 {
            let mut c = RawClient::connect(addr);
            let topic = MetadataRequestTopic::default().with_name(Some(TopicName(s(IDLE_TOPIC))));
            let m = c.call(
                &MetadataRequest::default()
                    .with_topics(Some(vec![topic]))
                    .with_allow_auto_topic_creation(true),
                4,
            );
            assert_eq!(m.topics[0].error_code, 0);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let producing = producer(addr.to_string(), stop.clone(), acked.clone());
        let mut parked = park_requests(addr, round, &suffix);
        wait_until("a produce acknowledged", Duration::from_secs(10), || {
            acked.load(Ordering::SeqCst) > 0
        });

        let signalled = Instant::now();
        child.terminate();
        let status = child.wait(Duration::from_millis(BOUND_MS + 2_000));
        let took = signalled.elapsed();
        slowest = slowest.max(took);
        stop.store(true, Ordering::SeqCst);
        producing.join().unwrap();
        produced += acked.load(Ordering::SeqCst);
        assert!(status.success(), "round {round}: exit status {status}");
        assert!(
            took <= Duration::from_millis(BOUND_MS),
            "round {round}: stopping took {took:?}"
        );

        let (conn, cid) = &mut parked.join;
        let join = answer::<JoinGroupRequest>(conn, JOIN_V, *cid, |r| r.error_code);
        let (conn, cid) = &mut parked.sync;
        let sync = answer::<SyncGroupRequest>(conn, SYNC_V, *cid, |r| r.error_code);
        let (conn, cid) = &mut parked.fetch;
        let fetch = answer::<FetchRequest>(conn, FETCH_V, *cid, |r| {
            r.responses[0].partitions[0].error_code
        });
        let not_coordinator = ResponseError::NotCoordinator.code();
        for (i, (got, want)) in [(join, not_coordinator), (sync, not_coordinator), (fetch, 0)]
            .into_iter()
            .enumerate()
        {
            match got {
                Some(code) => {
                    assert_eq!(code, want, "round {round}: parked request {i}");
                    answered[i] += 1;
                }
                None => dropped[i] += 1,
            }
        }
        let unclean = unclean_partitions(dir.path());
        assert!(
            unclean.is_empty(),
            "round {round}: no clean-shutdown marker in {unclean:?}"
        );
    }
    println!(
        "{ROUNDS} SIGTERMs, every stop within {BOUND_MS} ms (slowest {} ms); parked JoinGroup \
         answered {} / dropped {}, SyncGroup answered {} / dropped {}, long-poll Fetch answered \
         {} / dropped {}; {produced} records acknowledged meanwhile",
        slowest.as_millis(),
        answered[0],
        dropped[0],
        answered[1],
        dropped[1],
        answered[2],
        dropped[2],
    );
    assert_eq!(answered, [ROUNDS; 3], "every parked request is answered");
}
