//! `spate users` against a broker with a SASL_PLAINTEXT listener and a PLAINTEXT admin listener:
//! add a SCRAM user (salted by the CLI), list it, log in with it through `spate produce -X …` and
//! `spate consume --command-config FILE`, delete it, and see the login refused.

mod common;

use std::net::TcpListener;

use common::{spate, spate_stdin};
use spate_broker::BrokerConfig;
use spate_testkit::{random_topic, TestBroker};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn users_round_trip_and_secured_clients() {
    let admin_port = free_port();
    let mut config = BrokerConfig::default();
    config
        .set(
            "listeners",
            &format!("SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:{admin_port}"),
        )
        .unwrap();
    config
        .set("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512")
        .unwrap();
    let broker = TestBroker::start_with(config);
    let admin = format!("127.0.0.1:{admin_port}");
    let secure = broker.bootstrap_servers();
    let users =
        |args: &[&str]| spate(&[&["users"][..], args, &["--bootstrap-server", &admin]].concat());

    let added = users(&[
        "add",
        "alice",
        "--password",
        "alice-secret",
        "--mechanism",
        "SCRAM-SHA-256",
        "--mechanism",
        "SCRAM-SHA-512",
        "--iterations",
        "8192",
    ])
    .success("users add");
    assert!(
        added
            .stdout
            .contains("user alice: SCRAM-SHA-256, SCRAM-SHA-512"),
        "{}",
        added.stdout
    );
    let listed = users(&["list"]).success("users list");
    assert!(
        listed.stdout.contains(
            "SCRAM credential configs for user-principal 'alice' are \
             SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=8192"
        ),
        "{}",
        listed.stdout
    );
    assert!(!listed.stdout.contains("alice-secret"));
    users(&["add", "bob", "--password", "x", "--iterations", "100"]).failure(
        "too few iterations",
        "--iterations must be between 4096 and 16384",
    );

    // Produce with -X, consume with --command-config.
    let topic = random_topic("cli_users");
    let sasl_x = [
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanism=SCRAM-SHA-512",
        "-X",
        "sasl.username=alice",
        "-X",
        "sasl.password=alice-secret",
    ];
    spate_stdin(
        &[
            &["produce", &topic, "--bootstrap-server", &secure][..],
            &sasl_x,
        ]
        .concat(),
        "a\nb\nc\n",
    )
    .success("produce over SASL");
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("client.properties");
    std::fs::write(
        &props,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\n\
         sasl.username=alice\nsasl.password=alice-secret\n",
    )
    .unwrap();
    let consumed = spate(&[
        "consume",
        &topic,
        "--from-beginning",
        "--max-messages",
        "3",
        "--timeout-ms",
        "10000",
        "--bootstrap-server",
        &secure,
        "--command-config",
        props.to_str().unwrap(),
    ])
    .success("consume over SASL");
    assert_eq!(consumed.stdout.lines().collect::<Vec<_>>(), ["a", "b", "c"]);

    // Deleted: listed no more, and the login is refused.
    users(&["delete", "alice"]).success("users delete");
    let listed = users(&["list"]).success("users list after delete");
    assert!(!listed.stdout.contains("alice"), "{}", listed.stdout);
    users(&["delete", "alice", "--mechanism", "SCRAM-SHA-512"])
        .failure("delete twice", "does not exist");
    spate(
        &[
            &[
                "topics",
                "list",
                "--bootstrap-server",
                &secure,
                "--request-timeout-ms",
                "3000",
            ][..],
            &sasl_x,
        ]
        .concat(),
    )
    .failure("login after delete", "could not reach broker");
    println!("spate users: added alice (2 mechanisms, 8192 iterations), 3 records produced with -X and consumed with --command-config over SASL_PLAINTEXT, deleted, login refused");
}
