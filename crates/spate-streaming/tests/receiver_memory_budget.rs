//! The block generator's memory budget: `add_data` waits while the records in the buffer, the
//! queue and the stored blocks fill it, blocks are cut early at the block size cap, and a
//! dropped block returns its bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spate_streaming::receiver::{
    BlockGenerator, BlockGeneratorConfig, BlockStore, InMemoryBlockHandler,
};

fn weight(_: &u64) -> usize {
    100
}

#[test]
fn add_data_waits_while_the_budget_is_spent_and_resumes_when_blocks_are_dropped() {
    let store = Arc::new(BlockStore::new());
    let generator: Arc<BlockGenerator<u64>> = Arc::new(
        BlockGenerator::builder(0, Arc::new(InMemoryBlockHandler::new(Arc::clone(&store))))
            .config(BlockGeneratorConfig {
                block_interval: Duration::from_secs(60),
                max_buffered_bytes: Some(10_000),
                max_block_bytes: Some(2_000),
                ..BlockGeneratorConfig::default()
            })
            .weigher(weight)
            .build(),
    );
    generator.start().unwrap();
    let added = Arc::new(AtomicU64::new(0));
    let adder = {
        let (generator, added) = (Arc::clone(&generator), Arc::clone(&added));
        std::thread::spawn(move || {
            for i in 0..1_000u64 {
                if generator.add_data(i).is_err() {
                    return;
                }
                added.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let stalled = added.load(Ordering::SeqCst);
    assert_eq!(stalled, 100, "10,000 bytes hold 100 records of 100 bytes");
    let budget = generator.memory_budget().unwrap();
    assert_eq!(budget.used(), 10_000);
    // Blocks were cut at 2,000 bytes (20 records) although the interval is a minute.
    assert_eq!(store.len(), 5);
    assert!(store
        .block_ids()
        .iter()
        .all(|id| store.get(id).unwrap().items.len() == 20));

    for id in store.block_ids() {
        let _ = store.remove(&id); // a completed batch releases its blocks
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(added.load(Ordering::SeqCst) >= 200, "adding resumed");
    assert!(budget.used() <= 10_000);

    // Stopping wakes a waiting adder (it fails) instead of hanging.
    generator.stop();
    adder.join().unwrap();
}
