//! The write side of a repartition topic: each batch's re-keyed records, and — once joined to
//! an exactly-once output — the [`TransactionParticipant`] that puts them, and the internal
//! stream's offset ranges of the same batch, into the output's per-batch transaction.
//!
//! Joined, batch *t*'s transaction holds the input's offsets of *t*, the repartition records
//! computed from them, the internal stream's offsets of *t* and whatever the stateful stage
//! wrote (outputs, changelog): a crash before the commit aborts all of it and the batch is
//! planned again from the same offsets; after the commit none of it is read or written again.
//! Standalone (no exactly-once output), a batch's records are written by an idempotent producer
//! and acknowledged before the batch's later outputs run: at-least-once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;
use rdkafka::config::ClientConfig;
use spate_streaming::Time;

use super::purge::Purger;
use crate::direct::offset_range::OffsetRange;
use crate::direct::stream::DirectKafkaStream;
use crate::error::{Result, SpateKafkaError};
use crate::sink::{OutputProducer, OutputRecord, TopicRecords, TransactionParticipant};

/// Where a batch's records go.
enum Writes {
    /// Its own idempotent producer, created at the first write (a joined writer never needs
    /// it).
    Standalone(Option<OutputProducer>),
    /// An exactly-once output's transactions: records wait here, by batch, until the output
    /// takes them into the batch's transaction.
    Transactional(BTreeMap<Time, Vec<OutputRecord>>),
}

/// The writer of one repartition topic (see the module docs).
pub(crate) struct RepartitionWriter {
    topic: String,
    producer_config: ClientConfig,
    writes: Mutex<Writes>,
    /// The latest batch whose records a transaction took: a later stash for it or an earlier
    /// batch would miss its transaction.
    taken_through: Mutex<Option<Time>>,
    /// The stream reading the topic back, whose ranges ride in the same transactions.
    internal: OnceLock<DirectKafkaStream>,
    /// Ranges handed to a transaction not known to be committed yet, by batch.
    handed: Mutex<BTreeMap<Time, Vec<OffsetRange>>>,
    purger: Purger,
    records: AtomicU64,
}

impl RepartitionWriter {
    pub(crate) fn new(topic: String, producer_config: ClientConfig, purger: Purger) -> Self {
        RepartitionWriter {
            topic,
            producer_config,
            writes: Mutex::new(Writes::Standalone(None)),
            taken_through: Mutex::new(None),
            internal: OnceLock::new(),
            handed: Mutex::new(BTreeMap::new()),
            purger,
            records: AtomicU64::new(0),
        }
    }

    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    pub(crate) fn set_internal(&self, stream: DirectKafkaStream) {
        // Set once, right after the writer is made, by `repartition`.
        let _ = self.internal.set(stream);
    }

    /// From now on batches wait for an exactly-once output's transactions.
    pub(crate) fn make_transactional(&self) {
        *self.writes.lock() = Writes::Transactional(BTreeMap::new());
    }

    pub(crate) fn records_written(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    pub(crate) fn purger(&self) -> &Purger {
        &self.purger
    }

    /// Batch `time`'s records: kept for its transaction, or written and acknowledged.
    pub(crate) fn write(&self, time: Time, records: Vec<OutputRecord>) -> Result<()> {
        let n = records.len() as u64;
        match &mut *self.writes.lock() {
            Writes::Transactional(pending) => {
                if let Some(taken) = *self.taken_through.lock() {
                    if taken >= time {
                        return Err(self.defined_after_output(time, taken));
                    }
                }
                pending.entry(time).or_default().extend(records);
            }
            Writes::Standalone(producer) => {
                let producer = match producer {
                    Some(p) => p,
                    slot @ None => slot.insert(OutputProducer::create(
                        &format!("repartition {}", self.topic),
                        &self.topic,
                        self.producer_config.clone(),
                    )?),
                };
                producer.enqueue(&self.topic, &records)?;
                producer.await_acks()?;
                self.records.fetch_add(n, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The exactly-once output ran batch `time` before this repartition's write: the output
    /// operation was defined first, and its transaction would not hold these records.
    fn defined_after_output(&self, time: Time, taken: Time) -> SpateKafkaError {
        SpateKafkaError::config(
            "repartition",
            &self.topic,
            format!(
                "batch {time}'s records reached the repartition topic after the exactly-once \
                 output took batch {taken}'s records: define the output after the repartition \
                 (outputs run in the order they were defined)"
            ),
        )
    }
}

impl TransactionParticipant for RepartitionWriter {
    fn take_records(&self, time: Time) -> Result<Vec<TopicRecords>> {
        {
            let mut taken = self.taken_through.lock();
            *taken = Some(taken.map_or(time, |t| t.max(time)));
        }
        let mut writes = self.writes.lock();
        let Writes::Transactional(pending) = &mut *writes else {
            return Ok(Vec::new());
        };
        let later = pending.split_off(&Time(time.0 + 1));
        let due = std::mem::replace(pending, later);
        let records: Vec<OutputRecord> = due.into_values().flatten().collect();
        self.records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(vec![TopicRecords {
            topic: self.topic.clone(),
            records,
        }])
    }

    fn offset_ranges(&self, time: Time) -> Result<Vec<OffsetRange>> {
        let Some(internal) = self.internal.get() else {
            return Ok(Vec::new());
        };
        // A group-managed internal stream's partitions may have moved since the batch was
        // planned: its ranges must not be committed then (the source's own check covers
        // only the source's partitions).
        internal.check_owned(time)?;
        let ranges = internal.offset_ranges(time).ok_or_else(|| {
            SpateKafkaError::InvalidPlan(format!(
                "no offset ranges of repartition topic {} for batch {time}",
                self.topic
            ))
        })?;
        self.handed.lock().insert(time, ranges.clone());
        Ok(ranges)
    }

    fn check_owned(&self, time: Time) -> Result<()> {
        match self.internal.get() {
            Some(internal) => internal.check_owned(time),
            None => Ok(()),
        }
    }

    fn assignments(&self) -> u64 {
        self.internal
            .get()
            .and_then(DirectKafkaStream::rebalances)
            .map_or(0, |c| c.assigned)
    }

    fn transaction_committed(&self, time: Time) {
        let committed = {
            let mut handed = self.handed.lock();
            let later = handed.split_off(&Time(time.0 + 1));
            std::mem::replace(&mut *handed, later)
        };
        let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
        // Empty ranges count: their offset was committed by an earlier batch, perhaps of a run
        // that was killed before its purge.
        for r in committed.into_values().flatten() {
            let o = offsets.entry(r.partition).or_insert(r.until_offset);
            *o = (*o).max(r.until_offset);
        }
        self.purger.committed(offsets);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn writer() -> RepartitionWriter {
        // Nothing here connects: the producer is made at a standalone write, the admin client
        // at a purge.
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1");
        let purger = Purger::start(&config, "app-x-repartition", Duration::from_secs(3600));
        RepartitionWriter::new("app-x-repartition".into(), config, purger)
    }

    #[test]
    fn a_batch_waits_for_its_transaction_and_a_late_write_is_refused() {
        let w = writer();
        w.make_transactional();
        w.write(Time(100), vec![OutputRecord::new("k", "1")])
            .unwrap();
        w.write(Time(200), vec![OutputRecord::new("k", "2")])
            .unwrap();
        let taken = w.take_records(Time(100)).unwrap();
        assert_eq!(taken[0].topic, "app-x-repartition");
        assert_eq!(taken[0].records, vec![OutputRecord::new("k", "1")]);
        assert_eq!(w.records_written(), 1);
        // Batch 100's transaction has begun: a write for it now would miss it.
        assert!(w
            .write(Time(100), vec![OutputRecord::new("k", "3")])
            .is_err());
        let later = w.take_records(Time(200)).unwrap();
        assert_eq!(later[0].records, vec![OutputRecord::new("k", "2")]);
    }
}
