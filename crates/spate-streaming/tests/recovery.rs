//! In-process recovery through `get_or_create`: state continues, files are read once, and a
//! checkpoint that does not fit the job is an error naming what differs.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use spate_streaming::{Config, StreamingContext, StreamingError};

fn wordcount_job(ckpt: &Path, input: &Path, out: &Path) -> StreamingContext {
    let (input, out) = (input.to_path_buf(), out.to_path_buf());
    StreamingContext::get_or_create(ckpt, move || {
        let ctx = StreamingContext::new(
            Config::new("recovery")
                .batch_interval(Duration::from_millis(10))
                .checkpoint_interval_batches(3)
                .graceful_stop_timeout(Duration::from_secs(20)),
        )?;
        let totals = ctx
            .text_file_stream(&input)
            .flat_map(|l: String| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .map(|w| (w, 1u64))
            .update_state_by_key(|new: &[u64], old: Option<u64>| {
                Some(old.unwrap_or(0) + new.iter().sum::<u64>())
            });
        let out = out.clone();
        totals.foreach_batch(move |b, _| {
            let mut v = b.collect()?;
            v.sort();
            let text: String = v.iter().map(|(w, c)| format!("{w} {c}\n")).collect();
            std::fs::write(&out, text).map_err(|e| StreamingError::io(&out, e))
        });
        Ok(ctx)
    })
    .expect("get_or_create")
}

fn wait_for_file(path: &Path, content: &str) {
    let became = spate_testkit::poll_until(Duration::from_secs(10), || {
        std::fs::read_to_string(path).unwrap_or_default() == content
    });
    assert!(
        became,
        "{} never became {content:?}, is {:?}",
        path.display(),
        std::fs::read_to_string(path)
    );
}

#[test]
fn state_and_seen_files_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, input, out) = (
        dir.path().join("ckpt"),
        dir.path().join("in"),
        dir.path().join("out.txt"),
    );
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("1.txt"), "a b a\n").unwrap();

    let ctx = wordcount_job(&ckpt, &input, &out);
    ctx.start().unwrap();
    wait_for_file(&out, "a 2\nb 1\n");
    std::thread::sleep(Duration::from_millis(50));
    ctx.stop(false).unwrap();

    // Restart: 1.txt must not be read again, state continues from 2/1.
    std::fs::write(input.join("2.txt"), "b c\n").unwrap();
    let ctx = wordcount_job(&ckpt, &input, &out);
    ctx.start().unwrap();
    wait_for_file(&out, "a 2\nb 2\nc 1\n");
    std::thread::sleep(Duration::from_millis(50));
    ctx.stop(true).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "a 2\nb 2\nc 1\n");
}

#[test]
fn a_checkpoint_of_another_job_is_rejected_naming_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, input, out) = (
        dir.path().join("ckpt"),
        dir.path().join("in"),
        dir.path().join("out.txt"),
    );
    std::fs::create_dir_all(&input).unwrap();
    let ctx = wordcount_job(&ckpt, &input, &out);
    ctx.start().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    ctx.stop(true).unwrap();

    // Same app, but the stateful operator now keeps a different state type.
    let ctx = StreamingContext::get_or_create(&ckpt, || {
        let ctx = StreamingContext::new(
            Config::new("recovery").batch_interval(Duration::from_millis(10)),
        )?;
        ctx.text_file_stream(&input)
            .map(|l| (l, 1u64))
            .update_state_by_key(|_: &[u64], old: Option<String>| old)
            .foreach_batch(|_, _| Ok::<_, StreamingError>(()));
        Ok(ctx)
    })
    .unwrap();
    let err = ctx.start().unwrap_err().to_string();
    assert!(err.contains("update_state_by_key-0"), "{err}");
    assert!(err.contains("String"), "{err}");
}

#[test]
fn queue_streams_cannot_be_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    // A plan is recorded but the batch never commits: its output fails.
    let make = |fail: bool| {
        StreamingContext::get_or_create(&ckpt, move || {
            let ctx = ctx();
            let (q, s) = ctx.queue_stream::<u32>(true);
            q.push(vec![1]);
            s.foreach_batch(move |_, _| {
                if fail {
                    Err(StreamingError::ContextState("boom".into()))
                } else {
                    Ok(())
                }
            });
            Ok(ctx)
        })
        .unwrap()
    };
    let c = make(true);
    c.start().unwrap();
    assert!(c.await_termination().is_err());
    let c = make(false);
    c.start().unwrap();
    let err = c.await_termination().unwrap_err().to_string();
    assert!(
        err.contains("queue_stream") && err.contains("cannot be recovered"),
        "{err}"
    );
}

type ByTime =
    std::sync::Arc<parking_lot::Mutex<std::collections::BTreeMap<u64, Vec<(String, u64)>>>>;

/// Two ways to count words over a 3-batch window: recomputed, and incremental with an inverse.
fn windowed_job(ckpt: &Path, input: &Path, plain: ByTime, incremental: ByTime) -> StreamingContext {
    let input = input.to_path_buf();
    StreamingContext::get_or_create(ckpt, move || {
        let ctx = StreamingContext::new(
            Config::new("window-gap")
                .batch_interval(Duration::from_millis(10))
                .checkpoint_interval_batches(2)
                .max_downtime_batches(0)
                .graceful_stop_timeout(Duration::from_secs(20)),
        )?;
        let pairs = ctx
            .text_file_stream(&input)
            .flat_map(|l: String| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .map(|w| (w, 1u64));
        let (w, i) = (Duration::from_millis(30), Duration::from_millis(10));
        let sink = |m: ByTime| {
            move |b: spate_streaming::Batch<(String, u64)>, t: spate_streaming::Time| {
                let mut v = b.collect()?;
                v.sort();
                m.lock().insert(t.as_millis(), v);
                Ok::<_, StreamingError>(())
            }
        };
        pairs
            .reduce_by_key_and_window(|a, b| a + b, w, i)?
            .foreach_batch(sink(plain.clone()));
        pairs
            .reduce_by_key_and_window_inv_filtered(
                |a, b| a + b,
                |a, b| a - b,
                w,
                i,
                |(_, c)| *c != 0,
            )?
            .foreach_batch(sink(incremental.clone()));
        Ok(ctx)
    })
    .expect("get_or_create")
}

#[test]
fn incremental_window_stays_exact_across_a_restart_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, input) = (dir.path().join("ckpt"), dir.path().join("in"));
    std::fs::create_dir_all(&input).unwrap();
    let plain: ByTime = Default::default();
    let incremental: ByTime = Default::default();
    let add = |name: &str, text: &str| {
        let tmp = input.join(format!(".{name}"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, input.join(name)).unwrap();
    };
    let ctx = windowed_job(&ckpt, &input, plain.clone(), incremental.clone());
    ctx.start().unwrap();
    for (i, text) in ["a b", "a", "c a"].iter().enumerate() {
        add(&format!("{i}.txt"), text);
        std::thread::sleep(Duration::from_millis(15));
    }
    ctx.stop(true).unwrap();
    // Down time of many batch intervals; no down-time batches are planned (cap 0).
    std::thread::sleep(Duration::from_millis(100));
    add("3.txt", "b b");
    let ctx = windowed_job(&ckpt, &input, plain.clone(), incremental.clone());
    ctx.start().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    add("4.txt", "a");
    std::thread::sleep(Duration::from_millis(60));
    // On a loaded machine the batches above may not all have run yet: wait for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while plain.lock().len() <= 8 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    ctx.stop(true).unwrap();
    let (p, i) = (plain.lock().clone(), incremental.lock().clone());
    assert!(p.len() > 8, "{p:?}");
    for (t, v) in &p {
        if let Some(w) = i.get(t) {
            assert_eq!(v, w, "window at {t}");
        }
    }
    // After the gap the old words have left the window: the last window holds at most what
    // came after the restart.
    let last = p.values().last().unwrap();
    assert!(last.iter().all(|(w, _)| w == "a" || w == "b"), "{last:?}");
    let total_b: u64 = i
        .values()
        .flatten()
        .filter(|(w, _)| w == "b")
        .map(|(_, c)| *c)
        .max()
        .unwrap_or(0);
    assert_eq!(total_b, 2);
}

fn mws_job(ckpt: &Path, input: &Path, out: &Path) -> StreamingContext {
    use spate_streaming::{State, StateSpec};
    let (input, out) = (input.to_path_buf(), out.to_path_buf());
    StreamingContext::get_or_create(ckpt, move || {
        let ctx = StreamingContext::new(
            Config::new("mws")
                .batch_interval(Duration::from_millis(10))
                .checkpoint_interval_batches(5)
                .graceful_stop_timeout(Duration::from_secs(20)),
        )?;
        let spec = StateSpec::function(|_w: &String, one: Option<u64>, st: &mut State<u64>| {
            let n = st.get().copied().unwrap_or(0) + one.unwrap_or(0);
            st.update(n);
            n
        });
        let counts = ctx
            .text_file_stream(&input)
            .flat_map(|l: String| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .map(|w| (w, 1u64))
            .map_with_state(spec);
        let out = out.clone();
        counts.state_snapshots().foreach_batch(move |b, _| {
            let mut v = b.collect()?;
            v.sort();
            let text: String = v.iter().map(|(w, c)| format!("{w} {c}\n")).collect();
            std::fs::write(&out, text).map_err(|e| StreamingError::io(&out, e))
        });
        Ok(ctx)
    })
    .expect("get_or_create")
}

#[test]
fn map_with_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, input, out) = (
        dir.path().join("ckpt"),
        dir.path().join("in"),
        dir.path().join("out.txt"),
    );
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("1.txt"), "x y x\n").unwrap();
    let ctx = mws_job(&ckpt, &input, &out);
    ctx.start().unwrap();
    wait_for_file(&out, "x 2\ny 1\n");
    ctx.stop(false).unwrap();
    std::fs::write(input.join("2.txt"), "y\n").unwrap();
    let ctx = mws_job(&ckpt, &input, &out);
    ctx.start().unwrap();
    wait_for_file(&out, "x 2\ny 2\n");
    ctx.stop(true).unwrap();
}

/// Version 1 counts words; version 2 adds another stateful operator *before* it. With uids,
/// the counts continue.
fn versioned_job(ckpt: &Path, input: &Path, out: &Path, v2: bool) -> StreamingContext {
    let (input, out) = (input.to_path_buf(), out.to_path_buf());
    StreamingContext::get_or_create(ckpt, move || {
        let ctx = StreamingContext::new(
            Config::new("upgrade")
                .batch_interval(Duration::from_millis(10))
                .graceful_stop_timeout(Duration::from_secs(20)),
        )?;
        let words = ctx
            .text_file_stream(&input)
            .flat_map(|l: String| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
        if v2 {
            words
                .map(|w| (w.len(), 1u32))
                .update_state_by_key(|n: &[u32], s: Option<String>| {
                    Some(format!("{}{}", s.unwrap_or_default(), n.len()))
                })
                .uid("lengths")
                .foreach_batch(|_, _| Ok::<_, StreamingError>(()));
        }
        let out = out.clone();
        words
            .map(|w| (w, 1u64))
            .update_state_by_key(|new: &[u64], old: Option<u64>| {
                Some(old.unwrap_or(0) + new.iter().sum::<u64>())
            })
            .uid("word-counts")
            .foreach_batch(move |b, _| {
                let mut v = b.collect()?;
                v.sort();
                let text: String = v.iter().map(|(w, c)| format!("{w} {c}\n")).collect();
                std::fs::write(&out, text).map_err(|e| StreamingError::io(&out, e))
            });
        Ok(ctx)
    })
    .expect("get_or_create")
}

#[test]
fn uids_keep_state_when_operators_are_added() {
    let dir = tempfile::tempdir().unwrap();
    let (ckpt, input, out) = (
        dir.path().join("ckpt"),
        dir.path().join("in"),
        dir.path().join("out.txt"),
    );
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("1.txt"), "a b a\n").unwrap();
    let ctx = versioned_job(&ckpt, &input, &out, false);
    ctx.start().unwrap();
    wait_for_file(&out, "a 2\nb 1\n");
    ctx.stop(true).unwrap();
    std::fs::write(input.join("2.txt"), "b\n").unwrap();
    let ctx = versioned_job(&ckpt, &input, &out, true);
    ctx.start().unwrap();
    wait_for_file(&out, "a 2\nb 2\n");
    ctx.stop(true).unwrap();
}

#[test]
fn uid_misuse_is_reported_by_start() {
    let c = ctx();
    let (_q, s) = c.queue_stream::<u32>(true);
    s.map(|x| x)
        .uid("nope")
        .foreach_batch(|_, _| Ok::<_, StreamingError>(()));
    let err = c.start().unwrap_err().to_string();
    assert!(err.contains("keeps no state"), "{err}");

    let c = ctx();
    let (_q, s) = c.queue_stream::<u32>(true);
    let pairs = s.map(|x| (x, 1u32));
    let f = |n: &[u32], s: Option<u32>| Some(s.unwrap_or(0) + n.len() as u32);
    pairs
        .update_state_by_key(f)
        .uid("same")
        .foreach_batch(|_, _| Ok::<_, StreamingError>(()));
    pairs
        .update_state_by_key(f)
        .uid("same")
        .foreach_batch(|_, _| Ok::<_, StreamingError>(()));
    let err = c.start().unwrap_err().to_string();
    assert!(err.contains("`same`"), "{err}");
}

/// Stores `n` records once, then idles until stopped.
struct Once(u64);

impl spate_streaming::receiver::Receiver<u64> for Once {
    fn run(
        &mut self,
        ctx: &spate_streaming::receiver::ReceiverContext<u64>,
    ) -> Result<(), spate_streaming::receiver::ReceiverError> {
        ctx.store_many((0..self.0).collect())?;
        while !ctx.is_stopped() {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

fn receiver_job(
    ckpt: &Path,
    records: u64,
    fail: bool,
    seen: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> StreamingContext {
    use spate_streaming::input::receiver::ReceiverStreamOptions;
    use spate_streaming::receiver::ReceiverConfig;
    StreamingContext::get_or_create(ckpt, move || {
        let ctx = StreamingContext::new(
            Config::new("receiver-wal")
                .batch_interval(Duration::from_millis(10))
                .graceful_stop_timeout(Duration::from_secs(20)),
        )?;
        let mut config = ReceiverConfig::default();
        config.block.block_interval = Duration::from_millis(5);
        let s = ctx.receiver_stream(
            Once(records),
            ReceiverStreamOptions {
                write_ahead_log: true,
                config,
                ..ReceiverStreamOptions::default()
            },
        );
        s.foreach_batch(move |b, _| {
            let n = b.count()?;
            if fail && n > 0 {
                return Err(StreamingError::ContextState("sink down".into()));
            }
            seen.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        Ok(ctx)
    })
    .expect("get_or_create")
}

#[test]
fn receiver_blocks_of_a_failed_batch_are_reread_from_the_write_ahead_log() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let seen = std::sync::Arc::new(AtomicU64::new(0));
    // Run 1: the batch with the records is planned, then its output fails: no commit.
    let ctx = receiver_job(&ckpt, 500, true, seen.clone());
    ctx.start().unwrap();
    assert!(ctx.await_termination().is_err());
    assert_eq!(seen.load(Ordering::SeqCst), 0);
    // Run 2: a receiver that stores nothing new; the pending batch re-runs from the log.
    let ctx = receiver_job(&ckpt, 0, false, seen.clone());
    ctx.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.load(Ordering::SeqCst) < 500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    ctx.stop(true).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 500);
}
