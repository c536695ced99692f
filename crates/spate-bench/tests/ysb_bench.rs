//! `spate bench ysb` end to end on the embedded broker, small: a catch-up run with the checker,
//! its JSON report and its plot.

use clap::Parser;
use spate_bench::ysb::{run, YsbBenchArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: YsbBenchArgs,
}

#[test]
fn a_small_catch_up_run_writes_a_checked_report_and_a_plot() {
    spate_testkit::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ysb.json");
    let cli = Cli::parse_from([
        "ysb",
        "--events",
        "20000",
        "--in-memory",
        "--json",
        json.to_str().unwrap(),
        "--plot-dir",
        dir.path().to_str().unwrap(),
    ]);
    run(cli.args).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let row = &report["results"][0];
    assert_eq!(row["events"], 20000);
    assert_eq!(row["check_passed"], true);
    assert!(row["records_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["ceiling"][0]["records_per_sec"].as_f64().unwrap() > 0.0);
    let svg = std::fs::read_to_string(dir.path().join("ysb-throughput.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("catch-up json"));
}
