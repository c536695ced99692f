//! The group coordinator's offsets log with arbitrary contents: opening it replays what it can
//! read and refuses or truncates the rest, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spate_broker::group::offsets_log::OffsetsLog;

fuzz_target!(|data: &[u8]| {
    spate_fuzz::abort_on_panic();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("offsets.log"), data).expect("log");
    let _ = OffsetsLog::open(dir.path());
});
