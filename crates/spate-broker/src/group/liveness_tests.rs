//! Random interleavings of member requests and time: the group's invariants hold after
//! every step, and once everyone goes silent every parked request is answered and the group
//! ends Empty.

use proptest::prelude::*;

use tokio::sync::oneshot;

use super::coordinator_tests::{coordinator, join_req, sync, REBALANCE, SESSION};
use super::types::{JoinResponse, LeavingMember, SyncResponse};

#[derive(Debug, Clone)]
enum Op {
    JoinNew,
    Rejoin(usize),
    Sync(usize),
    Heartbeat(usize),
    Leave(usize),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::JoinNew),
        (0..6usize).prop_map(Op::Rejoin),
        (0..6usize).prop_map(Op::Sync),
        (0..6usize).prop_map(Op::Heartbeat),
        (0..6usize).prop_map(Op::Leave),
        (1..8000i64).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn no_request_is_parked_forever(ops in prop::collection::vec(op(), 1..60)) {
        let c = coordinator();
        let mut now = 0i64;
        let mut ids: Vec<String> = Vec::new();
        let mut joins: Vec<oneshot::Receiver<JoinResponse>> = Vec::new();
        let mut syncs: Vec<oneshot::Receiver<SyncResponse>> = Vec::new();
        let mut last_generation = 0;
        for op in ops {
            match op {
                Op::JoinNew => joins.push(c.join_group(join_req("g", "", &["range"]), now)),
                Op::Rejoin(i) => if let Some(id) = ids.get(i) {
                    joins.push(c.join_group(join_req("g", id, &["range"]), now));
                },
                Op::Sync(i) => if let Some(id) = ids.get(i) {
                    let generation = c.describe_group("g").generation_id;
                    let all: Vec<(&str, &str)> = ids.iter().map(|m| (m.as_str(), "x")).collect();
                    syncs.push(sync(&c, "g", id, generation, &all, now));
                },
                Op::Heartbeat(i) => if let Some(id) = ids.get(i) {
                    let generation = c.describe_group("g").generation_id;
                    c.heartbeat("g", id, None, generation, now);
                },
                Op::Leave(i) => if let Some(id) = ids.get(i) {
                    c.leave_group("g", &[LeavingMember { member_id: id.clone(), group_instance_id: None }], now);
                },
                Op::Advance(ms) => { now += ms; c.tick(now); }
            }
            // Learn member ids from answered joins.
            for rx in joins.iter_mut() {
                if let Ok(r) = rx.try_recv() {
                    if r.error_code == 0 && !ids.contains(&r.member_id) {
                        ids.push(r.member_id.clone());
                    }
                }
            }
            let d = c.describe_group("g");
            // "Dead" = unknown: not created yet, or removed by the expiry of an Empty group
            // without offsets (a later join starts a new group at generation 0).
            if d.state != "Dead" {
                prop_assert!(d.generation_id >= last_generation, "generation went back");
                last_generation = d.generation_id;
            } else {
                last_generation = 0;
            }
            if let Some(leader) = c.describe_group("g").members.first() {
                prop_assert!(!leader.member_id.is_empty());
            }
            if d.state == "Empty" {
                prop_assert!(d.members.is_empty());
            }
        }
        // Everyone goes silent: sessions and rebalances time out.
        for _ in 0..4 {
            now += i64::from(REBALANCE) + i64::from(SESSION);
            c.tick(now);
        }
        let d = c.describe_group("g");
        prop_assert!(d.state == "Empty" || d.state == "Dead", "ended {}", d.state);
        for mut rx in joins {
            prop_assert!(!matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
                "a JoinGroup is still parked");
        }
        for mut rx in syncs {
            prop_assert!(!matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
                "a SyncGroup is still parked");
        }
    }
}
