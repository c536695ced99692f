//! Write-ahead log: round trips, torn tails, corruption, rolling, cleaning, concurrency.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spate_streaming::wal::{FsyncPolicy, WalConfig, WriteAheadLog};
use spate_streaming::StreamingError;

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

fn payload(i: usize) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat(i % 37)).into_bytes()
}

#[test]
fn append_read_and_replay_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let wal = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap();
    let handles: Vec<_> = (0..50)
        .map(|i| wal.append(1000 + i as i64, &payload(i)).unwrap())
        .collect();
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(wal.read(h).unwrap(), payload(i));
    }
    drop(wal);

    let wal = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap();
    let all = wal.read_all().unwrap();
    assert_eq!(all.len(), 50);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.payload, payload(i));
        assert_eq!(r.time_ms, 1000 + i as i64);
        assert_eq!(r.handle, handles[i]);
        assert_eq!(wal.read(&handles[i]).unwrap(), payload(i));
    }
    // A reopened log appends to a new segment, after the old records.
    let h = wal.append(5000, b"after restart").unwrap();
    assert!(h.segment > handles[0].segment);
    let all = wal.read_all().unwrap();
    assert_eq!(all.len(), 51);
    assert_eq!(all[50].payload, b"after restart");
}

#[test]
fn torn_tail_is_truncated_at_every_byte_of_the_last_record() {
    let src = tempfile::tempdir().unwrap();
    let wal = WriteAheadLog::open(src.path(), WalConfig::default()).unwrap();
    wal.append(1, b"first").unwrap();
    wal.append(2, b"second record").unwrap();
    let last = wal.append(3, b"the last record, to be torn").unwrap();
    drop(wal);
    let seg = segments(src.path()).pop().unwrap();
    let full = fs::read(&seg).unwrap();
    assert_eq!(full.len() as u64, last.offset + 16 + u64::from(last.length));

    for cut in last.offset as usize..full.len() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(seg.file_name().unwrap());
        fs::write(&path, &full[..cut]).unwrap();
        let wal = WriteAheadLog::open(dir.path(), WalConfig::default())
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let all = wal.read_all().unwrap();
        let payloads: Vec<&[u8]> = all.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(
            payloads,
            vec![&b"first"[..], b"second record"],
            "cut at {cut}"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            last.offset,
            "cut at {cut}"
        );
        wal.append(4, b"new").unwrap();
        assert_eq!(wal.read_all().unwrap().len(), 3);
    }
}

#[test]
fn flipped_bit_in_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let wal = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap();
    wal.append(1, b"keep me").unwrap();
    let last = wal.append(2, b"damaged").unwrap();
    drop(wal);
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 1;
    fs::write(&seg, &bytes).unwrap();
    let wal = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap();
    let all = wal.read_all().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(fs::metadata(&seg).unwrap().len(), last.offset);
}

#[test]
fn zero_filled_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let wal = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap();
    let h = wal.append(1, b"real").unwrap();
    drop(wal);
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let end = bytes.len() as u64;
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    fs::write(&seg, &bytes).unwrap();
    let wal = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap();
    assert_eq!(wal.read(&h).unwrap(), b"real");
    assert_eq!(wal.read_all().unwrap().len(), 1);
    assert_eq!(fs::metadata(&seg).unwrap().len(), end);
}

#[test]
fn corrupt_crc_in_the_middle_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let wal = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap();
    wal.append(1, b"one").unwrap();
    let middle = wal.append(2, b"two").unwrap();
    wal.append(3, b"three").unwrap();
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    bytes[middle.offset as usize + 16] ^= 0xff; // first payload byte of "two"
    fs::write(&seg, &bytes).unwrap();

    let expect_corrupt = |err: StreamingError| match err {
        StreamingError::WalCorrupt { path, offset, .. } => {
            assert_eq!(path, seg);
            assert_eq!(offset, middle.offset);
        }
        other => panic!("unexpected {other:?}"),
    };
    expect_corrupt(wal.read(&middle).unwrap_err());
    expect_corrupt(wal.read_all().unwrap_err());
    drop(wal);
    // Opening verifies the newest segment: acknowledged records after the damage must not be
    // silently dropped, so this is an error too.
    let err = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap_err();
    assert!(
        err.to_string().contains(&seg.display().to_string()),
        "{err}"
    );
    expect_corrupt(err);
}

#[test]
fn not_a_wal_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("log-00000000000000000000.wal"),
        b"PK\x03\x04 a zip file, really",
    )
    .unwrap();
    let err = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap_err();
    assert!(
        matches!(err, StreamingError::WalCorrupt { offset: 0, .. }),
        "{err}"
    );
}

#[test]
fn rolls_by_time_and_size_and_cleans_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        rolling_interval_ms: 1000,
        max_segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Never,
    };
    let wal = WriteAheadLog::open(dir.path(), config).unwrap();
    let times = [0i64, 500, 999, 1000, 1200, 2500];
    let handles: Vec<_> = times
        .iter()
        .map(|t| wal.append(*t, &t.to_le_bytes()).unwrap())
        .collect();
    let segs: Vec<u64> = handles.iter().map(|h| h.segment).collect();
    assert_eq!(segs[0], segs[1]);
    assert_eq!(segs[1], segs[2]);
    assert_ne!(segs[2], segs[3]);
    assert_eq!(segs[3], segs[4]);
    assert_ne!(segs[4], segs[5]);
    assert_eq!(wal.segment_count(), 3);

    // Nothing is entirely older than 999.
    assert_eq!(wal.clean(999).unwrap(), 0);
    assert_eq!(wal.clean(1000).unwrap(), 1);
    assert!(wal.read(&handles[0]).is_err());
    assert_eq!(wal.read(&handles[3]).unwrap(), 1000i64.to_le_bytes());
    // Cleaning past the active segment's records seals and deletes it too.
    assert_eq!(wal.clean(10_000).unwrap(), 2);
    assert!(wal.read_all().unwrap().is_empty());
    wal.append(20_000, b"still works").unwrap();
    assert_eq!(wal.read_all().unwrap().len(), 1);
    assert_eq!(segments(dir.path()).len(), 1);
}

#[test]
fn rolls_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        max_segment_bytes: 1000,
        fsync: FsyncPolicy::Never,
        ..WalConfig::default()
    };
    let wal = WriteAheadLog::open(dir.path(), config).unwrap();
    for i in 0..20 {
        wal.append(i, &[7u8; 184]).unwrap(); // 200-byte frames
    }
    // 16-byte header + 4 frames fit in 1000 bytes; the fifth rolls.
    assert_eq!(wal.segment_count(), 5);
    for s in segments(dir.path()) {
        assert!(fs::metadata(&s).unwrap().len() <= 1000);
    }
    // A record bigger than the limit still goes in (alone).
    wal.append(99, &[1u8; 4000]).unwrap();
    assert_eq!(wal.read_all().unwrap().len(), 21);
}

#[test]
fn concurrent_appends_are_all_readable_in_per_thread_order() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap());
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || {
                for i in 0..100u32 {
                    let mut p = vec![t];
                    p.extend_from_slice(&i.to_le_bytes());
                    let h = wal.append(i64::from(i), &p).unwrap();
                    assert_eq!(wal.read(&h).unwrap(), p);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let all = wal.read_all().unwrap();
    assert_eq!(all.len(), 400);
    for t in 0..4u8 {
        let seq: Vec<u32> = all
            .iter()
            .filter(|r| r.payload[0] == t)
            .map(|r| u32::from_le_bytes(r.payload[1..5].try_into().unwrap()))
            .collect();
        assert_eq!(seq, (0..100).collect::<Vec<_>>());
    }
}

#[test]
fn interval_policy_flushes_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        fsync: FsyncPolicy::Interval(std::time::Duration::from_secs(3600)),
        ..WalConfig::default()
    };
    let wal = WriteAheadLog::open(dir.path(), config.clone()).unwrap();
    for i in 0..10 {
        wal.append(i, b"batched").unwrap();
    }
    wal.flush().unwrap();
    drop(wal);
    let wal = WriteAheadLog::open(dir.path(), config).unwrap();
    assert_eq!(wal.read_all().unwrap().len(), 10);
}

#[test]
fn read_all_during_concurrent_appends_sees_a_clean_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        fsync: FsyncPolicy::Never,
        ..WalConfig::default()
    };
    let wal = Arc::new(WriteAheadLog::open(dir.path(), config).unwrap());
    let writer = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || {
            for i in 0..3000usize {
                wal.append(i as i64, &payload(i)).unwrap();
            }
        })
    };
    let mut last = 0;
    while !writer.is_finished() {
        let all = wal.read_all().unwrap();
        assert!(all.len() >= last);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.payload, payload(i));
        }
        last = all.len();
    }
    writer.join().unwrap();
    assert_eq!(wal.read_all().unwrap().len(), 3000);
}

#[test]
fn a_bogus_handle_is_a_clear_error_not_a_huge_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let wal = WriteAheadLog::open(dir.path(), WalConfig::default()).unwrap();
    let h = wal.append(1, b"payload").unwrap();
    for bad in [
        spate_streaming::wal::WalRecordHandle {
            length: u32::MAX,
            ..h
        },
        spate_streaming::wal::WalRecordHandle {
            offset: 1 << 40,
            ..h
        },
        spate_streaming::wal::WalRecordHandle { offset: 0, ..h },
        spate_streaming::wal::WalRecordHandle { length: 3, ..h },
    ] {
        let err = wal.read(&bad).unwrap_err();
        assert!(matches!(err, StreamingError::WalCorrupt { .. }), "{err}");
    }
    let missing = spate_streaming::wal::WalRecordHandle {
        segment: h.segment + 5,
        ..h
    };
    assert!(matches!(
        wal.read(&missing).unwrap_err(),
        StreamingError::WalIo { .. }
    ));
}
