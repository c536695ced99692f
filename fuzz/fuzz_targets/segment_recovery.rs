//! A partition's first log segment with arbitrary contents, as a broker finds it after a crash:
//! recovery truncates what it cannot read, and everything it keeps can be read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spate_broker::storage::disk::{DiskOptions, DiskStorage};
use spate_broker::{LogConfig, LogStorage, TopicPartition};

fuzz_target!(|data: &[u8]| {
    spate_fuzz::abort_on_panic();
    let dir = tempfile::tempdir().expect("temp dir");
    let tp = TopicPartition::new("fuzz", 0);
    let partition = dir.path().join(tp.to_string());
    std::fs::create_dir_all(&partition).expect("partition dir");
    std::fs::write(partition.join("00000000000000000000.log"), data).expect("segment");
    let storage = DiskStorage::open(dir.path(), DiskOptions::default()).expect("storage");
    let Ok(log) = storage.open(&tp, LogConfig::default()) else {
        return;
    };
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        match log.read(offset, 1 << 20) {
            Ok(bytes) if !bytes.is_empty() => {
                let _ = log.scan_headers(offset, &mut |h| offset = offset.max(h.last_offset() + 1));
            }
            _ => break,
        }
    }
});
