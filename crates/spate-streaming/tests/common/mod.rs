//! Helpers for engine tests: a small context, and a runner that feeds queue batches and collects
//! each output's batches by batch number.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use spate_streaming::{Config, DStream, Data, StreamingContext, Time};

pub const INTERVAL_MS: u64 = 10;

pub fn ctx() -> StreamingContext {
    StreamingContext::new(
        Config::new("test")
            .batch_interval(Duration::from_millis(INTERVAL_MS))
            .executor_threads(2)
            .default_parallelism(3)
            // A loaded machine (CI beside other builds) can fall a hundred 10 ms batches
            // behind; a graceful stop must wait for them rather than time out.
            .graceful_stop_timeout(Duration::from_secs(30)),
    )
    .expect("valid config")
}

/// Every batch an output saw: (batch time, elements).
pub type Seen<T> = Arc<Mutex<Vec<(Time, Vec<T>)>>>;

pub fn collect<T: Data>(s: &DStream<T>) -> Seen<T> {
    let seen: Seen<T> = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    s.foreach_batch(move |b, t| {
        let v = b.collect()?;
        sink.lock().push((t, v));
        Ok::<_, spate_streaming::StreamingError>(())
    });
    seen
}

/// Waits until `seen` has at least `n` batches (or panics after 20 s).
pub fn wait_for<T>(seen: &Seen<T>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().len() < n {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} batches"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Output per batch number (1 = first batch of the run), elements sorted.
pub fn by_batch<T: Clone + Ord>(seen: &Seen<T>, first: Time, upto: u64) -> Vec<(u64, Vec<T>)> {
    let mut out: Vec<(u64, Vec<T>)> = seen
        .lock()
        .iter()
        .map(|(t, v)| {
            let mut v = v.clone();
            v.sort();
            ((t.as_millis() - first.as_millis()) / INTERVAL_MS + 1, v)
        })
        .filter(|(n, _)| *n <= upto)
        .collect();
    out.sort();
    out
}

/// Runs a job over one queue stream fed `inputs` (one per batch); `build` defines the stream to
/// observe. Returns its output for batches `1..=batches`, sorted per batch.
pub fn run_job<T: Data, U: Data + Ord>(
    inputs: Vec<Vec<T>>,
    batches: u64,
    build: impl FnOnce(&DStream<T>) -> DStream<U>,
) -> Vec<(u64, Vec<U>)> {
    let ctx = ctx();
    let (q, s) = ctx.queue_stream::<T>(true);
    for i in inputs {
        q.push(i);
    }
    let clock = collect(&s.map(|_| ()));
    let out = build(&s);
    let seen = collect(&out);
    ctx.start().expect("start");
    wait_for(&clock, batches as usize);
    ctx.stop(true).expect("graceful stop");
    let first = clock
        .lock()
        .iter()
        .map(|(t, _)| *t)
        .min()
        .expect("a batch ran");
    by_batch(&seen, first, batches)
}

pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
