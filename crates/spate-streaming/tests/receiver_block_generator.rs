//! Block generator: blocks cut by interval, listener hooks, backpressure from a full queue, rate
//! limit, clean stop that drains everything.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use spate_streaming::rate::RateLimiter;
use spate_streaming::receiver::{
    Block, BlockGenerator, BlockGeneratorConfig, BlockGeneratorListener, BlockHandler, BlockStore,
    GeneratorState, InMemoryBlockHandler, ReceivedBlockInfo, StreamBlockId,
};
use spate_streaming::Result;

#[derive(Default)]
struct Recorder {
    added: AtomicUsize,
    generated: Mutex<Vec<StreamBlockId>>,
    pushed: Mutex<Vec<(StreamBlockId, Vec<u64>)>>,
}

impl BlockGeneratorListener<u64> for Recorder {
    fn on_add_data(&self, _item: &u64, _metadata: Option<&()>) {
        self.added.fetch_add(1, Ordering::SeqCst);
    }
    fn on_generate_block(&self, block_id: StreamBlockId) {
        self.generated.lock().push(block_id);
    }
    fn on_push_block(&self, block: &Block<u64>, info: &ReceivedBlockInfo) {
        assert_eq!(info.num_records as usize, block.items.len());
        self.pushed.lock().push((block.id, block.items.clone()));
    }
}

fn config(interval_ms: u64, queue: usize) -> BlockGeneratorConfig {
    BlockGeneratorConfig {
        block_interval: Duration::from_millis(interval_ms),
        block_queue_size: queue,
        ..BlockGeneratorConfig::default()
    }
}

#[test]
fn blocks_are_cut_every_interval_and_stop_drains() {
    let store = Arc::new(BlockStore::new());
    let recorder = Arc::new(Recorder::default());
    let reported = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reported);
    let generator: BlockGenerator<u64> =
        BlockGenerator::builder(7, Arc::new(InMemoryBlockHandler::new(Arc::clone(&store))))
            .config(config(50, 10))
            .listener(recorder.clone())
            .reporter(Box::new(move |info: &ReceivedBlockInfo| {
                sink.lock().push(info.block_id);
                Ok(())
            }))
            .build();
    assert_eq!(generator.state(), GeneratorState::Initialized);
    assert!(
        generator.add_data(0).is_err(),
        "must not accept data before start"
    );
    generator.start().unwrap();
    assert_eq!(generator.state(), GeneratorState::Active);

    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(400) {
        generator.add_data(n).unwrap();
        n += 1;
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    generator.add_multiple_data((n..n + 5).collect()).unwrap();
    n += 5;
    generator.stop();
    assert_eq!(generator.state(), GeneratorState::StoppedAll);
    assert!(
        generator.add_data(1).is_err(),
        "must not accept data after stop"
    );

    let pushed = recorder.pushed.lock().clone();
    // ~400 ms at 50 ms per block: several blocks, not one.
    assert!(pushed.len() >= 4, "only {} blocks", pushed.len());
    // Every record, once, in order.
    let all: Vec<u64> = pushed.iter().flat_map(|(_, items)| items.clone()).collect();
    assert_eq!(all, (0..n).collect::<Vec<_>>());
    assert_eq!(recorder.added.load(Ordering::SeqCst) as u64, n);
    // Hooks saw the same blocks in the same order; ids increase; ids are on the interval grid
    // except the last (cut by stop).
    let ids: Vec<StreamBlockId> = pushed.iter().map(|(id, _)| *id).collect();
    assert_eq!(*recorder.generated.lock(), ids);
    assert_eq!(*reported.lock(), ids);
    assert!(ids.windows(2).all(|w| w[0].unique_id < w[1].unique_id));
    assert!(ids.iter().all(|id| id.stream_id == 7));
    for id in &ids[..ids.len() - 1] {
        assert_eq!(id.unique_id % 50, 0, "{id} not on the 50 ms grid");
    }
    assert_eq!(store.len(), ids.len());
    assert_eq!(ids[0].to_string(), format!("input-7-{}", ids[0].unique_id));
}

/// A handler that blocks until released, to fill the queue.
struct GateHandler {
    open: Arc<AtomicBool>,
    stored: AtomicUsize,
}

impl BlockHandler<u64> for GateHandler {
    fn store_block(&self, block: Arc<Block<u64>>) -> Result<ReceivedBlockInfo> {
        while !self.open.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.stored.fetch_add(block.items.len(), Ordering::SeqCst);
        Ok(ReceivedBlockInfo {
            block_id: block.id,
            num_records: block.items.len() as u64,
            wal_handle: None,
        })
    }
    fn cleanup_old_blocks(&self, _threshold_time_ms: i64) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_block_queue_blocks_store() {
    let open = Arc::new(AtomicBool::new(false));
    let handler = Arc::new(GateHandler {
        open: Arc::clone(&open),
        stored: AtomicUsize::new(0),
    });
    let generator: Arc<BlockGenerator<u64>> = Arc::new(
        BlockGenerator::builder(1, handler.clone())
            .config(config(10, 2))
            .build(),
    );
    generator.start().unwrap();
    let added = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (generator, added) = (Arc::clone(&generator), Arc::clone(&added));
        std::thread::spawn(move || {
            for i in 0..u64::MAX {
                if generator.add_data(i).is_err() {
                    break;
                }
                added.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    // The pusher holds one block, the queue two more, the timer a fourth: then adds stall.
    std::thread::sleep(Duration::from_millis(300));
    let stalled_at = added.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    let later = added.load(Ordering::SeqCst);
    assert!(stalled_at > 0);
    assert!(
        later - stalled_at <= 1,
        "store kept going while the queue was full: {stalled_at} → {later}"
    );
    assert_eq!(handler.stored.load(Ordering::SeqCst), 0);

    // Release the handler: data flows again.
    open.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    assert!(added.load(Ordering::SeqCst) > later + 10);
    generator.stop();
    producer.join().unwrap();
    assert_eq!(
        handler.stored.load(Ordering::SeqCst),
        added.load(Ordering::SeqCst)
    );
}

#[test]
fn rate_limit_is_honoured() {
    let store = Arc::new(BlockStore::new());
    let limiter = Arc::new(RateLimiter::new(Some(500.0), None));
    let generator: BlockGenerator<u64> =
        BlockGenerator::builder(2, Arc::new(InMemoryBlockHandler::new(Arc::clone(&store))))
            .config(config(50, 10))
            .rate_limiter(limiter)
            .build();
    generator.start().unwrap();
    let start = Instant::now();
    for i in 0..250 {
        generator.add_data(i).unwrap();
    }
    let elapsed = start.elapsed();
    generator.stop();
    // 250 records at 500/s ≈ 0.5 s.
    assert!(
        elapsed >= Duration::from_millis(470),
        "too fast: {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_millis(3000),
        "too slow: {elapsed:?}"
    );
    let total: usize = store
        .block_ids()
        .iter()
        .filter_map(|id| store.get(id))
        .map(|b| b.items.len())
        .sum();
    assert_eq!(total, 250);

    // Backpressure lowers it on the fly.
    generator.rate_limiter().update_rate(1.0);
    assert_eq!(generator.rate_limiter().current_rate(), 1.0);
}

#[test]
fn stop_before_start_and_double_stop_are_fine() {
    let store = Arc::new(BlockStore::<u64>::new());
    let generator: BlockGenerator<u64> =
        BlockGenerator::builder(3, Arc::new(InMemoryBlockHandler::new(store))).build();
    generator.stop();
    assert_eq!(generator.state(), GeneratorState::StoppedAll);
    assert!(generator.start().is_err());
    generator.stop();
}
