//! Reading one changelog partition back into a state partition: from the partition's start to
//! its end, `read_committed` (records of aborted transactions never come back), handing each
//! record to the engine as it arrives.
//!
//! The end is the partition's end once no transaction is open on it. A task moves while its
//! previous owner's last transaction may still be completing (commit requested, markers not yet
//! written, or a killed owner's transaction waiting to be fenced or to time out). Reading only to
//! the last stable offset at that moment would leave that batch's state changes out, while its
//! input offsets — committed in the same transaction, and read with `require_stable` — say the
//! batch is done: its changes would be lost. So the restore first waits until the last stable
//! offset reaches the high watermark it saw, as Kafka Streams waits on UNSTABLE_OFFSET_COMMIT. Nothing is buffered here beyond the
//! consumer's bounded fetch queue (`queued.max.messages.kbytes`), so the memory a restore needs is
//! the state it rebuilds, not the length of the log.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use spate_streaming::state::changelog::RestoreFn;

use crate::error::{Result, SpateKafkaError};

/// How long a restore may wait without receiving a record before it gives up.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a watermark query may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one poll waits when the fetch queue is empty.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// How long to wait before asking again whether a transaction open on the changelog ended.
const STABLE_RETRY: Duration = Duration::from_millis(20);

/// Restore-consumer settings, unless the job's parameters set them: fewer, larger fetches (4 MiB
/// a partition, librdkafka's default 1 MiB) made one partition's restore about twice as fast;
/// a lower refill mark (`queued.min.messages`, 100,000 by default) keeps the fetch queue, whose
/// librdkafka ops cost hundreds of bytes per small record beyond `queued.max.messages.kbytes`,
/// as small as with the defaults.
const BULK_READ: [(&str, &str); 2] = [
    ("max.partition.fetch.bytes", "4194304"),
    ("queued.min.messages", "20000"),
];

/// Streams `topic`-`partition` from its first offset to its end (the last stable offset, since
/// the consumer reads `read_committed`) into `apply`; returns the records applied.
pub(crate) fn restore_partition(
    mut config: ClientConfig,
    topic: &str,
    partition: i32,
    expected: &mut dyn FnMut(u64),
    apply: &mut RestoreFn<'_>,
) -> Result<u64> {
    config
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    for (key, value) in BULK_READ {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
    let consumer: BaseConsumer = config.create().map_err(|e| client(topic, "creating", e))?;
    let (low, end) = stable_end(&config, &consumer, topic, partition)?;
    expected(end.saturating_sub(low).max(0) as u64);
    if end <= low {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .map_err(|e| client(topic, "assigning", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| client(topic, "assigning", e))?;
    read_to_end(&consumer, topic, partition, (low, end), apply)
}

/// The partition's start and its end once the transactions open on it at the call have
/// completed (see the module docs): the high watermark comes from a `read_uncommitted`
/// ListOffsets, the last stable offset from `consumer`'s (`read_committed`), asked again until it
/// has caught up or [`STALL_TIMEOUT`] passed.
fn stable_end(
    config: &ClientConfig,
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64)> {
    let mut uncommitted = config.clone();
    uncommitted.set("isolation.level", "read_uncommitted");
    let high_watermark = {
        let peek: BaseConsumer = uncommitted
            .create()
            .map_err(|e| client(topic, "creating", e))?;
        peek.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)
            .map_err(|e| client(topic, "reading the watermarks of", e))?
            .1
    };
    let started = Instant::now();
    loop {
        let (low, stable) = consumer
            .fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)
            .map_err(|e| client(topic, "reading the watermarks of", e))?;
        if stable >= high_watermark {
            return Ok((low, stable));
        }
        if started.elapsed() > STALL_TIMEOUT {
            return Err(SpateKafkaError::RestoreStalled {
                topic: topic.to_owned(),
                partition,
                offset: stable,
                end: high_watermark,
                waited_ms: started.elapsed().as_millis() as u64,
            });
        }
        tracing::debug!(%topic, partition, stable, high_watermark, "changelog restore waits for an open transaction");
        std::thread::sleep(STABLE_RETRY);
    }
}

/// The read loop: takes what the fetch queue holds without waiting, and waits (up to
/// [`POLL_WAIT`] at a time) only when it is empty, so a restore that keeps up with its fetches
/// never sleeps in a poll — and looks at the clock only then.
fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    (low, end): (i64, i64),
    apply: &mut RestoreFn<'_>,
) -> Result<u64> {
    let (mut applied, mut next) = (0u64, low);
    let mut idle_since: Option<Instant> = None;
    loop {
        let polled = match consumer.poll(Duration::ZERO) {
            None => consumer.poll(POLL_WAIT),
            some => some,
        };
        match polled {
            Some(Ok(m)) => {
                idle_since = None;
                next = m.offset() + 1;
                if apply_record(&m, topic, partition, apply)? {
                    applied += 1;
                }
                if next >= end {
                    return Ok(applied);
                }
            }
            // The end for read_committed: the last stable offset (aborted records and
            // transaction markers before it are skipped, so no record may sit at `end - 1`).
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(applied),
            Some(Err(e)) => return Err(client(topic, "reading", e)),
            None => {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() > STALL_TIMEOUT {
                    return Err(SpateKafkaError::RestoreStalled {
                        topic: topic.to_owned(),
                        partition,
                        offset: next,
                        end,
                        waited_ms: since.elapsed().as_millis() as u64,
                    });
                }
            }
        }
    }
}

/// Hands one record's key and value, borrowed from the fetch buffer, to `apply`; false for a
/// record without a key (skipped: it cannot be state).
fn apply_record(
    m: &BorrowedMessage<'_>,
    topic: &str,
    partition: i32,
    apply: &mut RestoreFn<'_>,
) -> Result<bool> {
    let Some(key) = m.key() else {
        tracing::warn!(%topic, partition, offset = m.offset(), "changelog record without a key skipped");
        return Ok(false);
    };
    apply(key, m.payload())?;
    Ok(true)
}

fn client(topic: &str, what: &str, source: KafkaError) -> SpateKafkaError {
    SpateKafkaError::Client {
        operation: format!("{what} the changelog consumer of {topic}"),
        source,
    }
}
