//! State changelogs: the interface through which a keyed state operator reports what each batch
//! changed, and through which its state comes back after a restart — the engine's half of Kafka
//! Streams' changelog-backed state stores. The engine knows no storage: a [`StateChangelog`]
//! (e.g. `spate_kafka::changelog::KafkaChangelog`, a compacted topic) is attached to a state
//! operator by its `uid()` with [`crate::StreamingContext::state_changelog`].
//!
//! A state operator's store is split into N *state partitions* by key hash (the partition is a
//! task: one batch updates every partition in parallel). Per batch, the operator hands the
//! changelog one [`StateChanges`]: per partition, the keys whose state was written (an upsert,
//! the new value) or removed (a tombstone, no value). Keys and values are encoded with postcard
//! from the state's own serde types — the same compact, stable format as checkpoint snapshots —
//! so a changelog stores opaque bytes and compacts on the key bytes.
//!
//! On start, each partition is restored by streaming its entries, oldest first, into the
//! partition's map: the last value of a key wins and a tombstone removes it, so memory grows with
//! the final state, never with the length of the log.

use crate::error::{BoxError, Result};
use crate::time::Time;

/// One changelog entry: a key's encoded state, or a tombstone (`value == None`) when the key's
/// state was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogEntry {
    /// The key, encoded with postcard.
    pub key: Vec<u8>,
    /// The key's new state encoded with postcard; `None` when the state was removed.
    pub value: Option<Vec<u8>>,
}

impl ChangelogEntry {
    /// An upsert of `key` to `value`.
    pub fn put(key: Vec<u8>, value: Vec<u8>) -> Self {
        ChangelogEntry {
            key,
            value: Some(value),
        }
    }

    /// A tombstone: `key` has no state any more.
    pub fn tombstone(key: Vec<u8>) -> Self {
        ChangelogEntry { key, value: None }
    }
}

/// What one batch changed in one state operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChanges {
    /// The operator's id (its `uid()`).
    pub operator: String,
    /// The batch.
    pub time: Time,
    /// Entries per state partition (index = partition), in the order they were made.
    pub partitions: Vec<Vec<ChangelogEntry>>,
}

impl StateChanges {
    /// Entries over all partitions.
    pub fn len(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }

    /// True when the batch changed nothing.
    pub fn is_empty(&self) -> bool {
        self.partitions.iter().all(Vec::is_empty)
    }
}

/// Receives a restored partition's entries, oldest first (see [`StateChangelog::restore`]):
/// the encoded key and the encoded state, `None` for a tombstone. The bytes are borrowed (e.g.
/// from a consumer's fetch buffer), so a restore copies nothing but the state it rebuilds.
pub type RestoreFn<'a> = dyn FnMut(&[u8], Option<&[u8]>) -> Result<()> + 'a;

/// Where a keyed state operator's changes go, and where its state comes back from.
///
/// Calls, per run of a job: [`open`](Self::open) once per attached operator at start, then
/// [`restore`](Self::restore) once per state partition, then [`record`](Self::record) once per
/// batch that changed something. A failed call fails the start or the batch (and so stops the
/// job, which never continues with state its changelog does not have).
pub trait StateChangelog: Send + Sync {
    /// Prepares the changelog of `operator`, whose store has `partitions` state partitions
    /// (e.g. creates its topic, or refuses one with another partition count).
    fn open(&self, operator: &str, partitions: usize) -> std::result::Result<(), BoxError>;

    /// Streams partition `partition` of `operator`'s changelog to `apply`, oldest entry first,
    /// up to the end of the log as of the call; reports the number of entries it expects via
    /// `expected` first when it knows it (for progress). Returns the entries applied.
    fn restore(
        &self,
        operator: &str,
        partition: usize,
        expected: &mut dyn FnMut(u64),
        apply: &mut RestoreFn<'_>,
    ) -> std::result::Result<u64, BoxError>;

    /// One batch's changes. Called after the operator updated its store for the batch and
    /// before any output operation of that batch runs, so an output that writes the changes
    /// in its own transaction (the exactly-once Kafka sink) finds them there.
    fn record(&self, changes: StateChanges) -> std::result::Result<(), BoxError>;
}
