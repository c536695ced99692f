//! ReceiverSupervisor: restart with backoff, explicit restart requests, giving up, finishing,
//! storage failures turning into restarts.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_streaming::receiver::{
    Block, BlockGeneratorConfig, BlockHandler, BlockStore, InMemoryBlockHandler, ReceivedBlockInfo,
    Receiver, ReceiverConfig, ReceiverContext, ReceiverError, ReceiverSupervisor,
};
use spate_streaming::{Result, StreamingError};
use spate_testkit::wait_until;

fn fast_config(max_restarts: Option<u32>) -> ReceiverConfig {
    ReceiverConfig {
        block: BlockGeneratorConfig {
            block_interval: Duration::from_millis(10),
            block_queue_size: 10,
            ..BlockGeneratorConfig::default()
        },
        restart_delay: Duration::from_millis(10),
        max_restart_delay: Duration::from_millis(40),
        max_restarts,
    }
}

/// How long a test waits for the supervisor: its delays here are tens of milliseconds.
const WAIT: Duration = Duration::from_secs(5);

struct AlwaysFails {
    runs: Arc<AtomicU32>,
    stops: Arc<AtomicU32>,
}

impl Receiver<u32> for AlwaysFails {
    fn run(&mut self, ctx: &ReceiverContext<u32>) -> std::result::Result<(), ReceiverError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        ctx.store(n)?;
        Err(format!("broken source, run {n}").into())
    }
    fn on_stop(&mut self) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn failing_receiver_is_restarted_then_given_up() {
    let store = Arc::new(BlockStore::new());
    let runs = Arc::new(AtomicU32::new(0));
    let stops = Arc::new(AtomicU32::new(0));
    let supervisor =
        ReceiverSupervisor::builder(1, Arc::new(InMemoryBlockHandler::new(Arc::clone(&store))))
            .config(fast_config(Some(3)))
            .start(AlwaysFails {
                runs: Arc::clone(&runs),
                stops: Arc::clone(&stops),
            })
            .unwrap();
    wait_until("the supervisor to give up", WAIT, || {
        supervisor.is_finished()
    });
    // 1 initial run + 3 restarts, then it gives up.
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    assert_eq!(stops.load(Ordering::SeqCst), 4);
    assert_eq!(supervisor.restarts(), 3);
    let errors = supervisor.errors();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors[3].contains("broken source, run 3"));
    supervisor.stop();
    // Records stored before each failure were kept.
    let total: usize = store
        .block_ids()
        .iter()
        .map(|id| store.get(id).map_or(0, |b| b.items.len()))
        .sum();
    assert_eq!(total, 4);
}

struct RestartsOnce {
    runs: Arc<AtomicU32>,
}

impl Receiver<u32> for RestartsOnce {
    fn run(&mut self, ctx: &ReceiverContext<u32>) -> std::result::Result<(), ReceiverError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            ctx.report_error("lost connection");
            ctx.restart("reconnecting");
            assert!(ctx.is_stopped(), "a restart request must end run()");
            return Ok(());
        }
        while !ctx.is_stopped() {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

#[test]
fn restart_request_reruns_and_stop_ends_it() {
    let runs = Arc::new(AtomicU32::new(0));
    let supervisor = ReceiverSupervisor::builder(
        2,
        Arc::new(InMemoryBlockHandler::new(Arc::new(BlockStore::new()))),
    )
    .config(fast_config(None))
    .start(RestartsOnce {
        runs: Arc::clone(&runs),
    })
    .unwrap();
    wait_until("the restart", WAIT, || runs.load(Ordering::SeqCst) == 2);
    assert!(!supervisor.is_finished());
    supervisor.stop();
    assert!(supervisor.is_finished());
    assert_eq!(supervisor.restarts(), 1);
    let errors = supervisor.errors();
    assert!(errors.iter().any(|e| e == "lost connection"), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("reconnecting")),
        "{errors:?}"
    );
}

struct Finite;

impl Receiver<u32> for Finite {
    fn run(&mut self, ctx: &ReceiverContext<u32>) -> std::result::Result<(), ReceiverError> {
        ctx.store_many((0..100).collect())?;
        Ok(())
    }
}

#[test]
fn a_receiver_that_finishes_is_not_restarted() {
    let store = Arc::new(BlockStore::new());
    let supervisor =
        ReceiverSupervisor::builder(3, Arc::new(InMemoryBlockHandler::new(Arc::clone(&store))))
            .config(fast_config(None))
            .start(Finite)
            .unwrap();
    wait_until("the receiver to finish", WAIT, || supervisor.is_finished());
    supervisor.stop();
    assert_eq!(supervisor.restarts(), 0);
    let items: Vec<u32> = store
        .block_ids()
        .iter()
        .flat_map(|id| store.get(id).map(|b| b.items.clone()).unwrap_or_default())
        .collect();
    assert_eq!(items, (0..100).collect::<Vec<_>>());
}

/// Fails the first store, then works.
struct FlakyHandler {
    failed: AtomicBool,
}

impl BlockHandler<u32> for FlakyHandler {
    fn store_block(&self, block: Arc<Block<u32>>) -> Result<ReceivedBlockInfo> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(StreamingError::BlockStore {
                block_id: block.id.to_string(),
                reason: "disk full".into(),
            });
        }
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

struct Steady {
    runs: Arc<AtomicU32>,
}

impl Receiver<u32> for Steady {
    fn run(&mut self, ctx: &ReceiverContext<u32>) -> std::result::Result<(), ReceiverError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let mut i = 0;
        while !ctx.is_stopped() {
            ctx.store(i)?;
            i += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

#[test]
fn a_failed_block_store_restarts_the_receiver() {
    let runs = Arc::new(AtomicU32::new(0));
    let supervisor = ReceiverSupervisor::builder(
        4,
        Arc::new(FlakyHandler {
            failed: AtomicBool::new(false),
        }),
    )
    .config(fast_config(None))
    .start(Steady {
        runs: Arc::clone(&runs),
    })
    .unwrap();
    wait_until("a restart after the store failure", WAIT, || {
        runs.load(Ordering::SeqCst) >= 2
    });
    supervisor.stop();
    let errors = supervisor.errors();
    assert!(errors.iter().any(|e| e.contains("disk full")), "{errors:?}");
}

struct Greedy;

impl Receiver<u32> for Greedy {
    fn run(&mut self, ctx: &ReceiverContext<u32>) -> std::result::Result<(), ReceiverError> {
        while !ctx.is_stopped() {
            // At 1 record/s each chunk of 100 leaves 100 s of rate-limit debt.
            if ctx.store_many((0..100).collect()).is_err() {
                break;
            }
        }
        Ok(())
    }
}

#[test]
fn stop_is_prompt_even_when_blocked_on_a_low_rate() {
    let store = Arc::new(BlockStore::new());
    let supervisor =
        ReceiverSupervisor::builder(5, Arc::new(InMemoryBlockHandler::new(Arc::clone(&store))))
            .config(fast_config(None))
            .rate_limiter(Arc::new(spate_streaming::rate::RateLimiter::new(
                Some(1.0),
                None,
            )))
            .start(Greedy)
            .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    supervisor.stop();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        start.elapsed()
    );
    // The first chunk was accepted (no debt yet) and is stored; the second was refused.
    assert_eq!(supervisor.stats().records_pushed, 100);
}
