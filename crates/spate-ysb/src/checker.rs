//! YSB's checker (`core.clj -c`): recompute every window's count from the input topic and
//! compare it with the last count the job wrote for that window.
//!
//! The comparison is pure ([`expected_counts`], [`latest_counts`], [`compare`]) so it is tested
//! without Kafka; [`read_topic`] streams a topic once from the beginning to its current end
//! (the input of a catch-up run can be far larger than memory allows to hold at once).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::error::{Result, YsbError};
use crate::events::{push_uuid, uuid_string, window_start, Encoding};
use crate::setup::CampaignMap;
use crate::view::view_of;
use spate_client::config::{CliContext, ClientArgs};
use spate_client::tuning::CONSUMER_TUNING;

/// One update of a window's count, as the job writes it (JSON value; key
/// `campaign_id:window_start`). `time_updated` is when the job wrote it, YSB's Redis field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCount {
    /// The campaign counted (a UUID, written as text in the JSON).
    #[serde(with = "uuid_text")]
    pub campaign_id: u128,
    /// Start of the 10-second event-time window, in epoch milliseconds.
    pub window_start: i64,
    /// Views of the campaign's ads in the window so far.
    pub count: u64,
    /// When the job wrote this update, in epoch milliseconds.
    pub time_updated: i64,
}

mod uuid_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(id: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::uuid_string(*id))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = <&str>::deserialize(d)?;
        crate::events::parse_uuid(s.as_bytes())
            .ok_or_else(|| serde::de::Error::custom(format!("not a UUID: {s:?}")))
    }
}

impl WindowCount {
    /// The record key: `campaign_id:window_start`.
    pub fn key(&self) -> String {
        format!("{}:{}", uuid_string(self.campaign_id), self.window_start)
    }

    /// Appends the JSON value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"campaign_id\":\"");
        push_uuid(out, self.campaign_id);
        out.extend_from_slice(
            format!(
                "\",\"window_start\":{},\"count\":{},\"time_updated\":{}}}",
                self.window_start, self.count, self.time_updated
            )
            .as_bytes(),
        );
    }

    /// Parses a JSON value the job wrote; a value that is not a window count is
    /// [`YsbError::MalformedCount`].
    pub fn decode(value: &[u8]) -> Result<WindowCount, YsbError> {
        serde_json::from_slice(value).map_err(|e| YsbError::MalformedCount(e.to_string()))
    }

    /// YSB's latency: how long after the window closed this update was written (ms).
    pub fn time_after_window_close(&self) -> i64 {
        self.time_updated - (self.window_start + crate::events::WINDOW_MS)
    }
}

/// Counts of views per `(campaign_id, window_start)`.
pub type Counts = BTreeMap<(u128, i64), u64>;

/// The job's last update per `(campaign_id, window_start)`.
pub type LatestCounts = BTreeMap<(u128, i64), WindowCount>;

/// What the input topic held, as the checker counted it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputSummary {
    /// Records read from the input topic.
    pub records: u64,
    /// Records that were view events (the only ones counted).
    pub views: u64,
    /// Records that were not YSB events in the topic's encoding.
    pub malformed: u64,
}

/// Recomputes the window counts from input record values.
pub fn expected_counts<'a>(
    encoding: Encoding,
    values: impl IntoIterator<Item = &'a [u8]>,
    campaigns: &CampaignMap,
) -> (Counts, InputSummary) {
    let mut acc = CountAccumulator::default();
    for v in values {
        acc.add(encoding, v, campaigns);
    }
    (acc.counts, acc.summary)
}

/// [`expected_counts`] one record at a time (for streaming a topic through).
#[derive(Debug, Clone, Default)]
pub struct CountAccumulator {
    /// Views per window so far.
    pub counts: Counts,
    /// Records, views and malformed records seen so far.
    pub summary: InputSummary,
}

impl CountAccumulator {
    /// Counts one input record value: a view of a known ad adds one to its campaign's window.
    pub fn add(&mut self, encoding: Encoding, value: &[u8], campaigns: &CampaignMap) {
        self.summary.records += 1;
        match view_of(encoding, value, campaigns) {
            Ok(Some((campaign, time))) => {
                self.summary.views += 1;
                if let Some(id) = campaigns.campaign_id(campaign) {
                    *self.counts.entry((id, window_start(time))).or_insert(0) += 1;
                }
            }
            Ok(None) => {}
            Err(_) => self.summary.malformed += 1,
        }
    }
}

/// The last update per window, in the order given (the topic's order within a partition,
/// which is the order the job wrote a window's updates in).
pub fn latest_counts<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<LatestCounts, YsbError> {
    let mut out = BTreeMap::new();
    for v in values {
        let c = WindowCount::decode(v)?;
        out.insert((c.campaign_id, c.window_start), c);
    }
    Ok(out)
}

/// A window whose count differs between input and output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The campaign, as a UUID string.
    pub campaign_id: String,
    /// Start of the window, in epoch milliseconds.
    pub window_start: i64,
    /// Recomputed from the input; `None` when the job wrote a window with no views.
    pub expected: Option<u64>,
    /// The job's last update; `None` when the job never wrote the window.
    pub actual: Option<u64>,
}

/// The checker's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// What the input topic held.
    pub input: InputSummary,
    /// Windows with at least one view, recomputed from the input.
    pub expected_windows: usize,
    /// Windows the job wrote at least one update for.
    pub output_windows: usize,
    /// Windows whose last written count equals the recomputed one.
    pub matched: usize,
    /// At most [`CheckReport::QUOTED`] mismatches are kept; `mismatch_count` has them all.
    pub mismatches: Vec<Mismatch>,
    /// All windows whose counts differ.
    pub mismatch_count: usize,
}

impl CheckReport {
    /// How many mismatches a report keeps to show.
    pub const QUOTED: usize = 20;

    /// True when every window's count matches and no input record was malformed.
    pub fn passed(&self) -> bool {
        self.mismatch_count == 0 && self.input.malformed == 0
    }
}

/// Compares recomputed counts with the job's last updates.
pub fn compare(expected: &Counts, actual: &LatestCounts, input: InputSummary) -> CheckReport {
    let mut report = CheckReport {
        input,
        expected_windows: expected.len(),
        output_windows: actual.len(),
        ..CheckReport::default()
    };
    let push = |r: &mut CheckReport, key: &(u128, i64), e: Option<u64>, a: Option<u64>| {
        r.mismatch_count += 1;
        if r.mismatches.len() < CheckReport::QUOTED {
            r.mismatches.push(Mismatch {
                campaign_id: uuid_string(key.0),
                window_start: key.1,
                expected: e,
                actual: a,
            });
        }
    };
    for (key, &count) in expected {
        match actual.get(key) {
            Some(c) if c.count == count => report.matched += 1,
            other => push(&mut report, key, Some(count), other.map(|c| c.count)),
        }
    }
    for (key, c) in actual {
        if !expected.contains_key(key) {
            push(&mut report, key, None, Some(c.count));
        }
    }
    report
}

/// Streams every record value of `topic`, from the beginning to the end it had when the read
/// started, partition by partition in offset order, into `f(partition, value)`.
pub fn read_topic(client: &ClientArgs, topic: &str, mut f: impl FnMut(i32, &[u8])) -> Result<u64> {
    let consumer: BaseConsumer<CliContext> = client.create(CONSUMER_TUNING)?;
    let partitions = client.topic_partitions(consumer.client(), topic)?;
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, client.request_timeout())
            .map_err(|source| YsbError::Watermarks {
                topic: topic.to_owned(),
                partition: p,
                source,
            })?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(|source| YsbError::Assign {
                    topic: topic.to_owned(),
                    source,
                })?;
        }
    }
    if ends.is_empty() {
        return Ok(0);
    }
    consumer.assign(&tpl).map_err(|source| YsbError::Assign {
        topic: topic.to_owned(),
        source,
    })?;
    let mut read = 0u64;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let p = m.partition();
                let Some(&end) = ends.get(&p) else { continue };
                if m.offset() < end {
                    f(p, m.payload().unwrap_or_default());
                    read += 1;
                    last_progress = Instant::now();
                }
                if m.offset() + 1 >= end {
                    ends.remove(&p);
                }
            }
            Some(Err(e)) => tracing::warn!("error while reading {topic}: {e}"),
            None => {
                if last_progress.elapsed() > Duration::from_secs(30) {
                    return Err(YsbError::ReadStalled {
                        topic: topic.to_owned(),
                        partitions_left: format!("{ends:?}"),
                    });
                }
            }
        }
    }
    Ok(read)
}

/// Runs the checker against the two topics.
pub fn check_topics(
    client: &ClientArgs,
    input_topic: &str,
    output_topic: &str,
    encoding: Encoding,
    campaigns: &CampaignMap,
) -> Result<(CheckReport, LatestCounts)> {
    let mut acc = CountAccumulator::default();
    read_topic(client, input_topic, |_, v| acc.add(encoding, v, campaigns))?;
    let mut values: Vec<Vec<u8>> = Vec::new();
    read_topic(client, output_topic, |_, v| values.push(v.to_vec()))?;
    // Per window, updates are in one partition in order; across partitions order is irrelevant.
    let actual = latest_counts(values.iter().map(Vec::as_slice))?;
    Ok((compare(&acc.counts, &actual, acc.summary), actual))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::YsbSetup;

    fn input(n: i64) -> (YsbSetup, Vec<Vec<u8>>) {
        let setup = YsbSetup::new(1);
        let mut g = setup.events(2);
        let values = (0..n)
            .map(|i| {
                let mut b = Vec::new();
                g.next_event(i * 7).encode_json(&mut b);
                b
            })
            .collect();
        (setup, values)
    }

    fn updates(counts: &Counts, bump: Option<usize>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (i, (&(campaign_id, window_start), &count)) in counts.iter().enumerate() {
            // A stale partial update first, then the final one (the one that counts).
            for c in [count / 2, count + u64::from(bump == Some(i))] {
                let mut b = Vec::new();
                WindowCount {
                    campaign_id,
                    window_start,
                    count: c,
                    time_updated: 1,
                }
                .encode(&mut b);
                out.push(b);
            }
        }
        out
    }

    #[test]
    fn matching_counts_pass() {
        let (setup, values) = input(5_000);
        let map = setup.campaign_map();
        let (counts, summary) =
            expected_counts(Encoding::Json, values.iter().map(Vec::as_slice), &map);
        assert!(counts.len() > 100, "{} windows", counts.len());
        assert_eq!(summary.records, 5_000);
        assert_eq!(summary.views, counts.values().sum::<u64>());
        let out = updates(&counts, None);
        let actual = latest_counts(out.iter().map(Vec::as_slice)).unwrap();
        let report = compare(&counts, &actual, summary);
        assert!(report.passed(), "{report:?}");
        assert_eq!(report.matched, counts.len());
    }

    #[test]
    fn a_wrong_count_is_detected() {
        let (setup, values) = input(2_000);
        let map = setup.campaign_map();
        let (counts, summary) =
            expected_counts(Encoding::Json, values.iter().map(Vec::as_slice), &map);
        let out = updates(&counts, Some(3));
        let actual = latest_counts(out.iter().map(Vec::as_slice)).unwrap();
        let report = compare(&counts, &actual, summary.clone());
        assert!(!report.passed());
        assert_eq!(report.mismatch_count, 1);
        let m = &report.mismatches[0];
        assert_eq!(m.actual, m.expected.map(|e| e + 1));

        // A missing window and an invented one are both mismatches.
        let mut fewer = latest_counts(updates(&counts, None).iter().map(Vec::as_slice)).unwrap();
        let first = *fewer.keys().next().unwrap();
        fewer.remove(&first);
        let mut extra = fewer.clone();
        extra.insert(
            (7, 0),
            WindowCount {
                campaign_id: 7,
                window_start: 0,
                count: 1,
                time_updated: 0,
            },
        );
        assert_eq!(compare(&counts, &extra, summary).mismatch_count, 2);
    }

    #[test]
    fn window_counts_round_trip() {
        let c = WindowCount {
            campaign_id: 0x1234,
            window_start: 20_000,
            count: 9,
            time_updated: 31_500,
        };
        let mut b = Vec::new();
        c.encode(&mut b);
        assert_eq!(WindowCount::decode(&b).unwrap(), c);
        assert_eq!(c.time_after_window_close(), 1_500);
        assert!(c.key().ends_with(":20000"));
        assert!(WindowCount::decode(b"{}").is_err());
    }
}
