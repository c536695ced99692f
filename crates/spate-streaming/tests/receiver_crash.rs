//! SIGKILL test of the reliable-receiver contract: a child process runs a receiver with the
//! write-ahead-log block handler and the block tracker, and "commits" source offsets (prints them
//! to the parent) only in `on_push_block`. After killing it at random moments, every committed
//! offset's record must be in the receiver log, every tracked block must be readable, and a
//! restart from the committed offset loses nothing (at-least-once).
//!
//! The child is this test binary re-invoked with environment variables.

use spate_testkit::ChildJob;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spate_streaming::receiver::{
    read_block_from_wal, Block, BlockGeneratorConfig, BlockGeneratorListener, BlockStore,
    ReceivedBlockInfo, ReceivedBlockTracker, Receiver, ReceiverConfig, ReceiverContext,
    ReceiverError, ReceiverSupervisor, StreamBlockId, WalBlockHandler,
};
use spate_streaming::wal::WalConfig;

const ENV_DIR: &str = "SPATE_RECEIVER_CRASH_CHILD_DIR";
const ENV_START: &str = "SPATE_RECEIVER_CRASH_CHILD_START";

struct Source {
    next: u64,
}

impl Receiver<u64, u64> for Source {
    fn run(&mut self, ctx: &ReceiverContext<u64, u64>) -> Result<(), ReceiverError> {
        while !ctx.is_stopped() {
            ctx.store_with_metadata(self.next, self.next)?;
            self.next += 1;
            if self.next % 64 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Committer {
    last_added: Mutex<Option<u64>>,
    per_block: Mutex<Vec<(StreamBlockId, u64)>>,
}

impl BlockGeneratorListener<u64, u64> for Committer {
    fn on_add_data(&self, _item: &u64, offset: Option<&u64>) {
        *self.last_added.lock() = offset.copied();
    }
    fn on_generate_block(&self, block_id: StreamBlockId) {
        if let Some(o) = *self.last_added.lock() {
            self.per_block.lock().push((block_id, o));
        }
    }
    fn on_push_block(&self, block: &Block<u64>, _info: &ReceivedBlockInfo) {
        let offset = self
            .per_block
            .lock()
            .iter()
            .find(|(id, _)| *id == block.id)
            .map(|(_, o)| *o);
        if let Some(o) = offset {
            // The "offset commit": next offset to read.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", o + 1);
            let _ = out.flush();
        }
    }
}

#[test]
fn child_entry() {
    let (Ok(dir), Ok(start)) = (std::env::var(ENV_DIR), std::env::var(ENV_START)) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let start: u64 = start.parse().expect("start");
    let store = Arc::new(BlockStore::new());
    let handler = Arc::new(
        WalBlockHandler::open(&dir, 0, store, WalConfig::default()).expect("receiver wal"),
    );
    let tracker =
        Arc::new(ReceivedBlockTracker::open([0], &dir, WalConfig::default()).expect("tracker"));
    let reporter = Arc::clone(&tracker);
    let supervisor = ReceiverSupervisor::builder(0, handler)
        .config(ReceiverConfig {
            block: BlockGeneratorConfig {
                block_interval: Duration::from_millis(5),
                block_queue_size: 10,
                ..BlockGeneratorConfig::default()
            },
            ..ReceiverConfig::default()
        })
        .listener(Arc::new(Committer::default()))
        .reporter(Box::new(move |info| reporter.add_block(info.clone())))
        .start(Source { next: start })
        .expect("start");
    for _ in 0..2000 {
        std::thread::sleep(Duration::from_millis(10));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        tracker
            .allocate_blocks_to_batch(now_ms / 10 * 10)
            .expect("allocate");
    }
    supervisor.stop();
}

#[test]
fn committed_offsets_never_outrun_durable_blocks_under_sigkill() {
    if std::env::var(ENV_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut committed = 0u64;
    for round in 0..8 {
        let printed = ChildJob::test_entry("child_entry")
            .env(ENV_DIR, dir.path())
            .env(ENV_START, committed.to_string())
            .capture_stdout()
            .discard_stderr()
            .spawn()
            .kill_after_progress(Duration::from_millis(100));
        if let Some(c) = printed.iter().map(|&c| c as u64).max() {
            assert!(c >= committed, "round {round}: commits went backwards");
            committed = c;
        }

        // Everything up to the committed offset is in the receiver log.
        let handler: WalBlockHandler<u64> = WalBlockHandler::open(
            dir.path(),
            0,
            Arc::new(BlockStore::new()),
            WalConfig::default(),
        )
        .unwrap_or_else(|e| panic!("round {round}: reopening the receiver log failed: {e}"));
        let durable: BTreeSet<u64> = handler
            .read_all_blocks()
            .unwrap()
            .into_iter()
            .flat_map(|b| b.items)
            .collect();
        let lost: Vec<u64> = (0..committed)
            .filter(|o| !durable.contains(o))
            .take(5)
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: committed but not durable: {lost:?}"
        );

        // The tracker recovers, and every block it knows of is readable.
        let tracker = ReceivedBlockTracker::open([0], dir.path(), WalConfig::default())
            .unwrap_or_else(|e| panic!("round {round}: tracker recovery failed: {e}"));
        let mut infos = tracker.unallocated_blocks(0);
        for t in tracker.allocated_batch_times() {
            infos.extend(tracker.get_blocks_of_batch_and_stream(t, 0));
        }
        for info in &infos {
            let block: Block<u64> = read_block_from_wal(dir.path(), info)
                .unwrap_or_else(|e| panic!("round {round}: tracked block unreadable: {e}"));
            assert_eq!(block.items.len() as u64, info.num_records);
        }
    }
    assert!(committed > 0, "the child never committed anything");
    eprintln!("committed offset {committed}, all durable");
}
