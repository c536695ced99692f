//! Producing at full speed without losing a record: a delivery-report counter for librdkafka's
//! `BaseProducer` (counts, quoted errors, sampled acknowledgement latency), and a send that waits
//! for room when librdkafka's queue is full. Shared by `spate produce`, the YSB generator and
//! job, and the benchmarks' topic loader, which all keep many records in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{librdkafka_error, librdkafka_log};

/// How many delivery errors a [`DeliveryCounter`] quotes; the rest are only counted.
pub const QUOTED_ERRORS: usize = 5;

/// Counts delivery reports; librdkafka calls it from `poll`/`flush` on the producing thread.
/// Optionally samples acknowledgement latency (delivery report time minus the record's
/// CreateTime, so millisecond resolution) for the benchmarks.
#[derive(Debug, Default)]
pub struct DeliveryCounter {
    /// Records whose delivery report said the broker acknowledged them.
    pub delivered: AtomicU64,
    /// Records whose delivery report carried an error.
    pub failed: AtomicU64,
    errors: Mutex<Vec<String>>,
    /// Every `n`th delivery's latency in ms is kept when this is `Some(n)`.
    sample_every: Option<u64>,
    latencies_ms: Mutex<Vec<f64>>,
}

impl DeliveryCounter {
    /// A counter that also keeps the ack latency of every `n`th record.
    pub fn sampling_latency(n: u64) -> Self {
        DeliveryCounter {
            sample_every: Some(n.max(1)),
            ..DeliveryCounter::default()
        }
    }

    /// The first [`QUOTED_ERRORS`] delivery errors, as librdkafka worded them.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The sampled acknowledgement latencies, in milliseconds.
    pub fn latencies_ms(&self) -> Vec<f64> {
        self.latencies_ms
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    fn record_error(&self, message: String) {
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() < QUOTED_ERRORS {
                errors.push(message);
            }
        }
    }

    fn sample_latency(&self, n: u64, message: &BorrowedMessage<'_>) {
        let Some(every) = self.sample_every else {
            return;
        };
        if n % every != 0 {
            return;
        }
        let Some(created) = message.timestamp().to_millis() else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        if let Ok(mut latencies) = self.latencies_ms.lock() {
            latencies.push((now - created).max(0) as f64);
        }
    }
}

impl ClientContext for DeliveryCounter {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        librdkafka_log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        librdkafka_error(&error, reason);
    }
}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let n = self.delivered.fetch_add(1, Ordering::Relaxed);
                self.sample_latency(n, message);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.record_error(format!("delivery failed: {e}"));
            }
        }
    }
}

/// Sends `record`, waiting for room when librdkafka's queue is full instead of failing.
pub fn send_with_backpressure<K, P>(
    producer: &BaseProducer<DeliveryCounter>,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
}
