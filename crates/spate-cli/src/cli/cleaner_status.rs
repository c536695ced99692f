//! The log cleaner's state of a topic for `spate topics describe --verbose`: per partition the
//! dirty ratio, clean and dirty bytes and the last cleaning.
//!
//! Kafka has no admin request that carries this (its cleaner state shows in JMX and
//! `kafka-log-dirs.sh`), so the broker serves it as JSON on its metrics listener
//! (`metrics.listen`, `GET /cleaner/TOPIC`) and this module fetches it with a plain HTTP/1.1
//! GET: one short request, not worth an HTTP client dependency.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use spate_broker::cleaner::{PartitionCleanerStatus, TopicCleanerReport};

/// How long connecting to and reading from the metrics listener may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// GETs the cleaner report of `topic` from the broker's metrics listener at `address`.
pub fn fetch(address: &str, topic: &str) -> anyhow::Result<TopicCleanerReport> {
    let (code, body) = http_get(address, &format!("/cleaner/{topic}"))?;
    if code != 200 {
        let reason = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(body);
        bail!("the broker at {address} answered {code}: {reason}");
    }
    serde_json::from_str(&body)
        .with_context(|| format!("the broker at {address} sent an unreadable cleaner report"))
}

fn http_get(address: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let addr = address
        .to_socket_addrs()
        .with_context(|| format!("bad --metrics-address {address:?} (HOST:PORT)"))?
        .next()
        .ok_or_else(|| anyhow!("--metrics-address {address:?} resolves to nothing"))?;
    let mut conn = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("could not reach the broker's metrics listener at {address}"))?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .with_context(|| format!("reading the answer of {address}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("{address} did not answer with HTTP"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("{address} did not answer with an HTTP status"))?;
    Ok((code, body.to_string()))
}

/// One line per partition, in `topics describe`'s tab-separated style.
pub fn lines(report: &TopicCleanerReport) -> Vec<String> {
    report
        .partitions
        .iter()
        .map(|p| {
            let state = match &p.status {
                None => "Cleaner: none (the in-memory storage does not compact)".to_string(),
                Some(s) => describe_status(s),
            };
            format!(
                "\tTopic: {}\tPartition: {}\t{state}",
                report.topic, p.partition
            )
        })
        .collect()
}

fn describe_status(s: &PartitionCleanerStatus) -> String {
    let last = match &s.last_cleaning {
        None => "never".to_string(),
        Some(l) => format!(
            "{} (read {} records / {} bytes, kept {} records / {} bytes, {} ms)",
            spate_bench::report::format_utc(u64::try_from(l.finished_ms / 1000).unwrap_or(0)),
            l.stats.records_read,
            l.stats.bytes_read,
            l.stats.records_kept,
            l.stats.bytes_written,
            l.stats.elapsed_ms
        ),
    };
    format!(
        "Compacted: {}\tDirtyRatio: {:.3}\tCleanBytes: {}\tDirtyBytes: {}\tFirstDirtyOffset: {}\tCleaning: {}\tLastCleaning: {last}",
        s.compacted,
        s.dirty_ratio,
        s.clean_bytes,
        s.dirty_bytes,
        s.first_dirty_offset,
        if s.in_progress { "in progress" } else { "idle" },
    )
}
