//! The transaction coordinator's log with arbitrary contents: opening it replays what it can
//! read and refuses or truncates the rest, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spate_broker::txn::log::TxnLog;

fuzz_target!(|data: &[u8]| {
    spate_fuzz::abort_on_panic();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("transactions.log"), data).expect("log");
    let _ = TxnLog::open(dir.path());
});
