//! The coordinator's side of the consumer group protocol (KIP-848): request validation,
//! which protocol a group id belongs to, and the consumer groups' timers.
//!
//! A group id is either a classic group or a consumer group. As Kafka 4 does, an *empty*
//! group changes type when a member of the other protocol arrives: a ConsumerGroupHeartbeat
//! to an empty classic group (or one that only stores offsets) turns it into a consumer group
//! keeping its offsets, and a JoinGroup to an empty consumer group turns it back. Kafka 4 can
//! also migrate a non-empty group online (classic members inside a consumer group); spate does
//! not: a ConsumerGroupHeartbeat to a classic group with members gets GROUP_ID_NOT_FOUND
//! ("Group … is not a consumer group") and a JoinGroup to a consumer group with members gets
//! INCONSISTENT_GROUP_PROTOCOL — Kafka's answers when `group.consumer.migration.policy`
//! forbids the migration.

use kafka_protocol::ResponseError;

use super::classic_group::GroupState;
use super::consumer_group::{
    ConsumerGroup, HeartbeatAnswer, HeartbeatError, HeartbeatRequest, HeartbeatSettings,
    TopicImage, LEAVE_EPOCH, STATIC_LEAVE_EPOCH,
};
use super::coordinator::GroupCoordinator;
use super::topic_regex;

/// Per-group overrides (the GROUP config resource) of the broker's consumer settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupOverrides {
    /// The group's `consumer.session.timeout.ms`, if set.
    pub session_timeout_ms: Option<i32>,
    /// The group's `consumer.heartbeat.interval.ms`, if set.
    pub heartbeat_interval_ms: Option<i32>,
}

fn invalid(message: &str) -> HeartbeatError {
    (ResponseError::InvalidRequest, message.to_owned())
}

impl GroupCoordinator {
    /// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`, plus KIP-1082 (v1: the client
    /// chooses its member id, so it is never empty).
    fn check_heartbeat(&self, req: &HeartbeatRequest, version: i16) -> Result<(), HeartbeatError> {
        if req.group_id.is_empty() {
            return Err(invalid("GroupId can't be empty."));
        }
        if req.instance_id.as_deref() == Some("") {
            return Err(invalid("InstanceId can't be empty."));
        }
        if req.rack_id.as_deref() == Some("") {
            return Err(invalid("RackId can't be empty."));
        }
        if let Some(regex) = req.subscribed_topic_regex.as_deref() {
            if !regex.is_empty() {
                topic_regex::compile(regex)?;
            }
        }
        if version >= 1 && req.member_id.is_empty() {
            return Err(invalid("MemberId can't be empty."));
        }
        match req.member_epoch {
            e if e > 0 || e == LEAVE_EPOCH => {
                if req.member_id.is_empty() {
                    return Err(invalid("MemberId can't be empty."));
                }
            }
            0 => {
                if req.rebalance_timeout_ms == -1 {
                    return Err(invalid(
                        "RebalanceTimeoutMs must be provided in first request.",
                    ));
                }
                if req.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                    return Err(invalid("TopicPartitions must be empty when (re-)joining."));
                }
                let no_names = req
                    .subscribed_topic_names
                    .as_ref()
                    .is_none_or(Vec::is_empty);
                let no_regex = req
                    .subscribed_topic_regex
                    .as_deref()
                    .is_none_or(str::is_empty);
                if no_names && no_regex {
                    return Err(invalid(
                        "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                    ));
                }
            }
            STATIC_LEAVE_EPOCH => {
                if req.member_id.is_empty() {
                    return Err(invalid("MemberId can't be empty."));
                }
                if req.instance_id.is_none() {
                    return Err(invalid("InstanceId can't be null."));
                }
            }
            _ => return Err(invalid("MemberEpoch is invalid.")),
        }
        if let Some(assignor) = &req.server_assignor {
            if !self.config.consumer_assignors.contains(assignor) {
                return Err((
                    ResponseError::UnsupportedAssignor,
                    format!(
                        "ServerAssignor {assignor} is not supported. Supported assignors: {}.",
                        self.config.consumer_assignors.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// ConsumerGroupHeartbeat. `image` holds the topics that exist now; `overrides` the
    /// group's own `consumer.session.timeout.ms` / `consumer.heartbeat.interval.ms`.
    pub fn consumer_heartbeat(
        &self,
        req: &HeartbeatRequest,
        version: i16,
        image: &TopicImage,
        overrides: GroupOverrides,
        now_ms: i64,
    ) -> Result<HeartbeatAnswer, HeartbeatError> {
        if self.is_closed() {
            return Err((ResponseError::NotCoordinator, String::new()));
        }
        if let Err((e, message)) = self.check_heartbeat(req, version) {
            tracing::warn!(group = %req.group_id, error = ?e, message, "invalid ConsumerGroupHeartbeat");
            return Err((e, message));
        }
        let mut classic = self.groups.lock();
        let mut consumer = self.consumer_groups.lock();
        if !consumer.contains_key(&req.group_id) {
            if let Some(group) = classic.get(&req.group_id) {
                if req.member_epoch != 0 || !group.is(GroupState::Empty) {
                    return Err((
                        ResponseError::GroupIdNotFound,
                        format!("Group {} is not a consumer group", req.group_id),
                    ));
                }
                // Upgrade of an empty classic group: its offsets stay, its stored classic
                // membership goes.
                classic.remove(&req.group_id);
                if let Err(e) = self.offsets.lock().delete_membership(&req.group_id) {
                    tracing::warn!(group = %req.group_id, error = %e, "forgetting classic membership failed");
                }
            } else if req.member_epoch != 0 {
                return Err((
                    ResponseError::UnknownMemberId,
                    format!("Group {} not found.", req.group_id),
                ));
            }
            consumer.insert(
                req.group_id.clone(),
                ConsumerGroup::new(&req.group_id, now_ms),
            );
        }
        drop(classic);
        let Some(group) = consumer.get_mut(&req.group_id) else {
            return Err((ResponseError::CoordinatorNotAvailable, String::new()));
        };
        let settings = HeartbeatSettings {
            session_timeout_ms: overrides
                .session_timeout_ms
                .unwrap_or(self.config.consumer_session_timeout_ms),
            heartbeat_interval_ms: overrides
                .heartbeat_interval_ms
                .unwrap_or(self.config.consumer_heartbeat_interval_ms),
            max_size: self.config.consumer_max_size,
            assignors: &self.config.consumer_assignors,
        };
        let result = group.heartbeat(req, &settings, image, now_ms);
        self.persist_consumer_group(group);
        if let Err((e, message)) = &result {
            tracing::debug!(group = %req.group_id, member = %req.member_id, error = ?e, message,
                            "ConsumerGroupHeartbeat refused");
        }
        result
    }

    /// Whether `group_id` is a consumer-protocol group.
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        self.consumer_groups.lock().contains_key(group_id)
    }

    /// A copy of the consumer group `group_id` (ConsumerGroupDescribe).
    pub fn consumer_group(&self, group_id: &str) -> Option<ConsumerGroup> {
        self.consumer_groups.lock().get(group_id).cloned()
    }

    /// Every consumer group as (id, state), sorted.
    pub fn consumer_group_listing(&self) -> Vec<(String, &'static str)> {
        let groups = self.consumer_groups.lock();
        let mut out: Vec<_> = groups
            .values()
            .map(|g| (g.group_id.clone(), g.state()))
            .collect();
        out.sort();
        out
    }

    /// A JoinGroup for `group_id` arrived: an empty consumer group becomes classic again
    /// (returns `Ok`), one with members refuses it.
    pub(super) fn classic_join_allowed(&self, group_id: &str) -> Result<(), ResponseError> {
        let mut consumer = self.consumer_groups.lock();
        match consumer.get(group_id) {
            Some(g) if !g.is_empty() => Err(ResponseError::InconsistentGroupProtocol),
            Some(_) => {
                consumer.remove(group_id);
                if let Err(e) = self.offsets.lock().delete_membership(group_id) {
                    tracing::warn!(group = %group_id, error = %e, "forgetting the consumer group failed");
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The consumer groups' timers: members past their session or revocation timeout leave.
    pub(super) fn tick_consumer_groups(&self, now_ms: i64) {
        for group in self.consumer_groups.lock().values_mut() {
            if group.expire(now_ms) > 0 {
                self.persist_consumer_group(group);
            }
        }
    }

    /// An offset commit naming `group_id`: `None` if it is not a consumer group (the classic
    /// rules apply), else Kafka's `ConsumerGroup.validateOffsetCommit`: the member epoch is the
    /// generation, a different one is STALE_MEMBER_EPOCH, and a consumer-protocol member must
    /// use OffsetCommit v9+ (`api_version` is `None` for TxnOffsetCommit, which any version
    /// may send).
    pub(super) fn consumer_commit_check(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        api_version: Option<i16>,
    ) -> Option<Result<(), ResponseError>> {
        let groups = self.consumer_groups.lock();
        let group = groups.get(group_id)?;
        if epoch < 0 && group.is_empty() {
            return Some(Ok(()));
        }
        let decision =
            if api_version.is_some_and(|v| v < 9) && group.members.contains_key(member_id) {
                Err(ResponseError::UnsupportedVersion)
            } else {
                group.validate_member_epoch(member_id, epoch)
            };
        if let Err(e) = decision {
            tracing::debug!(group = %group_id, member = %member_id, epoch, ?api_version, error = ?e,
                            "offset commit of a consumer group refused");
        }
        Some(decision)
    }

    /// OffsetFetch v9 of a consumer group (Kafka's `ConsumerGroup.validateOffsetFetch`): a
    /// named member must exist with that epoch; without member id and epoch anyone may read.
    /// Classic groups do not check these fields.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Result<(), ResponseError> {
        let groups = self.consumer_groups.lock();
        let Some(group) = groups.get(group_id) else {
            return Ok(());
        };
        match member_id {
            None if epoch < 0 => Ok(()),
            member => {
                let m = group
                    .members
                    .get(member.unwrap_or_default())
                    .ok_or(ResponseError::UnknownMemberId)?;
                if m.current.member_epoch != epoch {
                    return Err(ResponseError::StaleMemberEpoch);
                }
                Ok(())
            }
        }
    }

    /// DeleteGroups of a consumer group: only when empty. `None`: not a consumer group.
    pub(super) fn delete_consumer_group(&self, group_id: &str) -> Option<i16> {
        let mut groups = self.consumer_groups.lock();
        let group = groups.get(group_id)?;
        if !group.is_empty() {
            return Some(ResponseError::NonEmptyGroup.code());
        }
        let mut store = self.offsets.lock();
        if let Err(e) = store
            .delete_group(group_id)
            .and_then(|()| store.delete_membership(group_id))
        {
            tracing::warn!(group = %group_id, error = %e, "deleting the group's offsets failed");
            return Some(ResponseError::UnknownServerError.code());
        }
        groups.remove(group_id);
        Some(0)
    }
}
