//! The receiver write-ahead log's block format: blocks written by an earlier build (format 1,
//! `postcard(Block<ConsumerRecord>)`, captured in `tests/fixtures/receiver-wal-v1` by the code
//! of the time) stay readable next to blocks in today's compact format, and today's format
//! writes at most 1.1 bytes per byte of key and value for 100-byte records.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use spate_kafka::receiver::ConsumerRecordCodec;
use spate_kafka::ConsumerRecord;
use spate_streaming::receiver::{
    read_block_from_wal_with, Block, BlockHandler, BlockStore, ReceivedBlockInfo, StreamBlockId,
    WalBlockHandler,
};
use spate_streaming::wal::WalConfig;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/receiver-wal-v1")
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_slice(&std::fs::read(path).expect("fixture file")).expect("fixture JSON")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn blocks_written_in_the_first_format_stay_readable() {
    let infos: Vec<ReceivedBlockInfo> = read_json(&fixture().join("infos.json"));
    let expected: Vec<Block<ConsumerRecord>> = read_json(&fixture().join("blocks.json"));
    assert_eq!(infos.len(), 2);
    for (info, want) in infos.iter().zip(&expected) {
        let block = read_block_from_wal_with(&fixture(), info, Some(&ConsumerRecordCodec))
            .expect("a format-1 block reads back");
        assert_eq!(&block, want);
    }

    // A handler writing today's format appends to the same log; both read back.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    let handler = WalBlockHandler::with_codec(
        dir.path(),
        0,
        Arc::new(BlockStore::new()),
        WalConfig::default(),
        Arc::new(ConsumerRecordCodec),
    )
    .unwrap();
    let mut new_block = expected[0].clone();
    new_block.id.unique_id += 10_000;
    let info = handler.store_block(Arc::new(new_block.clone())).unwrap();
    assert_eq!(handler.read_block(&info).unwrap(), new_block);
    assert_eq!(handler.read_block(&infos[1]).unwrap(), expected[1]);
    let all = handler.read_all_blocks().unwrap();
    assert_eq!(
        all,
        vec![expected[0].clone(), expected[1].clone(), new_block]
    );
}

#[test]
fn the_compact_format_writes_at_most_one_point_one_bytes_per_byte_received() {
    let topic: Arc<str> = Arc::from("bench-receiver-topic-with-a-35-byte-name");
    let items: Vec<ConsumerRecord> = (0..20_000i64)
        .map(|i| ConsumerRecord {
            topic: Arc::clone(&topic),
            partition: (i / 5_000) as i32,
            offset: i % 5_000,
            timestamp: Some(1_765_000_000_000 + i / 7),
            key: None,
            value: Some(vec![b'v'; 100].into()),
            headers: Vec::new(),
        })
        .collect();
    let received: u64 = 20_000 * 100;
    let block = Block::new(
        StreamBlockId {
            stream_id: 0,
            unique_id: 1_765_000_000_000,
        },
        items,
    );
    let log_bytes = |codec: bool| {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(BlockStore::new());
        let handler = if codec {
            WalBlockHandler::with_codec(
                dir.path(),
                0,
                store,
                WalConfig::default(),
                Arc::new(ConsumerRecordCodec),
            )
        } else {
            WalBlockHandler::open(dir.path(), 0, store, WalConfig::default())
        }
        .unwrap();
        handler.store_block(Arc::new(block.clone())).unwrap();
        let log = dir.path().join("receivedData/0");
        std::fs::read_dir(log)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>()
    };
    let (old, new) = (log_bytes(false), log_bytes(true));
    let (old_wa, new_wa) = (old as f64 / received as f64, new as f64 / received as f64);
    eprintln!("write amplification, 100-byte records: format 1 {old_wa:.3}, compact {new_wa:.3}");
    assert!(new_wa <= 1.1, "compact format: {new_wa:.3}");
    assert!(
        old_wa > 1.3,
        "the first format repeated the topic per record: {old_wa:.3}"
    );
}
