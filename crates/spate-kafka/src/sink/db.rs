//! Opening a sink's SQLite database with the durability settings both sink patterns rely on,
//! and mapping rusqlite errors to [`SpateKafkaError::SinkDatabase`] with the file they concern.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Result, SpateKafkaError};

/// How long a writer waits for another connection's transaction before failing: long enough for
/// a reader or a fenced-off zombie job to finish, short enough to surface a stuck one.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// An error-mapping closure for operations on the database at `path`.
pub(crate) fn db_err<'a>(
    path: &'a Path,
    operation: &'a str,
) -> impl FnOnce(rusqlite::Error) -> SpateKafkaError + 'a {
    move |source| SpateKafkaError::SinkDatabase {
        path: path.display().to_string(),
        operation: operation.to_owned(),
        source,
    }
}

/// Opens (creating if needed) the database at `path` in WAL mode with `synchronous=FULL`.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(db_err(path, "opening the database"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(db_err(path, "setting the busy timeout"))?;
    // WAL: readers see the last committed batch while the job writes the next one. FULL: the
    // commit is on disk when `commit()` returns, so a kill right after cannot lose it.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(db_err(path, "switching to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), %mode, "SQLite did not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db_err(path, "setting synchronous=FULL"))?;
    Ok(conn)
}

/// Whether `name` can be spliced into SQL as a table name (SQLite cannot bind identifiers).
pub(crate) fn check_identifier(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SpateKafkaError::InvalidTableName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(check_identifier("word_counts").is_ok());
        assert!(check_identifier("_t2").is_ok());
        for bad in ["", "2t", "a b", "t;drop table x", "t\"", "é"] {
            assert!(check_identifier(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn open_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("x.db")).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn open_in_a_missing_directory_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/x.db");
        let err = open(&path).unwrap_err();
        assert!(err.to_string().contains("missing/x.db"), "{err}");
    }
}
