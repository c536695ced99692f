//! Loading a topic and draining it with plain rdkafka clients, tuned for throughput.
//!
//! `load` is how every benchmark fills its input topic; `drain` is the raw librdkafka consumer
//! ceiling (all partitions assigned, no group, no processing) that engine benchmarks report
//! beside their own numbers.

use crate::error::{BenchError, Result};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use spate_client::config::{CliContext, ClientArgs};
use spate_client::delivery::{send_with_backpressure, DeliveryCounter};
use spate_client::measure::{LoadResult, Percentiles, Throughput};
use spate_client::tuning::{CONSUMER_TUNING, PRODUCER_TUNING};

/// How long `drain` waits without receiving a record before it gives up.
const DRAIN_IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Produces `count` records of `record_size` bytes (no key) round-robin over `partitions`
/// partitions of `topic`, and waits until all are acknowledged. The clock covers send + flush.
pub fn load(
    client: &ClientArgs,
    topic: &str,
    partitions: i32,
    count: u64,
    record_size: usize,
) -> Result<LoadResult> {
    // Varied but cheap payloads: a fixed pattern with the record number stamped at the front.
    load_with(
        client,
        topic,
        partitions,
        count,
        record_size,
        |i, payload| {
            let stamp = i.to_le_bytes();
            let n = stamp.len().min(payload.len());
            payload[..n].copy_from_slice(&stamp[..n]);
        },
    )
}

/// [`load`] with the payloads written by `fill(record number, payload)`; the buffer starts as a
/// repeating `a..z` pattern and keeps whatever the previous call left in it.
pub fn load_with(
    client: &ClientArgs,
    topic: &str,
    partitions: i32,
    count: u64,
    record_size: usize,
    fill: impl FnMut(u64, &mut [u8]),
) -> Result<LoadResult> {
    load_records(client, topic, partitions, count, record_size, None, fill)
}

/// [`load`] with keys: record `i` has key `key-NNNNNNN` for `i % keys` (so a compacted topic
/// keeps `keys` records), and goes to partition `i % partitions` as before. The byte counts
/// include the keys.
pub fn load_keyed(
    client: &ClientArgs,
    topic: &str,
    partitions: i32,
    count: u64,
    record_size: usize,
    keys: u64,
) -> Result<LoadResult> {
    load_records(
        client,
        topic,
        partitions,
        count,
        record_size,
        Some(keys.max(1)),
        |i, payload| {
            let stamp = i.to_le_bytes();
            let n = stamp.len().min(payload.len());
            payload[..n].copy_from_slice(&stamp[..n]);
        },
    )
}

/// The key of record `i` among `keys` keys: fixed width, so every key has the same size.
pub fn key_of(i: u64, keys: u64) -> String {
    let mut key = String::new();
    let _ = write!(key, "key-{:07}", i % keys.max(1));
    key
}

fn load_records(
    client: &ClientArgs,
    topic: &str,
    partitions: i32,
    count: u64,
    record_size: usize,
    keys: Option<u64>,
    mut fill: impl FnMut(u64, &mut [u8]),
) -> Result<LoadResult> {
    let producer: BaseProducer<DeliveryCounter> =
        client.create_with_context(PRODUCER_TUNING, DeliveryCounter::sampling_latency(64))?;
    client.metadata(producer.client(), Some(topic))?;
    let mut payload: Vec<u8> = (0..record_size).map(|i| b'a' + (i % 26) as u8).collect();
    let partitions = partitions.max(1);
    let mut key = String::new();
    let mut key_bytes = 0u64;
    let started = Instant::now();
    for i in 0..count {
        fill(i, &mut payload);
        let partition = i32::try_from(i % partitions as u64).unwrap_or(0);
        let mut record = BaseRecord::<[u8], [u8]>::to(topic)
            .payload(&payload[..])
            .partition(partition);
        if let Some(keys) = keys {
            key.clear();
            let _ = write!(key, "key-{:07}", i % keys);
            key_bytes += key.len() as u64;
            record = record.key(key.as_bytes());
        }
        send_with_backpressure(&producer, record)
            .map_err(BenchError::kafka(format!("could not send record {i}")))?;
        if i % 4096 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(BenchError::kafka("flush did not complete"))?;
    let seconds = started.elapsed().as_secs_f64();
    let ctx = producer.context();
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 || delivered != count {
        return Err(BenchError::Undelivered {
            delivered,
            sent: count,
            failed,
            errors: ctx.errors().join("; "),
        });
    }
    Ok(LoadResult {
        throughput: Throughput {
            records: count,
            bytes: count * record_size as u64 + key_bytes,
            seconds,
        },
        ack_latency_ms: Percentiles::of(&ctx.latencies_ms()),
    })
}

/// Reads `expected` records from the beginning of all `partitions` partitions of `topic` with a
/// bare `BaseConsumer`, counting key + value bytes. The clock starts at `assign`.
pub fn drain(
    client: &ClientArgs,
    topic: &str,
    partitions: i32,
    expected: u64,
) -> Result<Throughput> {
    if expected == 0 {
        return Ok(nothing());
    }
    let mut records = 0u64;
    drain_while(client, topic, partitions, |_| {
        records += 1;
        records < expected
    })
}

/// Reads every partition of `topic` from the beginning until each has delivered the record
/// before its `end_offsets` entry (for a compacted topic, whose offsets have gaps, a record
/// count is not known up front; the last record is never cleaned away, as it sits in the
/// active segment). An empty partition (end 0) is done from the start.
pub fn drain_to_end(client: &ClientArgs, topic: &str, end_offsets: &[i64]) -> Result<Throughput> {
    let partitions = i32::try_from(end_offsets.len()).unwrap_or(i32::MAX);
    let mut open = end_offsets.iter().filter(|e| **e > 0).count();
    if open == 0 {
        return Ok(nothing());
    }
    drain_while(client, topic, partitions, |m| {
        let end = usize::try_from(m.partition())
            .ok()
            .and_then(|p| end_offsets.get(p));
        if end.is_some_and(|e| m.offset() == e - 1) {
            open -= 1;
        }
        open > 0
    })
}

fn nothing() -> Throughput {
    Throughput {
        records: 0,
        bytes: 0,
        seconds: 0.0,
    }
}

/// The consuming loop of [`drain`] and [`drain_to_end`]: `more(message)` after each record
/// says whether to go on.
fn drain_while(
    client: &ClientArgs,
    topic: &str,
    partitions: i32,
    mut more: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> bool,
) -> Result<Throughput> {
    let consumer: BaseConsumer<CliContext> = client.create(CONSUMER_TUNING)?;
    client.metadata(consumer.client(), Some(topic))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(BenchError::kafka(format!("bad offset for partition {p}")))?;
    }
    let started = Instant::now();
    consumer
        .assign(&tpl)
        .map_err(BenchError::kafka(format!("could not assign {topic}")))?;
    let mut records = 0u64;
    let mut bytes = 0u64;
    // The idle clock is only read when a poll comes back empty: reading it per record showed up
    // as a few percent of the consumer's CPU.
    let mut idle_since = Instant::now();
    let mut records_at_idle = 0u64;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += (m.payload_len() + m.key().map_or(0, <[u8]>::len)) as u64;
                if !more(&m) {
                    break;
                }
            }
            Some(Err(e)) => tracing::warn!("consumer error while draining {topic}: {e}"),
            None => {
                if records != records_at_idle {
                    records_at_idle = records;
                    idle_since = Instant::now();
                } else if idle_since.elapsed() > DRAIN_IDLE_LIMIT {
                    return Err(BenchError::DrainStalled {
                        topic: topic.to_owned(),
                        records,
                        idle_secs: DRAIN_IDLE_LIMIT.as_secs(),
                    });
                }
            }
        }
    }
    Ok(Throughput {
        records,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
