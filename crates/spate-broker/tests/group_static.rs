//! Static membership (`group.instance.id`, KIP-345) with real rdkafka consumers: a member that
//! restarts within its session timeout takes its old place and partitions back without a
//! rebalance, so the other members keep their assignment and the generation does not change.

mod group_support;

use std::time::Duration;

use group_support::*;
use spate_testkit::{random_group, random_topic};

#[test]
fn static_member_restart_does_not_rebalance() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap_servers();
    let topic = random_topic("static");
    let group = random_group("static");
    create_topic(&broker, &topic, 4);
    let member = |instance: &str| {
        let mut c = member_config(&bootstrap, &group);
        c.set("group.instance.id", instance);
        c
    };
    let a = Member::start(member("instance-a"), &topic);
    let b = Member::start(member("instance-b"), &topic);
    wait_until("two static members", Duration::from_secs(60), || {
        group_view(&broker, &group).is_balanced(2, 4)
            && a.partitions().len() == 2
            && b.partitions().len() == 2
    });
    let before = group_view(&broker, &group);
    let a_before = a.partitions();
    let b_before = b.partitions();
    let a_changes = a.history.lock().unwrap().len();

    // b restarts: a static member does not send LeaveGroup on close.
    b.close();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        group_view(&broker, &group).members.len(),
        2,
        "b kept its place"
    );
    let b2 = Member::start(member("instance-b"), &topic);
    wait_until(
        "restarted b owning its partitions",
        Duration::from_secs(30),
        || b2.partitions() == b_before,
    );
    // Give a rebalance, had one been triggered, time to show (heartbeats every 300 ms).
    std::thread::sleep(Duration::from_secs(2));
    let after = group_view(&broker, &group);
    assert_eq!(after.state, "Stable");
    assert_eq!(after.generation, before.generation, "no rebalance happened");
    assert_eq!(after.members.len(), 2);
    assert_ne!(
        after.members.keys().collect::<Vec<_>>(),
        before.members.keys().collect::<Vec<_>>(),
        "the restarted member has a new member id"
    );
    assert_eq!(a.partitions(), a_before);
    assert_eq!(
        a.history.lock().unwrap().len(),
        a_changes,
        "a's assignment never changed"
    );
    a.close();
    b2.close();
}
