//! Shared plumbing of spate's fuzz targets: a panic anywhere (also on a broker's worker thread,
//! where tokio would otherwise swallow it) aborts, so libFuzzer records the input; and a
//! broker under test that request frames are sent to over a real socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Once;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use spate_broker::{BackgroundBroker, Broker, BrokerConfig, HandlerRegistry, StorageKind};

/// Makes every panic, on any thread, abort the process with its message printed.
pub fn abort_on_panic() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            std::process::abort();
        }));
    });
}

/// Correlation id of the ApiVersions request sent after each fuzzed frame: its answer marks
/// that the broker is done with the fuzzed one.
const SYNC_CORRELATION_ID: i32 = 0x5EA7_5EA7;

/// How long one fuzzed request may hold its connection (a Fetch or JoinGroup may legitimately
/// wait); after that the connection is dropped and a new one opened.
const STALL: Duration = Duration::from_secs(2);

/// An in-memory broker on 127.0.0.1:0 and a connection to it.
pub struct BrokerUnderTest {
    _broker: BackgroundBroker,
    addr: SocketAddr,
    conn: Option<TcpStream>,
    /// (api key, min version, max version) of every API the broker serves.
    apis: Vec<(i16, i16, i16)>,
}

impl BrokerUnderTest {
    pub fn start() -> BrokerUnderTest {
        let config = BrokerConfig::default()
            .listen("127.0.0.1:0".parse().expect("address"))
            .storage(StorageKind::Memory);
        let broker = Broker::start_blocking(config).expect("start the broker under test");
        let addr = broker.local_addr();
        let apis = HandlerRegistry::standard()
            .api_versions()
            .iter()
            .map(|v| (v.api_key, v.min_version, v.max_version))
            .collect();
        BrokerUnderTest {
            _broker: broker,
            addr,
            conn: None,
            apis,
        }
    }

    /// Sends a request built from `data` — byte 0 picks the API, byte 1 its version, the rest is
    /// the body — then waits until the broker has answered or closed the connection.
    pub fn send(&mut self, data: &[u8]) {
        if data.len() < 2 {
            return;
        }
        let (key, min, max) = self.apis[usize::from(data[0]) % self.apis.len()];
        let span = i32::from(max - min) + 1;
        let version = min + i16::try_from(i32::from(data[1]) % span).unwrap_or(0);
        let frame = request_frame(key, version, 1, &data[2..]);
        let sync = request_frame(ApiKey::ApiVersions as i16, 0, SYNC_CORRELATION_ID, &[]);
        if self.round_trip(&frame, &sync).is_err() {
            self.conn = None;
        }
    }

    fn round_trip(&mut self, frame: &[u8], sync: &[u8]) -> std::io::Result<()> {
        if self.conn.is_none() {
            let c = TcpStream::connect(self.addr)?;
            c.set_read_timeout(Some(STALL))?;
            c.set_nodelay(true)?;
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.write_all(frame)?;
        conn.write_all(sync)?;
        loop {
            let mut len = [0u8; 4];
            conn.read_exact(&mut len)?;
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            conn.read_exact(&mut body)?;
            if body.len() >= 4
                && i32::from_be_bytes([body[0], body[1], body[2], body[3]]) == SYNC_CORRELATION_ID
            {
                return Ok(());
            }
        }
    }
}

/// A length-prefixed request frame with the header version `key` and `version` call for.
pub fn request_frame(key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let header_version = ApiKey::try_from(key)
        .map(|k| k.request_header_version(version))
        .unwrap_or(1);
    let mut out = vec![0u8; 4];
    out.extend_from_slice(&key.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    if header_version >= 1 {
        let client = b"spate-fuzz";
        out.extend_from_slice(&(client.len() as i16).to_be_bytes());
        out.extend_from_slice(client);
    }
    if header_version >= 2 {
        out.push(0); // no tagged fields
    }
    out.extend_from_slice(body);
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

/// The seed corpus: well-formed inputs of each kind, made with the same code that reads them,
/// for the fuzzers to mutate from. `cargo test` writes them to a temp dir and checks each is
/// read back as valid; with `SPATE_FUZZ_CORPUS_DIR=fuzz/corpus` it (re)writes the committed
/// corpus.
#[cfg(test)]
mod seeds {
    use std::path::{Path, PathBuf};

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use spate_broker::group::offsets_log::{LogEntry, OffsetRecord, OffsetsLog};
    use spate_broker::txn::log::TxnLog;
    use spate_broker::txn::metadata::TransactionMetadata;
    use spate_broker::HandlerRegistry;
    use spate_streaming::wal::{WalConfig, WriteAheadLog};

    /// Where the seeds go: `SPATE_FUZZ_CORPUS_DIR`, else a temp dir kept for the test's life.
    fn root() -> &'static Path {
        static ROOT: std::sync::OnceLock<(Option<tempfile::TempDir>, PathBuf)> =
            std::sync::OnceLock::new();
        &ROOT
            .get_or_init(|| match std::env::var_os("SPATE_FUZZ_CORPUS_DIR") {
                Some(dir) => (None, PathBuf::from(dir)),
                None => {
                    let tmp = tempfile::tempdir().expect("temp dir");
                    let path = tmp.path().to_path_buf();
                    (Some(tmp), path)
                }
            })
            .1
    }

    fn corpus(target: &str) -> PathBuf {
        let dir = root().join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        dir
    }

    fn batch(compression: Compression, first_offset: i64, n: i64) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: first_offset + i,
                sequence: -1,
                timestamp: 1_700_000_000_000 + i,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(format!("value-{i}"))),
                headers: [(
                    StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"v")),
                )]
                .into_iter()
                .collect(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode batch");
        buf.freeze()
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// A default request of `key` (a produce request carries a valid batch).
    fn default_request(key: ApiKey) -> Option<RequestKind> {
        macro_rules! kinds {
            ($($k:ident => $t:ty),* $(,)?) => {
                match key {
                    $(ApiKey::$k => Some(RequestKind::$k(<$t>::default())),)*
                    _ => None,
                }
            };
        }
        if key == ApiKey::Produce {
            let data = produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(Compression::None, 0, 3)));
            let topic = produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("fuzz")))
                .with_partition_data(vec![data]);
            return Some(RequestKind::Produce(
                ProduceRequest::default()
                    .with_acks(1)
                    .with_timeout_ms(1000)
                    .with_topic_data(vec![topic]),
            ));
        }
        kinds!(
            Fetch => FetchRequest, ListOffsets => ListOffsetsRequest,
            Metadata => MetadataRequest, OffsetCommit => OffsetCommitRequest,
            OffsetFetch => OffsetFetchRequest, FindCoordinator => FindCoordinatorRequest,
            JoinGroup => JoinGroupRequest, Heartbeat => HeartbeatRequest,
            LeaveGroup => LeaveGroupRequest, SyncGroup => SyncGroupRequest,
            DescribeGroups => DescribeGroupsRequest, ListGroups => ListGroupsRequest,
            SaslHandshake => SaslHandshakeRequest, ApiVersions => ApiVersionsRequest,
            CreateTopics => CreateTopicsRequest, DeleteTopics => DeleteTopicsRequest,
            DeleteRecords => DeleteRecordsRequest, InitProducerId => InitProducerIdRequest,
            OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
            AddPartitionsToTxn => AddPartitionsToTxnRequest,
            AddOffsetsToTxn => AddOffsetsToTxnRequest, EndTxn => EndTxnRequest,
            WriteTxnMarkers => WriteTxnMarkersRequest,
            TxnOffsetCommit => TxnOffsetCommitRequest, DescribeAcls => DescribeAclsRequest,
            CreateAcls => CreateAclsRequest, DeleteAcls => DeleteAclsRequest,
            DescribeConfigs => DescribeConfigsRequest, AlterConfigs => AlterConfigsRequest,
            SaslAuthenticate => SaslAuthenticateRequest,
            CreatePartitions => CreatePartitionsRequest, DeleteGroups => DeleteGroupsRequest,
            IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
            OffsetDelete => OffsetDeleteRequest,
            DescribeUserScramCredentials => DescribeUserScramCredentialsRequest,
            AlterUserScramCredentials => AlterUserScramCredentialsRequest,
            DescribeCluster => DescribeClusterRequest,
            DescribeProducers => DescribeProducersRequest,
            DescribeTransactions => DescribeTransactionsRequest,
            ListTransactions => ListTransactionsRequest,
            ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
            ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
            DescribeTopicPartitions => DescribeTopicPartitionsRequest,
        )
    }

    fn request_frames() {
        let dir = corpus("request_frame");
        let apis = HandlerRegistry::standard().api_versions();
        for (index, api) in apis.iter().enumerate() {
            let Ok(key) = ApiKey::try_from(api.api_key) else {
                continue;
            };
            let Some(request) = default_request(key) else {
                continue;
            };
            for version in api.min_version..=api.max_version {
                let mut body = BytesMut::new();
                if request.encode(&mut body, version).is_err() {
                    continue;
                }
                let mut input = vec![index as u8, (version - api.min_version) as u8];
                input.extend_from_slice(&body);
                std::fs::write(dir.join(format!("{key:?}-v{version}")), input).expect("seed");
            }
        }
    }

    fn produce_batches() {
        let dir = corpus("produce_batch");
        for codec in CODECS {
            std::fs::write(dir.join(format!("{codec:?}")), batch(codec, 0, 5)).expect("seed");
        }
    }

    fn segments() {
        let dir = corpus("segment_recovery");
        let mut segment = Vec::new();
        for (i, codec) in CODECS.iter().enumerate() {
            segment.extend_from_slice(&batch(*codec, i as i64 * 4, 4));
        }
        std::fs::write(dir.join("five-codecs"), &segment).expect("seed");
        std::fs::write(dir.join("torn-tail"), &segment[..segment.len() - 7]).expect("seed");
    }

    fn offsets_log() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let (mut log, _) = OffsetsLog::open(tmp.path()).expect("open");
        let commit = |partition, offset| {
            LogEntry::Commit(OffsetRecord {
                group: "g".into(),
                topic: "t".into(),
                partition,
                offset,
                leader_epoch: 0,
                metadata: "m".into(),
                commit_timestamp_ms: 1_700_000_000_000,
                expire_timestamp_ms: None,
            })
        };
        let entries = [
            commit(0, 10),
            commit(1, 20),
            LogEntry::Delete {
                group: "g".into(),
                topic: "t".into(),
                partition: 1,
            },
            LogEntry::GroupTombstone { group: "h".into() },
        ];
        log.append(&entries).expect("append");
        drop(log);
        let bytes = std::fs::read(tmp.path().join("offsets.log")).expect("read");
        std::fs::write(corpus("offsets_log").join("commits"), bytes).expect("seed");
    }

    fn txn_log() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let (mut log, _) = TxnLog::open(tmp.path()).expect("open");
        for (id, pid) in [("a", 1), ("b", 2)] {
            let m = TransactionMetadata::new(id, pid, 60_000, 1_700_000_000_000);
            log.append(&m, false).expect("append");
        }
        drop(log);
        let bytes = std::fs::read(tmp.path().join("transactions.log")).expect("read");
        std::fs::write(corpus("txn_log").join("two-ids"), bytes).expect("seed");
    }

    fn wal() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let wal = WriteAheadLog::open(tmp.path(), WalConfig::default()).expect("open");
        for i in 0..3 {
            wal.append(1_700_000_000_000 + i, format!("block {i}").as_bytes())
                .expect("append");
        }
        wal.flush().expect("flush");
        drop(wal);
        for entry in std::fs::read_dir(tmp.path()).expect("list") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            std::fs::write(
                corpus("wal_segment").join(name),
                std::fs::read(&path).expect("read"),
            )
            .expect("seed");
        }
    }

    /// Every seed of `target`, read back.
    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let mut files: Vec<_> = std::fs::read_dir(corpus(target))
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read(f).expect("read"))
            .collect()
    }

    #[test]
    fn write_seed_corpus() {
        request_frames();
        produce_batches();
        segments();
        offsets_log();
        txn_log();
        wal();
        // Seeds are worth mutating only if they are valid: each one is accepted as written.
        assert!(
            seeds("request_frame").len() > 100,
            "a frame per API and version"
        );
        let rules =
            spate_broker::validate::ProduceRules::new(&spate_broker::LogConfig::default(), 9);
        for mut batch in seeds("produce_batch") {
            spate_broker::validate::validate_produce_batch(&mut batch, &rules)
                .expect("a seed batch passes produce validation");
        }
        let check = tempfile::tempdir().expect("temp dir");
        std::fs::write(check.path().join("offsets.log"), &seeds("offsets_log")[0]).expect("log");
        let (_, entries) = OffsetsLog::open(check.path()).expect("reopen offsets log");
        assert_eq!(entries.len(), 4);
        std::fs::write(check.path().join("transactions.log"), &seeds("txn_log")[0]).expect("log");
        let (_, ids) = TxnLog::open(check.path()).expect("reopen transaction log");
        assert_eq!(ids.len(), 2);
    }
}
