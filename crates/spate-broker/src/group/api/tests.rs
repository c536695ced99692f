//! Every handler's response must encode at every version it serves (kafka-protocol refuses
//! fields a version lacks), and the version-specific request fields must be honoured.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;

use std::sync::Arc;

use super::*;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::handlers::{HandlerRegistry, RequestContext};

/// A request context at version `v`; the group handlers read only the version, the client id
/// and the peer.
fn ctx(v: i16) -> RequestContext {
    RequestContext {
        api_key: ApiKey::JoinGroup,
        api_version: v,
        correlation_id: 1,
        client_id: Some("test-client".into()),
        peer: "127.0.0.1:40000".parse().expect("address"),
        supported_apis: Arc::from([]),
        advertised: Arc::new(crate::state::Advertised {
            node_id: 0,
            host: "127.0.0.1".into(),
            port: 9092,
        }),
        auth: Arc::new(crate::security::ConnectionAuth::anonymous()),
    }
}

/// The `(min, max)` versions the group module registers for `key`.
fn served(key: ApiKey) -> (i16, i16) {
    let mut r = HandlerRegistry::new();
    register(&mut r);
    let e = r.get(key as i16).expect("registered");
    (e.min_version, e.max_version)
}

fn encodes<M: Encodable>(m: &M, version: i16) {
    let mut buf = BytesMut::new();
    m.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{} v{version}: {e}", std::any::type_name::<M>()));
}

fn join_request(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(b"meta"))])
}

#[tokio::test]
async fn membership_responses_encode_at_every_version() {
    let c = GroupCoordinator::in_memory(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    for v in 0..=served(ApiKey::JoinGroup).1 {
        let group = format!("g{v}");
        let mut r = handle_join_group(&c, &ctx(v), join_request(&group, "")).await;
        if v >= 4 {
            assert_eq!(r.error_code, ResponseError::MemberIdRequired.code());
            encodes(&r, v);
            let id = r.member_id.as_str().to_owned();
            r = handle_join_group(&c, &ctx(v), join_request(&group, &id)).await;
        }
        assert_eq!(r.error_code, 0, "v{v}");
        assert_eq!(r.members.len(), 1);
        encodes(&r, v);
        let member = r.member_id.clone();
        let sv = v.min(served(ApiKey::SyncGroup).1);
        let s = handle_sync_group(
            &c,
            &ctx(sv),
            SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_generation_id(r.generation_id)
                .with_member_id(member.clone()),
        )
        .await;
        assert_eq!(s.error_code, 0);
        encodes(&s, sv);
        let hv = v.min(served(ApiKey::Heartbeat).1);
        let h = handle_heartbeat(
            &c,
            &ctx(hv),
            HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                .with_generation_id(r.generation_id)
                .with_member_id(member.clone()),
        );
        assert_eq!(h.error_code, 0);
        encodes(&h, hv);
        let lv = v.min(served(ApiKey::LeaveGroup).1);
        let mut leave = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())));
        if lv >= 3 {
            leave.members =
                vec![leave_group_request::MemberIdentity::default().with_member_id(member.clone())];
        } else {
            leave.member_id = member.clone();
        }
        let l = handle_leave_group(&c, &ctx(lv), leave);
        assert_eq!(l.error_code, 0);
        if lv >= 3 {
            assert_eq!(l.members[0].error_code, 0);
        }
        encodes(&l, lv);
    }
}

#[test]
fn offset_and_admin_responses_encode_at_every_version() {
    let c = GroupCoordinator::in_memory(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    for v in served(ApiKey::OffsetCommit).0..=served(ApiKey::OffsetCommit).1 {
        let r = handle_offset_commit(
            &c,
            &ctx(v),
            OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(10 + i64::from(v))
                        .with_committed_metadata(Some(StrBytes::from_static_str("m")))])]),
            &|topic, _| topic == "t",
        );
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        encodes(&r, v);
    }
    let unknown = handle_offset_commit(
        &c,
        &ctx(8),
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("missing")))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default().with_committed_offset(1)
                    ]),
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(5)
                        .with_committed_offset(1)]),
            ]),
        &|topic, _| topic == "t",
    );
    assert_eq!(
        unknown.topics[0].partitions[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(unknown.topics[1].partitions[0].error_code, 0);
    assert!(c.fetch_offsets("g", None).iter().all(|f| f.topic == "t"));
    for v in served(ApiKey::OffsetFetch).0..=served(ApiKey::OffsetFetch).1 {
        let r = if v >= 8 {
            handle_offset_fetch(
                &c,
                &ctx(v),
                OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(StrBytes::from_static_str("g")))
                        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                            .with_name(TopicName(StrBytes::from_static_str("t")))
                            .with_partition_indexes(vec![0, 1])])),
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(StrBytes::from_static_str("unknown"))),
                ]),
            )
        } else {
            handle_offset_fetch(
                &c,
                &ctx(v),
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("t")))
                        .with_partition_indexes(vec![0, 1])])),
            )
        };
        if v >= 8 {
            let parts = &r.groups[0].topics[0].partitions;
            assert_eq!(parts[0].committed_offset, 19);
            assert_eq!(parts[1].committed_offset, -1);
            assert!(r.groups[1].topics.is_empty());
        } else {
            let parts = &r.topics[0].partitions;
            assert_eq!(parts[0].committed_offset, 19);
            assert_eq!(parts[1].committed_offset, -1);
        }
        encodes(&r, v);
    }
    let node = CoordinatorNode {
        node_id: 1,
        host: "127.0.0.1".into(),
        port: 9092,
    };
    for v in 0..=served(ApiKey::FindCoordinator).1 {
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("g"))
            .with_coordinator_keys(if v >= 4 {
                vec![
                    StrBytes::from_static_str("g"),
                    StrBytes::from_static_str("h"),
                ]
            } else {
                Vec::new()
            });
        let r = handle_find_coordinator(&node, &ctx(v), req);
        if v >= 4 {
            assert_eq!(r.coordinators.len(), 2);
            assert_eq!(r.coordinators[1].port, 9092);
        } else {
            assert_eq!((r.node_id.0, r.port), (1, 9092));
        }
        encodes(&r, v);
        if v >= 1 {
            let bad = handle_find_coordinator(
                &node,
                &ctx(v),
                FindCoordinatorRequest::default()
                    .with_key_type(7)
                    .with_coordinator_keys(if v >= 4 {
                        vec![StrBytes::from_static_str("x")]
                    } else {
                        Vec::new()
                    }),
            );
            encodes(&bad, v);
        }
    }
    for v in 0..=served(ApiKey::ListGroups).1 {
        let r = handle_list_groups(&c, &ctx(v), ListGroupsRequest::default());
        assert_eq!(r.groups.len(), 1);
        encodes(&r, v);
    }
    for v in 0..=served(ApiKey::DescribeGroups).1 {
        let r = handle_describe_groups(
            &c,
            &ctx(v),
            DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_static_str("g"))]),
        );
        assert_eq!(r.groups[0].group_state.as_str(), "Empty");
        encodes(&r, v);
    }
    let r = handle_offset_delete(
        &c,
        &ctx(0),
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ]),
            ]),
    );
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    encodes(&r, 0);
    for v in 0..=served(ApiKey::DeleteGroups).1 {
        let r = handle_delete_groups(
            &c,
            &ctx(v),
            DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from_static_str("g"))]),
        );
        encodes(&r, v);
    }
}
