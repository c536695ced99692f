//! One test suite for the [`TransactionalStore`] contract, run against every backend: SQLite
//! (a file in a temp dir) and PostgreSQL (a real server started by the test kit, a database with
//! a random name per test). Each test is written once in `contract` and instantiated per backend
//! by `suite!`; what only one backend promises (PostgreSQL's per-partition locks) is tested in
//! that backend's module.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use spate_kafka::sink::{PostgresOffsetStore, SqliteOffsetStore, TransactionalStore};
use spate_kafka::{KafkaParams, OffsetRange, SpateKafkaError, TopicPartition};

/// What the contract tests need from a backend besides the trait: opening a store with a
/// `counts (n)` table, adding to it inside a batch, and reading the total back.
trait Backend: Sync {
    type Store: TransactionalStore;

    /// A store of `job` in this backend's database, with the `counts` table created.
    fn open(&self, job: &str) -> Self::Store;

    /// Commits `ranges` with `n` inserted into `counts`.
    fn add(
        store: &mut Self::Store,
        ranges: &[OffsetRange],
        n: i64,
    ) -> Result<bool, SpateKafkaError>;

    /// Commits `ranges` with a row inserted and then a statement that fails.
    fn add_then_fail(store: &mut Self::Store, ranges: &[OffsetRange]) -> SpateKafkaError;

    /// `SUM(n)` of `counts`.
    fn total(&self) -> i64;
}

fn r(p: i32, from: i64, until: i64) -> OffsetRange {
    OffsetRange::create("t", p, from, until)
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("t", p)
}

mod contract {
    use super::*;

    pub(super) fn batches_commit_then_replays_are_fenced_and_offsets_survive_reopen<B: Backend>(
        b: &B,
    ) {
        let mut s = b.open("job-a");
        assert!(s.starting_offsets().unwrap().is_empty());
        assert!(B::add(&mut s, &[r(0, 0, 10), r(1, 0, 5)], 15).unwrap());
        assert!(B::add(&mut s, &[r(0, 10, 12), r(1, 5, 5)], 2).unwrap());
        // The same batches again (a replay after a crash): skipped, nothing written.
        assert!(!B::add(&mut s, &[r(0, 10, 12), r(1, 5, 5)], 2).unwrap());
        assert!(!B::add(&mut s, &[r(0, 0, 10), r(1, 0, 5)], 15).unwrap());
        assert_eq!(b.total(), 17);
        drop(s);

        let mut s = b.open("job-a");
        assert_eq!(
            s.starting_offsets().unwrap(),
            BTreeMap::from([(tp(0), 12), (tp(1), 5)])
        );
        assert_eq!(b.total(), 17);
        // Another job in the same database has its own offsets.
        let mut other = b.open("job-b");
        assert!(other.starting_offsets().unwrap().is_empty());
        assert_eq!(other.job(), "job-b");
    }

    pub(super) fn a_gap_is_refused_with_topic_partition_expected_and_actual<B: Backend>(b: &B) {
        let mut s = b.open("job-a");
        B::add(&mut s, &[r(3, 0, 10)], 10).unwrap();
        let err = B::add(&mut s, &[r(3, 11, 20)], 9).unwrap_err();
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
        assert_eq!(b.total(), 10);
        assert_eq!(s.starting_offsets().unwrap()[&tp(3)], 10);
    }

    pub(super) fn an_overlap_and_a_half_applied_batch_are_refused<B: Backend>(b: &B) {
        let mut s = b.open("job-a");
        B::add(&mut s, &[r(0, 0, 10), r(1, 0, 10)], 20).unwrap();
        let err = B::add(&mut s, &[r(0, 5, 15)], 10).unwrap_err();
        assert!(err.to_string().contains("overlap"), "{err}");
        let err = B::add(&mut s, &[r(0, 0, 10), r(1, 10, 20)], 20).unwrap_err();
        assert!(err.to_string().contains("t-0"), "{err}");
        // An empty range may not jump over stored offsets either.
        let err = B::add(&mut s, &[r(0, 12, 12)], 0).unwrap_err();
        assert!(err.to_string().contains("gap"), "{err}");
        assert_eq!(b.total(), 20);
    }

    pub(super) fn failed_writes_roll_back_the_offsets<B: Backend>(b: &B) {
        let mut s = b.open("job-a");
        let err = B::add_then_fail(&mut s, &[r(0, 0, 10)]);
        assert!(
            matches!(err, SpateKafkaError::SinkWriteFailed { .. }),
            "{err}"
        );
        assert!(s.starting_offsets().unwrap().is_empty());
        assert_eq!(b.total(), 0);
        assert!(B::add(&mut s, &[r(0, 0, 10)], 10).unwrap());
        assert_eq!(b.total(), 10);
    }

    pub(super) fn empty_batches_and_new_partitions<B: Backend>(b: &B) {
        let mut s = b.open("job-a");
        // No ranges, or only empty ones: nothing applied, nothing stored, writes still run.
        assert!(B::add(&mut s, &[], 0).unwrap());
        assert!(B::add(&mut s, &[r(0, 0, 0)], 0).unwrap());
        assert!(s.starting_offsets().unwrap().is_empty());
        // A partition the store has never seen starts wherever its first range starts.
        assert!(B::add(&mut s, &[r(0, 40, 50)], 10).unwrap());
        assert!(B::add(&mut s, &[r(0, 50, 50), r(7, 0, 3)], 3).unwrap());
        assert_eq!(s.starting_offsets().unwrap().len(), 2);
        assert_eq!(b.total(), 13);
    }

    pub(super) fn a_reset_accepts_a_gap<B: Backend>(b: &B) {
        let mut s = b.open("job-a");
        B::add(&mut s, &[r(0, 0, 10)], 10).unwrap();
        assert!(B::add(&mut s, &[r(0, 25, 30)], 5).is_err());
        s.reset_offsets(&[(tp(0), 25)]).unwrap();
        assert!(B::add(&mut s, &[r(0, 25, 30)], 5).unwrap());
        assert_eq!(b.total(), 15);
        assert_eq!(s.starting_offsets().unwrap()[&tp(0)], 30);
    }

    pub(super) fn assign_strategy_starts_at_the_stored_offsets<B: Backend>(b: &B) {
        let mut s = b.open("job-a");
        B::add(&mut s, &[r(0, 0, 4), r(1, 0, 6)], 10).unwrap();
        let strategy = s
            .assign_strategy(&[tp(0), tp(2)], KafkaParams::new())
            .unwrap();
        assert_eq!(strategy.starting_offsets(), &BTreeMap::from([(tp(0), 4)]));
        assert!(strategy.subscription().matches_topic("t"));
    }

    /// Two instances of one job (a zombie and its replacement) racing for the same batch:
    /// exactly one applies it.
    pub(super) fn racing_writers_of_one_batch_apply_it_once<B: Backend>(b: &B) {
        b.open("job-a");
        let results: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut s = b.open("job-a");
                        B::add(&mut s, &[r(0, 0, 10), r(1, 0, 10)], 10).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|&&b| b).count(), 1, "{results:?}");
        assert_eq!(b.total(), 10);
    }

    /// Fencing: a store that claims a partition raises its epoch; the previous writer's next
    /// batch of that partition is refused with nothing written, while its other partitions and
    /// the new writer carry on from the stored offsets.
    pub(super) fn a_stale_writer_epoch_is_refused<B: Backend>(b: &B) {
        let mut old = b.open("job-a");
        assert_eq!(
            old.claim_partitions(&[tp(0), tp(1)]).unwrap(),
            BTreeMap::from([(tp(0), 1), (tp(1), 1)])
        );
        assert!(B::add(&mut old, &[r(0, 0, 10), r(1, 0, 10)], 20).unwrap());

        let mut new = b.open("job-a");
        assert_eq!(new.writer_epoch(&tp(0)), 0);
        assert_eq!(
            new.claim_partitions(&[tp(0)]).unwrap(),
            BTreeMap::from([(tp(0), 2)])
        );
        assert_eq!(new.writer_epoch(&tp(0)), 2);

        let err = B::add(&mut old, &[r(0, 10, 15), r(1, 10, 15)], 10).unwrap_err();
        match &err {
            SpateKafkaError::WriterFenced {
                topic,
                partition,
                held,
                stored,
                ..
            } => assert_eq!((topic.as_str(), *partition, *held, *stored), ("t", 0, 1, 2)),
            other => panic!("expected a fenced writer, got {other}"),
        }
        assert!(err.to_string().contains("t-0"), "{err}");
        assert_eq!(b.total(), 20, "the fenced batch wrote nothing");
        // The old writer still owns partition 1; the new one continues partition 0.
        assert!(B::add(&mut old, &[r(1, 10, 15)], 5).unwrap());
        assert!(B::add(&mut new, &[r(0, 10, 15)], 5).unwrap());
        // A writer that never claimed (epoch 0) is fenced on claimed partitions too.
        let mut unclaimed = b.open("job-a");
        let err = B::add(&mut unclaimed, &[r(0, 15, 20)], 5).unwrap_err();
        assert!(
            matches!(
                err,
                SpateKafkaError::WriterFenced {
                    held: 0,
                    stored: 2,
                    ..
                }
            ),
            "{err}"
        );
        // Epochs are per job: another job's writer is not fenced by job-a's claims.
        let mut other = b.open("job-b");
        assert!(B::add(&mut other, &[r(0, 0, 3)], 3).unwrap());
        assert_eq!(b.total(), 33);
        assert_eq!(
            new.starting_offsets().unwrap(),
            BTreeMap::from([(tp(0), 15), (tp(1), 15)])
        );
    }

    /// A claim made while the previous writer is committing a batch of the partition waits for
    /// that batch, so the new writer's starting offsets include it.
    pub(super) fn a_claim_waits_for_a_committing_batch<B: Backend>(b: &B) {
        let mut old = b.open("job-a");
        old.claim_partitions(&[tp(0)]).unwrap();
        let (in_batch_tx, in_batch) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || {
                old.commit_batch(&[r(0, 0, 10)], |_tx| {
                    in_batch_tx.send(()).unwrap();
                    release.recv_timeout(Duration::from_secs(30)).unwrap();
                    Ok::<_, SpateKafkaError>(())
                })
            });
            in_batch.recv_timeout(Duration::from_secs(30)).unwrap();
            let claimer = scope.spawn(|| {
                let mut new = b.open("job-a");
                let epochs = new.claim_partitions(&[tp(0)]).unwrap();
                (epochs, new.starting_offsets().unwrap(), Instant::now())
            });
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                !claimer.is_finished(),
                "the claim did not wait for the batch"
            );
            let released = Instant::now();
            release_tx.send(()).unwrap();
            assert!(
                writer.join().unwrap().unwrap(),
                "the batch locked first and commits"
            );
            let (epochs, offsets, claimed_at) = claimer.join().unwrap();
            assert!(claimed_at >= released);
            assert_eq!(epochs, BTreeMap::from([(tp(0), 2)]));
            assert_eq!(offsets, BTreeMap::from([(tp(0), 10)]));
        });
    }
}

/// Instantiates every contract test for one backend.
macro_rules! suite {
    ($backend:ty) => {
        use super::*;

        suite!(@tests $backend;
            batches_commit_then_replays_are_fenced_and_offsets_survive_reopen,
            a_gap_is_refused_with_topic_partition_expected_and_actual,
            an_overlap_and_a_half_applied_batch_are_refused,
            failed_writes_roll_back_the_offsets,
            empty_batches_and_new_partitions,
            a_reset_accepts_a_gap,
            assign_strategy_starts_at_the_stored_offsets,
            racing_writers_of_one_batch_apply_it_once,
            a_stale_writer_epoch_is_refused,
            a_claim_waits_for_a_committing_batch,
        );
    };
    (@tests $backend:ty; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                spate_testkit::init_logging();
                let backend = <$backend>::new();
                contract::$test(&backend);
            }
        )*
    };
}

mod sqlite {
    use std::path::PathBuf;

    use spate_kafka::sink::rusqlite;

    use super::*;

    pub(super) struct Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl Sqlite {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("store.db");
            Sqlite { _dir: dir, path }
        }
    }

    impl Backend for Sqlite {
        type Store = SqliteOffsetStore;

        fn open(&self, job: &str) -> SqliteOffsetStore {
            let s = SqliteOffsetStore::open(&self.path, job).unwrap();
            s.connection()
                .execute("CREATE TABLE IF NOT EXISTS counts (n INTEGER)", [])
                .unwrap();
            s
        }

        fn add(
            s: &mut SqliteOffsetStore,
            ranges: &[OffsetRange],
            n: i64,
        ) -> Result<bool, SpateKafkaError> {
            s.commit_batch(ranges, |tx| {
                tx.execute("INSERT INTO counts (n) VALUES (?1)", [n])
                    .map(|_| ())
            })
        }

        fn add_then_fail(s: &mut SqliteOffsetStore, ranges: &[OffsetRange]) -> SpateKafkaError {
            s.commit_batch(ranges, |tx| {
                tx.execute("INSERT INTO counts (n) VALUES (1)", [])?;
                tx.execute("INSERT INTO no_such_table VALUES (1)", [])
                    .map(|_| ())
            })
            .unwrap_err()
        }

        fn total(&self) -> i64 {
            rusqlite::Connection::open(&self.path)
                .unwrap()
                .query_row("SELECT COALESCE(SUM(n), 0) FROM counts", [], |r| r.get(0))
                .unwrap()
        }
    }

    mod contract_tests {
        suite!(super::Sqlite);
    }
}

mod postgres {
    use spate_kafka::sink::postgres::{Client, NoTls};
    use spate_testkit::{PostgresServer, TestDatabase};

    use super::*;

    pub(super) struct Postgres {
        db: TestDatabase,
    }

    impl Postgres {
        pub(super) fn new() -> Self {
            Postgres {
                db: PostgresServer::shared().create_database("store_suite"),
            }
        }
    }

    impl Backend for Postgres {
        type Store = PostgresOffsetStore;

        fn open(&self, job: &str) -> PostgresOffsetStore {
            let mut s = PostgresOffsetStore::connect(&self.db.url, job).unwrap();
            s.client()
                .batch_execute("CREATE TABLE IF NOT EXISTS counts (n BIGINT)")
                .unwrap();
            s
        }

        fn add(
            s: &mut PostgresOffsetStore,
            ranges: &[OffsetRange],
            n: i64,
        ) -> Result<bool, SpateKafkaError> {
            s.commit_batch(ranges, |tx| {
                tx.execute("INSERT INTO counts (n) VALUES ($1)", &[&n])
                    .map(|_| ())
            })
        }

        fn add_then_fail(s: &mut PostgresOffsetStore, ranges: &[OffsetRange]) -> SpateKafkaError {
            s.commit_batch(ranges, |tx| {
                tx.execute("INSERT INTO counts (n) VALUES (1)", &[])?;
                tx.execute("INSERT INTO no_such_table VALUES (1)", &[])
                    .map(|_| ())
            })
            .unwrap_err()
        }

        fn total(&self) -> i64 {
            Client::connect(&self.db.url, NoTls)
                .unwrap()
                .query_one("SELECT COALESCE(SUM(n), 0)::BIGINT FROM counts", &[])
                .unwrap()
                .get(0)
        }
    }

    mod contract_tests {
        suite!(super::Postgres);
    }

    /// PostgreSQL locks per partition: a batch of partition 1 commits while another writer's
    /// batch of partition 0 is open (SQLite, with one write lock per file, would wait).
    #[test]
    fn writers_of_different_partitions_do_not_wait_for_each_other() {
        let b = Postgres::new();
        let (mut a, mut c) = (b.open("job-a"), b.open("job-a"));
        a.claim_partitions(&[tp(0)]).unwrap();
        c.claim_partitions(&[tp(1)]).unwrap();
        let (in_batch_tx, in_batch) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || {
                Postgres::add(&mut a, &[r(0, 0, 10)], 10).and_then(|_| {
                    a.commit_batch(&[r(0, 10, 20)], |tx| {
                        tx.execute("INSERT INTO counts (n) VALUES (10)", &[])?;
                        in_batch_tx.send(()).unwrap();
                        release.recv_timeout(Duration::from_secs(30)).unwrap();
                        Ok::<_, spate_kafka::sink::postgres::Error>(())
                    })
                })
            });
            in_batch.recv_timeout(Duration::from_secs(30)).unwrap();
            let started = Instant::now();
            assert!(Postgres::add(&mut c, &[r(1, 0, 7)], 7).unwrap());
            let waited = started.elapsed();
            release_tx.send(()).unwrap();
            assert!(writer.join().unwrap().unwrap());
            assert!(
                waited < Duration::from_secs(5),
                "partition 1 waited {waited:?} for partition 0"
            );
            eprintln!("partition 1 committed in {waited:?} while partition 0's batch was open");
        });
        assert_eq!(b.total(), 27);
        let mut check = b.open("job-a");
        assert_eq!(
            check.starting_offsets().unwrap(),
            BTreeMap::from([(tp(0), 20), (tp(1), 7)])
        );
    }
}
