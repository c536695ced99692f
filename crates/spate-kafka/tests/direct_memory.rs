//! A direct stream's batch does not hold its input: a task streams its offset range from the
//! consumer's bounded pre-fetch queue, so the memory a pass-through task allocates stays far
//! below the size of its range.
//!
//! Measured with a counting global allocator, per thread: the records of a task are built and
//! dropped on the thread that runs the task, while the embedded broker (in this process) and
//! librdkafka's queue (C memory) allocate elsewhere. The test is alone in its binary because the
//! allocator is process-wide.

// A global allocator can only be written with `unsafe` (`GlobalAlloc` is an unsafe trait); this
// one only counts and forwards to the system allocator.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_kafka::{keys, ConsumerStrategy, DirectStreamConfig, KafkaUtils, TopicPartition};
use spate_streaming::{Config, StreamingContext};
use spate_testkit::TestBroker;

use common::*;

thread_local! {
    /// Bytes this thread allocated and has not freed (frees of other threads' memory count
    /// against it, which can only lower the figure's peak, never raise it).
    static NET: Cell<isize> = const { Cell::new(0) };
    /// The highest `NET` this thread reached.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

struct PerThreadCounting;

fn account(delta: isize) {
    // `try_with`: a thread being torn down may allocate after its locals are gone.
    let _ = NET.try_with(|net| {
        let now = net.get() + delta;
        net.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for PerThreadCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: PerThreadCounting = PerThreadCounting;

const RECORDS: usize = 12_000;
const VALUE_BYTES: usize = 1_000;
const PREFETCH_KBYTES: usize = 512;

#[test]
fn a_pass_through_task_holds_no_more_than_the_prefetch_budget_of_its_range() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "direct-memory", 1);
    let value = "v".repeat(VALUE_BYTES);
    spate_testkit::produce::produce_to_partition(
        &broker.bootstrap_servers(),
        &topic,
        0,
        (0..RECORDS).map(|i| (None, format!("{i:08}{value}"))),
    );
    let range_bytes = RECORDS * VALUE_BYTES;

    let ctx = StreamingContext::new(
        Config::new("direct-memory")
            .batch_interval(Duration::from_millis(300))
            .executor_threads(1),
    )
    .unwrap();
    // One batch takes the whole range: no rate limit, no first-batch bound.
    let params = params(&broker)
        .set(keys::BACKPRESSURE_INITIAL_RATE, "none")
        .set(keys::CONSUMER_PREFETCH_KBYTES, PREFETCH_KBYTES.to_string());
    let stream = KafkaUtils::create_direct_stream_with(
        &ctx,
        ConsumerStrategy::assign([TopicPartition::new(&topic, 0)], params),
        DirectStreamConfig::default(),
    )
    .unwrap();

    let seen = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (seen_in, peak_in) = (seen.clone(), peak.clone());
    stream.foreach_batch(move |batch, _| {
        // The task, run here so that the peak covers `compute` too (today's code read the whole
        // range there).
        let base = NET.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let mut n = 0;
        for p in 0..batch.num_partitions() {
            n += batch.partitions().compute(p)?.count();
        }
        let grew = usize::try_from(PEAK.with(Cell::get) - base).unwrap_or(0);
        seen_in.fetch_add(n, Ordering::SeqCst);
        peak_in.fetch_max(grew, Ordering::SeqCst);
        Ok::<(), spate_streaming::StreamingError>(())
    });
    ctx.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.load(Ordering::SeqCst) < RECORDS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    ctx.stop(false).unwrap();
    let (seen, peak) = (seen.load(Ordering::SeqCst), peak.load(Ordering::SeqCst));
    println!(
        "records {seen} of {RECORDS}, range {range_bytes} B, task peak {peak} B, pre-fetch budget {} B",
        PREFETCH_KBYTES * 1024
    );
    assert_eq!(seen, RECORDS, "every record read once");
    assert!(
        peak <= PREFETCH_KBYTES * 1024,
        "a pass-through task held {peak} B of a {range_bytes} B range; the pre-fetch budget is {} B",
        PREFETCH_KBYTES * 1024
    );
}
