//! The web UI in a real browser: headless Chromium loads the Streaming page of a running Kafka
//! direct-stream job, and the DOM after the page's JavaScript ran must show real batches in the
//! charts and the batch table; then the batch page must show that batch's offset ranges and
//! output operation. Screenshots go to `target/ui-screenshots/`.
//!
//! Skips (with a message) when no Chromium is installed; CI installs Debian's `chromium`
//! through `.ci/setup.d/chromium.sh`.

mod ui_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_testkit::TestBroker;

use ui_support::*;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=...`), letting
/// the page's timers run for a few seconds of virtual time; returns stdout. Killed after a
/// minute so a hung browser fails the test instead of hanging it.
fn run_chromium(bin: &Path, url: &str, mode: &str, window: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--window-size={window}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(mode)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within a minute on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("chromium output");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number in `attr="N"` on the element with `id="id"` in the dumped DOM.
fn attr_of(dom: &str, id: &str, attr: &str) -> u64 {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let tag_end = at + dom[at..].find('>').expect("end of tag");
    let tag_start = dom[..at].rfind('<').expect("start of tag");
    let tag = &dom[tag_start..tag_end];
    let key = format!("{attr}=\"");
    let v = tag
        .find(&key)
        .map(|i| &tag[i + key.len()..])
        .and_then(|v| v.split('"').next())
        .unwrap_or_else(|| panic!("no {attr} on #{id}: {tag}"));
    v.parse()
        .unwrap_or_else(|_| panic!("bad {attr} on #{id}: {v}"))
}

#[test]
fn streaming_page_and_batch_page_render_real_batches() {
    let Some(bin) = chromium() else {
        eprintln!("SKIPPED ui_browser: no chromium binary on PATH (install Debian's `chromium`)");
        return;
    };
    spate_testkit::init_logging();
    let broker = TestBroker::start();
    // 3 partitions × 200 records, at most 30 offsets per partition per 150 ms batch: several
    // batches with data, so the charts have real points.
    let job = kafka_job(&broker, 3, 200, Duration::from_millis(150), 200);
    let addr = job.ui.local_addr();
    wait_for("600 records", Duration::from_secs(60), || {
        (job.seen.load(Ordering::SeqCst) == 600).then_some(())
    });
    // Keep data flowing while the browser looks, so rates and positions are live.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (stop, bootstrap, topic) =
            (stop.clone(), broker.bootstrap_servers(), job.topic.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for p in 0..3 {
                    produce_to(&bootstrap, &topic, p, 5);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let base = job.ui.url();
    let dom = run_chromium(&bin, &base, "--dump-dom", "1400,1900");
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page's script ran: {dom}"
    );
    for metric in [
        "inputRate",
        "schedulingDelay",
        "processingTime",
        "totalDelay",
    ] {
        let points = attr_of(&dom, &format!("timeline-{metric}"), "data-points");
        assert!(points >= 5, "{metric} timeline has {points} points");
        let values = attr_of(&dom, &format!("histogram-{metric}"), "data-values");
        assert_eq!(values, points, "{metric} histogram counts the same batches");
    }
    assert!(
        dom.matches("class=\"series\"").count() >= 4,
        "four timelines drawn"
    );
    assert!(
        dom.matches("class=\"bar\"").count() >= 4,
        "histogram bars drawn"
    );
    assert!(
        dom.contains(&job.topic),
        "Kafka partitions table lists the topic"
    );
    assert!(dom.contains("ui-kafka-test"), "app name shown");

    // A batch with data, as the REST API sees it, must be a row of the page's table.
    let rows = get(addr, "/api/v1/streaming/batches?status=completed").json();
    let with_data = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["inputSize"].as_u64() == Some(90))
        .unwrap_or_else(|| panic!("a full batch of 3 × 30 records: {rows}"));
    let id = with_data["batchId"].as_u64().unwrap();
    assert!(
        dom.contains(&format!("data-batch-id=\"{id}\""))
            && dom.contains(&format!("/batch?id={id}")),
        "batch {id} is a linked row of the completed table"
    );
    let shot = screenshot_dir().join("streaming.png");
    run_chromium(
        &bin,
        &base,
        &format!("--screenshot={}", shot.display()),
        "1400,1900",
    );
    assert!(std::fs::metadata(&shot).expect("screenshot written").len() > 10_000);

    let batch_url = format!("{base}batch?id={id}");
    let dom = run_chromium(&bin, &batch_url, "--dump-dom", "1400,800");
    assert!(
        dom.contains("data-loaded=\"true\""),
        "batch page script ran: {dom}"
    );
    assert_eq!(
        dom.matches(&format!("<td>{}</td>", job.topic)).count(),
        3,
        "one offset range row per partition"
    );
    assert!(dom.contains("data-input-id=\"kafka_direct-0\""));
    assert!(dom.contains("foreach_batch") && dom.contains(">SUCCEEDED<"));
    let shot = screenshot_dir().join("batch.png");
    run_chromium(
        &bin,
        &batch_url,
        &format!("--screenshot={}", shot.display()),
        "1400,800",
    );
    assert!(std::fs::metadata(&shot).expect("screenshot written").len() > 10_000);
    println!("screenshots in {}", screenshot_dir().display());

    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();
    job.ctx.stop(true).unwrap();
}
