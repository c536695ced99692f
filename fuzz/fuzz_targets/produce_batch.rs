//! A produced record batch as the broker validates it before storing it (CRC, header, every
//! record, bounded decompression of each codec): any input is accepted or refused with an
//! error, never a panic, and a compressed bomb never expands past the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spate_broker::validate::{validate_produce_batch, ProduceRules};
use spate_broker::LogConfig;

fuzz_target!(|data: &[u8]| {
    spate_fuzz::abort_on_panic();
    let mut batch = data.to_vec();
    for (compacted, version) in [(false, 9), (true, 3)] {
        let mut rules = ProduceRules::new(&LogConfig::default(), version);
        rules.compacted = compacted;
        let _ = validate_produce_batch(&mut batch, &rules);
    }
});
