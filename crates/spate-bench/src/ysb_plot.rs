//! SVG plots of `spate bench ysb` runs (plotters, SVG backend only): throughput against the
//! raw consumer ceiling, latency against the batch interval, and end-to-end latency CDFs.

use crate::error::{BenchError, Result};
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::ysb_run::{fmt_interval, Mode, YsbRow};

const SIZE: (u32, u32) = (860, 480);
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Plot(e.to_string())
}

/// Writes every plot the rows allow into `dir`; returns the files written.
pub fn write_all(dir: &Path, rows: &[YsbRow]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(BenchError::io(format!(
        "could not create the plot dir {}",
        dir.display()
    )))?;
    let mut out = Vec::new();
    let catch_up: Vec<&YsbRow> = rows.iter().filter(|r| r.mode == Mode::CatchUp).collect();
    if !catch_up.is_empty() {
        let p = dir.join("ysb-throughput.svg");
        throughput(&p, &catch_up)?;
        out.push(p);
    }
    let live: Vec<&YsbRow> = rows.iter().filter(|r| r.mode == Mode::Live).collect();
    if !live.is_empty() {
        // One latency chart per offered load: the highest in ysb-latency.svg, the next (the
        // sweep's 10%) in ysb-latency-low.svg.
        let mut rates: Vec<f64> = live.iter().filter_map(|r| r.offered_rate).collect();
        rates.sort_by(|a, b| b.total_cmp(a));
        rates.dedup();
        for (i, rate) in rates.iter().enumerate() {
            let at: Vec<&YsbRow> = live
                .iter()
                .copied()
                .filter(|r| r.offered_rate == Some(*rate))
                .collect();
            let name = match i {
                0 => "ysb-latency.svg".to_owned(),
                1 => "ysb-latency-low.svg".to_owned(),
                _ => format!("ysb-latency-{}k.svg", (rate / 1000.0).round()),
            };
            let p = dir.join(name);
            latency_by_interval(&p, &at)?;
            out.push(p);
        }
        let p = dir.join("ysb-latency-cdf.svg");
        latency_cdf(&p, &live)?;
        out.push(p);
    }
    Ok(out)
}

/// Bars: YSB records/s beside the raw consumer ceiling of the same topic, per catch-up run.
fn throughput(path: &Path, rows: &[&YsbRow]) -> Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max = rows
        .iter()
        .map(|r| r.ceiling_records_per_sec.max(r.records_per_sec))
        .fold(1.0, f64::max)
        / 1e6
        * 1.15;
    let n = rows.len() as f64;
    let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "YSB catch-up: records/s vs raw rdkafka consumer ceiling",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n, 0f64..max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.26 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("million records/s")
        .draw()
        .map_err(err)?;
    let bars = [
        ("YSB job (broker + engine)", PALETTE[0], 0.1),
        ("raw consumer ceiling", PALETTE[1], 0.5),
    ];
    for (label, color, offset) in bars {
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let v = if offset < 0.3 {
                    r.records_per_sec
                } else {
                    r.ceiling_records_per_sec
                } / 1e6;
                let x = i as f64 + offset;
                Rectangle::new([(x, 0.0), (x + 0.38, v)], color.filled())
            }))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// The latency lines of [`latency_by_interval`], each point (batch interval, ms), floored at
/// 0.01 ms for the log scale.
fn interval_series(rows: &[&YsbRow]) -> Vec<(&'static str, Vec<(f64, f64)>)> {
    let mut series: Vec<(&str, Vec<(f64, f64)>)> = vec![
        ("batch processing p50", Vec::new()),
        ("batch processing p99", Vec::new()),
        ("end-to-end p50", Vec::new()),
        ("end-to-end p99", Vec::new()),
        ("time after window close p99", Vec::new()),
    ];
    for r in rows {
        let x = r.batch_interval_ms;
        if let Some(p) = r.batch_processing_ms {
            series[0].1.push((x, p.p50.max(0.01)));
            series[1].1.push((x, p.p99.max(0.01)));
        }
        if let Some(p) = r.end_to_end_ms {
            series[2].1.push((x, p.p50.max(0.01)));
            series[3].1.push((x, p.p99.max(0.01)));
        }
        if let Some(p) = r.window_close_ms {
            series[4].1.push((x, p.p99.max(0.01)));
        }
    }
    series
}

/// Lines over the batch interval (log scale): batch processing p50/p99, end-to-end p50/p99 and
/// YSB's time after window close p99, for live runs at one offered load.
fn latency_by_interval(path: &Path, rows: &[&YsbRow]) -> Result<()> {
    let mut rows: Vec<&YsbRow> = rows.to_vec();
    rows.sort_by(|a, b| a.batch_interval_ms.total_cmp(&b.batch_interval_ms));
    let main_rate = rows
        .iter()
        .filter_map(|r| r.offered_rate)
        .fold(0.0, f64::max);
    let series = interval_series(&rows);
    let xs = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.1));
    let (x0, x1) = bounds(xs);
    let (y0, y1) = bounds(ys);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "YSB live at {:.0}K events/s: latency vs batch interval",
                main_rate / 1000.0
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x0 / 1.5..x1 * 1.5).log_scale(),
            (y0 / 1.5..y1 * 1.5).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("batch interval (ms, log)")
        .y_desc("ms (log)")
        .draw()
        .map_err(err)?;
    for (i, (label, points)) in series.into_iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// End-to-end latency CDF per live run (x: latency, log scale).
fn latency_cdf(path: &Path, rows: &[&YsbRow]) -> Result<()> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = rows
        .iter()
        .filter(|r| !r.latency_samples.is_empty())
        .map(|r| {
            let mut v: Vec<f64> = r.latency_samples.iter().map(|x| x.max(0.5)).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            // At most ~400 points per curve keeps the SVG small.
            let step = (n / 400).max(1);
            let mut pts: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .step_by(step)
                .map(|(i, &x)| (x, (i + 1) as f64 / n as f64 * 100.0))
                .collect();
            pts.push((v[n - 1], 100.0));
            (
                format!(
                    "{} batches, {:.0}K ev/s, {:?}",
                    fmt_interval(std::time::Duration::from_secs_f64(
                        r.batch_interval_ms / 1000.0
                    )),
                    r.offered_rate.unwrap_or(0.0) / 1000.0,
                    r.encoding
                ),
                pts,
            )
        })
        .collect();
    if curves.is_empty() {
        return Ok(());
    }
    let (x0, x1) = bounds(curves.iter().flat_map(|(_, v)| v.iter().map(|p| p.0)));
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "YSB live: end-to-end latency CDF (event time → count acknowledged)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 / 1.2..x1 * 1.2).log_scale(), 0f64..100f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log)")
        .y_desc("percentile")
        .draw()
        .map_err(err)?;
    for (i, (label, points)) in curves.into_iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Min and max of positive values, with a fallback range for an empty set.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (1.0, 10.0)
    } else if lo == hi {
        (lo / 2.0, hi * 2.0)
    } else {
        (lo, hi)
    }
}
