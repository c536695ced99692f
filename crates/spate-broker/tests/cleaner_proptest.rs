//! The cleaner against a model: random appends (updates and deletes of a few keys, in random
//! codecs), cleanings (with a tiny offset map, so several passes) and restarts. After every step
//! the live key → value map a consumer reads from offset 0 is the model's, offsets increase, and
//! the log end offset never moves back.

mod cleaner_support;

use std::collections::BTreeMap;

use cleaner_support::*;
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use spate_broker::storage::{
    CleanupPolicy, DiskOptions, DiskStorage, LogConfig, PartitionLog, TopicPartition,
};

#[derive(Debug, Clone)]
enum Op {
    /// A batch of `(key, value)` (value `None` deletes), with a codec.
    Append(Vec<(u8, Option<u16>)>, u8),
    /// Clean, at a clock `advance_ms` after the previous cleaning.
    Clean {
        advance_ms: u32,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec((0u8..12, prop::option::weighted(0.8, any::<u16>())), 1..8), 0u8..3)
            .prop_map(|(recs, codec)| Op::Append(recs, codec)),
        2 => (0u32..2_000).prop_map(|advance_ms| Op::Clean { advance_ms }),
        1 => Just(Op::Restart),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 128,
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20, ..ProptestConfig::default() })]

    #[test]
    fn live_map_always_matches_the_model(ops in prop::collection::vec(op(), 1..45)) {
        let dir = tempfile::tempdir().unwrap();
        let tp = TopicPartition::new("model", 0);
        let mut storage = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
        let mut log = storage.open_log(&tp, config()).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut clock = 10_000i64;
        let cleaner = cleaner_config(24 * 20);
        for op in ops {
            let end_before = log.log_end_offset();
            match op {
                Op::Append(recs, codec) => {
                    let recs: Vec<_> = recs
                        .into_iter()
                        .map(|(k, v)| (vec![b'k', k], v.map(|v| v.to_be_bytes().to_vec())))
                        .collect();
                    for (k, v) in &recs {
                        match v {
                            Some(v) => model.insert(k.clone(), v.clone()),
                            None => model.remove(k),
                        };
                    }
                    let codec = [Compression::None, Compression::Snappy, Compression::Gzip][codec as usize];
                    append(&*log, &keyed_batch(codec, clock, &recs));
                }
                Op::Clean { advance_ms } => {
                    clock += advance_ms as i64;
                    clean(&log, &cleaner, clock);
                }
                Op::Restart => {
                    drop(log);
                    spate_broker::storage::LogStorage::close(&storage).ok();
                    drop(storage);
                    storage = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
                    log = storage.open_log(&tp, config()).unwrap();
                }
            }
            let records = read_records(&*log);
            assert_offsets_increase(&records);
            prop_assert!(log.log_end_offset() >= end_before);
            prop_assert_eq!(live_map(&records), model.clone());
        }
    }
}
