//! Reading one [`OffsetRange`] exactly: [`read_range`] over any [`RecordSource`], and
//! [`KafkaRangeReader`], which reads ranges with cached rdkafka consumers.
//!
//! The rules, each fixing a Spark complaint:
//! * **Offset gaps are normal** (compaction, transaction markers occupy offsets): the reader
//!   never expects `offset == previous + 1`. It keeps records with `from ≤ offset < until` and
//!   stops once the next offset to read reaches `until`, at a record at or beyond `until`, once
//!   the consumer's position has passed `until` (librdkafka moves it past transaction markers),
//!   or at an end-of-partition event raised after this read positioned the consumer while the
//!   log's end already covered the range (offsets compacted away up to the end).
//! * **Data loss is loud** (Spark's silent skip hid lost data): offsets below the partition's earliest offset fail the
//!   read with [`SpateKafkaError::OffsetsOutOfRange`], naming the partition, the requested and the
//!   available range — or, with `fail_on_data_loss(false)`, the read starts at the earliest
//!   offset and reports how many offsets were skipped.
//! * **No hangs, no cryptic timeouts** (Spark's only symptom of a stuck read was a bare timeout): waiting longer than the poll timeout
//!   without progress fails with [`SpateKafkaError::PollTimeout`], naming the partition and
//!   offset.

use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use crate::direct::config::DirectStreamConfig;
use crate::direct::consumer_cache::{CacheKey, ConsumerCache, ConsumerLease};
use crate::direct::driver::Watermarks;
use crate::direct::offset_range::{OffsetRange, TopicPartition};
use crate::direct::params::KafkaParams;
use crate::direct::range_stream::RangeRecords;
use crate::error::{Result, SpateKafkaError};
use crate::record::{ConsumerRecord, RecordArena};

/// What one poll of a partition consumer produced.
#[derive(Debug)]
pub enum PollEvent {
    /// The next record.
    Record(ConsumerRecord),
    /// The consumer reached the end of the partition (everything below it was delivered).
    PartitionEof,
    /// The consumer's fetch offset is no longer (or not yet) in the log.
    OffsetOutOfRange,
    /// Nothing arrived within the poll's timeout.
    Idle,
    /// Any other client error (logged; the poll timeout bounds how long we tolerate them).
    Error(KafkaError),
}

/// A consumer of one partition, as [`read_range`] sees it.
pub trait RecordSource {
    /// Earliest and latest offsets of the partition.
    fn watermarks(&mut self) -> Result<Watermarks>;
    /// Positions the consumer so the next record delivered is the first with offset ≥ `offset`.
    /// With `force` false a consumer already positioned there may keep its prefetched data.
    /// Returns true when the consumer was re-positioned (events queued before are discarded).
    fn seek(&mut self, offset: i64, force: bool) -> Result<bool>;
    /// Waits up to `timeout` for the next event.
    fn poll(&mut self, timeout: Duration) -> PollEvent;
    /// The offset after the last record delivered (past any gap the client skipped), if known.
    fn position(&mut self) -> Option<i64>;
    /// Gives back a record read beyond the range, so that the next range starting there sees it.
    fn unread(&mut self, record: ConsumerRecord);
}

/// How [`read_range`] treats data loss and waiting.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Fail on offsets deleted by retention (true) or skip and count them (false).
    pub fail_on_data_loss: bool,
    /// How long to wait for the next record before failing with a poll timeout.
    pub poll_timeout: Duration,
    /// The range was planned from the partition's latest offset, so the log end is known to
    /// be at or past `until` without asking the broker again (see [`read_range`]).
    pub planned: bool,
}

impl From<&DirectStreamConfig> for ReadOptions {
    fn from(c: &DirectStreamConfig) -> Self {
        ReadOptions {
            fail_on_data_loss: c.fail_on_data_loss,
            poll_timeout: c.poll_timeout,
            planned: false,
        }
    }
}

/// The records of one range, and how many of its offsets were lost to retention (only with
/// `fail_on_data_loss(false)`; otherwise that is an error).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeRead {
    /// The range that was read.
    pub range: OffsetRange,
    /// Its records, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// Offsets of the range deleted by retention before they could be read.
    pub skipped_offsets: u64,
}

const POLL_SLICE: Duration = Duration::from_millis(200);

fn out_of_range(range: &OffsetRange, w: Watermarks) -> SpateKafkaError {
    SpateKafkaError::OffsetsOutOfRange {
        topic: range.topic.clone(),
        partition: range.partition,
        requested_from: range.from_offset,
        requested_until: range.until_offset,
        available_start: w.earliest,
        available_end: w.latest,
    }
}

/// Reads exactly the records of `range` from `source` into memory. See the module docs for the
/// rules; [`RangeScan`] is the same read one record at a time.
pub fn read_range(
    source: &mut impl RecordSource,
    range: &OffsetRange,
    opts: ReadOptions,
) -> Result<RangeRead> {
    let mut scan = RangeScan::new(range.clone(), opts);
    let mut records = Vec::new();
    while let Some(r) = scan.next_record(source)? {
        records.push(r);
    }
    Ok(RangeRead {
        range: range.clone(),
        records,
        skipped_offsets: scan.skipped_offsets(),
    })
}

/// One range read in progress, yielding its records one by one (see the module docs for the
/// rules). It keeps no record: what a task has not consumed yet is in the consumer's pre-fetch
/// queue, whose size `queued.max.messages.kbytes` bounds.
#[derive(Debug)]
pub struct RangeScan {
    range: OffsetRange,
    opts: ReadOptions,
    state: ScanState,
    skipped_offsets: u64,
}

#[derive(Debug)]
enum ScanState {
    NotStarted,
    Reading(ReadCursor),
    Done,
}

impl RangeScan {
    /// A read of `range` that has not touched the consumer yet.
    pub fn new(range: OffsetRange, opts: ReadOptions) -> Self {
        RangeScan {
            range,
            opts,
            state: ScanState::NotStarted,
            skipped_offsets: 0,
        }
    }

    /// The range being read.
    pub fn range(&self) -> &OffsetRange {
        &self.range
    }

    /// Offsets of the range deleted by retention and skipped so far (only with
    /// `fail_on_data_loss(false)`; otherwise that is an error).
    pub fn skipped_offsets(&self) -> u64 {
        self.skipped_offsets
    }

    /// The next record of the range from `source`; `None` once the range is complete. After an
    /// error the scan is over (later calls return `None`).
    pub fn next_record(
        &mut self,
        source: &mut impl RecordSource,
    ) -> Result<Option<ConsumerRecord>> {
        let r = self.advance(source);
        if !matches!(r, Ok(Some(_))) {
            self.state = ScanState::Done;
        }
        r
    }

    fn advance(&mut self, source: &mut impl RecordSource) -> Result<Option<ConsumerRecord>> {
        if let ScanState::NotStarted = self.state {
            if self.range.is_empty() {
                return Ok(None);
            }
            match ReadCursor::start(source, &self.range, self.opts, &mut self.skipped_offsets)? {
                Some(cursor) => self.state = ScanState::Reading(cursor),
                None => return Ok(None),
            }
        }
        let ScanState::Reading(cursor) = &mut self.state else {
            return Ok(None);
        };
        let (range, opts) = (&self.range, self.opts);
        while cursor.next < range.until_offset {
            let slice = cursor.poll_slice(range, opts)?;
            let event = source.poll(slice);
            cursor.check_clock = !matches!(&event, PollEvent::Record(r) if r.offset >= cursor.next);
            let step = match event {
                PollEvent::Record(r) => cursor.on_record(source, r, range),
                PollEvent::PartitionEof => cursor.on_end_or_idle(source, range, true)?,
                PollEvent::Idle => cursor.on_end_or_idle(source, range, false)?,
                PollEvent::OffsetOutOfRange => {
                    cursor.on_out_of_range(source, range, opts, &mut self.skipped_offsets)?
                }
                PollEvent::Error(e) => {
                    tracing::warn!(topic = %range.topic, partition = range.partition,
                        offset = cursor.next, error = %e,
                        "error while reading; retrying until the poll timeout");
                    Step::Continue
                }
            };
            match step {
                Step::Continue => {}
                Step::Yield(r) => return Ok(Some(r)),
                Step::Done => break,
            }
        }
        Ok(None)
    }
}

/// Whether a range read goes on polling after an event.
enum Step {
    Continue,
    /// A record of the range, for the task.
    Yield(ConsumerRecord),
    Done,
}

/// One range read between polls: the next offset wanted, and the poll deadline.
#[derive(Debug)]
struct ReadCursor {
    next: i64,
    /// The consumer was positioned by this read, so an end-of-partition event is about it.
    fresh: bool,
    /// The log's end was at or past the range's end when the read started, so a fresh
    /// end-of-partition event proves every record below it was delivered (the end only grows).
    end_covers_range: bool,
    deadline: Instant,
    slice: Duration,
    progressed: bool,
    /// Read the clock before the next poll. The clock is read only after an event that is not a
    /// new record of the range: reading it twice per record was ~9% of a pass-through job's
    /// CPU. Progress therefore pushes the deadline back at the next such event, at most one
    /// poll slice late.
    check_clock: bool,
}

impl ReadCursor {
    /// Positions the read: skips offsets retention deleted (when allowed) and seeks. `None`
    /// when nothing is left to read.
    fn start(
        source: &mut impl RecordSource,
        range: &OffsetRange,
        opts: ReadOptions,
        skipped: &mut u64,
    ) -> Result<Option<Self>> {
        let until = range.until_offset;
        let mut next = range.from_offset;
        // A planned range ends at or below the latest offset the planner saw, and a log end only
        // grows: the ListOffsets round trip would prove nothing new, and at 10 ms batches it was
        // most of a small batch's read time. Offsets that retention deleted since planning are
        // still caught, by the OffsetOutOfRange event.
        let w = if opts.planned {
            Watermarks {
                earliest: i64::MIN,
                latest: until,
            }
        } else {
            source.watermarks()?
        };
        if next < w.earliest {
            next = skip_lost(range, next, w, opts, skipped)?;
        }
        if next >= until {
            return Ok(None);
        }
        let fresh = source.seek(next, false)?;
        Ok(Some(ReadCursor {
            next,
            fresh,
            end_covers_range: w.latest >= until,
            deadline: Instant::now() + opts.poll_timeout,
            slice: opts.poll_timeout.min(POLL_SLICE),
            progressed: false,
            check_clock: false,
        }))
    }

    /// How long the next poll may wait; a [`SpateKafkaError::PollTimeout`] once the deadline
    /// passed without progress.
    fn poll_slice(&mut self, range: &OffsetRange, opts: ReadOptions) -> Result<Duration> {
        if !self.check_clock {
            return Ok(self.slice);
        }
        let now = Instant::now();
        if self.progressed {
            self.deadline = now + opts.poll_timeout;
            self.progressed = false;
        }
        let remaining = self.deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return Err(SpateKafkaError::PollTimeout {
                topic: range.topic.clone(),
                partition: range.partition,
                offset: self.next,
                until: range.until_offset,
                waited_ms: u64::try_from(opts.poll_timeout.as_millis()).unwrap_or(u64::MAX),
            });
        }
        self.slice = remaining.min(POLL_SLICE);
        Ok(self.slice)
    }

    fn on_record(
        &mut self,
        source: &mut impl RecordSource,
        r: ConsumerRecord,
        range: &OffsetRange,
    ) -> Step {
        if r.offset < self.next {
            return Step::Continue; // delivered before a seek took effect
        }
        if r.offset >= range.until_offset {
            source.unread(r);
            return Step::Done;
        }
        self.next = r.offset + 1;
        self.progressed = true;
        Step::Yield(r)
    }

    /// An end-of-partition event (`eof`) or an idle poll.
    fn on_end_or_idle(
        &mut self,
        source: &mut impl RecordSource,
        range: &OffsetRange,
        eof: bool,
    ) -> Result<Step> {
        // A range that ends in an offset gap: the consumer has moved past `until` without a
        // record to show for it (librdkafka advances the position past transaction markers it
        // does not deliver).
        if let Some(pos) = source.position() {
            if pos >= range.until_offset {
                return Ok(Step::Done);
            }
        }
        if eof && self.end_covers_range {
            if self.fresh {
                // Compacted away up to the end of the log: the rest is a gap.
                return Ok(Step::Done);
            }
            // The event may predate this read (a reused consumer); re-position so that the
            // next one is about this read.
            self.fresh = source.seek(self.next, true)?;
        }
        Ok(Step::Continue)
    }

    fn on_out_of_range(
        &mut self,
        source: &mut impl RecordSource,
        range: &OffsetRange,
        opts: ReadOptions,
        skipped: &mut u64,
    ) -> Result<Step> {
        let until = range.until_offset;
        let w = source.watermarks()?;
        if self.next < w.earliest {
            // Retention deleted offsets while we were reading them.
            self.next = skip_lost(range, self.next, w, opts, skipped)?;
            if self.next >= until {
                return Ok(Step::Done);
            }
            self.fresh = source.seek(self.next, true)?;
        } else if w.latest < until && self.next >= w.latest {
            // The log ends below the planned range (e.g. the topic was recreated).
            return Err(out_of_range(range, w));
        } else {
            tracing::warn!(topic = %range.topic, partition = range.partition, offset = self.next,
                ?w, "offset out of range reported for an available offset; seeking again");
            self.fresh = source.seek(self.next, true)?;
        }
        Ok(Step::Continue)
    }
}

/// `next` is below the earliest available offset: fail, or skip to it and count the loss.
fn skip_lost(
    range: &OffsetRange,
    next: i64,
    w: Watermarks,
    opts: ReadOptions,
    skipped: &mut u64,
) -> Result<i64> {
    if opts.fail_on_data_loss {
        return Err(out_of_range(range, w));
    }
    let resume = w.earliest.min(range.until_offset);
    let lost = u64::try_from(resume - next).unwrap_or(0);
    tracing::warn!(topic = %range.topic, partition = range.partition, requested = next,
        earliest = w.earliest, lost, "offsets deleted before they were read; skipping (fail_on_data_loss=false)");
    *skipped += lost;
    Ok(resume)
}

/// The task consumers' client context: end-of-partition, which these consumers ask for
/// (`enable.partition.eof`) and [`read_range`] handles, can also surface as a "global error";
/// it is not one, so it is not logged as one.
#[derive(Debug)]
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::trace!("librdkafka: {error}: {reason}");
        } else {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// An rdkafka consumer assigned to one partition, reused across ranges by [`KafkaRangeReader`].
pub struct PartitionConsumer {
    consumer: BaseConsumer<ReaderContext>,
    tp: TopicPartition,
    /// The topic's name, shared by every record this consumer delivers.
    topic: std::sync::Arc<str>,
    config: DirectStreamConfig,
    /// Offset of the next record this consumer will deliver, when it is known.
    next_offset: Option<i64>,
    pending: Option<ConsumerRecord>,
    /// Where this consumer's records keep their keys and values: a cached consumer reads
    /// range after range, so its chunks are reused across tasks.
    arena: RecordArena,
}

impl std::fmt::Debug for PartitionConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionConsumer")
            .field("tp", &self.tp)
            .field("next_offset", &self.next_offset)
            .finish_non_exhaustive()
    }
}

impl PartitionConsumer {
    /// A task consumer from `params` assigned to `tp` (not yet positioned).
    pub fn new(
        params: &KafkaParams,
        tp: TopicPartition,
        config: &DirectStreamConfig,
    ) -> Result<Self> {
        Self::with_prefetch(params, tp, config, config.prefetch_kbytes)
    }

    /// A task consumer whose pre-fetch queue holds up to `prefetch_kbytes` KiB, unless the
    /// Kafka params set `queued.max.messages.kbytes` themselves.
    pub fn with_prefetch(
        params: &KafkaParams,
        tp: TopicPartition,
        config: &DirectStreamConfig,
        prefetch_kbytes: u64,
    ) -> Result<Self> {
        let mut client = params.executor_config()?;
        if params.get("queued.max.messages.kbytes").is_none() {
            client.set("queued.max.messages.kbytes", prefetch_kbytes.to_string());
        }
        if params.get("queued.min.messages").is_none() {
            // librdkafka fetches until the queue holds this many messages *or* the kbytes
            // above; its default of 100000 small messages carries far more bookkeeping than
            // their bytes. One message per KiB of budget keeps the byte bound the binding one.
            client.set("queued.min.messages", prefetch_kbytes.max(1000).to_string());
        }
        if params.get("max.partition.fetch.bytes").is_none() {
            // Two fetches in flight fit in the share.
            let half = (prefetch_kbytes * 1024 / 2).min(1 << 20);
            client.set("max.partition.fetch.bytes", half.to_string());
        }
        let consumer: BaseConsumer<ReaderContext> = client
            .create_with_context(ReaderContext)
            .map_err(|e| SpateKafkaError::client(format!("creating a consumer for {tp}"), e))?;
        Ok(PartitionConsumer {
            consumer,
            topic: std::sync::Arc::from(tp.topic.as_str()),
            tp,
            config: config.clone(),
            next_offset: None,
            pending: None,
            arena: RecordArena::new(),
        })
    }
}

impl RecordSource for PartitionConsumer {
    fn watermarks(&mut self) -> Result<Watermarks> {
        let tp = &self.tp;
        let (earliest, latest) =
            self.config
                .retry
                .run(&format!("fetching offsets of {tp}"), || {
                    self.consumer.fetch_watermarks(
                        &tp.topic,
                        tp.partition,
                        self.config.request_timeout,
                    )
                })?;
        Ok(Watermarks { earliest, latest })
    }

    fn seek(&mut self, offset: i64, force: bool) -> Result<bool> {
        if !force && self.next_offset == Some(offset) {
            // Continuing where the last range stopped: keep the prefetched records.
            return Ok(false);
        }
        self.pending = None;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.tp.topic, self.tp.partition, Offset::Offset(offset))
            .map_err(|e| SpateKafkaError::client(format!("seeking {} to {offset}", self.tp), e))?;
        self.consumer.assign(&tpl).map_err(|e| {
            SpateKafkaError::client(format!("assigning {} at {offset}", self.tp), e)
        })?;
        self.next_offset = Some(offset);
        Ok(true)
    }

    fn poll(&mut self, timeout: Duration) -> PollEvent {
        if let Some(r) = self.pending.take() {
            return PollEvent::Record(r);
        }
        // A record already fetched is taken without a deadline: librdkafka reads the clock
        // for every poll with a timeout, once per record when the queue is full (the
        // receiver's profile showed 7% of its CPU there). Only an empty queue waits.
        let polled = match self.consumer.poll(Duration::ZERO) {
            None if !timeout.is_zero() => self.consumer.poll(timeout),
            polled => polled,
        };
        match polled {
            None => PollEvent::Idle,
            Some(Ok(m)) => {
                let r = ConsumerRecord::from_message(&m, &self.topic, &mut self.arena);
                self.next_offset = Some(r.offset + 1);
                PollEvent::Record(r)
            }
            Some(Err(KafkaError::PartitionEOF(_))) => PollEvent::PartitionEof,
            Some(Err(e))
                if matches!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
                ) =>
            {
                self.next_offset = None;
                PollEvent::OffsetOutOfRange
            }
            Some(Err(e)) => PollEvent::Error(e),
        }
    }

    fn position(&mut self) -> Option<i64> {
        if let Some(r) = &self.pending {
            return Some(r.offset);
        }
        let tpl = self.consumer.position().ok()?;
        match tpl
            .find_partition(&self.tp.topic, self.tp.partition)?
            .offset()
        {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    }

    fn unread(&mut self, record: ConsumerRecord) {
        self.next_offset = Some(record.offset);
        self.pending = Some(record);
    }
}

/// Reads offset ranges with consumers from a [`ConsumerCache`] keyed by (group, partition).
#[derive(Debug, Clone)]
pub struct KafkaRangeReader {
    params: KafkaParams,
    config: DirectStreamConfig,
    group: String,
    cache: ConsumerCache<PartitionConsumer>,
    /// Partitions of the batch being read: new consumers get that share of the pre-fetch
    /// budget. Shared by clones.
    batch_partitions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl KafkaRangeReader {
    /// A reader whose consumers use `params`; fails without `bootstrap.servers` or `group.id`.
    pub fn new(params: KafkaParams, config: DirectStreamConfig) -> Result<Self> {
        params.bootstrap_servers()?;
        let group = params
            .group_id()
            .unwrap_or("spate-direct-stream")
            .to_owned();
        let cache = ConsumerCache::new(config.consumer_cache_capacity);
        Ok(KafkaRangeReader {
            params,
            config,
            group,
            cache,
            batch_partitions: std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1)),
        })
    }

    /// The consumer cache (shared by clones of this reader).
    pub fn cache(&self) -> &ConsumerCache<PartitionConsumer> {
        &self.cache
    }

    /// Reads one range with a cached consumer; a consumer whose read failed is closed.
    pub fn read(&self, range: &OffsetRange) -> Result<RangeRead> {
        self.read_with(range, ReadOptions::from(&self.config))
    }

    /// [`KafkaRangeReader::read`] of a range a planner made from the partition's latest
    /// offset (the direct stream's batches): the log end is not asked again.
    pub fn read_planned(&self, range: &OffsetRange) -> Result<RangeRead> {
        let opts = ReadOptions {
            planned: true,
            ..ReadOptions::from(&self.config)
        };
        self.read_with(range, opts)
    }

    /// Tells the reader how many partitions the coming batch reads at once, so that consumers
    /// it creates get their share of the pre-fetch budget
    /// ([`DirectStreamConfig::prefetch_share_kbytes`]).
    pub fn set_batch_partitions(&self, n: usize) {
        self.batch_partitions
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// A consumer for `range`'s partition from the cache, or a new one.
    fn lease(&self, range: &OffsetRange) -> Result<ConsumerLease<PartitionConsumer>> {
        let tp = range.topic_partition();
        let key = CacheKey {
            group: self.group.clone(),
            tp: tp.clone(),
        };
        let n = self
            .batch_partitions
            .load(std::sync::atomic::Ordering::Relaxed);
        self.cache.checkout(key, || {
            let share = self.config.prefetch_share_kbytes(n);
            PartitionConsumer::with_prefetch(&self.params, tp, &self.config, share)
        })
    }

    /// Streams a planned range (see [`KafkaRangeReader::read_planned`]) record by record, as a
    /// direct stream's task reads it.
    pub fn stream_planned(&self, range: &OffsetRange) -> Result<RangeRecords> {
        let opts = ReadOptions {
            planned: true,
            ..ReadOptions::from(&self.config)
        };
        let scan = RangeScan::new(range.clone(), opts);
        if range.is_empty() {
            return Ok(RangeRecords::new(None, scan));
        }
        Ok(RangeRecords::new(Some(self.lease(range)?), scan))
    }

    fn read_with(&self, range: &OffsetRange, opts: ReadOptions) -> Result<RangeRead> {
        if range.is_empty() {
            return Ok(RangeRead {
                range: range.clone(),
                records: Vec::new(),
                skipped_offsets: 0,
            });
        }
        let mut lease = self.lease(range)?;
        match read_range(&mut *lease, range, opts) {
            Ok(read) => {
                tracing::debug!(%range, records = read.records.len(), reused = lease.reused(), "range read");
                Ok(read)
            }
            Err(e) => {
                lease.invalidate();
                Err(e)
            }
        }
    }

    /// Reads every range in parallel (one task per range), results in the ranges' order.
    pub fn read_all(&self, ranges: &[OffsetRange]) -> Result<Vec<RangeRead>> {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 16)
            .min(ranges.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut results: Vec<Option<Result<RangeRead>>> = (0..ranges.len()).map(|_| None).collect();
        let slots: Vec<parking_lot::Mutex<&mut Option<Result<RangeRead>>>> =
            results.iter_mut().map(parking_lot::Mutex::new).collect();
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(range) = ranges.get(i) else { break };
                    **slots[i].lock() = Some(self.read(range));
                });
            }
        });
        drop(slots);
        results
            .into_iter()
            .zip(ranges)
            .map(|(r, range)| {
                r.unwrap_or_else(|| {
                    Err(SpateKafkaError::InvalidPlan(format!(
                        "range {range} was not read"
                    )))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A partition log in memory: records at arbitrary offsets (gaps allowed), an earliest
    /// offset that "retention" can move, and a consumer position that advances past gaps the
    /// way a client skips control records.
    struct FakeLog {
        offsets: Vec<i64>,
        earliest: i64,
        latest: i64,
        cursor: Option<i64>,
        queue: VecDeque<PollEvent>,
        pending: Option<ConsumerRecord>,
        /// Move `earliest` here after this many records were delivered.
        retention_after: Option<(usize, i64)>,
        delivered: usize,
        /// ListOffsets round trips asked for.
        watermark_calls: usize,
        /// Whether reaching the end moves the position to the end of the log (a client skipping
        /// trailing transaction markers) or leaves it after the last record (compaction).
        eof_moves_position: bool,
    }

    impl FakeLog {
        fn new(offsets: Vec<i64>, latest: i64) -> Self {
            FakeLog {
                earliest: offsets.first().copied().unwrap_or(0),
                offsets,
                latest,
                cursor: None,
                queue: VecDeque::new(),
                pending: None,
                retention_after: None,
                delivered: 0,
                watermark_calls: 0,
                eof_moves_position: true,
            }
        }
        fn rec(o: i64) -> ConsumerRecord {
            ConsumerRecord {
                topic: "t".into(),
                partition: 0,
                offset: o,
                timestamp: None,
                key: None,
                value: Some(o.to_string().into_bytes().into()),
                headers: vec![],
            }
        }
    }

    impl RecordSource for FakeLog {
        fn watermarks(&mut self) -> Result<Watermarks> {
            self.watermark_calls += 1;
            Ok(Watermarks {
                earliest: self.earliest,
                latest: self.latest,
            })
        }
        fn seek(&mut self, offset: i64, force: bool) -> Result<bool> {
            if !force && self.pending.as_ref().map(|r| r.offset) == Some(offset) {
                return Ok(false);
            }
            self.queue.clear(); // a re-positioned consumer drops stale events
            self.cursor = Some(offset);
            self.pending = None;
            Ok(true)
        }
        fn poll(&mut self, _timeout: Duration) -> PollEvent {
            if let Some(e) = self.queue.pop_front() {
                return e;
            }
            if let Some(r) = self.pending.take() {
                return PollEvent::Record(r);
            }
            if let Some((n, e)) = self.retention_after {
                if self.delivered >= n {
                    self.earliest = e;
                    self.retention_after = None;
                }
            }
            let Some(cur) = self.cursor else {
                return PollEvent::Idle;
            };
            if cur < self.earliest {
                return PollEvent::OffsetOutOfRange;
            }
            match self.offsets.iter().find(|&&o| o >= cur) {
                Some(&o) if o < self.latest => {
                    self.cursor = Some(o + 1);
                    self.delivered += 1;
                    PollEvent::Record(Self::rec(o))
                }
                _ => {
                    // Past the last record: like a client that skipped trailing control
                    // records, the position moves to the end of the log.
                    if self.eof_moves_position {
                        self.cursor = Some(self.latest);
                    }
                    PollEvent::PartitionEof
                }
            }
        }
        fn position(&mut self) -> Option<i64> {
            self.pending.as_ref().map(|r| r.offset).or(self.cursor)
        }
        fn unread(&mut self, record: ConsumerRecord) {
            self.pending = Some(record);
        }
    }

    fn opts(fail: bool) -> ReadOptions {
        ReadOptions {
            fail_on_data_loss: fail,
            poll_timeout: Duration::from_millis(300),
            planned: false,
        }
    }

    fn planned(fail: bool) -> ReadOptions {
        ReadOptions {
            planned: true,
            ..opts(fail)
        }
    }

    fn offsets_of(r: &RangeRead) -> Vec<i64> {
        r.records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn reads_exact_range_of_a_dense_log() {
        let mut log = FakeLog::new((0..20).collect(), 20);
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 5, 12), opts(true)).unwrap();
        assert_eq!(offsets_of(&r), (5..12).collect::<Vec<_>>());
        // The record at 12 was given back, so the next range starts with it.
        let r2 = read_range(&mut log, &OffsetRange::create("t", 0, 12, 14), opts(true)).unwrap();
        assert_eq!(offsets_of(&r2), vec![12, 13]);
    }

    #[test]
    fn tolerates_gaps_inside_and_at_the_end_of_a_range() {
        // Compacted log: offsets 3, 4, 7 and 9..=10 are gone; 11 is a trailing gap
        // (e.g. a transaction marker) before the end of the log at 12.
        let present = vec![0, 1, 2, 5, 6, 8];
        let mut log = FakeLog::new(present, 12);
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 1, 12), opts(true)).unwrap();
        assert_eq!(offsets_of(&r), vec![1, 2, 5, 6, 8]);
        assert_eq!(r.skipped_offsets, 0);
    }

    #[test]
    fn a_range_ending_in_compacted_offsets_at_the_log_end_completes() {
        // Offsets 3..6 were compacted away; the position stays at 3, the end of the log is 6.
        let mut log = FakeLog::new(vec![0, 1, 2], 6);
        log.eof_moves_position = false;
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 0, 6), opts(true)).unwrap();
        assert_eq!(offsets_of(&r), vec![0, 1, 2]);
    }

    #[test]
    fn a_stale_end_of_partition_event_does_not_end_a_continued_read() {
        let mut log = FakeLog::new((0..10).collect(), 10);
        log.eof_moves_position = false;
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 0, 5), opts(true)).unwrap();
        assert_eq!(offsets_of(&r), (0..5).collect::<Vec<_>>());
        // An end-of-partition event queued before this read (a reused consumer).
        log.queue.push_back(PollEvent::PartitionEof);
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 5, 10), opts(true)).unwrap();
        assert_eq!(offsets_of(&r), (5..10).collect::<Vec<_>>());
    }

    #[test]
    fn range_starting_inside_a_gap() {
        let mut log = FakeLog::new(vec![0, 10, 11, 20], 21);
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 3, 15), opts(true)).unwrap();
        assert_eq!(offsets_of(&r), vec![10, 11]);
    }

    #[test]
    fn deleted_offsets_fail_with_partition_and_both_ranges() {
        let mut log = FakeLog::new((50..100).collect(), 100);
        let err =
            read_range(&mut log, &OffsetRange::create("t", 0, 10, 60), opts(true)).unwrap_err();
        match &err {
            SpateKafkaError::OffsetsOutOfRange {
                requested_from: 10,
                requested_until: 60,
                available_start: 50,
                available_end: 100,
                ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("t-0") && msg.contains("[10, 60)") && msg.contains("[50, 100)"),
            "{msg}"
        );
    }

    #[test]
    fn deleted_offsets_are_skipped_and_counted_without_fail_on_data_loss() {
        let mut log = FakeLog::new((50..100).collect(), 100);
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 10, 60), opts(false)).unwrap();
        assert_eq!(offsets_of(&r), (50..60).collect::<Vec<_>>());
        assert_eq!(r.skipped_offsets, 40);
        // A range deleted completely reads nothing and reports all of it.
        let mut log = FakeLog::new((50..100).collect(), 100);
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 0, 30), opts(false)).unwrap();
        assert!(r.records.is_empty());
        assert_eq!(r.skipped_offsets, 30);
    }

    #[test]
    fn retention_during_the_read_is_detected() {
        let mut log = FakeLog::new((0..100).collect(), 100);
        log.retention_after = Some((5, 40));
        let err =
            read_range(&mut log, &OffsetRange::create("t", 0, 0, 50), opts(true)).unwrap_err();
        assert!(
            matches!(
                err,
                SpateKafkaError::OffsetsOutOfRange {
                    available_start: 40,
                    ..
                }
            ),
            "{err}"
        );

        let mut log = FakeLog::new((0..100).collect(), 100);
        log.retention_after = Some((5, 40));
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 0, 50), opts(false)).unwrap();
        let mut expected: Vec<i64> = (0..5).collect();
        expected.extend(40..50);
        assert_eq!(offsets_of(&r), expected);
        assert_eq!(r.skipped_offsets, 35);
    }

    #[test]
    fn a_silent_broker_times_out_naming_partition_and_offset() {
        struct Silent;
        impl RecordSource for Silent {
            fn watermarks(&mut self) -> Result<Watermarks> {
                Ok(Watermarks {
                    earliest: 0,
                    latest: 100,
                })
            }
            fn seek(&mut self, _: i64, _: bool) -> Result<bool> {
                Ok(true)
            }
            fn poll(&mut self, t: Duration) -> PollEvent {
                std::thread::sleep(t);
                PollEvent::Idle
            }
            fn position(&mut self) -> Option<i64> {
                None
            }
            fn unread(&mut self, _: ConsumerRecord) {}
        }
        let err =
            read_range(&mut Silent, &OffsetRange::create("t", 0, 7, 9), opts(true)).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                SpateKafkaError::PollTimeout {
                    offset: 7,
                    until: 9,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("t-0") && msg.contains("offset 7"), "{msg}");
    }

    #[test]
    fn empty_range_reads_nothing_without_touching_the_log() {
        let mut log = FakeLog::new(vec![], 0);
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 5, 5), opts(true)).unwrap();
        assert!(r.records.is_empty());
        assert_eq!(log.cursor, None);
    }

    #[test]
    fn planned_ranges_read_without_asking_for_the_log_end() {
        let mut log = FakeLog::new((0..20).collect(), 20);
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 5, 12), planned(true)).unwrap();
        assert_eq!(offsets_of(&r), (5..12).collect::<Vec<_>>());
        let r2 = read_range(
            &mut log,
            &OffsetRange::create("t", 0, 12, 20),
            planned(true),
        )
        .unwrap();
        assert_eq!(offsets_of(&r2), (12..20).collect::<Vec<_>>());
        assert_eq!(log.watermark_calls, 0);
        // Gaps inside and at the end of a planned range (compaction up to the log end).
        let mut log = FakeLog::new(vec![0, 2, 5, 9], 12);
        let r = read_range(&mut log, &OffsetRange::create("t", 0, 0, 12), planned(true)).unwrap();
        assert_eq!(offsets_of(&r), vec![0, 2, 5, 9]);
        assert_eq!(log.watermark_calls, 0);
    }

    #[test]
    fn planned_ranges_still_detect_offsets_deleted_since_planning() {
        // Fails naming both ranges, as an unplanned read does (found through the
        // OffsetOutOfRange event instead of an up-front ListOffsets).
        let mut log = FakeLog::new((50..100).collect(), 100);
        let err = read_range(
            &mut log,
            &OffsetRange::create("t", 0, 10, 60),
            planned(true),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                SpateKafkaError::OffsetsOutOfRange {
                    requested_from: 10,
                    requested_until: 60,
                    available_start: 50,
                    available_end: 100,
                    ..
                }
            ),
            "{err}"
        );
        // Skipped and counted without fail_on_data_loss.
        let mut log = FakeLog::new((50..100).collect(), 100);
        let r = read_range(
            &mut log,
            &OffsetRange::create("t", 0, 10, 60),
            planned(false),
        )
        .unwrap();
        assert_eq!(offsets_of(&r), (50..60).collect::<Vec<_>>());
        assert_eq!(r.skipped_offsets, 40);
        // Retention while reading.
        let mut log = FakeLog::new((0..100).collect(), 100);
        log.retention_after = Some((5, 40));
        let r = read_range(
            &mut log,
            &OffsetRange::create("t", 0, 0, 50),
            planned(false),
        )
        .unwrap();
        let mut expected: Vec<i64> = (0..5).collect();
        expected.extend(40..50);
        assert_eq!(offsets_of(&r), expected);
        assert_eq!(r.skipped_offsets, 35);
    }
}
