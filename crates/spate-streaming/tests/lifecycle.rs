//! Context lifecycle: graceful stop, failures, configuration errors, listeners and metrics,
//! file outputs, socket and text-file inputs.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use parking_lot::Mutex;
use spate_streaming::{
    BatchInfo, Config, ContextState, OutputOperationInfo, StreamingContext, StreamingError,
    StreamingListener, Time,
};

#[test]
fn graceful_stop_finishes_every_planned_batch() {
    let ctx = StreamingContext::new(
        Config::new("t")
            .batch_interval(Duration::from_millis(10))
            .graceful_stop_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let (q, s) = ctx.queue_stream::<u32>(true);
    for i in 0..5 {
        q.push(vec![i]);
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    // Each batch takes 30 ms at a 10 ms interval: batches pile up behind it.
    s.foreach_batch(move |b, _| {
        std::thread::sleep(Duration::from_millis(30));
        sink.lock().extend(b.collect()?);
        Ok::<_, StreamingError>(())
    });
    ctx.start().unwrap();
    // Stop while batches are queued behind the slow one.
    let m = ctx.metrics();
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.waiting_batches() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let planned = m.waiting_batches() + m.running_batches() + m.total_completed_batches() as i64;
    ctx.stop(true).unwrap();
    // Every batch planned by the time stop was called completed.
    assert!(
        m.total_completed_batches() as i64 >= planned,
        "{} < {planned}",
        m.total_completed_batches()
    );
    assert!(
        m.total_completed_batches() >= 2,
        "{}",
        m.total_completed_batches()
    );
    // Everything planned ran: nothing waiting, nothing running, and batches that queued up had
    // a scheduling delay.
    assert_eq!(m.waiting_batches(), 0);
    assert_eq!(m.running_batches(), 0);
    let retained = m.retained_batches();
    assert_eq!(retained.len() as u64, m.total_completed_batches());
    assert!(retained
        .iter()
        .any(|b| b.scheduling_delay().unwrap_or(0) > 0));
    let got = seen.lock().clone();
    assert_eq!(got, (0..got.len() as u32).collect::<Vec<_>>());
    assert_eq!(ctx.state(), ContextState::Stopped);
    assert!(ctx.await_termination().is_ok());
}

#[test]
fn graceful_stop_times_out_on_a_stuck_batch() {
    let ctx = StreamingContext::new(
        Config::new("t")
            .batch_interval(Duration::from_millis(10))
            .graceful_stop_timeout(Duration::from_millis(50)),
    )
    .unwrap();
    let (q, s) = ctx.queue_stream::<u32>(true);
    q.push(vec![1]);
    s.foreach_batch(|b, _| {
        if !b.collect()?.is_empty() {
            std::thread::sleep(Duration::from_millis(3000));
        }
        Ok::<_, StreamingError>(())
    });
    ctx.start().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let t = Instant::now();
    let err = ctx.stop(true).unwrap_err();
    assert!(matches!(err, StreamingError::StopTimeout { .. }), "{err}");
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t.elapsed()
    );
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    completed: Mutex<Vec<BatchInfo>>,
    outputs: Mutex<Vec<OutputOperationInfo>>,
}

impl StreamingListener for Recorder {
    fn on_streaming_started(&self, _t: Time) {
        self.events.lock().push("started".into());
    }
    fn on_batch_submitted(&self, _i: &BatchInfo) {
        self.events.lock().push("submitted".into());
    }
    fn on_batch_started(&self, _i: &BatchInfo) {
        self.events.lock().push("batch_started".into());
    }
    fn on_batch_completed(&self, i: &BatchInfo) {
        self.events.lock().push("batch_completed".into());
        self.completed.lock().push(i.clone());
    }
    fn on_output_operation_completed(&self, o: &OutputOperationInfo) {
        self.outputs.lock().push(o.clone());
    }
    fn on_streaming_stopped(&self, _t: Time) {
        self.events.lock().push("stopped".into());
    }
}

#[test]
fn a_panic_in_user_code_fails_the_batch_and_stops_the_context() {
    let ctx = ctx();
    let rec = Arc::new(Recorder::default());
    ctx.add_streaming_listener(rec.clone());
    let (q, s) = ctx.queue_stream::<u32>(true);
    q.push(vec![1, 2]);
    q.push(vec![3, 13]);
    q.push(vec![4]);
    let after = Arc::new(AtomicUsize::new(0));
    let a = after.clone();
    s.map(|x| {
        if x == 13 {
            panic!("unlucky record {x}");
        }
        x
    })
    .foreach_batch(move |b, _| {
        b.collect()?;
        a.fetch_add(1, Ordering::SeqCst);
        Ok::<_, StreamingError>(())
    });
    ctx.start().unwrap();
    let r = ctx.await_termination_or_timeout(Duration::from_secs(10));
    let err = r.unwrap_err().to_string();
    assert!(err.contains("unlucky record 13"), "{err}");
    assert_eq!(ctx.state(), ContextState::Stopped);
    // Only the first batch completed; no batch after the failing one ran.
    assert_eq!(after.load(Ordering::SeqCst), 1);
    assert_eq!(ctx.metrics().total_completed_batches(), 1);
    assert_eq!(ctx.metrics().total_failed_batches(), 1);
    let completed = rec.completed.lock().clone();
    let failed = completed
        .iter()
        .find(|b| b.failure_reason().is_some())
        .expect("failure reported");
    assert!(failed
        .failure_reason()
        .unwrap()
        .contains("unlucky record 13"));
    let outs = rec.outputs.lock().clone();
    assert!(outs.iter().any(|o| o
        .failure_reason
        .as_deref()
        .is_some_and(|f| f.contains("unlucky"))));
    // stop after a failure is harmless.
    ctx.stop(false).unwrap();
}

#[test]
fn an_output_error_stops_the_context_with_it() {
    let ctx = ctx();
    let (q, s) = ctx.queue_stream::<u32>(true);
    q.push(vec![1]);
    s.foreach_batch(|b, t| {
        if b.count()? > 0 {
            return Err(format!("sink rejected batch {}", t.as_millis()).into());
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
    ctx.start().unwrap();
    let err = ctx.await_termination().unwrap_err().to_string();
    assert!(err.contains("sink rejected batch"), "{err}");
}

#[test]
fn bad_configuration_names_the_key() {
    let err =
        StreamingContext::new(Config::new("t").set("spate.streaming.executor.threads", "many"))
            .unwrap_err();
    assert!(
        err.to_string().contains("spate.streaming.executor.threads"),
        "{err}"
    );
    let err = StreamingContext::new(Config::new("t").batch_interval(Duration::ZERO)).unwrap_err();
    assert!(
        err.to_string()
            .contains("spate.streaming.batch.interval.ms"),
        "{err}"
    );
}

#[test]
fn start_needs_an_output_and_only_once() {
    let ctx = ctx();
    let (_q, s) = ctx.queue_stream::<u32>(true);
    let err = ctx.start().unwrap_err().to_string();
    assert!(err.contains("no output operations"), "{err}");
    s.foreach_batch(|_, _| Ok::<_, StreamingError>(()));
    ctx.start().unwrap();
    assert!(ctx.start().is_err());
    ctx.stop(false).unwrap();
    assert_eq!(ctx.state(), ContextState::Stopped);
}

#[test]
fn listener_events_batch_info_and_metrics() {
    let ctx = ctx();
    let rec = Arc::new(Recorder::default());
    ctx.add_streaming_listener(rec.clone());
    let (q, s) = ctx.queue_stream::<u32>(true);
    q.push(vec![1, 2, 3]);
    q.push(vec![4]);
    let seen = collect(&s);
    s.count().print(5);
    ctx.start().unwrap();
    wait_for(&seen, 3);
    ctx.stop(true).unwrap();
    let ev = rec.events.lock().clone();
    assert_eq!(ev.first().map(String::as_str), Some("started"));
    assert_eq!(ev.last().map(String::as_str), Some("stopped"));
    let pos = |name: &str| ev.iter().position(|e| e == name).unwrap();
    assert!(
        pos("submitted") < pos("batch_started") && pos("batch_started") < pos("batch_completed")
    );
    let completed = rec.completed.lock().clone();
    let first = &completed[0];
    assert_eq!(first.num_records(), 3);
    assert_eq!(first.output_operation_infos.len(), 2);
    assert!(first.processing_delay().is_some() && first.total_delay() >= first.processing_delay());
    assert_eq!(completed[1].num_records(), 1);
    let gauges: std::collections::BTreeMap<_, _> = ctx.metrics().gauges().into_iter().collect();
    assert_eq!(gauges["totalReceivedRecords"], 4);
    assert_eq!(gauges["totalProcessedRecords"], 4);
    assert_eq!(gauges["unprocessedBatches"], 0);
    assert!(gauges["totalCompletedBatches"] >= 3);
    assert!(gauges["lastCompletedBatch_processingDelay"] >= 0);
}

#[test]
fn retained_batches_are_bounded() {
    let ctx = StreamingContext::new(
        Config::new("t")
            .batch_interval(Duration::from_millis(10))
            .retained_batches(3),
    )
    .unwrap();
    let (_q, s) = ctx.queue_stream::<u32>(true);
    let seen = collect(&s);
    ctx.start().unwrap();
    wait_for(&seen, 6);
    ctx.stop(true).unwrap();
    assert_eq!(ctx.metrics().retained_batches().len(), 3);
}

#[test]
fn save_as_text_files_writes_one_file_per_batch_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let (q, s) = ctx.queue_stream::<u32>(true);
    q.push(vec![1, 2, 3]);
    let clock = collect(&s);
    s.map(|x| x * 2)
        .save_as_text_files(dir.path().join("out").to_string_lossy(), "txt");
    ctx.start().unwrap();
    wait_for(&clock, 2);
    ctx.stop(true).unwrap();
    let t = clock.lock()[0].0;
    let first = dir.path().join(format!("out-{}.txt", t.as_millis()));
    let mut lines: Vec<String> = std::fs::read_to_string(&first)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(lines, vec!["2", "4", "6"]);
    // No temp files left behind.
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with('.')));
}

#[test]
fn socket_text_stream_reads_lines() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        for i in 0..20 {
            writeln!(conn, "line {i}").unwrap();
        }
        conn.flush().unwrap();
        std::thread::sleep(Duration::from_millis(200));
    });
    let ctx = ctx();
    let lines = ctx.socket_text_stream("127.0.0.1", port);
    let total = Arc::new(Mutex::new(Vec::new()));
    let sink = total.clone();
    lines.foreach_batch(move |b, _| {
        sink.lock().extend(b.collect()?);
        Ok::<_, StreamingError>(())
    });
    ctx.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while total.lock().len() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    ctx.stop(true).unwrap();
    server.join().unwrap();
    let mut got = total.lock().clone();
    got.sort_by_key(|l| l[5..].parse::<u32>().unwrap());
    assert_eq!(
        got,
        (0..20).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
}

#[test]
fn text_file_stream_processes_each_new_file_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "x y\nz\n").unwrap();
    std::fs::write(dir.path().join(".hidden"), "ignored\n").unwrap();
    let ctx = ctx();
    let lines = ctx.text_file_stream(dir.path());
    let seen = collect(&lines);
    ctx.start().unwrap();
    wait_for(&seen, 3);
    std::fs::write(dir.path().join(".b.tmp"), "w\n").unwrap();
    std::fs::rename(dir.path().join(".b.tmp"), dir.path().join("b.txt")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().iter().map(|(_, v)| v.len()).sum::<usize>() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(30));
    ctx.stop(true).unwrap();
    let mut all: Vec<String> = seen.lock().iter().flat_map(|(_, v)| v.clone()).collect();
    all.sort();
    assert_eq!(all, vec!["w", "x y", "z"]);
}

struct Numbers(u64);

impl spate_streaming::receiver::Receiver<u64> for Numbers {
    fn run(
        &mut self,
        ctx: &spate_streaming::receiver::ReceiverContext<u64>,
    ) -> Result<(), spate_streaming::receiver::ReceiverError> {
        for chunk in (0..self.0).collect::<Vec<_>>().chunks(100) {
            ctx.store_many(chunk.to_vec())?;
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

fn run_receiver(write_ahead_log: bool) {
    use spate_streaming::input::receiver::ReceiverStreamOptions;
    use spate_streaming::receiver::ReceiverConfig;
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx();
    if write_ahead_log {
        ctx.checkpoint(dir.path().join("ckpt")).unwrap();
    }
    let mut config = ReceiverConfig::default();
    config.block.block_interval = Duration::from_millis(5);
    let nums = ctx.receiver_stream(
        Numbers(2000),
        ReceiverStreamOptions {
            write_ahead_log,
            config,
            ..ReceiverStreamOptions::default()
        },
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    nums.foreach_batch(move |b, _| {
        sink.lock().extend(b.collect()?);
        Ok::<_, StreamingError>(())
    });
    let rec = Arc::new(Recorder::default());
    ctx.add_streaming_listener(rec.clone());
    ctx.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().len() < 2000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    ctx.stop(true).unwrap();
    let mut got = seen.lock().clone();
    got.sort_unstable();
    assert_eq!(got, (0..2000).collect::<Vec<_>>());
    let records: u64 = rec.completed.lock().iter().map(|b| b.num_records()).sum();
    assert_eq!(records, 2000);
}

#[test]
fn receiver_stream_delivers_every_record_once() {
    run_receiver(false);
}

#[test]
fn receiver_stream_with_write_ahead_log() {
    run_receiver(true);
}

#[test]
fn non_graceful_stop_is_not_a_failure() {
    let ctx = ctx();
    let (q, s) = ctx.queue_stream::<u32>(true);
    for i in 0..50 {
        q.push(vec![i]);
    }
    s.foreach_batch(|_, _| {
        std::thread::sleep(Duration::from_millis(15));
        Ok::<_, StreamingError>(())
    });
    s.count().foreach_batch(|_, _| Ok::<_, StreamingError>(()));
    ctx.start().unwrap();
    std::thread::sleep(Duration::from_millis(40));
    ctx.stop(false).unwrap();
    assert!(ctx.await_termination().is_ok());
    // Batches were left planned but not run.
    assert!(ctx.metrics().total_completed_batches() < 50);
}

struct StopAfter(StreamingContext, AtomicUsize);

impl StreamingListener for StopAfter {
    fn on_batch_completed(&self, _i: &BatchInfo) {
        if self.1.fetch_add(1, Ordering::SeqCst) == 2 {
            self.0.stop(true).unwrap();
        }
    }
}

#[test]
fn a_listener_may_stop_the_context() {
    let ctx = ctx();
    let (_q, s) = ctx.queue_stream::<u32>(true);
    s.foreach_batch(|_, _| Ok::<_, StreamingError>(()));
    ctx.add_streaming_listener(Arc::new(StopAfter(ctx.clone(), AtomicUsize::new(0))));
    ctx.start().unwrap();
    assert!(ctx
        .await_termination_or_timeout(Duration::from_secs(10))
        .unwrap());
}

/// Partitions that expose their "offset ranges", like the Kafka direct stream.
struct Ranges(Vec<(u64, u64)>);

impl spate_streaming::Partitions<u64> for Ranges {
    fn num_partitions(&self) -> usize {
        self.0.len()
    }
    fn compute(
        &self,
        p: usize,
    ) -> spate_streaming::Result<spate_streaming::PartitionIter<'_, u64>> {
        let (from, until) = self.0[p];
        Ok(Box::new(from..until))
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

struct RangeInput;

impl spate_streaming::InputStream<u64> for RangeInput {
    type Plan = Vec<(u64, u64)>;
    type State = ();

    fn kind(&self) -> &str {
        "ranges"
    }
    fn plan(&self, _t: Time) -> spate_streaming::Result<Vec<(u64, u64)>> {
        Ok(vec![(0, 3), (10, 12)])
    }
    fn compute(
        &self,
        _t: Time,
        plan: &Vec<(u64, u64)>,
    ) -> spate_streaming::Result<Arc<dyn spate_streaming::Partitions<u64>>> {
        Ok(Arc::new(Ranges(plan.clone())))
    }
}

#[test]
fn input_partitions_expose_metadata_on_the_input_stream_only() {
    let ctx = ctx();
    let s = ctx.input_stream(RangeInput);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (a, b) = (seen.clone(), seen.clone());
    s.foreach_batch(move |batch, _| {
        let ranges = batch
            .partitions()
            .as_any()
            .and_then(|x| x.downcast_ref::<Ranges>())
            .map(|r| r.0.clone());
        a.lock().push((ranges, batch.collect()?));
        Ok::<_, StreamingError>(())
    });
    s.map(|x| x).foreach_batch(move |batch, _| {
        let has = batch.partitions().as_any().is_some();
        b.lock()
            .push((if has { Some(vec![]) } else { None }, vec![]));
        Ok::<_, StreamingError>(())
    });
    ctx.start().unwrap();
    while seen.lock().len() < 2 {
        std::thread::sleep(Duration::from_millis(2));
    }
    ctx.stop(true).unwrap();
    let got = seen.lock().clone();
    assert_eq!(
        got[0],
        (Some(vec![(0, 3), (10, 12)]), vec![0, 1, 2, 10, 11])
    );
    assert_eq!(got[1], (None, vec![]));
}

/// Stores an endless sequence until stopped, counting what was accepted.
struct Endless(Arc<std::sync::atomic::AtomicU64>);

impl spate_streaming::receiver::Receiver<u64> for Endless {
    fn run(
        &mut self,
        ctx: &spate_streaming::receiver::ReceiverContext<u64>,
    ) -> Result<(), spate_streaming::receiver::ReceiverError> {
        let mut i = 0;
        while !ctx.is_stopped() {
            if ctx.store(i).is_err() {
                break;
            }
            self.0.store(i + 1, Ordering::SeqCst);
            i += 1;
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }
}

#[test]
fn graceful_stop_processes_everything_a_receiver_stored() {
    use spate_streaming::input::receiver::ReceiverStreamOptions;
    use spate_streaming::receiver::ReceiverConfig;
    let ctx = StreamingContext::new(
        Config::new("t")
            .batch_interval(Duration::from_millis(10))
            .graceful_stop_timeout(Duration::from_secs(10)),
    )
    .unwrap();
    let stored = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut config = ReceiverConfig::default();
    config.block.block_interval = Duration::from_millis(5);
    let s = ctx.receiver_stream(
        Endless(stored.clone()),
        ReceiverStreamOptions {
            config,
            ..ReceiverStreamOptions::default()
        },
    );
    let seen = Arc::new(AtomicUsize::new(0));
    let sink = seen.clone();
    s.foreach_batch(move |b, _| {
        sink.fetch_add(b.count()? as usize, Ordering::SeqCst);
        Ok::<_, StreamingError>(())
    });
    ctx.start().unwrap();
    std::thread::sleep(Duration::from_millis(80));
    ctx.stop(true).unwrap();
    let stored = stored.load(Ordering::SeqCst);
    assert!(stored > 0);
    assert_eq!(seen.load(Ordering::SeqCst) as u64, stored);
}

/// A stop requested again while a graceful stop drains — here by the output operation of every
/// later batch, as a job that stops "when done" does — must not end the context early:
/// `await_termination` returns only once every batch that started has run all its output
/// operations (a process that exits then would otherwise cut a batch in half).
#[test]
fn a_repeated_stop_from_an_output_waits_for_the_draining_batches() {
    let ctx = StreamingContext::new(
        Config::new("t")
            .batch_interval(Duration::from_millis(10))
            .graceful_stop_timeout(Duration::from_secs(10)),
    )
    .unwrap();
    let (q, s) = ctx.queue_stream::<u32>(true);
    for i in 0..10 {
        q.push(vec![i]);
    }
    let first = Arc::new(Mutex::new(Vec::new()));
    let second = Arc::new(Mutex::new(Vec::new()));
    let (sink, stopper) = (first.clone(), ctx.clone());
    s.foreach_batch(move |_, t| {
        let mut seen = sink.lock();
        seen.push(t);
        if seen.len() >= 2 {
            stopper.stop(true)?;
        }
        Ok::<_, StreamingError>(())
    });
    // The second output is slow: batches queue behind it, and the stop requested by the next
    // batch's first output comes while the previous stop still drains.
    let sink = second.clone();
    s.foreach_batch(move |_, t| {
        std::thread::sleep(Duration::from_millis(60));
        sink.lock().push(t);
        Ok::<_, StreamingError>(())
    });
    ctx.start().unwrap();
    ctx.await_termination().unwrap();
    let (first, second) = (first.lock().clone(), second.lock().clone());
    assert!(first.len() >= 3, "{first:?}");
    assert_eq!(first, second, "a batch was cut short by the repeated stop");
    assert_eq!(ctx.metrics().running_batches(), 0);
    assert_eq!(ctx.metrics().waiting_batches(), 0);
}

/// Two threads stopping the context at once (Spark's `stop` is synchronized): the second call
/// returns only when the first has finished draining, not while batches still run.
#[test]
fn a_concurrent_stop_returns_after_the_first_one_finished() {
    let ctx = StreamingContext::new(
        Config::new("t")
            .batch_interval(Duration::from_millis(10))
            .graceful_stop_timeout(Duration::from_secs(10)),
    )
    .unwrap();
    let (q, s) = ctx.queue_stream::<u32>(true);
    for i in 0..10 {
        q.push(vec![i]);
    }
    let started = Arc::new(AtomicUsize::new(0));
    let counter = started.clone();
    s.foreach_batch(move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        Ok::<_, StreamingError>(())
    });
    ctx.start().unwrap();
    while started.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let other = ctx.clone();
    let first = std::thread::spawn(move || other.stop(true));
    // Let the first stop take the scheduler before the second asks.
    std::thread::sleep(Duration::from_millis(30));
    ctx.stop(true).unwrap();
    let m = ctx.metrics();
    assert_eq!(
        (m.running_batches(), m.waiting_batches()),
        (0, 0),
        "the second stop returned while batches still ran"
    );
    assert_eq!(ctx.state(), ContextState::Stopped);
    first.join().unwrap().unwrap();
}
