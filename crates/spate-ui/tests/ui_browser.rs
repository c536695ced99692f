//! The web UI in a real browser. Headless Chromium loads the UI of a Kafka direct-stream job
//! built in the test; the DOM after the page's JavaScript ran must show real batches in the
//! charts and the batch table, and the batch page must show that batch's offset ranges and
//! output operation. Screenshots go to `target/ui-screenshots/`. The same check on a real
//! `spate quickstart` run is `crates/spate-cli/tests/quickstart_ui_browser.rs`.
//!
//! Skips (with a message) when no Chromium is installed; CI installs Debian's `chromium`
//! through `.ci/setup.d/chromium.sh`.

mod ui_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use spate_testkit::TestBroker;

use ui_support::browser::*;
use ui_support::*;

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
    assert_charts(&dom, 5);
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
    screenshot(&bin, &base, "streaming.png", "1400,1900");

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
    screenshot(&bin, &batch_url, "batch.png", "1400,800");
    println!("screenshots in {}", screenshot_dir().display());

    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();
    job.ctx.stop(true).unwrap();
}
