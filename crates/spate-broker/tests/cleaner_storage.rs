//! The log cleaner on real disk logs: K keys × U updates plus tombstones compact to the latest
//! value of each live key with offsets and timestamps kept; tombstones go after
//! `delete.retention.ms`; the offset map's bound forces several passes; small segments merge;
//! compressed batches are recompressed with their codec; `min.compaction.lag.ms` protects young
//! records; the result survives a restart.

mod cleaner_support;

use std::collections::BTreeMap;

use cleaner_support::*;
use kafka_protocol::records::Compression;
use spate_broker::storage::{
    CleanupPolicy, DiskOptions, DiskStorage, LogConfig, PartitionLog, TopicPartition,
};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 512,
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    }
}

fn key(k: usize) -> Vec<u8> {
    format!("key-{k:05}").into_bytes()
}

/// Appends `updates` rounds over `keys` keys (value `k:round`), then tombstones for every
/// `tombstone_every`-th key, then one more round of fillers to push the tombstones out of the
/// active segment. Returns every record as appended, in offset order.
fn fill(
    log: &dyn PartitionLog,
    codec: Compression,
    keys: usize,
    updates: usize,
    tombstone_every: usize,
) -> Vec<Rec> {
    let mut appended = Vec::new();
    let mut push = |recs: Vec<(Vec<u8>, Option<Vec<u8>>)>, ts: i64| {
        let base = append(log, &keyed_batch(codec, ts, &recs));
        for (i, (k, v)) in recs.into_iter().enumerate() {
            appended.push(Rec {
                offset: base + i as i64,
                timestamp: ts + i as i64,
                key: Some(k),
                value: v,
            });
        }
    };
    for round in 0..updates {
        for chunk in (0..keys).collect::<Vec<_>>().chunks(10) {
            let recs = chunk
                .iter()
                .map(|k| (key(*k), Some(format!("{k}:{round}").into_bytes())))
                .collect();
            push(recs, 1_000 + round as i64 * 100);
        }
    }
    let dead: Vec<_> = (0..keys)
        .step_by(tombstone_every)
        .map(|k| (key(k), None))
        .collect();
    push(dead, 50_000);
    for i in 0..40 {
        push(
            vec![(format!("filler-{i}").into_bytes(), Some(vec![b'f'; 500]))],
            60_000 + i,
        );
    }
    appended
}

/// What a consumer must see after cleaning: for each key its last record (tombstones kept when
/// `keep_tombstones`), except that records in the active segment are all still there.
fn expected(appended: &[Rec], active_base: i64, keep_tombstones: bool) -> Vec<Rec> {
    let mut last: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for r in appended.iter().filter(|r| r.offset < active_base) {
        last.insert(r.key.clone().unwrap_or_default(), r.offset);
    }
    appended
        .iter()
        .filter(|r| {
            r.offset >= active_base
                || (last.get(r.key.as_ref().unwrap()) == Some(&r.offset)
                    && (r.value.is_some() || keep_tombstones))
        })
        .cloned()
        .collect()
}

fn open(
    dir: &std::path::Path,
    tp: &TopicPartition,
) -> (DiskStorage, std::sync::Arc<spate_broker::storage::DiskLog>) {
    let storage = DiskStorage::open(dir, DiskOptions::default()).unwrap();
    let log = storage.open_log(tp, config()).unwrap();
    (storage, log)
}

#[test]
fn compacts_to_the_latest_value_of_each_key_with_offsets_and_timestamps_kept() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let tp = TopicPartition::new("compact", 0);
        let (_storage, log) = open(dir.path(), &tp);
        let appended = fill(&*log, codec, 200, 5, 7);
        let segments_before = log.segment_count();
        let passes = clean(&log, &cleaner_config(1 << 20), now_ms());
        assert_eq!(passes.len(), 1);
        let active = *log.segment_base_offsets().last().unwrap();
        let got = read_records(&*log);
        let want = expected(&appended, active, true);
        assert_offsets_increase(&got);
        assert_eq!(got, want, "{codec:?}");
        assert_eq!(live_map(&got), live_map(&appended), "{codec:?}");
        // Groups are formed from the sizes before cleaning (as Kafka does): the shrunken
        // segments merge on the next cleaning.
        let cleaned_segments = log.segment_count();
        clean(&log, &cleaner_config(1 << 20), now_ms());
        // (Compressed, the log has too few segments to merge.)
        assert!(
            log.segment_count() < cleaned_segments || codec != Compression::None,
            "small segments merge: {segments_before} -> {cleaned_segments} -> {}",
            log.segment_count()
        );
        assert_eq!(read_records(&*log), want, "{codec:?} after merging");
        println!(
            "{codec:?}: {} records -> {}, {} segments -> {}, {} bytes read, {} written",
            appended.len(),
            got.len(),
            segments_before,
            log.segment_count(),
            passes[0].bytes_read,
            passes[0].bytes_written
        );
        // Every offset still resolves: a fetch at a removed offset starts at the next kept one.
        for r in &appended {
            let first_kept = got.iter().find(|g| g.offset >= r.offset).map(|g| g.offset);
            assert_eq!(first_record_from(&*log, r.offset), first_kept);
        }
        // Restart: the same records come back from disk.
        drop(log);
        drop(_storage);
        let (_storage, log) = open(dir.path(), &tp);
        assert_eq!(read_records(&*log), want, "{codec:?} after restart");
    }
}

#[test]
fn tombstones_go_after_delete_retention_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("tombstones", 0);
    let (_storage, log) = open(dir.path(), &tp);
    let mut c = config();
    c.delete_retention_ms = 60_000;
    log.update_config(c.clone());
    let appended = fill(&*log, Compression::None, 50, 3, 5);
    let now = now_ms();
    clean(&log, &cleaner_config(1 << 20), now);
    let active = *log.segment_base_offsets().last().unwrap();
    let after_first = read_records(&*log);
    assert_eq!(after_first, expected(&appended, active, true));
    let stats = clean(&log, &cleaner_config(1 << 20), now + 59_000);
    assert_eq!(read_records(&*log), after_first, "young tombstones stay");
    assert_eq!(stats[0].next_delete_horizon_ms, Some(now + 60_000));
    clean(&log, &cleaner_config(1 << 20), now + 60_001);
    let after = read_records(&*log);
    assert_eq!(
        after,
        expected(&appended, active, false),
        "old tombstones go"
    );
    assert!(after
        .iter()
        .all(|r| r.value.is_some() || r.offset >= active));
}

#[test]
fn a_small_offset_map_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("passes", 0);
    let (_storage, log) = open(dir.path(), &tp);
    let appended = fill(&*log, Compression::Lz4, 1_000, 3, 9);
    // Room for ~300 keys per pass (24 bytes each, 90% load).
    let config = cleaner_config(24 * 340);
    let passes = clean(&log, &config, now_ms());
    assert!(passes.len() >= 3, "{} passes", passes.len());
    assert!(passes
        .iter()
        .all(|p| p.map_memory_bytes <= 24 * 340 + 24 * 16));
    let active = *log.segment_base_offsets().last().unwrap();
    let got = read_records(&*log);
    assert_eq!(got, expected(&appended, active, true));
    println!(
        "{} passes, map entries per pass: {:?}",
        passes.len(),
        passes.iter().map(|p| p.map_entries).collect::<Vec<_>>()
    );
}

#[test]
fn min_compaction_lag_protects_young_records() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("lag", 0);
    let (_storage, log) = open(dir.path(), &tp);
    let mut c = config();
    c.min_compaction_lag_ms = 10_000;
    log.update_config(c);
    let appended = fill(&*log, Compression::None, 500, 4, 5);
    // Updates carry timestamps 1_000..1_800, tombstones 50_000, fillers 60_000+: at 30_000 with
    // a 10 s lag the segments of updates only are old enough, the later ones are not.
    let passes = clean(&log, &cleaner_config(1 << 20), 30_000);
    let got = read_records(&*log);
    assert!(passes[0].bytes_read > 0);
    assert!(got.len() < appended.len());
    assert_eq!(live_map(&got), live_map(&appended));
    // Nothing is old enough at time 1_000: no record may go.
    let dir2 = tempfile::tempdir().unwrap();
    let (_s2, log2) = open(dir2.path(), &tp);
    let mut c = config();
    c.min_compaction_lag_ms = 10_000;
    log2.update_config(c);
    let appended2 = fill(&*log2, Compression::None, 500, 4, 5);
    clean(&log2, &cleaner_config(1 << 20), 1_000);
    assert_eq!(read_records(&*log2), appended2);
}
