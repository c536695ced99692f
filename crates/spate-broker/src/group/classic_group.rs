//! One classic consumer group and its rebalance state machine, as Kafka's `ClassicGroup`.
//!
//! ```text
//!   Empty ──join──▶ PreparingRebalance ──all joined / rebalance timeout──▶ CompletingRebalance
//!     ▲                 ▲      │ (no member left)                              │ leader's SyncGroup
//!     └─────────────────┼──────┘                                               ▼
//!                       └──────── join / leave / session expiry ─────────── Stable
//! ```
//!
//! Everything here is synchronous and takes the current time as an argument; the coordinator
//! holds the group under a lock and a background tick calls [`ClassicGroup::tick`]. Parked
//! JoinGroup and SyncGroup requests are answered through the members' `oneshot` senders.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tracing::{debug, info};

use super::config::GroupConfig;
use super::member::{Member, MemberProtocol};
use super::types::{JoinRequest, JoinResponse, JoinedMember, SyncResponse};

/// Kafka's classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join before a new generation.
    PreparingRebalance,
    /// Joined; waiting for the leader's SyncGroup with the assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Removed (deleted, or expired while empty); requests to it are refused.
    Dead,
}

impl GroupState {
    /// The name Kafka uses on the wire (DescribeGroups, ListGroups states filter).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A classic group.
#[derive(Debug)]
pub struct ClassicGroup {
    /// The group's id.
    pub group_id: String,
    /// Where the group is in Kafka's classic state machine (Empty, PreparingRebalance, …).
    pub state: GroupState,
    /// When the group entered its current state (offset expiry counts from becoming Empty).
    pub state_since_ms: i64,
    /// The current generation; bumped by every completed join.
    pub generation_id: i32,
    /// Set by the first member; `None` for a group that only stores offsets.
    pub protocol_type: Option<String>,
    /// The protocol chosen for the current generation.
    pub protocol_name: Option<String>,
    /// The member id of the leader, which computes the assignment; `None` without members.
    pub leader_id: Option<String>,
    /// Ordered so that leader election and responses are deterministic.
    pub members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id of static members.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to come back by.
    pub pending_members: HashMap<String, i64>,
    /// Members of the new generation that have not sent SyncGroup yet.
    pub pending_sync: HashSet<String>,
    /// PreparingRebalance: completes at this time even if some members have not rejoined.
    pub join_deadline_ms: Option<i64>,
    /// PreparingRebalance from Empty: do not complete before this (initial rebalance delay).
    pub initial_delay_until_ms: Option<i64>,
    /// How much longer the initial delay may still be extended (up to the rebalance timeout).
    pub initial_delay_remaining_ms: i64,
    /// A member joined during the initial delay: when it ends it is extended once more (Kafka's
    /// `InitialDelayedJoin`), so a fleet that keeps arriving lands in one generation.
    pub new_member_added: bool,
    /// CompletingRebalance/Stable: members still in `pending_sync` at this time are removed.
    pub sync_deadline_ms: Option<i64>,
    /// The group settled (Stable, Empty, or a static member was replaced) and its membership
    /// should be stored (see `durable_membership`).
    pub membership_changed: bool,
}

impl ClassicGroup {
    /// An Empty group `group_id`, created at `now_ms`.
    pub fn new(group_id: impl Into<String>, now_ms: i64) -> Self {
        ClassicGroup {
            group_id: group_id.into(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            join_deadline_ms: None,
            initial_delay_until_ms: None,
            initial_delay_remaining_ms: 0,
            new_member_added: false,
            sync_deadline_ms: None,
            membership_changed: false,
        }
    }

    /// Whether the group is in `state`.
    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        debug!(group = %self.group_id, from = self.state.as_str(), to = state.as_str(), "group state");
        self.state = state;
        self.state_since_ms = now_ms;
    }

    /// Protocols every member supports, in the leader's (else any member's) preference order.
    pub fn candidate_protocols(&self) -> Vec<String> {
        let first = self
            .leader_id
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next());
        let Some(first) = first else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|p| p.name.clone())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|p| &p.name == name))
            })
            .collect()
    }

    /// Kafka's rule: among the protocols all members support, each member votes for the first
    /// one in its own preference order; the most votes win (ties go to the earlier candidate).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for member in self.members.values() {
            if let Some(choice) = member.vote(&candidates) {
                if let Some(i) = candidates.iter().position(|c| c == choice) {
                    votes[i] += 1;
                }
            }
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|(_, bv)| *v > bv) {
                best = Some((i, *v));
            }
        }
        best.map(|(i, _)| candidates[i].clone())
    }

    /// Whether a member with this protocol type and these protocols may join: an empty group
    /// takes any non-empty offer; otherwise the type must match and at least one protocol must
    /// be supported by every current member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[MemberProtocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|p| candidates.contains(&p.name))
    }

    fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Adds a member that is joining now and starts (or joins) a rebalance.
    pub fn add_member_and_rebalance(
        &mut self,
        config: &GroupConfig,
        request: &JoinRequest,
        member_id: String,
        reply: oneshot::Sender<JoinResponse>,
        now_ms: i64,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.pending_members.remove(&member_id);
        self.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: request.group_instance_id.clone(),
                client_id: request.client_id.clone(),
                client_host: request.client_host.clone(),
                session_timeout_ms: request.session_timeout_ms,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                protocol_type: request.protocol_type.clone(),
                protocols: request.protocols.clone(),
                assignment: Bytes::new(),
                last_heartbeat_ms: now_ms,
                awaiting_join: Some(reply),
                awaiting_sync: None,
            },
        );
        info!(group = %self.group_id, member = %member_id, "member joined");
        if self.is(GroupState::PreparingRebalance) && self.generation_id == 0 {
            self.new_member_added = true;
        }
        self.maybe_prepare_rebalance(config, now_ms, "new member joined");
        self.try_complete_join(now_ms);
    }

    /// Records a known member's rejoin (new protocols/timeouts) and starts or joins a rebalance.
    pub fn update_member_and_rebalance(
        &mut self,
        config: &GroupConfig,
        request: &JoinRequest,
        reply: oneshot::Sender<JoinResponse>,
        now_ms: i64,
    ) {
        if let Some(member) = self.members.get_mut(&request.member_id) {
            member.protocols = request.protocols.clone();
            member.session_timeout_ms = request.session_timeout_ms;
            member.rebalance_timeout_ms = request.rebalance_timeout_ms;
            member.client_id = request.client_id.clone();
            member.client_host = request.client_host.clone();
            member.last_heartbeat_ms = now_ms;
            if let Some(old) = member.awaiting_join.replace(reply) {
                // A client re-sent JoinGroup while its earlier one was still parked; the older
                // request can only be told to retry.
                let _ = old.send(JoinResponse::error(
                    ResponseError::RebalanceInProgress,
                    request.member_id.clone(),
                ));
            }
        }
        self.maybe_prepare_rebalance(config, now_ms, "member rejoined");
        self.try_complete_join(now_ms);
    }

    /// A restarted static member came back with no member id: it takes over the old member's
    /// place (and assignment) under a new id. In a Stable group whose selected protocol would
    /// not change this needs no rebalance; the member gets the current generation back and
    /// fetches its old assignment with SyncGroup.
    pub fn replace_static_member(
        &mut self,
        config: &GroupConfig,
        request: &JoinRequest,
        old_member_id: &str,
        new_member_id: String,
        reply: oneshot::Sender<JoinResponse>,
        now_ms: i64,
    ) {
        let current_leader = self.leader_id.clone().unwrap_or_default();
        let Some(mut member) = self.members.remove(old_member_id) else {
            return;
        };
        // The old incarnation's parked requests are answered: it has been fenced.
        member.complete_join(JoinResponse::error(
            ResponseError::FencedInstanceId,
            old_member_id,
        ));
        member.complete_sync(SyncResponse::error(ResponseError::FencedInstanceId));
        member.member_id = new_member_id.clone();
        member.protocols = request.protocols.clone();
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.last_heartbeat_ms = now_ms;
        if self.leader_id.as_deref() == Some(old_member_id) {
            self.leader_id = Some(new_member_id.clone());
        }
        if self.pending_sync.remove(old_member_id) {
            self.pending_sync.insert(new_member_id.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), new_member_id.clone());
        }
        info!(group = %self.group_id, old = %old_member_id, new = %new_member_id,
              "static member replaced");
        match self.state {
            GroupState::Stable => {
                self.members.insert(new_member_id.clone(), member);
                if self.protocol_name.is_some() && self.select_protocol() == self.protocol_name {
                    self.membership_changed = true;
                    // The current leader id (the old one, if the replaced member led) is
                    // returned so that a rejoining leader does not compute an assignment that
                    // a Stable group would never distribute.
                    let _ = reply.send(JoinResponse {
                        error_code: 0,
                        generation_id: self.generation_id,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        leader: current_leader,
                        member_id: new_member_id,
                        members: Vec::new(),
                        skip_assignment: false,
                    });
                } else {
                    if let Some(m) = self.members.get_mut(&new_member_id) {
                        m.awaiting_join = Some(reply);
                    }
                    self.maybe_prepare_rebalance(config, now_ms, "static member changed protocol");
                }
            }
            GroupState::CompletingRebalance | GroupState::PreparingRebalance => {
                member.awaiting_join = Some(reply);
                self.members.insert(new_member_id, member);
                // After join the replaced member needs the next assignment: rebalance again.
                self.maybe_prepare_rebalance(config, now_ms, "static member rejoined");
                self.try_complete_join(now_ms);
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = reply.send(JoinResponse::error(
                    ResponseError::UnknownMemberId,
                    new_member_id,
                ));
            }
        }
    }

    /// The answer for a member whose rejoin does not change anything: the current generation
    /// (with the member list, if it is the leader).
    pub fn current_join_response(&self, member_id: &str) -> JoinResponse {
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        JoinResponse {
            error_code: 0,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            members: if is_leader {
                self.joined_members()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        }
    }

    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        )
    }

    /// Starts a rebalance unless one is already running (or the group is dead).
    pub fn maybe_prepare_rebalance(&mut self, config: &GroupConfig, now_ms: i64, reason: &str) {
        if !self.can_rebalance() {
            return;
        }
        info!(group = %self.group_id, generation = self.generation_id, reason,
              "preparing to rebalance");
        if self.is(GroupState::CompletingRebalance) {
            // Assignments of the generation being completed will never be distributed;
            // parked SyncGroups learn that a new rebalance started.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                member.complete_sync(SyncResponse::error(ResponseError::RebalanceInProgress));
            }
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let rebalance_timeout = self.max_rebalance_timeout_ms();
        if self.is(GroupState::Empty) && config.initial_rebalance_delay_ms > 0 {
            let initial = i64::from(config.initial_rebalance_delay_ms);
            let delay = initial.min(rebalance_timeout);
            self.initial_delay_until_ms = Some(now_ms + delay);
            self.initial_delay_remaining_ms = (rebalance_timeout - initial).max(0);
            self.new_member_added = false;
        } else {
            self.initial_delay_until_ms = None;
        }
        self.join_deadline_ms = Some(now_ms + rebalance_timeout);
        self.transition(GroupState::PreparingRebalance, now_ms);
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// Completes the join phase if every member has rejoined and no initial delay holds it.
    pub fn try_complete_join(&mut self, now_ms: i64) {
        if self.is(GroupState::PreparingRebalance)
            && self.initial_delay_until_ms.is_none()
            && self.all_members_joined()
        {
            self.complete_join(now_ms);
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation is bumped,
    /// a protocol is selected and every joined member gets its JoinGroup response.
    pub fn complete_join(&mut self, now_ms: i64) {
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in not_rejoined {
            info!(group = %self.group_id, member = %id, "member did not rejoin in time; removed");
            self.drop_member(&id);
        }
        self.join_deadline_ms = None;
        self.initial_delay_until_ms = None;
        if self
            .leader_id
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now_ms);
            self.membership_changed = true;
            info!(group = %self.group_id, generation = self.generation_id, "group is empty");
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now_ms);
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline_ms = Some(now_ms + self.max_rebalance_timeout_ms());
        info!(group = %self.group_id, generation = self.generation_id,
              protocol = ?self.protocol_name, members = self.members.len(), "join completed");
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let response = self.current_join_response(&id);
            if let Some(member) = self.members.get_mut(&id) {
                member.last_heartbeat_ms = now_ms;
                member.complete_join(response);
            }
        }
    }

    /// Takes a member out of the group's maps without any rebalance logic.
    fn drop_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        Some(member)
    }

    /// A member left (LeaveGroup) or was expired: its parked requests are answered with
    /// UNKNOWN_MEMBER_ID and the others rebalance.
    pub fn remove_member_and_rebalance(
        &mut self,
        config: &GroupConfig,
        member_id: &str,
        now_ms: i64,
        reason: &str,
    ) {
        let Some(mut member) = self.drop_member(member_id) else {
            return;
        };
        info!(group = %self.group_id, member = %member_id, reason, "member removed");
        member.complete_join(JoinResponse::error(
            ResponseError::UnknownMemberId,
            member_id,
        ));
        member.complete_sync(SyncResponse::error(ResponseError::UnknownMemberId));
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(config, now_ms, reason);
                // With no member left the join completes at once and the group becomes Empty.
                self.try_complete_join(now_ms);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// The leader's SyncGroup: stores every member's assignment (members the leader left out
    /// get an empty one), makes the group Stable and answers all parked SyncGroups.
    pub fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, now_ms: i64) {
        let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
        for member in self.members.values_mut() {
            member.assignment = by_member.remove(&member.member_id).unwrap_or_default();
        }
        self.transition(GroupState::Stable, now_ms);
        self.membership_changed = true;
        info!(group = %self.group_id, generation = self.generation_id, "group is stable");
        let protocol_type = self.protocol_type.clone();
        let protocol_name = self.protocol_name.clone();
        for member in self.members.values_mut() {
            if member.awaiting_sync.is_some() {
                member.last_heartbeat_ms = now_ms;
                let assignment = member.assignment.clone();
                member.complete_sync(SyncResponse {
                    error_code: 0,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment,
                });
            }
        }
    }

    /// Checks `group.instance.id` against the member id it is registered to.
    pub fn validate_instance(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = group_instance_id {
            match self.static_members.get(instance) {
                Some(id) if id != member_id => return Err(ResponseError::FencedInstanceId),
                None => return Err(ResponseError::UnknownMemberId),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Applies the timers due at `now_ms`: pending-member and session expiry, the end of the
    /// initial delay and of the rebalance timeout, and the sync timeout.
    pub fn tick(&mut self, config: &GroupConfig, now_ms: i64) {
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| now_ms >= **deadline)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired_pending {
            debug!(group = %self.group_id, member = %id, "pending member expired");
            self.pending_members.remove(&id);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_expired(now_ms))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            if let Some(m) = self.members.get(&id) {
                info!(group = %self.group_id, member = %id, state = self.state.as_str(),
                      since_heartbeat_ms = now_ms - m.last_heartbeat_ms,
                      session_timeout_ms = m.session_timeout_ms, "session expired");
            }
            self.remove_member_and_rebalance(config, &id, now_ms, "session timeout expired");
        }
        if self.is(GroupState::PreparingRebalance) {
            if self.initial_delay_until_ms.is_some_and(|t| now_ms >= t) {
                self.end_or_extend_initial_delay(config, now_ms);
            }
            if self.join_deadline_ms.is_some_and(|t| now_ms >= t) {
                self.initial_delay_until_ms = None;
                self.complete_join(now_ms);
            } else {
                self.try_complete_join(now_ms);
            }
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && !self.pending_sync.is_empty()
            && self.sync_deadline_ms.is_some_and(|t| now_ms >= t)
        {
            let laggards: Vec<String> = self.pending_sync.drain().collect();
            self.sync_deadline_ms = None;
            for id in laggards {
                self.remove_member_and_rebalance(config, &id, now_ms, "no SyncGroup in time");
            }
        }
    }

    /// The initial delay ran out: extend it by another delay (within what is left of the
    /// rebalance timeout) if members joined meanwhile, else let the join complete.
    fn end_or_extend_initial_delay(&mut self, config: &GroupConfig, now_ms: i64) {
        if self.new_member_added && self.initial_delay_remaining_ms > 0 {
            self.new_member_added = false;
            let delay =
                i64::from(config.initial_rebalance_delay_ms).min(self.initial_delay_remaining_ms);
            self.initial_delay_remaining_ms = (self.initial_delay_remaining_ms - delay).max(0);
            self.initial_delay_until_ms = Some(now_ms + delay);
        } else {
            self.initial_delay_until_ms = None;
        }
    }

    /// Whether a timer of this group is due at `now_ms` (lets the tick skip idle groups).
    pub fn has_due_timer(&self, now_ms: i64) -> bool {
        let due = |t: Option<i64>| t.is_some_and(|t| now_ms >= t);
        due(self.join_deadline_ms)
            || due(self.initial_delay_until_ms)
            || due(self.sync_deadline_ms)
            || self.pending_members.values().any(|d| now_ms >= *d)
            || self.members.values().any(|m| m.session_expired(now_ms))
    }
}
