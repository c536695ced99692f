//! The checkpoint directory: the offset log, the commit log, operator state snapshots and the job
//! metadata — everything a restarted job needs to continue exactly where it stopped.
//!
//! The contract: a batch's [`BatchPlan`] is durable in the offset log *before* the batch runs; a
//! commit record is written after every output of the batch succeeded; on restart
//! [`Checkpoint::recover`] returns every planned-but-uncommitted batch so the scheduler re-runs
//! it with the identical plan, and only then plans new batches. Unlike Spark's Java-serialized
//! checkpoints (which a new build of the job cannot read), everything here is versioned,
//! documented data, so a new build of the job can read an old checkpoint.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! <dir>/metadata                         JSON JobMetadata: {"version":1,"app_name":..,"batch_interval_ms":..,
//!                                          "inputs":[{"id":..,"kind":..}],"stateful_operators":[{"id":..,"state_type":..}]}
//! <dir>/offsets/<batch_time_ms>          JSON {"version":1,"batch_time_ms":..,"inputs":{"<input id>": <input-defined JSON>}}
//! <dir>/commits/<batch_time_ms>          JSON {"version":1,"batch_time_ms":..,"commit_time_ms":..,"num_records":..,
//!                                          "processing_delay_ms":..|null}
//! <dir>/batches/<segment>.log          the batch log: plan and commit records (the same JSON documents)
//!                                        appended with one fsync per batch, see the `batch_log` module
//! <dir>/state/<batch_time_ms>.snapshot   binary, see the `snapshot` module: magic, version, length, CRC-32C, postcard body
//!                                        (snapshots up to 64 KiB are records of the batch log instead)
//! <dir>/receivers/<input id>/            write-ahead logs of a receiver input (the `receiver` module):
//!     receivedData/<stream id>/          the received blocks
//!     receivedBlockMetadata/             the block tracker's log (blocks received, allocated to batches)
//! ```
//!
//! `<batch_time_ms>` is the decimal batch time in milliseconds since the epoch. Every file is
//! written as `.<name>.tmp`, fsynced, renamed into place and the directory fsynced, so a reader
//! sees either the complete new file or no file; temp files left by a crash are ignored by
//! readers and deleted by [`Checkpoint::open`]. Readers accept any file whose `version` is at most
//! the version they were built with and ignore unknown JSON fields, so adding an optional field is
//! a compatible change; anything else bumps the version. A file of a newer version, or a job whose
//! inputs or stateful operators changed incompatibly, yields
//! [`StreamingError::CheckpointIncompatible`] naming the file and each mismatch; a damaged file
//! yields [`StreamingError::CheckpointCorrupt`] naming the file.
//!
//! Plans and commits are written either as files (`write_plan`, `write_commit`: durable on
//! return, two fsyncs each) or appended to the batch log (`append_plan`, `append_commit`, made
//! durable together by `sync`: the scheduler's path, one fsync per batch). Readers merge both, so
//! a checkpoint written before the batch log existed is read as before.
//!
//! # Order of writes expected from the scheduler
//!
//! 1. `append_plan(plan)`, then `sync()` before any task of the batch reads input (the same
//!    sync makes the previous batch's commit durable);
//! 2. run the batch and its outputs;
//! 3. `append_state_snapshot(t, snapshot)` when a snapshot is due at `t` (a small one goes into
//!    the batch log and shares the next sync; `write_state_snapshot` writes a file, durable on
//!    return);
//! 4. `append_commit(t, info)` (durable at the next `sync`);
//! 5. now and then `purge(DEFAULT_RETAINED_BATCHES)`.
//!
//! A snapshot is only used by recovery once its batch is committed, so a crash between 3 and 4
//! re-runs batch `t` from the previous snapshot rather than applying `t` twice.
//!
//! # Example
//!
//! ```
//! use spate_streaming::checkpoint::{BatchPlan, Checkpoint, CommitInfo, JobMetadata};
//! # let dir = tempfile::tempdir().expect("temp dir");
//! let job = JobMetadata::new("wordcount", 500).with_input("kafka-0", "kafka-direct/v1");
//! let checkpoint = Checkpoint::open_for_job(dir.path(), &job)?; // fails if the job changed incompatibly
//! let recovery = checkpoint.recover()?;
//! for plan in &recovery.pending {
//!     // re-run the batch with exactly `plan`, then:
//!     checkpoint.write_commit(plan.batch_time_ms, &CommitInfo::default())?;
//! }
//! let plan = BatchPlan::new(1_000)
//!     .with_input("kafka-0", serde_json::json!({"ranges": [["events", 0, 0, 100]]}));
//! checkpoint.write_plan(&plan)?; // durable before the batch reads anything
//! // ... run the batch and its outputs ...
//! checkpoint.write_commit(1_000, &CommitInfo { num_records: 100, ..CommitInfo::default() })?;
//! assert_eq!(checkpoint.recover()?.last_committed, Some(1_000));
//! # Ok::<(), spate_streaming::StreamingError>(())
//! ```

mod atomic;
mod batch_log;
mod metadata;
mod offset_log;
mod snapshot;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

pub use metadata::{InputDescriptor, JobMetadata, OperatorDescriptor, METADATA_FORMAT_VERSION};
pub use offset_log::{BatchPlan, CommitInfo, COMMIT_LOG_VERSION, OFFSET_LOG_VERSION};
pub use snapshot::{SnapshotRef, StateSnapshot, SNAPSHOT_FORMAT_VERSION};

use crate::error::{Result, StreamingError};

/// How many committed batches [`Checkpoint::purge`] keeps by default (Spark keeps 10 checkpoint
/// files).
pub const DEFAULT_RETAINED_BATCHES: usize = 10;

/// Name of the job metadata file.
const METADATA_FILE: &str = "metadata";
/// Name of the offset-log directory.
const OFFSETS_DIR: &str = "offsets";
/// Name of the commit-log directory.
const COMMITS_DIR: &str = "commits";
/// Name of the batch-log directory (see the `batch_log` module).
const BATCHES_DIR: &str = "batches";
/// Name of the state-snapshot directory.
const STATE_DIR: &str = "state";
/// Directory under the checkpoint holding one directory of write-ahead logs per receiver input
/// (`receivers/<input id>`, see [`crate::InputContext::receiver_log_dir`]).
pub const RECEIVERS_DIR: &str = "receivers";
/// Name of the receiver write-ahead-log directory (one subdirectory per stream id) under a
/// receiver input's log directory, as in Spark.
pub const RECEIVED_DATA_DIR: &str = "receivedData";
/// Name of the block tracker's write-ahead-log directory under a receiver input's log
/// directory, as in Spark.
pub const RECEIVED_BLOCK_METADATA_DIR: &str = "receivedBlockMetadata";

/// What a restarted job must do, as read from the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// The newest committed batch time, if any batch was ever committed.
    pub last_committed: Option<i64>,
    /// Committed batch times still retained in the commit log, ascending.
    pub committed: Vec<i64>,
    /// Planned but uncommitted batches, ascending by batch time: re-run these with exactly these
    /// plans before planning anything new.
    pub pending: Vec<BatchPlan>,
    /// The newest state snapshot whose batch is committed (the state to resume from).
    pub latest_snapshot: Option<SnapshotRef>,
}

/// What [`Checkpoint::purge`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeStats {
    /// Offset-log files removed.
    pub offsets_removed: usize,
    /// Commit-log files removed.
    pub commits_removed: usize,
    /// Snapshot files removed.
    pub snapshots_removed: usize,
}

/// An open checkpoint directory. See the module docs for the format and the write order.
///
/// Methods take `&self`; the scheduler is expected to be the only writer (one job per directory).
#[derive(Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    offsets: PathBuf,
    commits: PathBuf,
    state: PathBuf,
    metadata: Option<JobMetadata>,
    log: parking_lot::Mutex<batch_log::BatchLog>,
    /// Whether `offsets/` or `commits/` held files when opened, or `write_plan`/`write_commit`
    /// wrote some (a checkpoint from before the batch log): if not, the per-batch plan check and
    /// the purge skip those directories (the scheduler is the only writer).
    legacy_files: std::sync::atomic::AtomicBool,
}

impl Checkpoint {
    /// Opens (creating if needed) the checkpoint at `dir`: creates `offsets/`, `commits/`,
    /// `state/`, deletes temp files left by a crashed writer and loads `metadata` if present.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let offsets = dir.join(OFFSETS_DIR);
        let commits = dir.join(COMMITS_DIR);
        let state = dir.join(STATE_DIR);
        let batches = dir.join(BATCHES_DIR);
        for d in [&dir, &offsets, &commits, &state, &batches] {
            atomic::ensure_dir(d)?;
            let removed = atomic::remove_temp_files(d)?;
            if removed > 0 {
                tracing::info!(dir = %d.display(), removed, "removed temp files left by an interrupted checkpoint write");
            }
        }
        let meta_path = dir.join(METADATA_FILE);
        let metadata = if meta_path.exists() {
            Some(JobMetadata::decode(
                &meta_path,
                &atomic::read_file(&meta_path)?,
            )?)
        } else {
            None
        };
        let log = parking_lot::Mutex::new(batch_log::BatchLog::open(batches)?);
        let legacy_files = has_entries(&offsets)? || has_entries(&commits)?;
        Ok(Checkpoint {
            dir,
            offsets,
            commits,
            state,
            metadata,
            log,
            legacy_files: legacy_files.into(),
        })
    }

    /// Opens the checkpoint for the job described by `job`: fails with
    /// [`StreamingError::CheckpointIncompatible`] if the stored metadata does not allow this job
    /// to continue; otherwise records `job` as the current metadata (so inputs and operators added
    /// by an upgrade become part of later checks).
    pub fn open_for_job(dir: impl AsRef<Path>, job: &JobMetadata) -> Result<Self> {
        let mut checkpoint = Self::open(dir)?;
        checkpoint.check_compatible(job)?;
        if checkpoint.metadata.as_ref() != Some(job) {
            checkpoint.write_metadata(job)?;
        }
        Ok(checkpoint)
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The stored job metadata, if the checkpoint has any.
    pub fn metadata(&self) -> Option<&JobMetadata> {
        self.metadata.as_ref()
    }

    /// Atomically writes the job metadata file.
    pub fn write_metadata(&mut self, job: &JobMetadata) -> Result<()> {
        atomic::write_atomic(&self.dir, METADATA_FILE, &job.encode()?)?;
        self.metadata = Some(job.clone());
        Ok(())
    }

    /// Checks that a job described by `job` may continue from this checkpoint. A checkpoint
    /// without metadata is compatible with anything. The error lists every mismatch.
    pub fn check_compatible(&self, job: &JobMetadata) -> Result<()> {
        let Some(stored) = &self.metadata else {
            return Ok(());
        };
        let mismatches = stored.mismatches(job);
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(StreamingError::CheckpointIncompatible {
                path: self.dir.join(METADATA_FILE),
                mismatches,
            })
        }
    }

    /// Durably records the plan of a batch. Must return before the batch reads any input.
    ///
    /// Re-writing the identical plan (re-running a pending batch) is allowed; a *different* plan
    /// for an already planned batch time is a [`StreamingError::CheckpointConflict`], because
    /// replaying a batch with other data would break exactly-once.
    pub fn write_plan(&self, plan: &BatchPlan) -> Result<()> {
        if self.already_planned(plan)? {
            return Ok(());
        }
        let name = plan.batch_time_ms.to_string();
        self.legacy_files.store(true, Ordering::SeqCst);
        atomic::write_atomic(&self.offsets, &name, &offset_log::encode_plan(plan)?)?;
        tracing::debug!(batch_time_ms = plan.batch_time_ms, "wrote batch plan");
        Ok(())
    }

    /// Appends the plan of a batch to the batch log without waiting for the disk: it is durable
    /// once [`Checkpoint::sync`] returns, which must happen before the batch reads any input.
    /// This is the scheduler's group commit: the plan of batch *t+1* and the commit of batch *t*
    /// share one fsync (see the `batch_log` module). Same conflict rules as
    /// [`Checkpoint::write_plan`].
    pub fn append_plan(&self, plan: &BatchPlan) -> Result<()> {
        if self.already_planned(plan)? {
            return Ok(());
        }
        self.log.lock().append_plan(plan)?;
        tracing::debug!(batch_time_ms = plan.batch_time_ms, "appended batch plan");
        Ok(())
    }

    /// Whether the identical plan is already recorded; a different one is a conflict.
    fn already_planned(&self, plan: &BatchPlan) -> Result<bool> {
        // Once per batch: without files of the format before the batch log, the log's index
        // is the whole answer (no lookup of a file that does not exist).
        let recorded = if self.legacy_files.load(Ordering::SeqCst) {
            self.read_plan(plan.batch_time_ms)?
        } else {
            self.log
                .lock()
                .index
                .plans
                .get(&plan.batch_time_ms)
                .cloned()
        };
        let Some(existing) = recorded else {
            return Ok(false);
        };
        if existing == *plan {
            return Ok(true);
        }
        Err(StreamingError::CheckpointConflict {
            path: self.offsets.join(plan.batch_time_ms.to_string()),
            reason: format!(
                "batch {} is already planned with a different plan",
                plan.batch_time_ms
            ),
        })
    }

    /// Makes everything appended with [`Checkpoint::append_plan`] and
    /// [`Checkpoint::append_commit`] durable: at most one fsync.
    pub fn sync(&self) -> Result<()> {
        self.log.lock().sync()
    }

    /// Reads the plan of a batch, if it was planned (and not purged).
    pub fn read_plan(&self, batch_time_ms: i64) -> Result<Option<BatchPlan>> {
        if let Some(plan) = self.log.lock().index.plans.get(&batch_time_ms) {
            return Ok(Some(plan.clone()));
        }
        let path = self.offsets.join(batch_time_ms.to_string());
        match read_if_exists(&path)? {
            None => Ok(None),
            Some(bytes) => offset_log::decode_plan(&path, batch_time_ms, &bytes).map(Some),
        }
    }

    /// Durably marks a batch as committed: every output of it succeeded.
    pub fn write_commit(&self, batch_time_ms: i64, info: &CommitInfo) -> Result<()> {
        let name = batch_time_ms.to_string();
        self.legacy_files.store(true, Ordering::SeqCst);
        atomic::write_atomic(
            &self.commits,
            &name,
            &offset_log::encode_commit(batch_time_ms, info)?,
        )?;
        tracing::debug!(batch_time_ms, "wrote batch commit");
        Ok(())
    }

    /// Appends the commit of a batch to the batch log without waiting for the disk; it is durable
    /// once [`Checkpoint::sync`] returns (the scheduler syncs before the next batch runs and when
    /// it stops). Until then a crash re-runs the batch, exactly as a crash just before
    /// [`Checkpoint::write_commit`] would.
    pub fn append_commit(&self, batch_time_ms: i64, info: &CommitInfo) -> Result<()> {
        self.log.lock().append_commit(batch_time_ms, info)?;
        tracing::debug!(batch_time_ms, "appended batch commit");
        Ok(())
    }

    /// Reads the commit record of a batch, if it was committed (and not purged).
    pub fn read_commit(&self, batch_time_ms: i64) -> Result<Option<CommitInfo>> {
        if let Some(info) = self.log.lock().index.commits.get(&batch_time_ms) {
            return Ok(Some(info.clone()));
        }
        let path = self.commits.join(batch_time_ms.to_string());
        match read_if_exists(&path)? {
            None => Ok(None),
            Some(bytes) => offset_log::decode_commit(&path, batch_time_ms, &bytes).map(Some),
        }
    }

    /// Reads the offset and commit logs and tells the scheduler where to resume. Every retained
    /// file is parsed, so a damaged one is reported (naming it) here rather than mid-run.
    pub fn recover(&self) -> Result<Recovery> {
        let log = self.log.lock();
        let mut committed_set: std::collections::BTreeSet<i64> =
            log.index.commits.keys().copied().collect();
        for (time, path) in atomic::list_batch_files(&self.commits, "")? {
            offset_log::decode_commit(&path, time, &atomic::read_file(&path)?)?;
            committed_set.insert(time);
        }
        let mut plans: BTreeMap<i64, BatchPlan> = log.index.plans.clone();
        drop(log);
        for (time, path) in atomic::list_batch_files(&self.offsets, "")? {
            let plan = offset_log::decode_plan(&path, time, &atomic::read_file(&path)?)?;
            plans.entry(time).or_insert(plan);
        }
        let pending: Vec<BatchPlan> = plans
            .into_iter()
            .filter(|(t, _)| !committed_set.contains(t))
            .map(|(_, p)| p)
            .collect();
        let committed: Vec<i64> = committed_set.into_iter().collect();
        let last_committed = committed.last().copied();
        let latest_snapshot = self.latest_committed_snapshot(last_committed)?;
        tracing::info!(
            dir = %self.dir.display(),
            ?last_committed,
            pending = pending.len(),
            snapshot = ?latest_snapshot.as_ref().map(|s| s.batch_time_ms),
            "recovered checkpoint"
        );
        Ok(Recovery {
            last_committed,
            committed,
            pending,
            latest_snapshot,
        })
    }

    fn latest_committed_snapshot(
        &self,
        last_committed: Option<i64>,
    ) -> Result<Option<SnapshotRef>> {
        let Some(last) = last_committed else {
            return Ok(None);
        };
        let in_file = atomic::list_batch_files(&self.state, snapshot::SNAPSHOT_SUFFIX)?
            .into_iter()
            .rfind(|(time, _)| *time <= last);
        let in_log = self
            .log
            .lock()
            .index
            .snapshots
            .range(..=last)
            .next_back()
            .map(|(time, _)| (*time, self.dir.join(BATCHES_DIR)));
        Ok(in_file
            .into_iter()
            .chain(in_log)
            .max_by_key(|(time, _)| *time)
            .map(|(batch_time_ms, path)| SnapshotRef {
                batch_time_ms,
                path,
            }))
    }

    /// Records the operator state after batch `batch_time_ms`, before the batch's commit (see
    /// the module docs): a small snapshot is appended to the batch log and becomes durable with
    /// the next [`Checkpoint::sync`] — never after the commit appended behind it — so it costs
    /// no fsync of its own; a larger one is written as a file with
    /// [`Checkpoint::write_state_snapshot`]. The scheduler's path.
    pub fn append_state_snapshot(
        &self,
        batch_time_ms: i64,
        snapshot: &StateSnapshot,
    ) -> Result<()> {
        check_snapshot_time(batch_time_ms, snapshot)?;
        let bytes = snapshot::encode_snapshot(snapshot)?;
        if bytes.len() > batch_log::LOG_SNAPSHOT_MAX_BYTES {
            let name = snapshot::snapshot_file_name(batch_time_ms);
            atomic::write_atomic(&self.state, &name, &bytes)?;
            tracing::debug!(batch_time_ms, bytes = bytes.len(), "wrote state snapshot");
            return Ok(());
        }
        self.log.lock().append_snapshot(batch_time_ms, &bytes)?;
        tracing::debug!(
            batch_time_ms,
            bytes = bytes.len(),
            "appended state snapshot"
        );
        Ok(())
    }

    /// Durably writes the operator state after batch `batch_time_ms`. Write it before the batch's
    /// commit record (see the module docs).
    pub fn write_state_snapshot(
        &self,
        batch_time_ms: i64,
        snapshot: &StateSnapshot,
    ) -> Result<SnapshotRef> {
        check_snapshot_time(batch_time_ms, snapshot)?;
        let bytes = snapshot::encode_snapshot(snapshot)?;
        let path = atomic::write_atomic(
            &self.state,
            &snapshot::snapshot_file_name(batch_time_ms),
            &bytes,
        )?;
        tracing::debug!(batch_time_ms, bytes = bytes.len(), "wrote state snapshot");
        Ok(SnapshotRef {
            batch_time_ms,
            path,
        })
    }

    /// Reads and validates the snapshot written after batch `batch_time_ms`.
    pub fn read_state_snapshot(&self, batch_time_ms: i64) -> Result<StateSnapshot> {
        if let Some(bytes) = self.log.lock().index.snapshots.get(&batch_time_ms) {
            return snapshot::decode_snapshot(&self.dir.join(BATCHES_DIR), batch_time_ms, bytes);
        }
        let path = self.state.join(snapshot::snapshot_file_name(batch_time_ms));
        snapshot::decode_snapshot(&path, batch_time_ms, &atomic::read_file(&path)?)
    }

    /// Deletes history that recovery no longer needs:
    ///
    /// - offset-log and commit-log entries of committed batches older than the `keep` newest
    ///   committed ones, but never anything newer than the latest committed snapshot (a stateful
    ///   job may need to replay those batches on top of it) and never an uncommitted plan;
    /// - snapshots older than the latest committed snapshot.
    pub fn purge(&self, keep: usize) -> Result<PurgeStats> {
        let keep = keep.max(1);
        let mut stats = PurgeStats::default();
        let legacy = self.legacy_files.load(Ordering::SeqCst);
        let commits = if legacy {
            atomic::list_batch_files(&self.commits, "")?
        } else {
            Vec::new()
        };
        let mut all_committed: Vec<i64> = commits.iter().map(|(t, _)| *t).collect();
        // Only commits that are durable count: a snapshot whose commit a crash could still
        // lose must not be what older history is deleted for (the scheduler purges right
        // after appending a commit, before the next sync).
        {
            let log = self.log.lock();
            let durable = log.durable_commit();
            all_committed.extend(
                log.index
                    .commits
                    .keys()
                    .copied()
                    .take_while(|t| Some(*t) <= durable),
            );
        }
        all_committed.sort_unstable();
        all_committed.dedup();
        let last_committed = all_committed.last().copied();
        let snapshot = self.latest_committed_snapshot(last_committed)?;
        // Commits older than this leave the log (none unless more than `keep` are committed).
        let mut log_cutoff = i64::MIN;

        if all_committed.len() > keep {
            let mut cutoff = all_committed[all_committed.len() - keep];
            if let Some(s) = &snapshot {
                cutoff = cutoff.min(s.batch_time_ms);
            }
            let committed: BTreeMap<i64, PathBuf> = commits.into_iter().collect();
            let committed_anywhere: std::collections::BTreeSet<i64> =
                all_committed.into_iter().collect();
            // Offsets first: a plan without a commit would look pending, a commit without a plan
            // is ignored by recovery, so deleting in this order never resurrects a batch. The
            // log goes last, as its commits may be what marks an old plan file as committed.
            let plan_files = if legacy {
                atomic::list_batch_files(&self.offsets, "")?
            } else {
                Vec::new()
            };
            for (time, path) in plan_files {
                if time < cutoff && committed_anywhere.contains(&time) {
                    atomic::remove_file(&path)?;
                    stats.offsets_removed += 1;
                }
            }
            for (time, path) in committed.range(..cutoff) {
                let _ = time;
                atomic::remove_file(path)?;
                stats.commits_removed += 1;
            }
            if stats != PurgeStats::default() {
                // The file deletions must be durable before the log can drop the commits.
                for d in [&self.offsets, &self.commits] {
                    atomic::fsync_dir(d)?;
                }
            }
            log_cutoff = cutoff;
        }
        let (plans, commits_in_log, snapshots_in_log) = self
            .log
            .lock()
            .purge(log_cutoff, snapshot.as_ref().map(|s| s.batch_time_ms))?;
        stats.offsets_removed += plans;
        stats.commits_removed += commits_in_log;
        stats.snapshots_removed += snapshots_in_log;
        let mut snapshot_files_removed = 0;
        if let Some(s) = &snapshot {
            for (time, path) in atomic::list_batch_files(&self.state, snapshot::SNAPSHOT_SUFFIX)? {
                if time < s.batch_time_ms {
                    atomic::remove_file(&path)?;
                    snapshot_files_removed += 1;
                }
            }
        }
        stats.snapshots_removed += snapshot_files_removed;
        if snapshot_files_removed > 0 {
            atomic::fsync_dir(&self.state)?;
        }
        if stats != PurgeStats::default() {
            tracing::debug!(?stats, "purged checkpoint");
        }
        Ok(stats)
    }
}

/// Whether directory `dir` holds anything.
fn has_entries(dir: &Path) -> Result<bool> {
    let mut entries = std::fs::read_dir(dir).map_err(|source| StreamingError::CheckpointIo {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(entries.next().is_some())
}

/// A snapshot must be recorded under the batch time it holds.
fn check_snapshot_time(batch_time_ms: i64, snapshot: &StateSnapshot) -> Result<()> {
    if snapshot.batch_time_ms == batch_time_ms {
        return Ok(());
    }
    Err(StreamingError::InvalidConfig {
        name: "snapshot.batch_time_ms".into(),
        value: snapshot.batch_time_ms.to_string(),
        reason: format!("snapshot written for batch {batch_time_ms} holds another batch time"),
    })
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StreamingError::CheckpointIo {
            path: path.to_path_buf(),
            source,
        }),
    }
}
