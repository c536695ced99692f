//! SIGKILL the broker at random points while several transactional producers commit and abort,
//! restart it on the same data directory and port each time, and check with a read_committed
//! consumer at the end: every acknowledged commit is fully visible exactly once, nothing of a
//! transaction the producer aborted (or never asked to commit) is visible, and a transaction
//! whose commit was in flight at a kill is visible all or nothing.
//!
//! The broker runs in a child process: this test binary re-executes itself with
//! `SPATE_TXN_CRASH_DIR` set, which turns `txn_crash_child_broker` into the broker's main.

mod txn_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
use spate_testkit::child::{announce_listening, Running, LISTENING};
use spate_testkit::clients::{consumer_config, producer_config};
use spate_testkit::{random_group, wait_for, wait_until, ChildJob};
use txn_support::{read_all, send};

const CHILD_DIR: &str = "SPATE_TXN_CRASH_DIR";
const CHILD_PORT: &str = "SPATE_TXN_CRASH_PORT";
const TOPIC: &str = "txn-crash";
const PARTITIONS: i32 = 3;
const PRODUCERS: usize = 3;
const KILLS: usize = 12;
/// Short, so transactions left open by a kill are aborted quickly after the last restart.
const TXN_TIMEOUT_MS: u32 = 2_000;

/// The broker side, active only in the child process.
#[test]
fn txn_crash_child_broker() {
    let (Ok(dir), Ok(port)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_PORT)) else {
        return;
    };
    let mut config = spate_broker::BrokerConfig::default()
        .listen(format!("127.0.0.1:{port}").parse().expect("address"))
        .data_dir(dir)
        .num_partitions(PARTITIONS);
    config
        .set(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            "100",
        )
        .expect("config");
    let broker = spate_broker::Broker::start_blocking(config).expect("broker starts");
    announce_listening(broker.local_addr());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Starts the child broker on `dir` and `port` (SIGKILLed when dropped), retrying while the
/// port is still held by the process killed a moment ago.
fn spawn_broker(dir: &std::path::Path, port: u16) -> Running {
    let mut job = ChildJob::test_entry("txn_crash_child_broker");
    job.env(CHILD_DIR, dir)
        .env(CHILD_PORT, port.to_string())
        .capture_stdout()
        .discard_stderr();
    wait_for(
        "the child broker to listen",
        Duration::from_secs(20),
        || {
            let mut child = job.spawn();
            while let Some(line) = child.next_line(Duration::from_secs(10)) {
                if line.contains(LISTENING) {
                    return Some(child);
                }
            }
            None
        },
    )
}

/// What became of one transaction, as its producer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// commit_transaction returned Ok.
    Committed,
    /// The producer aborted it or never asked to commit it.
    Aborted,
    /// A commit was requested but not acknowledged (a kill in between).
    Unknown,
}

#[derive(Default)]
struct Ledger {
    /// Values of each transaction, by `(producer, txn)`.
    values: BTreeMap<(usize, u64), (Vec<String>, Outcome)>,
}

fn new_producer(bootstrap: &str, id: usize, stop: &AtomicBool) -> Option<BaseProducer> {
    while !stop.load(Ordering::Relaxed) {
        let p: BaseProducer = producer_config(bootstrap)
            .set("transactional.id", format!("crash-producer-{id}"))
            .set("transaction.timeout.ms", TXN_TIMEOUT_MS.to_string())
            .set("socket.timeout.ms", TXN_TIMEOUT_MS.to_string())
            .set("message.timeout.ms", TXN_TIMEOUT_MS.to_string())
            .set("reconnect.backoff.max.ms", "100")
            .create()
            .expect("producer");
        if p.init_transactions(Duration::from_secs(5)).is_ok() {
            return Some(p);
        }
    }
    None
}

/// One producer's loop: transactions of 1–5 records over the partitions, committed (70%) or
/// aborted; any error makes a new producer instance (which fences the old one).
fn run_producer(bootstrap: String, id: usize, stop: Arc<AtomicBool>, ledger: Arc<Mutex<Ledger>>) {
    let mut rng = rand::rng();
    let mut txn = 0u64;
    let mut producer = new_producer(&bootstrap, id, &stop);
    while let Some(p) = producer.as_ref() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        txn += 1;
        let n = rng.random_range(1..=5);
        let vals: Vec<String> = (0..n).map(|i| format!("p{id}-t{txn}-{i}")).collect();
        let commit = rng.random_bool(0.7);
        ledger
            .lock()
            .unwrap()
            .values
            .insert((id, txn), (vals.clone(), Outcome::Aborted));
        let ok = p.begin_transaction().is_ok() && {
            for v in &vals {
                send(p, TOPIC, rng.random_range(0..PARTITIONS), &[v.as_str()]);
            }
            if commit {
                ledger.lock().unwrap().values.get_mut(&(id, txn)).unwrap().1 = Outcome::Unknown;
                p.commit_transaction(Duration::from_secs(5)).is_ok()
            } else {
                p.flush(Duration::from_secs(5)).is_ok()
                    && p.abort_transaction(Duration::from_secs(5)).is_ok()
            }
        };
        if ok && commit {
            ledger.lock().unwrap().values.get_mut(&(id, txn)).unwrap().1 = Outcome::Committed;
        }
        if !ok {
            // The old instance goes first; the new one fences whatever it left open.
            drop(producer.take());
            producer = new_producer(&bootstrap, id, &stop);
        }
    }
}

/// Waits until read_committed can see everything (no transaction left open).
fn wait_until_stable(bootstrap: &str) {
    let c: BaseConsumer = consumer_config(bootstrap, &random_group("crash-check"))
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let u: BaseConsumer = consumer_config(bootstrap, &random_group("crash-check"))
        .set("isolation.level", "read_uncommitted")
        .create()
        .unwrap();
    for p in 0..PARTITIONS {
        let t = Duration::from_secs(10);
        wait_until(
            &format!("partition {p}'s LSO to reach its high watermark"),
            Duration::from_secs(30),
            || {
                c.fetch_watermarks(TOPIC, p, t).unwrap().1
                    == u.fetch_watermarks(TOPIC, p, t).unwrap().1
            },
        );
    }
}

#[test]
fn committed_transactions_survive_sigkill_and_aborted_ones_stay_invisible() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut broker = spawn_broker(dir.path(), port);
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let (b, s, l) = (bootstrap.clone(), stop.clone(), ledger.clone());
            std::thread::spawn(move || run_producer(b, id, s, l))
        })
        .collect();
    let mut rng = rand::rng();
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1200)));
        drop(broker); // SIGKILL
        broker = spawn_broker(dir.path(), port);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().expect("producer thread");
    }
    wait_until_stable(&bootstrap);

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for p in 0..PARTITIONS {
        for (_, v) in read_all(&bootstrap, TOPIC, p, "read_committed") {
            *seen.entry(v).or_default() += 1;
        }
    }
    let ledger = ledger.lock().unwrap();
    let (mut committed, mut aborted, mut unknown_visible, mut unknown_gone) = (0, 0, 0, 0);
    for ((id, txn), (vals, outcome)) in &ledger.values {
        let visible: BTreeSet<_> = vals.iter().filter(|v| seen.contains_key(*v)).collect();
        for v in vals {
            assert!(
                seen.get(v).copied().unwrap_or(0) <= 1,
                "{v} is visible more than once"
            );
        }
        match outcome {
            Outcome::Committed => {
                committed += 1;
                assert_eq!(
                    visible.len(),
                    vals.len(),
                    "committed p{id}-t{txn} lost records: {vals:?}"
                );
            }
            Outcome::Aborted => {
                aborted += 1;
                assert!(
                    visible.is_empty(),
                    "aborted p{id}-t{txn} is visible: {visible:?}"
                );
            }
            Outcome::Unknown if visible.is_empty() => unknown_gone += 1,
            Outcome::Unknown => {
                unknown_visible += 1;
                assert_eq!(
                    visible.len(),
                    vals.len(),
                    "p{id}-t{txn} is partly visible: {visible:?}"
                );
            }
        }
    }
    println!(
        "kills={KILLS} committed={committed} aborted={aborted} in-flight commits visible={unknown_visible} \
         in-flight commits gone={unknown_gone} records visible={}",
        seen.len()
    );
    assert!(
        committed >= KILLS,
        "too few transactions committed: {committed}"
    );
    assert!(aborted > 0, "no transaction was aborted");
    drop(broker);
}
