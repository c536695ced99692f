//! A direct stream's task builds its records without a heap allocation of their own: keys and
//! values are cut out of the reader's shared chunks (`spate_kafka::RecordArena`), so the task
//! thread allocates a chunk now and then, not twice per record. What stays is the client's
//! own: rdkafka 0.39's `BaseConsumer::poll` wraps every message's event in an `Arc` (one
//! allocation per record that spate cannot avoid). Before the arena the count was 3 per keyed
//! record (that `Arc`, the key, the value).
//!
//! Counted with a per-thread counting global allocator on the thread that runs the task (the
//! embedded broker in this process allocates on its own threads, librdkafka in C). The test is
//! alone in its binary because the allocator is process-wide.

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
    /// Allocations (and reallocations) this thread made.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct PerThreadCounting;

fn count() {
    // `try_with`: a thread being torn down may allocate after its locals are gone.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

unsafe impl GlobalAlloc for PerThreadCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: PerThreadCounting = PerThreadCounting;

const RECORDS: usize = 20_000;
const VALUE_BYTES: usize = 100;

#[test]
fn a_task_allocates_nothing_per_record_beyond_the_clients_own() {
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    let topic = create_topic(&broker, "record-allocations", 1);
    let value = "v".repeat(VALUE_BYTES - 8);
    spate_testkit::produce::produce_to_partition(
        &broker.bootstrap_servers(),
        &topic,
        0,
        (0..RECORDS).map(|i| (Some(format!("k{i}")), format!("{i:08}{value}"))),
    );

    let ctx = StreamingContext::new(
        Config::new("record-allocations")
            .batch_interval(Duration::from_millis(300))
            .executor_threads(1),
    )
    .unwrap();
    // One batch takes the whole range: no rate limit, no first-batch bound.
    let params = params(&broker).set(keys::BACKPRESSURE_INITIAL_RATE, "none");
    let stream = KafkaUtils::create_direct_stream_with(
        &ctx,
        ConsumerStrategy::assign([TopicPartition::new(&topic, 0)], params),
        DirectStreamConfig::default(),
    )
    .unwrap();

    let seen = Arc::new(AtomicUsize::new(0));
    let allocations = Arc::new(AtomicUsize::new(0));
    let bytes = Arc::new(AtomicUsize::new(0));
    let (seen_in, allocations_in, bytes_in) = (seen.clone(), allocations.clone(), bytes.clone());
    stream.foreach_batch(move |batch, _| {
        // The task, run on this thread so that the count covers reading the range.
        let before = ALLOCATIONS.with(Cell::get);
        let mut n = 0;
        let mut b = 0;
        for p in 0..batch.num_partitions() {
            for r in batch.partitions().compute(p)? {
                n += 1;
                b += r.key.as_deref().map_or(0, <[u8]>::len)
                    + r.value.as_deref().map_or(0, <[u8]>::len);
            }
        }
        let made = ALLOCATIONS.with(Cell::get) - before;
        seen_in.fetch_add(n, Ordering::SeqCst);
        bytes_in.fetch_add(b, Ordering::SeqCst);
        allocations_in.fetch_add(
            usize::try_from(made).unwrap_or(usize::MAX),
            Ordering::SeqCst,
        );
        Ok::<(), spate_streaming::StreamingError>(())
    });
    ctx.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.load(Ordering::SeqCst) < RECORDS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    ctx.stop(false).unwrap();
    let (seen, allocations) = (
        seen.load(Ordering::SeqCst),
        allocations.load(Ordering::SeqCst),
    );
    let per_record = allocations as f64 / seen.max(1) as f64;
    println!(
        "records {seen} of {RECORDS} ({} key and value bytes), task allocations {allocations}, \
         {per_record:.4} per record",
        bytes.load(Ordering::SeqCst)
    );
    assert_eq!(seen, RECORDS, "every record read once");
    // One per record is the client's `Arc` (module docs); the rest are chunks and per-batch
    // bookkeeping, a few per hundred records.
    assert!(
        allocations <= seen + seen / 50,
        "{per_record:.4} allocations per record: keys and values are not cut from shared chunks"
    );
}
