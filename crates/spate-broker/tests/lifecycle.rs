//! Starting and stopping the broker as a library: the bound address with port 0, configuration
//! errors, shutdown hooks, and a clean shutdown that answers parked long-polls promptly.

mod raw_client;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use raw_client::RawClient;
use spate_broker::{Broker, BrokerConfig, BrokerError, StorageKind};

fn local() -> BrokerConfig {
    BrokerConfig::default().listen("127.0.0.1:0".parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_shutdown_and_hooks() {
    spate_testkit::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(local().data_dir(dir.path())).await.unwrap();
    let addr = broker.local_addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(
        broker.bootstrap_servers(),
        format!("127.0.0.1:{}", addr.port())
    );

    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    broker.state().on_shutdown(move || {
        flag.store(true, Ordering::SeqCst);
        Ok(())
    });

    // A fetch parked for 30 s on an empty partition.
    let topic = "lifecycle";
    broker
        .state()
        .topics
        .create(
            spate_broker::topics::NewTopic {
                name: topic.into(),
                partitions: 1,
                configs: Default::default(),
            },
            false,
        )
        .unwrap();
    let poll = tokio::task::spawn_blocking(move || {
        let mut c = RawClient::connect(addr);
        let mut p = FetchPartition::default();
        p.partition_max_bytes = 1 << 20;
        let mut t = FetchTopic::default();
        t.topic = TopicName(StrBytes::from_static_str("lifecycle"));
        t.partitions = vec![p];
        let mut req = FetchRequest::default();
        req.max_wait_ms = 30_000;
        req.min_bytes = 1;
        req.max_bytes = 1 << 20;
        req.topics = vec![t];
        let started = Instant::now();
        let resp = c.call(&req, 12);
        (
            started.elapsed(),
            resp.responses[0].partitions[0].error_code,
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    broker.shutdown().await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    let (waited, code) = poll.await.unwrap();
    assert_eq!(code, 0);
    assert!(
        waited < Duration::from_secs(10),
        "the parked fetch was answered on shutdown"
    );
    assert!(ran.load(Ordering::SeqCst), "shutdown hook ran");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn configuration_errors() {
    let err = Broker::start(local().storage(StorageKind::Disk))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, BrokerError::InvalidConfig { .. }), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let first = Broker::start(local().data_dir(dir.path())).await.unwrap();
    let other = tempfile::tempdir().unwrap();
    let taken = local().listen(first.local_addr()).data_dir(other.path());
    let err = Broker::start(taken).await.err().unwrap();
    assert!(matches!(err, BrokerError::Listen { .. }), "{err}");
    first.shutdown().await.unwrap();

    let mem = Broker::start(local().storage(StorageKind::Memory))
        .await
        .unwrap();
    mem.shutdown().await.unwrap();
}
