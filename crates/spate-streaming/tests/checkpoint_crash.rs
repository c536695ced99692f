//! Crash simulation: a child process writes plans, snapshots and commits in a loop and is killed
//! with SIGKILL at random points, many times. After every kill, recovery must see a consistent
//! prefix: committed batches contiguous, at most one pending batch (the next one) with exactly the
//! plan that was written, and a readable snapshot.
//!
//! Both write paths are exercised: the files (`write_plan`/`write_commit`, durable on return) and
//! the batch log's group commit (`append_plan`, one `sync`, `append_commit`), where the commit of
//! batch t is acknowledged only after the sync before batch t+1.
//!
//! The child is this same test binary re-invoked with an environment variable (the `child_entry`
//! test is a no-op otherwise).

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use spate_streaming::checkpoint::{BatchPlan, Checkpoint, CommitInfo, StateSnapshot};
use spate_testkit::ChildJob;

const ENV_DIR: &str = "SPATE_CHECKPOINT_CRASH_CHILD_DIR";
/// Set (to anything) to make the child use the batch log instead of the files.
const ENV_LOG: &str = "SPATE_CHECKPOINT_CRASH_CHILD_LOG";
const STEP: i64 = 1000;

fn plan(t: i64) -> BatchPlan {
    BatchPlan::new(t).with_input(
        "kafka-0",
        json!({"ranges": [{"topic": "t", "partition": 0, "from": t * 7, "until": t * 7 + 7}]}),
    )
}

fn snapshot(t: i64) -> StateSnapshot {
    let mut s = StateSnapshot::new(t);
    s.put("sum", &(0..t / STEP).collect::<Vec<i64>>())
        .expect("encode state");
    s
}

/// Runs a batch: plan first, snapshot every third batch, commit last. Returns the newest batch
/// whose commit is durable now: this one with files, the previous one with the batch log (its
/// commit rode on this batch's sync).
fn run_batch(cp: &Checkpoint, t: i64, log: bool) -> i64 {
    if log {
        cp.append_plan(&plan(t)).expect("append plan");
        cp.sync().expect("sync");
    } else {
        cp.write_plan(&plan(t)).expect("write plan");
    }
    if (t / STEP) % 3 == 0 {
        cp.write_state_snapshot(t, &snapshot(t))
            .expect("write snapshot");
    }
    let info = CommitInfo {
        num_records: 7,
        ..CommitInfo::default()
    };
    if log {
        cp.append_commit(t, &info).expect("append commit");
    } else {
        cp.write_commit(t, &info).expect("write commit");
    }
    if (t / STEP) % 5 == 0 {
        cp.purge(4).expect("purge");
    }
    if log {
        t - STEP
    } else {
        t
    }
}

#[test]
fn child_entry() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let log = std::env::var(ENV_LOG).is_ok();
    let cp = Checkpoint::open(&dir).expect("open");
    let recovery = cp.recover().expect("recover");
    for p in &recovery.pending {
        run_batch(&cp, p.batch_time_ms, log);
    }
    let mut t = recovery
        .pending
        .last()
        .map(|p| p.batch_time_ms)
        .max(recovery.last_committed)
        .unwrap_or(0)
        + STEP;
    // Safety net: never outlive a parent that failed to kill us.
    let mut out = std::io::stdout().lock();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let durable = run_batch(&cp, t, log);
        // Acknowledge a commit to the parent only once it is durable (batch times start at
        // STEP, so 0 is "nothing yet").
        if durable > 0 {
            writeln!(out, "{durable}").expect("ack");
            out.flush().expect("ack flush");
        }
        t += STEP;
    }
}

#[test]
fn sigkill_during_checkpoint_writes_leaves_a_consistent_prefix() {
    if std::env::var(ENV_DIR).is_ok() {
        return;
    }
    kill_rounds(false, 25);
}

#[test]
fn sigkill_during_group_commits_leaves_a_consistent_prefix() {
    if std::env::var(ENV_DIR).is_ok() {
        return;
    }
    kill_rounds(true, 25);
}

fn kill_rounds(log: bool, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut previous_committed: Option<i64> = None;
    let mut saw_pending = 0;
    for round in 0..rounds {
        let mut job = ChildJob::test_entry("child_entry");
        job.env(ENV_DIR, dir.path());
        if log {
            job.env(ENV_LOG, "1");
        }
        let printed = job
            .capture_stdout()
            .discard_stderr()
            .spawn()
            .kill_after_progress(Duration::from_millis(40));
        let acknowledged = printed.into_iter().max();

        let cp = Checkpoint::open(dir.path()).unwrap();
        let r = cp
            .recover()
            .unwrap_or_else(|e| panic!("round {round}: recovery failed: {e}"));
        // Committed batches form a contiguous run of batch times.
        for w in r.committed.windows(2) {
            assert_eq!(
                w[1] - w[0],
                STEP,
                "round {round}: gap in commits {:?}",
                r.committed
            );
        }
        assert!(
            r.last_committed >= previous_committed,
            "round {round}: commits went backwards"
        );
        // Every acknowledged commit is durable.
        assert!(
            r.last_committed >= acknowledged,
            "round {round}: commit {acknowledged:?} was acknowledged but recovery says {:?}",
            r.last_committed
        );
        previous_committed = r.last_committed;
        // At most one pending batch: the one after the last commit, with its exact plan.
        assert!(r.pending.len() <= 1, "round {round}: {:?}", r.pending);
        if let Some(p) = r.pending.first() {
            saw_pending += 1;
            assert_eq!(p.batch_time_ms, r.last_committed.unwrap_or(0) + STEP);
            assert_eq!(*p, plan(p.batch_time_ms));
        }
        // The chosen snapshot is committed, complete and holds what was written.
        if let Some(s) = &r.latest_snapshot {
            assert!(Some(s.batch_time_ms) <= r.last_committed);
            let snap = cp.read_state_snapshot(s.batch_time_ms).unwrap();
            assert_eq!(snap, snapshot(s.batch_time_ms));
        }
    }
    assert!(
        previous_committed.unwrap_or(0) > 0,
        "the child never committed anything"
    );
    eprintln!(
        "batch log {log}: last committed {previous_committed:?}; kills that left a pending batch: {saw_pending}/{rounds}"
    );
}
