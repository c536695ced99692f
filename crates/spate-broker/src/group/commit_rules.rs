//! Whether an offset commit of a classic group is accepted: the rules of Kafka's
//! `ClassicGroup.validateOffsetCommit`, by group state × generation × member id × group
//! instance id, for both commit paths — OffsetCommit from consumers and TxnOffsetCommit from
//! transactional producers (KIP-447).
//!
//! The two paths differ in two places only: a transactional commit is not refused while the
//! group is CompletingRebalance (the group's state is not enforced for transactions; only the
//! member and generation fence zombies), and an old-style transactional commit without member id
//! and generation is accepted whatever the state. A consumer commit from a member of the current
//! generation is accepted in Stable and in PreparingRebalance: KIP-429 members commit what they
//! processed before giving partitions up, and the heartbeat, not the commit, tells them a
//! rebalance began.

use kafka_protocol::ResponseError;

use super::classic_group::{ClassicGroup, GroupState};
use super::coordinator::GroupCoordinator;

/// Which request is committing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPath {
    /// OffsetCommit of this version (v9+ answers GROUP_ID_NOT_FOUND for an unknown group
    /// where older versions answer ILLEGAL_GENERATION).
    OffsetCommit {
        /// The request's version.
        api_version: i16,
    },
    /// TxnOffsetCommit (any version).
    TxnOffsetCommit,
}

impl CommitPath {
    fn is_transactional(self) -> bool {
        matches!(self, CommitPath::TxnOffsetCommit)
    }
}

/// Who is committing: the identity fields both commit requests carry.
#[derive(Debug, Clone, Copy)]
pub struct Committer<'a> {
    /// The group committed to.
    pub group_id: &'a str,
    /// -1 for a commit outside group management (a standalone consumer, an admin tool, or a
    /// transactional producer that does not send its consumer's group metadata).
    pub generation_id: i32,
    /// Empty when not known.
    pub member_id: &'a str,
    /// The static member's `group.instance.id`, if any.
    pub group_instance_id: Option<&'a str>,
}

impl ClassicGroup {
    /// Kafka's decision for a commit to this (existing) group.
    pub fn validate_offset_commit(
        &self,
        who: &Committer<'_>,
        path: CommitPath,
    ) -> Result<(), ResponseError> {
        if self.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if who.generation_id < 0 && self.is(GroupState::Empty) {
            // An admin tool or a consumer without group management: fine while nobody is in
            // the group.
            return Ok(());
        }
        if who.generation_id >= 0 || !who.member_id.is_empty() || who.group_instance_id.is_some() {
            self.validate_instance(who.member_id, who.group_instance_id)?;
            if !self.members.contains_key(who.member_id) {
                return Err(ResponseError::UnknownMemberId);
            }
            if who.generation_id != self.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if !path.is_transactional() && !self.is(GroupState::Empty) {
            // OffsetCommit v0-style (no member, no generation) only for an Empty group.
            return Err(ResponseError::UnknownMemberId);
        }
        if !path.is_transactional() && self.is(GroupState::CompletingRebalance) {
            // The member holds the new generation from its JoinGroup but not yet its
            // assignment: it retries after SyncGroup.
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }
}

impl GroupCoordinator {
    /// Validates a commit as Kafka's coordinator does, including for a group the coordinator
    /// does not know: a commit with generation -1 creates a "simple" group (returned `Ok`),
    /// any other is stale (ILLEGAL_GENERATION, or GROUP_ID_NOT_FOUND for OffsetCommit v9+).
    ///
    /// The transactional commit path (TxnOffsetCommit, KIP-447) calls this with
    /// [`CommitPath::TxnOffsetCommit`] before staging offsets in the transaction.
    pub fn validate_offset_commit(
        &self,
        who: &Committer<'_>,
        path: CommitPath,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        let mut groups = self.groups.lock();
        let api_version = match path {
            CommitPath::OffsetCommit { api_version } => Some(api_version),
            CommitPath::TxnOffsetCommit => None,
        };
        if let Some(decision) =
            self.consumer_commit_check(who.group_id, who.member_id, who.generation_id, api_version)
        {
            return decision;
        }
        Self::validate_commit_locked(&mut groups, who, path, now_ms)
    }

    /// [`Self::validate_offset_commit`] with the groups lock already held; a member of a
    /// Stable or PreparingRebalance group that commits also proves it is alive (Kafka
    /// reschedules its heartbeat).
    pub(super) fn validate_commit_locked(
        groups: &mut std::collections::HashMap<String, ClassicGroup>,
        who: &Committer<'_>,
        path: CommitPath,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        let Some(group) = groups.get_mut(who.group_id) else {
            if who.generation_id < 0 {
                groups.insert(
                    who.group_id.to_owned(),
                    ClassicGroup::new(who.group_id, now_ms),
                );
                return Ok(());
            }
            return Err(match path {
                CommitPath::OffsetCommit { api_version } if api_version >= 9 => {
                    ResponseError::GroupIdNotFound
                }
                _ => ResponseError::IllegalGeneration,
            });
        };
        group.validate_offset_commit(who, path)?;
        if !path.is_transactional()
            && matches!(
                group.state,
                GroupState::Stable | GroupState::PreparingRebalance
            )
        {
            if let Some(member) = group.members.get_mut(who.member_id) {
                member.last_heartbeat_ms = now_ms;
            }
        }
        Ok(())
    }
}
