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
//! two instances of a job (a zombie and its replacement) cannot both apply the same batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::db::{self, db_err};
use super::offset_check::{judge, Verdict};
use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::direct::params::KafkaParams;
use crate::direct::strategy::ConsumerStrategy;
use crate::error::{Result, SpateKafkaError};

/// The table holding the next offset to read per (job, topic, partition).
pub const OFFSETS_TABLE: &str = "spate_offsets";

const CREATE: &str = "CREATE TABLE IF NOT EXISTS spate_offsets (
    job          TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    until_offset INTEGER NOT NULL,
    PRIMARY KEY (job, topic, partition)
)";

const UPSERT: &str = "INSERT INTO spate_offsets (job, topic, partition, until_offset)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (job, topic, partition) DO UPDATE SET until_offset = excluded.until_offset";

/// Offsets and results of one job in one SQLite database (see the module docs).
pub struct SqliteOffsetStore {
    conn: Connection,
    path: PathBuf,
    job: String,
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
        Ok(SqliteOffsetStore {
            conn,
            path,
            job: job.into(),
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
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err(&path, "beginning a transaction"))?;
        let mut stored = BTreeMap::new();
        for r in ranges {
            let tp = r.topic_partition();
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
        writes(&tx).map_err(|e| SpateKafkaError::SinkWriteFailed {
            job: self.job.clone(),
            source: e.into(),
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: i32, from: i64, until: i64) -> OffsetRange {
        OffsetRange::create("t", p, from, until)
    }

    fn counts(store: &SqliteOffsetStore) -> i64 {
        store
            .connection()
            .query_row("SELECT COALESCE(SUM(n), 0) FROM counts", [], |r| r.get(0))
            .unwrap()
    }

    fn add(store: &mut SqliteOffsetStore, ranges: &[OffsetRange], n: i64) -> Result<bool> {
        store.commit_batch(ranges, |tx| {
            tx.execute("INSERT INTO counts (n) VALUES (?1)", [n])
                .map(|_| ())
        })
    }

    fn open(path: &Path) -> SqliteOffsetStore {
        let s = SqliteOffsetStore::open(path, "job-a").unwrap();
        s.connection()
            .execute("CREATE TABLE IF NOT EXISTS counts (n INTEGER)", [])
            .unwrap();
        s
    }

    #[test]
    fn batches_commit_then_replays_are_fenced_and_offsets_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sink.db");
        let mut s = open(&path);
        assert!(s.starting_offsets().unwrap().is_empty());
        assert!(add(&mut s, &[r(0, 0, 10), r(1, 0, 5)], 15).unwrap());
        assert!(add(&mut s, &[r(0, 10, 12), r(1, 5, 5)], 2).unwrap());
        // The same batch again (a replay after a crash): skipped, nothing written.
        assert!(!add(&mut s, &[r(0, 10, 12), r(1, 5, 5)], 2).unwrap());
        assert!(!add(&mut s, &[r(0, 0, 10), r(1, 0, 5)], 15).unwrap());
        assert_eq!(counts(&s), 17);
        drop(s);

        let s = open(&path);
        assert_eq!(
            s.starting_offsets().unwrap(),
            BTreeMap::from([
                (TopicPartition::new("t", 0), 12),
                (TopicPartition::new("t", 1), 5)
            ])
        );
        assert_eq!(counts(&s), 17);
        // Another job in the same database has its own offsets.
        let other = SqliteOffsetStore::open(&path, "job-b").unwrap();
        assert!(other.starting_offsets().unwrap().is_empty());
    }

    #[test]
    fn a_gap_is_refused_with_topic_partition_expected_and_actual() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("sink.db"));
        add(&mut s, &[r(3, 0, 10)], 10).unwrap();
        let err = add(&mut s, &[r(3, 11, 20)], 9).unwrap_err();
        match &err {
            SpateKafkaError::StoredOffsetMismatch {
                topic,
                partition,
                expected,
                actual,
                what,
                ..
            } => {
                assert_eq!((topic.as_str(), *partition), ("t", 3));
                assert_eq!((*expected, *actual, *what), (10, 11, "gap"));
            }
            other => panic!("unexpected error {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("t-3") && msg.contains("10") && msg.contains("11"),
            "{msg}"
        );
        // Rolled back: neither the counts nor the offsets moved.
        assert_eq!(counts(&s), 10);
        assert_eq!(
            s.starting_offsets().unwrap()[&TopicPartition::new("t", 3)],
            10
        );
    }

    #[test]
    fn an_overlap_and_a_half_applied_batch_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("sink.db"));
        add(&mut s, &[r(0, 0, 10), r(1, 0, 10)], 20).unwrap();
        let err = add(&mut s, &[r(0, 5, 15)], 10).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
        let err = add(&mut s, &[r(0, 0, 10), r(1, 10, 20)], 20).unwrap_err();
        assert!(err.to_string().contains("t-0"), "{err}");
        // An empty range may not jump over stored offsets either.
        let err = add(&mut s, &[r(0, 12, 12)], 0).unwrap_err();
        assert!(err.to_string().contains("gap"), "{err}");
        assert_eq!(counts(&s), 20);
    }

    #[test]
    fn failed_writes_roll_back_the_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("sink.db"));
        let err = s
            .commit_batch(&[r(0, 0, 10)], |tx| {
                tx.execute("INSERT INTO counts (n) VALUES (1)", [])?;
                tx.execute("INSERT INTO no_such_table VALUES (1)", [])
                    .map(|_| ())
            })
            .unwrap_err();
        assert!(
            matches!(err, SpateKafkaError::SinkWriteFailed { .. }),
            "{err}"
        );
        assert!(s.starting_offsets().unwrap().is_empty());
        assert_eq!(counts(&s), 0);
        assert!(add(&mut s, &[r(0, 0, 10)], 10).unwrap());
    }

    #[test]
    fn empty_batches_and_new_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("sink.db"));
        // No ranges, or only empty ones: nothing applied, nothing stored, writes still run.
        assert!(add(&mut s, &[], 0).unwrap());
        assert!(add(&mut s, &[r(0, 0, 0)], 0).unwrap());
        assert!(s.starting_offsets().unwrap().is_empty());
        // A partition the store has never seen starts wherever its first range starts.
        assert!(add(&mut s, &[r(0, 40, 50)], 10).unwrap());
        assert!(add(&mut s, &[r(0, 50, 50), r(7, 0, 3)], 3).unwrap());
        assert_eq!(s.starting_offsets().unwrap().len(), 2);
        assert_eq!(counts(&s), 13);
    }

    #[test]
    fn a_reset_accepts_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("sink.db"));
        add(&mut s, &[r(0, 0, 10)], 10).unwrap();
        assert!(add(&mut s, &[r(0, 25, 30)], 5).is_err());
        s.reset_offsets([(TopicPartition::new("t", 0), 25)])
            .unwrap();
        assert!(add(&mut s, &[r(0, 25, 30)], 5).unwrap());
        assert_eq!(counts(&s), 15);
        assert_eq!(
            s.starting_offsets().unwrap()[&TopicPartition::new("t", 0)],
            30
        );
    }

    #[test]
    fn assign_strategy_starts_at_the_stored_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(&dir.path().join("sink.db"));
        add(&mut s, &[r(0, 0, 4), r(1, 0, 6)], 10).unwrap();
        let strategy = s
            .assign_strategy(
                [TopicPartition::new("t", 0), TopicPartition::new("t", 2)],
                KafkaParams::new(),
            )
            .unwrap();
        assert_eq!(
            strategy.starting_offsets(),
            &BTreeMap::from([(TopicPartition::new("t", 0), 4)])
        );
        assert!(strategy.subscription().matches_topic("t"));
    }

    #[test]
    fn a_second_writer_waits_and_is_then_fenced() {
        // Two instances of one job (a zombie and its replacement) racing for the same batch:
        // exactly one applies it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sink.db");
        open(&path);
        let results: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let path = path.clone();
                    scope.spawn(move || {
                        let mut s = SqliteOffsetStore::open(&path, "job-a").unwrap();
                        add(&mut s, &[r(0, 0, 10)], 10).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|&&b| b).count(), 1, "{results:?}");
        assert_eq!(counts(&open(&path)), 10);
    }
}
