//! YSB's load generator: writes ad events to a Kafka topic, either all at once (a preloaded
//! topic for catch-up runs) or at a fixed offered rate (live runs), with rdkafka and the bulk
//! producer settings every benchmark uses ([`PRODUCER_TUNING`]).
//!
//! Every record's Kafka timestamp is its `event_time`. In live mode the event time is the
//! *scheduled* send time (`start + i / rate`), not the moment the producer got to it: when the
//! generator falls behind (YSB prints "Falling behind by"), the delay stays in the measured
//! latency instead of silently lowering the offered load — no coordinated omission.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::error::{Result, YsbError};
use crate::events::Encoding;
use crate::setup::YsbSetup;
use spate_client::config::ClientArgs;
use spate_client::delivery::{send_with_backpressure, DeliveryCounter};
use spate_client::measure::{LoadResult, Percentiles, Throughput};
use spate_client::tuning::PRODUCER_TUNING;

/// Where and how the generator writes.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// The input topic the events go to.
    pub topic: String,
    /// Partitions of that topic; events are spread over them.
    pub partitions: i32,
    /// How each event is written (YSB's JSON or the compact binary layout).
    pub encoding: Encoding,
    /// Seed of the event stream (the set-up has its own seed).
    pub seed: u64,
}

/// The event times of a preloaded topic: `start_ms + i × 1000 / events_per_sec`, a synthetic
/// timeline, so that a catch-up run sees windows of realistic size whatever the load speed.
#[derive(Debug, Clone, Copy)]
pub struct EventClock {
    /// Event time of the first event, in epoch milliseconds.
    pub start_ms: i64,
    /// The synthetic event rate the timeline spaces events at.
    pub events_per_sec: f64,
}

impl EventClock {
    /// The event time of event number `i` (from 0), in epoch milliseconds.
    pub fn time_of(&self, i: u64) -> i64 {
        self.start_ms + (i as f64 * 1000.0 / self.events_per_sec.max(1e-9)) as i64
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn producer(client: &ClientArgs, topic: &str) -> Result<BaseProducer<DeliveryCounter>> {
    let p: BaseProducer<DeliveryCounter> =
        client.create_with_context(PRODUCER_TUNING, DeliveryCounter::sampling_latency(64))?;
    client.metadata(p.client(), Some(topic))?;
    Ok(p)
}

fn finish(producer: &BaseProducer<DeliveryCounter>, sent: u64) -> Result<()> {
    producer
        .flush(Duration::from_secs(120))
        .map_err(YsbError::Flush)?;
    let ctx = producer.context();
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 || delivered != sent {
        return Err(YsbError::Undelivered {
            delivered,
            sent,
            failed,
            errors: ctx.errors().join("; "),
        });
    }
    Ok(())
}

/// Writes `count` events round-robin over the topic's partitions, timestamped by `clock`, and
/// waits until all are acknowledged.
pub fn preload(
    client: &ClientArgs,
    config: &GeneratorConfig,
    setup: &YsbSetup,
    count: u64,
    clock: EventClock,
) -> Result<LoadResult> {
    let producer = producer(client, &config.topic)?;
    let mut events = setup.events(config.seed);
    let partitions = config.partitions.max(1) as u64;
    let mut buf = Vec::with_capacity(300);
    let mut bytes = 0u64;
    let started = Instant::now();
    for i in 0..count {
        let time = clock.time_of(i);
        buf.clear();
        events.next_event(time).encode(config.encoding, &mut buf);
        bytes += buf.len() as u64;
        let record = BaseRecord::<[u8], [u8]>::to(&config.topic)
            .payload(&buf[..])
            .partition((i % partitions) as i32)
            .timestamp(time);
        send_with_backpressure(&producer, record)
            .map_err(|source| YsbError::SendEvent { index: i, source })?;
        if i % 4096 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    finish(&producer, count)?;
    let ctx = producer.context();
    Ok(LoadResult {
        throughput: Throughput {
            records: count,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
        },
        ack_latency_ms: Percentiles::of(&ctx.latencies_ms()),
    })
}

/// What a live run's generator did (serialized as one JSON line by `spate ysb-generate`, which
/// runs the generator in its own process).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LiveLoad {
    /// Events sent.
    pub events: u64,
    /// Bytes of event values sent.
    pub bytes: u64,
    /// Wall-clock seconds the generator ran.
    pub seconds: f64,
    /// The rate asked for, in events per second (what was sent is `events / seconds`).
    pub offered_rate: f64,
    /// The largest delay (ms) between an event's scheduled and actual send time; YSB's
    /// "Falling behind by".
    pub max_behind_ms: f64,
}

impl LiveLoad {
    /// Events per second actually sent.
    pub fn achieved_rate(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    /// Whether the generator offered the load it was asked for: at least 95% of the rate,
    /// never more than a second behind its schedule. A run where it did not measured the
    /// generator (or the box), not the job.
    pub fn offered_in_full(&self) -> bool {
        self.achieved_rate() >= 0.95 * self.offered_rate && self.max_behind_ms <= 1000.0
    }
}

/// Writes events at `rate` per second for `duration` (or until `stop` is set), each stamped
/// with its scheduled send time. Sends in small bursts (what is due every millisecond) so the
/// schedule holds at high rates without a syscall per event.
pub fn produce_at_rate(
    client: &ClientArgs,
    config: &GeneratorConfig,
    setup: &YsbSetup,
    rate: f64,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<LiveLoad> {
    if rate.is_nan() || rate <= 0.0 {
        return Err(YsbError::BadRate(rate));
    }
    let producer = producer(client, &config.topic)?;
    let mut events = setup.events(config.seed);
    let partitions = config.partitions.max(1) as u64;
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let mut buf = Vec::with_capacity(300);
    let mut bytes = 0u64;
    let mut max_behind_ms = 0f64;
    let start = Instant::now();
    let start_ms = now_ms();
    let mut i = 0u64;
    while i < total && !stop.load(Ordering::Relaxed) {
        let elapsed = start.elapsed().as_secs_f64();
        let due = ((elapsed * rate) as u64 + 1).min(total);
        if due <= i {
            // Sleep to the next event's schedule, at most a millisecond at a time.
            let next_at = i as f64 / rate;
            let wait = (next_at - elapsed).clamp(0.0, 0.001);
            producer.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_secs_f64(wait));
            continue;
        }
        let behind = (elapsed - i as f64 / rate) * 1000.0;
        max_behind_ms = max_behind_ms.max(behind);
        while i < due {
            let scheduled = start_ms + (i as f64 * 1000.0 / rate) as i64;
            buf.clear();
            events
                .next_event(scheduled)
                .encode(config.encoding, &mut buf);
            bytes += buf.len() as u64;
            let record = BaseRecord::<[u8], [u8]>::to(&config.topic)
                .payload(&buf[..])
                .partition((i % partitions) as i32)
                .timestamp(scheduled);
            send_with_backpressure(&producer, record)
                .map_err(|source| YsbError::SendEvent { index: i, source })?;
            i += 1;
        }
        producer.poll(Duration::ZERO);
    }
    let seconds = start.elapsed().as_secs_f64();
    finish(&producer, i)?;
    if max_behind_ms > 1000.0 {
        tracing::warn!("the generator fell behind its schedule by up to {max_behind_ms:.0} ms");
    }
    Ok(LiveLoad {
        events: i,
        bytes,
        seconds,
        offered_rate: rate,
        max_behind_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_clock_spreads_events() {
        let c = EventClock {
            start_ms: 1_000,
            events_per_sec: 1_000.0,
        };
        assert_eq!(c.time_of(0), 1_000);
        assert_eq!(c.time_of(10_000), 11_000);
    }
}
