//! Crash test: a stateful job (running word counts with `update_state_by_key` and an
//! incremental window) runs as a child process, is killed with SIGKILL at random points, and is
//! restarted with `get_or_create` each time; every batch's output must equal what an
//! uninterrupted run produces — nothing lost, nothing counted twice.
//!
//! The child is this test binary re-invoked with `SPATE_CRASH_CHILD_DIR` set (the `crash_child`
//! test does nothing otherwise).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;
use spate_streaming::{
    Config, InputStream, Partitions, StreamingContext, StreamingError, Time, VecPartitions,
};
use spate_testkit::child::{ChildJob, Running};

// Long enough (10 s of batch time) that 12 kills land before the end even when the machine is
// loaded: a restarted job catches up on down-time batches back to back.
const TOTAL: u64 = 500;
const INTERVAL_MS: u64 = 20;
const WORDS_PER_BATCH: u64 = 30;
const SEQ_KEY: &str = "__seq";

/// The words of batch `seq` of the deterministic source.
fn words(seq: u64) -> Vec<String> {
    if seq >= TOTAL {
        return Vec::new();
    }
    (0..WORDS_PER_BATCH)
        .map(|i| format!("w{}", (seq * 7 + i * 13 + seq * seq) % 40))
        .collect()
}

/// A replayable input keyed by batch index: the plan is the sequence number.
struct SeqInput {
    next: Mutex<u64>,
}

/// The plan: which batch of words.
#[derive(serde::Serialize, serde::Deserialize)]
struct Seq {
    seq: u64,
}

/// The snapshot state: the next sequence number.
#[derive(serde::Serialize, serde::Deserialize)]
struct Next {
    next: u64,
}

impl InputStream<(u64, String)> for SeqInput {
    type Plan = Seq;
    type State = Next;

    fn kind(&self) -> &str {
        "seq_words"
    }
    fn plan(&self, _time: Time) -> spate_streaming::Result<Seq> {
        let mut n = self.next.lock();
        let seq = *n;
        *n += 1;
        Ok(Seq { seq })
    }
    fn compute(
        &self,
        _t: Time,
        plan: &Seq,
    ) -> spate_streaming::Result<Arc<dyn Partitions<(u64, String)>>> {
        let seq = plan.seq;
        let data: Vec<(u64, String)> = words(seq).into_iter().map(|w| (seq, w)).collect();
        Ok(Arc::new(VecPartitions::split(data, 3)))
    }
    fn replayed(&self, _t: Time, plan: &Seq) -> spate_streaming::Result<()> {
        let mut n = self.next.lock();
        *n = (*n).max(plan.seq + 1);
        Ok(())
    }
    fn snapshot_state(&self) -> spate_streaming::Result<Option<Next>> {
        Ok(Some(Next {
            next: *self.next.lock(),
        }))
    }
    fn restore_state(&self, state: Next) -> spate_streaming::Result<()> {
        let mut next = self.next.lock();
        *next = (*next).max(state.next);
        Ok(())
    }
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn render(counts: &BTreeMap<String, u64>) -> String {
    counts.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
}

/// The job. Values are (kind, n): kind 0 = a word occurrence (summed), kind 1 = the batch's
/// sequence number (kept as the latest), so every state output says which batch it follows.
fn build(dir: &Path) -> spate_streaming::Result<StreamingContext> {
    let ctx = StreamingContext::new(
        Config::new("crash-wordcount")
            .batch_interval(Duration::from_millis(INTERVAL_MS))
            .executor_threads(2)
            .default_parallelism(3)
            .checkpoint_interval_batches(4)
            .graceful_stop_timeout(Duration::from_secs(10)),
    )?;
    let out = dir.join("out");
    std::fs::create_dir_all(&out).map_err(|e| StreamingError::io(&out, e))?;
    let input = ctx.input_stream(SeqInput {
        next: Mutex::new(0),
    });
    let pairs = input.flat_map(|(seq, w)| {
        let mut v = vec![(w, (0u8, 1u64))];
        // A seq marker per record: markers combine with max (state) or are divided out
        // (window, below), so how many there are does not matter.
        v.push((SEQ_KEY.to_string(), (1u8, seq)));
        v
    });
    let totals =
        pairs.update_state_by_key(|vals: &[(u8, u64)], old: Option<u64>| match vals.first() {
            Some((1, _)) => vals.iter().map(|v| v.1).max().max(old),
            _ => Some(old.unwrap_or(0) + vals.iter().map(|v| v.1).sum::<u64>()),
        });
    let out_state = out.clone();
    let ctx2 = ctx.clone();
    totals.foreach_batch(move |b, _t| {
        let mut m: BTreeMap<String, u64> = b.collect()?.into_iter().collect();
        let Some(seq) = m.remove(SEQ_KEY) else {
            return Ok(());
        };
        write_atomic(&out_state.join(format!("state-{seq}.txt")), &render(&m))
            .map_err(|e| StreamingError::io(&out_state, e))?;
        if seq + 1 >= TOTAL {
            write_atomic(&out_state.join("DONE"), "done")
                .map_err(|e| StreamingError::io(&out_state, e))?;
            ctx2.stop(true)?;
        }
        Ok::<_, StreamingError>(())
    });
    // Counts over the last two batches; each record's seq marker carries n + 1, so the seq
    // key's window sum is WORDS_PER_BATCH × (2n + 1) (× 1 for batch 0), which names batch n.
    // An even multiple, WORDS_PER_BATCH × (n + 1), is a window holding batch n alone: the
    // window of the (empty) batch after the source's last one, which the graceful stop runs.
    let windowed = pairs
        .map(|(k, (kind, n))| (k, if kind == 1 { n + 1 } else { n }))
        .reduce_by_key_and_window_inv_filtered(
            |a, b| a + b,
            |a, b| a - b,
            Duration::from_millis(2 * INTERVAL_MS),
            Duration::from_millis(INTERVAL_MS),
            |(_, c)| *c != 0,
        )?;
    let out_win = out.clone();
    windowed.foreach_batch(move |b, _t| {
        let mut m: BTreeMap<String, u64> = b.collect()?.into_iter().collect();
        let Some(sum) = m.remove(SEQ_KEY) else {
            return Ok(());
        };
        let q = sum / WORDS_PER_BATCH;
        let name = if q % 2 == 1 {
            format!("window-{}.txt", (q - 1) / 2)
        } else {
            format!("window-only-{}.txt", q - 1)
        };
        write_atomic(&out_win.join(name), &render(&m))
            .map_err(|e| StreamingError::io(&out_win, e))?;
        Ok::<_, StreamingError>(())
    });
    Ok(ctx)
}

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("SPATE_CRASH_CHILD_DIR") else {
        return; // not a child: nothing to do
    };
    let dir = PathBuf::from(dir);
    let ctx =
        StreamingContext::get_or_create(dir.join("ckpt"), || build(&dir)).expect("get_or_create");
    ctx.start().expect("start");
    ctx.await_termination().expect("job failed");
}

fn spawn_child(dir: &Path) -> Running {
    ChildJob::test_entry("crash_child")
        .env("SPATE_CRASH_CHILD_DIR", dir)
        .spawn()
}

fn expected_state(seq: u64) -> String {
    let mut m = BTreeMap::new();
    for s in 0..=seq {
        for w in words(s) {
            *m.entry(w).or_insert(0u64) += 1;
        }
    }
    render(&m)
}

fn expected_window(seq: u64) -> String {
    expected_counts(seq.saturating_sub(1)..=seq)
}

fn expected_counts(seqs: std::ops::RangeInclusive<u64>) -> String {
    let mut m = BTreeMap::new();
    for s in seqs {
        for w in words(s) {
            *m.entry(w).or_insert(0u64) += 1;
        }
    }
    render(&m)
}

#[test]
fn killed_job_recovers_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = dir.join("out");
    let mut rng = rand::rng();
    let started = Instant::now();
    let mut kills = 0;
    while kills < 12 {
        let child = spawn_child(dir);
        std::thread::sleep(Duration::from_millis(rng.random_range(120..380)));
        if out.join("DONE").exists() {
            child.wait(Duration::from_secs(30));
            break;
        }
        child.kill();
        kills += 1;
        let done = std::fs::read_dir(&out)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("state-"))
                    .count()
            })
            .unwrap_or(0);
        eprintln!("SIGKILL #{kills}: {done} of {TOTAL} batches had written their output");
    }
    // Last run: to completion.
    let status = spawn_child(dir).wait(Duration::from_secs(90));
    assert!(status.success(), "final run failed: {status}");
    eprintln!(
        "{kills} kills, {TOTAL} batches, {:?} total",
        started.elapsed()
    );
    assert!(
        kills >= 10,
        "only {kills} kills before the job finished; make TOTAL larger"
    );
    for seq in 0..TOTAL {
        let state = std::fs::read_to_string(out.join(format!("state-{seq}.txt")))
            .unwrap_or_else(|_| panic!("state output of batch {seq} missing"));
        assert_eq!(
            state,
            expected_state(seq),
            "running counts after batch {seq}"
        );
        let win = std::fs::read_to_string(out.join(format!("window-{seq}.txt")))
            .unwrap_or_else(|_| panic!("window output of batch {seq} missing"));
        assert_eq!(win, expected_window(seq), "window counts at batch {seq}");
    }
    // The graceful stop requested at the last batch runs the batch after it to the end: its
    // window holds the last batch alone. No other window output exists.
    let last = TOTAL - 1;
    let only = std::fs::read_to_string(out.join(format!("window-only-{last}.txt")))
        .unwrap_or_else(|_| panic!("window output of the batch after {last} missing"));
    assert_eq!(
        only,
        expected_counts(last..=last),
        "window after batch {last}"
    );
    let windows = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("window-") && name.ends_with(".txt")
        })
        .count();
    assert_eq!(windows as u64, TOTAL + 1, "unexpected window outputs");
}
