//! The client commands fail fast and say why: a broker nobody listens on, a bad `-X`, a topic that
//! does not exist.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{spate, spate_stdin};
use spate_testkit::{random_topic, TestBroker};

/// A loopback address with (almost certainly) nothing listening: a port we bound and released.
fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    addr.to_string()
}

#[test]
fn unreachable_broker_is_reported_quickly() {
    let addr = dead_address();
    let expected = format!("could not reach broker at {addr} within 2s");
    let common = [
        "--bootstrap-server",
        addr.as_str(),
        "--request-timeout-ms",
        "2000",
    ];
    let runs = [
        (
            "topics list",
            spate(&[&["topics", "list"][..], &common].concat()),
        ),
        (
            "topics create",
            spate(&[&["topics", "create", "t"][..], &common].concat()),
        ),
        (
            "produce",
            spate_stdin(&[&["produce", "t"][..], &common].concat(), "a\nb\n"),
        ),
        (
            "consume",
            spate(&[&["consume", "t", "--from-beginning"][..], &common].concat()),
        ),
    ];
    for (what, run) in runs {
        let run = run.failure(what, &expected);
        assert!(
            run.elapsed < Duration::from_secs(10),
            "{what} took {:?} to give up",
            run.elapsed
        );
    }
}

#[test]
fn bad_x_settings_are_named() {
    // librdkafka rejects the key before any connection is tried, so no broker is needed.
    let addr = dead_address();
    spate(&[
        "topics",
        "list",
        "--bootstrap-server",
        &addr,
        "-X",
        "no.such.property=1",
    ])
    .failure("unknown -X key", "invalid -X setting no.such.property=1");
    spate(&[
        "consume",
        "t",
        "--bootstrap-server",
        &addr,
        "-X",
        "fetch.wait.max.ms=soon",
    ])
    .failure("bad -X value", "fetch.wait.max.ms=soon");
    spate(&[
        "produce",
        "t",
        "--bootstrap-server",
        &addr,
        "-X",
        "linger.ms",
    ])
    .failure("-X without =", "expected KEY=VALUE");
}

#[test]
fn missing_topic_is_reported() {
    let broker = TestBroker::start();
    let bs = broker.bootstrap_servers();
    let topic = random_topic("cli_missing");
    spate(&[
        "consume",
        &topic,
        "--bootstrap-server",
        &bs,
        "--from-beginning",
        "--timeout-ms",
        "1000",
    ])
    .failure("consume of a missing topic", "does not exist");
    spate(&["topics", "describe", &topic, "--bootstrap-server", &bs])
        .failure("describe of a missing topic", "does not exist");
}
