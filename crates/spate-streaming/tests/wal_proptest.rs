//! Property: whatever prefix of a segment survives a crash, reopening the log yields exactly the
//! records that were completely written before the cut, in order, and the log stays appendable.

use std::fs;

use proptest::prelude::*;
use spate_streaming::wal::{FsyncPolicy, WalConfig, WriteAheadLog};

fn config() -> WalConfig {
    WalConfig {
        fsync: FsyncPolicy::Never,
        ..WalConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_cut_recovers_the_complete_prefix(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..20),
        cut_fraction in 0.0f64..=1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut ends = Vec::new();
        {
            let wal = WriteAheadLog::open(dir.path(), config()).unwrap();
            for (i, p) in payloads.iter().enumerate() {
                let h = wal.append(i as i64, p).unwrap();
                ends.push(h.offset + 16 + u64::from(h.length));
            }
        }
        let seg = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let bytes = fs::read(&seg).unwrap();
        let header = 16u64;
        let cut = header + ((bytes.len() as u64 - header) as f64 * cut_fraction) as u64;
        fs::write(&seg, &bytes[..cut as usize]).unwrap();

        let wal = WriteAheadLog::open(dir.path(), config()).unwrap();
        let got: Vec<Vec<u8>> = wal.read_all().unwrap().into_iter().map(|r| r.payload).collect();
        let complete = ends.iter().filter(|e| **e <= cut).count();
        prop_assert_eq!(&got[..], &payloads[..complete]);
        wal.append(99, b"after").unwrap();
        prop_assert_eq!(wal.read_all().unwrap().len(), complete + 1);
    }
}
