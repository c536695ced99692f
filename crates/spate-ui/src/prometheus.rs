//! `GET /metrics`: the job's gauges in Prometheus' text exposition format (version 0.0.4).
//!
//! The engine's gauges keep Spark's `StreamingSource` names so dashboards built on Spark carry
//! over: `spate_streaming_<sparkName>{app="..."}` (e.g. `spate_streaming_totalCompletedBatches`,
//! `spate_streaming_lastCompletedBatch_processingDelay`; `-1` means unknown, as in Spark).
//! Kafka inputs add one series per partition: the job's position (`until` offset of the last
//! batch), and, when a latest-offsets source is configured, the log end and the lag. Each
//! input known to the UI adds `spate_streaming_input_errors_total{app,input}`: the faults it
//! reported and rode out (e.g. broker retries), a counter since the UI started.

use std::fmt::Write;

use spate_streaming::StreamingMetrics;

use crate::lag::PartitionPosition;
use crate::store::Snapshot;

/// The content type Prometheus expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

fn help_of(spark_name: &str) -> &'static str {
    match spark_name {
        "receivers" => "Receivers running (Spark StreamingSource).",
        "totalCompletedBatches" => "Batches completed successfully.",
        "totalReceivedRecords" => "Records of all planned batches.",
        "totalProcessedRecords" => "Records of all successfully completed batches.",
        "unprocessedBatches" => "Batches waiting or running.",
        "waitingBatches" => "Batches planned and not started.",
        "runningBatches" => "Batches running.",
        "retainedCompletedBatches" => "Completed batches retained for the UI.",
        n if n.ends_with("Time") => "Time in ms since the epoch (-1 when unknown).",
        n if n.ends_with("Delay") => "Delay in ms (-1 when unknown).",
        "lastReceivedBatch_records" => "Records of the last planned batch (-1 when unknown).",
        _ => "Spark StreamingSource gauge.",
    }
}

/// Renders the engine's gauges, the UI's averages and the Kafka partitions' positions.
pub fn render(
    app: &str,
    metrics: &StreamingMetrics,
    stats: &crate::api::StreamingStatistics,
    snap: &Snapshot,
    positions: &[PartitionPosition],
) -> String {
    let app = escape(app);
    let mut out = String::with_capacity(4096);
    for (name, value) in metrics.gauges() {
        let metric = format!("spate_streaming_{name}");
        gauge(&mut out, &metric, help_of(name));
        let _ = writeln!(out, "{metric}{{app=\"{app}\"}} {value}");
    }
    let failed = metrics.total_failed_batches();
    gauge(
        &mut out,
        "spate_streaming_totalFailedBatches",
        "Batches that failed.",
    );
    let _ = writeln!(
        out,
        "spate_streaming_totalFailedBatches{{app=\"{app}\"}} {failed}"
    );
    gauge(
        &mut out,
        "spate_streaming_batchDuration",
        "Batch interval in ms.",
    );
    let _ = writeln!(
        out,
        "spate_streaming_batchDuration{{app=\"{app}\"}} {}",
        snap.batch_interval_ms
    );
    let avgs = [
        (
            "avgInputRate",
            "Records per second over the retained batches (-1 when none).",
            stats.avg_input_rate,
        ),
        (
            "avgSchedulingDelay",
            "Mean scheduling delay in ms over the retained batches (-1 when none).",
            stats.avg_scheduling_delay.map(|v| v as f64),
        ),
        (
            "avgProcessingTime",
            "Mean processing time in ms over the retained batches (-1 when none).",
            stats.avg_processing_time.map(|v| v as f64),
        ),
        (
            "avgTotalDelay",
            "Mean total delay in ms over the retained batches (-1 when none).",
            stats.avg_total_delay.map(|v| v as f64),
        ),
    ];
    for (name, help, v) in avgs {
        let metric = format!("spate_streaming_{name}");
        gauge(&mut out, &metric, help);
        let _ = writeln!(out, "{metric}{{app=\"{app}\"}} {}", v.unwrap_or(-1.0));
    }
    render_input_errors(&mut out, &app, snap);
    render_partitions(&mut out, &app, positions);
    out
}

fn render_input_errors(out: &mut String, app: &str, snap: &Snapshot) {
    let ids = snap.input_ids();
    if ids.is_empty() {
        return;
    }
    let name = "spate_streaming_input_errors_total";
    let _ = writeln!(
        out,
        "# HELP {name} Faults an input reported while retrying (e.g. an unreachable broker)."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for id in ids {
        let n = snap.input_errors.get(&id).map_or(0, |e| e.total);
        let _ = writeln!(out, "{name}{{app=\"{app}\",input=\"{}\"}} {n}", escape(&id));
    }
}

fn render_partitions(out: &mut String, app: &str, positions: &[PartitionPosition]) {
    if positions.is_empty() {
        return;
    }
    let labels = |p: &PartitionPosition| {
        format!(
            "app=\"{app}\",input=\"{}\",topic=\"{}\",partition=\"{}\"",
            escape(&p.input_id),
            escape(&p.partition.topic),
            p.partition.partition
        )
    };
    gauge(
        out,
        "spate_kafka_partition_until_offset",
        "Offset after the last one planned for the partition (the job's position).",
    );
    for p in positions {
        let _ = writeln!(
            out,
            "spate_kafka_partition_until_offset{{{}}} {}",
            labels(p),
            p.until_offset
        );
    }
    if positions.iter().all(|p| p.latest_offset.is_none()) {
        return;
    }
    gauge(
        out,
        "spate_kafka_partition_latest_offset",
        "The partition's latest offset (log end) when scraped.",
    );
    for p in positions {
        if let Some(l) = p.latest_offset {
            let _ = writeln!(
                out,
                "spate_kafka_partition_latest_offset{{{}}} {l}",
                labels(p)
            );
        }
    }
    gauge(
        out,
        "spate_kafka_consumer_lag",
        "Records behind: latest offset minus the job's position.",
    );
    for p in positions {
        if let Some(lag) = p.lag() {
            let _ = writeln!(out, "spate_kafka_consumer_lag{{{}}} {lag}", labels(p));
        }
    }
}
