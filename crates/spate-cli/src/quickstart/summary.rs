//! The summary printed when the quickstart stops: what this run did (batches, records,
//! events produced) and what the results database holds over all runs (views, windows, the
//! top campaigns, and the offsets the counts include).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use spate_kafka::sink::SqliteOffsetStore;

use super::job::{JOB_ID, RESULTS_TABLE};
use super::progress::Totals;
use super::Layout;
use spate_client::measure::fmt_count;

/// Campaigns listed in the summary.
const TOP_CAMPAIGNS: usize = 5;

/// What this run did.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// How long the run lasted.
    pub elapsed: Duration,
    /// Events the producer had acknowledged when it stopped.
    pub produced: u64,
    /// What the job did.
    pub totals: Totals,
    /// Batches whose results were already in the database (re-runs after a restart).
    pub already_applied: u64,
    /// Records that were not ad events.
    pub malformed: u64,
}

/// What the results hold over all runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Results {
    /// Where they were read, e.g. the database's path.
    pub location: String,
    /// Ad views counted.
    pub views: u64,
    /// Windows written.
    pub windows: u64,
    /// `(campaign id, views)`, most views first.
    pub top_campaigns: Vec<(String, u64)>,
    /// `(topic, partition, next offset)` the counts include.
    pub offsets: Vec<(String, i32, i64)>,
}

impl Results {
    /// Reads the counts and offsets from the quickstart's results database.
    pub fn read(layout: &Layout) -> anyhow::Result<Self> {
        let store = SqliteOffsetStore::open(&layout.results, JOB_ID)
            .context("opening the results database")?;
        let conn = store.connection();
        let (views, windows): (i64, i64) = conn
            .query_row(
                &format!("SELECT COALESCE(SUM(seen_count), 0), COUNT(*) FROM {RESULTS_TABLE}"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .context("reading the window counts")?;
        let mut top = conn
            .prepare(&format!(
                "SELECT campaign_id, SUM(seen_count) AS views FROM {RESULTS_TABLE}
                 GROUP BY campaign_id ORDER BY views DESC, campaign_id LIMIT ?1"
            ))
            .context("reading the top campaigns")?;
        let top_campaigns = top
            .query_map([TOP_CAMPAIGNS as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .context("reading the top campaigns")?
            .into_iter()
            .map(|(c, n)| (c, u64::try_from(n).unwrap_or(0)))
            .collect();
        let offsets = store
            .starting_offsets()
            .context("reading the stored offsets")?
            .into_iter()
            .map(|(tp, o)| (tp.topic, tp.partition, o))
            .collect();
        Ok(Results {
            location: layout.results.display().to_string(),
            views: u64::try_from(views).unwrap_or(0),
            windows: u64::try_from(windows).unwrap_or(0),
            top_campaigns,
            offsets,
        })
    }
}

impl Results {
    /// The results from views per `(campaign id, window start)` and the offsets they include.
    pub fn from_counts(
        location: String,
        counts: &BTreeMap<(String, i64), u64>,
        offsets: Vec<(String, i32, i64)>,
    ) -> Self {
        let mut per_campaign: BTreeMap<&str, u64> = BTreeMap::new();
        for ((campaign, _), n) in counts {
            *per_campaign.entry(campaign).or_insert(0) += n;
        }
        let mut top_campaigns: Vec<(String, u64)> = per_campaign
            .into_iter()
            .map(|(c, n)| (c.to_owned(), n))
            .collect();
        // Most views first, then by id: the order of the SQLite query.
        top_campaigns.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top_campaigns.truncate(TOP_CAMPAIGNS);
        Results {
            location,
            views: counts.values().sum(),
            windows: counts.len() as u64,
            top_campaigns,
            offsets,
        }
    }
}

/// Prints the summary of a run and of its results.
pub fn print(run: &RunFacts, results: &Results, layout: &Layout) {
    println!("{}", render(run, results, layout));
}

fn render(run: &RunFacts, results: &Results, layout: &Layout) -> String {
    let t = &run.totals;
    let secs = run.elapsed.as_secs_f64().max(0.001);
    let mut out = String::new();
    out.push_str("\n== summary ==\n");
    out.push_str(&format!(
        "this run: {:.1} s, {} batches ({} failed), {} records ({}/s), {} events produced\n",
        secs,
        t.batches,
        t.failed_batches,
        fmt_count(t.records as f64),
        fmt_count(t.records as f64 / secs),
        fmt_count(run.produced as f64),
    ));
    if t.batches > 0 {
        out.push_str(&format!(
            "average processing time: {:.1} ms per batch\n",
            t.processing_ms as f64 / t.batches as f64
        ));
    }
    if run.already_applied > 0 {
        out.push_str(&format!(
            "{} re-run batches were already in the results (not counted twice)\n",
            run.already_applied
        ));
    }
    if run.malformed > 0 {
        out.push_str(&format!(
            "{} records were not ad events and were skipped\n",
            run.malformed
        ));
    }
    out.push_str(&format!(
        "results ({}): {} views in {} campaign windows\n",
        results.location,
        fmt_count(results.views as f64),
        fmt_count(results.windows as f64),
    ));
    if !results.offsets.is_empty() {
        let offsets: Vec<String> = results
            .offsets
            .iter()
            .map(|(topic, p, o)| format!("{topic}-{p}:{o}"))
            .collect();
        out.push_str(&format!("offsets counted: {}\n", offsets.join(" ")));
    }
    if !results.top_campaigns.is_empty() {
        out.push_str("top campaigns by views:\n");
        for (i, (campaign, views)) in results.top_campaigns.iter().enumerate() {
            out.push_str(&format!(
                "  {}. {campaign}  {}\n",
                i + 1,
                fmt_count(*views as f64)
            ));
        }
    }
    out.push_str(&format!(
        "run again with --dir {} to resume from the checkpoint",
        layout.root.display()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_batches_records_offsets_and_campaigns() {
        let layout = Layout::new(std::path::Path::new("qs"));
        let run = RunFacts {
            elapsed: Duration::from_secs(10),
            produced: 100_000,
            totals: Totals {
                batches: 10,
                failed_batches: 0,
                records: 99_000,
                processing_ms: 420,
            },
            already_applied: 1,
            malformed: 0,
        };
        let results = Results {
            location: "qs/results.db".into(),
            views: 33_000,
            windows: 200,
            top_campaigns: vec![("c-1".into(), 400), ("c-2".into(), 390)],
            offsets: vec![("ad-events".into(), 0, 24_750)],
        };
        let text = render(&run, &results, &layout);
        for want in [
            "10 batches (0 failed), 99,000 records (9,900/s), 100,000 events produced",
            "average processing time: 42.0 ms per batch",
            "1 re-run batches were already in the results",
            "results (qs/results.db): 33,000 views in 200 campaign windows",
            "offsets counted: ad-events-0:24750",
            "  1. c-1  400",
            "run again with --dir qs",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("not ad events"));
    }

    #[test]
    fn results_from_window_counts() {
        let counts = BTreeMap::from([
            (("c-1".to_owned(), 0), 3),
            (("c-1".to_owned(), 10_000), 4),
            (("c-2".to_owned(), 0), 5),
            (("c-3".to_owned(), 0), 7),
        ]);
        let r = Results::from_counts("topic t".into(), &counts, vec![]);
        assert_eq!((r.views, r.windows), (19, 4));
        assert_eq!(
            r.top_campaigns,
            vec![("c-1".into(), 7), ("c-3".into(), 7), ("c-2".into(), 5)]
        );
    }
}
