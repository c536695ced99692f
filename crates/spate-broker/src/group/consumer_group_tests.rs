//! The consumer group protocol's rules through the coordinator, without a network: joins and
//! epochs, the revoke-before-reassign handshake, fencing, the request errors, static members,
//! session and rebalance timeouts, group type conflicts and commits with the member epoch.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::assignors::Assignment;
use super::commits::{CommitPartition, CommitRequest};
use super::consumer_coordinator::GroupOverrides;
use super::consumer_group::{HeartbeatAnswer, HeartbeatError, HeartbeatRequest, TopicImage};
use super::coordinator::GroupCoordinator;
use super::types::JoinRequest;
use super::GroupConfig;

fn coordinator() -> GroupCoordinator {
    GroupCoordinator::in_memory(GroupConfig {
        consumer_max_size: 3,
        ..Default::default()
    })
}

fn image(partitions: i32) -> TopicImage {
    let mut i = TopicImage::default();
    i.insert("t", Uuid::from_u128(7), partitions);
    i
}

fn join(member: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 10_000,
        subscribed_topic_names: Some(vec!["t".into()]),
        owned: Some(Assignment::new()),
        ..Default::default()
    }
}

fn beat(member: &str, epoch: i32, owned: &[i32]) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned_of(owned)),
        ..Default::default()
    }
}

fn owned_of(ps: &[i32]) -> Assignment {
    let mut a = Assignment::new();
    if !ps.is_empty() {
        a.insert("t".into(), ps.iter().copied().collect());
    }
    a
}

fn send(
    c: &GroupCoordinator,
    req: &HeartbeatRequest,
    partitions: i32,
    now: i64,
) -> Result<HeartbeatAnswer, HeartbeatError> {
    c.consumer_heartbeat(req, 1, &image(partitions), GroupOverrides::default(), now)
}

fn parts(a: &HeartbeatAnswer) -> BTreeSet<i32> {
    a.assignment
        .as_ref()
        .and_then(|a| a.get("t").cloned())
        .unwrap_or_default()
}

fn error(r: Result<HeartbeatAnswer, HeartbeatError>) -> ResponseError {
    match r {
        Ok(a) => panic!("expected an error, got {a:?}"),
        Err((e, _)) => e,
    }
}

#[test]
fn second_member_gets_partitions_only_after_the_first_revokes() {
    let c = coordinator();
    let a = send(&c, &join("a"), 4, 0).unwrap();
    assert_eq!(a.member_epoch, 1);
    assert_eq!(parts(&a), (0..4).collect());
    assert_eq!(a.heartbeat_interval_ms, 5000);
    let b = send(&c, &join("b"), 4, 10).unwrap();
    assert_eq!(b.member_epoch, 2);
    // b's target is two of a's partitions: none is free yet.
    assert!(parts(&b).is_empty());
    assert_eq!(c.consumer_group("g").unwrap().state(), "Reconciling");
    // a is told to keep only its half; its epoch does not move until it revoked.
    let a2 = send(&c, &beat("a", 1, &[0, 1, 2, 3]), 4, 20).unwrap();
    assert_eq!(a2.member_epoch, 1);
    let kept = parts(&a2);
    assert_eq!(kept.len(), 2);
    // b still waits while a lists the revoked partitions as owned.
    let b2 = send(&c, &beat("b", 2, &[]), 4, 30).unwrap();
    assert_eq!(b2.assignment, None);
    let owned: Vec<i32> = kept.iter().copied().collect();
    let a3 = send(&c, &beat("a", 1, &owned), 4, 40).unwrap();
    assert_eq!(a3.member_epoch, 2);
    let b3 = send(&c, &beat("b", 2, &[]), 4, 50).unwrap();
    let got = parts(&b3);
    assert_eq!(got.len(), 2);
    assert!(got.is_disjoint(&kept));
    assert_eq!(c.consumer_group("g").unwrap().state(), "Stable");
}

#[test]
fn epochs_are_fenced_and_lost_responses_tolerated() {
    let c = coordinator();
    let a = send(&c, &join("a"), 2, 0).unwrap();
    assert_eq!(
        error(send(&c, &beat("a", 5, &[]), 2, 1)),
        ResponseError::FencedMemberEpoch
    );
    assert_eq!(
        error(send(&c, &beat("x", 1, &[]), 2, 1)),
        ResponseError::UnknownMemberId
    );
    // New partitions bump the group epoch: the member moves to epoch 2.
    let a2 = send(&c, &beat("a", a.member_epoch, &[0, 1]), 3, 2).unwrap();
    assert_eq!(a2.member_epoch, 2);
    assert_eq!(parts(&a2), (0..3).collect());
    // A heartbeat with the previous epoch (its response was lost) is accepted ...
    assert!(send(&c, &beat("a", 1, &[0, 1]), 3, 3).is_ok());
    // ... but not one from further back.
    let a3 = send(&c, &beat("a", 2, &[0, 1, 2]), 4, 4).unwrap();
    assert_eq!(a3.member_epoch, 3);
    assert_eq!(
        error(send(&c, &beat("a", 1, &[0]), 4, 5)),
        ResponseError::FencedMemberEpoch
    );
}

#[test]
fn request_errors_are_kafkas() {
    let c = coordinator();
    let mut r = join("a");
    r.rebalance_timeout_ms = -1;
    assert_eq!(error(send(&c, &r, 1, 0)), ResponseError::InvalidRequest);
    let mut r = join("a");
    r.subscribed_topic_names = None;
    assert_eq!(error(send(&c, &r, 1, 0)), ResponseError::InvalidRequest);
    let mut r = join("a");
    r.owned = Some(owned_of(&[0]));
    assert_eq!(error(send(&c, &r, 1, 0)), ResponseError::InvalidRequest);
    let mut r = join("a");
    r.server_assignor = Some("sticky".into());
    assert_eq!(
        error(send(&c, &r, 1, 0)),
        ResponseError::UnsupportedAssignor
    );
    // v1 (KIP-1082): the client names itself; v0 lets the broker choose.
    assert_eq!(
        error(send(&c, &join(""), 1, 0)),
        ResponseError::InvalidRequest
    );
    let v0 = c
        .consumer_heartbeat(&join(""), 0, &image(1), GroupOverrides::default(), 0)
        .unwrap();
    assert_eq!(v0.member_id.len(), 32);
    assert_eq!(
        error(send(&c, &beat("a", -3, &[]), 1, 0)),
        ResponseError::InvalidRequest
    );
    send(&c, &join("b"), 1, 0).unwrap();
    send(&c, &join("c"), 1, 0).unwrap();
    assert_eq!(
        error(send(&c, &join("d"), 1, 0)),
        ResponseError::GroupMaxSizeReached
    );
}

#[test]
fn leave_and_session_timeout_free_partitions() {
    let c = coordinator();
    let a = send(&c, &join("a"), 2, 0).unwrap();
    send(&c, &join("b"), 2, 0).unwrap();
    let left = send(&c, &beat("a", -1, &[]), 2, 1).unwrap();
    assert_eq!(left.member_epoch, -1);
    assert_eq!(
        error(send(&c, &beat("a", a.member_epoch, &[]), 2, 2)),
        ResponseError::UnknownMemberId
    );
    // b gets everything; then its session (45 s by default) runs out.
    let b = send(&c, &beat("b", 2, &[]), 2, 3).unwrap();
    assert_eq!(parts(&b), (0..2).collect());
    c.tick(3 + 44_000);
    assert_eq!(c.consumer_group("g").unwrap().members.len(), 1);
    c.tick(3 + 45_000);
    assert!(c.consumer_group("g").unwrap().members.is_empty());
    assert_eq!(c.consumer_group("g").unwrap().state(), "Empty");
}

#[test]
fn a_member_that_does_not_revoke_is_removed_after_its_rebalance_timeout() {
    let c = coordinator();
    let a = send(&c, &join("a"), 2, 0).unwrap();
    send(&c, &join("b"), 2, 0).unwrap();
    // a never stops listing both partitions.
    send(&c, &beat("a", a.member_epoch, &[0, 1]), 2, 100).unwrap();
    send(&c, &beat("a", a.member_epoch, &[0, 1]), 2, 5_000).unwrap();
    c.tick(100 + 10_000);
    let g = c.consumer_group("g").unwrap();
    assert_eq!(g.members.keys().collect::<Vec<_>>(), vec!["b"]);
}

#[test]
fn static_member_keeps_its_partitions_across_a_restart() {
    let c = coordinator();
    let mut r = join("a1");
    r.instance_id = Some("i".into());
    let a = send(&c, &r, 2, 0).unwrap();
    send(&c, &join("b"), 2, 0).unwrap();
    let mut again = beat("a1", a.member_epoch, &[0, 1]);
    again.instance_id = Some("i".into());
    let a = send(&c, &again, 2, 1).unwrap();
    let kept = parts(&a);
    // A second incarnation while the first is alive: UNRELEASED_INSTANCE_ID.
    let mut twin = join("a2");
    twin.instance_id = Some("i".into());
    assert_eq!(
        error(send(&c, &twin, 2, 2)),
        ResponseError::UnreleasedInstanceId
    );
    let mut leave = beat("a1", a.member_epoch, &[]);
    leave.member_epoch = -2;
    leave.instance_id = Some("i".into());
    assert_eq!(send(&c, &leave, 2, 3).unwrap().member_epoch, -2);
    let epoch = c.consumer_group("g").unwrap().group_epoch;
    let back = send(&c, &twin, 2, 4).unwrap();
    assert_eq!(
        c.consumer_group("g").unwrap().group_epoch,
        epoch,
        "no rebalance"
    );
    assert!(back.member_epoch > 0);
    assert_eq!(
        parts(&back),
        kept,
        "the new incarnation owns what the old one kept"
    );
    let g = c.consumer_group("g").unwrap();
    assert!(g.members.contains_key("a2") && !g.members.contains_key("a1"));
}

#[test]
fn group_types_do_not_mix_while_members_exist() {
    let c = coordinator();
    send(&c, &join("a"), 1, 0).unwrap();
    let classic = JoinRequest {
        group_id: "g".into(),
        client_id: "c".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![super::member::MemberProtocol {
            name: "range".into(),
            metadata: Default::default(),
        }],
        ..Default::default()
    };
    let mut rx = c.join_group(classic.clone(), 1);
    assert_eq!(
        rx.try_recv().unwrap().error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
    // Empty again: a classic member may take the group over, and then a consumer-protocol
    // heartbeat is refused.
    send(&c, &beat("a", -1, &[]), 1, 2).unwrap();
    let mut classic2 = classic;
    classic2.group_id = "g".into();
    let _rx = c.join_group(classic2, 3);
    assert!(!c.is_consumer_group("g"));
    assert_eq!(
        error(send(&c, &join("b"), 1, 4)),
        ResponseError::GroupIdNotFound
    );
}

#[test]
fn commits_carry_the_member_epoch() {
    let c = coordinator();
    let a = send(&c, &join("a"), 1, 0).unwrap();
    let commit = |member: &str, epoch: i32, version: i16| {
        c.commit_offsets(
            CommitRequest {
                group_id: "g".into(),
                generation_id: epoch,
                member_id: member.into(),
                api_version: version,
                retention_time_ms: -1,
                partitions: vec![CommitPartition {
                    topic: "t".into(),
                    partition: 0,
                    offset: 5,
                    leader_epoch: -1,
                    metadata: None,
                }],
                ..Default::default()
            },
            1,
        )[0]
    };
    assert_eq!(commit("a", a.member_epoch, 9), 0);
    assert_eq!(
        commit("a", a.member_epoch + 1, 9),
        ResponseError::StaleMemberEpoch.code()
    );
    assert_eq!(
        commit("zz", a.member_epoch, 9),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        commit("a", a.member_epoch, 8),
        ResponseError::UnsupportedVersion.code()
    );
    assert_eq!(commit("", -1, 9), ResponseError::UnknownMemberId.code());
    assert_eq!(
        c.validate_offset_fetch("g", Some("a"), a.member_epoch),
        Ok(())
    );
    assert_eq!(
        c.validate_offset_fetch("g", Some("a"), 0),
        Err(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(c.validate_offset_fetch("g", None, -1), Ok(()));
}

#[test]
fn regex_subscriptions_follow_the_topics_that_exist() {
    let c = coordinator();
    let mut images = TopicImage::default();
    images.insert("pre-a", Uuid::from_u128(1), 2);
    images.insert("other", Uuid::from_u128(2), 2);
    let beat_with = |req: &HeartbeatRequest, image: &TopicImage, now: i64| {
        c.consumer_heartbeat(req, 1, image, GroupOverrides::default(), now)
    };
    let mut first = join("a");
    first.subscribed_topic_names = Some(vec![]);
    first.subscribed_topic_regex = Some("pre-.*".into());
    let a = beat_with(&first, &images, 0).unwrap();
    let topics = |a: &HeartbeatAnswer| -> Vec<String> {
        a.assignment
            .as_ref()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(topics(&a), vec!["pre-a"]);
    // A topic created later that matches is assigned at the next heartbeat.
    images.insert("pre-b", Uuid::from_u128(3), 1);
    let mut next = beat("a", a.member_epoch, &[]);
    let mut owned = Assignment::new();
    owned.insert("pre-a".into(), [0, 1].into());
    next.owned = Some(owned);
    let a2 = beat_with(&next, &images, 10).unwrap();
    assert_eq!(a2.member_epoch, a.member_epoch + 1);
    assert_eq!(topics(&a2), vec!["pre-a", "pre-b"]);
    let described = c.consumer_group("g").unwrap();
    assert_eq!(
        described.members["a"].subscribed_regex.as_deref(),
        Some("pre-.*")
    );
    // An empty regex clears it.
    let mut clear = beat("a", a2.member_epoch, &[]);
    clear.subscribed_topic_names = Some(vec!["other".into()]);
    clear.subscribed_topic_regex = Some(String::new());
    clear.owned = None;
    beat_with(&clear, &images, 20).unwrap();
    assert_eq!(
        c.consumer_group("g").unwrap().members["a"].subscribed_regex,
        None
    );

    // Kafka's errors: a pattern RE2 refuses, and a first request with neither names nor regex.
    let mut bad = join("b");
    bad.subscribed_topic_regex = Some("pre-(".into());
    let (code, message) = beat_with(&bad, &images, 30).unwrap_err();
    assert_eq!(code, ResponseError::InvalidRegularExpression);
    assert!(message.contains("pre-("), "{message}");
    let mut neither = join("b");
    neither.subscribed_topic_names = Some(vec![]);
    neither.subscribed_topic_regex = Some(String::new());
    assert_eq!(
        error(beat_with(&neither, &images, 40)),
        ResponseError::InvalidRequest
    );
}

#[test]
fn an_empty_classic_group_becomes_a_consumer_group_keeping_its_offsets() {
    let c = coordinator();
    // A classic group that only stores offsets (a simple commit: no generation, no member).
    let errors = c.commit_offsets(
        CommitRequest {
            group_id: "g".into(),
            generation_id: -1,
            member_id: String::new(),
            api_version: 8,
            retention_time_ms: -1,
            partitions: vec![CommitPartition {
                topic: "t".into(),
                partition: 1,
                offset: 42,
                leader_epoch: -1,
                metadata: None,
            }],
            ..Default::default()
        },
        0,
    );
    assert_eq!(errors, vec![0]);
    assert!(!c.is_consumer_group("g"));
    // A heartbeat that is not a join (epoch > 0) does not convert it.
    assert_eq!(
        error(send(&c, &beat("a", 1, &[]), 2, 1)),
        ResponseError::GroupIdNotFound
    );
    let a = send(&c, &join("a"), 2, 2).unwrap();
    assert_eq!(a.member_epoch, 1);
    assert!(c.is_consumer_group("g"));
    let fetched = c.fetch_offsets("g", Some(&[("t".to_owned(), vec![1])]));
    assert_eq!(fetched[0].offset, 42);
}
