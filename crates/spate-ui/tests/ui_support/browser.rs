//! Headless Chromium for the browser tests: finding the binary, running it on a page after the
//! page's JavaScript ran (`--dump-dom` or `--screenshot`), and reading numbers the scripts
//! leave in the DOM. Chromium is killed after a minute so a hung browser fails a test instead
//! of hanging it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Chromium binary on `PATH`, if any.
pub fn chromium() -> Option<PathBuf> {
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

/// `target/ui-screenshots/` (or under `CARGO_TARGET_DIR`), created if missing.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=...`), letting
/// the page's timers run for a few seconds of virtual time; returns stdout.
pub fn run_chromium(bin: &Path, url: &str, mode: &str, window: &str) -> String {
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
            let _ = child.wait();
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

/// Screenshots `url` into `target/ui-screenshots/<name>` and checks that an image was written
/// (a blank page compresses to a few kilobytes).
pub fn screenshot(bin: &Path, url: &str, name: &str, window: &str) -> PathBuf {
    let shot = screenshot_dir().join(name);
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        bin,
        url,
        &format!("--screenshot={}", shot.display()),
        window,
    );
    let len = std::fs::metadata(&shot).expect("screenshot written").len();
    assert!(len > 10_000, "{} is only {len} bytes", shot.display());
    shot
}

/// The number in `attr="N"` on the element with `id="id"` in the dumped DOM.
pub fn attr_of(dom: &str, id: &str, attr: &str) -> u64 {
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

/// The `<tr>` rows inside the element with `id="id"` (a `<tbody>`), as HTML.
pub fn rows_of<'a>(dom: &'a str, id: &str) -> Vec<&'a str> {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let body = &dom[at..];
    let end = body.find("</tbody>").unwrap_or(body.len());
    body[..end]
        .split("<tr")
        .skip(1)
        .map(|r| r.split("</tr>").next().unwrap_or(r))
        .collect()
}

/// The text of each `<td>` of a row, tags inside the cells removed.
pub fn cells(row: &str) -> Vec<String> {
    row.split("<td")
        .skip(1)
        .map(|c| {
            let c = c.split("</td>").next().unwrap_or(c);
            let mut text = String::new();
            let mut in_tag = true; // the rest of the opening `<td ...>`
            for ch in c.chars() {
                match ch {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    _ if !in_tag => text.push(ch),
                    _ => {}
                }
            }
            text
        })
        .collect()
}

/// The Streaming page's four timelines each have at least `min_points` points, each histogram
/// counts the same batches as its timeline, and all four are drawn.
pub fn assert_charts(dom: &str, min_points: u64) {
    for metric in [
        "inputRate",
        "schedulingDelay",
        "processingTime",
        "totalDelay",
    ] {
        let points = attr_of(dom, &format!("timeline-{metric}"), "data-points");
        assert!(
            points >= min_points,
            "{metric} timeline has {points} points"
        );
        let values = attr_of(dom, &format!("histogram-{metric}"), "data-values");
        assert_eq!(values, points, "{metric} histogram counts the same batches");
    }
    assert!(
        dom.matches("class=\"series\"").count() >= 4,
        "four timelines drawn"
    );
}
