//! WAL-backed block handling: every acknowledged block can be read back after a restart, and the
//! whole receiver path (supervisor → generator → WAL handler → tracker) recovers its data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use spate_streaming::receiver::{
    read_block_from_wal, Block, BlockGeneratorConfig, BlockGeneratorListener, BlockHandler,
    BlockStore, ReceivedBlockInfo, ReceivedBlockTracker, Receiver, ReceiverConfig, ReceiverContext,
    ReceiverError, ReceiverSupervisor, StreamBlockId, WalBlockHandler,
};
use spate_streaming::wal::WalConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    key: String,
    value: u64,
}

fn record(i: u64) -> Record {
    Record {
        key: format!("k{}", i % 13),
        value: i,
    }
}

#[test]
fn stored_blocks_are_readable_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut infos = Vec::new();
    {
        let store = Arc::new(BlockStore::new());
        let handler =
            WalBlockHandler::open(dir.path(), 4, Arc::clone(&store), WalConfig::default()).unwrap();
        for b in 0..20i64 {
            let items: Vec<Record> = (0..(b as u64 * 7)).map(record).collect();
            let block = Arc::new(Block::new(
                StreamBlockId {
                    stream_id: 4,
                    unique_id: 1000 + b * 200,
                },
                items,
            ));
            let info = handler.store_block(Arc::clone(&block)).unwrap();
            assert!(info.wal_handle.is_some());
            assert_eq!(store.get(&block.id).unwrap(), block);
            infos.push((info, block));
        }
    }
    assert!(dir.path().join("receivedData/4").is_dir());
    // Memory is gone; the log has everything.
    for (info, block) in &infos {
        let back: Block<Record> = read_block_from_wal(dir.path(), info).unwrap();
        assert_eq!(&back, block.as_ref());
    }
    let store = Arc::new(BlockStore::new());
    let handler: WalBlockHandler<Record> =
        WalBlockHandler::open(dir.path(), 4, store, WalConfig::default()).unwrap();
    assert_eq!(handler.read_all_blocks().unwrap().len(), 20);
    assert_eq!(handler.read_block(&infos[5].0).unwrap(), *infos[5].1);

    // Cleaning drops memory and log segments older than the threshold; a block info without a
    // WAL handle is a clear error.
    handler.cleanup_old_blocks(i64::MAX).unwrap();
    assert!(read_block_from_wal::<Record>(dir.path(), &infos[0].0).is_err());
    let no_wal = ReceivedBlockInfo {
        wal_handle: None,
        ..infos[0].0.clone()
    };
    let err = read_block_from_wal::<Record>(dir.path(), &no_wal).unwrap_err();
    assert!(err.to_string().contains("input-4-1000"), "{err}");
}

/// A receiver that emits `0..limit`, failing once at `fail_at` (to exercise restart).
struct Counter {
    next: Arc<AtomicU64>,
    limit: u64,
    fail_at: Option<u64>,
}

impl Receiver<Record, u64> for Counter {
    fn run(&mut self, ctx: &ReceiverContext<Record, u64>) -> Result<(), ReceiverError> {
        while !ctx.is_stopped() {
            let i = self.next.load(Ordering::SeqCst);
            if i >= self.limit {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            if self.fail_at == Some(i) {
                self.fail_at = None;
                return Err("simulated source failure".into());
            }
            ctx.store_with_metadata(record(i), i)?;
            self.next.store(i + 1, Ordering::SeqCst);
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }
}

/// Reliable-receiver bookkeeping: the highest offset per generated block, "committed" only once
/// the block is pushed (stored + tracked).
#[derive(Default)]
struct OffsetCommitter {
    pending: Mutex<Option<u64>>,
    per_block: Mutex<Vec<(StreamBlockId, u64)>>,
    committed: AtomicU64,
}

impl BlockGeneratorListener<Record, u64> for OffsetCommitter {
    fn on_add_data(&self, _item: &Record, offset: Option<&u64>) {
        *self.pending.lock() = offset.copied();
    }
    fn on_generate_block(&self, block_id: StreamBlockId) {
        if let Some(o) = *self.pending.lock() {
            self.per_block.lock().push((block_id, o));
        }
    }
    fn on_push_block(&self, block: &Block<Record>, _info: &ReceivedBlockInfo) {
        let per_block = self.per_block.lock();
        let (_, offset) = per_block
            .iter()
            .find(|(id, _)| *id == block.id)
            .copied()
            .expect("offsets snapshotted for every generated block");
        assert_eq!(block.items.last().map(|r| r.value), Some(offset));
        self.committed.store(offset + 1, Ordering::SeqCst);
    }
}

#[test]
fn receiver_pipeline_recovers_every_acknowledged_block_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let committed;
    {
        let store = Arc::new(BlockStore::new());
        let handler = Arc::new(
            WalBlockHandler::open(dir.path(), 0, Arc::clone(&store), WalConfig::default()).unwrap(),
        );
        let tracker =
            Arc::new(ReceivedBlockTracker::open([0], dir.path(), WalConfig::default()).unwrap());
        let committer = Arc::new(OffsetCommitter::default());
        let next = Arc::new(AtomicU64::new(0));
        let reporter_tracker = Arc::clone(&tracker);
        let supervisor = ReceiverSupervisor::builder(0, handler)
            .config(ReceiverConfig {
                block: BlockGeneratorConfig {
                    block_interval: Duration::from_millis(20),
                    block_queue_size: 4,
                    ..BlockGeneratorConfig::default()
                },
                restart_delay: Duration::from_millis(20),
                ..ReceiverConfig::default()
            })
            .listener(committer.clone())
            .reporter(Box::new(move |info| {
                reporter_tracker.add_block(info.clone())
            }))
            .start(Counter {
                next: Arc::clone(&next),
                limit: 3000,
                fail_at: Some(700),
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(150));
        tracker.allocate_blocks_to_batch(1_000).unwrap();
        while next.load(Ordering::SeqCst) < 3000 {
            std::thread::sleep(Duration::from_millis(10));
        }
        supervisor.stop();
        assert!(
            supervisor.restarts() >= 1,
            "the failure at 700 must restart the receiver"
        );
        assert!(supervisor
            .errors()
            .iter()
            .any(|e| e.contains("simulated source failure")));
        committed = committer.committed.load(Ordering::SeqCst);
        assert_eq!(committed, 3000, "stop must push every accepted record");
        // Driver "crash": everything in memory is dropped here.
    }

    let tracker = ReceivedBlockTracker::open([0], dir.path(), WalConfig::default()).unwrap();
    assert_eq!(tracker.allocated_batch_times(), vec![1_000]);
    tracker.allocate_blocks_to_batch(2_000).unwrap();
    let mut values = Vec::new();
    for t in [1_000, 2_000] {
        for info in tracker.get_blocks_of_batch_and_stream(t, 0) {
            let block: Block<Record> = read_block_from_wal(dir.path(), &info).unwrap();
            assert_eq!(block.items.len() as u64, info.num_records);
            values.extend(block.items.into_iter().map(|r| r.value));
        }
    }
    assert!(!tracker.get_blocks_of_batch_and_stream(1_000, 0).is_empty());
    assert_eq!(values, (0..committed).collect::<Vec<_>>());
}

/// A receiver that "polls" batches of records and stores each synchronously, committing only
/// after `store_block` returned (the simplest reliable receiver).
struct BatchPoller {
    next: u64,
    limit: u64,
    commits: Arc<Mutex<Vec<(u64, ReceivedBlockInfo)>>>,
}

impl Receiver<Record> for BatchPoller {
    fn run(&mut self, ctx: &ReceiverContext<Record>) -> Result<(), ReceiverError> {
        while !ctx.is_stopped() && self.next < self.limit {
            let polled: Vec<Record> = (self.next..(self.next + 37).min(self.limit))
                .map(record)
                .collect();
            let n = polled.len() as u64;
            let info = ctx.store_block(polled)?;
            self.next += n;
            self.commits.lock().push((self.next, info));
        }
        Ok(())
    }
}

#[test]
fn synchronous_store_block_is_durable_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(BlockStore::new());
    let handler = Arc::new(
        WalBlockHandler::open(dir.path(), 9, Arc::clone(&store), WalConfig::default()).unwrap(),
    );
    let tracker =
        Arc::new(ReceivedBlockTracker::open([9], dir.path(), WalConfig::default()).unwrap());
    let reporter = Arc::clone(&tracker);
    let commits = Arc::new(Mutex::new(Vec::new()));
    let supervisor = ReceiverSupervisor::builder(9, handler)
        .reporter(Box::new(move |info| reporter.add_block(info.clone())))
        .start(BatchPoller {
            next: 0,
            limit: 1000,
            commits: Arc::clone(&commits),
        })
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !supervisor.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "receiver did not finish"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    supervisor.stop();
    let stats = supervisor.stats();
    assert_eq!(stats.records_added, 1000);
    assert_eq!(stats.records_pushed, 1000);
    assert_eq!(stats.blocks_pushed, 28); // ceil(1000 / 37)
    assert_eq!(stats.push_failures, 0);

    let commits = commits.lock().clone();
    assert_eq!(commits.last().map(|(c, _)| *c), Some(1000));
    let mut expected = 0;
    let mut last_id = None;
    for (committed, info) in &commits {
        let block: Block<Record> = read_block_from_wal(dir.path(), info).unwrap();
        assert_eq!(block.items.first().map(|r| r.value), Some(expected));
        expected = *committed;
        assert_eq!(block.items.last().map(|r| r.value + 1), Some(expected));
        assert!(Some(info.block_id) > last_id, "block ids must increase");
        last_id = Some(info.block_id);
    }
    assert_eq!(tracker.unallocated_blocks(9).len(), 28);
}
