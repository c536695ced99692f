//! Commits during rebalances with real cooperative-sticky rdkafka members: each member commits
//! what it processed in its revoke callback (KIP-429), members join and leave 20 times while a
//! producer keeps writing, and no record is read twice. Also counts the assignment callbacks a
//! remaining member sees when another member unsubscribes (Kafka: one).

mod group_support;

use std::collections::HashMap;
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

/// Produces numbered records round-robin over the partitions until stopped; returns the count.
fn producer_thread(bootstrap: String, topic: String, stop: Arc<AtomicBool>) -> JoinHandle<usize> {
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
            producer.poll(Duration::from_millis(5));
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
fn wait_balanced(broker: &spate_testkit::TestBroker, group: &str, members: usize) -> i32 {
    wait_until(Duration::from_secs(60), "a balanced group", || {
        group_view(broker, group).is_balanced(members, PARTITIONS)
    });
    group_view(broker, group).generation
}

fn run(base_members: usize) {
    let broker = start_broker();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("commit-rebalance");
    let group = random_group("commit-rebalance");
    create_topic(&broker, &topic, PARTITIONS);
    let ledger = Arc::new(Ledger::default());
    let stop_producing = Arc::new(AtomicBool::new(false));
    let producer = producer_thread(bootstrap.clone(), topic.clone(), stop_producing.clone());

    let mut base: Vec<CoopMember> = (0..base_members)
        .map(|_| CoopMember::start(&bootstrap, &group, &topic, &ledger))
        .collect();
    let first_generation = wait_balanced(&broker, &group, base_members);
    let mut events = 0;
    let mut unsubscribe_assigns = Vec::new();
    while events < 20 {
        let extra = CoopMember::start(&bootstrap, &group, &topic, &ledger);
        events += 1;
        ledger.events.store(events, Ordering::SeqCst);
        wait_balanced(&broker, &group, base_members + 1);
        // The join's last round ends with an (incremental) assignment callback on each member:
        // let it be delivered before counting.
        std::thread::sleep(Duration::from_millis(300));
        let before: Vec<usize> = base.iter().map(CoopMember::assign_callbacks).collect();
        extra.close();
        events += 1;
        ledger.events.store(events, Ordering::SeqCst);
        wait_balanced(&broker, &group, base_members);
        // Wait for every remaining member's callback of the last round (a loaded machine may
        // deliver it late), then a while longer so that a second one would be seen too.
        wait_until(Duration::from_secs(30), "assignment callbacks", || {
            base.iter()
                .zip(&before)
                .all(|(m, b)| m.assign_callbacks() > *b)
        });
        std::thread::sleep(Duration::from_millis(300));
        let after: Vec<usize> = base.iter().map(CoopMember::assign_callbacks).collect();
        unsubscribe_assigns.extend(after.iter().zip(&before).map(|(a, b)| a - b));
    }
    stop_producing.store(true, Ordering::SeqCst);
    let produced = producer.join().expect("producer thread");
    wait_until(Duration::from_secs(60), "every record consumed", || {
        distinct(&ledger) >= produced
    });
    let generations = group_view(&broker, &group).generation - first_generation;
    let dups = duplicates(&ledger);
    println!(
        "{base_members}+1 cooperative-sticky members: {events} membership changes, \
         {generations} generations (rebalances), {produced} records produced, {} read, \
         {} read twice {dups:?} (partition, offset, [(member, membership change)]), {} commits in revoke callbacks accepted, {} refused; assignment \
         callbacks per remaining member per unsubscribe: {unsubscribe_assigns:?}",
        distinct(&ledger),
        dups.len(),
        ledger.commits_ok.load(Ordering::SeqCst),
        ledger.commits_failed.load(Ordering::SeqCst),
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
    // allowed. One member reading a record twice (about once in ten runs on a loaded machine,
    // always a single record) is librdkafka rewinding its own position by one record around
    // the pause and resume of a cooperative rebalance; tolerate a couple, printed above.
    let (crossing, local): (Vec<_>, Vec<_>) = dups.iter().partition(|d| across_members(&d.2));
    assert!(
        crossing.is_empty(),
        "records read by two members: {crossing:?}"
    );
    assert!(local.len() <= 2, "records re-read by one member: {local:?}");
    assert_eq!(distinct(&ledger), produced);
    assert!(
        unsubscribe_assigns.iter().all(|n| *n == 1),
        "a remaining member sees exactly one assignment callback when another unsubscribes: \
         {unsubscribe_assigns:?}"
    );
    for m in base.drain(..) {
        m.close();
    }
}

#[test]
fn two_cooperative_members_commit_in_revoke_and_read_nothing_twice() {
    run(2);
}

#[test]
fn three_cooperative_members_commit_in_revoke_and_read_nothing_twice() {
    run(3);
}
