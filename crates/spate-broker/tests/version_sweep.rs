//! Every API at every version the broker advertises answers a request that names a real topic
//! and partition (or, for admin APIs, a plausible resource) with a response that decodes at
//! that version — so no response field is set that the version cannot carry (kafka-protocol
//! refuses to encode those, which would close the connection instead).

mod raw_client;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use raw_client::{record_batch, RawClient};
use spate_testkit::TestBroker;
use uuid::Uuid;

const TOPIC: &str = "sweep";

fn name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn sweep<R: Request + Encodable>(
    c: &mut RawClient,
    versions: &ApiVersionsResponse,
    make: impl Fn(i16) -> R,
    check: impl Fn(i16, &R::Response),
) -> usize {
    let Some(range) = versions.api_keys.iter().find(|k| k.api_key == R::KEY) else {
        panic!("API {} not advertised", R::KEY);
    };
    for v in range.min_version..=range.max_version {
        let resp = c.call(&make(v), v);
        check(v, &resp);
    }
    (range.max_version - range.min_version + 1) as usize
}

fn batch() -> Bytes {
    record_batch(&[(Some("k"), Some("v"), 1000)], -1, -1, -1)
}

#[test]
fn every_advertised_version_round_trips() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    broker.create_topic(TOPIC, 1);
    let id: Uuid = broker.state().topics.get(TOPIC).unwrap().id;
    let mut c = RawClient::connect(broker.local_addr());
    let versions = c.call(&ApiVersionsRequest::default(), 3);
    let none = |_: i16, _: &_| {};
    let mut n = 0;

    n += sweep(
        &mut c,
        &versions,
        |_| ApiVersionsRequest::default(),
        |_, r: &ApiVersionsResponse| assert_eq!(r.error_code, 0),
    );
    n += sweep(
        &mut c,
        &versions,
        |v| {
            let mut t = metadata_request::MetadataRequestTopic::default();
            t.name = Some(name());
            let mut r = MetadataRequest::default();
            r.topics = Some(vec![t]);
            r.allow_auto_topic_creation = v < 4;
            r
        },
        |_, r: &MetadataResponse| {
            assert_eq!(r.topics[0].error_code, 0);
            assert_eq!(r.topics[0].partitions.len(), 1);
        },
    );
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut pd = produce_request::PartitionProduceData::default();
            pd.records = Some(batch());
            let mut td = produce_request::TopicProduceData::default();
            td.name = name();
            td.partition_data = vec![pd];
            ProduceRequest::default()
                .with_acks(-1)
                .with_topic_data(vec![td])
        },
        |v, r: &ProduceResponse| {
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "Produce v{v}");
        },
    );
    n += sweep(
        &mut c,
        &versions,
        |v| {
            let mut p = fetch_request::FetchPartition::default();
            p.partition_max_bytes = 1 << 20;
            let mut t = fetch_request::FetchTopic::default();
            if v >= 13 {
                t.topic_id = id;
            } else {
                t.topic = name();
            }
            t.partitions = vec![p];
            let mut r = FetchRequest::default();
            r.replica_id = (-1).into();
            r.max_bytes = 1 << 20;
            r.topics = vec![t];
            r
        },
        |v, r: &FetchResponse| {
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "Fetch v{v}");
            assert!(!p.records.as_ref().unwrap().is_empty(), "Fetch v{v}");
        },
    );
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut p = list_offsets_request::ListOffsetsPartition::default();
            p.timestamp = -1;
            let mut t = list_offsets_request::ListOffsetsTopic::default();
            t.name = name();
            t.partitions = vec![p];
            let mut r = ListOffsetsRequest::default();
            r.replica_id = (-1).into();
            r.topics = vec![t];
            r
        },
        |v, r: &ListOffsetsResponse| {
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "ListOffsets v{v}");
            assert!(p.offset > 0);
        },
    );
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
            p.leader_epoch = 0;
            let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
            t.topic = name();
            t.partitions = vec![p];
            let mut r = OffsetForLeaderEpochRequest::default();
            r.replica_id = (-1).into();
            r.topics = vec![t];
            r
        },
        |_, r: &OffsetForLeaderEpochResponse| assert_eq!(r.topics[0].partitions[0].error_code, 0),
    );
    n += sweep(
        &mut c,
        &versions,
        |v| {
            let mut t = create_topics_request::CreatableTopic::default();
            t.name = TopicName(StrBytes::from_string(format!("created-v{v}")));
            t.num_partitions = -1;
            t.replication_factor = -1;
            let mut cfg = create_topics_request::CreatableTopicConfig::default();
            cfg.name = StrBytes::from_static_str("retention.ms");
            cfg.value = Some(StrBytes::from_static_str("1000"));
            t.configs = vec![cfg];
            CreateTopicsRequest::default().with_topics(vec![t])
        },
        |v, r: &CreateTopicsResponse| assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}"),
    );
    n += sweep(
        &mut c,
        &versions,
        |v| {
            let created = TopicName(StrBytes::from_string(format!("created-v{}", v + 1)));
            let mut r = DeleteTopicsRequest::default();
            if v >= 6 {
                let mut s = delete_topics_request::DeleteTopicState::default();
                s.name = Some(created);
                r.topics = vec![s];
            } else {
                r.topic_names = vec![created];
            }
            r
        },
        |v, r: &DeleteTopicsResponse| assert_eq!(r.responses[0].error_code, 0, "DeleteTopics v{v}"),
    );
    n += sweep(
        &mut c,
        &versions,
        |v| {
            let mut t = create_partitions_request::CreatePartitionsTopic::default();
            t.name = name();
            t.count = 2 + v as i32;
            CreatePartitionsRequest::default().with_topics(vec![t])
        },
        |v, r: &CreatePartitionsResponse| {
            assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}")
        },
    );
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut res = describe_configs_request::DescribeConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = StrBytes::from_static_str(TOPIC);
            let mut r = DescribeConfigsRequest::default();
            r.resources = vec![res];
            r.include_synonyms = true;
            r
        },
        |_, r: &DescribeConfigsResponse| assert!(r.results[0].configs.len() > 10),
    );
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut cfg = alter_configs_request::AlterableConfig::default();
            cfg.name = StrBytes::from_static_str("retention.ms");
            cfg.value = Some(StrBytes::from_static_str("2000"));
            let mut res = alter_configs_request::AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = StrBytes::from_static_str(TOPIC);
            res.configs = vec![cfg];
            AlterConfigsRequest::default().with_resources(vec![res])
        },
        |_, r: &AlterConfigsResponse| assert_eq!(r.responses[0].error_code, 0),
    );
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut cfg = incremental_alter_configs_request::AlterableConfig::default();
            cfg.name = StrBytes::from_static_str("retention.ms");
            cfg.value = Some(StrBytes::from_static_str("3000"));
            let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = StrBytes::from_static_str(TOPIC);
            res.configs = vec![cfg];
            IncrementalAlterConfigsRequest::default().with_resources(vec![res])
        },
        |_, r: &IncrementalAlterConfigsResponse| assert_eq!(r.responses[0].error_code, 0),
    );
    n += sweep(
        &mut c,
        &versions,
        |_| InitProducerIdRequest::default().with_transactional_id(None),
        |_, r: &InitProducerIdResponse| assert_eq!(r.error_code, 0),
    );
    n += sweep_transactions(&mut c, &versions);
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut p = delete_records_request::DeleteRecordsPartition::default();
            p.offset = 1;
            let mut t = delete_records_request::DeleteRecordsTopic::default();
            t.name = name();
            t.partitions = vec![p];
            DeleteRecordsRequest::default().with_topics(vec![t])
        },
        |_, r: &DeleteRecordsResponse| assert_eq!(r.topics[0].partitions[0].error_code, 0),
    );
    n += sweep(
        &mut c,
        &versions,
        |_| DescribeClusterRequest::default(),
        none,
    );
    // SASL on a PLAINTEXT listener is ILLEGAL_SASL_STATE, as Kafka answers it outside the
    // authenticator; SCRAM users can be managed from any listener.
    n += sweep(
        &mut c,
        &versions,
        |_| SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        |_, r: &SaslHandshakeResponse| assert_eq!(r.error_code, 34),
    );
    n += sweep(
        &mut c,
        &versions,
        |_| SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\0a\0b")),
        |_, r: &SaslAuthenticateResponse| assert_eq!(r.error_code, 34),
    );
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut t = describe_topic_partitions_request::TopicRequest::default();
            t.name = name();
            DescribeTopicPartitionsRequest::default()
                .with_topics(vec![t])
                .with_response_partition_limit(2000)
        },
        |_, r: &DescribeTopicPartitionsResponse| {
            assert_eq!(r.topics[0].error_code, 0);
            assert!(!r.topics[0].partitions.is_empty());
        },
    );
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut u = alter_user_scram_credentials_request::ScramCredentialUpsertion::default();
            u.name = StrBytes::from_static_str("sweep");
            u.mechanism = 1;
            u.iterations = 4096;
            u.salt = Bytes::from_static(b"salt");
            u.salted_password = Bytes::from_static(&[7; 32]);
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![u])
        },
        |_, r: &AlterUserScramCredentialsResponse| assert_eq!(r.results[0].error_code, 0),
    );
    n += sweep(
        &mut c,
        &versions,
        |_| DescribeUserScramCredentialsRequest::default(),
        |_, r: &DescribeUserScramCredentialsResponse| {
            assert_eq!(r.results[0].credential_infos[0].iterations, 4096)
        },
    );
    // No authorizer on this broker: the ACL APIs answer SECURITY_DISABLED at every version.
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut a = create_acls_request::AclCreation::default();
            a.resource_type = 2;
            a.resource_name = StrBytes::from_static_str(TOPIC);
            a.resource_pattern_type = 3;
            a.principal = StrBytes::from_static_str("User:alice");
            a.host = StrBytes::from_static_str("*");
            a.operation = 3;
            a.permission_type = 3;
            CreateAclsRequest::default().with_creations(vec![a])
        },
        |_, r: &CreateAclsResponse| assert_eq!(r.results[0].error_code, 54),
    );
    n += sweep(
        &mut c,
        &versions,
        |_| {
            DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(None)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(1)
        },
        |_, r: &DescribeAclsResponse| assert_eq!(r.error_code, 54),
    );
    n += sweep(
        &mut c,
        &versions,
        |_| {
            let mut f = delete_acls_request::DeleteAclsFilter::default();
            f.resource_type_filter = 1;
            f.resource_name_filter = None;
            f.principal_filter = None;
            f.host_filter = None;
            f.operation = 1;
            f.permission_type = 1;
            DeleteAclsRequest::default().with_filters(vec![f])
        },
        |_, r: &DeleteAclsResponse| assert_eq!(r.filter_results[0].error_code, 54),
    );
    assert!(n > 60, "{n} API versions swept");

    // Every advertised API is covered above (the group coordinator's APIs have their own tests).
    let covered = [
        18, 3, 0, 1, 2, 23, 19, 20, 37, 32, 33, 44, 22, 21, 60, 24, 25, 26, 27, 28, 61, 65, 66, 75,
        17, 36, 50, 51, 29, 30, 31,
    ];
    let group_apis = [8, 9, 10, 11, 12, 13, 14, 15, 16, 42, 47, 68, 69];
    for k in &versions.api_keys {
        assert!(
            covered.contains(&k.api_key) || group_apis.contains(&k.api_key),
            "API {} is advertised but not swept",
            k.api_key
        );
    }
}

fn txn_id(s: &'static str) -> TransactionalId {
    TransactionalId(StrBytes::from_static_str(s))
}

/// The transaction APIs at every version: a transactional id initialised at each
/// InitProducerId version, then each request against it (or an unknown id) answered with the
/// error Kafka gives.
fn sweep_transactions(c: &mut RawClient, versions: &ApiVersionsResponse) -> usize {
    let mut n = sweep(
        c,
        versions,
        |_| {
            InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id("sweep-txn")))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        },
        |_, r: &InitProducerIdResponse| assert_eq!(r.error_code, 0),
    );
    let unknown = ProducerId(123_456);
    n += sweep(
        c,
        versions,
        |_| {
            let t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(name())
                .with_partitions(vec![0]);
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id("sweep-txn"))
                .with_v3_and_below_producer_id(unknown)
                .with_v3_and_below_topics(vec![t])
        },
        |_, r: &AddPartitionsToTxnResponse| {
            let code =
                r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
            assert_eq!(code, 49, "INVALID_PRODUCER_ID_MAPPING");
        },
    );
    n += sweep(
        c,
        versions,
        |_| {
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id("sweep-none"))
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
        },
        |_, r: &AddOffsetsToTxnResponse| assert_eq!(r.error_code, 49),
    );
    n += sweep(
        c,
        versions,
        |_| EndTxnRequest::default().with_transactional_id(txn_id("sweep-none")),
        |_, r: &EndTxnResponse| assert_eq!(r.error_code, 49),
    );
    n += sweep(
        c,
        versions,
        |_| {
            let p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1);
            let t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(name())
                .with_partitions(vec![p]);
            TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id("sweep-none"))
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id(-1)
                .with_topics(vec![t])
        },
        |_, r: &TxnOffsetCommitResponse| assert_eq!(r.topics[0].partitions[0].error_code, 49),
    );
    n += sweep(
        c,
        versions,
        |_| {
            DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("sweep-txn")])
        },
        |_, r: &DescribeTransactionsResponse| {
            assert_eq!(r.transaction_states[0].error_code, 0);
            assert_eq!(r.transaction_states[0].transaction_state.as_str(), "Empty");
        },
    );
    n += sweep(
        c,
        versions,
        |_| ListTransactionsRequest::default().with_duration_filter(-1),
        |_, r: &ListTransactionsResponse| assert!(!r.transaction_states.is_empty()),
    );
    n += sweep(
        c,
        versions,
        |_| {
            DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(name())
                    .with_partition_indexes(vec![0]),
            ])
        },
        |_, r: &DescribeProducersResponse| assert_eq!(r.topics[0].partitions[0].error_code, 0),
    );
    // An ABORT marker for a producer with no open transaction is written (an empty abort).
    n += sweep(
        c,
        versions,
        |_| {
            use write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(4_000_000))
                .with_producer_epoch(0)
                .with_transaction_result(false)
                .with_coordinator_epoch(0)
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(name())
                    .with_partition_indexes(vec![0])])])
        },
        |_, r: &WriteTxnMarkersResponse| {
            assert_eq!(r.markers[0].topics[0].partitions[0].error_code, 0)
        },
    );
    n
}
