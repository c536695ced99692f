//! Request frames of every API and version the broker serves, with fuzzed bodies, sent to a
//! running broker over a socket: decoding, routing and every handler must answer, refuse or
//! close the connection — never panic. Byte 0 picks the API, byte 1 the version.
#![no_main]

use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use spate_fuzz::{abort_on_panic, BrokerUnderTest};

static BROKER: Mutex<Option<BrokerUnderTest>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    abort_on_panic();
    let mut broker = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    broker.get_or_insert_with(BrokerUnderTest::start).send(data);
});
