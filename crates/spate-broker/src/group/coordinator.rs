//! The group coordinator: every group of the broker, and the rules each classic-protocol
//! request follows before it reaches a group's state machine.
//!
//! This broker coordinates every group (a single node is the coordinator for all of
//! `__consumer_offsets`' partitions). Groups live under one mutex; committed offsets under a
//! second, because writing them waits for an fsync and heartbeats should not queue behind it.
//! The lock order is groups, then offsets.
//!
//! JoinGroup and SyncGroup return a `oneshot::Receiver`: the response is sent when the
//! rebalance (or the leader's SyncGroup) completes, possibly triggered by another member's
//! request or by [`GroupCoordinator::tick`], which a background task calls a few times a second
//! to run session, rebalance and sync timeouts and offset expiry.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::error::Result;

use super::classic_group::{ClassicGroup, GroupState};
pub use super::commits::{CommitPartition, CommitRequest, FetchedOffset};
use super::config::GroupConfig;
use super::consumer_group::ConsumerGroup;
use super::offsets::OffsetStore;
use super::types::{
    GroupDescription, GroupListing, JoinRequest, JoinResponse, LeavingMember, MemberDescription,
    SyncRequest, SyncResponse,
};

/// The broker's group coordinator.
#[derive(Debug)]
pub struct GroupCoordinator {
    pub(super) config: GroupConfig,
    pub(super) groups: Mutex<HashMap<String, ClassicGroup>>,
    pub(super) offsets: Mutex<OffsetStore>,
    pub(super) last_expiry_ms: Mutex<i64>,
    /// Consumer-protocol (KIP-848) groups; a group id is in this map or in `groups`, not
    /// both. Lock order: `groups`, then `consumer_groups`, then `offsets`.
    pub(super) consumer_groups: Mutex<HashMap<String, ConsumerGroup>>,
    /// Set by [`shutdown`](GroupCoordinator::shutdown): no request parks any more.
    closed: AtomicBool,
}

/// A new member id: `client.id`, a dash and a random UUID, as Kafka builds it.
fn new_member_id(client_id: &str) -> String {
    let uuid: u128 = rand::random();
    let h = format!("{uuid:032x}");
    format!(
        "{client_id}-{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Sends `response` at once and returns the receiving end the caller awaits.
fn ready<T>(response: T) -> oneshot::Receiver<T> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(response);
    rx
}

impl GroupCoordinator {
    /// A coordinator whose offsets are kept in memory only.
    pub fn in_memory(config: GroupConfig) -> Self {
        Self::with_store(config, OffsetStore::in_memory(), 0)
    }

    /// A coordinator whose committed offsets are durable in `dir` (replayed now).
    pub fn open(config: GroupConfig, dir: &Path, now_ms: i64) -> Result<Self> {
        Ok(Self::with_store(config, OffsetStore::open(dir)?, now_ms))
    }

    fn with_store(config: GroupConfig, store: OffsetStore, now_ms: i64) -> Self {
        // Groups come back as stored (Stable with their members, or Empty); groups known only
        // by their offsets come back Empty, as Kafka loads them.
        let mut groups: HashMap<String, ClassicGroup> = store
            .groups()
            .map(|g| (g.clone(), ClassicGroup::new(g.clone(), now_ms)))
            .collect();
        for record in store.memberships() {
            groups.insert(
                record.group.clone(),
                ClassicGroup::from_record(record, now_ms),
            );
        }
        let mut consumer_groups = HashMap::new();
        for (id, bytes) in store.consumer_groups() {
            let session = config.consumer_session_timeout_ms;
            match ConsumerGroup::decode(id, bytes, session, now_ms) {
                Some(mut g) => {
                    g.stored = Some(bytes.clone());
                    groups.remove(id);
                    consumer_groups.insert(id.clone(), g);
                }
                None => warn!(group = %id, "unreadable stored consumer group; its members rejoin"),
            }
        }
        GroupCoordinator {
            config,
            groups: Mutex::new(groups),
            offsets: Mutex::new(store),
            last_expiry_ms: Mutex::new(now_ms),
            consumer_groups: Mutex::new(consumer_groups),
            closed: AtomicBool::new(false),
        }
    }

    /// The coordinator's `group.*` and `offsets.*` settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The broker is stopping: answer every parked JoinGroup and SyncGroup with
    /// NOT_COORDINATOR (what Kafka answers when a coordinator unloads its groups, so clients
    /// look for the coordinator again once the broker is back), and answer later ones at once.
    /// Without this a JoinGroup parked on a rebalance would wait for timers that no longer run.
    /// Returns how many parked requests were answered.
    pub fn shutdown(&self) -> usize {
        self.closed.store(true, Ordering::SeqCst);
        let mut answered = 0;
        let mut groups = self.groups.lock();
        for group in groups.values_mut() {
            for member in group.members.values_mut() {
                if member.awaiting_join.is_some() {
                    let id = member.member_id.clone();
                    member.complete_join(JoinResponse::error(ResponseError::NotCoordinator, id));
                    answered += 1;
                }
                if member.awaiting_sync.is_some() {
                    member.complete_sync(SyncResponse::error(ResponseError::NotCoordinator));
                    answered += 1;
                }
            }
        }
        answered
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// JoinGroup. The receiver yields the response when the join phase completes.
    pub fn join_group(&self, request: JoinRequest, now_ms: i64) -> oneshot::Receiver<JoinResponse> {
        let member_id = request.member_id.clone();
        if self.is_closed() {
            return ready(JoinResponse::error(
                ResponseError::NotCoordinator,
                member_id,
            ));
        }
        if request.group_id.is_empty() {
            return ready(JoinResponse::error(
                ResponseError::InvalidGroupId,
                member_id,
            ));
        }
        if request.session_timeout_ms < self.config.min_session_timeout_ms
            || request.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return ready(JoinResponse::error(
                ResponseError::InvalidSessionTimeout,
                member_id,
            ));
        }
        if let Err(e) = self.classic_join_allowed(&request.group_id) {
            return ready(JoinResponse::error(e, member_id));
        }
        let mut groups = self.groups.lock();
        if !groups.contains_key(&request.group_id) {
            if !member_id.is_empty() {
                return ready(JoinResponse::error(
                    ResponseError::UnknownMemberId,
                    member_id,
                ));
            }
            groups.insert(
                request.group_id.clone(),
                ClassicGroup::new(request.group_id.clone(), now_ms),
            );
        }
        let Some(group) = groups.get_mut(&request.group_id) else {
            return ready(JoinResponse::error(
                ResponseError::CoordinatorNotAvailable,
                member_id,
            ));
        };
        let (tx, rx) = oneshot::channel();
        let result = self.do_join(group, request, tx, now_ms);
        self.persist_membership(group);
        match result {
            Ok(()) => rx,
            Err(e) => e,
        }
    }

    /// The join rules of Kafka's `GroupCoordinator.doJoinGroup`; an `Err` is an immediate
    /// error response.
    fn do_join(
        &self,
        group: &mut ClassicGroup,
        request: JoinRequest,
        tx: oneshot::Sender<JoinResponse>,
        now_ms: i64,
    ) -> std::result::Result<(), oneshot::Receiver<JoinResponse>> {
        let fail = |e: ResponseError, id: &str| Err(ready(JoinResponse::error(e, id)));
        let member_id = request.member_id.clone();
        if group.is(GroupState::Dead) {
            return fail(ResponseError::CoordinatorNotAvailable, &member_id);
        }
        if !group.supports_protocols(&request.protocol_type, &request.protocols) {
            return fail(ResponseError::InconsistentGroupProtocol, &member_id);
        }
        let config = &self.config;
        if member_id.is_empty() {
            return self.join_new_member(group, request, tx, now_ms);
        }
        if group.pending_members.contains_key(&member_id) {
            if group.members.len() >= config.max_size {
                group.pending_members.remove(&member_id);
                return fail(ResponseError::GroupMaxSizeReached, &member_id);
            }
            group.add_member_and_rebalance(config, &request, member_id, tx, now_ms);
            return Ok(());
        }
        if let Err(e) = group.validate_instance(&member_id, request.group_instance_id.as_deref()) {
            return fail(e, &member_id);
        }
        let Some(member) = group.members.get(&member_id) else {
            return fail(ResponseError::UnknownMemberId, &member_id);
        };
        let unchanged = member.matches(&request.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                group.update_member_and_rebalance(config, &request, tx, now_ms);
            }
            GroupState::CompletingRebalance => {
                if unchanged {
                    // A retried JoinGroup whose response was lost: answer it again.
                    let _ = tx.send(group.current_join_response(&member_id));
                } else {
                    group.update_member_and_rebalance(config, &request, tx, now_ms);
                }
            }
            GroupState::Stable => {
                let is_leader = group.leader_id.as_deref() == Some(member_id.as_str());
                if is_leader || !unchanged {
                    // The leader rejoining means it wants a new assignment (e.g. its
                    // subscription's topic metadata changed): rebalance.
                    group.update_member_and_rebalance(config, &request, tx, now_ms);
                } else {
                    if let Some(m) = group.members.get_mut(&member_id) {
                        m.last_heartbeat_ms = now_ms;
                    }
                    let _ = tx.send(group.current_join_response(&member_id));
                }
            }
            GroupState::Empty | GroupState::Dead => {
                return fail(ResponseError::UnknownMemberId, &member_id);
            }
        }
        Ok(())
    }

    /// A JoinGroup without a member id: a static member rejoining takes its old member's place;
    /// a dynamic member on JoinGroup v4+ is given an id to come back with (KIP-394); any other
    /// joins at once, up to `group.max.size`.
    fn join_new_member(
        &self,
        group: &mut ClassicGroup,
        request: JoinRequest,
        tx: oneshot::Sender<JoinResponse>,
        now_ms: i64,
    ) -> std::result::Result<(), oneshot::Receiver<JoinResponse>> {
        let fail = |e: ResponseError, id: &str| Err(ready(JoinResponse::error(e, id)));
        let config = &self.config;
        let new_id = new_member_id(&request.client_id);
        if let Some(instance) = request.group_instance_id.clone() {
            if let Some(old_id) = group.static_members.get(&instance).cloned() {
                group.replace_static_member(config, &request, &old_id, new_id, tx, now_ms);
                return Ok(());
            }
        } else if request.require_known_member_id {
            // KIP-394: the member must come back with this id, so that a client whose
            // first JoinGroup times out does not leave a ghost member behind.
            if group.members.len() + group.pending_members.len() >= config.max_size {
                return fail(ResponseError::GroupMaxSizeReached, "");
            }
            group.pending_members.insert(
                new_id.clone(),
                now_ms + i64::from(request.session_timeout_ms),
            );
            return fail(ResponseError::MemberIdRequired, &new_id);
        }
        if group.members.len() >= config.max_size {
            return fail(ResponseError::GroupMaxSizeReached, "");
        }
        group.add_member_and_rebalance(config, &request, new_id, tx, now_ms);
        Ok(())
    }

    /// SyncGroup. The receiver yields the member's assignment once the leader has sent it.
    pub fn sync_group(&self, request: SyncRequest, now_ms: i64) -> oneshot::Receiver<SyncResponse> {
        if self.is_closed() {
            return ready(SyncResponse::error(ResponseError::NotCoordinator));
        }
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(&request.group_id) else {
            return ready(SyncResponse::error(ResponseError::UnknownMemberId));
        };
        if group.is(GroupState::Dead) {
            return ready(SyncResponse::error(ResponseError::CoordinatorNotAvailable));
        }
        if let Err(e) =
            group.validate_instance(&request.member_id, request.group_instance_id.as_deref())
        {
            return ready(SyncResponse::error(e));
        }
        if !group.members.contains_key(&request.member_id) {
            return ready(SyncResponse::error(ResponseError::UnknownMemberId));
        }
        if request.generation_id != group.generation_id {
            return ready(SyncResponse::error(ResponseError::IllegalGeneration));
        }
        let type_mismatch = request
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_ref() != Some(t));
        let name_mismatch = request
            .protocol_name
            .as_ref()
            .is_some_and(|n| group.protocol_name.as_ref() != Some(n));
        if type_mismatch || name_mismatch {
            return ready(SyncResponse::error(
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => {
                ready(SyncResponse::error(ResponseError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                ready(SyncResponse::error(ResponseError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                group.pending_sync.remove(&request.member_id);
                if let Some(member) = group.members.get_mut(&request.member_id) {
                    member.last_heartbeat_ms = now_ms;
                    if let Some(old) = member.awaiting_sync.replace(tx) {
                        let _ = old.send(SyncResponse::error(ResponseError::RebalanceInProgress));
                    }
                }
                if group.leader_id.as_deref() == Some(request.member_id.as_str()) {
                    group.complete_sync(request.assignments, now_ms);
                    self.persist_membership(group);
                }
                rx
            }
            GroupState::Stable => {
                group.pending_sync.remove(&request.member_id);
                let protocol_type = group.protocol_type.clone();
                let protocol_name = group.protocol_name.clone();
                match group.members.get_mut(&request.member_id) {
                    Some(member) => {
                        member.last_heartbeat_ms = now_ms;
                        ready(SyncResponse {
                            error_code: 0,
                            protocol_type,
                            protocol_name,
                            assignment: member.assignment.clone(),
                        })
                    }
                    None => ready(SyncResponse::error(ResponseError::UnknownMemberId)),
                }
            }
        }
    }

    /// Heartbeat: keeps the member's session alive and tells it when to rejoin.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> i16 {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if group.is(GroupState::Dead) {
            return ResponseError::CoordinatorNotAvailable.code();
        }
        if let Err(e) = group.validate_instance(member_id, group_instance_id) {
            return e.code();
        }
        let state = group.state;
        let current_generation = group.generation_id;
        let Some(member) = group.members.get_mut(member_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if generation_id != current_generation {
            return ResponseError::IllegalGeneration.code();
        }
        match state {
            GroupState::Empty | GroupState::Dead => ResponseError::UnknownMemberId.code(),
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.last_heartbeat_ms = now_ms;
                0
            }
            GroupState::PreparingRebalance => {
                member.last_heartbeat_ms = now_ms;
                ResponseError::RebalanceInProgress.code()
            }
        }
    }

    /// LeaveGroup: removes each named member (by member id, or by `group.instance.id` for
    /// static members); returns the group-level error and one error per member.
    pub fn leave_group(
        &self,
        group_id: &str,
        members: &[LeavingMember],
        now_ms: i64,
    ) -> (i16, Vec<i16>) {
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            let unknown = ResponseError::UnknownMemberId.code();
            return (unknown, vec![unknown; members.len()]);
        };
        if group.is(GroupState::Dead) {
            let e = ResponseError::CoordinatorNotAvailable.code();
            return (e, vec![e; members.len()]);
        }
        let mut errors = Vec::with_capacity(members.len());
        for leaving in members {
            let mut member_id = leaving.member_id.clone();
            if let Some(instance) = &leaving.group_instance_id {
                match group.static_members.get(instance) {
                    None => {
                        errors.push(ResponseError::UnknownMemberId.code());
                        continue;
                    }
                    Some(id) if !member_id.is_empty() && *id != member_id => {
                        errors.push(ResponseError::FencedInstanceId.code());
                        continue;
                    }
                    Some(id) => member_id = id.clone(),
                }
            }
            if group.pending_members.remove(&member_id).is_some() {
                errors.push(0);
                group.try_complete_join(now_ms);
                continue;
            }
            if !group.members.contains_key(&member_id) {
                errors.push(ResponseError::UnknownMemberId.code());
                continue;
            }
            group.remove_member_and_rebalance(&self.config, &member_id, now_ms, "left the group");
            errors.push(0);
        }
        self.persist_membership(group);
        // Before v3 there is exactly one member and its error is the response's error.
        let top = if members.len() == 1 { errors[0] } else { 0 };
        (top, errors)
    }

    /// DeleteGroups of one group: only an Empty group (its offsets go with it).
    pub fn delete_group(&self, group_id: &str) -> i16 {
        if let Some(code) = self.delete_consumer_group(group_id) {
            return code;
        }
        let mut groups = self.groups.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return ResponseError::GroupIdNotFound.code();
        };
        match group.state {
            GroupState::Dead => return ResponseError::GroupIdNotFound.code(),
            GroupState::Empty => {}
            _ => return ResponseError::NonEmptyGroup.code(),
        }
        let mut store = self.offsets.lock();
        if let Err(e) = store
            .delete_group(group_id)
            .and_then(|()| store.delete_membership(group_id))
        {
            warn!(group = %group_id, error = %e, "deleting the group's offsets failed");
            return ResponseError::UnknownServerError.code();
        }
        group.state = GroupState::Dead;
        groups.remove(group_id);
        info!(group = %group_id, "group deleted");
        0
    }

    /// ListGroups, optionally filtered by state names (case-insensitive, as Kafka).
    pub fn list_groups(&self, states: &[String]) -> Vec<GroupListing> {
        let groups = self.groups.lock();
        let mut out: Vec<GroupListing> = groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.as_str()))
            })
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.as_str().to_owned(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DescribeGroups of one group; an unknown group is described as Dead with no members.
    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        let groups = self.groups.lock();
        let Some(group) = groups.get(group_id) else {
            return GroupDescription {
                error_code: 0,
                group_id: group_id.to_owned(),
                state: GroupState::Dead.as_str().to_owned(),
                generation_id: -1,
                protocol_type: String::new(),
                protocol_data: String::new(),
                members: Vec::new(),
            };
        };
        let stable = group.is(GroupState::Stable);
        let protocol = group.protocol_name.clone().unwrap_or_default();
        GroupDescription {
            error_code: 0,
            group_id: group_id.to_owned(),
            state: group.state.as_str().to_owned(),
            generation_id: group.generation_id,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol).cloned().unwrap_or_default()
                    } else {
                        Default::default()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Default::default()
                    },
                })
                .collect(),
        }
    }

    /// Runs every timer due at `now_ms`; the background task calls this periodically.
    pub fn tick(&self, now_ms: i64) {
        self.tick_consumer_groups(now_ms);
        {
            let mut groups = self.groups.lock();
            for group in groups.values_mut() {
                if group.has_due_timer(now_ms) {
                    group.tick(&self.config, now_ms);
                    self.persist_membership(group);
                }
            }
        }
        let due = {
            let mut last = self.last_expiry_ms.lock();
            if now_ms - *last >= self.config.offsets_retention_check_interval_ms {
                *last = now_ms;
                true
            } else {
                false
            }
        };
        if due {
            self.expire_offsets(now_ms);
        }
    }
}
