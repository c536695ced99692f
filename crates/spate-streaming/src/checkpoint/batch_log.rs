//! The batch log (`batches/<segment>.log`): plans and commits appended to one file, so a batch
//! costs one fsync instead of four.
//!
//! Writing `offsets/<t>` and `commits/<t>` as separate files costs two fsyncs each (the file and
//! its directory, for the rename). Here both record kinds are appended to the open segment and a
//! single `fdatasync` makes every record appended so far durable: the scheduler appends the plan
//! of batch *t+1* and the commit of batch *t* without syncing and syncs once before batch *t+1*
//! reads input — a group commit. The contract is unchanged: a plan is durable before its batch
//! runs; a commit is written after its outputs succeeded (it becomes durable at the next sync,
//! and until then a crash merely re-runs the batch, as a crash just before the commit would).
//!
//! Because the log is append-only and read as a prefix, a durable commit of *t* implies the
//! durability of every plan appended before it, which is what lets a state snapshot (written
//! between them) hold input cursors past the newest plan.
//!
//! # Format (version 1)
//!
//! A segment is a sequence of records, each
//! `kind: u8 (1 = plan, 2 = commit, 3 = snapshot) | len: u32 LE | crc: u32 LE (CRC-32C of kind
//! and payload) | payload`, where the payload of a plan or commit is exactly the JSON document of
//! an `offsets/<t>` or `commits/<t>` file (with its own `"version"`), and that of a snapshot is
//! `batch_time_ms: i64 LE` followed by the bytes a `state/<t>.snapshot` file would hold.
//!
//! A state snapshot of at most [`LOG_SNAPSHOT_MAX_BYTES`] encoded is appended here, before the
//! commit of its batch, instead of written as a file: it then shares the batch's one fsync (a
//! snapshot file costs two more, the file and its directory), and the log being read as a prefix
//! makes it durable whenever that commit is. Larger snapshots stay files. Builds from before
//! snapshot records (kind 3) report such a log as corrupt rather than misreading it. Segments are named by a decimal sequence number; each run
//! of the writer starts a new segment, so a segment is never appended to after a crash. A record
//! cut short or failing its CRC ends its segment: it can only be the tail a crash interrupted
//! before the sync that would have made it durable. Old checkpoints (files only) stay readable:
//! recovery merges the files and the log.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::atomic;
use super::offset_log::{self, BatchPlan, CommitInfo};
use crate::error::{Result, StreamingError};

/// Suffix of a segment file.
pub(crate) const SEGMENT_SUFFIX: &str = ".log";
/// Record kind of a plan.
const KIND_PLAN: u8 = 1;
/// Record kind of a commit.
const KIND_COMMIT: u8 = 2;
/// Record kind of a small state snapshot.
const KIND_SNAPSHOT: u8 = 3;
/// The largest encoded state snapshot kept in the log; larger ones are files of their own.
pub(crate) const LOG_SNAPSHOT_MAX_BYTES: usize = 64 * 1024;
/// Bytes before a record's payload.
const HEADER_LEN: usize = 9;
/// Records in the open segment after which a purge rewrites the retained records into a new
/// segment and deletes the old ones (so the log does not grow without bound).
const ROLL_RECORDS: usize = 256;

/// What the log holds, merged over all segments.
#[derive(Debug, Default)]
pub(crate) struct LogIndex {
    pub(crate) plans: BTreeMap<i64, BatchPlan>,
    pub(crate) commits: BTreeMap<i64, CommitInfo>,
    /// Encoded state snapshots (the `snapshot` module's format) by batch time.
    pub(crate) snapshots: BTreeMap<i64, Vec<u8>>,
}

/// The batch log: its index and the segment being appended to (created on the first append, so
/// opening a checkpoint to read it writes nothing).
#[derive(Debug)]
pub(crate) struct BatchLog {
    dir: PathBuf,
    pub(crate) index: LogIndex,
    segments: Vec<PathBuf>,
    next_seq: i64,
    writer: Option<File>,
    records_in_segment: usize,
    dirty: bool,
    /// The newest commit appended, and the newest one a sync made durable.
    appended_commit: Option<i64>,
    durable_commit: Option<i64>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StreamingError + '_ {
    move |source| StreamingError::CheckpointIo {
        path: path.to_path_buf(),
        source,
    }
}

impl BatchLog {
    /// Reads every segment in `dir` (which must exist) into the index.
    pub(crate) fn open(dir: PathBuf) -> Result<Self> {
        let mut index = LogIndex::default();
        let mut segments = Vec::new();
        let mut next_seq = 0;
        for (seq, path) in atomic::list_batch_files(&dir, SEGMENT_SUFFIX)? {
            read_segment(&path, &atomic::read_file(&path)?, &mut index)?;
            segments.push(path);
            next_seq = seq + 1;
        }
        Ok(BatchLog {
            dir,
            index,
            segments,
            next_seq,
            writer: None,
            records_in_segment: 0,
            dirty: false,
            appended_commit: None,
            durable_commit: None,
        })
        .map(|mut log| {
            // What was read back is on disk.
            log.durable_commit = log.index.commits.keys().next_back().copied();
            log.appended_commit = log.durable_commit;
            log
        })
    }

    /// The newest commit that a sync made durable (or that was read back from disk).
    pub(crate) fn durable_commit(&self) -> Option<i64> {
        self.durable_commit
    }

    /// Appends a plan (durable after the next [`BatchLog::sync`]).
    pub(crate) fn append_plan(&mut self, plan: &BatchPlan) -> Result<()> {
        self.append(KIND_PLAN, &offset_log::encode_plan(plan)?)?;
        self.index.plans.insert(plan.batch_time_ms, plan.clone());
        Ok(())
    }

    /// Appends a commit (durable after the next [`BatchLog::sync`]).
    pub(crate) fn append_commit(&mut self, batch_time_ms: i64, info: &CommitInfo) -> Result<()> {
        self.append(
            KIND_COMMIT,
            &offset_log::encode_commit(batch_time_ms, info)?,
        )?;
        self.index.commits.insert(batch_time_ms, info.clone());
        self.appended_commit = self.appended_commit.max(Some(batch_time_ms));
        Ok(())
    }

    /// Appends an encoded state snapshot of batch `batch_time_ms` (durable after the next
    /// [`BatchLog::sync`], and before any commit appended after it).
    pub(crate) fn append_snapshot(&mut self, batch_time_ms: i64, encoded: &[u8]) -> Result<()> {
        let mut payload = Vec::with_capacity(8 + encoded.len());
        payload.extend_from_slice(&batch_time_ms.to_le_bytes());
        payload.extend_from_slice(encoded);
        self.append(KIND_SNAPSHOT, &payload)?;
        self.index.snapshots.insert(batch_time_ms, encoded.to_vec());
        Ok(())
    }

    fn append(&mut self, kind: u8, payload: &[u8]) -> Result<()> {
        if self.writer.is_none() {
            self.start_segment()?;
        }
        let path = self.current_path();
        let record = encode_record(kind, payload)?;
        let Some(file) = self.writer.as_mut() else {
            return Ok(());
        };
        file.write_all(&record).map_err(io_err(&path))?;
        self.records_in_segment += 1;
        self.dirty = true;
        Ok(())
    }

    /// Makes every appended record durable: one `fdatasync`, none if nothing was appended.
    pub(crate) fn sync(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let path = self.current_path();
        if let Some(file) = &self.writer {
            file.sync_data().map_err(io_err(&path))?;
        }
        self.dirty = false;
        self.durable_commit = self.appended_commit;
        Ok(())
    }

    fn current_path(&self) -> PathBuf {
        self.segments.last().cloned().unwrap_or_default()
    }

    /// Creates the next segment and makes its directory entry durable.
    fn start_segment(&mut self) -> Result<()> {
        let path = self
            .dir
            .join(format!("{:020}{SEGMENT_SUFFIX}", self.next_seq));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        atomic::fsync_dir(&self.dir)?;
        self.next_seq += 1;
        self.segments.push(path);
        self.writer = Some(file);
        self.records_in_segment = 0;
        Ok(())
    }

    /// Drops committed batches older than `cutoff` and snapshots older than `snapshot` (the
    /// latest committed one) from the index and, once the open segment is long enough, rewrites
    /// what is retained into a fresh segment and deletes the older ones.
    /// Returns (plans removed, commits removed, snapshots removed).
    pub(crate) fn purge(
        &mut self,
        cutoff: i64,
        snapshot: Option<i64>,
    ) -> Result<(usize, usize, usize)> {
        let snapshots_removed = match snapshot {
            Some(latest) => {
                let before = self.index.snapshots.len();
                self.index.snapshots.retain(|t, _| *t >= latest);
                before - self.index.snapshots.len()
            }
            None => 0,
        };
        let old: Vec<i64> = self
            .index
            .commits
            .range(..cutoff)
            .map(|(t, _)| *t)
            .collect();
        let mut plans_removed = 0;
        for t in &old {
            if self.index.plans.remove(t).is_some() {
                plans_removed += 1;
            }
            self.index.commits.remove(t);
        }
        if self.records_in_segment >= ROLL_RECORDS {
            self.roll()?;
        }
        Ok((plans_removed, old.len(), snapshots_removed))
    }

    /// Writes the index into a new segment, syncs it, then deletes every older segment. A crash
    /// in between leaves both, which read back to the same index.
    fn roll(&mut self) -> Result<()> {
        self.sync()?;
        let older = std::mem::take(&mut self.segments);
        self.writer = None;
        self.start_segment()?;
        let plans: Vec<BatchPlan> = self.index.plans.values().cloned().collect();
        let commits: Vec<(i64, CommitInfo)> = self
            .index
            .commits
            .iter()
            .map(|(t, c)| (*t, c.clone()))
            .collect();
        for p in &plans {
            self.append_plan(p)?;
        }
        let snapshots: Vec<(i64, Vec<u8>)> = std::mem::take(&mut self.index.snapshots)
            .into_iter()
            .collect();
        for (t, encoded) in &snapshots {
            self.append_snapshot(*t, encoded)?;
        }
        for (t, c) in &commits {
            self.append_commit(*t, c)?;
        }
        self.sync()?;
        for path in &older {
            atomic::remove_file(path)?;
        }
        atomic::fsync_dir(&self.dir)?;
        tracing::debug!(removed_segments = older.len(), "rolled the batch log");
        Ok(())
    }
}

fn encode_record(kind: u8, payload: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(payload.len()).map_err(|_| StreamingError::Serialization {
        what: "batch log record".into(),
        reason: format!("{} bytes exceed the 4 GiB record limit", payload.len()),
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(kind);
    out.extend_from_slice(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Decodes the records of one segment into `index`. A torn or damaged tail ends the segment (see
/// the module docs); a record that frames correctly but does not parse is corruption.
pub(crate) fn read_segment(path: &Path, bytes: &[u8], index: &mut LogIndex) -> Result<()> {
    let mut pos = 0;
    while pos < bytes.len() {
        let Some((kind, payload)) = frame_at(bytes, pos) else {
            tracing::warn!(path = %path.display(), offset = pos, "ignoring the torn tail of a batch log segment");
            break;
        };
        pos += HEADER_LEN + payload.len();
        if kind == KIND_SNAPSHOT {
            let (time, encoded) = snapshot_record(path, payload)?;
            index.snapshots.insert(time, encoded.to_vec());
            continue;
        }
        let time = record_time(path, payload)?;
        match kind {
            KIND_PLAN => {
                let plan = offset_log::decode_plan(path, time, payload)?;
                index.plans.insert(time, plan);
            }
            KIND_COMMIT => {
                let info = offset_log::decode_commit(path, time, payload)?;
                index.commits.insert(time, info);
            }
            other => {
                return Err(StreamingError::CheckpointCorrupt {
                    path: path.to_path_buf(),
                    reason: format!("unknown batch log record kind {other} at offset {pos}"),
                })
            }
        }
    }
    Ok(())
}

/// A snapshot record's batch time and encoded snapshot (checked when it is read).
fn snapshot_record<'a>(path: &Path, payload: &'a [u8]) -> Result<(i64, &'a [u8])> {
    let Some((time, encoded)) = payload.split_first_chunk::<8>() else {
        return Err(StreamingError::CheckpointCorrupt {
            path: path.to_path_buf(),
            reason: format!(
                "snapshot record of {} bytes has no batch time",
                payload.len()
            ),
        });
    };
    Ok((i64::from_le_bytes(*time), encoded))
}

/// The record at `pos` if it is complete and its CRC matches.
fn frame_at(bytes: &[u8], pos: usize) -> Option<(u8, &[u8])> {
    let header = bytes.get(pos..pos + HEADER_LEN)?;
    let kind = header[0];
    let len = u32::from_le_bytes(header[1..5].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[5..9].try_into().ok()?);
    let start = pos + HEADER_LEN;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    (crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload) == crc).then_some((kind, payload))
}

/// The batch time a record names (plans and commits both carry `batch_time_ms`).
fn record_time(path: &Path, payload: &[u8]) -> Result<i64> {
    #[derive(serde::Deserialize)]
    struct Time {
        batch_time_ms: i64,
    }
    serde_json::from_slice::<Time>(payload)
        .map(|t| t.batch_time_ms)
        .map_err(|e| StreamingError::CheckpointCorrupt {
            path: path.to_path_buf(),
            reason: format!("batch log record without a batch time: {e}"),
        })
}
