//! The engine's side of changelog-backed state, with a changelog kept in memory (a `Vec` of
//! entries per partition, standing in for any log; the Kafka one is tested in spate-kafka):
//! which entries each operator records per batch, restore (last value wins, tombstones delete,
//! progress reported), and the checks at `start`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spate_streaming::error::BoxError;
use spate_streaming::state::changelog::RestoreFn;
use spate_streaming::{
    ChangelogEntry, Config, State, StateChangelog, StateChanges, StateRestoreInfo, StateSpec,
    StreamingContext, StreamingListener,
};

/// A changelog in memory: per operator, per partition, every entry in order.
#[derive(Default)]
struct MemoryLog {
    parts: Mutex<BTreeMap<String, Vec<Vec<ChangelogEntry>>>>,
}

impl StateChangelog for MemoryLog {
    fn open(&self, operator: &str, partitions: usize) -> Result<(), BoxError> {
        let mut parts = self.parts.lock();
        let log = parts.entry(operator.to_owned()).or_default();
        if log.is_empty() {
            log.resize(partitions, Vec::new());
        }
        if log.len() != partitions {
            return Err(format!("{} partitions, not {partitions}", log.len()).into());
        }
        Ok(())
    }

    fn restore(
        &self,
        operator: &str,
        partition: usize,
        expected: &mut dyn FnMut(u64),
        apply: &mut RestoreFn<'_>,
    ) -> Result<u64, BoxError> {
        let entries = self.parts.lock()[operator][partition].clone();
        expected(entries.len() as u64);
        for e in &entries {
            apply(&e.key, e.value.as_deref())?;
        }
        Ok(entries.len() as u64)
    }

    fn record(&self, changes: StateChanges) -> Result<(), BoxError> {
        let mut parts = self.parts.lock();
        let log = parts.get_mut(&changes.operator).ok_or("not opened")?;
        for (p, entries) in changes.partitions.into_iter().enumerate() {
            log[p].extend(entries);
        }
        Ok(())
    }
}

impl MemoryLog {
    /// (upserts, tombstones) over all partitions of `operator`.
    fn counts(&self, operator: &str) -> (usize, usize) {
        let parts = self.parts.lock();
        let all = parts[operator].iter().flatten();
        all.fold((0, 0), |(u, t), e| match e.value {
            Some(_) => (u + 1, t),
            None => (u, t + 1),
        })
    }
}

type Latest = Arc<Mutex<Option<BTreeMap<String, i64>>>>;

fn ctx() -> StreamingContext {
    StreamingContext::new(Config::new("changelog").batch_interval(Duration::from_millis(20)))
        .unwrap()
}

/// update_state_by_key over (word, n); n = 0 removes the word.
fn counting(
    log: &Arc<MemoryLog>,
) -> (
    StreamingContext,
    spate_streaming::input::queue::QueueHandle<(String, i64)>,
    Latest,
) {
    let ctx = ctx();
    let (queue, pairs) = ctx.queue_stream::<(String, i64)>(true);
    let latest: Latest = Arc::default();
    let out = latest.clone();
    pairs
        .update_state_by_key_with(
            |new: &[i64], old: Option<i64>| {
                (!new.contains(&0)).then(|| old.unwrap_or(0) + new.iter().sum::<i64>())
            },
            3,
            vec![("init".to_owned(), 10)],
        )
        .uid("counts")
        .foreach_batch(move |b, _| {
            *out.lock() = Some(b.collect()?.into_iter().collect());
            Ok::<_, spate_streaming::StreamingError>(())
        });
    ctx.state_changelog("counts", log.clone());
    (ctx, queue, latest)
}

fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(w, n)| ((*w).to_owned(), *n)).collect()
}

fn wait_state(latest: &Latest, want: &[(&str, i64)]) {
    let want: BTreeMap<String, i64> = pairs(want).into_iter().collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while latest.lock().as_ref() != Some(&want) {
        assert!(
            std::time::Instant::now() < deadline,
            "state {:?}, want {want:?}",
            latest.lock()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[derive(Default)]
struct Restores(Mutex<Vec<StateRestoreInfo>>);

impl StreamingListener for Restores {
    fn on_state_restore(&self, info: &StateRestoreInfo) {
        self.0.lock().push(info.clone());
    }
}

#[test]
fn update_state_by_key_logs_changed_keys_and_restores_them() {
    let log = Arc::new(MemoryLog::default());
    let (ctx, queue, latest) = counting(&log);
    ctx.start().unwrap();
    queue.push(pairs(&[("a", 1), ("b", 2)]));
    wait_state(&latest, &[("a", 1), ("b", 2), ("init", 10)]);
    queue.push(pairs(&[("a", 2), ("b", 0), ("init", 0)]));
    wait_state(&latest, &[("a", 3)]);
    ctx.stop(true).unwrap();
    // a, b; then a, and tombstones of b and of the initial key; idle batches log nothing.
    assert_eq!(log.counts("counts"), (3, 2));

    let (ctx, _queue, latest) = counting(&log);
    let restores = Arc::new(Restores::default());
    ctx.add_streaming_listener(restores.clone());
    ctx.start().unwrap();
    // The initial state is the base; the changelog's tombstone removed `init`.
    wait_state(&latest, &[("a", 3)]);
    let done: Vec<_> = ctx.metrics().state_restores();
    assert_eq!(done.len(), 3);
    assert_eq!(done.iter().map(|r| r.records_restored).sum::<u64>(), 5);
    assert!(done
        .iter()
        .all(|r| r.done && r.records_expected == Some(r.records_restored)));
    ctx.stop(true).unwrap();
    let events = restores.0.lock();
    assert_eq!(events.iter().filter(|r| r.done).count(), 3);
    assert_eq!(
        events.iter().filter(|r| !r.done).count(),
        3,
        "a start report each"
    );
}

#[test]
fn map_with_state_logs_touched_keys_and_timeouts_as_tombstones() {
    let log = Arc::new(MemoryLog::default());
    let ctx = ctx();
    let (queue, words) = ctx.queue_stream::<String>(true);
    let spec = StateSpec::function(|w: &String, one: Option<i64>, st: &mut State<i64>| {
        if st.is_timing_out() {
            return (w.clone(), -1);
        }
        let n = st.get().copied().unwrap_or(0) + one.unwrap_or(0);
        st.update(n);
        (w.clone(), n)
    })
    .num_partitions(2)
    .timeout(Duration::from_millis(100));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    words
        .map(|w| (w, 1i64))
        .map_with_state(spec)
        .uid("words")
        .foreach_batch(move |b, _| {
            out.lock().extend(b.collect()?);
            Ok::<_, spate_streaming::StreamingError>(())
        });
    ctx.state_changelog("words", log.clone());
    ctx.start().unwrap();
    queue.push(vec!["x".into(), "y".into(), "x".into()]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().iter().filter(|(_, n)| *n == -1).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", seen.lock());
        std::thread::sleep(Duration::from_millis(5));
    }
    ctx.stop(true).unwrap();
    // x and y once each (x touched twice in one batch), then both time out.
    assert_eq!(log.counts("words"), (2, 2));
}

#[test]
fn start_refuses_unknown_uids_and_checkpointed_jobs() {
    let log = Arc::new(MemoryLog::default());
    let (ctx, _queue, _latest) = counting(&log);
    ctx.state_changelog("nope", log.clone());
    let err = ctx.start().unwrap_err().to_string();
    assert!(err.contains("no stateful operator has that uid"), "{err}");

    let (ctx, _queue, _latest) = counting(&log);
    let dir = tempfile::tempdir().unwrap();
    ctx.checkpoint(dir.path()).unwrap();
    let err = ctx.start().unwrap_err().to_string();
    assert!(err.contains("checkpoint directory"), "{err}");
}
