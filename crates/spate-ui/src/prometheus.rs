//! `GET /metrics`: the job's gauges in Prometheus' text exposition format (version 0.0.4).
//!
//! The engine's gauges keep Spark's `StreamingSource` names so dashboards built on Spark carry
//! over: `spate_streaming_<sparkName>{app="..."}` (e.g. `spate_streaming_totalCompletedBatches`,
//! `spate_streaming_lastCompletedBatch_processingDelay`; `-1` means unknown, as in Spark).
//! Kafka inputs add one series per partition: the job's position (`until` offset of the last
//! batch), and, when a latest-offsets source is configured, the log end and the lag. Each
//! input known to the UI adds `spate_streaming_input_errors_total{app,input}`: the faults it
//! reported and rode out (e.g. broker retries), a counter since the UI started.
//!
//! A job run as several instances adds, per input shared through a consumer group (labels
//! `app`, `input`, `group`, `instance`): `spate_input_owned_partitions` (how many) and
//! `spate_input_owned_partition{topic,partition}` (1 per partition owned now),
//! `spate_input_rebalances_total{kind="assigned|revoked|lost"}`, and the durations of the last
//! rebalance of each kind: `spate_input_last_revocation_wait_ms` and
//! `spate_input_last_assignment_first_batch_ms`. Restoring keyed state adds, per state operator
//! and partition, `spate_state_restore_records`, `spate_state_restore_records_expected` (when
//! known) and `spate_state_restore_done` (0 or 1).

use std::fmt::Write;

use spate_streaming::{InputOwnership, RebalanceInfo, StateRestoreInfo, StreamingMetrics};

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
    render_ownership(&mut out, &app, &metrics.input_ownerships());
    render_restores(&mut out, &app, &metrics.state_restores());
    out
}

/// Reads one duration of a rebalance, when it has it.
type RebalanceDuration = fn(&RebalanceInfo) -> Option<u64>;

fn render_ownership(out: &mut String, app: &str, all: &[InputOwnership]) {
    if all.is_empty() {
        return;
    }
    let labels = |o: &InputOwnership| {
        format!(
            "app=\"{app}\",input=\"{}\",group=\"{}\",instance=\"{}\"",
            escape(&o.latest.input_id),
            escape(&o.latest.group),
            escape(o.latest.instance_id())
        )
    };
    let name = "spate_input_owned_partitions";
    gauge(out, name, "Partitions of the input this instance owns now.");
    for o in all {
        let _ = writeln!(out, "{name}{{{}}} {}", labels(o), o.latest.owned.len());
    }
    let name = "spate_input_owned_partition";
    gauge(out, name, "1 for each partition this instance owns now.");
    for o in all {
        for p in &o.latest.owned {
            let _ = writeln!(
                out,
                "{name}{{{},topic=\"{}\",partition=\"{}\"}} 1",
                labels(o),
                escape(&p.topic),
                p.partition
            );
        }
    }
    let name = "spate_input_rebalances_total";
    let _ = writeln!(
        out,
        "# HELP {name} Rebalance callbacks by kind since the instance started."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for o in all {
        let r = o.latest.rebalances;
        for (kind, n) in [
            ("assigned", r.assigned),
            ("revoked", r.revoked),
            ("lost", r.lost),
        ] {
            let _ = writeln!(out, "{name}{{{},kind=\"{kind}\"}} {n}", labels(o));
        }
    }
    let last =
        |o: &InputOwnership, f: RebalanceDuration| o.recent_rebalances.iter().rev().find_map(f);
    let durations: [(&str, &str, RebalanceDuration); 2] = [
        (
            "spate_input_last_revocation_wait_ms",
            "How long the last revocation waited for the batches in flight, ms.",
            |r| r.revocation_wait_ms,
        ),
        (
            "spate_input_last_assignment_first_batch_ms",
            "From the last assignment to the end of the first batch over its partitions, ms.",
            |r| r.first_batch_ms,
        ),
    ];
    for (name, help, f) in durations {
        gauge(out, name, help);
        for o in all {
            if let Some(v) = last(o, f) {
                let _ = writeln!(out, "{name}{{{}}} {v}", labels(o));
            }
        }
    }
}

fn render_restores(out: &mut String, app: &str, restores: &[StateRestoreInfo]) {
    if restores.is_empty() {
        return;
    }
    let labels = |r: &StateRestoreInfo| {
        format!(
            "app=\"{app}\",operator=\"{}\",partition=\"{}\"",
            escape(&r.operator),
            r.partition
        )
    };
    let name = "spate_state_restore_records";
    gauge(
        out,
        name,
        "Changelog records restored into the state partition.",
    );
    for r in restores {
        let _ = writeln!(out, "{name}{{{}}} {}", labels(r), r.records_restored);
    }
    let name = "spate_state_restore_records_expected";
    gauge(
        out,
        name,
        "Records the changelog partition was expected to hand over.",
    );
    for r in restores {
        if let Some(e) = r.records_expected {
            let _ = writeln!(out, "{name}{{{}}} {e}", labels(r));
        }
    }
    let name = "spate_state_restore_done";
    gauge(out, name, "1 once the state partition is restored.");
    for r in restores {
        let _ = writeln!(out, "{name}{{{}}} {}", labels(r), u8::from(r.done));
    }
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
