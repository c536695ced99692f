//! Kafka-style listeners with TLS: `listeners=SSL://…,PLAINTEXT://…` with a PEM key store
//! generated at test time (rcgen). librdkafka produces and consumes over SSL; Metadata
//! advertises the listener each client connected on; with `ssl.client.auth=required` a client
//! without a certificate, or with an expired one, is refused during the handshake and served
//! nothing.

mod raw_client;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use kafka_protocol::messages::MetadataRequest;
use raw_client::RawClient;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use spate_broker::BrokerConfig;
use spate_testkit::tls::Pki;
use spate_testkit::{free_port, random_group, random_topic, TestBroker};

fn ssl_client(bootstrap: SocketAddr, pki: &Pki, client_cert: Option<&str>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap.to_string())
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", path_str(&pki.path("ca.pem")))
        .set("ssl.endpoint.identification.algorithm", "https")
        .set("socket.timeout.ms", "5000")
        .set("message.timeout.ms", "10000");
    if let Some(name) = client_cert {
        c.set(
            "ssl.certificate.location",
            path_str(&pki.path(&format!("{name}.crt"))),
        )
        .set(
            "ssl.key.location",
            path_str(&pki.path(&format!("{name}.key"))),
        );
    }
    c
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn broker_config(pki: &Pki, plaintext_port: u16, settings: &[(&str, &str)]) -> BrokerConfig {
    let mut config = BrokerConfig::default();
    config
        .set(
            "listeners",
            &format!("SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:{plaintext_port}"),
        )
        .unwrap();
    config.set("ssl.keystore.type", "PEM").unwrap();
    config
        .set("ssl.keystore.location", &path_str(&pki.path("server.pem")))
        .unwrap();
    for (k, v) in settings {
        config.set(k, v).unwrap();
    }
    config
}

#[test]
fn ssl_listener_serves_librdkafka_and_metadata_advertises_each_listener() {
    spate_testkit::init_logging();
    let pki = Pki::new();
    let plain_port = free_port();
    let broker = TestBroker::start_with(broker_config(&pki, plain_port, &[]));
    let ssl_addr = broker.local_addr();
    let topic = random_topic("tls");

    let producer: BaseProducer = ssl_client(ssl_addr, &pki, None).create().unwrap();
    for i in 0..3 {
        producer
            .send(
                BaseRecord::<(), _>::to(&topic)
                    .payload(&format!("m{i}"))
                    .partition(0),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(15)).unwrap();
    let meta = producer
        .client()
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    assert_eq!(meta.brokers()[0].port(), i32::from(ssl_addr.port()));

    let mut consumer_config = ssl_client(ssl_addr, &pki, None);
    consumer_config.set("group.id", random_group("tls"));
    let consumer: BaseConsumer = consumer_config.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.len() < 3 && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            got.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
        }
    }
    assert_eq!(got, ["m0", "m1", "m2"]);

    // The plaintext listener advertises itself, not the SSL port.
    let mut raw = RawClient::connect(SocketAddr::from(([127, 0, 0, 1], plain_port)));
    let resp = raw.call(&MetadataRequest::default(), 12);
    assert_eq!(resp.brokers[0].port, i32::from(plain_port));
    // Plaintext Kafka bytes on the SSL port fail the handshake: closed, nothing served.
    let mut wrong = RawClient::connect(ssl_addr);
    wrong.send(&MetadataRequest::default(), 12);
    assert!(wrong.is_closed_by_peer());
    println!(
        "SSL listener {ssl_addr}: 3 records produced and consumed by librdkafka; Metadata \
         advertises {} on SSL and {plain_port} on PLAINTEXT; plaintext on the SSL port closed",
        ssl_addr.port()
    );
}

#[test]
fn required_client_auth_refuses_missing_and_expired_certificates() {
    spate_testkit::init_logging();
    let pki = Pki::new();
    let ca = path_str(&pki.path("ca.pem"));
    let broker = TestBroker::start_with(broker_config(
        &pki,
        free_port(),
        &[
            ("ssl.client.auth", "required"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", &ca),
        ],
    ));
    let addr = broker.local_addr();
    let metadata = |cert: Option<&str>| {
        let producer: BaseProducer = ssl_client(addr, &pki, cert).create().unwrap();
        producer
            .client()
            .fetch_metadata(None, Duration::from_secs(5))
            .map(|m| m.brokers().len())
    };
    let valid = metadata(Some("client"));
    let expired = metadata(Some("expired"));
    let missing = metadata(None);
    println!("client certificate: valid -> {valid:?}, expired -> {expired:?}, none -> {missing:?}");
    assert_eq!(valid.unwrap(), 1);
    assert!(expired.is_err(), "an expired client certificate was served");
    assert!(
        missing.is_err(),
        "a client without a certificate was served"
    );
}

#[test]
fn bad_listener_settings_fail_at_start() {
    let mut c = BrokerConfig::default();
    assert!(c.set("ssl.keystore.type", "JKS").is_err());
    assert!(c.set("ssl.client.auth", "sometimes").is_err());
    c.set("listeners", "SSL://127.0.0.1:0").unwrap();
    let err = spate_broker::Broker::start_blocking(c.clone())
        .err()
        .unwrap();
    assert!(err.to_string().contains("ssl.keystore"), "{err}");
    c.set("listeners", "SASL_PLAINTEXT://127.0.0.1:0").unwrap();
    let err = spate_broker::Broker::start_blocking(c).err().unwrap();
    assert!(err.to_string().contains("SASL"), "{err}");
}
