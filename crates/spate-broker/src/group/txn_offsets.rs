//! The group side of transactional offset commits (TxnOffsetCommit): the KIP-447 membership
//! checks, so that a group member fenced by a rebalance cannot commit offsets in a transaction,
//! and the materialisation of a committed transaction's offsets into the group's committed
//! offsets. Until the transaction commits, the offsets are held by the transaction
//! coordinator (see `crate::txn`), never here, so an aborted transaction leaves no trace.

use kafka_protocol::ResponseError;

use super::classic_group::{ClassicGroup, GroupState};
use super::coordinator::GroupCoordinator;
use super::offsets::CommittedOffset;
use crate::error::Result;

/// One offset of a committed transaction, ready to become the group's committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnCommittedOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset committed in the transaction.
    pub offset: i64,
    /// The leader epoch committed with it, -1 if unknown.
    pub leader_epoch: i32,
    /// The metadata string committed with it.
    pub metadata: String,
}

impl GroupCoordinator {
    /// TxnOffsetCommit's group checks (Kafka's `validateOffsetCommit` for transactional
    /// commits): generation -1 with an Empty (or unknown) group is a producer committing for a
    /// group it does not belong to; otherwise the member (and static instance) must be current
    /// and the generation the group's. Older request versions carry no member id and
    /// generation and pass when the group is Empty or they send none.
    pub fn validate_txn_offset_commit(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let groups = self.groups.lock();
        let Some(group) = groups.get(group_id) else {
            return if generation_id < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration)
            };
        };
        validate(group, generation_id, member_id, group_instance_id)
    }

    /// Applies a committed transaction's offsets to the group (durably), creating the group
    /// if it is not known yet.
    pub fn commit_txn_offsets(
        &self,
        group_id: &str,
        offsets: Vec<TxnCommittedOffset>,
        now_ms: i64,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut groups = self.groups.lock();
        groups
            .entry(group_id.to_string())
            .or_insert_with(|| ClassicGroup::new(group_id.to_string(), now_ms));
        let mut store = self.offsets.lock();
        drop(groups);
        let accepted = offsets
            .into_iter()
            .map(|o| {
                (
                    (o.topic, o.partition),
                    CommittedOffset {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata,
                        commit_timestamp_ms: now_ms,
                        expire_timestamp_ms: None,
                    },
                )
            })
            .collect();
        store.commit(group_id, accepted)
    }
}

fn validate(
    group: &ClassicGroup,
    generation_id: i32,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    if group.is(GroupState::Dead) {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if generation_id < 0 && group.is(GroupState::Empty) {
        return Ok(());
    }
    if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
        group.validate_instance(member_id, group_instance_id)?;
        if !group.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation_id != group.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::ResponseError;

    use super::TxnCommittedOffset;
    use crate::group::coordinator_tests::{coordinator, join_req, sync};

    #[test]
    fn kip_447_a_fenced_member_cannot_commit_in_a_transaction() {
        let c = coordinator();
        // A group with one member at generation 1.
        let joined = c
            .join_group(join_req("g", "", &["range"]), 0)
            .try_recv()
            .expect("join answered");
        let member = joined.member_id.clone();
        let generation = joined.generation_id;
        sync(&c, "g", &member, generation, &[(&member, "A")], 0)
            .try_recv()
            .expect("sync answered");
        assert_eq!(
            c.validate_txn_offset_commit("g", generation, &member, None),
            Ok(())
        );
        assert_eq!(
            c.validate_txn_offset_commit("g", generation + 1, &member, None),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            c.validate_txn_offset_commit("g", generation, "someone-else", None),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            c.validate_txn_offset_commit("g", generation, &member, Some("static-1")),
            Err(ResponseError::UnknownMemberId)
        );
        // A producer that is not a member (generation -1) of a non-empty group may commit,
        // as older TxnOffsetCommit versions carry no membership.
        assert_eq!(c.validate_txn_offset_commit("g", -1, "", None), Ok(()));
        // An unknown group: only without a generation.
        assert_eq!(c.validate_txn_offset_commit("new", -1, "", None), Ok(()));
        assert_eq!(
            c.validate_txn_offset_commit("new", 3, "m", None),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            c.validate_txn_offset_commit("", -1, "", None),
            Err(ResponseError::InvalidGroupId)
        );
    }

    #[test]
    fn committed_transaction_offsets_become_the_groups() {
        let c = coordinator();
        let offset = |o| TxnCommittedOffset {
            topic: "t".into(),
            partition: 0,
            offset: o,
            leader_epoch: -1,
            metadata: "m".into(),
        };
        c.commit_txn_offsets("g", vec![offset(7)], 1).unwrap();
        let fetched = c.fetch_offsets("g", Some(&[("t".to_string(), vec![0])]));
        assert_eq!((fetched[0].offset, fetched[0].metadata.as_str()), (7, "m"));
    }
}
