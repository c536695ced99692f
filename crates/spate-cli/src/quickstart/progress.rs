//! One line per completed batch on stdout, and the run's totals for the summary: a
//! [`StreamingListener`], so the job itself knows nothing about printing and a slow terminal
//! never delays a batch (listener events arrive on the engine's listener thread).
//!
//! The offset ranges come from the direct stream's input metadata (`{"offsets": [...]}`), the
//! same record the UI's batch page reads.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use spate_kafka::OffsetRange;
use spate_streaming::listener::{BatchInfo, StreamingListener};

use spate_bench::report::format_utc;
use spate_client::measure::fmt_count;

/// Counts batches and records and prints a progress line per batch.
#[derive(Debug, Default)]
pub struct Progress {
    batches: AtomicU64,
    failed_batches: AtomicU64,
    records: AtomicU64,
    processing_ms: AtomicU64,
}

/// What the run did, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Batches completed.
    pub batches: u64,
    /// Batches that failed.
    pub failed_batches: u64,
    /// Records read.
    pub records: u64,
    /// Sum of the batches' processing times.
    pub processing_ms: u64,
}

impl Progress {
    /// The totals so far.
    pub fn totals(&self) -> Totals {
        Totals {
            batches: self.batches.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            processing_ms: self.processing_ms.load(Ordering::Relaxed),
        }
    }
}

impl StreamingListener for Progress {
    fn on_batch_completed(&self, info: &BatchInfo) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.records
            .fetch_add(info.num_records(), Ordering::Relaxed);
        self.processing_ms
            .fetch_add(info.processing_delay().unwrap_or(0), Ordering::Relaxed);
        if info.failure_reason().is_some() {
            self.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
        let line = progress_line(info);
        // A closed stdout (piped into `head`) must not stop the job.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

/// `batch 23:15:02  10,012 records  processing 41 ms  delay 2 ms  ad-events[0..3] 10012
/// offsets, next 5003 5010 5001 4998`, plus `(re-run from checkpoint)` or the failure.
pub fn progress_line(info: &BatchInfo) -> String {
    let secs = info.batch_time.as_millis() / 1000;
    let clock = format_utc(secs);
    let clock = clock.get(11..19).unwrap_or(&clock);
    let mut line = format!(
        "batch {clock}  {:>7} records  processing {:>4} ms  delay {:>4} ms",
        fmt_count(info.num_records() as f64),
        info.processing_delay().unwrap_or(0),
        info.scheduling_delay().unwrap_or(0),
    );
    for summary in offsets_summaries(info) {
        line.push_str("  ");
        line.push_str(&summary);
    }
    if info.recovered {
        line.push_str("  (re-run from checkpoint)");
    }
    if let Some(reason) = info.failure_reason() {
        line.push_str("  FAILED: ");
        line.push_str(reason.lines().next().unwrap_or(reason));
    }
    line
}

/// Per topic: `topic[first..last] N offsets, next o0 o1 …` where `next` lists each partition's
/// until offset (where the next batch starts).
fn offsets_summaries(info: &BatchInfo) -> Vec<String> {
    let mut by_topic: BTreeMap<String, Vec<OffsetRange>> = BTreeMap::new();
    for input in info.input_infos.values() {
        let Some(info) = spate_kafka::DirectBatchInfo::from_input(input) else {
            continue;
        };
        for r in info.ranges {
            by_topic.entry(r.topic.clone()).or_default().push(r);
        }
    }
    by_topic
        .into_iter()
        .map(|(topic, mut ranges)| {
            ranges.sort_by_key(|r| r.partition);
            let count: u64 = ranges.iter().map(OffsetRange::count).sum();
            let first = ranges.first().map_or(0, |r| r.partition);
            let last = ranges.last().map_or(0, |r| r.partition);
            let next: Vec<String> = ranges.iter().map(|r| r.until_offset.to_string()).collect();
            format!(
                "{topic}[{first}..{last}] {count} offsets, next {}",
                next.join(" ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use spate_streaming::listener::InputInfo;
    use spate_streaming::Time;

    fn batch(ranges: &[OffsetRange]) -> BatchInfo {
        BatchInfo {
            batch_time: Time(1_763_939_702_000),
            input_infos: BTreeMap::from([(
                "kafka_direct-0".to_owned(),
                InputInfo {
                    input_id: "kafka_direct-0".to_owned(),
                    num_records: ranges.iter().map(OffsetRange::count).sum(),
                    description: String::new(),
                    metadata: serde_json::json!({ "offsets": ranges }),
                },
            )]),
            submission_time: Time(1_763_939_702_001),
            processing_start_time: Some(Time(1_763_939_702_003)),
            processing_end_time: Some(Time(1_763_939_702_044)),
            output_operation_infos: BTreeMap::new(),
            failure: None,
            planning_micros: 0,
            scheduling_micros: None,
            processing_micros: None,
            recovered: false,
        }
    }

    #[test]
    fn line_names_records_times_and_offset_ranges() {
        let ranges = [
            OffsetRange::create("events", 1, 10, 40),
            OffsetRange::create("events", 0, 0, 25),
        ];
        let line = progress_line(&batch(&ranges));
        assert_eq!(
            line,
            "batch 23:15:02       55 records  processing   41 ms  delay    2 ms  \
             events[0..1] 55 offsets, next 25 40"
        );
        let progress = Progress::default();
        progress.on_batch_completed(&batch(&ranges));
        progress.on_batch_completed(&batch(&ranges[..1]));
        assert_eq!(
            progress.totals(),
            Totals {
                batches: 2,
                failed_batches: 0,
                records: 85,
                processing_ms: 82
            }
        );
    }

    #[test]
    fn recovered_and_failed_batches_say_so() {
        let mut info = batch(&[]);
        info.recovered = true;
        info.failure = Some("sink: disk full\nmore".to_owned());
        let line = progress_line(&info);
        assert!(
            line.ends_with("(re-run from checkpoint)  FAILED: sink: disk full"),
            "{line}"
        );
    }
}
