//! A receiver write-ahead-log segment with arbitrary contents: opening the log and reading it
//! back keeps what is intact and reports the rest, never panics; every record read back is also
//! decoded as a block payload (the first, postcard format, and the versioned prefix check).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spate_streaming::receiver::decode_block_payload;
use spate_streaming::wal::{WalConfig, WriteAheadLog};

fuzz_target!(|data: &[u8]| {
    spate_fuzz::abort_on_panic();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(format!("log-{:020}.wal", 0)), data).expect("segment");
    if let Ok(wal) = WriteAheadLog::open(dir.path(), WalConfig::default()) {
        if let Ok(records) = wal.read_all() {
            for r in records {
                let _ = decode_block_payload::<Vec<u8>>(&r.payload, None);
            }
        }
    }
});
