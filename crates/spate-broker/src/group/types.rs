//! Plain request and response values of the coordinator's classic-protocol operations.
//!
//! The state machine speaks these instead of `kafka_protocol` structs so that it does not care
//! about wire versions (the `api` module maps each version's fields onto them) and so that its
//! tests read like the protocol description.

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::member::MemberProtocol;

/// Error code 0: no error.
pub const NONE: i16 = 0;

/// The wire code of a Kafka error.
pub const fn code(e: ResponseError) -> i16 {
    e.code()
}

/// A JoinGroup, version-independent.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    /// The group to join (`group.id`).
    pub group_id: String,
    /// Empty for a member's first join.
    pub member_id: String,
    /// The static member's `group.instance.id`; `None` for a dynamic member.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`, shown by DescribeGroups.
    pub client_id: String,
    /// The client's address, shown by DescribeGroups.
    pub client_host: String,
    /// How long the coordinator waits for a heartbeat before it evicts the member (`session.timeout.ms`).
    pub session_timeout_ms: i32,
    /// How long a rebalance waits for members to rejoin (`max.poll.interval.ms` for consumers).
    pub rebalance_timeout_ms: i32,
    /// The protocol type every member must share (`consumer` for Kafka consumers).
    pub protocol_type: String,
    /// The assignment protocols the member supports, in its order of preference.
    pub protocols: Vec<MemberProtocol>,
    /// JoinGroup v4+: a dynamic member without an id is told MEMBER_ID_REQUIRED and rejoins.
    pub require_known_member_id: bool,
}

/// One member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// The member's id in the group.
    pub member_id: String,
    /// The static member's `group.instance.id`, if any.
    pub group_instance_id: Option<String>,
    /// The member's subscription metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// A JoinGroup response, version-independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// The Kafka error code; 0 on success.
    pub error_code: i16,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The group's protocol type (JoinGroup v7+).
    pub protocol_type: Option<String>,
    /// The assignment protocol the group chose.
    pub protocol_name: Option<String>,
    /// The member id of the group leader, which computes the assignment.
    pub leader: String,
    /// The id the member must use from now on.
    pub member_id: String,
    /// Non-empty only for the leader.
    pub members: Vec<JoinedMember>,
    /// KIP-814: a static leader rejoining a stable group keeps the current assignment.
    pub skip_assignment: bool,
}

impl JoinResponse {
    /// A failed join: no generation, and the member id the client should use next (if any).
    pub fn error(error: ResponseError, member_id: impl Into<String>) -> Self {
        JoinResponse {
            error_code: error.code(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.into(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// A SyncGroup, version-independent.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// The group the member syncs with.
    pub group_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The member's id.
    pub member_id: String,
    /// The static member's `group.instance.id`, if any.
    pub group_instance_id: Option<String>,
    /// SyncGroup v5: checked against the group's when present.
    pub protocol_type: Option<String>,
    /// SyncGroup v5: checked against the group's chosen protocol when present.
    pub protocol_name: Option<String>,
    /// Only the leader sends assignments: member id → assignment bytes.
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup response, version-independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// The Kafka error code; 0 on success.
    pub error_code: i16,
    /// The group's protocol type (SyncGroup v5+).
    pub protocol_type: Option<String>,
    /// The group's chosen assignment protocol (SyncGroup v5+).
    pub protocol_name: Option<String>,
    /// The member's assignment, as the leader encoded it.
    pub assignment: Bytes,
}

impl SyncResponse {
    /// An answer carrying only `error`, with no assignment.
    pub fn error(error: ResponseError) -> Self {
        SyncResponse {
            error_code: error.code(),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A member named in a LeaveGroup (v3+ carries several; older versions one, by member id).
#[derive(Debug, Clone, Default)]
pub struct LeavingMember {
    /// The leaving member's id (empty when named by `group.instance.id` only).
    pub member_id: String,
    /// The static member's `group.instance.id`, if any.
    pub group_instance_id: Option<String>,
}

/// One member of a DescribeGroups answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member's id.
    pub member_id: String,
    /// The static member's `group.instance.id`, if any.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// The metadata for the selected protocol; empty unless the group is Stable (as Kafka).
    pub metadata: Bytes,
    /// The member's current assignment, as the leader encoded it.
    pub assignment: Bytes,
}

/// A DescribeGroups answer for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The Kafka error code for this group; 0 on success.
    pub error_code: i16,
    /// The group's id.
    pub group_id: String,
    /// Kafka's name of the group's state (`Empty`, `PreparingRebalance`, `Stable`, …).
    pub state: String,
    /// Not on the wire (DescribeGroups has no generation); for tests and tools in-process.
    pub generation_id: i32,
    /// The protocol type of the group's members (`consumer`), empty for an empty group.
    pub protocol_type: String,
    /// The selected protocol when Stable, else empty.
    pub protocol_data: String,
    /// The group's members.
    pub members: Vec<MemberDescription>,
}

/// A ListGroups entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group's id.
    pub group_id: String,
    /// The group's protocol type (`consumer`, or `` for groups holding only offsets).
    pub protocol_type: String,
    /// Kafka's name of the group's state.
    pub state: String,
}
