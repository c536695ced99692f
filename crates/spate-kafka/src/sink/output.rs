//! [`foreach_batch_transactional`]: wires a [`TransactionalStore`] (SQLite, PostgreSQL) into a
//! job. Each batch's
//! results (any stream derived from a direct stream, e.g. word counts) are written together with
//! the direct stream's offset ranges of the same batch time, in one transaction. This is the
//! glue every transactional job would otherwise repeat: look up the ranges by batch time, collect
//! the results, commit, count replays.
//!
//! With a group-managed stream, the output is also the stream's [`RebalanceListener`]: it claims
//! the partitions the group assigns to this instance in the store (raising their writer epochs,
//! which fences the previous owner if it is still alive) and starts them from the stored
//! offsets; and before each commit it checks that the batch's partitions are still this
//! instance's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use spate_streaming::{DStream, Data, Time};

use super::store::{TransactionalStore, WriteError};
use crate::direct::group::RebalanceListener;
use crate::direct::offset_range::TopicPartition;
use crate::direct::stream::DirectKafkaStream;
use crate::error::{Result as KafkaResult, SpateKafkaError};

/// The handle of a transactional output: the store and how many batches were committed or
/// skipped as already applied.
pub struct TransactionalOutput<S> {
    store: Arc<Mutex<S>>,
    committed: Arc<AtomicU64>,
    skipped: Arc<AtomicU64>,
}

impl<S> Clone for TransactionalOutput<S> {
    fn clone(&self) -> Self {
        TransactionalOutput {
            store: self.store.clone(),
            committed: self.committed.clone(),
            skipped: self.skipped.clone(),
        }
    }
}

impl<S> std::fmt::Debug for TransactionalOutput<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalOutput")
            .field("committed", &self.committed_batches())
            .field("skipped", &self.skipped_batches())
            .finish_non_exhaustive()
    }
}

impl<S> TransactionalOutput<S> {
    /// The store, for reading results between batches (blocks while a batch commits).
    pub fn store(&self) -> MutexGuard<'_, S> {
        self.store.lock()
    }

    /// Batches whose results and offsets were committed.
    pub fn committed_batches(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Batches skipped because the store had already applied them.
    pub fn skipped_batches(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

impl<S: TransactionalStore> RebalanceListener for TransactionalOutput<S> {
    /// Claims `partitions` in the store (their previous writer is fenced from now on; the claim
    /// waits for its committing batch) and returns their stored offsets.
    fn on_partitions_assigned(
        &self,
        partitions: &[TopicPartition],
    ) -> KafkaResult<BTreeMap<TopicPartition, i64>> {
        let mut store = self.store.lock();
        let epochs = store.claim_partitions(partitions)?;
        tracing::info!(job = store.job(), ?epochs, "assigned partitions claimed");
        let mut stored = store.starting_offsets()?;
        stored.retain(|tp, _| partitions.contains(tp));
        Ok(stored)
    }
}

/// Registers an output on `results` that, for every batch, runs `write` with the batch's results
/// and stores `source`'s offset ranges of that batch in the same transaction
/// ([`TransactionalStore::commit_batch`]). Batches with no offsets and no results are not written
/// at all. A gap between the stored offsets and the batch fails the batch.
///
/// `results` must produce one output per batch of `source` (no window with a longer slide):
/// batches without an output would leave their ranges unstored, and the next batch would be
/// refused as a gap.
pub fn foreach_batch_transactional<S, T, F, E>(
    source: &DirectKafkaStream,
    results: &DStream<T>,
    store: S,
    write: F,
) -> TransactionalOutput<S>
where
    S: TransactionalStore,
    T: Data,
    F: Fn(&mut S::Tx<'_>, Vec<T>, Time) -> Result<(), E> + Send + Sync + 'static,
    E: Into<WriteError>,
{
    let out = TransactionalOutput {
        store: Arc::new(Mutex::new(store)),
        committed: Arc::default(),
        skipped: Arc::default(),
    };
    let (handle, o) = (source.clone(), out.clone());
    results.foreach_batch(move |batch, time| {
        let ranges = handle.offset_ranges(time).ok_or_else(|| {
            SpateKafkaError::InvalidPlan(format!("no offset ranges for batch {time}"))
        })?;
        let items = batch.collect()?;
        if items.is_empty() && ranges.iter().all(|r| r.is_empty()) {
            return Ok::<_, WriteError>(());
        }
        // A group-managed instance commits only partitions it still owns (the store's writer
        // epochs refuse the rest too, inside the transaction).
        handle.check_owned(time)?;
        let applied = o
            .store
            .lock()
            .commit_batch(&ranges, |tx| write(tx, items, time))?;
        let counter = if applied { &o.committed } else { &o.skipped };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    out
}
