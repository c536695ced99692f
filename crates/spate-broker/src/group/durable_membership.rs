//! Durable membership: a classic group's generation, selected protocol, leader and members
//! (with their subscriptions and assignments) are stored in the offsets log whenever they settle
//! — the group became Stable, became Empty, or a static member was replaced — as Kafka stores
//! its group records in `__consumer_offsets`. A restarted coordinator loads them, so a Stable
//! group stays Stable: its members keep heartbeating with the generation they hold and nobody
//! rebalances. Members that do not come back are removed when their session times out (counted
//! from the load), as in Kafka.
//!
//! A SyncGroup answer can reach a client a moment before the record is fsynced; a crash in that
//! window brings the previous generation back, and members of the lost one rejoin (one
//! rebalance), which is what a restart did before membership was durable.

use bytes::Bytes;
use tracing::warn;

use super::classic_group::{ClassicGroup, GroupState};
use super::coordinator::GroupCoordinator;
use super::member::{Member, MemberProtocol};
use super::offsets_log::{GroupRecord, MemberRecord};

impl ClassicGroup {
    /// The group as stored.
    pub fn to_record(&self) -> GroupRecord {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupRecord {
            group: self.group_id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            generation: self.generation_id,
            state_timestamp_ms: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscription: m
                        .metadata_for(&protocol)
                        .map(|b| b.to_vec())
                        .unwrap_or_default(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// A group loaded from its record at `now_ms`: Stable with its members (whose sessions
    /// start now), or Empty.
    pub fn from_record(record: &GroupRecord, now_ms: i64) -> ClassicGroup {
        let mut group = ClassicGroup::new(record.group.clone(), record.state_timestamp_ms);
        group.generation_id = record.generation;
        group.protocol_type =
            (!record.protocol_type.is_empty()).then(|| record.protocol_type.clone());
        if record.members.is_empty() {
            return group;
        }
        group.protocol_name = Some(record.protocol.clone());
        group.leader_id = Some(record.leader.clone());
        for m in &record.members {
            if let Some(instance) = &m.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            group.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocol_type: record.protocol_type.clone(),
                    protocols: vec![MemberProtocol {
                        name: record.protocol.clone(),
                        metadata: Bytes::from(m.subscription.clone()),
                    }],
                    assignment: Bytes::from(m.assignment.clone()),
                    last_heartbeat_ms: now_ms,
                    awaiting_join: None,
                    awaiting_sync: None,
                },
            );
        }
        if !group.members.contains_key(&record.leader) {
            group.leader_id = group.members.keys().next().cloned();
        }
        group.state = GroupState::Stable;
        group
    }
}

impl GroupCoordinator {
    /// Stores `group`'s membership if it settled since it was last stored. A failed write is
    /// logged: the group keeps working, and a restart would make its members rejoin.
    pub(super) fn persist_membership(&self, group: &mut ClassicGroup) {
        if !std::mem::take(&mut group.membership_changed) {
            return;
        }
        if let Err(e) = self.offsets.lock().store_membership(group.to_record()) {
            warn!(group = %group.group_id, error = %e, "storing the group's membership failed");
        }
    }
}
