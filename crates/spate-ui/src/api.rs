//! The REST API's documents, shaped like Spark's `/api/v1/applications/{id}/streaming/*`.
//!
//! Field names are Spark's (camelCase: `batchId`, `inputSize`, `avgInputRate`, ...) so that
//! scripts written against Spark's Streaming REST API read spate's too. As in Spark, `batchId`
//! is the batch time in milliseconds and `batchTime`/`startTime` are dates (here RFC 3339,
//! UTC). Additions that Spark lacks are marked on the field: the batch document lists each
//! input's offset ranges (Spark only shows them on the batch page), and times also come as
//! milliseconds so a page can chart them without parsing dates.

use serde::Serialize;
use spate_kafka::DirectBatchInfo;
use spate_streaming::{InputInfo, OutputOperationInfo, StreamingMetrics, Time};

use crate::store::{BatchEntry, BatchStatus, InputErrors, ReceiverEntry, Snapshot};

/// `GET /api/v1/streaming/statistics` (Spark's `StreamingStatistics`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamingStatistics {
    /// spate: the application name.
    pub app_name: String,
    /// When the context started.
    pub start_time: String,
    /// spate: `startTime` in ms since the epoch.
    pub start_time_ms: u64,
    /// spate: ms since the start (until the stop, once stopped).
    pub uptime_ms: u64,
    /// spate: `ACTIVE` or `STOPPED`.
    pub state: &'static str,
    /// Batch interval in ms.
    pub batch_duration: u64,
    /// Receivers known.
    pub num_receivers: usize,
    /// Receivers running.
    pub num_active_receivers: usize,
    /// Receivers stopped.
    pub num_inactive_receivers: usize,
    /// Batches completed since the UI started.
    pub num_total_completed_batches: u64,
    /// Completed batches retained (the statistics below are over these).
    pub num_retained_completed_batches: usize,
    /// Queued or running batches.
    pub num_active_batches: usize,
    /// Records of all completed batches.
    pub num_processed_records: u64,
    /// Records of all completed and active batches.
    pub num_received_records: u64,
    /// spate: retained batches that failed.
    pub num_failed_batches: usize,
    /// Records per second over the retained batches.
    pub avg_input_rate: Option<f64>,
    /// Mean scheduling delay (ms) over the retained batches.
    pub avg_scheduling_delay: Option<u64>,
    /// Mean processing time (ms).
    pub avg_processing_time: Option<u64>,
    /// Mean total delay (ms).
    pub avg_total_delay: Option<u64>,
}

/// One row of `GET /api/v1/streaming/batches` (Spark's `BatchInfo`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSummary {
    /// The batch time in ms (Spark's batch id).
    pub batch_id: u64,
    /// The batch time as a date.
    pub batch_time: String,
    /// `QUEUED`, `PROCESSING` or `COMPLETED`.
    pub status: &'static str,
    /// Batch interval (ms).
    pub batch_duration: u64,
    /// Records over all inputs.
    pub input_size: u64,
    /// spate: records per second (input size / batch interval).
    pub input_rate: f64,
    /// Start − submission (ms).
    pub scheduling_delay: Option<u64>,
    /// End − start (ms).
    pub processing_time: Option<u64>,
    /// End − submission (ms).
    pub total_delay: Option<u64>,
    /// Output operations running.
    pub num_active_output_ops: usize,
    /// Output operations finished successfully.
    pub num_completed_output_ops: usize,
    /// Output operations failed.
    pub num_failed_output_ops: usize,
    /// Output operations known.
    pub num_total_output_ops: usize,
    /// The first failure (batch or output operation).
    pub first_failure_reason: Option<String>,
    /// spate: the batch re-ran a plan recovered from the checkpoint.
    pub recovered: bool,
}

/// `GET /api/v1/streaming/batches/{batch_time}`: the summary plus inputs and outputs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDetail {
    /// The row of the batch table.
    #[serde(flatten)]
    pub summary: BatchSummary,
    /// spate: submission time (ms).
    pub submission_time: u64,
    /// spate: processing start (ms).
    pub processing_start_time: Option<u64>,
    /// spate: processing end (ms).
    pub processing_end_time: Option<u64>,
    /// spate: each input's records and offset ranges.
    pub inputs: Vec<InputDetail>,
    /// The output operations (Spark's `/batches/{id}/operations`).
    pub output_op_ids: Vec<OutputOperation>,
}

/// One input's part of a batch.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputDetail {
    /// Input id (`kafka_direct-0`, ...).
    pub input_id: String,
    /// Records.
    pub num_records: u64,
    /// The input's own description (one offset range per line for Kafka).
    pub description: String,
    /// Offset ranges, for Kafka direct streams.
    pub offset_ranges: Vec<OffsetRangeDoc>,
    /// Offsets skipped because retention deleted them (`fail_on_data_loss(false)`).
    pub lost_offsets: Vec<LostOffsetsDoc>,
}

/// An offset range `[fromOffset, untilOffset)`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetRangeDoc {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset (inclusive).
    pub from_offset: i64,
    /// Offset after the last (exclusive).
    pub until_offset: i64,
    /// `untilOffset − fromOffset`.
    pub count: u64,
}

/// Offsets lost to retention.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LostOffsetsDoc {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Where the stream was.
    pub requested_from: i64,
    /// Where it resumed.
    pub resumed_from: i64,
    /// Offsets skipped.
    pub count: u64,
}

/// An output operation of a batch (Spark's `OutputOperationInfo`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputOperation {
    /// Id (registration order).
    pub output_op_id: usize,
    /// Name (`foreach_batch`, `print`, ...).
    pub name: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED` or `QUEUED`.
    pub status: &'static str,
    /// Start (ms).
    pub start_time: Option<u64>,
    /// End (ms).
    pub end_time: Option<u64>,
    /// End − start (ms).
    pub duration: Option<u64>,
    /// Error, if it failed.
    pub failure_reason: Option<String>,
}

/// One row of `GET /api/v1/streaming/receivers` (Spark's `ReceiverInfo`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverDoc {
    /// The input id the receiver feeds (Spark: an integer stream id).
    pub stream_id: String,
    /// Receiver name.
    pub stream_name: String,
    /// Running.
    pub is_active: bool,
    /// Where it runs (Spark: the executor).
    pub executor_id: String,
    /// Same as `executorId` (one process).
    pub executor_host: String,
    /// Last error's time.
    pub last_error_time: Option<String>,
    /// Last error's message.
    pub last_error_message: Option<String>,
    /// Last error (same text; Spark adds the stack trace).
    pub last_error: Option<String>,
    /// Records per second over the retained batches.
    pub avg_event_rate: Option<f64>,
    /// `[batch time ms, records per second]` per retained batch.
    pub event_rates: Vec<(u64, f64)>,
}

/// One row of `GET /api/v1/streaming/inputs` (spate; Spark has no such list): an input and
/// the faults it rode out, e.g. broker retries of a Kafka direct stream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputDoc {
    /// Input id (`kafka_direct-0`, ...).
    pub input_id: String,
    /// Faults reported since the UI started.
    pub num_errors: u64,
    /// The last fault's time.
    pub last_error_time: Option<String>,
    /// `lastErrorTime` in ms since the epoch.
    pub last_error_time_ms: Option<u64>,
    /// The last fault's message.
    pub last_error: Option<String>,
    /// The newest faults (at most [`RETAINED_INPUT_ERRORS`](crate::store::RETAINED_INPUT_ERRORS)),
    /// newest first.
    pub recent_errors: Vec<InputErrorDoc>,
}

/// One fault of an input.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputErrorDoc {
    /// When it happened.
    pub time: String,
    /// `time` in ms since the epoch.
    pub time_ms: u64,
    /// What failed and what the input does about it.
    pub message: String,
}

/// The inputs table: every input known (from batches or faults), by id.
pub fn inputs(snap: &Snapshot) -> Vec<InputDoc> {
    let none = InputErrors::default();
    snap.input_ids()
        .into_iter()
        .map(|id| {
            let errors = snap.input_errors.get(&id).unwrap_or(&none);
            let last = errors.last();
            InputDoc {
                num_errors: errors.total,
                last_error_time: last.map(|e| format_time(e.time.as_millis())),
                last_error_time_ms: last.map(|e| e.time.as_millis()),
                last_error: last.map(|e| e.message.clone()),
                recent_errors: errors
                    .recent
                    .iter()
                    .rev()
                    .map(|e| InputErrorDoc {
                        time: format_time(e.time.as_millis()),
                        time_ms: e.time.as_millis(),
                        message: e.message.clone(),
                    })
                    .collect(),
                input_id: id,
            }
        })
        .collect()
}

/// RFC 3339 date in UTC with milliseconds, from ms since the epoch (no date library needed for
/// this one format).
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

fn mean(values: impl Iterator<Item = u64>) -> Option<u64> {
    let (sum, n) = values.fold((0u128, 0u128), |(s, n), v| (s + u128::from(v), n + 1));
    (n > 0).then(|| (sum / n) as u64)
}

/// The statistics of a snapshot, averaged over its retained completed batches as Spark does;
/// totals come from the engine's counters, which also count batches from before the UI
/// started.
pub fn statistics(
    app_name: &str,
    snap: &Snapshot,
    metrics: &StreamingMetrics,
) -> StreamingStatistics {
    let gauge = |name: &str| {
        metrics
            .gauges()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| u64::try_from(v).unwrap_or(0))
    };
    let done = &snap.completed;
    let retained_records: u64 = done.iter().map(|b| b.info.num_records()).sum();
    let active_records: u64 = snap.active.iter().map(|b| b.info.num_records()).sum();
    let span_secs = done.len() as f64 * snap.batch_interval_ms as f64 / 1000.0;
    let end = snap.stop_time.unwrap_or_else(Time::now);
    let active_receivers = snap.receivers.iter().filter(|r| r.info.active).count();
    StreamingStatistics {
        app_name: app_name.to_owned(),
        start_time: format_time(snap.start_time.as_millis()),
        start_time_ms: snap.start_time.as_millis(),
        uptime_ms: end.millis_since(snap.start_time),
        state: if snap.stop_time.is_some() {
            "STOPPED"
        } else {
            "ACTIVE"
        },
        batch_duration: snap.batch_interval_ms,
        num_receivers: snap.receivers.len(),
        num_active_receivers: active_receivers,
        num_inactive_receivers: snap.receivers.len() - active_receivers,
        num_total_completed_batches: (metrics.total_completed_batches()
            + metrics.total_failed_batches())
        .max(snap.total_completed),
        num_retained_completed_batches: done.len(),
        num_active_batches: snap.active.len(),
        num_processed_records: gauge("totalProcessedRecords")
            .unwrap_or(snap.total_processed_records),
        num_received_records: gauge("totalReceivedRecords")
            .unwrap_or(snap.total_processed_records + active_records),
        num_failed_batches: done
            .iter()
            .filter(|b| b.info.failure_reason().is_some())
            .count(),
        avg_input_rate: (span_secs > 0.0).then(|| retained_records as f64 / span_secs),
        avg_scheduling_delay: mean(done.iter().filter_map(|b| b.info.scheduling_delay())),
        avg_processing_time: mean(done.iter().filter_map(|b| b.info.processing_delay())),
        avg_total_delay: mean(done.iter().filter_map(|b| b.info.total_delay())),
    }
}

fn op_status(op: &OutputOperationInfo) -> &'static str {
    match (op.start_time, op.end_time, &op.failure_reason) {
        (_, _, Some(_)) => "FAILED",
        (_, Some(_), None) => "SUCCEEDED",
        (Some(_), None, None) => "RUNNING",
        (None, None, None) => "QUEUED",
    }
}

/// The batch-table row of one batch.
pub fn batch_summary(entry: &BatchEntry, batch_interval_ms: u64) -> BatchSummary {
    let info = &entry.info;
    let ops = entry.output_operations();
    let count = |s: &str| ops.values().filter(|o| op_status(o) == s).count();
    let input_size = info.num_records();
    BatchSummary {
        batch_id: info.batch_time.as_millis(),
        batch_time: format_time(info.batch_time.as_millis()),
        status: entry.status.as_str(),
        batch_duration: batch_interval_ms,
        input_size,
        input_rate: input_size as f64 * 1000.0 / batch_interval_ms.max(1) as f64,
        scheduling_delay: info.scheduling_delay(),
        processing_time: info.processing_delay(),
        total_delay: info.total_delay(),
        num_active_output_ops: count("RUNNING"),
        num_completed_output_ops: count("SUCCEEDED"),
        num_failed_output_ops: count("FAILED"),
        num_total_output_ops: ops.len(),
        first_failure_reason: info
            .failure_reason()
            .map(str::to_owned)
            .or_else(|| ops.values().find_map(|o| o.failure_reason.clone())),
        recovered: info.recovered,
    }
}

/// The batch rows of a snapshot, newest first, optionally of one status.
pub fn batches(snap: &Snapshot, status: Option<BatchStatus>) -> Vec<BatchSummary> {
    snap.active
        .iter()
        .rev()
        .chain(snap.completed.iter().rev())
        .filter(|b| status.is_none_or(|s| b.status == s))
        .map(|b| batch_summary(b, snap.batch_interval_ms))
        .collect()
}

/// Offset ranges and lost offsets of a direct stream's input (read through
/// [`DirectBatchInfo`], the one definition of that metadata); other inputs have none.
pub fn input_detail(input: &InputInfo) -> InputDetail {
    let DirectBatchInfo { ranges, lost } = DirectBatchInfo::from_input(input).unwrap_or_default();
    InputDetail {
        input_id: input.input_id.clone(),
        num_records: input.num_records,
        description: input.description.clone(),
        offset_ranges: ranges
            .iter()
            .map(|r| OffsetRangeDoc {
                topic: r.topic.clone(),
                partition: r.partition,
                from_offset: r.from_offset,
                until_offset: r.until_offset,
                count: r.count(),
            })
            .collect(),
        lost_offsets: lost
            .iter()
            .map(|l| LostOffsetsDoc {
                topic: l.topic.clone(),
                partition: l.partition,
                requested_from: l.requested_from,
                resumed_from: l.resumed_from,
                count: l.count(),
            })
            .collect(),
    }
}

/// The full document of one batch.
pub fn batch_detail(entry: &BatchEntry, batch_interval_ms: u64) -> BatchDetail {
    let info = &entry.info;
    BatchDetail {
        summary: batch_summary(entry, batch_interval_ms),
        submission_time: info.submission_time.as_millis(),
        processing_start_time: info.processing_start_time.map(Time::as_millis),
        processing_end_time: info.processing_end_time.map(Time::as_millis),
        inputs: info
            .input_infos
            .iter()
            .map(|(id, input)| {
                let mut d = input_detail(input);
                if d.input_id.is_empty() {
                    d.input_id = id.clone();
                }
                d
            })
            .collect(),
        output_op_ids: entry
            .output_operations()
            .values()
            .map(|o| OutputOperation {
                output_op_id: o.id,
                name: o.name.clone(),
                status: op_status(o),
                start_time: o.start_time.map(Time::as_millis),
                end_time: o.end_time.map(Time::as_millis),
                duration: o.duration_ms(),
                failure_reason: o.failure_reason.clone(),
            })
            .collect(),
    }
}

/// The receivers table, with rates from the retained batches' records of each receiver's input.
pub fn receivers(snap: &Snapshot) -> Vec<ReceiverDoc> {
    snap.receivers
        .iter()
        .map(|r| receiver_doc(r, snap))
        .collect()
}

fn receiver_doc(r: &ReceiverEntry, snap: &Snapshot) -> ReceiverDoc {
    let secs = snap.batch_interval_ms.max(1) as f64 / 1000.0;
    let event_rates: Vec<(u64, f64)> = snap
        .completed
        .iter()
        .map(|b| {
            let n = b
                .info
                .input_infos
                .get(&r.info.input_id)
                .map(|i| i.num_records)
                .unwrap_or(0);
            (b.info.batch_time.as_millis(), n as f64 / secs)
        })
        .collect();
    let avg = (!event_rates.is_empty())
        .then(|| event_rates.iter().map(|(_, v)| v).sum::<f64>() / event_rates.len() as f64);
    ReceiverDoc {
        stream_id: r.info.input_id.clone(),
        stream_name: r.info.name.clone(),
        is_active: r.info.active,
        executor_id: r.info.location.clone(),
        executor_host: r.info.location.clone(),
        last_error_time: r.info.last_error_time.map(|t| format_time(t.as_millis())),
        last_error_message: r.info.last_error.clone(),
        last_error: r.info.last_error.clone(),
        avg_event_rate: avg,
        event_rates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spate_kafka::{LostOffsets, OffsetRange};

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_time(1_795_994_614_005), "2026-11-29T23:23:34.005Z");
    }

    #[test]
    fn offset_ranges_come_from_direct_stream_metadata() {
        let input = InputInfo {
            input_id: "kafka_direct-0".into(),
            num_records: 7,
            description: String::new(),
            metadata: serde_json::json!({
                "offsets": [OffsetRange::create("t", 1, 3, 10)],
                "lost": [LostOffsets { topic: "t".into(), partition: 0, requested_from: 0, resumed_from: 4 }],
            }),
        };
        let d = input_detail(&input);
        assert_eq!(d.offset_ranges.len(), 1);
        assert_eq!(
            (
                d.offset_ranges[0].partition,
                d.offset_ranges[0].from_offset,
                d.offset_ranges[0].count
            ),
            (1, 3, 7)
        );
        assert_eq!(d.lost_offsets[0].count, 4);
        let plain = input_detail(&InputInfo::default());
        assert!(plain.offset_ranges.is_empty() && plain.lost_offsets.is_empty());
    }
}
