//! The offset-commit decision table: every combination of group state × generation × member id
//! × group instance id, for OffsetCommit and TxnOffsetCommit, checked against the codes Kafka's
//! coordinator answers (`ClassicGroup.validateOffsetCommit` and
//! `OffsetMetadataManager.validate(Transactional)OffsetCommit`). The expected codes are written
//! out by hand, row by row, not computed.

use kafka_protocol::ResponseError;

use super::commit_rules::{CommitPath, Committer};
use super::coordinator::{CommitPartition, CommitRequest, GroupCoordinator};
use super::coordinator_tests::{coordinator, join_req, sync};
use super::GroupState;

const OK: i16 = 0;
const U: i16 = ResponseError::UnknownMemberId.code();
const F: i16 = ResponseError::FencedInstanceId.code();
const I: i16 = ResponseError::IllegalGeneration.code();
const R: i16 = ResponseError::RebalanceInProgress.code();
const C: i16 = ResponseError::CoordinatorNotAvailable.code();
const N: i16 = ResponseError::GroupIdNotFound.code();

/// The columns of the table.
const STATES: [GroupState; 5] = [
    GroupState::Empty,
    GroupState::PreparingRebalance,
    GroupState::CompletingRebalance,
    GroupState::Stable,
    GroupState::Dead,
];

#[derive(Debug, Clone, Copy)]
enum Gen {
    Current,
    Stale,
    None,
}

#[derive(Debug, Clone, Copy)]
enum Who {
    /// The static member "i1" of the current generation.
    Member,
    Stranger,
    NoId,
}

#[derive(Debug, Clone, Copy)]
enum Instance {
    Absent,
    /// "i1", the member's own instance id.
    Own,
    /// An instance id the group has never seen.
    Unknown,
}

/// A group with the static member `i1` in `state`; returns the member id and generation.
fn group_in(state: GroupState) -> (GroupCoordinator, String, i32) {
    let c = coordinator();
    let mut req = join_req("g", "", &["range"]);
    req.group_instance_id = Some("i1".into());
    let joined = c.join_group(req.clone(), 0).try_recv().unwrap();
    let m = joined.member_id.clone();
    let mut s = sync(&c, "g", &m, 1, &[(&m, "A")], 1);
    assert_eq!(s.try_recv().unwrap().error_code, 0);
    let generation = match state {
        GroupState::Stable | GroupState::Dead => 1,
        GroupState::PreparingRebalance => {
            // A second member's JoinGroup stays parked until `i1` rejoins.
            let _parked = c.join_group(join_req("g", "", &["range"]), 2);
            1
        }
        GroupState::CompletingRebalance => {
            req.member_id = m.clone();
            let r = c.join_group(req, 2).try_recv().unwrap();
            assert_eq!(r.generation_id, 2);
            2
        }
        GroupState::Empty => {
            let leaving = super::types::LeavingMember {
                member_id: m.clone(),
                group_instance_id: Some("i1".into()),
            };
            assert_eq!(c.leave_group("g", &[leaving], 2).0, 0);
            2
        }
    };
    if state == GroupState::Dead {
        c.groups.lock().get_mut("g").unwrap().state = GroupState::Dead;
    }
    assert_eq!(c.describe_group("g").state, state.as_str());
    (c, m, generation)
}

fn committer<'a>(
    member: &'a str,
    generation: i32,
    (gen, who, instance): (Gen, Who, Instance),
) -> Committer<'a> {
    Committer {
        group_id: "g",
        generation_id: match gen {
            Gen::Current => generation,
            Gen::Stale => generation - 1,
            Gen::None => -1,
        },
        member_id: match who {
            Who::Member => member,
            Who::Stranger => "stranger",
            Who::NoId => "",
        },
        group_instance_id: match instance {
            Instance::Absent => None,
            Instance::Own => Some("i1"),
            Instance::Unknown => Some("i9"),
        },
    }
}

/// OffsetCommit through the coordinator's commit operation (what the API handler calls).
fn offset_commit(c: &GroupCoordinator, who: &Committer<'_>, api_version: i16) -> i16 {
    let request = CommitRequest {
        group_id: who.group_id.into(),
        generation_id: who.generation_id,
        member_id: who.member_id.into(),
        group_instance_id: who.group_instance_id.map(str::to_owned),
        api_version,
        retention_time_ms: -1,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            leader_epoch: -1,
            metadata: None,
        }],
    };
    c.commit_offsets(request, 10)[0]
}

use Gen::{Current as Cur, None as NoGen, Stale};
use Instance::{Absent, Own, Unknown as UnkInst};
use Who::{Member as Mem, NoId, Stranger};

/// (generation, member id, instance id) → codes for [Empty, PreparingRebalance,
/// CompletingRebalance, Stable, Dead], for OffsetCommit and for TxnOffsetCommit.
#[allow(clippy::type_complexity)]
const TABLE: &[((Gen, Who, Instance), [i16; 5], [i16; 5])] = &[
    //  who                      OffsetCommit            TxnOffsetCommit
    ((Cur, Mem, Absent), [U, OK, R, OK, C], [U, OK, OK, OK, C]),
    ((Cur, Mem, Own), [U, OK, R, OK, C], [U, OK, OK, OK, C]),
    ((Cur, Mem, UnkInst), [U, U, U, U, C], [U, U, U, U, C]),
    ((Stale, Mem, Absent), [U, I, I, I, C], [U, I, I, I, C]),
    ((Stale, Mem, Own), [U, I, I, I, C], [U, I, I, I, C]),
    ((Stale, Mem, UnkInst), [U, U, U, U, C], [U, U, U, U, C]),
    ((NoGen, Mem, Absent), [OK, I, I, I, C], [OK, I, I, I, C]),
    ((NoGen, Mem, Own), [OK, I, I, I, C], [OK, I, I, I, C]),
    ((NoGen, Mem, UnkInst), [OK, U, U, U, C], [OK, U, U, U, C]),
    ((Cur, Stranger, Absent), [U, U, U, U, C], [U, U, U, U, C]),
    ((Cur, Stranger, Own), [U, F, F, F, C], [U, F, F, F, C]),
    ((Cur, Stranger, UnkInst), [U, U, U, U, C], [U, U, U, U, C]),
    ((Stale, Stranger, Absent), [U, U, U, U, C], [U, U, U, U, C]),
    ((Stale, Stranger, Own), [U, F, F, F, C], [U, F, F, F, C]),
    ((Stale, Stranger, UnkInst), [U, U, U, U, C], [U, U, U, U, C]),
    (
        (NoGen, Stranger, Absent),
        [OK, U, U, U, C],
        [OK, U, U, U, C],
    ),
    ((NoGen, Stranger, Own), [OK, F, F, F, C], [OK, F, F, F, C]),
    (
        (NoGen, Stranger, UnkInst),
        [OK, U, U, U, C],
        [OK, U, U, U, C],
    ),
    ((Cur, NoId, Absent), [U, U, U, U, C], [U, U, U, U, C]),
    ((Cur, NoId, Own), [U, F, F, F, C], [U, F, F, F, C]),
    ((Cur, NoId, UnkInst), [U, U, U, U, C], [U, U, U, U, C]),
    ((Stale, NoId, Absent), [U, U, U, U, C], [U, U, U, U, C]),
    ((Stale, NoId, Own), [U, F, F, F, C], [U, F, F, F, C]),
    ((Stale, NoId, UnkInst), [U, U, U, U, C], [U, U, U, U, C]),
    // No member id, no generation: a v0-style commit; the transactional path does not check
    // the group's state for it.
    ((NoGen, NoId, Absent), [OK, U, U, U, C], [OK, OK, OK, OK, C]),
    ((NoGen, NoId, Own), [OK, F, F, F, C], [OK, F, F, F, C]),
    ((NoGen, NoId, UnkInst), [OK, U, U, U, C], [OK, U, U, U, C]),
];

#[test]
fn every_cell_of_the_commit_decision_table_matches_kafka() {
    let mut cells = 0;
    for (column, state) in STATES.iter().enumerate() {
        for (row, commit_codes, txn_codes) in TABLE {
            for (path, expected) in [
                (
                    CommitPath::OffsetCommit { api_version: 8 },
                    commit_codes[column],
                ),
                (
                    CommitPath::OffsetCommit { api_version: 9 },
                    commit_codes[column],
                ),
                (CommitPath::TxnOffsetCommit, txn_codes[column]),
            ] {
                // A fresh group per cell: an accepted generation -1 commit changes nothing, but
                // an accepted member commit refreshes the member's session.
                let (c, member, generation) = group_in(*state);
                let who = committer(&member, generation, *row);
                let got = match path {
                    CommitPath::OffsetCommit { api_version } => {
                        offset_commit(&c, &who, api_version)
                    }
                    CommitPath::TxnOffsetCommit => c
                        .validate_offset_commit(&who, path, 10)
                        .err()
                        .map_or(OK, |e| e.code()),
                };
                assert_eq!(
                    got, expected,
                    "state {state:?}, {row:?}, {path:?}: got {got}, Kafka answers {expected}"
                );
                cells += 1;
            }
        }
    }
    assert_eq!(cells, STATES.len() * TABLE.len() * 3);
    println!("commit decision table: {cells} cells match");
}

#[test]
fn unknown_group_simple_commit_creates_it_others_are_stale_or_not_found() {
    let c = coordinator();
    let who = |generation_id, group_id| Committer {
        group_id,
        generation_id,
        member_id: "m",
        group_instance_id: None,
    };
    assert_eq!(offset_commit(&c, &who(3, "a"), 8), I);
    assert_eq!(offset_commit(&c, &who(3, "a"), 9), N);
    assert_eq!(
        c.validate_offset_commit(&who(3, "a"), CommitPath::TxnOffsetCommit, 0),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(offset_commit(&c, &who(-1, "a"), 9), OK);
    assert_eq!(c.describe_group("a").state, "Empty");
    assert_eq!(
        c.validate_offset_commit(&who(-1, "b"), CommitPath::TxnOffsetCommit, 0),
        Ok(())
    );
    assert_eq!(c.describe_group("b").state, "Empty");
}

#[test]
fn a_commit_keeps_a_member_alive_during_preparing_rebalance() {
    let (c, member, generation) = group_in(GroupState::PreparingRebalance);
    let who = committer(&member, generation, (Cur, Mem, Absent));
    // Session is 10 s: commits at 8 s and 16 s keep the member through 20 s.
    assert_eq!(offset_commit(&c, &who, 9), OK);
    let commit_at = |t| {
        let request = CommitRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.clone(),
            api_version: 9,
            retention_time_ms: -1,
            ..Default::default()
        };
        c.commit_offsets(request, t);
    };
    commit_at(8_000);
    commit_at(16_000);
    c.tick(20_000);
    assert!(c.groups.lock()["g"].members.contains_key(&member));
}
