//! [`PostgresOffsetStore`]: the transactional exactly-once pattern on PostgreSQL, with the
//! contract of [`super::SqliteOffsetStore`] ([`TransactionalStore`]): a batch's results and its
//! offset ranges commit in ONE PostgreSQL transaction, a replayed batch is skipped, a gap or an
//! overlap is refused, and a restarted job resumes from the stored offsets. Unlike a SQLite
//! file, one database serves several instances of a job on several machines.
//!
//! Tables (created if missing, in the connection's `search_path`):
//! * `spate_offsets (job, topic, partition, until_offset)` — the next offset to read;
//! * `spate_writer_epochs (job, topic, partition, epoch)` — the writer epoch of each partition
//!   (see [`TransactionalStore::claim_partitions`]).
//!
//! `job` is the consumer group or application id: rows of different jobs never meet.
//!
//! Concurrency: transactions run at READ COMMITTED (set explicitly, whatever the database's
//! default) and serialize per partition on a row lock: a batch first upserts its partitions'
//! `spate_writer_epochs` rows (`INSERT .. ON CONFLICT DO UPDATE`, which locks the row), in
//! partition order so that two writers cannot deadlock on them, and only then reads the stored
//! offsets and epochs. READ COMMITTED takes a new snapshot per statement, so what it reads after
//! the lock is what the previous holder committed. Two instances owning different partitions
//! therefore never wait for each other on the store's own rows; two writers of one partition (a
//! zombie and its replacement) apply a batch once, and after a claim the older writer is fenced
//! ([`SpateKafkaError::WriterFenced`]). A claim waits for a committing batch of the previous
//! writer, so the new writer reads its starting offsets after that batch.
//!
//! The session sets `idle_in_transaction_session_timeout`: a writer paused inside a transaction
//! (a stopped process, a long GC-like stall) loses its transaction and its locks instead of
//! blocking the partition's new owner forever. A closed connection is reopened before the next
//! batch.

use std::collections::BTreeMap;
use std::time::Duration;

use postgres::{Client, Config, IsolationLevel, NoTls, Statement, Transaction};

use super::offset_check::{judge, Verdict};
use super::store::{check_epoch, partitions_of, write_failed, TransactionalStore, WriteError};
use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::error::{Result, SpateKafkaError};

/// How long the server lets a transaction sit idle before aborting it and releasing its locks.
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Connect timeout used when the URL names none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Any fixed key: the advisory lock that keeps concurrent instances' `CREATE TABLE IF NOT
/// EXISTS` from racing (PostgreSQL can fail one of two concurrent creations of the same table).
const SCHEMA_LOCK: i64 = 0x7370_6174_6573_6368; // "spatesch"

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spate_offsets (
    job          TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    until_offset BIGINT  NOT NULL,
    PRIMARY KEY (job, topic, partition)
);
CREATE TABLE IF NOT EXISTS spate_writer_epochs (
    job       TEXT    NOT NULL,
    topic     TEXT    NOT NULL,
    partition INTEGER NOT NULL,
    epoch     BIGINT  NOT NULL,
    PRIMARY KEY (job, topic, partition)
);";

/// Locks a partition's epoch row (creating it at epoch 0) and returns the epoch.
const LOCK_EPOCH: &str = "INSERT INTO spate_writer_epochs (job, topic, partition, epoch)
    VALUES ($1, $2, $3, 0)
    ON CONFLICT (job, topic, partition) DO UPDATE SET epoch = spate_writer_epochs.epoch
    RETURNING epoch";

const CLAIM: &str = "INSERT INTO spate_writer_epochs (job, topic, partition, epoch)
    VALUES ($1, $2, $3, 1)
    ON CONFLICT (job, topic, partition) DO UPDATE SET epoch = spate_writer_epochs.epoch + 1
    RETURNING epoch";

const READ_OFFSET: &str =
    "SELECT until_offset FROM spate_offsets WHERE job = $1 AND topic = $2 AND partition = $3";

const READ_OFFSETS: &str =
    "SELECT topic, partition, until_offset FROM spate_offsets WHERE job = $1";

const UPSERT: &str = "INSERT INTO spate_offsets (job, topic, partition, until_offset)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (job, topic, partition) DO UPDATE SET until_offset = EXCLUDED.until_offset";

/// The store's statements, prepared once per connection.
struct Statements {
    lock_epoch: Statement,
    claim: Statement,
    read_offset: Statement,
    read_offsets: Statement,
    upsert: Statement,
}

/// Offsets and results of one job in a PostgreSQL database (see the module docs).
pub struct PostgresOffsetStore {
    config: Config,
    client: Client,
    statements: Statements,
    job: String,
    /// The writer epochs this store claimed; unclaimed partitions are written with epoch 0.
    epochs: BTreeMap<TopicPartition, i64>,
}

impl std::fmt::Debug for PostgresOffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold a password: only where it points.
        f.debug_struct("PostgresOffsetStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("job", &self.job)
            .field("epochs", &self.epochs)
            .finish_non_exhaustive()
    }
}

fn pg_err<'a>(
    job: &'a str,
    operation: &'a str,
) -> impl FnOnce(postgres::Error) -> SpateKafkaError + 'a {
    move |source| SpateKafkaError::SinkPostgres {
        job: job.to_owned(),
        operation: operation.to_owned(),
        source,
    }
}

impl PostgresOffsetStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` string, as
    /// libpq takes; without TLS), creates the tables if missing, and opens the store of `job`.
    pub fn connect(url: &str, job: impl Into<String>) -> Result<Self> {
        let job = job.into();
        let mut config: Config = url.parse().map_err(pg_err(&job, "parsing the URL"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("spate");
        }
        let (client, statements) = open(&config, &job)?;
        Ok(PostgresOffsetStore {
            config,
            client,
            statements,
            job,
            epochs: BTreeMap::new(),
        })
    }

    /// The connection, for creating result tables and reading results. Its transactions are
    /// the caller's; batches go through [`TransactionalStore::commit_batch`].
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Reopens the connection if the server closed it (a restart, a network cut, the idle
    /// transaction timeout); the claimed epochs stay this store's.
    fn ensure_connected(&mut self) -> Result<()> {
        if self.client.is_closed() {
            tracing::warn!(job = %self.job, "PostgreSQL connection closed; reconnecting");
            let (client, statements) = open(&self.config, &self.job)?;
            self.client = client;
            self.statements = statements;
        }
        Ok(())
    }

    /// Locks the epoch rows of `partitions` (in order) and returns their stored epochs.
    fn lock_epochs(
        tx: &mut Transaction<'_>,
        st: &Statements,
        job: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut epochs = BTreeMap::new();
        for tp in partitions {
            let row = tx
                .query_one(&st.lock_epoch, &[&job, &tp.topic, &tp.partition])
                .map_err(pg_err(job, "locking the partition's writer epoch"))?;
            let epoch: i64 = row
                .try_get(0)
                .map_err(pg_err(job, "reading the partition's writer epoch"))?;
            epochs.insert(tp.clone(), epoch);
        }
        Ok(epochs)
    }

    fn read_offsets_in(
        tx: &mut Transaction<'_>,
        st: &Statements,
        job: &str,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut stored = BTreeMap::new();
        for tp in partitions {
            let row = tx
                .query_opt(&st.read_offset, &[&job, &tp.topic, &tp.partition])
                .map_err(pg_err(job, "reading stored offsets"))?;
            if let Some(row) = row {
                let until: i64 = row
                    .try_get(0)
                    .map_err(pg_err(job, "reading stored offsets"))?;
                stored.insert(tp.clone(), until);
            }
        }
        Ok(stored)
    }

    fn upsert_offsets(
        tx: &mut Transaction<'_>,
        st: &Statements,
        job: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        for (tp, until) in offsets {
            tx.execute(&st.upsert, &[&job, &tp.topic, &tp.partition, until])
                .map_err(pg_err(job, "storing offsets"))?;
        }
        Ok(())
    }
}

/// Connects, prepares the session (timeout) and the schema, and prepares the statements.
fn open(config: &Config, job: &str) -> Result<(Client, Statements)> {
    let mut client = config.connect(NoTls).map_err(pg_err(job, "connecting"))?;
    client
        .batch_execute(&format!(
            "SET idle_in_transaction_session_timeout = {}",
            IDLE_IN_TRANSACTION_TIMEOUT.as_millis()
        ))
        .map_err(pg_err(job, "setting idle_in_transaction_session_timeout"))?;
    let mut tx = client
        .transaction()
        .map_err(pg_err(job, "beginning the schema transaction"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(pg_err(job, "locking the schema"))?;
    tx.batch_execute(SCHEMA)
        .map_err(pg_err(job, "creating the offsets tables"))?;
    tx.commit()
        .map_err(pg_err(job, "committing the offsets tables"))?;
    let mut prepare = |sql: &str| {
        client
            .prepare(sql)
            .map_err(pg_err(job, "preparing the store's statements"))
    };
    let statements = Statements {
        lock_epoch: prepare(LOCK_EPOCH)?,
        claim: prepare(CLAIM)?,
        read_offset: prepare(READ_OFFSET)?,
        read_offsets: prepare(READ_OFFSETS)?,
        upsert: prepare(UPSERT)?,
    };
    Ok((client, statements))
}

impl TransactionalStore for PostgresOffsetStore {
    type Tx<'a> = Transaction<'a>;

    fn job(&self) -> &str {
        &self.job
    }

    fn starting_offsets(&mut self) -> Result<BTreeMap<TopicPartition, i64>> {
        self.ensure_connected()?;
        let rows = self
            .client
            .query(&self.statements.read_offsets, &[&self.job])
            .map_err(pg_err(&self.job, "reading stored offsets"))?;
        rows.iter()
            .map(|row| {
                let topic: String = row.try_get(0)?;
                let partition: i32 = row.try_get(1)?;
                let until: i64 = row.try_get(2)?;
                Ok((TopicPartition::new(topic, partition), until))
            })
            .collect::<std::result::Result<_, postgres::Error>>()
            .map_err(pg_err(&self.job, "reading stored offsets"))
    }

    fn reset_offsets(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        let job = self.job.clone();
        let offsets: BTreeMap<TopicPartition, i64> = offsets.iter().cloned().collect();
        let partitions: Vec<TopicPartition> = offsets.keys().cloned().collect();
        self.ensure_connected()?;
        let st = &self.statements;
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .map_err(pg_err(&job, "beginning a transaction"))?;
        // The same locks as a batch: a reset never interleaves with a batch's check and write.
        Self::lock_epochs(&mut tx, st, &job, &partitions)?;
        for (tp, offset) in &offsets {
            tracing::warn!(job = %job, partition = %tp, offset, "stored offset reset");
        }
        Self::upsert_offsets(&mut tx, st, &job, &offsets)?;
        tx.commit()
            .map_err(pg_err(&job, "committing the offset reset"))
    }

    fn claim_partitions(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let job = self.job.clone();
        let mut sorted = partitions.to_vec();
        sorted.sort();
        sorted.dedup();
        self.ensure_connected()?;
        let st = &self.statements;
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .map_err(pg_err(&job, "beginning a transaction"))?;
        let mut claimed = BTreeMap::new();
        for tp in sorted {
            let row = tx
                .query_one(&st.claim, &[&job, &tp.topic, &tp.partition])
                .map_err(pg_err(&job, "claiming partitions"))?;
            let epoch: i64 = row
                .try_get(0)
                .map_err(pg_err(&job, "claiming partitions"))?;
            claimed.insert(tp, epoch);
        }
        tx.commit()
            .map_err(pg_err(&job, "committing the partition claim"))?;
        tracing::info!(job = %job, ?claimed, "partitions claimed");
        self.epochs.extend(claimed.clone());
        Ok(claimed)
    }

    fn writer_epoch(&self, tp: &TopicPartition) -> i64 {
        self.epochs.get(tp).copied().unwrap_or(0)
    }

    fn commit_batch<F, E>(&mut self, ranges: &[OffsetRange], writes: F) -> Result<bool>
    where
        F: FnOnce(&mut Transaction<'_>) -> std::result::Result<(), E>,
        E: Into<WriteError>,
    {
        let job = self.job.clone();
        let partitions = partitions_of(ranges);
        self.ensure_connected()?;
        let st = &self.statements;
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .map_err(pg_err(&job, "beginning a transaction"))?;
        // Dropping `tx` on any early return rolls the transaction back.
        let epochs = Self::lock_epochs(&mut tx, st, &job, &partitions)?;
        for (tp, stored) in &epochs {
            let held = self.epochs.get(tp).copied().unwrap_or(0);
            check_epoch(&job, tp, held, *stored)?;
        }
        let stored = Self::read_offsets_in(&mut tx, st, &job, &partitions)?;
        let advance = match judge(&job, &stored, ranges)? {
            Verdict::Applied => {
                tracing::debug!(job = %job, "batch already applied; skipped");
                return Ok(false);
            }
            Verdict::New(advance) => advance,
        };
        writes(&mut tx).map_err(write_failed(&job))?;
        Self::upsert_offsets(&mut tx, st, &job, &advance)?;
        tx.commit()
            .map_err(pg_err(&job, "committing the batch transaction"))?;
        Ok(true)
    }
}
