//! One row of a stream benchmark's report ([`JobResult`]) and the measurement around the job
//! that fills it ([`Phase`]): CPU seconds and peak RSS from the start of a phase, the high-water
//! mark reset first so each phase's peak is its own.

use serde::Serialize;
use spate_client::measure::{Percentiles, Throughput};

use crate::report::Ceiling;
use crate::resources::{CpuTime, ResourceUsage};

/// One row of the report: a job (or the ceiling) and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    /// The row's label, e.g. "direct stream, pass-through".
    pub job: String,
    /// Records the job read.
    pub records: u64,
    /// Key + value bytes read.
    pub bytes: u64,
    /// Wall-clock seconds from start to the last record counted.
    pub seconds: f64,
    /// Records per wall-clock second.
    pub records_per_sec: f64,
    /// Megabytes (10^6 bytes) per wall-clock second.
    pub mb_per_sec: f64,
    /// records/s ÷ the ceiling's records/s (1.0 for the ceiling itself).
    pub ratio_to_ceiling: Option<f64>,
    /// Processing time of the batches that had records, ms.
    pub batch_ms: Option<Percentiles>,
    /// Batches that completed during the job.
    pub batches: usize,
    /// CPU seconds of the whole process (all threads, the in-process broker included) during
    /// the job.
    pub cpu_seconds: f64,
    /// Records per CPU second: on a shared machine a job with more threads can take a larger
    /// share of the cores than the one-thread ceiling, so its wall-clock ratio flatters it; this
    /// one does not.
    pub records_per_cpu_second: f64,
    /// records per CPU second ÷ the ceiling's.
    pub cpu_ratio_to_ceiling: Option<f64>,
    /// Peak resident memory during the job (the high-water mark is reset before it, where the
    /// kernel allows).
    pub peak_rss_bytes: Option<u64>,
}

impl JobResult {
    /// Fills in the ratios to `ceiling`, whose row is `ceiling_row`.
    pub fn with_ceiling(mut self, ceiling: &Ceiling, ceiling_row: &JobResult) -> Self {
        self.ratio_to_ceiling = Some(self.records_per_sec / ceiling.records_per_sec.max(1e-9));
        self.cpu_ratio_to_ceiling =
            Some(self.records_per_cpu_second / ceiling_row.records_per_cpu_second.max(1e-9));
        self
    }
}

/// CPU and peak memory from the start of a phase.
pub(crate) struct Phase {
    cpu: CpuTime,
}

impl Phase {
    pub(crate) fn begin() -> Self {
        reset_peak_rss();
        Phase {
            cpu: CpuTime::now(),
        }
    }

    pub(crate) fn end(self, job: &str, t: Throughput, batch_ms: Vec<f64>) -> JobResult {
        let cpu_seconds = CpuTime::now().since(&self.cpu).total();
        JobResult {
            job: job.to_owned(),
            records: t.records,
            bytes: t.bytes,
            seconds: t.seconds,
            records_per_sec: t.records_per_sec(),
            mb_per_sec: t.mb_per_sec(),
            ratio_to_ceiling: None,
            batches: batch_ms.len(),
            batch_ms: Percentiles::of(&batch_ms),
            cpu_seconds,
            records_per_cpu_second: t.records as f64 / cpu_seconds.max(1e-9),
            cpu_ratio_to_ceiling: None,
            peak_rss_bytes: ResourceUsage::now().peak_rss_bytes,
        }
    }
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) so the next phase's peak is its own; best effort
/// (Linux ≥ 4.0: writing 5 to `/proc/self/clear_refs`).
pub(crate) fn reset_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        tracing::debug!("cannot reset the peak RSS mark: {e}");
    }
}
