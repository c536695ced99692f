//! Measurement arithmetic shared by the benchmarks, the YSB generator and the quickstart's
//! progress lines: throughput, nearest-rank percentiles, what a topic load measured, and record
//! counts with thousands separators. No I/O.

/// Records and bytes moved in some wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Throughput {
    /// Records moved.
    pub records: u64,
    /// Bytes moved (record payloads as the tool counts them).
    pub bytes: u64,
    /// Wall-clock seconds the move took.
    pub seconds: f64,
}

impl Throughput {
    /// Records per second (a zero duration counts as a nanosecond, so never infinite).
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }

    /// Megabytes (10^6 bytes, as Kafka's perf tools count) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

/// Latency (or any) percentiles of a sample, by nearest rank.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Samples counted (NaNs excluded).
    pub count: usize,
    /// Smallest sample.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// The percentiles of `samples` (any order; NaNs are dropped), or `None` for an empty sample.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Percentiles {
            count: sorted.len(),
            min: sorted[0],
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            p999: percentile(&sorted, 99.9),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The nearest-rank `p`-th percentile (0..=100) of an ascending, non-empty slice: the smallest
/// value with at least p% of the sample at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// `1234567.8` → `1,234,568`: record rates read better with thousands separators.
pub fn fmt_count(x: f64) -> String {
    let rounded = x.round();
    if !rounded.is_finite() {
        return format!("{x}");
    }
    let digits = format!("{:.0}", rounded.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if rounded < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What loading a topic measured (the benchmarks' `load`, the YSB generator's preload).
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Records and bytes acknowledged by the broker, over the whole load.
    pub throughput: Throughput,
    /// Acknowledgement latency (ms) of about 1 record in 64: send to delivery report.
    pub ack_latency_ms: Option<Percentiles>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 99.9), 7.0);
        let p = Percentiles::of(&[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((p.count, p.min, p.p50, p.max), (3, 1.0, 2.0, 3.0));
        assert!(Percentiles::of(&[]).is_none());
    }

    #[test]
    fn throughput_rates() {
        let t = Throughput {
            records: 2_000_000,
            bytes: 200_000_000,
            seconds: 2.0,
        };
        assert_eq!(t.records_per_sec(), 1_000_000.0);
        assert_eq!(t.mb_per_sec(), 100.0);
    }

    #[test]
    fn counts_get_separators() {
        assert_eq!(fmt_count(0.0), "0");
        assert_eq!(fmt_count(999.4), "999");
        assert_eq!(fmt_count(1000.0), "1,000");
        assert_eq!(fmt_count(1_234_567.8), "1,234,568");
        assert_eq!(fmt_count(-12_345.0), "-12,345");
    }
}
