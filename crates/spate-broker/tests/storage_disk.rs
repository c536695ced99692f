//! Disk-only behaviour of `DiskStorage`: restarts, torn and corrupt tails, index rebuilds,
//! rolling, retention that survives a restart.

mod storage_support;

use std::fs::OpenOptions;
use std::path::Path;

use spate_broker::storage::{
    DiskOptions, DiskStorage, LogConfig, LogStorage, PartitionLog, TopicPartition,
};
use spate_broker::BrokerError;
use storage_support::{append, assert_bytes, batch, read_all, segment_files, split, unique_tp};

fn storage(dir: &Path) -> DiskStorage {
    DiskStorage::open(dir, DiskOptions::default()).unwrap()
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 2000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

/// Appends a varied set of batches; returns the stored bytes of each.
fn fill(log: &dyn PartitionLog, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let records = 1 + (i % 5) as i32;
            let ts = 1_000 + ((i * 37) % 50) as i64;
            append(log, &batch(records, ts, 50 + (i * 29) % 400)).1
        })
        .collect()
}

fn reopen(dir: &Path, tp: &TopicPartition, config: LogConfig) -> std::sync::Arc<dyn PartitionLog> {
    storage(dir).open(tp, config).unwrap()
}

#[test]
fn restart_keeps_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    let (stored, end, max_ts) = {
        let log = reopen(dir.path(), &tp, small_segments());
        let stored = fill(&*log, 60);
        (stored, log.log_end_offset(), log.max_timestamp())
    };
    let log = reopen(dir.path(), &tp, small_segments());
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.log_start_offset(), 0);
    assert_bytes(&read_all(&*log), &stored.concat(), "log after restart");
    assert_eq!(log.max_timestamp().map(|m| m.0), max_ts.map(|m| m.0));
    let (info, _) = append(&*log, &batch(2, 5_000, 10));
    assert_eq!(info.base_offset, end);
    assert_eq!(log.offset_for_timestamp(5_000).unwrap(), Some((end, 5_000)));
    assert!(segment_files(&dir.path().join(tp.to_string()), "log").len() > 3);
}

#[test]
fn torn_tail_is_cut_at_the_last_whole_batch() {
    let shapes: Vec<Vec<u8>> = (0..6).map(|i| batch(1 + i, 10 * i as i64, 100)).collect();
    let lens: Vec<usize> = shapes.iter().map(|b| b.len()).collect();
    let full: usize = lens.iter().sum();
    let last_start = full - lens[5];
    // Cut points into the last batch: just after it starts, mid-header, just past the header,
    // mid-body, one byte short; and into the batch before it.
    let cuts = [
        (last_start + 1, 5),
        (last_start + 30, 5),
        (last_start + 61, 5),
        (last_start + 100, 5),
        (full - 1, 5),
        (last_start - 7, 4),
        (last_start, 5),
    ];
    for (cut, whole_batches) in cuts {
        let dir = tempfile::tempdir().unwrap();
        let tp = unique_tp();
        let stored: Vec<Vec<u8>> = {
            let log = reopen(dir.path(), &tp, LogConfig::default());
            shapes.iter().map(|b| append(&*log, b).1).collect()
        };
        let seg = &segment_files(&dir.path().join(tp.to_string()), "log")[0];
        OpenOptions::new()
            .write(true)
            .open(seg)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();

        let log = reopen(dir.path(), &tp, LogConfig::default());
        let expected = stored[..whole_batches].concat();
        assert_bytes(&read_all(&*log), &expected, &format!("cut at {cut}"));
        let end: i64 = (1..=whole_batches as i64).sum();
        assert_eq!(log.log_end_offset(), end, "cut at {cut}");
        assert_eq!(std::fs::metadata(seg).unwrap().len(), expected.len() as u64);
        let (info, _) = append(&*log, &batch(3, 99, 20));
        assert_eq!(info.base_offset, end);
        let all = split(&read_all(&*log));
        assert_eq!(all.len(), whole_batches + 1);
        assert_eq!(all.last().unwrap().0.base_offset, end);
    }
}

#[test]
fn corrupt_crc_in_the_tail_truncates_there() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    let stored = {
        let log = reopen(dir.path(), &tp, LogConfig::default());
        fill(&*log, 8)
    };
    let seg = segment_files(&dir.path().join(tp.to_string()), "log")[0].clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    // Flip a body byte of the 7th batch: it and everything after it goes.
    let pos: usize = stored[..6].iter().map(|b| b.len()).sum::<usize>() + 70;
    bytes[pos] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();

    let log = reopen(dir.path(), &tp, LogConfig::default());
    assert_bytes(
        &read_all(&*log),
        &stored[..6].concat(),
        "log after CRC truncation",
    );
    let end = split(&stored[5])[0].0.last_offset() + 1;
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(append(&*log, &batch(1, 1, 1)).0.base_offset, end);
}

#[test]
fn corrupt_older_segment_tail_ends_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    let stored = {
        let log = reopen(dir.path(), &tp, small_segments());
        fill(&*log, 40)
    };
    let pdir = dir.path().join(tp.to_string());
    let logs = segment_files(&pdir, "log");
    assert!(logs.len() >= 4);
    // Corrupt the last byte of the first segment (its last batch's body).
    let mut bytes = std::fs::read(&logs[0]).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(&logs[0], &bytes).unwrap();

    let log = reopen(dir.path(), &tp, small_segments());
    let kept = split(&read_all(&*log));
    assert!(!kept.is_empty());
    let all: Vec<u8> = stored.concat();
    let kept_bytes: Vec<u8> = kept.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_bytes(&kept_bytes, &all[..kept_bytes.len()], "kept prefix");
    assert!(kept_bytes.len() < bytes.len());
    assert_eq!(segment_files(&pdir, "log").len(), 1);
    assert_eq!(
        log.log_end_offset(),
        kept.last().unwrap().0.last_offset() + 1
    );
}

#[test]
fn corrupt_batch_header_in_the_middle_is_a_clear_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    {
        let log = reopen(dir.path(), &tp, small_segments());
        fill(&*log, 40);
    }
    let pdir = dir.path().join(tp.to_string());
    let seg = segment_files(&pdir, "log")[0].clone();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[16] = 9; // magic of the first batch
    std::fs::write(&seg, &bytes).unwrap();

    let log = reopen(dir.path(), &tp, small_segments());
    match log.read(0, 100) {
        Err(BrokerError::CorruptSegment { path, position, .. }) => {
            assert_eq!(path, seg);
            assert_eq!(position, 0);
        }
        other => panic!("expected CorruptSegment, got {other:?}"),
    }
}

#[test]
fn missing_or_garbage_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    let config = small_segments();
    let stored = {
        let log = reopen(dir.path(), &tp, config.clone());
        fill(&*log, 60)
    };
    let pdir = dir.path().join(tp.to_string());
    let indexes = segment_files(&pdir, "index");
    let time_indexes = segment_files(&pdir, "timeindex");
    assert!(indexes.len() >= 4);
    let healthy: Vec<Vec<u8>> = indexes.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let healthy_time: Vec<Vec<u8>> = time_indexes
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    std::fs::remove_file(&indexes[0]).unwrap();
    std::fs::write(&indexes[1], b"\x00\x00\x00\x05\xff\xff\xff\xf0").unwrap(); // past the end
    std::fs::write(&indexes[2], b"garbage").unwrap(); // not a whole entry
    std::fs::remove_file(&time_indexes[1]).unwrap();
    std::fs::write(&time_indexes[2], [0u8; 24]).unwrap(); // not increasing
    let last = indexes.len() - 1;
    std::fs::remove_file(&indexes[last]).unwrap();

    let log = reopen(dir.path(), &tp, config);
    assert_bytes(&read_all(&*log), &stored.concat(), "log after restart");
    for (i, p) in indexes.iter().enumerate() {
        assert_eq!(std::fs::read(p).unwrap(), healthy[i], "{}", p.display());
    }
    for (i, p) in time_indexes.iter().enumerate().take(last) {
        assert_eq!(
            std::fs::read(p).unwrap(),
            healthy_time[i],
            "{}",
            p.display()
        );
    }
    // Every offset still reads back the batch containing it.
    for offset in 0..log.log_end_offset() {
        let got = split(&log.read(offset, 1).unwrap());
        assert!(got[0].0.base_offset <= offset && offset <= got[0].0.last_offset());
    }
    for ts in 999..1_051 {
        let want = stored
            .iter()
            .map(|b| split(b)[0].0)
            .find(|h| h.max_timestamp >= ts)
            .map(|h| (h.base_offset, h.max_timestamp));
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), want, "ts {ts}");
    }
}

#[test]
fn rolling_spreads_batches_over_segments() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    let st = storage(dir.path());
    let log = st.open_log(&tp, small_segments()).unwrap();
    let stored = fill(&*log, 50);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 5, "{bases:?}");
    let files: Vec<_> = segment_files(log.dir(), "log");
    assert_eq!(files.len(), bases.len());
    for (f, base) in files.iter().zip(&bases) {
        assert_eq!(
            f.file_name().unwrap().to_str().unwrap(),
            format!("{base:020}.log")
        );
        assert!(std::fs::metadata(f).unwrap().len() <= 2000 || bases.len() == 1);
    }
    // A read from one segment continues into the next up to max_bytes.
    let all = stored.concat();
    assert_bytes(
        &log.read(0, all.len()).unwrap(),
        &all,
        "read across segments",
    );
    let starts: Vec<i64> = stored.iter().map(|b| split(b)[0].0.base_offset).collect();
    for base in &bases[1..] {
        assert!(starts.contains(base), "segments start at a batch");
        let got = split(&log.read(*base - 1, 1).unwrap());
        assert!(got[0].0.last_offset() == *base - 1);
    }
}

#[test]
fn idle_segment_rolls_by_segment_ms_and_ages_out() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    let st = storage(dir.path());
    let config = LogConfig {
        segment_ms: 60_000,
        retention_ms: 120_000,
        ..LogConfig::default()
    };
    let log = st.open_log(&tp, config).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    append(&*log, &batch(4, now, 100));
    assert_eq!(log.enforce_retention(now + 1_000).unwrap(), 0);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.enforce_retention(now + 61_000).unwrap(), 0);
    assert_eq!(log.segment_count(), 2, "rolled by segment.ms");
    assert_eq!(log.enforce_retention(now + 121_000).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.segment_base_offsets(), vec![4]);
    assert_eq!(append(&*log, &batch(1, now, 1)).0.base_offset, 4);
}

#[test]
fn log_start_offset_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    let config = LogConfig {
        retention_ms: -1,
        ..small_segments()
    };
    let (stored, files_before) = {
        let st = storage(dir.path());
        let log = st.open_log(&tp, config.clone()).unwrap();
        let stored = fill(&*log, 60);
        let files_before = log.segment_count();
        // Retention by size first, then DeleteRecords into the middle of a segment.
        log.update_config(LogConfig {
            retention_bytes: (log.size_bytes() / 2) as i64,
            ..config.clone()
        });
        let deleted = log.enforce_retention(0).unwrap();
        assert!(deleted > 0);
        assert_eq!(log.segment_count(), files_before - deleted);
        (stored, files_before)
    };
    let st = storage(dir.path());
    let log = st.open_log(&tp, config.clone()).unwrap();
    let start = log.log_start_offset();
    assert!(start > 0);
    assert_eq!(log.segment_base_offsets()[0], start);
    assert!(log.segment_count() < files_before);
    assert!(matches!(
        log.read(start - 1, 10),
        Err(BrokerError::OffsetOutOfRange { .. })
    ));
    let target = start + (log.log_end_offset() - start) / 2 + 1;
    log.delete_records_before(target).unwrap();
    drop(log);
    drop(st);

    let st = storage(dir.path());
    let log = st.open_log(&tp, config).unwrap();
    assert_eq!(log.log_start_offset(), target);
    assert!(matches!(
        log.read(target - 1, 10),
        Err(BrokerError::OffsetOutOfRange { .. })
    ));
    let got = split(&log.read(target, usize::MAX).unwrap());
    assert!(got[0].0.base_offset <= target && target <= got[0].0.last_offset());
    let tail: Vec<u8> = got.iter().flat_map(|(_, b)| b.clone()).collect();
    let all = stored.concat();
    assert_bytes(&tail, &all[all.len() - tail.len()..], "tail after restart");
    // Segments wholly below the start offset are gone from disk too.
    for base in log.segment_base_offsets().windows(2) {
        assert!(base[1] > target);
    }
}

#[test]
fn partitions_are_found_on_disk_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let a = TopicPartition::new("my-dashed-topic", 3);
    let b = TopicPartition::new("plain", 0);
    {
        let st = storage(dir.path());
        append(
            &*st.open(&a, LogConfig::default()).unwrap(),
            &batch(1, 1, 1),
        );
        st.open(&b, LogConfig::default()).unwrap();
    }
    std::fs::create_dir(dir.path().join("not a partition")).unwrap();
    // A removal interrupted after its rename: cleaned up on open.
    let leftover = dir.path().join("gone-topic-0.1700000000000-delete");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("00000000000000000000.log"), b"x").unwrap();
    std::fs::write(dir.path().join("stray-file-1"), b"x").unwrap();
    let st = storage(dir.path());
    assert!(!leftover.exists());
    assert_eq!(st.partitions().unwrap(), vec![a.clone(), b.clone()]);
    let log = st.open(&a, LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 1);
    st.remove(&a).unwrap();
    assert_eq!(st.partitions().unwrap(), vec![b]);
    assert!(!dir.path().join("my-dashed-topic-3").exists());
    let mut v = batch(1, 1, 1);
    let h = spate_broker::record_batch::BatchHeader::parse(&v).unwrap();
    assert!(
        log.append(&mut v, &h).is_err(),
        "appends to a removed log fail"
    );
    assert!(matches!(
        st.open(&TopicPartition::new("..", 0), LogConfig::default()),
        Err(BrokerError::InvalidTopicName { .. })
    ));
}

#[test]
fn flush_policies_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    let config = LogConfig {
        flush_messages: 3,
        flush_ms: 10,
        retention_ms: -1,
        ..small_segments()
    };
    let stored = {
        let log = reopen(dir.path(), &tp, config.clone());
        let stored = fill(&*log, 20);
        log.flush().unwrap();
        log.enforce_retention(i64::MAX / 4).unwrap();
        stored
    };
    let log = reopen(dir.path(), &tp, config);
    assert_bytes(&read_all(&*log), &stored.concat(), "log after flushes");
}

#[test]
fn clean_close_is_trusted_once() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    let pdir = dir.path().join(tp.to_string());
    let mut stored = {
        let st = storage(dir.path());
        let log = st.open_log(&tp, small_segments()).unwrap();
        let stored = fill(&*log, 30);
        st.close().unwrap();
        assert!(pdir.join("clean-shutdown").exists());
        let mut v = batch(1, 1, 1);
        let h = spate_broker::record_batch::BatchHeader::parse(&v).unwrap();
        assert!(log.append(&mut v, &h).is_err(), "appends after close fail");
        stored
    };
    let end = {
        let log = reopen(dir.path(), &tp, small_segments());
        assert!(
            !pdir.join("clean-shutdown").exists(),
            "the marker is used once"
        );
        assert_bytes(&read_all(&*log), &stored.concat(), "after clean close");
        stored.push(append(&*log, &batch(2, 2_000, 30)).1);
        assert_eq!(log.offset_for_timestamp(1_500).unwrap().unwrap().1, 2_000);
        log.log_end_offset()
        // Dropped without close: an unclean shutdown.
    };
    let last = segment_files(&pdir, "log").pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let log = reopen(dir.path(), &tp, small_segments());
    assert_eq!(
        log.log_end_offset(),
        end - 2,
        "torn tail found without the marker"
    );
    stored.pop();
    assert_bytes(&read_all(&*log), &stored.concat(), "after unclean restart");
}

#[test]
fn reads_race_appends_rolls_and_deletions() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let st = storage(dir.path());
    let log = st
        .open(
            &unique_tp(),
            LogConfig {
                segment_bytes: 3000,
                index_interval_bytes: 200,
                ..LogConfig::default()
            },
        )
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let log = log.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !done.load(Ordering::Acquire) {
                    let (start, end) = (log.log_start_offset(), log.log_end_offset());
                    if end == start {
                        continue;
                    }
                    n += 1;
                    let offset = start + (n * 7 + r) as i64 % (end - start);
                    match log.read(offset, 2000) {
                        Ok(bytes) => {
                            let got = split(&bytes);
                            let first = &got[0].0;
                            assert!(first.base_offset <= offset && offset <= first.last_offset());
                        }
                        // Deleted between reading the bounds and the read: fine.
                        Err(BrokerError::OffsetOutOfRange { .. }) => {}
                        Err(e) => panic!("read({offset}): {e}"),
                    }
                    let _ = log.offset_for_timestamp(500).unwrap();
                }
                n
            })
        })
        .collect();
    for i in 0..600u64 {
        append(
            &*log,
            &batch(1 + (i % 4) as i32, i as i64, (i as usize * 31) % 500),
        );
        if i % 50 == 49 {
            log.delete_records_before(log.log_end_offset() - 40)
                .unwrap();
        }
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let remaining = split(&read_all(&*log));
    assert_eq!(
        remaining.last().unwrap().0.last_offset() + 1,
        log.log_end_offset()
    );
}

#[test]
fn wrong_middle_index_entry_falls_back_to_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let tp = unique_tp();
    let config = LogConfig {
        segment_bytes: 20_000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let stored = {
        let log = reopen(dir.path(), &tp, config.clone());
        fill(&*log, 80)
    };
    let pdir = dir.path().join(tp.to_string());
    let index = segment_files(&pdir, "index")[0].clone();
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(bytes.len() >= 3 * 8, "need a few entries");
    // Entry 0 points one byte into its batch: still increasing, so recovery keeps the file.
    let pos = u32::from_be_bytes(bytes[4..8].try_into().unwrap());
    bytes[4..8].copy_from_slice(&(pos + 1).to_be_bytes());
    // Entry 1 names the wrong offset (still between its neighbours' offsets only if there is
    // room; else leave it).
    let rel0 = u32::from_be_bytes(bytes[0..4].try_into().unwrap());
    let rel1 = u32::from_be_bytes(bytes[8..12].try_into().unwrap());
    if rel1 > rel0 + 1 {
        bytes[8..12].copy_from_slice(&(rel1 - 1).to_be_bytes());
    }
    std::fs::write(&index, &bytes).unwrap();

    let log = reopen(dir.path(), &tp, config);
    assert_eq!(
        std::fs::read(&index).unwrap(),
        bytes,
        "kept: only its last entry is checked"
    );
    for offset in 0..log.log_end_offset() {
        let got = split(&log.read(offset, 1).unwrap());
        assert!(got[0].0.base_offset <= offset && offset <= got[0].0.last_offset());
    }
    let mut n = 0;
    log.scan_headers(0, &mut |_| n += 1).unwrap();
    assert_eq!(n, stored.len());
    for ts in 999..1_051 {
        let want = stored
            .iter()
            .map(|b| split(b)[0].0)
            .find(|h| h.max_timestamp >= ts)
            .map(|h| (h.base_offset, h.max_timestamp));
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), want, "ts {ts}");
    }
}
