//! [`SqliteOffsetStore`]: the transactional exactly-once pattern. A batch's results and its
//! offset ranges are written in ONE SQLite transaction, so after any crash the stored results
//! are exactly those of the stored offsets; on start the job resumes from the stored offsets
//! (`ConsumerStrategy::assign(..).with_offsets(..)`), not from the checkpoint or the group.
//!
//! The transaction also checks the ranges against the stored offsets, per partition:
//! * stored `until` ≥ the range's `until` — the batch was already applied (a replay after a
//!   crash between the commit and the engine noticing): nothing is written, `false` is returned;
//! * stored `until` = the range's `from` (or nothing stored yet) — the batch is new: the caller's
//!   writes run and the offsets advance to the range's `until`;
//! * anything else — a gap or an overlap: the transaction is rolled back with
//!   [`SpateKafkaError::StoredOffsetMismatch`] instead of silently losing or doubling records.
//!
//! The transaction is `BEGIN IMMEDIATE`: the write lock is taken before the offsets are read, so
//! two instances of a job (a zombie and its replacement) cannot both apply the same batch. The
//! writer epochs of [`TransactionalStore::claim_partitions`] live in `spate_writer_epochs`
//! (job, topic, partition, epoch) and are checked under the same lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::db::{self, db_err};
use super::offset_check::{judge, Verdict};
use super::store::{check_epoch, partitions_of, write_failed, TransactionalStore, WriteError};
use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::direct::params::KafkaParams;
use crate::direct::strategy::ConsumerStrategy;
use crate::error::Result;

/// The table holding the next offset to read per (job, topic, partition).
pub const OFFSETS_TABLE: &str = "spate_offsets";

const CREATE: &str = "CREATE TABLE IF NOT EXISTS spate_offsets (
    job          TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    until_offset INTEGER NOT NULL,
    PRIMARY KEY (job, topic, partition)
)";

const CREATE_EPOCHS: &str = "CREATE TABLE IF NOT EXISTS spate_writer_epochs (
    job       TEXT    NOT NULL,
    topic     TEXT    NOT NULL,
    partition INTEGER NOT NULL,
    epoch     INTEGER NOT NULL,
    PRIMARY KEY (job, topic, partition)
)";

const CLAIM: &str = "INSERT INTO spate_writer_epochs (job, topic, partition, epoch)
    VALUES (?1, ?2, ?3, 1)
    ON CONFLICT (job, topic, partition) DO UPDATE SET epoch = epoch + 1
    RETURNING epoch";

const UPSERT: &str = "INSERT INTO spate_offsets (job, topic, partition, until_offset)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (job, topic, partition) DO UPDATE SET until_offset = excluded.until_offset";

/// Offsets and results of one job in one SQLite database (see the module docs).
pub struct SqliteOffsetStore {
    conn: Connection,
    path: PathBuf,
    job: String,
    /// The writer epochs this store claimed; unclaimed partitions are written with epoch 0.
    epochs: BTreeMap<TopicPartition, i64>,
}

impl std::fmt::Debug for SqliteOffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOffsetStore")
            .field("path", &self.path)
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl SqliteOffsetStore {
    /// Opens (creating if needed) the database at `path` and the offsets table; `job` names the
    /// job whose offsets this store reads and writes, so several jobs can share a database.
    pub fn open(path: impl AsRef<Path>, job: impl Into<String>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = db::open(&path)?;
        conn.execute(CREATE, [])
            .map_err(db_err(&path, "creating the offsets table"))?;
        conn.execute(CREATE_EPOCHS, [])
            .map_err(db_err(&path, "creating the writer epochs table"))?;
        Ok(SqliteOffsetStore {
            conn,
            path,
            job: job.into(),
            epochs: BTreeMap::new(),
        })
    }

    /// The job id the offsets are stored under.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for reading results and creating the result tables.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The next offset to read per partition, as stored by the last committed batch: the
    /// starting offsets of a resumed stream. Partitions never written are absent (the stream
    /// then starts them from `auto.offset.reset`).
    pub fn starting_offsets(&self) -> Result<BTreeMap<TopicPartition, i64>> {
        read_offsets(&self.conn, &self.job).map_err(db_err(&self.path, "reading stored offsets"))
    }

    /// `Assign(partitions)` starting at the stored offsets: the strategy a job restarting from
    /// this store uses.
    pub fn assign_strategy(
        &self,
        partitions: impl IntoIterator<Item = TopicPartition>,
        params: KafkaParams,
    ) -> Result<ConsumerStrategy> {
        let partitions: Vec<TopicPartition> = partitions.into_iter().collect();
        let stored = self.starting_offsets()?;
        let offsets: Vec<(TopicPartition, i64)> = stored
            .into_iter()
            .filter(|(tp, _)| partitions.contains(tp))
            .collect();
        Ok(ConsumerStrategy::assign(partitions, params).with_offsets(offsets))
    }

    /// Overwrites the stored offsets of some partitions, outside any batch: the operator's way
    /// to accept a loss (records deleted by retention before the job read them) or to skip
    /// ahead. The results are not touched; the next batch of each partition must start there.
    pub fn reset_offsets(
        &mut self,
        offsets: impl IntoIterator<Item = (TopicPartition, i64)>,
    ) -> Result<()> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err(&path, "beginning a transaction"))?;
        {
            let mut upsert = tx
                .prepare_cached(UPSERT)
                .map_err(db_err(&path, "resetting offsets"))?;
            for (tp, offset) in offsets {
                tracing::warn!(job = %self.job, partition = %tp, offset, "stored offset reset");
                upsert
                    .execute(params![self.job, tp.topic, tp.partition, offset])
                    .map_err(db_err(&path, "resetting offsets"))?;
            }
        }
        tx.commit()
            .map_err(db_err(&path, "committing the offset reset"))
    }

    /// Runs `writes` and stores `ranges` in one transaction. Returns `true` when the batch was
    /// committed, `false` when the stored offsets show it was already applied (nothing is
    /// written). A gap or overlap with the stored offsets, a failure of `writes` or of the
    /// database rolls everything back and returns the error.
    pub fn commit_batch<F, E>(&mut self, ranges: &[OffsetRange], writes: F) -> Result<bool>
    where
        F: FnOnce(&Transaction<'_>) -> std::result::Result<(), E>,
        E: Into<WriteError>,
    {
        self.commit(ranges, |tx| writes(tx))
    }

    /// [`Self::commit_batch`] with the writes given the transaction mutably (the trait's form).
    fn commit<F, E>(&mut self, ranges: &[OffsetRange], writes: F) -> Result<bool>
    where
        F: FnOnce(&mut Transaction<'_>) -> std::result::Result<(), E>,
        E: Into<WriteError>,
    {
        let path = self.path.clone();
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err(&path, "beginning a transaction"))?;
        let mut stored = BTreeMap::new();
        for tp in partitions_of(ranges) {
            let epoch =
                read_epoch(&tx, &self.job, &tp).map_err(db_err(&path, "reading writer epochs"))?;
            let held = self.epochs.get(&tp).copied().unwrap_or(0);
            check_epoch(&self.job, &tp, held, epoch)?;
            if let Some(o) =
                read_offset(&tx, &self.job, &tp).map_err(db_err(&path, "reading stored offsets"))?
            {
                stored.insert(tp, o);
            }
        }
        // Dropping `tx` on any early return rolls the transaction back.
        let advance = match judge(&self.job, &stored, ranges)? {
            Verdict::Applied => {
                tracing::debug!(job = %self.job, "batch already applied; skipped");
                return Ok(false);
            }
            Verdict::New(advance) => advance,
        };
        writes(&mut tx).map_err(write_failed(&self.job))?;
        {
            let mut upsert = tx
                .prepare_cached(UPSERT)
                .map_err(db_err(&path, "storing offsets"))?;
            for (tp, until) in &advance {
                upsert
                    .execute(params![self.job, tp.topic, tp.partition, until])
                    .map_err(db_err(&path, "storing offsets"))?;
            }
        }
        tx.commit()
            .map_err(db_err(&path, "committing the batch transaction"))?;
        Ok(true)
    }

    /// Raises the writer epochs of `partitions` (see [`TransactionalStore::claim_partitions`]).
    fn claim(&mut self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err(&path, "beginning a transaction"))?;
        let mut claimed = BTreeMap::new();
        {
            let mut claim = tx
                .prepare_cached(CLAIM)
                .map_err(db_err(&path, "claiming partitions"))?;
            for tp in partitions {
                let epoch: i64 = claim
                    .query_row(params![self.job, tp.topic, tp.partition], |r| r.get(0))
                    .map_err(db_err(&path, "claiming partitions"))?;
                claimed.insert(tp.clone(), epoch);
            }
        }
        tx.commit()
            .map_err(db_err(&path, "committing the partition claim"))?;
        self.epochs.extend(claimed.clone());
        Ok(claimed)
    }
}

impl TransactionalStore for SqliteOffsetStore {
    type Tx<'a> = Transaction<'a>;

    fn job(&self) -> &str {
        &self.job
    }

    fn starting_offsets(&mut self) -> Result<BTreeMap<TopicPartition, i64>> {
        SqliteOffsetStore::starting_offsets(self)
    }

    fn reset_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        SqliteOffsetStore::reset_offsets(self, offsets.iter().cloned())
    }

    fn claim_partitions(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.claim(partitions)
    }

    fn writer_epoch(&self, tp: &TopicPartition) -> i64 {
        self.epochs.get(tp).copied().unwrap_or(0)
    }

    fn commit_batch<F, E>(&mut self, ranges: &[OffsetRange], writes: F) -> Result<bool>
    where
        F: FnOnce(&mut Transaction<'_>) -> std::result::Result<(), E>,
        E: Into<WriteError>,
    {
        self.commit(ranges, writes)
    }
}

fn read_epoch(conn: &Connection, job: &str, tp: &TopicPartition) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT epoch FROM spate_writer_epochs WHERE job = ?1 AND topic = ?2 AND partition = ?3",
    )?
    .query_row(params![job, tp.topic, tp.partition], |r| r.get(0))
    .optional()
    .map(|e| e.unwrap_or(0))
}

fn read_offset(conn: &Connection, job: &str, tp: &TopicPartition) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT until_offset FROM spate_offsets WHERE job = ?1 AND topic = ?2 AND partition = ?3",
    )?
    .query_row(params![job, tp.topic, tp.partition], |r| r.get(0))
    .optional()
}

fn read_offsets(conn: &Connection, job: &str) -> rusqlite::Result<BTreeMap<TopicPartition, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT topic, partition, until_offset FROM spate_offsets WHERE job = ?1",
    )?;
    let rows = stmt.query_map(params![job], |r| {
        Ok((
            TopicPartition::new(r.get::<_, String>(0)?, r.get(1)?),
            r.get(2)?,
        ))
    })?;
    rows.collect()
}

// The store's contract is tested by the suite every backend runs: tests/transactional_store.rs.
