//! Property tests of offset and time lookups across many small segments, before and after a
//! restart (which reloads or rebuilds the indexes), against brute-force answers.

mod storage_support;

use proptest::prelude::*;
use spate_broker::storage::{DiskOptions, DiskStorage, LogConfig, LogStorage, PartitionLog};
use storage_support::{append, assert_bytes, batch, split, unique_tp};

/// What the test remembers of each appended batch.
#[derive(Debug, Clone)]
struct Stored {
    base: i64,
    last: i64,
    max_ts: i64,
    bytes: Vec<u8>,
}

fn check(log: &dyn PartitionLog, stored: &[Stored], start: i64) {
    let end = stored.last().map(|b| b.last + 1).unwrap_or(0);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.log_start_offset(), start);
    for offset in start..end {
        let got = log.read(offset, 1).unwrap();
        let want = stored
            .iter()
            .find(|b| b.base <= offset && offset <= b.last)
            .unwrap();
        assert_bytes(&got, &want.bytes, &format!("read({offset})"));
    }
    if start < end {
        let got = split(&log.read(start, usize::MAX).unwrap());
        let live: Vec<&Stored> = stored.iter().filter(|b| b.last >= start).collect();
        assert_eq!(got.len(), live.len());
    }
    let live = stored.iter().filter(|b| b.last >= start);
    let mut targets: Vec<i64> = vec![i64::MIN, -1];
    for b in stored {
        targets.extend([b.max_ts - 1, b.max_ts, b.max_ts + 1]);
    }
    for t in targets {
        let want = live
            .clone()
            .find(|b| b.max_ts >= t)
            .map(|b| (b.base.max(start), b.max_ts));
        assert_eq!(log.offset_for_timestamp(t).unwrap(), want, "timestamp {t}");
    }
    let mut want_max: Option<(i64, i64)> = None;
    for b in live {
        if want_max.is_none_or(|(ts, _)| b.max_ts >= ts) {
            want_max = Some((b.max_ts, b.last));
        }
    }
    assert_eq!(log.max_timestamp(), want_max);
}

fn shapes() -> impl Strategy<Value = Vec<(i32, i64, usize)>> {
    prop::collection::vec((1i32..=8, 0i64..200, 0usize..400), 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn lookups_match_brute_force(
        shapes in shapes(),
        segment_bytes in 200u64..3000,
        index_interval in 1usize..700,
        delete_fraction in prop::option::of(0.0f64..1.0),
        clean_shutdown in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let tp = unique_tp();
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes: index_interval,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let mut stored = Vec::new();
        let start;
        {
            let storage = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
            let log = storage.open(&tp, config.clone()).unwrap();
            for &(records, ts, body) in &shapes {
                let (info, bytes) = append(&*log, &batch(records, ts, body));
                stored.push(Stored {
                    base: info.base_offset,
                    last: info.last_offset,
                    max_ts: ts,
                    bytes,
                });
            }
            check(&*log, &stored, 0);
            let end = log.log_end_offset();
            start = match delete_fraction {
                Some(f) => log.delete_records_before((end as f64 * f) as i64).unwrap(),
                None => 0,
            };
            check(&*log, &stored, start);
            if clean_shutdown {
                storage.close().unwrap();
            }
        }
        // Restart: older segments reuse their indexes; the active one is rebuilt unless the
        // shutdown was clean.
        let storage = DiskStorage::open(dir.path(), DiskOptions::default()).unwrap();
        let log = storage.open(&tp, config).unwrap();
        check(&*log, &stored, start);
    }
}
