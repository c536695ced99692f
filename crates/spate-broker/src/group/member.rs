//! One member of a classic consumer group: who it is, what it supports, what it was assigned,
//! when it last proved it was alive, and the JoinGroup/SyncGroup response it is waiting for.
//!
//! A member's pending response lives here (as a `oneshot::Sender`) because in the classic
//! protocol JoinGroup and SyncGroup block on the broker until the rebalance completes; the state
//! machine answers them when it decides, not when the request arrives.

use bytes::Bytes;
use tokio::sync::oneshot;

use super::types::{JoinResponse, SyncResponse};

/// A protocol the member supports (e.g. `range`), with its opaque subscription metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberProtocol {
    /// The protocol's name (`range`, `roundrobin`, `cooperative-sticky`, …).
    pub name: String,
    /// The member's subscription for this protocol, opaque to the broker.
    pub metadata: Bytes,
}

/// A member of a classic group.
#[derive(Debug)]
pub struct Member {
    /// The member's id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// How long the coordinator waits for a heartbeat before it evicts the member.
    pub session_timeout_ms: i32,
    /// How long a rebalance waits for the member to rejoin.
    pub rebalance_timeout_ms: i32,
    /// The protocol type of the member (`consumer`).
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<MemberProtocol>,
    /// What the leader assigned it in the last SyncGroup (empty until then).
    pub assignment: Bytes,
    /// Last heartbeat (or join/sync), in the coordinator's clock.
    pub last_heartbeat_ms: i64,
    /// Set while a JoinGroup of this member waits for the rebalance to complete.
    pub awaiting_join: Option<oneshot::Sender<JoinResponse>>,
    /// Set while a SyncGroup of this member waits for the leader's assignment.
    pub awaiting_sync: Option<oneshot::Sender<SyncResponse>>,
}

impl Member {
    /// The metadata this member sent for `protocol`, if it supports it.
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| &p.metadata)
    }

    /// Whether `protocols` are exactly what the member sent last time (same names, metadata and
    /// order): a rejoin with unchanged protocols in a Stable group does not need a rebalance.
    pub fn matches(&self, protocols: &[MemberProtocol]) -> bool {
        self.protocols == protocols
    }

    /// The first protocol in this member's preference order that is among `candidates`.
    pub fn vote<'a>(&self, candidates: &'a [String]) -> Option<&'a String> {
        self.protocols
            .iter()
            .find_map(|p| candidates.iter().find(|c| **c == p.name))
    }

    /// Members blocked in JoinGroup or SyncGroup are kept alive by the rebalance and sync timers
    /// instead of their session timeout (Kafka's `shouldKeepAlive`): a client cannot heartbeat
    /// while its only request is parked on the broker.
    pub fn session_expired(&self, now_ms: i64) -> bool {
        self.awaiting_join.is_none()
            && self.awaiting_sync.is_none()
            && now_ms >= self.last_heartbeat_ms + i64::from(self.session_timeout_ms)
    }

    /// Answers a parked JoinGroup, if any. A receiver that went away (the client disconnected)
    /// is not an error.
    pub fn complete_join(&mut self, response: JoinResponse) {
        if let Some(tx) = self.awaiting_join.take() {
            let _ = tx.send(response);
        }
    }

    /// Answers a parked SyncGroup, if any.
    pub fn complete_sync(&mut self, response: SyncResponse) {
        if let Some(tx) = self.awaiting_sync.take() {
            let _ = tx.send(response);
        }
    }
}
