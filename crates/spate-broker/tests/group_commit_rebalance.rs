//! Commits during rebalances with real cooperative-sticky rdkafka members: each member commits
//! what it processed in its revoke callback (KIP-429), members join and leave 20 times while a
//! producer keeps writing, and no record is read twice. Also counts the assignment callbacks a
//! remaining member sees when another member unsubscribes (Kafka: one). The same run with
//! kafka-python members (`tests/clients/python_coop_commit.py`, its cooperative-sticky assignor,
//! a client not built on librdkafka) shows the broker's part does not depend on librdkafka.
//! kafka-python 3.0.12 sometimes abandons a join it completed (its poll timeout expiring during
//! a leader's SyncGroup); the script notices and rejoins, and the run prints how often.

mod group_support;
mod python_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use group_support::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use spate_testkit::clients::producer_config;
use spate_testkit::{random_group, random_topic};

const PARTITIONS: i32 = 6;

/// Who read a record: (member number, membership change it was read in).
type Readers = Vec<(usize, usize)>;

/// A record read more than once: (partition, offset, who read it).
type Duplicate = (i32, i64, Readers);

/// What every member reports into.
#[derive(Default)]
struct Ledger {
    /// (partition, offset) → who processed it: (member number, membership change it was read in).
    seen: Mutex<HashMap<(i32, i64), Readers>>,
    /// Membership changes so far (joins and leaves), to place a duplicate in time.
    events: AtomicUsize,
    /// Members started so far, to number them.
    members: AtomicUsize,
    commits_ok: AtomicUsize,
    commits_failed: AtomicUsize,
    /// kafka-python commits not sent because the member was itself rejoining (sent again
    /// after a poll).
    commits_deferred: AtomicUsize,
    /// kafka-python members that lost the end of their own join and were told to rejoin
    /// (`stalled_join` in `python_coop_commit.py`, a client bug).
    stalled_joins: AtomicUsize,
}

/// A member's rebalance callbacks: commits the positions of revoked partitions synchronously
/// before giving them up, and counts assignment callbacks.
struct CommitOnRevoke {
    ledger: Arc<Ledger>,
    assigns: Arc<AtomicUsize>,
}

impl ClientContext for CommitOnRevoke {}

impl ConsumerContext for CommitOnRevoke {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(revoked) => {
                let Ok(positions) = consumer.position() else {
                    return;
                };
                let mut commit = TopicPartitionList::new();
                for e in positions.elements() {
                    let revoked_here = revoked
                        .elements()
                        .iter()
                        .any(|r| r.partition() == e.partition() && r.topic() == e.topic());
                    if let (true, Offset::Offset(o)) = (revoked_here, e.offset()) {
                        let _ = commit.add_partition_offset(
                            e.topic(),
                            e.partition(),
                            Offset::Offset(o),
                        );
                    }
                }
                if commit.count() == 0 {
                    return;
                }
                match consumer.commit(&commit, CommitMode::Sync) {
                    Ok(()) => self.ledger.commits_ok.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        eprintln!("commit in revoke callback failed: {e}");
                        self.ledger.commits_failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
            Rebalance::Assign(_) => {
                self.assigns.fetch_add(1, Ordering::SeqCst);
            }
            Rebalance::Error(_) => {}
        }
    }
}

/// One cooperative-sticky member polling on its own thread.
struct CoopMember {
    stop: Arc<AtomicBool>,
    assigns: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl CoopMember {
    fn start(bootstrap: &str, group: &str, topic: &str, ledger: &Arc<Ledger>) -> CoopMember {
        let mut config = member_config(bootstrap, group);
        config.set("partition.assignment.strategy", "cooperative-sticky");
        let assigns = Arc::new(AtomicUsize::new(0));
        let context = CommitOnRevoke {
            ledger: ledger.clone(),
            assigns: assigns.clone(),
        };
        let consumer: BaseConsumer<CommitOnRevoke> =
            config.create_with_context(context).expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let (s, l) = (stop.clone(), ledger.clone());
        let number = ledger.members.fetch_add(1, Ordering::SeqCst);
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
                    let event = l.events.load(Ordering::SeqCst);
                    l.seen
                        .lock()
                        .unwrap()
                        .entry((m.partition(), m.offset()))
                        .or_default()
                        .push((number, event));
                }
            }
            // Unsubscribe first: the revoke callback commits, then the member leaves.
            consumer.unsubscribe();
            for _ in 0..100 {
                let _ = consumer.poll(Duration::from_millis(20));
                if consumer.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
                    break;
                }
            }
            drop(consumer);
        });
        CoopMember {
            stop,
            assigns,
            thread: Some(thread),
        }
    }

    fn assign_callbacks(&self) -> usize {
        self.assigns.load(Ordering::SeqCst)
    }

    fn close(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CoopMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A kafka-python cooperative-sticky member in its own process (`python_coop_commit.py`): the
/// records it processed, its commits and its assignment callbacks, read from its JSON lines,
/// go into the ledger.
struct PyMember {
    child: Child,
    stdin: Option<ChildStdin>,
    assigns: Arc<AtomicUsize>,
    reader: Option<JoinHandle<()>>,
}

impl PyMember {
    fn start(bootstrap: &str, group: &str, topic: &str, ledger: &Arc<Ledger>) -> PyMember {
        let script = python_support::workspace_root().join("tests/clients/python_coop_commit.py");
        let mut child = Command::new(python_support::kafka_python())
            .arg(script)
            .args([bootstrap, topic, group])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a kafka-python member");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("member stdout");
        let assigns = Arc::new(AtomicUsize::new(0));
        let number = ledger.members.fetch_add(1, Ordering::SeqCst);
        let (l, a) = (ledger.clone(), assigns.clone());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(doc) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if let (Some(p), Some(o)) = (doc["p"].as_i64(), doc["o"].as_i64()) {
                    let event = l.events.load(Ordering::SeqCst);
                    let partition = i32::try_from(p).expect("partition");
                    l.seen
                        .lock()
                        .unwrap()
                        .entry((partition, o))
                        .or_default()
                        .push((number, event));
                } else if let Some(c) = doc["commit"].as_str() {
                    let counter = match c {
                        "ok" => &l.commits_ok,
                        "deferred" => &l.commits_deferred,
                        _ => {
                            eprintln!("kafka-python commit failed: {doc}");
                            &l.commits_failed
                        }
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                } else if doc.get("assigned").is_some() {
                    a.fetch_add(1, Ordering::SeqCst);
                } else if doc.get("stalled_join").is_some() {
                    eprintln!("kafka-python member lost the end of its join, rejoining: {doc}");
                    l.stalled_joins.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        PyMember {
            child,
            stdin,
            assigns,
            reader: Some(reader),
        }
    }

    /// Asks the member to commit what it processed and leave, and waits for it to exit.
    fn close(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"leave\n");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "kafka-python member exited with {status}");
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(r) = self.reader.take() {
            let _ = self.child.kill();
            let _ = r.join();
        }
    }
}

impl Drop for PyMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client library a run's members use.
#[derive(Clone, Copy, Debug)]
enum Client {
    Rdkafka,
    KafkaPython,
}

/// A member of either client, as [`run`] drives it.
enum AnyMember {
    Rdkafka(CoopMember),
    Python(PyMember),
}

impl AnyMember {
    fn start(
        client: Client,
        bootstrap: &str,
        group: &str,
        topic: &str,
        ledger: &Arc<Ledger>,
    ) -> AnyMember {
        match client {
            Client::Rdkafka => {
                AnyMember::Rdkafka(CoopMember::start(bootstrap, group, topic, ledger))
            }
            Client::KafkaPython => {
                AnyMember::Python(PyMember::start(bootstrap, group, topic, ledger))
            }
        }
    }

    fn assign_callbacks(&self) -> usize {
        match self {
            AnyMember::Rdkafka(m) => m.assign_callbacks(),
            AnyMember::Python(m) => m.assigns.load(Ordering::SeqCst),
        }
    }

    fn close(self) {
        match self {
            AnyMember::Rdkafka(m) => m.close(),
            AnyMember::Python(m) => m.close(),
        }
    }
}

/// Produces numbered records round-robin over the partitions, 20 every `pause`, until stopped;
/// returns the count.
fn producer_thread(
    bootstrap: String,
    topic: String,
    stop: Arc<AtomicBool>,
    pause: Duration,
) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let producer: BaseProducer = producer_config(&bootstrap).create().expect("producer");
        let mut n = 0usize;
        while !stop.load(Ordering::SeqCst) {
            for _ in 0..20 {
                let value = n.to_string();
                let p = (n % PARTITIONS as usize) as i32;
                let record = BaseRecord::<(), _>::to(&topic).partition(p).payload(&value);
                if producer.send(record).is_ok() {
                    n += 1;
                }
            }
            producer.poll(pause);
        }
        producer.flush(Duration::from_secs(20)).expect("flush");
        n
    })
}

fn distinct(ledger: &Ledger) -> usize {
    ledger.seen.lock().unwrap().len()
}

/// Records read more than once, with who read them when: (partition, offset, [(member, event)]).
fn duplicates(ledger: &Ledger) -> Vec<Duplicate> {
    let seen = ledger.seen.lock().unwrap();
    let mut dups: Vec<_> = seen
        .iter()
        .filter(|(_, readers)| readers.len() > 1)
        .map(|((p, o), readers)| (*p, *o, readers.clone()))
        .collect();
    dups.sort();
    dups
}

/// Whether a duplicate was read by two members (what a refused or lost commit causes), rather
/// than twice by one member that owned the partition throughout.
fn across_members(readers: &[(usize, usize)]) -> bool {
    readers.iter().any(|r| r.0 != readers[0].0)
}

/// Waits until the group is Stable with `members` members that own every partition.
/// Two minutes: kafka-python members on a machine loaded by parallel test binaries once took
/// longer than one; the panic shows where the group stood.
fn wait_balanced(broker: &spate_testkit::TestBroker, group: &str, members: usize) -> i32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let view = group_view(broker, group);
        if view.is_balanced(members, PARTITIONS) {
            return view.generation;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after 120 s waiting for {members} members to balance; the group: {view:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The scenario: `base_members` members of `client` balance, then 20 membership changes (an
/// extra member joins and leaves, ten times) while a producer keeps writing.
fn run(client: Client, base_members: usize) {
    let broker = start_broker();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("commit-rebalance");
    let group = random_group("commit-rebalance");
    create_topic(&broker, &topic, PARTITIONS);
    let ledger = Arc::new(Ledger::default());
    let stop_producing = Arc::new(AtomicBool::new(false));
    // kafka-python prints a line per record: a slower producer keeps its members' CPU modest.
    let pause = match client {
        Client::Rdkafka => Duration::from_millis(5),
        Client::KafkaPython => Duration::from_millis(20),
    };
    let producer = producer_thread(
        bootstrap.clone(),
        topic.clone(),
        stop_producing.clone(),
        pause,
    );

    let mut base: Vec<AnyMember> = (0..base_members)
        .map(|_| AnyMember::start(client, &bootstrap, &group, &topic, &ledger))
        .collect();
    let first_generation = wait_balanced(&broker, &group, base_members);
    let mut events = 0;
    let mut unsubscribe_assigns = Vec::new();
    while events < 20 {
        let extra = AnyMember::start(client, &bootstrap, &group, &topic, &ledger);
        events += 1;
        ledger.events.store(events, Ordering::SeqCst);
        wait_balanced(&broker, &group, base_members + 1);
        // The join's last round ends with an (incremental) assignment callback on each member:
        // let it be delivered before counting.
        std::thread::sleep(Duration::from_millis(300));
        let before: Vec<usize> = base.iter().map(AnyMember::assign_callbacks).collect();
        extra.close();
        events += 1;
        ledger.events.store(events, Ordering::SeqCst);
        wait_balanced(&broker, &group, base_members);
        // Wait for every remaining member's callback of the last round (a loaded machine may
        // deliver it late), then a while longer so that a second one would be seen too.
        // kafka-python calls on_partitions_assigned only for members that gained partitions
        // (librdkafka and Java call it on every member), so there at least one must have.
        wait_until("assignment callbacks", Duration::from_secs(30), || {
            let mut called = base
                .iter()
                .zip(&before)
                .map(|(m, b)| m.assign_callbacks() > *b);
            match client {
                Client::Rdkafka => called.all(|c| c),
                Client::KafkaPython => called.any(|c| c),
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let after: Vec<usize> = base.iter().map(AnyMember::assign_callbacks).collect();
        unsubscribe_assigns.extend(after.iter().zip(&before).map(|(a, b)| a - b));
    }
    stop_producing.store(true, Ordering::SeqCst);
    let produced = producer.join().expect("producer thread");
    wait_until("every record consumed", Duration::from_secs(60), || {
        distinct(&ledger) >= produced
    });
    let generations = group_view(&broker, &group).generation - first_generation;
    let dups = duplicates(&ledger);
    println!(
        "{client:?}: {base_members}+1 cooperative-sticky members: {events} membership changes, \
         {generations} generations (rebalances), {produced} records produced, {} read, \
         {} read twice {dups:?} (partition, offset, [(member, membership change)]), \
         {} commits (in revoke callbacks and before leaving) accepted, {} refused, {} deferred \
         by the client while it rejoined; assignment callbacks per remaining member per \
         unsubscribe: {unsubscribe_assigns:?}; kafka-python joins abandoned by the client and \
         redone: {}",
        distinct(&ledger),
        dups.len(),
        ledger.commits_ok.load(Ordering::SeqCst),
        ledger.commits_failed.load(Ordering::SeqCst),
        ledger.commits_deferred.load(Ordering::SeqCst),
        ledger.stalled_joins.load(Ordering::SeqCst),
    );
    assert_eq!(
        ledger.commits_failed.load(Ordering::SeqCst),
        0,
        "refused commits"
    );
    assert!(
        ledger.commits_ok.load(Ordering::SeqCst) >= 10,
        "commits in revoke callbacks"
    );
    // A record read twice by two members means a commit made in a revoke callback was refused
    // or lost, or a partition was owned by two members at once: the broker's part, never
    // allowed. One member reading a record twice (always a single record, within one
    // membership change; up to 3 in 20 changes seen in a full parallel test run) is librdkafka
    // rewinding its own position by one record around the pause and resume of a cooperative
    // rebalance; tolerate one per four membership changes, printed above, each a single
    // record read by one member. kafka-python members (which drop the polled records of a
    // revoked partition) never do.
    let tolerated = match client {
        Client::Rdkafka => events / 4,
        Client::KafkaPython => 0,
    };
    let (crossing, local): (Vec<_>, Vec<_>) = dups.iter().partition(|d| across_members(&d.2));
    assert!(
        crossing.is_empty(),
        "records read by two members: {crossing:?}"
    );
    assert!(
        local.len() <= tolerated,
        "records re-read by one member: {local:?}"
    );
    assert!(
        local.iter().all(|d| d.2.len() == 2 && d.2[0] == d.2[1]),
        "a re-read by one member is one record read twice in one membership change: {local:?}"
    );
    assert_eq!(distinct(&ledger), produced);
    let at_most = |n: &usize| match client {
        Client::Rdkafka => *n == 1,
        Client::KafkaPython => *n <= 1,
    };
    assert!(
        unsubscribe_assigns.iter().all(at_most),
        "a remaining member sees exactly one assignment callback (kafka-python: at most one) \
         when another unsubscribes: {unsubscribe_assigns:?}"
    );
    for m in base.drain(..) {
        m.close();
    }
}

#[test]
fn two_cooperative_members_commit_in_revoke_and_read_nothing_twice() {
    run(Client::Rdkafka, 2);
}

#[test]
fn three_cooperative_members_commit_in_revoke_and_read_nothing_twice() {
    run(Client::Rdkafka, 3);
}

#[test]
fn two_kafka_python_members_commit_in_revoke_and_read_nothing_twice() {
    run(Client::KafkaPython, 2);
}

#[test]
fn three_kafka_python_members_commit_in_revoke_and_read_nothing_twice() {
    run(Client::KafkaPython, 3);
}
