//! The Kafka output of DStreams, Spark's missing `saveToKafka`: [`SaveToKafka::save_to_kafka`]
//! (at-least-once) and [`SaveToKafka::save_to_kafka_exactly_once`].
//!
//! * At-least-once: an idempotent producer (`enable.idempotence=true`, so the producer's own
//!   retries never duplicate or reorder a record); the batch's output operation returns only
//!   after every record is acknowledged, so whatever commits the batch's offsets afterwards
//!   (the checkpoint, `commit_async`) never covers an unwritten record. A replayed batch is
//!   written again: duplicates, never losses.
//! * Exactly-once: one Kafka transaction per batch holding the batch's records and the batch's
//!   offset ranges committed to the job's consumer group (`send_offsets_to_transaction`), so the
//!   group's committed offsets are always those of the committed outputs. A restarted job
//!   starts from the group ([`KafkaOffsetStore::assign_strategy`]); a batch the group already
//!   covers is skipped; the stable `transactional.id` (`<group>-<output>`) makes the restarted
//!   producer fence its predecessor, whose open transaction the coordinator aborts.
//! * Exactly-once from a group-managed stream (several instances): the offsets are sent with the
//!   group *member's* metadata (member id and generation), so the coordinator refuses the
//!   commit of an instance the group has since removed (a zombie) and its transaction aborts
//!   (KIP-447). The `transactional.id` is then per instance (see [`instance_transactional_id`]).
//!
//! Waiting for acknowledgements counts deliveries in the producer's context instead of calling
//! `flush`, whose polling loop in rdkafka costs at least 100 ms per call, longer than a short
//! batch. Before `commit_transaction` (which flushes too) nothing is left in flight.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use spate_streaming::{DStream, Data, Time};

use super::kafka_offset_store::{offsets_tpl, KafkaOffsetStore};
use super::participant::{TopicRecords, TransactionParticipant};
use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::direct::params::KafkaParams;
use crate::direct::stream::DirectKafkaStream;
use crate::error::{Result, SpateKafkaError};

/// How long a transaction step (init, send offsets, commit, abort) may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// One record of a Kafka output: what the record function makes of a stream element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputRecord {
    /// The record key (`None`: a null key).
    pub key: Option<Vec<u8>>,
    /// The record value (`None`: a null value).
    pub value: Option<Vec<u8>>,
    /// `None`: the producer's partitioner picks the partition from the key.
    pub partition: Option<i32>,
}

impl OutputRecord {
    /// A record with a key and a value.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        OutputRecord {
            key: Some(key.into()),
            value: Some(value.into()),
            partition: None,
        }
    }

    /// A record with a value and no key.
    pub fn value(value: impl Into<Vec<u8>>) -> Self {
        OutputRecord {
            value: Some(value.into()),
            ..OutputRecord::default()
        }
    }
}

/// The delivery guarantee of a Kafka output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// An idempotent producer; a batch re-run after a failure writes its records again.
    AtLeastOnce,
    /// A transactional producer: each batch's records are committed in one Kafka transaction,
    /// and read_committed consumers see them once.
    ExactlyOnce,
}

/// How many [`BatchWrite`]s a [`KafkaOutput`] keeps (the most recent ones).
const WRITE_TIMES_KEPT: usize = 10_000;

/// How long one batch's write took, as seen by the output operation (the batch's computation
/// and `collect` are not included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchWrite {
    /// Output records of the batch.
    pub records: u64,
    /// From the first record sent (exactly-once: from `begin_transaction`) until every record
    /// was acknowledged (at-least-once) or the transaction committed (exactly-once).
    pub total: Duration,
    /// The part of `total` after every record was acknowledged: `send_offsets_to_transaction`
    /// and `commit_transaction` (zero for at-least-once). What a transaction adds beyond it is in
    /// the records' acknowledgements (`AddPartitionsToTxn` before a partition's first record).
    pub commit: Duration,
}

/// Counts records in flight and remembers the first failed delivery.
#[derive(Default)]
struct Deliveries {
    state: Mutex<(u64, Option<KafkaError>)>,
    done: Condvar,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut s = self.state.lock();
        s.0 = s.0.saturating_sub(1);
        if let Err((e, _)) = result {
            s.1.get_or_insert_with(|| e.clone());
        }
        if s.0 == 0 {
            self.done.notify_all();
        }
    }
}

/// The handle of a Kafka output: its guarantee and what it wrote.
#[derive(Clone)]
pub struct KafkaOutput {
    guarantee: DeliveryGuarantee,
    transactional_id: Option<String>,
    records: Arc<AtomicU64>,
    committed: Arc<AtomicU64>,
    skipped: Arc<AtomicU64>,
    writes: Arc<Mutex<VecDeque<BatchWrite>>>,
    participants: Arc<Mutex<Vec<Arc<dyn TransactionParticipant>>>>,
}

impl std::fmt::Debug for KafkaOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOutput")
            .field("guarantee", &self.guarantee)
            .field("transactional_id", &self.transactional_id)
            .field("records", &self.records_written())
            .finish_non_exhaustive()
    }
}

impl KafkaOutput {
    fn new(guarantee: DeliveryGuarantee, transactional_id: Option<String>) -> Self {
        KafkaOutput {
            guarantee,
            transactional_id,
            records: Arc::default(),
            committed: Arc::default(),
            skipped: Arc::default(),
            writes: Arc::default(),
            participants: Arc::default(),
        }
    }

    /// Adds `participant`'s records to every later batch's transaction (see
    /// [`TransactionParticipant`]); exactly-once outputs only.
    pub fn add_participant(&self, participant: Arc<dyn TransactionParticipant>) -> Result<()> {
        if self.guarantee != DeliveryGuarantee::ExactlyOnce {
            return Err(SpateKafkaError::config(
                "transactional.id",
                "",
                "only an exactly-once output (save_to_kafka_exactly_once) has transactions \
                 to write other records in",
            ));
        }
        self.participants.lock().push(participant);
        Ok(())
    }

    /// Every participant's records of batch `time`, and the offset ranges participants add to
    /// the batch's (a repartition topic's internal stream).
    fn participant_records(&self, time: Time) -> Result<(Vec<TopicRecords>, Vec<OffsetRange>)> {
        let participants = self.participants.lock().clone();
        let (mut all, mut ranges) = (Vec::new(), Vec::new());
        for p in participants {
            all.extend(p.take_records(time)?);
            ranges.extend(p.offset_ranges(time)?);
        }
        all.retain(|t| !t.records.is_empty());
        Ok((all, ranges))
    }

    /// Fails when some participant's input no longer owns what batch `time` read.
    fn participants_check_owned(&self, time: Time) -> Result<()> {
        let participants = self.participants.lock().clone();
        participants.iter().try_for_each(|p| p.check_owned(time))
    }

    /// The participants' inputs' assignment counts, summed.
    fn participant_assignments(&self) -> u64 {
        let participants = self.participants.lock().clone();
        participants.iter().map(|p| p.assignments()).sum()
    }

    /// Tells every participant that batch `time`'s transaction committed.
    fn participants_committed(&self, time: Time) {
        let participants = self.participants.lock().clone();
        for p in participants {
            p.transaction_committed(time);
        }
    }

    /// Counts a written batch and keeps its timing.
    fn batch_written(&self, write: BatchWrite) {
        self.records.fetch_add(write.records, Ordering::Relaxed);
        self.committed.fetch_add(1, Ordering::Relaxed);
        let mut writes = self.writes.lock();
        if writes.len() == WRITE_TIMES_KEPT {
            writes.pop_front();
        }
        writes.push_back(write);
    }

    /// The guarantee the output was created with.
    pub fn guarantee(&self) -> DeliveryGuarantee {
        self.guarantee
    }

    /// The producer's `transactional.id` (exactly-once outputs only).
    pub fn transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }

    /// Records acknowledged (at-least-once) or committed (exactly-once) by this process.
    pub fn records_written(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Batches written (at-least-once) or whose transaction committed (exactly-once).
    pub fn committed_batches(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Batches skipped because the group's committed offsets already covered them.
    pub fn skipped_batches(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The write times of the most recent batches written by this process (up to 10,000),
    /// oldest first: what the output adds to a batch's processing time.
    pub fn batch_writes(&self) -> Vec<BatchWrite> {
        self.writes.lock().iter().copied().collect()
    }
}

/// The producer of one output and the way to wait for its acknowledgements.
pub(crate) struct OutputProducer {
    producer: ThreadedProducer<Deliveries>,
    topic: String,
}

impl OutputProducer {
    pub(crate) fn create(output: &str, topic: &str, config: ClientConfig) -> Result<Self> {
        let producer = config
            .create_with_context(Deliveries::default())
            .map_err(|source| SpateKafkaError::CreateProducer {
                output: output.to_owned(),
                source,
            })?;
        Ok(OutputProducer {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// Sends every record and waits until each is acknowledged; the first failure is returned.
    fn send_all(&self, records: &[OutputRecord]) -> Result<()> {
        self.enqueue(&self.topic, records)?;
        self.await_acks()
    }

    /// Hands `records` for `topic` to the producer without waiting.
    pub(crate) fn enqueue(&self, topic: &str, records: &[OutputRecord]) -> Result<()> {
        let deliveries = self.producer.context();
        for r in records {
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
            rec.key = r.key.as_deref();
            rec.payload = r.value.as_deref();
            rec.partition = r.partition;
            deliveries.state.lock().0 += 1;
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The background thread drains the queue; give it a moment.
                        rec = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((source, _)) => {
                        deliveries.state.lock().0 -= 1;
                        return Err(SpateKafkaError::ProduceFailed {
                            topic: topic.to_owned(),
                            source,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits until every record handed over so far is acknowledged; returns the first failure.
    pub(crate) fn await_acks(&self) -> Result<()> {
        let deliveries = self.producer.context();
        let mut s = deliveries.state.lock();
        while s.0 > 0 {
            deliveries.done.wait(&mut s);
        }
        match s.1.take() {
            Some(source) => Err(self.produce_failed(source)),
            None => Ok(()),
        }
    }

    fn produce_failed(&self, source: KafkaError) -> SpateKafkaError {
        SpateKafkaError::ProduceFailed {
            topic: self.topic.clone(),
            source,
        }
    }
}

/// The producer settings of an output: the user's, minus the consumer-only and spate keys
/// (librdkafka warns about consumer keys on a producer), with idempotence on.
pub(crate) fn producer_config(params: &KafkaParams) -> Result<ClientConfig> {
    params.bootstrap_servers()?;
    let consumer_only = [
        "group.id",
        "group.instance.id",
        "auto.offset.reset",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "isolation.level",
        "key.deserializer",
        "value.deserializer",
        "fetch.wait.max.ms",
        "fetch.queue.backoff.ms",
        "queued.max.messages.kbytes",
        "enable.partition.eof",
    ];
    let mut c = ClientConfig::new();
    for (k, v) in params.iter() {
        if !consumer_only.contains(&k) && !k.starts_with("spate.") {
            c.set(k, v);
        }
    }
    c.set("enable.idempotence", "true");
    if params.get("linger.ms").is_none() {
        // A batch is sent as a whole and then waited for: lingering only adds latency.
        c.set("linger.ms", "1");
    }
    Ok(c)
}

/// Kafka outputs on DStreams.
pub trait SaveToKafka<T: Data> {
    /// Writes every batch to `topic` at least once (see the module docs): the output operation
    /// completes after every record is acknowledged.
    fn save_to_kafka<F>(&self, topic: &str, params: KafkaParams, record: F) -> Result<KafkaOutput>
    where
        F: Fn(&T) -> OutputRecord + Send + Sync + 'static;

    /// Writes every batch to `topic` exactly once: one transaction per batch with `source`'s
    /// offset ranges of that batch committed to `store`'s group. `output` names the output
    /// within the job (the `transactional.id` is `<group>-<output>`).
    ///
    /// The stream must produce one output per batch of `source` (no window with a longer
    /// slide), and a job has one exactly-once output per group: each transaction commits the
    /// batch's offsets, so a second output would find its batches already committed.
    fn save_to_kafka_exactly_once<F>(
        &self,
        source: &DirectKafkaStream,
        store: KafkaOffsetStore,
        output: &str,
        topic: &str,
        record: F,
    ) -> Result<KafkaOutput>
    where
        F: Fn(&T) -> OutputRecord + Send + Sync + 'static;
}

impl<T: Data> SaveToKafka<T> for DStream<T> {
    fn save_to_kafka<F>(&self, topic: &str, params: KafkaParams, record: F) -> Result<KafkaOutput>
    where
        F: Fn(&T) -> OutputRecord + Send + Sync + 'static,
    {
        let producer = OutputProducer::create(topic, topic, producer_config(&params)?)?;
        let out = KafkaOutput::new(DeliveryGuarantee::AtLeastOnce, None);
        let o = out.clone();
        self.foreach_batch(move |batch, _time| {
            let records: Vec<OutputRecord> = batch.collect()?.iter().map(&record).collect();
            let started = Instant::now();
            producer.send_all(&records)?;
            o.batch_written(BatchWrite {
                records: records.len() as u64,
                total: started.elapsed(),
                commit: Duration::ZERO,
            });
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        });
        Ok(out)
    }

    fn save_to_kafka_exactly_once<F>(
        &self,
        source: &DirectKafkaStream,
        store: KafkaOffsetStore,
        output: &str,
        topic: &str,
        record: F,
    ) -> Result<KafkaOutput>
    where
        F: Fn(&T) -> OutputRecord + Send + Sync + 'static,
    {
        let transactional_id = match source.group_member() {
            Some(m) => instance_transactional_id(&store, output, m.instance_id()),
            None => store.transactional_id(output),
        };
        let txn = TransactionalOutput::start(store, transactional_id, output, topic)?;
        let out = KafkaOutput::new(
            DeliveryGuarantee::ExactlyOnce,
            Some(txn.transactional_id.clone()),
        );
        let (handle, o, txn) = (source.clone(), out.clone(), Mutex::new(txn));
        let assignments_seen = AtomicU64::new(0);
        self.foreach_batch(move |batch, time: Time| {
            let mut ranges = handle.offset_ranges(time).ok_or_else(|| {
                SpateKafkaError::InvalidPlan(format!("no offset ranges for batch {time}"))
            })?;
            let records: Vec<OutputRecord> = batch.collect()?.iter().map(&record).collect();
            let (joined, joined_ranges) = o.participant_records(time)?;
            ranges.extend(joined_ranges);
            if records.is_empty() && joined.is_empty() && ranges.iter().all(|r| r.is_empty()) {
                // Nothing to commit, and every earlier batch's transaction committed: what the
                // participants' ranges start from is committed (a run that restarts with
                // nothing new still purges what a killed run committed).
                o.participants_committed(time);
                return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(());
            }
            let mut txn = txn.lock();
            // Partitions (the source's or a participant's input's) may have come back after
            // another instance advanced them: what the store remembers of the group's offsets
            // is stale.
            let assigned =
                handle.rebalances().map_or(0, |c| c.assigned) + o.participant_assignments();
            if assignments_seen.swap(assigned, Ordering::Relaxed) != assigned {
                txn.store.forget();
            }
            let mut attempt = 1;
            let write = loop {
                let metadata = match handle.group_member() {
                    Some(m) => Some(m.group_metadata(time)?),
                    None => None,
                };
                // The offsets of a participant's input (a repartition topic's internal stream)
                // go with the source member's generation, which the broker checks, not with
                // its own assignment: its ownership is checked here, after that generation
                // was read, so an attempt retried under a newer generation does not commit
                // partitions the group gave to another instance meanwhile.
                o.participants_check_owned(time)?;
                let Some(advance) = txn.store.plan_commit(&ranges)? else {
                    tracing::debug!(%time, "batch already committed to the group; skipped");
                    o.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                };
                match txn.commit_batch(&records, &joined, &advance, metadata.as_ref()) {
                    Ok(write) => break write,
                    // The group moved to a new generation between reading the member's
                    // metadata and the commit: while the partitions are still this member's,
                    // the batch is retried in a new transaction with the new generation (the
                    // loop re-checks ownership first).
                    Err(e)
                        if metadata.is_some()
                            && attempt < GENERATION_RETRIES
                            && is_offsets_refused(&e) =>
                    {
                        tracing::warn!(%time, attempt, error = %e, "offsets refused; retrying the batch's transaction");
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            o.batch_written(write);
            o.participants_committed(time);
            Ok(())
        });
        Ok(out)
    }
}

/// How often a group-managed batch's transaction is tried when the group refuses its offsets.
const GENERATION_RETRIES: u32 = 3;

/// Whether the group refused a transaction's offsets (e.g. ILLEGAL_GENERATION after a
/// rebalance); the transaction was aborted.
fn is_offsets_refused(e: &SpateKafkaError) -> bool {
    matches!(
        e,
        SpateKafkaError::Transaction {
            operation: "send_offsets_to_transaction",
            ..
        }
    )
}

/// The `transactional.id` of an output of a group-managed instance:
/// `<group>-<output>-<group.instance.id>`, or a random suffix for a dynamic member. Per
/// instance, not per job: instances write concurrently, and one shared id would make each new
/// producer fence the others'. A zombie is fenced by the group generation instead; a static
/// instance restarted under its `group.instance.id` still fences its own predecessor's producer.
fn instance_transactional_id(
    store: &KafkaOffsetStore,
    output: &str,
    instance: Option<&str>,
) -> String {
    match instance {
        Some(id) => format!("{}-{id}", store.transactional_id(output)),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            format!(
                "{}-{}-{nanos:x}",
                store.transactional_id(output),
                std::process::id()
            )
        }
    }
}

/// The transactional producer of an exactly-once output and the group it commits to.
struct TransactionalOutput {
    producer: OutputProducer,
    store: KafkaOffsetStore,
    transactional_id: String,
}

impl TransactionalOutput {
    /// Creates the producer and registers its `transactional.id`, fencing any earlier
    /// producer with the same id (the coordinator aborts that producer's open transaction).
    fn start(
        store: KafkaOffsetStore,
        transactional_id: String,
        output: &str,
        topic: &str,
    ) -> Result<Self> {
        let mut config = producer_config(store.params())?;
        config.set("transactional.id", &transactional_id);
        let producer = OutputProducer::create(output, topic, config)?;
        let txn = TransactionalOutput {
            producer,
            store,
            transactional_id,
        };
        txn.producer
            .producer
            .init_transactions(TXN_TIMEOUT)
            .map_err(|e| txn.failed("init_transactions", e))?;
        Ok(txn)
    }

    fn failed(&self, operation: &'static str, source: KafkaError) -> SpateKafkaError {
        SpateKafkaError::Transaction {
            transactional_id: self.transactional_id.clone(),
            operation,
            source: Box::new(source),
        }
    }

    /// One batch in one transaction: the records, then the offsets, then the commit. On a
    /// failure the transaction is aborted (when the producer still can) and the store forgets
    /// its offsets, so the retried batch is judged against what the group really holds.
    fn commit_batch(
        &mut self,
        records: &[OutputRecord],
        joined: &[TopicRecords],
        advance: &BTreeMap<TopicPartition, i64>,
        member: Option<&ConsumerGroupMetadata>,
    ) -> Result<BatchWrite> {
        match self.try_commit(records, joined, advance, member) {
            Ok(write) => {
                self.store.committed(advance);
                Ok(write)
            }
            Err(e) => {
                self.store.forget();
                if let Err(abort) = self.producer.producer.abort_transaction(TXN_TIMEOUT) {
                    tracing::warn!(error = %abort, "aborting the failed transaction failed");
                }
                Err(e)
            }
        }
    }

    fn try_commit(
        &self,
        records: &[OutputRecord],
        joined: &[TopicRecords],
        advance: &BTreeMap<TopicPartition, i64>,
        member: Option<&ConsumerGroupMetadata>,
    ) -> Result<BatchWrite> {
        let p = &self.producer.producer;
        let started = Instant::now();
        p.begin_transaction()
            .map_err(|e| self.failed("begin_transaction", e))?;
        for j in joined {
            self.producer.enqueue(&j.topic, &j.records)?;
        }
        self.producer.send_all(records)?;
        let acknowledged = Instant::now();
        if !advance.is_empty() {
            let own;
            let metadata = match member {
                Some(m) => m,
                None => {
                    own = self.store.group_metadata()?;
                    &own
                }
            };
            p.send_offsets_to_transaction(&offsets_tpl(advance)?, metadata, TXN_TIMEOUT)
                .map_err(|e| self.failed("send_offsets_to_transaction", e))?;
        }
        p.commit_transaction(TXN_TIMEOUT)
            .map_err(|e| self.failed("commit_transaction", e))?;
        Ok(BatchWrite {
            records: records.len() as u64,
            total: started.elapsed(),
            commit: acknowledged.elapsed(),
        })
    }
}
