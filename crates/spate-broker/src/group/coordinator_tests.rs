//! Unit tests of the coordinator's state machine, driven without sockets and with explicit time.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::coordinator::{CommitPartition, CommitRequest, GroupCoordinator};
use super::member::MemberProtocol;
use super::types::{JoinRequest, JoinResponse, LeavingMember, SyncRequest, SyncResponse};
use super::{GroupConfig, GroupState};

pub(super) const SESSION: i32 = 10_000;
pub(super) const REBALANCE: i32 = 20_000;

fn code(e: ResponseError) -> i16 {
    e.code()
}

/// Kafka's defaults, except no initial rebalance delay (as Kafka's tests run).
pub(super) fn no_delay() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

pub(super) fn coordinator() -> GroupCoordinator {
    GroupCoordinator::in_memory(no_delay())
}

fn protocols(names: &[&str]) -> Vec<MemberProtocol> {
    names
        .iter()
        .map(|n| MemberProtocol {
            name: (*n).to_owned(),
            metadata: Bytes::from(format!("meta-{n}")),
        })
        .collect()
}

pub(super) fn join_req(group: &str, member: &str, names: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols(names),
        require_known_member_id: false,
    }
}

fn done<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) -> T {
    rx.try_recv().expect("response should be ready")
}

fn pending<T: std::fmt::Debug>(rx: &mut oneshot::Receiver<T>) {
    assert!(rx.try_recv().is_err(), "response should still be parked");
}

pub(super) fn sync(
    c: &GroupCoordinator,
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &str)],
    now: i64,
) -> oneshot::Receiver<SyncResponse> {
    c.sync_group(
        SyncRequest {
            group_id: group.into(),
            generation_id: generation,
            member_id: member.into(),
            assignments: assignments
                .iter()
                .map(|(m, a)| ((*m).to_owned(), Bytes::from((*a).to_owned())))
                .collect(),
            ..Default::default()
        },
        now,
    )
}

/// One member joins and syncs: the group is Stable at generation 1 with it as leader.
fn single_member_group(c: &GroupCoordinator, group: &str, now: i64) -> JoinResponse {
    let r = done(&mut c.join_group(join_req(group, "", &["range"]), now));
    assert_eq!(r.error_code, 0);
    let mut s = sync(
        c,
        group,
        &r.member_id,
        r.generation_id,
        &[(&r.member_id, "A")],
        now,
    );
    assert_eq!(done(&mut s).assignment, Bytes::from("A"));
    r
}

fn commit(
    c: &GroupCoordinator,
    group: &str,
    member: &str,
    generation: i32,
    offset: i64,
    now: i64,
) -> i16 {
    c.commit_offsets(
        CommitRequest {
            group_id: group.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            retention_time_ms: -1,
            api_version: 8,
            partitions: vec![CommitPartition {
                topic: "t".into(),
                partition: 0,
                offset,
                leader_epoch: 2,
                metadata: Some("m".into()),
            }],
        },
        now,
    )[0]
}

fn state(c: &GroupCoordinator, group: &str) -> String {
    c.describe_group(group).state
}

#[test]
fn two_step_join_then_single_member_generation() {
    let c = coordinator();
    let mut first = join_req("g", "", &["range"]);
    first.require_known_member_id = true;
    let r = done(&mut c.join_group(first.clone(), 0));
    assert_eq!(r.error_code, code(ResponseError::MemberIdRequired));
    assert!(r.member_id.starts_with("client-"), "{}", r.member_id);
    first.member_id = r.member_id.clone();
    let joined = done(&mut c.join_group(first, 1));
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, r.member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, Bytes::from("meta-range"));
    assert_eq!(state(&c, "g"), "CompletingRebalance");
    let mut s = sync(&c, "g", &r.member_id, 1, &[(&r.member_id, "A")], 2);
    assert_eq!(done(&mut s).assignment, Bytes::from("A"));
    assert_eq!(state(&c, "g"), "Stable");
}

#[test]
fn second_member_triggers_rebalance_and_leader_distributes() {
    let c = coordinator();
    let m1 = single_member_group(&c, "g", 0);
    let mut j2 = c.join_group(join_req("g", "", &["range"]), 10);
    pending(&mut j2);
    assert_eq!(state(&c, "g"), "PreparingRebalance");
    assert_eq!(
        c.heartbeat("g", &m1.member_id, None, 1, 20),
        code(ResponseError::RebalanceInProgress)
    );
    let mut j1 = c.join_group(join_req("g", &m1.member_id, &["range"]), 30);
    let r1 = done(&mut j1);
    let r2 = done(&mut j2);
    assert_eq!((r1.generation_id, r2.generation_id), (2, 2));
    assert_eq!(r1.leader, m1.member_id);
    assert_eq!(r1.members.len(), 2, "leader sees every member");
    assert!(r2.members.is_empty(), "followers see none");
    // The follower's SyncGroup waits for the leader's.
    let mut s2 = sync(&c, "g", &r2.member_id, 2, &[], 40);
    pending(&mut s2);
    let mut s1 = sync(
        &c,
        "g",
        &r1.member_id,
        2,
        &[(&r1.member_id, "P0"), (&r2.member_id, "P1")],
        50,
    );
    assert_eq!(done(&mut s1).assignment, Bytes::from("P0"));
    assert_eq!(done(&mut s2).assignment, Bytes::from("P1"));
    assert_eq!(state(&c, "g"), "Stable");
    assert_eq!(c.heartbeat("g", &r2.member_id, None, 2, 60), 0);
    // A heartbeat from the previous generation is fenced.
    assert_eq!(
        c.heartbeat("g", &r2.member_id, None, 1, 60),
        code(ResponseError::IllegalGeneration)
    );
}

#[test]
fn commit_rules_generation_membership_and_simple_commits() {
    let c = coordinator();
    let m = single_member_group(&c, "g", 0);
    assert_eq!(commit(&c, "g", &m.member_id, 1, 42, 5), 0);
    assert_eq!(
        commit(&c, "g", &m.member_id, 0, 43, 5),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        commit(&c, "g", "stranger", 1, 43, 5),
        code(ResponseError::UnknownMemberId)
    );
    // A simple (generation -1) commit is refused while the group has members...
    assert_eq!(
        commit(&c, "g", "", -1, 44, 5),
        code(ResponseError::UnknownMemberId)
    );
    let fetched = c.fetch_offsets("g", Some(&[("t".into(), vec![0, 1])]));
    assert_eq!(fetched[0].offset, 42);
    assert_eq!(fetched[0].leader_epoch, 2);
    assert_eq!(fetched[0].metadata, "m");
    assert_eq!(fetched[1].offset, -1);
    // ...and accepted for a group nobody manages; an unknown group fetches -1.
    assert_eq!(commit(&c, "simple", "", -1, 7, 5), 0);
    assert_eq!(c.fetch_offsets("simple", None)[0].offset, 7);
    assert_eq!(
        c.fetch_offsets("nobody", Some(&[("t".into(), vec![0])]))[0].offset,
        -1
    );
    assert!(c.fetch_offsets("nobody", None).is_empty());
    // A commit naming a generation for a group that does not exist is stale by definition.
    assert_eq!(
        commit(&c, "ghost", "m", 3, 1, 5),
        code(ResponseError::IllegalGeneration)
    );
}

#[test]
fn commits_are_accepted_during_preparing_rebalance_but_not_completing() {
    let c = coordinator();
    let m1 = single_member_group(&c, "g", 0);
    let _j2 = c.join_group(join_req("g", "", &["range"]), 10);
    // Eager members commit what they processed before rejoining: same generation is fine.
    assert_eq!(commit(&c, "g", &m1.member_id, 1, 5, 11), 0);
    let _j1 = c.join_group(join_req("g", &m1.member_id, &["range"]), 12);
    assert_eq!(state(&c, "g"), "CompletingRebalance");
    assert_eq!(
        commit(&c, "g", &m1.member_id, 2, 6, 13),
        code(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn session_timeout_removes_a_silent_member() {
    let c = coordinator();
    let m1 = single_member_group(&c, "g", 0);
    let mut j2 = c.join_group(join_req("g", "", &["range"]), 0);
    let _ = done(&mut c.join_group(join_req("g", &m1.member_id, &["range"]), 0));
    let r2 = done(&mut j2);
    let mut s2 = sync(&c, "g", &r2.member_id, 2, &[], 0);
    drop(sync(&c, "g", &m1.member_id, 2, &[], 0));
    let _ = done(&mut s2);
    // m1 keeps heartbeating, m2 goes silent.
    for t in (1000..=i64::from(SESSION)).step_by(1000) {
        assert_eq!(c.heartbeat("g", &m1.member_id, None, 2, t), 0);
        c.tick(t);
    }
    c.tick(i64::from(SESSION) + 1);
    assert_eq!(state(&c, "g"), "PreparingRebalance");
    assert_eq!(
        c.heartbeat("g", &r2.member_id, None, 2, 10_500),
        code(ResponseError::UnknownMemberId)
    );
    let r = done(&mut c.join_group(join_req("g", &m1.member_id, &["range"]), 10_600));
    assert_eq!(r.generation_id, 3);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let c = coordinator();
    let m1 = single_member_group(&c, "g", 0);
    let mut j2 = c.join_group(join_req("g", "", &["range"]), 100);
    // m1 keeps heartbeating (so its session holds) but never rejoins.
    for t in (1000..i64::from(REBALANCE)).step_by(1000) {
        c.heartbeat("g", &m1.member_id, None, 1, t);
        c.tick(t);
        pending(&mut j2);
    }
    c.tick(100 + i64::from(REBALANCE));
    let r2 = done(&mut j2);
    assert_eq!(r2.error_code, 0);
    assert_eq!(r2.generation_id, 2);
    assert_eq!(r2.leader, r2.member_id, "the leader that left is replaced");
    assert_eq!(r2.members.len(), 1);
}

#[test]
fn protocol_selection_and_inconsistent_protocols() {
    let c = coordinator();
    let a = done(&mut c.join_group(join_req("g", "", &["range", "roundrobin"]), 0));
    drop(sync(&c, "g", &a.member_id, 1, &[], 0));
    let mut jb = c.join_group(join_req("g", "", &["roundrobin", "range"]), 1);
    let mut jc = c.join_group(join_req("g", "", &["roundrobin"]), 1);
    let mut ja = c.join_group(join_req("g", &a.member_id, &["range", "roundrobin"]), 2);
    let (ra, rb, rc) = (done(&mut ja), done(&mut jb), done(&mut jc));
    // Only roundrobin is supported by all three.
    for r in [&ra, &rb, &rc] {
        assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
    }
    let bad = done(&mut c.join_group(join_req("g", "", &["sticky"]), 3));
    assert_eq!(
        bad.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
    let mut other_type = join_req("g", "", &["roundrobin"]);
    other_type.protocol_type = "connect".into();
    let bad = done(&mut c.join_group(other_type, 3));
    assert_eq!(
        bad.error_code,
        code(ResponseError::InconsistentGroupProtocol)
    );
}

#[test]
fn votes_pick_the_most_preferred_common_protocol() {
    let c = coordinator();
    let mut rxs = Vec::new();
    let a = done(&mut c.join_group(join_req("g", "", &["range", "roundrobin"]), 0));
    drop(sync(&c, "g", &a.member_id, 1, &[], 0));
    rxs.push(c.join_group(join_req("g", "", &["roundrobin", "range"]), 1));
    rxs.push(c.join_group(join_req("g", "", &["roundrobin", "range"]), 1));
    rxs.push(c.join_group(join_req("g", &a.member_id, &["range", "roundrobin"]), 2));
    for mut rx in rxs {
        assert_eq!(done(&mut rx).protocol_name.as_deref(), Some("roundrobin"));
    }
}

#[test]
fn session_timeout_bounds_are_enforced() {
    let c = coordinator();
    for bad in [5_999, 1_800_001] {
        let mut req = join_req("g", "", &["range"]);
        req.session_timeout_ms = bad;
        let r = done(&mut c.join_group(req, 0));
        assert_eq!(r.error_code, code(ResponseError::InvalidSessionTimeout));
    }
    let mut req = join_req("", "", &["range"]);
    req.session_timeout_ms = 6_000;
    assert_eq!(
        done(&mut c.join_group(req, 0)).error_code,
        code(ResponseError::InvalidGroupId)
    );
    let r = done(&mut c.join_group(join_req("g", "who", &["range"]), 0));
    assert_eq!(r.error_code, code(ResponseError::UnknownMemberId));
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let c = coordinator();
    let mut a_req = join_req("g", "", &["range"]);
    a_req.group_instance_id = Some("instance-a".into());
    let mut b_req = join_req("g", "", &["range"]);
    b_req.group_instance_id = Some("instance-b".into());
    let a = done(&mut c.join_group(a_req.clone(), 0));
    drop(sync(&c, "g", &a.member_id, 1, &[], 0));
    let mut jb = c.join_group(b_req.clone(), 1);
    let mut a_rejoin = a_req.clone();
    a_rejoin.member_id = a.member_id.clone();
    let a2 = done(&mut c.join_group(a_rejoin, 2));
    let b = done(&mut jb);
    assert_eq!(a2.generation_id, 2);
    let mut sb = sync(&c, "g", &b.member_id, 2, &[], 3);
    drop(sync(
        &c,
        "g",
        &a.member_id,
        2,
        &[(&a.member_id, "PA"), (&b.member_id, "PB")],
        3,
    ));
    assert_eq!(done(&mut sb).assignment, Bytes::from("PB"));

    // b restarts: same instance id, no member id. No rebalance; same generation.
    let b2 = done(&mut c.join_group(b_req.clone(), 4));
    assert_eq!(b2.error_code, 0);
    assert_eq!(b2.generation_id, 2);
    assert_ne!(b2.member_id, b.member_id);
    assert_eq!(b2.leader, a.member_id);
    assert_eq!(state(&c, "g"), "Stable");
    let mut s = c.sync_group(
        SyncRequest {
            group_id: "g".into(),
            generation_id: 2,
            member_id: b2.member_id.clone(),
            group_instance_id: Some("instance-b".into()),
            ..Default::default()
        },
        5,
    );
    assert_eq!(done(&mut s).assignment, Bytes::from("PB"));
    // The leader is undisturbed; the old incarnation is fenced.
    assert_eq!(c.heartbeat("g", &a.member_id, None, 2, 6), 0);
    assert_eq!(
        c.heartbeat("g", &b.member_id, Some("instance-b"), 2, 6),
        code(ResponseError::FencedInstanceId)
    );
    assert_eq!(c.heartbeat("g", &b2.member_id, Some("instance-b"), 2, 6), 0);
}

#[test]
fn static_restart_of_the_leader_does_not_make_it_assign() {
    let c = coordinator();
    let mut a_req = join_req("g", "", &["range"]);
    a_req.group_instance_id = Some("ia".into());
    let a = done(&mut c.join_group(a_req.clone(), 0));
    drop(sync(&c, "g", &a.member_id, 1, &[(&a.member_id, "X")], 0));
    let a2 = done(&mut c.join_group(a_req, 1));
    // The old leader id comes back, so the new incarnation acts as a follower.
    assert_eq!(a2.leader, a.member_id);
    assert!(a2.members.is_empty());
    let mut s = sync(&c, "g", &a2.member_id, 1, &[], 2);
    assert_eq!(done(&mut s).assignment, Bytes::from("X"));
}

#[test]
fn leave_group_rebalances_and_empties() {
    let c = coordinator();
    let m1 = single_member_group(&c, "g", 0);
    let mut j2 = c.join_group(join_req("g", "", &["range"]), 1);
    drop(c.join_group(join_req("g", &m1.member_id, &["range"]), 2));
    let r2 = done(&mut j2);
    let (top, errs) = c.leave_group(
        "g",
        &[LeavingMember {
            member_id: m1.member_id.clone(),
            group_instance_id: None,
        }],
        3,
    );
    assert_eq!((top, errs), (0, vec![0]));
    assert_eq!(state(&c, "g"), "PreparingRebalance");
    let r = done(&mut c.join_group(join_req("g", &r2.member_id, &["range"]), 4));
    assert_eq!(r.leader, r2.member_id);
    assert_eq!(r.generation_id, 3);
    let (_, errs) = c.leave_group(
        "g",
        &[
            LeavingMember {
                member_id: r2.member_id.clone(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: "nope".into(),
                group_instance_id: None,
            },
        ],
        5,
    );
    assert_eq!(errs, vec![0, code(ResponseError::UnknownMemberId)]);
    assert_eq!(state(&c, "g"), "Empty");
    assert_eq!(c.describe_group("g").members.len(), 0);
}

#[test]
fn a_follower_that_never_syncs_is_removed() {
    let c = coordinator();
    let m1 = single_member_group(&c, "g", 0);
    let mut j2 = c.join_group(join_req("g", "", &["range"]), 0);
    let _ = done(&mut c.join_group(join_req("g", &m1.member_id, &["range"]), 0));
    let r2 = done(&mut j2);
    drop(sync(&c, "g", &m1.member_id, 2, &[(&m1.member_id, "A")], 1));
    assert_eq!(state(&c, "g"), "Stable");
    c.heartbeat("g", &m1.member_id, None, 2, i64::from(REBALANCE) - 1);
    c.tick(i64::from(REBALANCE) + 1);
    assert_eq!(state(&c, "g"), "PreparingRebalance");
    assert_eq!(
        c.heartbeat("g", &r2.member_id, None, 2, i64::from(REBALANCE) + 2),
        code(ResponseError::UnknownMemberId)
    );
}

#[test]
fn initial_rebalance_delay_batches_first_joiners() {
    let c = GroupCoordinator::in_memory(GroupConfig {
        initial_rebalance_delay_ms: 1000,
        ..GroupConfig::default()
    });
    let mut j1 = c.join_group(join_req("g", "", &["range"]), 0);
    c.tick(500);
    pending(&mut j1);
    let mut j2 = c.join_group(join_req("g", "", &["range"]), 600);
    pending(&mut j2);
    // A member joined during the delay: it is extended once more (Kafka's InitialDelayedJoin).
    c.tick(1000);
    pending(&mut j1);
    c.tick(1999);
    pending(&mut j1);
    c.tick(2000);
    let (r1, r2) = (done(&mut j1), done(&mut j2));
    assert_eq!((r1.generation_id, r2.generation_id), (1, 1));
    assert_eq!(r1.members.len() + r2.members.len(), 2);
}

#[test]
fn initial_rebalance_delay_is_kafkas_3s_by_default_and_capped_by_rebalance_timeout() {
    let c = GroupCoordinator::in_memory(GroupConfig::default());
    let mut j1 = c.join_group(join_req("g", "", &["range"]), 0);
    c.tick(2_999);
    pending(&mut j1);
    c.tick(3_000);
    assert_eq!(done(&mut j1).generation_id, 1);
    // A rebalance timeout shorter than the delay caps it.
    let mut short = join_req("h", "", &["range"]);
    short.rebalance_timeout_ms = 1_000;
    let mut j = c.join_group(short, 0);
    c.tick(999);
    pending(&mut j);
    c.tick(1_000);
    assert_eq!(done(&mut j).generation_id, 1);
}

#[test]
fn delete_groups_and_list_with_state_filter() {
    let c = coordinator();
    let m = single_member_group(&c, "active", 0);
    assert_eq!(commit(&c, "active", &m.member_id, 1, 3, 1), 0);
    assert_eq!(commit(&c, "idle", "", -1, 3, 1), 0);
    assert_eq!(c.delete_group("active"), code(ResponseError::NonEmptyGroup));
    assert_eq!(
        c.delete_group("missing"),
        code(ResponseError::GroupIdNotFound)
    );
    let all: Vec<String> = c.list_groups(&[]).into_iter().map(|g| g.group_id).collect();
    assert_eq!(all, vec!["active".to_owned(), "idle".to_owned()]);
    let empty = c.list_groups(&["empty".into()]);
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].group_id, "idle");
    assert_eq!(
        c.list_groups(&["Stable".into()])[0].protocol_type,
        "consumer"
    );
    assert_eq!(c.delete_group("idle"), 0);
    assert!(c.fetch_offsets("idle", None).is_empty());
    assert_eq!(c.describe_group("idle").state, "Dead");
}

#[test]
fn offsets_of_an_empty_group_expire_after_retention() {
    let c = GroupCoordinator::in_memory(GroupConfig {
        offsets_retention_minutes: 1,
        offsets_retention_check_interval_ms: 1000,
        ..no_delay()
    });
    let m = single_member_group(&c, "g", 0);
    assert_eq!(commit(&c, "g", &m.member_id, 1, 3, 0), 0);
    c.leave_group(
        "g",
        &[LeavingMember {
            member_id: m.member_id.clone(),
            group_instance_id: None,
        }],
        10_000,
    );
    assert_eq!(state(&c, "g"), "Empty");
    c.tick(65_000);
    assert_eq!(c.fetch_offsets("g", None).len(), 1, "empty for 55 s only");
    c.tick(70_001);
    assert!(c.fetch_offsets("g", None).is_empty());
    assert!(
        c.list_groups(&[]).is_empty(),
        "empty group without offsets removed"
    );
}

#[test]
fn offset_delete_refuses_subscribed_topics() {
    use bytes::BufMut;
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let mut meta = bytes::BytesMut::new();
    meta.put_i16(1);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_static_str("t")])
        .encode(&mut meta, 1)
        .unwrap();
    let c = coordinator();
    let mut req = join_req("g", "", &[]);
    req.protocols = vec![MemberProtocol {
        name: "range".into(),
        metadata: meta.freeze(),
    }];
    let r = done(&mut c.join_group(req, 0));
    drop(sync(&c, "g", &r.member_id, 1, &[], 0));
    assert_eq!(commit(&c, "g", &r.member_id, 1, 3, 0), 0);
    c.commit_offsets(
        CommitRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: r.member_id.clone(),
            retention_time_ms: -1,
            api_version: 8,
            partitions: vec![CommitPartition {
                topic: "other".into(),
                partition: 0,
                offset: 1,
                leader_epoch: -1,
                metadata: None,
            }],
            ..Default::default()
        },
        0,
    );
    let (top, errs) = c.delete_offsets("g", &[("t".into(), 0), ("other".into(), 0)]);
    assert_eq!(top, 0);
    assert_eq!(errs, vec![code(ResponseError::GroupSubscribedToTopic), 0]);
    let left: Vec<String> = c
        .fetch_offsets("g", None)
        .into_iter()
        .map(|f| f.topic)
        .collect();
    assert_eq!(left, vec!["t".to_owned()]);
    assert_eq!(
        c.delete_offsets("nope", &[]).0,
        code(ResponseError::GroupIdNotFound)
    );
}

#[test]
fn committed_offsets_survive_a_coordinator_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = GroupCoordinator::open(no_delay(), dir.path(), 0).unwrap();
        let m = single_member_group(&c, "g", 0);
        assert_eq!(commit(&c, "g", &m.member_id, 1, 99, 1), 0);
    }
    let c = GroupCoordinator::open(no_delay(), dir.path(), 10).unwrap();
    let f = c.fetch_offsets("g", Some(&[("t".into(), vec![0])]));
    assert_eq!((f[0].offset, f[0].leader_epoch), (99, 2));
    // The membership came back too: the member carries on without a rebalance.
    let d = c.describe_group("g");
    assert_eq!((d.state.as_str(), d.generation_id), ("Stable", 1));
    assert_eq!(d.members[0].assignment, Bytes::from("A"));
    assert_eq!(c.heartbeat("g", &d.members[0].member_id, None, 1, 20), 0);
    // A member that does not come back is removed when its session (counted from the load)
    // ends, and the group is Empty; then a fresh member can join.
    c.tick(20 + i64::from(SESSION));
    assert_eq!(c.list_groups(&[])[0].state, GroupState::Empty.as_str());
    let r = done(&mut c.join_group(join_req("g", "", &["range"]), 20_000));
    assert_eq!((r.error_code, r.generation_id), (0, 3));
}

#[test]
fn static_members_keep_generation_and_assignment_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (m, generation) = {
        let c = GroupCoordinator::open(no_delay(), dir.path(), 0).unwrap();
        let mut req = join_req("g", "", &["range"]);
        req.group_instance_id = Some("i1".into());
        let r = done(&mut c.join_group(req.clone(), 0));
        let mut s = sync(&c, "g", &r.member_id, 1, &[(&r.member_id, "P0")], 1);
        assert_eq!(done(&mut s).error_code, 0);
        // The static member restarts (new member id, no rebalance): stored again.
        let again = done(&mut c.join_group(req, 2));
        assert_eq!(again.generation_id, 1);
        (again.member_id, again.generation_id)
    };
    let c = GroupCoordinator::open(no_delay(), dir.path(), 10).unwrap();
    assert_eq!(c.heartbeat("g", &m, Some("i1"), generation, 20), 0);
    let mut s = sync(&c, "g", &m, generation, &[], 30);
    assert_eq!(done(&mut s).assignment, Bytes::from("P0"));
    assert_eq!(c.describe_group("g").state, "Stable");
}

#[test]
fn metadata_too_large_is_rejected_per_partition() {
    let c = coordinator();
    let errs = c.commit_offsets(
        CommitRequest {
            group_id: "g".into(),
            generation_id: -1,
            retention_time_ms: -1,
            api_version: 8,
            partitions: vec![
                CommitPartition {
                    topic: "t".into(),
                    partition: 0,
                    offset: 1,
                    leader_epoch: -1,
                    metadata: Some("x".repeat(5000)),
                },
                CommitPartition {
                    topic: "t".into(),
                    partition: 1,
                    offset: 1,
                    leader_epoch: -1,
                    metadata: None,
                },
            ],
            ..Default::default()
        },
        0,
    );
    assert_eq!(errs, vec![code(ResponseError::OffsetMetadataTooLarge), 0]);
}

#[test]
fn rejoin_during_completing_rebalance_is_answered_again_and_fencing_on_join() {
    let c = coordinator();
    let mut a_req = join_req("g", "", &["range"]);
    a_req.group_instance_id = Some("ia".into());
    let a = done(&mut c.join_group(a_req.clone(), 0));
    assert_eq!(state(&c, "g"), "CompletingRebalance");
    // A JoinGroup retried with the same protocols gets the same generation back, no rebalance.
    let mut again = a_req.clone();
    again.member_id = a.member_id.clone();
    let r = done(&mut c.join_group(again.clone(), 1));
    assert_eq!(
        (r.generation_id, r.leader.as_str()),
        (1, a.member_id.as_str())
    );
    assert_eq!(state(&c, "g"), "CompletingRebalance");
    // The right instance id with a wrong member id is a zombie: fenced.
    again.member_id = "zombie".into();
    assert_eq!(
        done(&mut c.join_group(again, 2)).error_code,
        code(ResponseError::FencedInstanceId)
    );
    // Leaving by instance id alone (v3+ LeaveGroup) removes the static member.
    let (_, errs) = c.leave_group(
        "g",
        &[LeavingMember {
            member_id: String::new(),
            group_instance_id: Some("ia".into()),
        }],
        3,
    );
    assert_eq!(errs, vec![0]);
    assert_eq!(state(&c, "g"), "Empty");
}

#[test]
fn a_pending_member_that_never_returns_expires() {
    let c = coordinator();
    let m1 = single_member_group(&c, "g", 0);
    let mut req = join_req("g", "", &["range"]);
    req.require_known_member_id = true;
    let pending_id = done(&mut c.join_group(req.clone(), 0)).member_id;
    // Handing out an id does not rebalance the group...
    assert_eq!(state(&c, "g"), "Stable");
    assert_eq!(c.heartbeat("g", &m1.member_id, None, 1, 100), 0);
    // ...and the id is only good for one session timeout.
    c.heartbeat("g", &m1.member_id, None, 1, i64::from(SESSION) - 100);
    c.tick(i64::from(SESSION) + 1);
    req.member_id = pending_id;
    assert_eq!(
        done(&mut c.join_group(req, i64::from(SESSION) + 2)).error_code,
        code(ResponseError::UnknownMemberId)
    );
}

/// The sequence of a kafka-python leader that abandoned its own join (see
/// `tests/clients/python_coop_commit.py`): it rejoins alone in a Stable group (generation 2),
/// syncs, and then sends nothing more. A second member's JoinGroup waits for it until its
/// session, counted from its SyncGroup, runs out; the join then completes without it, well
/// before the rebalance timeout. Kafka's coordinator decides the same: a member that is not
/// waiting in JoinGroup or SyncGroup must heartbeat within its session.
#[test]
fn a_leader_silent_after_its_sync_is_expired_from_the_next_rebalance() {
    let c = coordinator();
    // kafka-python's max.poll.interval.ms, its rebalance timeout.
    let join = |member: &str| JoinRequest {
        rebalance_timeout_ms: 300_000,
        ..join_req("g", member, &["cooperative-sticky"])
    };
    let m1 = done(&mut c.join_group(join(""), 0));
    let _ = done(&mut sync(
        &c,
        "g",
        &m1.member_id,
        1,
        &[(&m1.member_id, "-")],
        10,
    ));
    let r = done(&mut c.join_group(join(&m1.member_id), 200));
    assert_eq!(
        (r.generation_id, r.leader.as_str()),
        (2, m1.member_id.as_str())
    );
    let synced_at = 230;
    let assignment = [(m1.member_id.as_str(), "P0-5")];
    let _ = done(&mut sync(&c, "g", &m1.member_id, 2, &assignment, synced_at));
    let mut j2 = c.join_group(join(""), 400);
    assert_eq!(state(&c, "g"), "PreparingRebalance");
    let expiry = synced_at + i64::from(SESSION);
    for t in (500..expiry).step_by(500).chain([expiry - 1]) {
        c.tick(t);
        pending(&mut j2);
    }
    c.tick(expiry);
    let r2 = done(&mut j2);
    assert_eq!((r2.error_code, r2.generation_id), (0, 3));
    assert_eq!(
        r2.leader, r2.member_id,
        "the newcomer leads the generation alone"
    );
    assert_eq!(r2.members.len(), 1);
    assert_eq!(
        c.heartbeat("g", &m1.member_id, None, 2, expiry + 1),
        code(ResponseError::UnknownMemberId)
    );
}
