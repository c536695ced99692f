//! `spate users` against a broker with a SASL_PLAINTEXT listener and a PLAINTEXT admin listener:
//! add a SCRAM user (salted by the CLI), list it, log in with it through `spate produce -X …` and
//! `spate consume --command-config FILE`, delete it, and see the login refused. Then the admin
//! commands over SASL_SSL: the first user made on the PLAINTEXT listener manages the others over
//! TLS with `--command-config`; a wrong password, an untrusted CA, an expired broker certificate
//! and a plaintext client on the TLS port are each refused with an error that says why.

mod common;

use common::{spate, spate_stdin};
use spate_broker::BrokerConfig;
use spate_testkit::tls::Pki;
use spate_testkit::{free_port, random_topic, TestBroker};

#[test]
fn users_round_trip_and_secured_clients() {
    let (mut config, admin_port) = common::sasl_and_admin_listeners();
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

/// A broker whose first listener is SASL_SSL (SCRAM) with `keystore` from `pki`, and a PLAINTEXT
/// admin listener on `admin_port`.
fn sasl_ssl_broker(pki: &Pki, keystore: &str, admin_port: u16) -> TestBroker {
    let mut config = BrokerConfig::default();
    config
        .set(
            "listeners",
            &format!("SASL_SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:{admin_port}"),
        )
        .unwrap();
    config
        .set("sasl.enabled.mechanisms", "SCRAM-SHA-512")
        .unwrap();
    config.set("ssl.keystore.type", "PEM").unwrap();
    config
        .set("ssl.keystore.location", &pki.location(keystore))
        .unwrap();
    TestBroker::start_with(config)
}

#[test]
fn admin_commands_over_sasl_ssl_with_a_command_config() {
    let pki = Pki::new();
    let admin_port = free_port();
    let broker = sasl_ssl_broker(&pki, "server.pem", admin_port);
    let plaintext = format!("127.0.0.1:{admin_port}");
    let secure = broker.bootstrap_servers();
    spate(&[
        "users",
        "add",
        "root",
        "--password",
        "root-secret",
        "--bootstrap-server",
        &plaintext,
    ])
    .success("the first user, over PLAINTEXT");

    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("admin.properties");
    let write_props = |password: &str, ca: &str| {
        std::fs::write(
            &props,
            format!(
                "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
                 sasl.username=root\nsasl.password={password}\nssl.ca.location={ca}\n"
            ),
        )
        .unwrap();
    };
    let over_tls = |args: &[&str]| {
        let props = props.to_str().unwrap();
        let tail = ["--bootstrap-server", &secure, "--command-config", props];
        spate(&[args, &tail[..]].concat())
    };

    write_props("root-secret", &pki.location("ca.pem"));
    over_tls(&["users", "add", "carol", "--password", "carol-secret"])
        .success("users add over SASL_SSL");
    let listed = over_tls(&["users", "list"]).success("users list over SASL_SSL");
    assert!(
        listed.stdout.contains("'carol'") && listed.stdout.contains("'root'"),
        "{}",
        listed.stdout
    );
    assert!(!listed.stdout.contains("secret"), "{}", listed.stdout);
    over_tls(&["users", "delete", "carol"]).success("users delete over SASL_SSL");

    // -X overrides the file, as librdkafka's clients take it.
    let wrong = over_tls(&["users", "list", "-X", "sasl.password=not-it"])
        .failure("a wrong password", "authentication failed");
    assert!(!wrong.stderr.contains("not-it"), "{}", wrong.stderr);
    // Trusting another CA (the client certificate is not a CA): the handshake fails.
    write_props("root-secret", &pki.location("client.crt"));
    over_tls(&["users", "list"]).failure("an untrusted broker certificate", "TLS handshake");
    // A PLAINTEXT client on the TLS port gets no answer it can read.
    spate(&[
        "users",
        "list",
        "--bootstrap-server",
        &secure,
        "--request-timeout-ms",
        "3000",
    ])
    .failure("plaintext on the TLS port", "response");

    // A broker serving an expired certificate is refused by name.
    let expired_port = free_port();
    let expired = sasl_ssl_broker(&pki, "expired-server.pem", expired_port);
    write_props("root-secret", &pki.location("ca.pem"));
    let props_path = props.to_str().unwrap().to_owned();
    spate(&[
        "users",
        "list",
        "--bootstrap-server",
        &expired.bootstrap_servers(),
        "--command-config",
        &props_path,
    ])
    .failure("an expired broker certificate", "certificate expired");
    println!(
        "spate users over SASL_SSL: root made over PLAINTEXT, carol added, listed and deleted \
         over SASL_SSL; wrong password, untrusted CA, plaintext client and expired certificate \
         refused"
    );
}
