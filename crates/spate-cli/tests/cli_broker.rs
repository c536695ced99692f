//! `spate broker` as a process: it prints the bound address, answers the Kafka protocol there,
//! keeps topics in its data dir, and exits cleanly (status 0) on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// ApiVersions v0 (header v1, client id "cli-test"), correlation id 42.
fn api_versions_v0() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&42i32.to_be_bytes());
    body.extend_from_slice(&8i16.to_be_bytes());
    body.extend_from_slice(b"cli-test");
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

#[cfg(unix)]
#[test]
fn broker_serves_and_stops_on_sigterm() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("spate-cli-broker-{}-{nanos}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args([
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "num.partitions=2",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("spate broker listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();

    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&api_versions_v0()).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    assert_eq!(i32::from_be_bytes(resp[0..4].try_into().unwrap()), 42);
    assert_eq!(
        i16::from_be_bytes(resp[4..6].try_into().unwrap()),
        0,
        "error code"
    );
    let api_count = i32::from_be_bytes(resp[6..10].try_into().unwrap());
    assert!(api_count >= 10, "{api_count} APIs advertised");
    drop(s);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "broker exited with {exit}");
    assert!(dir.is_dir(), "the disk log created its data dir");
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM while the broker is still recovering a large log: the process exits 0 (not by the
/// signal), it never listened, and the log it leaves opens again with every batch. The signal
/// is sent as soon as the broker says recovery has started; on a machine fast enough to finish
/// recovering first, the log is doubled and the run repeated.
#[cfg(unix)]
#[test]
fn sigterm_during_recovery_exits_cleanly() {
    const PARTITIONS: i32 = 8;
    let mut batches: i64 = 60_000;
    for attempt in 1..=4 {
        match sigterm_during_recovery(PARTITIONS, batches) {
            Ok(()) => return,
            Err(out) => println!(
                "attempt {attempt}: recovery of {PARTITIONS} x {batches} batches ended before \
                 the signal ({out:?}); doubling the log"
            ),
        }
        batches *= 2;
    }
    panic!("recovery always ended before the signal, up to {PARTITIONS} x {batches} batches");
}

/// One try: `Err(stdout)` when the broker was listening before the signal reached it.
#[cfg(unix)]
fn sigterm_during_recovery(partitions: i32, batches: i64) -> Result<(), String> {
    use spate_testkit::logs::write_unclean_log;
    use spate_testkit::{random_topic, TestBroker};

    let dir = tempfile_dir("recovery");
    let topic = random_topic("recovery");
    {
        let config = spate_broker::BrokerConfig::default().data_dir(&dir);
        let broker = TestBroker::start_with(config);
        broker.create_topic(&topic, partitions);
        broker.shutdown();
    }
    write_unclean_log(&dir, &topic, partitions, batches);

    let spawn = |log: &str| {
        Command::new(env!("CARGO_BIN_EXE_spate"))
            .args(["broker", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = spawn("info");
    let started = std::time::Instant::now();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "the broker ended before recovering: {seen}");
        seen.push_str(&line);
        if line.contains("recovering storage") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = started.elapsed();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = stderr.read_to_string(&mut seen);
    let exit = child.wait().unwrap();
    println!(
        "SIGTERM {signalled:?} after start, into recovering {partitions} x {batches} batches: \
         {exit} after {:?}, stdout {out:?}",
        started.elapsed()
    );
    assert!(exit.success(), "broker exited with {exit}; stderr {seen}");
    if out.contains("listening") {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(out);
    }

    // The log is intact: a full start serves every batch.
    let mut child = spawn("warn");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("spate broker listening on "), "{first:?}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let broker = TestBroker::start_with(spate_broker::BrokerConfig::default().data_dir(&dir));
    for p in 0..partitions {
        let partition = broker
            .state()
            .topics
            .get(&topic)
            .unwrap()
            .partition(p)
            .unwrap();
        assert_eq!(partition.log().log_end_offset(), batches);
    }
    broker.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir(prefix: &str) -> std::path::PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("spate-cli-{prefix}-{}-{nanos}", std::process::id()))
}
