//! [`IdempotentSqliteSink`]: the idempotent exactly-once pattern. Every output row is keyed by
//! the (topic, partition, offset) of the record it came from and written with an upsert, so a
//! batch replayed after a crash writes the very same rows again and duplicates collapse. It
//! needs no stored offsets, but only works for outputs that are a function of one record (not
//! aggregates such as counts, which need [`super::SqliteOffsetStore`]).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, ToSql};

use super::db::{self, db_err};
use crate::error::Result;
use crate::record::ConsumerRecord;

/// A SQLite table of rows keyed by (topic, partition, offset).
pub struct IdempotentSqliteSink {
    conn: Connection,
    path: PathBuf,
    table: String,
    upsert: String,
}

impl std::fmt::Debug for IdempotentSqliteSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotentSqliteSink")
            .field("path", &self.path)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl IdempotentSqliteSink {
    /// Opens (creating if needed) the database at `path` and `table` with columns `topic`,
    /// `partition`, `offset` (the primary key), `key` (the record's key) and `value` (what the
    /// job computed from the record).
    pub fn open(path: impl AsRef<Path>, table: &str) -> Result<Self> {
        db::check_identifier(table)?;
        let path = path.as_ref().to_path_buf();
        let conn = db::open(&path)?;
        conn.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    topic     TEXT    NOT NULL,
                    partition INTEGER NOT NULL,
                    offset    INTEGER NOT NULL,
                    key       BLOB,
                    value,
                    PRIMARY KEY (topic, partition, offset)
                )"
            ),
            [],
        )
        .map_err(db_err(&path, "creating the sink table"))?;
        let upsert = format!(
            "INSERT INTO {table} (topic, partition, offset, key, value) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (topic, partition, offset)
             DO UPDATE SET key = excluded.key, value = excluded.value"
        );
        Ok(IdempotentSqliteSink {
            conn,
            path,
            table: table.to_owned(),
            upsert,
        })
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The connection, for reading the table.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Upserts one row per record, `value(record)` as its value, in one transaction. Returns the
    /// number of rows written (new or overwritten).
    pub fn upsert<V: ToSql>(
        &mut self,
        records: &[ConsumerRecord],
        value: impl Fn(&ConsumerRecord) -> V,
    ) -> Result<usize> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(db_err(&path, "beginning a transaction"))?;
        let mut written = 0;
        {
            let mut stmt = tx
                .prepare_cached(&self.upsert)
                .map_err(db_err(&path, "preparing the upsert"))?;
            for r in records {
                written += stmt
                    .execute(params![r.topic, r.partition, r.offset, r.key(), value(r)])
                    .map_err(db_err(&path, "upserting a record"))?;
            }
        }
        tx.commit()
            .map_err(db_err(&path, "committing the upsert"))?;
        Ok(written)
    }

    /// Number of rows in the table.
    pub fn row_count(&self) -> Result<u64> {
        self.conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", self.table), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(db_err(&self.path, "counting rows"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(p: i32, offset: i64, v: &str) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: p,
            offset,
            timestamp: None,
            key: Some(format!("k{offset}").into_bytes().into()),
            value: Some(v.as_bytes().to_vec().into()),
            headers: Vec::new(),
        }
    }

    #[test]
    fn replays_collapse_into_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idem.db");
        let batch: Vec<_> = (0..5).map(|o| rec(0, o, "a b")).collect();
        let mut sink = IdempotentSqliteSink::open(&path, "lines").unwrap();
        let words =
            |r: &ConsumerRecord| r.value_str().unwrap_or_default().split(' ').count() as i64;
        assert_eq!(sink.upsert(&batch, words).unwrap(), 5);
        assert_eq!(sink.upsert(&batch, words).unwrap(), 5);
        assert_eq!(sink.upsert(&[rec(1, 0, "c")], words).unwrap(), 1);
        drop(sink);
        let sink = IdempotentSqliteSink::open(&path, "lines").unwrap();
        assert_eq!(sink.row_count().unwrap(), 6);
        let total: i64 = sink
            .connection()
            .query_row("SELECT SUM(value) FROM lines", [], |r| r.get(0))
            .unwrap();
        assert_eq!(total, 11);
    }

    #[test]
    fn table_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let err = IdempotentSqliteSink::open(dir.path().join("x.db"), "a;b").unwrap_err();
        assert!(err.to_string().contains("a;b"), "{err}");
    }
}
