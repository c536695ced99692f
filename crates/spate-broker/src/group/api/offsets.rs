//! OffsetCommit, OffsetFetch (incl. v8+ multi-group) and OffsetDelete.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

use crate::group::coordinator::{CommitPartition, CommitRequest, FetchedOffset, GroupCoordinator};
use crate::group::now_ms;
use crate::handlers::RequestContext;
use crate::strings::{opt_string, str_bytes};

/// OffsetCommit (v2–v9). Offsets of partitions for which `partition_exists` is false are not
/// stored and answered UNKNOWN_TOPIC_OR_PARTITION, as Kafka does.
pub fn handle_offset_commit(
    coordinator: &GroupCoordinator,
    ctx: &RequestContext,
    request: OffsetCommitRequest,
    partition_exists: &dyn Fn(&str, i32) -> bool,
) -> OffsetCommitResponse {
    let version = ctx.api_version;
    let unknown: Vec<bool> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| !partition_exists(t.name.0.as_str(), p.partition_index))
        })
        .collect();
    let mut is_unknown = unknown.iter();
    let partitions: Vec<CommitPartition> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .filter(|_| !is_unknown.next().copied().unwrap_or(false))
        .map(|(t, p)| CommitPartition {
            topic: t.name.0.as_str().to_owned(),
            partition: p.partition_index,
            offset: p.committed_offset,
            leader_epoch: if version >= 6 {
                p.committed_leader_epoch
            } else {
                -1
            },
            metadata: opt_string(&p.committed_metadata),
        })
        .collect();
    let commit = CommitRequest {
        group_id: request.group_id.0.as_str().to_owned(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.as_str().to_owned(),
        api_version: version,
        group_instance_id: if version >= 7 {
            opt_string(&request.group_instance_id)
        } else {
            None
        },
        retention_time_ms: if (2..=4).contains(&version) {
            request.retention_time_ms
        } else {
            -1
        },
        partitions,
    };
    let mut stored = coordinator.commit_offsets(commit, now_ms()).into_iter();
    let unknown_code = kafka_protocol::ResponseError::UnknownTopicOrPartition.code();
    let mut errors = unknown.into_iter().map(move |u| {
        if u {
            unknown_code
        } else {
            stored.next().unwrap_or(0)
        }
    });
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(errors.next().unwrap_or(0))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// OffsetFetch (v1–v9). v8+ asks for several groups at once.
pub fn handle_offset_fetch(
    coordinator: &GroupCoordinator,
    ctx: &RequestContext,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = ctx.api_version;
    if version >= 8 {
        let groups = request
            .groups
            .iter()
            .map(|g| fetch_group(coordinator, version, g))
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    // v1 cannot ask for "all topics"; v2+ does so with a null topic list.
    let wanted = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.as_str().to_owned(), t.partition_indexes.clone()))
            .collect::<Vec<_>>()
    });
    let fetched = coordinator.fetch_offsets(request.group_id.0.as_str(), wanted.as_deref());
    let topics = group_by_topic(fetched)
        .into_iter()
        .map(|(topic, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(f.partition)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(if version >= 5 {
                                    f.leader_epoch
                                } else {
                                    -1
                                })
                                .with_metadata(Some(str_bytes(f.metadata)))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// One group of an OffsetFetch v8+: its offsets, or the error its member check failed with.
fn fetch_group(
    coordinator: &GroupCoordinator,
    version: i16,
    g: &OffsetFetchRequestGroup,
) -> OffsetFetchResponseGroup {
    // v9: a consumer-protocol member names itself and its epoch (KIP-848).
    let member = if version >= 9 {
        opt_string(&g.member_id)
    } else {
        None
    };
    let epoch = if version >= 9 { g.member_epoch } else { -1 };
    if let Err(e) =
        coordinator.validate_offset_fetch(g.group_id.0.as_str(), member.as_deref(), epoch)
    {
        return OffsetFetchResponseGroup::default()
            .with_group_id(g.group_id.clone())
            .with_error_code(e.code());
    }
    let wanted = g.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.as_str().to_owned(), t.partition_indexes.clone()))
            .collect::<Vec<_>>()
    });
    let fetched = coordinator.fetch_offsets(g.group_id.0.as_str(), wanted.as_deref());
    let topics = group_by_topic(fetched)
        .into_iter()
        .map(|(topic, parts)| {
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(f.partition)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(f.leader_epoch)
                                .with_metadata(Some(str_bytes(f.metadata)))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponseGroup::default()
        .with_group_id(g.group_id.clone())
        .with_topics(topics)
}

/// Groups fetched offsets by topic, keeping the order topics first appear in.
fn group_by_topic(fetched: Vec<FetchedOffset>) -> Vec<(String, Vec<FetchedOffset>)> {
    let mut out: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
    for f in fetched {
        match out.iter_mut().find(|(t, _)| *t == f.topic) {
            Some((_, parts)) => parts.push(f),
            None => out.push((f.topic.clone(), vec![f])),
        }
    }
    out
}

/// OffsetDelete (v0).
pub fn handle_offset_delete(
    coordinator: &GroupCoordinator,
    _ctx: &RequestContext,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let keys: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.as_str().to_owned(), p.partition_index))
        })
        .collect();
    let (top, errors) = coordinator.delete_offsets(request.group_id.0.as_str(), &keys);
    if top != 0 {
        return OffsetDeleteResponse::default().with_error_code(top);
    }
    let mut errors = errors.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(errors.next().unwrap_or(0))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
