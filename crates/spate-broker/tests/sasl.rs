//! SASL on `SASL_SSL` and `SASL_PLAINTEXT` listeners: librdkafka produces and consumes over
//! SASL_SSL with SCRAM-SHA-512 and with PLAIN; SCRAM users are created with
//! AlterUserScramCredentials over the PLAINTEXT listener (salted on the client side, as Kafka's
//! AdminClient does); a wrong password and an unknown user are refused with
//! SASL_AUTHENTICATION_FAILED and served nothing; a request before authentication closes the
//! connection; the v0 (bare token) flow works; kafka-python, a client not built on librdkafka,
//! authenticates with SCRAM-SHA-256 over SASL_PLAINTEXT.

mod python_support;
mod raw_client;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest, MetadataRequest,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use raw_client::RawClient;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use spate_broker::security::ScramMechanism;
use spate_broker::BrokerConfig;
use spate_testkit::tls::Pki;
use spate_testkit::{free_port, random_group, random_topic, TestBroker};

const PLAIN_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                          user_paula=\"paula-secret\";";

/// A broker with `secure` first (its primary address) and a PLAINTEXT admin listener.
fn start_broker(secure: &str, admin_port: u16, tls: Option<&Pki>) -> TestBroker {
    let mut config = BrokerConfig::default();
    config
        .set(
            "listeners",
            &format!("{secure}://127.0.0.1:0,PLAINTEXT://127.0.0.1:{admin_port}"),
        )
        .unwrap();
    config
        .set(
            &format!(
                "listener.name.{}.plain.sasl.jaas.config",
                secure.to_lowercase()
            ),
            PLAIN_JAAS,
        )
        .unwrap();
    if let Some(pki) = tls {
        config.set("ssl.keystore.type", "PEM").unwrap();
        let store = pki.path("server.pem");
        config
            .set("ssl.keystore.location", store.to_str().unwrap())
            .unwrap();
    }
    TestBroker::start_with(config)
}

/// Creates a SCRAM user through AlterUserScramCredentials, salting on the client side.
fn add_scram_user(admin: SocketAddr, user: &str, password: &str, mechanism: ScramMechanism) {
    let salt: Vec<u8> = (0..24).map(|_| rand::random::<u8>()).collect();
    let iterations = 4096;
    let mut up = ScramCredentialUpsertion::default();
    up.name = StrBytes::from(user.to_string());
    up.mechanism = mechanism.code();
    up.iterations = iterations;
    up.salt = Bytes::from(salt.clone());
    up.salted_password =
        Bytes::from(mechanism.salted_password(password.as_bytes(), &salt, iterations as u32));
    let mut req = AlterUserScramCredentialsRequest::default();
    req.upsertions.push(up);
    let resp = RawClient::connect(admin).call(&req, 0);
    assert_eq!(resp.results.len(), 1);
    assert_eq!(resp.results[0].error_code, 0, "{:?}", resp.results[0]);
}

/// Records the errors librdkafka reports (authentication failures arrive here).
#[derive(Clone, Default)]
struct ErrorRecorder(Arc<Mutex<Vec<String>>>);

impl ClientContext for ErrorRecorder {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.lock().unwrap().push(format!("{error}: {reason}"));
    }
}
impl ConsumerContext for ErrorRecorder {}

fn sasl_client(
    addr: SocketAddr,
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    ca: Option<&Path>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr.to_string())
        .set("security.protocol", protocol)
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password)
        .set("socket.timeout.ms", "5000")
        .set("message.timeout.ms", "10000")
        .set_log_level(RDKafkaLogLevel::Emerg);
    if let Some(ca) = ca {
        c.set("ssl.ca.location", ca.to_str().unwrap());
    }
    c
}

/// Produces three records and reads them back with the given client settings.
fn produce_and_consume(config: &ClientConfig, topic: &str) -> Vec<String> {
    let producer: BaseProducer = config.create().unwrap();
    for i in 0..3 {
        producer
            .send(
                BaseRecord::<(), _>::to(topic)
                    .payload(&format!("m{i}"))
                    .partition(0),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(15)).unwrap();
    let mut consumer_config = config.clone();
    consumer_config.set("group.id", random_group("sasl"));
    let consumer: BaseConsumer = consumer_config.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 3 && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            got.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
        }
    }
    got
}

#[test]
fn sasl_ssl_serves_librdkafka_with_scram_sha_512_and_plain() {
    spate_testkit::init_logging();
    let pki = Pki::new();
    let ca = pki.path("ca.pem");
    let admin_port = free_port();
    let broker = start_broker("SASL_SSL", admin_port, Some(&pki));
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    add_scram_user(admin, "sam", "sam-secret", ScramMechanism::Sha512);
    let addr = broker.local_addr();

    let topic = random_topic("sasl-scram");
    let scram = sasl_client(
        addr,
        "SASL_SSL",
        "SCRAM-SHA-512",
        "sam",
        "sam-secret",
        Some(&ca),
    );
    assert_eq!(produce_and_consume(&scram, &topic), ["m0", "m1", "m2"]);

    let topic = random_topic("sasl-plain");
    let plain = sasl_client(
        addr,
        "SASL_SSL",
        "PLAIN",
        "paula",
        "paula-secret",
        Some(&ca),
    );
    assert_eq!(produce_and_consume(&plain, &topic), ["m0", "m1", "m2"]);

    // The credential is described, never shown.
    let mut describe = DescribeUserScramCredentialsRequest::default();
    describe.users = None;
    let resp = RawClient::connect(admin).call(&describe, 0);
    assert_eq!(resp.results.len(), 1);
    assert_eq!(resp.results[0].user.as_str(), "sam");
    assert_eq!(resp.results[0].credential_infos[0].mechanism, 2);
    assert_eq!(resp.results[0].credential_infos[0].iterations, 4096);
    println!(
        "SASL_SSL {addr}: librdkafka produced and consumed 3 records with SCRAM-SHA-512 and 3 \
         with PLAIN"
    );
}

/// What librdkafka reports when it cannot authenticate; the topic it asked for must not exist.
fn refused_with(broker: &TestBroker, mechanism: &str, user: &str, password: &str) -> String {
    let topic = random_topic("sasl-refused");
    let recorder = ErrorRecorder::default();
    let consumer: BaseConsumer<ErrorRecorder> = sasl_client(
        broker.local_addr(),
        "SASL_PLAINTEXT",
        mechanism,
        user,
        password,
        None,
    )
    .create_with_context(recorder.clone())
    .unwrap();
    let meta = consumer.fetch_metadata(Some(&topic), Duration::from_secs(3));
    assert!(meta.is_err(), "metadata served to {user}: {meta:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorder.0.lock().unwrap().is_empty() && Instant::now() < deadline {
        consumer.poll(Duration::from_millis(100));
    }
    assert!(
        broker.state().topics.get(&topic).is_none(),
        "nothing is served: {topic} was not auto-created"
    );
    let errors = recorder.0.lock().unwrap().join("\n");
    errors
}

#[test]
fn wrong_password_and_unknown_user_are_refused() {
    spate_testkit::init_logging();
    let admin_port = free_port();
    let broker = start_broker("SASL_PLAINTEXT", admin_port, None);
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    add_scram_user(admin, "sam", "sam-secret", ScramMechanism::Sha512);
    let expected = "Authentication failed during authentication due to invalid credentials";

    let cases = [
        ("SCRAM-SHA-512", "sam", "wrong"),
        ("SCRAM-SHA-512", "nobody", "sam-secret"),
        ("SCRAM-SHA-256", "sam", "sam-secret"),
        ("PLAIN", "paula", "wrong"),
        ("PLAIN", "nobody", "paula-secret"),
    ];
    // Each refused client waits out its metadata timeout: run them side by side.
    let outcomes: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(m, u, p)| {
                let broker = &broker;
                s.spawn(move || refused_with(broker, m, u, p))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((mechanism, user, _), errors) in cases.iter().zip(&outcomes) {
        assert!(
            errors.contains(expected) && errors.contains(mechanism),
            "{mechanism} {user}: {errors}"
        );
        assert!(!errors.contains("sam-secret") && !errors.contains("paula-secret"));
    }

    // On the wire: SASL_AUTHENTICATION_FAILED with Kafka's message, then the connection closes.
    let mut raw = RawClient::connect(broker.local_addr());
    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = StrBytes::from_static_str("PLAIN");
    let resp = raw.call(&hs, 1);
    assert_eq!(resp.error_code, 0);
    let mut auth = SaslAuthenticateRequest::default();
    auth.auth_bytes = Bytes::from_static(b"\0paula\0wrong");
    let resp = raw.call(&auth, 2);
    assert_eq!(resp.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert!(resp.error_message.unwrap().contains(expected));
    assert!(raw.is_closed_by_peer());
    println!("5 refused logins (wrong password, unknown user, missing SCRAM-SHA-256 credential, PLAIN x2): SASL_AUTHENTICATION_FAILED, nothing served");
}

#[test]
fn requests_before_authentication_close_the_connection_and_v0_tokens_work() {
    spate_testkit::init_logging();
    let broker = start_broker("SASL_PLAINTEXT", free_port(), None);
    // Metadata before any SASL: the connection closes without a response.
    let mut raw = RawClient::connect(broker.local_addr());
    raw.send(&MetadataRequest::default(), 12);
    assert!(raw.is_closed_by_peer());
    // An unsupported mechanism: UNSUPPORTED_SASL_MECHANISM listing the enabled ones, closed.
    let mut raw = RawClient::connect(broker.local_addr());
    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = StrBytes::from_static_str("GSSAPI");
    let resp = raw.call(&hs, 1);
    assert_eq!(resp.error_code, 33);
    assert_eq!(resp.mechanisms.len(), 3);
    assert!(raw.is_closed_by_peer());
    // SaslHandshake v0, then the PLAIN token as a bare frame, then requests are served.
    let mut raw = RawClient::connect(broker.local_addr());
    hs.mechanism = StrBytes::from_static_str("PLAIN");
    assert_eq!(raw.call(&hs, 0).error_code, 0);
    let token = b"\0paula\0paula-secret";
    let mut frame = (token.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(token);
    raw.write_raw(&frame);
    assert_eq!(
        raw.read_frame().unwrap().len(),
        0,
        "PLAIN's empty server token"
    );
    let meta = raw.call(&MetadataRequest::default(), 12);
    assert_eq!(meta.brokers.len(), 1);
    // A second handshake on an authenticated connection is ILLEGAL_SASL_STATE.
    assert_eq!(raw.call(&hs, 1).error_code, 34);
    println!("pre-auth Metadata closed; GSSAPI refused (33); v0 bare-token PLAIN served Metadata");
}

#[test]
fn kafka_python_authenticates_with_scram_sha_256_over_sasl_plaintext() {
    spate_testkit::init_logging();
    let admin_port = free_port();
    let broker = start_broker("SASL_PLAINTEXT", admin_port, None);
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    add_scram_user(admin, "py", "py-secret", ScramMechanism::Sha256);
    let topic = random_topic("sasl-py");
    let bootstrap = broker.local_addr().to_string();
    let lines = python_support::sasl_round_trip(&[
        &bootstrap,
        &topic,
        "SCRAM-SHA-256",
        "py",
        "py-secret",
        "5",
    ]);
    let last = lines.last().expect("a result line");
    assert_eq!(last["produced"], 5, "{lines:?}");
    assert_eq!(last["consumed"], 5, "{lines:?}");
    let refused =
        python_support::sasl_round_trip(&[&bootstrap, &topic, "SCRAM-SHA-256", "py", "wrong", "1"]);
    let error = refused.last().expect("a result line")["auth_errors"].to_string();
    assert!(
        error.contains("Authentication failed during authentication due to invalid credentials"),
        "{refused:?}"
    );
    println!("kafka-python over SASL_PLAINTEXT/SCRAM-SHA-256: 5 produced, 5 consumed; wrong password: {error}");
}

/// AlterUserScramCredentials and DescribeUserScramCredentials answer bad requests with Kafka's
/// codes, per user, and apply nothing for a user with a bad alteration; credentials survive a
/// restart (they are in the data dir).
#[test]
fn scram_credential_admin_errors_and_persistence() {
    spate_testkit::init_logging();
    let admin_port = free_port();
    let mut broker = start_broker("SASL_PLAINTEXT", admin_port, None);
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let upsert = |name: &str, mechanism: i8, iterations: i32| {
        let mut up = ScramCredentialUpsertion::default();
        up.name = StrBytes::from(name.to_string());
        up.mechanism = mechanism;
        up.iterations = iterations;
        up.salt = Bytes::from_static(b"0123456789");
        up.salted_password = Bytes::from(vec![9u8; 64]);
        up
    };
    let mut req = AlterUserScramCredentialsRequest::default();
    req.upsertions = vec![
        upsert("ok", 2, 4096),
        upsert("few", 2, 4095),
        upsert("many", 2, 16385),
        upsert("mech", 3, 4096),
        upsert("twice", 1, 4096),
        upsert("twice", 1, 8192),
        upsert("", 1, 4096),
    ];
    let mut del = kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion::default();
    del.name = StrBytes::from_static_str("ghost");
    del.mechanism = 1;
    req.deletions = vec![del];
    let resp = RawClient::connect(admin).call(&req, 0);
    let code = |user: &str| {
        resp.results
            .iter()
            .find(|r| r.user.as_str() == user)
            .map(|r| r.error_code)
            .unwrap()
    };
    assert_eq!(code("ok"), 0);
    assert_eq!(code("few"), 93, "UNACCEPTABLE_CREDENTIAL");
    assert_eq!(code("many"), 93);
    assert_eq!(code("mech"), 33, "UNSUPPORTED_SASL_MECHANISM");
    assert_eq!(code("twice"), 92, "DUPLICATE_RESOURCE");
    assert_eq!(code(""), 93);
    assert_eq!(code("ghost"), 91, "RESOURCE_NOT_FOUND");

    let mut describe = DescribeUserScramCredentialsRequest::default();
    let name = |n: &'static str| {
        let mut u =
            kafka_protocol::messages::describe_user_scram_credentials_request::UserName::default();
        u.name = StrBytes::from_static_str(n);
        u
    };
    describe.users = Some(vec![name("ok"), name("twice")]);
    let resp = RawClient::connect(admin).call(&describe, 0);
    assert_eq!(resp.results[0].error_code, 0);
    assert_eq!(
        resp.results[1].error_code, 91,
        "nothing of 'twice' was applied"
    );

    broker.restart();
    let resp = RawClient::connect(admin).call(&describe, 0);
    assert_eq!(
        resp.results[0].credential_infos[0].iterations, 4096,
        "kept across a restart"
    );
    let stored =
        std::fs::read_to_string(broker.data_dir().join("meta/scram_credentials.json")).unwrap();
    assert!(
        stored.contains("stored_key") && !stored.contains("CQkJ"),
        "no salted password stored"
    );
    println!("AlterUserScramCredentials: 7 users, codes 0/93/93/33/92/93/91; credentials kept across a restart");
}
