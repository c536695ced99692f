//! Reading one changelog partition back into a state partition: from the partition's start to
//! its end at the time of the call, `read_committed` (records of aborted transactions never come
//! back), handing each record to the engine as it arrives. Nothing is buffered here beyond the
//! consumer's bounded fetch queue (`queued.max.messages.kbytes`), so the memory a restore needs is
//! the state it rebuilds, not the length of the log.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spate_streaming::state::changelog::RestoreFn;
use spate_streaming::ChangelogEntry;

use crate::error::{Result, SpateKafkaError};

/// How long a restore may wait without receiving a record before it gives up.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a watermark query may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(30);

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
    let consumer: BaseConsumer = config.create().map_err(|e| client(topic, "creating", e))?;
    let (low, end) = consumer
        .fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)
        .map_err(|e| client(topic, "reading the watermarks of", e))?;
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
    let (mut applied, mut next) = (0u64, low);
    let mut last_record = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                next = m.offset() + 1;
                last_record = Instant::now();
                let Some(key) = m.key() else {
                    tracing::warn!(%topic, partition, offset = m.offset(), "changelog record without a key skipped");
                    continue;
                };
                apply(ChangelogEntry {
                    key: key.to_vec(),
                    value: m.payload().map(<[u8]>::to_vec),
                })?;
                applied += 1;
                if next >= end {
                    break;
                }
            }
            // The end for read_committed: the last stable offset (aborted records and
            // transaction markers before it are skipped, so no record may sit at `end - 1`).
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(client(topic, "reading", e)),
            None if last_record.elapsed() > STALL_TIMEOUT => {
                return Err(SpateKafkaError::RestoreStalled {
                    topic: topic.to_owned(),
                    partition,
                    offset: next,
                    end,
                    waited_ms: last_record.elapsed().as_millis() as u64,
                })
            }
            None => {}
        }
    }
    Ok(applied)
}

fn client(topic: &str, what: &str, source: KafkaError) -> SpateKafkaError {
    SpateKafkaError::Client {
        operation: format!("{what} the changelog consumer of {topic}"),
        source,
    }
}
