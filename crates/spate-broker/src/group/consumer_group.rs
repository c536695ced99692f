//! One consumer-protocol group (KIP-848) and its heartbeat, as Kafka's `ConsumerGroup` and
//! the consumer-group half of its `GroupMetadataManager`.
//!
//! Three epochs drive it. The *group epoch* moves whenever something that changes the
//! assignment changes: a member joins or leaves, a subscription changes, a subscribed topic
//! gains partitions or is created or deleted. When it is ahead of the *target assignment
//! epoch*, the server-side assignor computes a new target and the target epoch catches up.
//! Each member has a *member epoch*: the target epoch it has reconciled to, advanced one
//! heartbeat at a time by [`super::reconcile`], so that no partition ever has two owners.
//!
//! Everything here is synchronous and takes the time as an argument; the coordinator holds
//! the groups under a lock and a background tick removes members whose session or
//! revocation (rebalance) timeout passed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::ResponseError;
use tracing::info;
use uuid::Uuid;

use super::assignors::{self, Assignment, AssignorMember};
use super::reconcile::{self, MemberState, Reconciled};
use super::topic_regex;

/// The member epoch of a LeaveGroup heartbeat.
pub const LEAVE_EPOCH: i32 = -1;
/// The member epoch of a static member's temporary leave: it keeps its partitions until its
/// session times out, so a restart with the same `group.instance.id` gets them back.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// The topics that exist, by name and by id (a snapshot taken for one request).
#[derive(Debug, Clone, Default)]
pub struct TopicImage {
    /// Each topic's id and partition count, by name.
    pub by_name: HashMap<String, (Uuid, i32)>,
    /// Each topic's name, by id (ConsumerGroupHeartbeat names owned partitions by topic id).
    pub by_id: HashMap<Uuid, String>,
}

impl TopicImage {
    /// Adds topic `name` with its id and partition count.
    pub fn insert(&mut self, name: &str, id: Uuid, partitions: i32) {
        self.by_name.insert(name.to_owned(), (id, partitions));
        self.by_id.insert(id, name.to_owned());
    }
}

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// The member's id, chosen by the client (KIP-848) on its first heartbeat.
    pub member_id: String,
    /// The static member's `group.instance.id`, if any.
    pub instance_id: Option<String>,
    /// The member's `client.rack`, if it sent one.
    pub rack_id: Option<String>,
    /// The client's `client.id`, shown by ConsumerGroupDescribe.
    pub client_id: String,
    /// The client's address, shown by ConsumerGroupDescribe.
    pub client_host: String,
    /// How long the member may take to revoke partitions before it is removed.
    pub rebalance_timeout_ms: i32,
    /// The topic names the member subscribes to.
    pub subscribed: BTreeSet<String>,
    /// `SubscribedTopicRegex`: the topics it matches are subscribed too (`None`: no regex).
    pub subscribed_regex: Option<String>,
    /// The server-side assignor the member asked for (`group.remote.assignor`), if any.
    pub server_assignor: Option<String>,
    /// Epoch, state, assignment and partitions pending revocation.
    pub current: Reconciled,
    /// The epoch before the last bump: a heartbeat with it is accepted (its response with
    /// the new epoch may have been lost).
    pub previous_member_epoch: i32,
    /// When the member is removed unless it heartbeats first (`group.consumer.session.timeout.ms`).
    pub session_deadline_ms: i64,
    /// Set while it must revoke partitions: it is removed if it has not by then.
    pub revocation_deadline_ms: Option<i64>,
}

impl ConsumerMember {
    fn new(member_id: String, now_ms: i64) -> Self {
        ConsumerMember {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            subscribed: BTreeSet::new(),
            subscribed_regex: None,
            server_assignor: None,
            current: Reconciled {
                state: MemberState::Stable,
                member_epoch: 0,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
            },
            previous_member_epoch: 0,
            session_deadline_ms: now_ms,
            revocation_deadline_ms: None,
        }
    }
}

/// A ConsumerGroupHeartbeat, version-independent, owned partitions resolved to topic names.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    /// The group the heartbeat is for.
    pub group_id: String,
    /// The member's id.
    pub member_id: String,
    /// The member's epoch: 0 to join, -1 to leave, -2 for a static member's temporary leave.
    pub member_epoch: i32,
    /// The static member's `group.instance.id`, if any.
    pub instance_id: Option<String>,
    /// The member's `client.rack`; `None`: unchanged.
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// `None`: unchanged; `Some("")`: no regex any more.
    pub subscribed_topic_regex: Option<String>,
    /// The server-side assignor asked for; `None`: unchanged.
    pub server_assignor: Option<String>,
    /// `None`: not sent.
    pub owned: Option<Assignment>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
}

/// A successful heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    /// The member's id.
    pub member_id: String,
    /// The member's epoch after this heartbeat.
    pub member_epoch: i32,
    /// How soon the member must heartbeat again (`group.consumer.heartbeat.interval.ms`).
    pub heartbeat_interval_ms: i32,
    /// Sent on a full request or when the assignment changed.
    pub assignment: Option<Assignment>,
}

/// An error code and Kafka's message for it.
pub type HeartbeatError = (ResponseError, String);

/// The broker settings a heartbeat needs.
#[derive(Debug, Clone)]
pub struct HeartbeatSettings<'a> {
    /// `group.consumer.session.timeout.ms`: how long a member may go without heartbeating.
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: how often members are told to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`: the most members a group may have.
    pub max_size: usize,
    /// `group.consumer.assignors`; the first is the default.
    pub assignors: &'a [String],
}

/// A consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    /// The group's id.
    pub group_id: String,
    /// The group epoch: bumped by every change of members, subscriptions or topic metadata.
    pub group_epoch: i32,
    /// The epoch of the current target assignment (the group epoch it was computed at).
    pub target_epoch: i32,
    /// The members, by member id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// `group.instance.id` → member id.
    pub static_members: HashMap<String, String>,
    /// The target assignment of epoch `target_epoch`, by member id.
    pub target: BTreeMap<String, Assignment>,
    /// Subscribed topics that exist: id and partition count (a change bumps the group epoch).
    pub metadata: BTreeMap<String, (Uuid, i32)>,
    /// Each member's `SubscribedTopicRegex` → the topics it matched at the last heartbeat.
    pub resolved_regexes: BTreeMap<String, BTreeSet<String>>,
    /// The assignor of the last target assignment.
    pub assignor_name: String,
    /// When the group entered its current state (ms); stored with the group.
    pub state_since_ms: i64,
    /// The encoded state last stored (`durable_consumer_group`): unchanged state is not
    /// written again.
    pub stored: Option<Vec<u8>>,
}

impl ConsumerGroup {
    /// An empty group `group_id`, created at `now_ms`.
    pub fn new(group_id: impl Into<String>, now_ms: i64) -> Self {
        ConsumerGroup {
            group_id: group_id.into(),
            group_epoch: 0,
            target_epoch: 0,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            target: BTreeMap::new(),
            metadata: BTreeMap::new(),
            resolved_regexes: BTreeMap::new(),
            assignor_name: String::new(),
            state_since_ms: now_ms,
            stored: None,
        }
    }

    /// Kafka's `ConsumerGroup.State` name: Empty, Assigning (a new target is due),
    /// Reconciling (a member has not reached it) or Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.target_epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.current.member_epoch != self.target_epoch || m.current.state != MemberState::Stable
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn bump(&mut self, why: &str) {
        self.group_epoch += 1;
        info!(group = %self.group_id, epoch = self.group_epoch, why, "consumer group epoch bumped");
    }

    /// A ConsumerGroupHeartbeat (validated by the coordinator).
    pub fn heartbeat(
        &mut self,
        req: &HeartbeatRequest,
        settings: &HeartbeatSettings<'_>,
        image: &TopicImage,
        now_ms: i64,
    ) -> Result<HeartbeatAnswer, HeartbeatError> {
        match req.member_epoch {
            LEAVE_EPOCH => return self.leave(req),
            STATIC_LEAVE_EPOCH => return self.static_leave(req),
            _ => {}
        }
        let member_id = self.resolve_member(req, settings, now_ms)?;
        let subscription_changed = self.update_member(&member_id, req, settings, now_ms);
        // One bump for both, as Kafka: a first join changes the subscriptions and the
        // subscribed topics' metadata at once.
        let metadata_changed = self.refresh_metadata(image);
        if subscription_changed || metadata_changed {
            self.bump(if subscription_changed {
                "subscription changed"
            } else {
                "subscribed topic metadata changed"
            });
        }
        if self.group_epoch > self.target_epoch {
            self.compute_target(settings);
        }
        let before = self.members[&member_id].current.assigned.clone();
        self.reconcile_member(&member_id, req.owned.as_ref(), now_ms);
        let member = &self.members[&member_id];
        let full = req.member_epoch == 0
            || (req.rebalance_timeout_ms != -1
                && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
                && req.owned.is_some());
        Ok(HeartbeatAnswer {
            member_id: member_id.clone(),
            member_epoch: member.current.member_epoch,
            heartbeat_interval_ms: settings.heartbeat_interval_ms,
            assignment: (full || before != member.current.assigned)
                .then(|| member.current.assigned.clone()),
        })
    }

    /// The answer to a leave: no heartbeat interval (Kafka leaves it 0: there is no next
    /// heartbeat).
    fn answer(member_id: &str, epoch: i32) -> HeartbeatAnswer {
        HeartbeatAnswer {
            member_id: member_id.to_owned(),
            member_epoch: epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }

    /// Epoch -1: the member leaves; its partitions are reassigned at the next group epoch.
    fn leave(&mut self, req: &HeartbeatRequest) -> Result<HeartbeatAnswer, HeartbeatError> {
        let member_id = match &req.instance_id {
            Some(instance) => self.static_member(instance, &req.member_id)?,
            None => req.member_id.clone(),
        };
        if !self.members.contains_key(&member_id) {
            return Err(unknown_member(&member_id, &self.group_id));
        }
        self.remove_member(&member_id, "left the group");
        Ok(Self::answer(&req.member_id, LEAVE_EPOCH))
    }

    /// Epoch -2: a static member leaves for now and keeps its assignment until its session
    /// times out; nothing is reassigned (no epoch bump).
    fn static_leave(&mut self, req: &HeartbeatRequest) -> Result<HeartbeatAnswer, HeartbeatError> {
        let instance = req.instance_id.clone().unwrap_or_default();
        let member_id = self.static_member(&instance, &req.member_id)?;
        if let Some(m) = self.members.get_mut(&member_id) {
            m.previous_member_epoch = m.current.member_epoch;
            m.current.member_epoch = STATIC_LEAVE_EPOCH;
            m.current.pending_revocation.clear();
            m.current.state = MemberState::Stable;
            m.revocation_deadline_ms = None;
        }
        info!(group = %self.group_id, member = %member_id, instance, "static member left temporarily");
        Ok(Self::answer(&req.member_id, STATIC_LEAVE_EPOCH))
    }

    /// The member id of the static member `instance`, which must be `member_id`.
    fn static_member(&self, instance: &str, member_id: &str) -> Result<String, HeartbeatError> {
        match self.static_members.get(instance) {
            None => Err(unknown_member(member_id, &self.group_id)),
            Some(id) if id != member_id => Err((
                ResponseError::FencedInstanceId,
                format!("Static member {instance} was fenced: its member id is {id}."),
            )),
            Some(id) => Ok(id.clone()),
        }
    }

    /// Finds (or, joining, creates) the member of this heartbeat and checks its epoch.
    fn resolve_member(
        &mut self,
        req: &HeartbeatRequest,
        settings: &HeartbeatSettings<'_>,
        now_ms: i64,
    ) -> Result<String, HeartbeatError> {
        if req.member_epoch > 0 {
            if let Some(instance) = &req.instance_id {
                self.static_member(instance, &req.member_id)?;
            }
            let Some(member) = self.members.get(&req.member_id) else {
                return Err(unknown_member(&req.member_id, &self.group_id));
            };
            check_epoch(member, req.member_epoch, req.owned.as_ref())?;
            return Ok(req.member_id.clone());
        }
        // Epoch 0: joining or rejoining.
        let member_id = if req.member_id.is_empty() {
            Uuid::new_v4().simple().to_string()
        } else {
            req.member_id.clone()
        };
        let known = self.members.contains_key(&member_id);
        if !known && self.members.len() >= settings.max_size {
            return Err((
                ResponseError::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    settings.max_size
                ),
            ));
        }
        if let Some(instance) = &req.instance_id {
            if let Some(old) = self.static_members.get(instance).cloned() {
                if old != member_id {
                    self.replace_static_member(instance, &old, &member_id, now_ms)?;
                    return Ok(member_id);
                }
            }
        }
        match self.members.get_mut(&member_id) {
            Some(m) => {
                // A member rejoining with epoch 0 owns nothing any more (it must send no
                // owned partitions): start its reconciliation afresh.
                m.current = ConsumerMember::new(member_id.clone(), now_ms).current;
            }
            None => {
                self.members.insert(
                    member_id.clone(),
                    ConsumerMember::new(member_id.clone(), now_ms),
                );
                info!(group = %self.group_id, member = %member_id, "consumer member joined");
            }
        }
        Ok(member_id)
    }

    /// A static member restarted: the new member id takes the old one's place, partitions and
    /// target, if the old one left with epoch -2; otherwise its instance id is still in use.
    fn replace_static_member(
        &mut self,
        instance: &str,
        old_id: &str,
        new_id: &str,
        now_ms: i64,
    ) -> Result<(), HeartbeatError> {
        let Some(old) = self.members.get(old_id) else {
            self.static_members.remove(instance);
            return Ok(());
        };
        if old.current.member_epoch != STATIC_LEAVE_EPOCH {
            return Err((
                ResponseError::UnreleasedInstanceId,
                format!("Static member {instance} has not left the group (member {old_id})."),
            ));
        }
        let Some(mut member) = self.members.remove(old_id) else {
            return Ok(());
        };
        member.member_id = new_id.to_owned();
        member.current.member_epoch = 0;
        member.session_deadline_ms = now_ms;
        if let Some(target) = self.target.remove(old_id) {
            self.target.insert(new_id.to_owned(), target);
        }
        self.members.insert(new_id.to_owned(), member);
        self.static_members
            .insert(instance.to_owned(), new_id.to_owned());
        info!(group = %self.group_id, old = %old_id, new = %new_id, "static member replaced");
        Ok(())
    }

    /// Applies the heartbeat's fields; returns whether the subscription changed.
    fn update_member(
        &mut self,
        member_id: &str,
        req: &HeartbeatRequest,
        settings: &HeartbeatSettings<'_>,
        now_ms: i64,
    ) -> bool {
        let Some(m) = self.members.get_mut(member_id) else {
            return false;
        };
        m.session_deadline_ms = now_ms + i64::from(settings.session_timeout_ms);
        if req.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if req.rack_id.is_some() {
            m.rack_id = req.rack_id.clone();
        }
        if let Some(assignor) = &req.server_assignor {
            m.server_assignor = Some(assignor.clone());
        }
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        if let Some(instance) = &req.instance_id {
            m.instance_id = Some(instance.clone());
            self.static_members
                .insert(instance.clone(), member_id.to_owned());
        }
        let mut changed = false;
        if let Some(names) = &req.subscribed_topic_names {
            let subscribed: BTreeSet<String> = names.iter().cloned().collect();
            if let Some(m) = self.members.get_mut(member_id) {
                if m.subscribed != subscribed {
                    m.subscribed = subscribed;
                    changed = true;
                }
            }
        }
        if let Some(regex) = &req.subscribed_topic_regex {
            let regex = (!regex.is_empty()).then(|| regex.clone());
            if let Some(m) = self.members.get_mut(member_id) {
                if m.subscribed_regex != regex {
                    m.subscribed_regex = regex;
                    changed = true;
                }
            }
        }
        changed
    }

    /// A member's whole subscription: its topic names and the topics its regex matched.
    pub fn subscription_of(&self, m: &ConsumerMember) -> BTreeSet<String> {
        let mut topics = m.subscribed.clone();
        if let Some(matched) = m
            .subscribed_regex
            .as_ref()
            .and_then(|r| self.resolved_regexes.get(r))
        {
            topics.extend(matched.iter().cloned());
        }
        topics
    }

    /// Resolves the members' regexes against `image` and re-reads the subscribed topics' ids
    /// and partition counts; returns whether either differs (a topic created, deleted, given
    /// more partitions, or newly matched by a regex), which bumps the group epoch.
    pub fn refresh_metadata(&mut self, image: &TopicImage) -> bool {
        let topics: Vec<&str> = image.by_name.keys().map(String::as_str).collect();
        let resolved = topic_regex::resolve(
            self.members
                .values()
                .filter_map(|m| m.subscribed_regex.as_deref()),
            &topics,
        );
        let regexes_changed = resolved != self.resolved_regexes;
        self.resolved_regexes = resolved;
        let subscribed: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| self.subscription_of(m))
            .collect();
        let metadata: BTreeMap<String, (Uuid, i32)> = subscribed
            .into_iter()
            .filter_map(|t| image.by_name.get(&t).map(|v| (t.clone(), *v)))
            .collect();
        if metadata == self.metadata && !regexes_changed {
            return false;
        }
        self.metadata = metadata;
        true
    }

    /// Runs the assignor for the current members; the target epoch becomes the group epoch.
    fn compute_target(&mut self, settings: &HeartbeatSettings<'_>) {
        let name = self.preferred_assignor(settings);
        let counts: BTreeMap<String, i32> = self
            .metadata
            .iter()
            .map(|(t, (_, n))| (t.clone(), *n))
            .collect();
        let subscriptions: Vec<BTreeSet<String>> = self
            .members
            .values()
            .map(|m| self.subscription_of(m))
            .collect();
        let members: Vec<AssignorMember<'_>> = self
            .members
            .values()
            .zip(&subscriptions)
            .map(|(m, subscribed)| AssignorMember {
                member_id: &m.member_id,
                subscribed,
                previous: self.target.get(&m.member_id),
            })
            .collect();
        let target = assignors::assign(&name, &members, &counts);
        self.target = target;
        self.target_epoch = self.group_epoch;
        self.assignor_name = name;
        info!(group = %self.group_id, epoch = self.target_epoch, assignor = %self.assignor_name,
              "new target assignment");
    }

    /// The server assignor most members name; the default when none does (Kafka's rule).
    fn preferred_assignor(&self, settings: &HeartbeatSettings<'_>) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .map(|(name, _)| name.to_owned())
            .or_else(|| settings.assignors.first().cloned())
            .unwrap_or_else(|| "uniform".to_owned())
    }

    /// One reconciliation step of `member_id`.
    fn reconcile_member(&mut self, member_id: &str, owned: Option<&Assignment>, now_ms: i64) {
        let owners = self.owners();
        let held_by_other = |topic: &str, p: i32| {
            owners
                .get(&(topic.to_owned(), p))
                .is_some_and(|o| o.as_str() != member_id)
        };
        let empty = Assignment::new();
        let target = self.target.get(member_id).unwrap_or(&empty);
        let Some(m) = self.members.get(member_id) else {
            return;
        };
        let next = reconcile::step(&m.current, self.target_epoch, target, owned, &held_by_other);
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        if next.member_epoch != m.current.member_epoch {
            m.previous_member_epoch = m.current.member_epoch;
        }
        m.revocation_deadline_ms = match next.state {
            MemberState::UnrevokedPartitions => Some(
                m.revocation_deadline_ms
                    .unwrap_or(now_ms + i64::from(m.rebalance_timeout_ms)),
            ),
            _ => None,
        };
        m.current = next;
    }

    /// Who holds each partition now (assigned or pending revocation).
    fn owners(&self) -> HashMap<(String, i32), String> {
        let mut out = HashMap::new();
        for m in self.members.values() {
            for a in [&m.current.assigned, &m.current.pending_revocation] {
                for (topic, ps) in a {
                    for p in ps {
                        out.insert((topic.clone(), *p), m.member_id.clone());
                    }
                }
            }
        }
        out
    }

    /// Removes a member; its partitions are free and reassigned at the next group epoch.
    pub fn remove_member(&mut self, member_id: &str, why: &str) {
        if let Some(m) = self.members.remove(member_id) {
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
            self.target.remove(member_id);
            info!(group = %self.group_id, member = %member_id, why, "consumer member removed");
            self.bump(why);
        }
    }

    /// Removes members whose session or revocation timeout passed; returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let expired: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if now_ms >= m.session_deadline_ms {
                    Some((m.member_id.clone(), "session timeout"))
                } else if m.revocation_deadline_ms.is_some_and(|d| now_ms >= d) {
                    Some((
                        m.member_id.clone(),
                        "rebalance timeout: partitions not revoked",
                    ))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in &expired {
            self.remove_member(id, why);
        }
        expired.len()
    }

    /// Kafka's `ConsumerGroup.validateOffsetCommit`/`validateOffsetFetch` epoch rule: a
    /// member id and epoch (or -1 from outside the group while it is empty) must match.
    pub fn validate_member_epoch(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if member.current.member_epoch != epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }
}

fn unknown_member(member_id: &str, group_id: &str) -> HeartbeatError {
    (
        ResponseError::UnknownMemberId,
        format!("Member {member_id} is not a member of group {group_id}."),
    )
}

/// Kafka's epoch rule: ahead of the coordinator is fenced; behind is fenced unless it is the
/// previous epoch and the member owns no more than its current assignment.
fn check_epoch(
    member: &ConsumerMember,
    received: i32,
    owned: Option<&Assignment>,
) -> Result<(), HeartbeatError> {
    let known = member.current.member_epoch;
    let subset = owned.is_some_and(|o| {
        o.iter().all(|(t, ps)| {
            member
                .current
                .assigned
                .get(t)
                .is_some_and(|a| ps.is_subset(a))
                || ps.is_empty()
        })
    });
    if received > known
        || (received < known && (received != member.previous_member_epoch || !subset))
    {
        return Err((
            ResponseError::FencedMemberEpoch,
            format!(
                "The consumer group member has a {} member epoch ({received}) than the one known by \
                 the group coordinator ({known}). The member must abandon all its partitions and rejoin.",
                if received > known { "greater" } else { "smaller" }
            ),
        ));
    }
    Ok(())
}
