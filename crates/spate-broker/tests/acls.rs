//! ACLs enforced on a broker with `authorizer.class.name` set: SASL PLAIN users (alice, bob,
//! admin) on a SASL_PLAINTEXT listener, a PLAINTEXT admin listener whose `User:ANONYMOUS` is a
//! super user (where the tests create ACLs with CreateAcls), and real librdkafka clients:
//! - WRITE is needed to produce (TOPIC_AUTHORIZATION_FAILED, nothing appended);
//! - a literal DENY beats a prefixed ALLOW; other topics under the prefix stay writable;
//! - group READ is needed to commit (GROUP_AUTHORIZATION_FAILED);
//! - transactional id WRITE is needed for InitProducerId;
//! - Metadata hides topics a principal may not DESCRIBE; super users see all;
//!   `allow.everyone.if.no.acl.found` opens resources no ACL applies to, and only those;
//! - ACLs survive a restart; a corrupt ACL file stops startup naming the file;
//! - authorized operations come from the ACLs; without an authorizer the ACL APIs answer
//!   SECURITY_DISABLED; kafka-python creates, describes and deletes ACLs.

mod python_support;
mod raw_client;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{CreateAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use raw_client::RawClient;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use spate_broker::BrokerConfig;
use spate_testkit::{free_port, random_group, random_topic, TestBroker};

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_alice=\"alice-pw\" user_bob=\"bob-pw\" user_admin=\"admin-pw\";";
const STANDARD: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

// Kafka's codes.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const TRANSACTIONAL_ID: i8 = 5;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

/// A broker with the authorizer on; returns it and its PLAINTEXT admin address.
fn secured(allow_everyone: bool) -> (TestBroker, SocketAddr) {
    let admin_port = free_port();
    let mut c = BrokerConfig::default();
    c.set(
        "listeners",
        &format!("SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:{admin_port}"),
    )
    .unwrap();
    c.set("sasl.enabled.mechanisms", "PLAIN").unwrap();
    c.set("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS)
        .unwrap();
    c.set("authorizer.class.name", STANDARD).unwrap();
    c.set("super.users", "User:admin;User:ANONYMOUS").unwrap();
    c.set(
        "allow.everyone.if.no.acl.found",
        &allow_everyone.to_string(),
    )
    .unwrap();
    c.set("auto.create.topics.enable", "false").unwrap();
    let broker = TestBroker::start_with(c);
    (broker, SocketAddr::from(([127, 0, 0, 1], admin_port)))
}

fn acl(rt: i8, name: &str, pt: i8, principal: &str, op: i8, perm: i8) -> AclCreation {
    let mut a = AclCreation::default();
    a.resource_type = rt;
    a.resource_name = StrBytes::from(name.to_string());
    a.resource_pattern_type = pt;
    a.principal = StrBytes::from(principal.to_string());
    a.host = StrBytes::from_static_str("*");
    a.operation = op;
    a.permission_type = perm;
    a
}

/// Creates ACLs with CreateAcls (v3) over the admin listener; each must succeed.
fn create_acls(admin: SocketAddr, acls: Vec<AclCreation>) {
    let resp =
        RawClient::connect(admin).call(&CreateAclsRequest::default().with_creations(acls), 3);
    for r in &resp.results {
        assert_eq!(r.error_code, 0, "{r:?}");
    }
}

fn client(broker: &TestBroker, user: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.bootstrap_servers())
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-pw"))
        .set("message.timeout.ms", "5000")
        .set("socket.timeout.ms", "5000")
        .set_log_level(RDKafkaLogLevel::Emerg);
    c
}

/// Records each delivery's outcome.
#[derive(Clone, Default)]
struct Deliveries(Arc<Mutex<Vec<Option<RDKafkaErrorCode>>>>);

impl ClientContext for Deliveries {}
impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = result
            .as_ref()
            .err()
            .map(|(e, _)| e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown));
        self.0.lock().unwrap().push(outcome);
    }
}

/// Produces one record as `user`; the delivery's error code, if any.
fn produce(broker: &TestBroker, user: &str, topic: &str) -> Option<RDKafkaErrorCode> {
    let deliveries = Deliveries::default();
    let producer: BaseProducer<Deliveries> = client(broker, user)
        .create_with_context(deliveries.clone())
        .unwrap();
    producer
        .send(BaseRecord::<(), _>::to(topic).payload("v"))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let got = deliveries.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    got[0]
}

fn log_end(broker: &TestBroker, topic: &str) -> i64 {
    broker
        .state()
        .topics
        .partition(topic, 0)
        .unwrap()
        .log()
        .log_end_offset()
}

#[test]
fn produce_needs_write_and_deny_beats_prefixed_allow() {
    let (broker, admin) = secured(false);
    let stem = random_topic("pay");
    let (allowed, denied, plain) = (
        format!("{stem}-in"),
        format!("{stem}-roll"),
        random_topic("w"),
    );
    for t in [&allowed, &denied, &plain] {
        broker.create_topic(t, 1);
    }
    create_acls(
        admin,
        vec![
            acl(TOPIC, &plain, LITERAL, "User:alice", DESCRIBE, ALLOW),
            acl(TOPIC, &stem, PREFIXED, "User:alice", WRITE, ALLOW),
            acl(TOPIC, &denied, LITERAL, "User:alice", WRITE, DENY),
        ],
    );
    // DESCRIBE only: refused, nothing written.
    let got = produce(&broker, "alice", &plain);
    assert_eq!(got, Some(RDKafkaErrorCode::TopicAuthorizationFailed));
    assert_eq!(log_end(&broker, &plain), 0);
    // Prefixed allow, literal deny.
    assert_eq!(produce(&broker, "alice", &allowed), None);
    assert_eq!(log_end(&broker, &allowed), 1);
    let got = produce(&broker, "alice", &denied);
    assert_eq!(got, Some(RDKafkaErrorCode::TopicAuthorizationFailed));
    assert_eq!(log_end(&broker, &denied), 0);
    // WRITE granted: now it is written.
    create_acls(
        admin,
        vec![acl(TOPIC, &plain, LITERAL, "User:alice", WRITE, ALLOW)],
    );
    assert_eq!(produce(&broker, "alice", &plain), None);
    assert_eq!(log_end(&broker, &plain), 1);
    println!("refused produces left the log end at 0; allowed ones at 1");
}

#[test]
fn commit_needs_group_read() {
    let (broker, admin) = secured(false);
    let topic = random_topic("commit");
    let group = random_group("g");
    broker.create_topic(&topic, 1);
    // Group DESCRIBE lets FindCoordinator through, so OffsetCommit is what refuses.
    create_acls(
        admin,
        vec![
            acl(TOPIC, &topic, LITERAL, "User:alice", READ, ALLOW),
            acl(GROUP, &group, LITERAL, "User:alice", DESCRIBE, ALLOW),
        ],
    );
    let commit = || {
        let consumer: BaseConsumer = client(&broker, "alice")
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(0))
            .unwrap();
        consumer.commit(&tpl, CommitMode::Sync)
    };
    let err = commit().expect_err("commit without group READ");
    assert_eq!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::GroupAuthorizationFailed),
        "{err}"
    );
    create_acls(
        admin,
        vec![acl(GROUP, &group, LITERAL, "User:alice", READ, ALLOW)],
    );
    commit().expect("commit with group READ");
}

#[test]
fn init_producer_id_needs_transactional_id_write() {
    let (broker, admin) = secured(false);
    let txn = random_group("tx");
    // DESCRIBE lets FindCoordinator through, so InitProducerId is what refuses.
    create_acls(
        admin,
        vec![acl(
            TRANSACTIONAL_ID,
            &txn,
            LITERAL,
            "User:alice",
            DESCRIBE,
            ALLOW,
        )],
    );
    let init = || {
        let producer: BaseProducer = client(&broker, "alice")
            .set("transactional.id", &txn)
            .create()
            .unwrap();
        producer.init_transactions(Duration::from_secs(10))
    };
    let err = init().expect_err("InitProducerId without WRITE");
    assert_eq!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed),
        "{err}"
    );
    create_acls(
        admin,
        vec![acl(
            TRANSACTIONAL_ID,
            &txn,
            LITERAL,
            "User:alice",
            WRITE,
            ALLOW,
        )],
    );
    init().expect("InitProducerId with WRITE");
}

fn visible_topics(broker: &TestBroker, user: &str) -> Vec<String> {
    let consumer: BaseConsumer = client(broker, user).create().unwrap();
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

#[test]
fn metadata_hides_undescribable_topics() {
    let (broker, admin) = secured(false);
    let (shown, hidden) = (random_topic("shown"), random_topic("hidden"));
    broker.create_topic(&shown, 1);
    broker.create_topic(&hidden, 1);
    create_acls(
        admin,
        vec![acl(TOPIC, &shown, LITERAL, "User:alice", READ, ALLOW)],
    );
    let alice = visible_topics(&broker, "alice");
    assert!(
        alice.contains(&shown) && !alice.contains(&hidden),
        "{alice:?}"
    );
    let bob = visible_topics(&broker, "bob");
    assert!(
        bob.is_empty(),
        "bob has no ACL and allow.everyone is off: {bob:?}"
    );
    let admin_sees = visible_topics(&broker, "admin");
    assert!(
        admin_sees.contains(&shown) && admin_sees.contains(&hidden),
        "super user"
    );
    println!(
        "alice sees {}, bob {}, admin {}",
        alice.len(),
        bob.len(),
        admin_sees.len()
    );
}

#[test]
fn allow_everyone_if_no_acl_found() {
    let (broker, admin) = secured(true);
    let (open, guarded) = (random_topic("open"), random_topic("guarded"));
    broker.create_topic(&open, 1);
    broker.create_topic(&guarded, 1);
    create_acls(
        admin,
        vec![acl(TOPIC, &guarded, LITERAL, "User:alice", WRITE, ALLOW)],
    );
    let bob = visible_topics(&broker, "bob");
    assert!(bob.contains(&open) && !bob.contains(&guarded), "{bob:?}");
    assert_eq!(produce(&broker, "bob", &open), None);
    assert_eq!(
        produce(&broker, "bob", &guarded),
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(produce(&broker, "alice", &guarded), None);
}

#[test]
fn acls_survive_restart_and_corruption_is_refused() {
    let mut c = BrokerConfig::default();
    c.set("authorizer.class.name", STANDARD).unwrap();
    c.set("super.users", "User:ANONYMOUS").unwrap();
    let mut broker = TestBroker::start_with(c);
    let topic = random_topic("kept");
    create_acls(
        broker.local_addr(),
        vec![
            acl(TOPIC, &topic, PREFIXED, "User:alice", WRITE, ALLOW),
            acl(GROUP, "g", LITERAL, "User:bob", READ, DENY),
        ],
    );
    broker.restart();
    let described = RawClient::connect(broker.local_addr()).call(
        &DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1),
        3,
    );
    assert_eq!(described.error_code, 0);
    let mut names: Vec<String> = described
        .resources
        .iter()
        .map(|r| {
            format!(
                "{}:{}:{}",
                r.resource_type,
                r.resource_name.as_str(),
                r.pattern_type
            )
        })
        .collect();
    names.sort();
    assert_eq!(names, vec![format!("2:{topic}:4"), "3:g:3".to_string()]);
    let file = broker.data_dir().join("meta/acls.json");
    broker.stop();
    std::fs::write(&file, b"{\"version\":1,\"acls\":[{\"pattern\"").unwrap();
    let err = spate_broker::Broker::start_blocking(broker.config().clone())
        .expect_err("a corrupt ACL file must stop startup");
    assert!(err.to_string().contains("acls.json"), "{err}");
    println!("corrupt ACL file refused: {err}");
}

/// kafka-python (not librdkafka) creates, describes (MATCH filter) and deletes ACLs.
#[test]
fn python_client_round_trips_acls() {
    let mut c = BrokerConfig::default();
    c.set("authorizer.class.name", STANDARD).unwrap();
    c.set("super.users", "User:ANONYMOUS").unwrap();
    let broker = TestBroker::start_with(c);
    let topic = random_topic("pyacl");
    let lines = python_support::admin(&["acls", &broker.bootstrap_servers(), &topic]);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["succeeded"], 2, "{}", lines[0]);
    assert_eq!(lines[1]["error"], "NoError", "{}", lines[1]);
    let described = lines[1]["acls"].as_array().unwrap();
    assert_eq!(described.len(), 2, "{}", lines[1]);
    assert_eq!(described[0]["principal"], "User:alice");
    assert_eq!(described[0]["pattern"], "LITERAL");
    assert_eq!(described[1]["principal"], "User:bob");
    assert_eq!(described[1]["pattern"], "PREFIXED");
    assert_eq!(described[1]["name"], topic[..3]);
    assert_eq!(described[1]["permission"], "DENY");
    let deleted = lines[2]["deleted"].as_array().unwrap();
    assert_eq!(deleted.len(), 1, "{}", lines[2]);
    assert_eq!(deleted[0]["principal"], "User:bob");
    let after = lines[3]["acls"].as_array().unwrap();
    assert_eq!(after.len(), 1, "{}", lines[3]);
    assert_eq!(broker.state().security.authorizer.acls.all().len(), 1);
    println!("kafka-python: created 2, described 2 by MATCH, deleted 1, 1 left");
}

/// Without an authorizer the ACL APIs answer SECURITY_DISABLED, as Kafka does.
#[test]
fn acl_apis_without_authorizer_are_security_disabled() {
    let broker = TestBroker::start();
    let mut c = RawClient::connect(broker.local_addr());
    let resp = c.call(
        &CreateAclsRequest::default()
            .with_creations(vec![acl(TOPIC, "t", LITERAL, "User:a", READ, ALLOW)]),
        3,
    );
    assert_eq!(resp.results[0].error_code, 54);
    let resp = c.call(
        &DescribeAclsRequest::default().with_resource_type_filter(1),
        3,
    );
    assert_eq!(resp.error_code, 54);
}

/// A plaintext client (`User:ANONYMOUS`, not a super user here) with READ on one topic: the
/// authorized operations Metadata and DescribeCluster report come from its ACLs, a topic it may
/// not describe is refused by name, and it may not create ACLs.
#[test]
fn authorized_operations_and_refusals_for_anonymous() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{DescribeClusterRequest, MetadataRequest, TopicName};
    use spate_broker::acl::{
        AccessControlEntry, AclBinding, AclOperation, AclPermissionType, PatternType,
        ResourcePattern, ResourceType,
    };
    let mut c = BrokerConfig::default();
    c.set("authorizer.class.name", STANDARD).unwrap();
    let broker = TestBroker::start_with(c);
    let (readable, hidden) = (random_topic("r"), random_topic("h"));
    broker.create_topic(&readable, 1);
    broker.create_topic(&hidden, 1);
    let read = AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::Topic,
            name: readable.clone(),
            pattern_type: PatternType::Literal,
        },
        entry: AccessControlEntry {
            principal: "User:ANONYMOUS".into(),
            host: "127.0.0.1".into(),
            operation: AclOperation::Read,
            permission: AclPermissionType::Allow,
        },
    };
    let acls = &broker.state().security.authorizer.acls;
    acls.update(|s| s.insert(read)).unwrap();
    let mut raw = RawClient::connect(broker.local_addr());
    let topic = |n: &str| {
        let mut t = MetadataRequestTopic::default();
        t.name = Some(TopicName(StrBytes::from(n.to_string())));
        t
    };
    let md = raw.call(
        &MetadataRequest::default()
            .with_topics(Some(vec![topic(&readable), topic(&hidden)]))
            .with_include_topic_authorized_operations(true),
        12,
    );
    assert_eq!(md.topics[0].error_code, 0);
    assert_eq!(
        md.topics[0].topic_authorized_operations,
        (1 << 3) | (1 << 8)
    );
    assert_eq!(md.topics[1].error_code, 29, "TOPIC_AUTHORIZATION_FAILED");
    let all = raw.call(&MetadataRequest::default().with_topics(None), 12);
    assert_eq!(all.topics.len(), 1, "only the describable topic is listed");
    let dc = raw.call(
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        1,
    );
    assert_eq!(dc.cluster_authorized_operations, 0);
    let created = raw.call(
        &CreateAclsRequest::default()
            .with_creations(vec![acl(TOPIC, "x", LITERAL, "User:a", READ, ALLOW)]),
        3,
    );
    assert_eq!(
        created.results[0].error_code, 31,
        "CLUSTER_AUTHORIZATION_FAILED"
    );
    assert_eq!(acls.all().len(), 1);
}
