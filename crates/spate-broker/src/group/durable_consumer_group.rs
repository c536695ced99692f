//! Durable consumer-protocol (KIP-848) groups: a group's epochs, target assignment, subscribed
//! topic metadata and members (subscriptions, member epochs, assignments, partitions pending
//! revocation) are stored in the offsets log whenever they change, as Kafka stores its
//! `ConsumerGroupMetadata`, `ConsumerGroupTargetAssignment*` and `ConsumerGroupCurrentMember
//! Assignment` records in `__consumer_offsets`. A restarted coordinator loads them: members
//! keep heartbeating with the epochs they hold and keep their partitions; members that do not
//! come back are removed when their session (counted from the load) times out.
//!
//! Heartbeats that change nothing durable (the common case) write nothing. As for classic
//! groups, an answer can reach a client a moment before its record is fsynced; a crash in
//! that window brings the previous state back and the member is fenced and rejoins.
//!
//! ```text
//! group   := group_epoch:i32 target_epoch:i32 assignor state_ts:i64
//!            topics:u32 (name uuid:16 partitions:i32)*  members:u32 member*
//! member  := id opt(instance) opt(rack) client_id client_host rebalance_timeout:i32
//!            opt(server_assignor) epoch:i32 previous_epoch:i32 state:u8
//!            subscribed:u32 name*  assigned pending_revocation target
//!            [regexes:u32 (member_id regex)* resolved:u32 (regex topics:u32 name*)*]
//!            (the bracketed part only when a member subscribes by regex)
//! opt(s)  := present:u8 string
//! assignment := topics:u32 (name count:u32 partition:i32*)*
//! ```

use std::collections::BTreeSet;

use tracing::warn;
use uuid::Uuid;

use super::assignors::Assignment;
use super::consumer_group::{ConsumerGroup, ConsumerMember};
use super::coordinator::GroupCoordinator;
use super::offsets_log::{put_str, Reader};
use super::reconcile::{MemberState, Reconciled};

fn put_i32(b: &mut Vec<u8>, v: i32) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_len(b: &mut Vec<u8>, n: usize) {
    b.extend_from_slice(&(n as u32).to_be_bytes());
}

fn put_opt(b: &mut Vec<u8>, s: &Option<String>) {
    b.push(u8::from(s.is_some()));
    put_str(b, s.as_deref().unwrap_or_default());
}

fn put_assignment(b: &mut Vec<u8>, a: &Assignment) {
    put_len(b, a.len());
    for (topic, ps) in a {
        put_str(b, topic);
        put_len(b, ps.len());
        for p in ps {
            put_i32(b, *p);
        }
    }
}

fn read_opt(r: &mut Reader<'_>) -> Option<Option<String>> {
    let present = r.u8()? != 0;
    let s = r.string()?;
    Some(present.then_some(s))
}

fn read_assignment(r: &mut Reader<'_>) -> Option<Assignment> {
    let mut a = Assignment::new();
    for _ in 0..r.u32()? {
        let topic = r.string()?;
        let mut ps = BTreeSet::new();
        for _ in 0..r.u32()? {
            ps.insert(r.i32()?);
        }
        a.insert(topic, ps);
    }
    Some(a)
}

fn state_code(s: MemberState) -> u8 {
    match s {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn state_of(code: u8) -> Option<MemberState> {
    Some(match code {
        0 => MemberState::Stable,
        1 => MemberState::UnrevokedPartitions,
        2 => MemberState::UnreleasedPartitions,
        _ => return None,
    })
}

impl ConsumerGroup {
    /// The group's durable state, encoded.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(256);
        put_i32(&mut b, self.group_epoch);
        put_i32(&mut b, self.target_epoch);
        put_str(&mut b, &self.assignor_name);
        b.extend_from_slice(&self.state_since_ms.to_be_bytes());
        put_len(&mut b, self.metadata.len());
        for (topic, (id, partitions)) in &self.metadata {
            put_str(&mut b, topic);
            b.extend_from_slice(id.as_bytes());
            put_i32(&mut b, *partitions);
        }
        put_len(&mut b, self.members.len());
        let empty = Assignment::new();
        for m in self.members.values() {
            put_str(&mut b, &m.member_id);
            put_opt(&mut b, &m.instance_id);
            put_opt(&mut b, &m.rack_id);
            put_str(&mut b, &m.client_id);
            put_str(&mut b, &m.client_host);
            put_i32(&mut b, m.rebalance_timeout_ms);
            put_opt(&mut b, &m.server_assignor);
            put_i32(&mut b, m.current.member_epoch);
            put_i32(&mut b, m.previous_member_epoch);
            b.push(state_code(m.current.state));
            put_len(&mut b, m.subscribed.len());
            for t in &m.subscribed {
                put_str(&mut b, t);
            }
            put_assignment(&mut b, &m.current.assigned);
            put_assignment(&mut b, &m.current.pending_revocation);
            put_assignment(&mut b, self.target.get(&m.member_id).unwrap_or(&empty));
        }
        let regexes: Vec<(&String, &String)> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.as_ref().map(|r| (&m.member_id, r)))
            .collect();
        if !regexes.is_empty() {
            put_len(&mut b, regexes.len());
            for (member, regex) in regexes {
                put_str(&mut b, member);
                put_str(&mut b, regex);
            }
            // The topics they matched, so that a restart does not bump the group epoch.
            put_len(&mut b, self.resolved_regexes.len());
            for (regex, topics) in &self.resolved_regexes {
                put_str(&mut b, regex);
                put_len(&mut b, topics.len());
                for t in topics {
                    put_str(&mut b, t);
                }
            }
        }
        b
    }

    /// A group loaded from its encoded state at `now_ms`; every member's session starts now.
    /// `None` for bytes this version cannot read (the group is then forgotten, and its
    /// members rejoin).
    pub fn decode(
        group_id: &str,
        bytes: &[u8],
        session_timeout_ms: i32,
        now_ms: i64,
    ) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let mut g = ConsumerGroup::new(group_id, 0);
        g.group_epoch = r.i32()?;
        g.target_epoch = r.i32()?;
        g.assignor_name = r.string()?;
        g.state_since_ms = r.i64()?;
        for _ in 0..r.u32()? {
            let topic = r.string()?;
            let id = Uuid::from_slice(&r.bytes_fixed(16)?).ok()?;
            g.metadata.insert(topic, (id, r.i32()?));
        }
        for _ in 0..r.u32()? {
            let m = read_member(&mut r, &mut g, session_timeout_ms, now_ms)?;
            if let Some(instance) = &m.instance_id {
                g.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            g.members.insert(m.member_id.clone(), m);
        }
        if !r.at_end() {
            for _ in 0..r.u32()? {
                let member = r.string()?;
                let regex = r.string()?;
                g.members.get_mut(&member)?.subscribed_regex = Some(regex);
            }
            for _ in 0..r.u32()? {
                let regex = r.string()?;
                let mut topics = BTreeSet::new();
                for _ in 0..r.u32()? {
                    topics.insert(r.string()?);
                }
                g.resolved_regexes.insert(regex, topics);
            }
        }
        r.at_end().then_some(g)
    }
}

fn read_member(
    r: &mut Reader<'_>,
    g: &mut ConsumerGroup,
    session_timeout_ms: i32,
    now_ms: i64,
) -> Option<ConsumerMember> {
    let member_id = r.string()?;
    let instance_id = read_opt(r)?;
    let rack_id = read_opt(r)?;
    let client_id = r.string()?;
    let client_host = r.string()?;
    let rebalance_timeout_ms = r.i32()?;
    let server_assignor = read_opt(r)?;
    let member_epoch = r.i32()?;
    let previous_member_epoch = r.i32()?;
    let state = state_of(r.u8()?)?;
    let mut subscribed = BTreeSet::new();
    for _ in 0..r.u32()? {
        subscribed.insert(r.string()?);
    }
    let assigned = read_assignment(r)?;
    let pending_revocation = read_assignment(r)?;
    let target = read_assignment(r)?;
    g.target.insert(member_id.clone(), target);
    let unrevoked = state == MemberState::UnrevokedPartitions;
    Some(ConsumerMember {
        member_id,
        instance_id,
        rack_id,
        client_id,
        client_host,
        rebalance_timeout_ms,
        subscribed,
        subscribed_regex: None,
        server_assignor,
        current: Reconciled {
            state,
            member_epoch,
            assigned,
            pending_revocation,
        },
        previous_member_epoch,
        session_deadline_ms: now_ms + i64::from(session_timeout_ms),
        revocation_deadline_ms: unrevoked.then(|| now_ms + i64::from(rebalance_timeout_ms)),
    })
}

impl GroupCoordinator {
    /// Stores `group` if its durable state differs from what was stored last. A failed write
    /// is logged: the group keeps working, and a restart would make its members rejoin.
    pub(super) fn persist_consumer_group(&self, group: &mut ConsumerGroup) {
        let state = group.encode();
        if group.stored.as_deref() == Some(state.as_slice()) {
            return;
        }
        match self
            .offsets
            .lock()
            .store_consumer_group(&group.group_id, state.clone())
        {
            Ok(()) => group.stored = Some(state),
            Err(e) => {
                warn!(group = %group.group_id, error = %e, "storing the consumer group failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::consumer_group::{HeartbeatRequest, HeartbeatSettings, TopicImage};

    #[test]
    fn a_group_round_trips() {
        let mut image = TopicImage::default();
        image.insert("t", Uuid::from_u128(9), 4);
        let assignors = vec!["uniform".to_owned()];
        let settings = HeartbeatSettings {
            session_timeout_ms: 1000,
            heartbeat_interval_ms: 100,
            max_size: 10,
            assignors: &assignors,
        };
        let mut g = ConsumerGroup::new("g", 5);
        image.insert("t2", Uuid::from_u128(10), 2);
        for (id, instance, regex) in [("a", Some("i".to_owned()), None), ("b", None, Some("t.+"))] {
            let req = HeartbeatRequest {
                group_id: "g".into(),
                member_id: id.into(),
                instance_id: instance,
                rebalance_timeout_ms: 100,
                subscribed_topic_names: Some(vec!["t".into()]),
                subscribed_topic_regex: regex.map(String::from),
                owned: Some(Assignment::new()),
                ..Default::default()
            };
            g.heartbeat(&req, &settings, &image, 10).unwrap();
        }
        let bytes = g.encode();
        let back = ConsumerGroup::decode("g", &bytes, 1000, 50).unwrap();
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.members["a"].session_deadline_ms, 1050);
        assert_eq!(back.static_members["i"], "a");
        assert_eq!(back.members["b"].subscribed_regex.as_deref(), Some("t.+"));
        assert_eq!(
            back.resolved_regexes["t.+"],
            BTreeSet::from(["t2".to_owned()])
        );
        // Loaded, the group needs no new epoch: the same topics resolve the same way.
        let mut back = back;
        assert!(!back.refresh_metadata(&image));
        assert!(ConsumerGroup::decode("g", &bytes[..bytes.len() - 1], 1000, 0).is_none());
    }
}
