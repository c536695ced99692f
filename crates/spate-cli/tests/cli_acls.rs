//! `spate acls add|list|remove` against a broker with the authorizer on: ACLs added with the
//! `kafka-acls.sh` flags are listed (all, by MATCH, by principal) and enforced on a SASL user
//! producing with `spate produce`, then removed; over SASL with `--command-config` a user
//! without DESCRIBE on the cluster is refused, and a wrong password fails authentication.

mod common;

use common::{spate, spate_stdin};
use spate_testkit::{random_topic, TestBroker};

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_alice=\"alice-pw\";";

#[test]
fn acls_add_list_enforce_remove() {
    let (mut config, admin_port) = common::sasl_and_admin_listeners();
    config.set("sasl.enabled.mechanisms", "PLAIN").unwrap();
    config
        .set("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS)
        .unwrap();
    config
        .set(
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        )
        .unwrap();
    config.set("super.users", "User:ANONYMOUS").unwrap();
    let broker = TestBroker::start_with(config);
    let admin = format!("127.0.0.1:{admin_port}");
    let topic = random_topic("cliacl");
    broker.create_topic(&topic, 1);
    let acls =
        |args: &[&str]| spate(&[&["acls"][..], args, &["--bootstrap-server", &admin]].concat());

    let added = acls(&[
        "add",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Write",
        "--operation",
        "Describe",
        "--topic",
        &topic[..4],
        "--resource-pattern-type",
        "prefixed",
    ])
    .success("acls add");
    assert!(
        added
            .stdout
            .contains("operation=WRITE, permissionType=ALLOW"),
        "{}",
        added.stdout
    );
    acls(&["add", "--deny-principal", "User:mallory", "--group", "g1"]).success("acls add deny");

    let all = acls(&["list"]).success("acls list");
    assert!(
        all.stdout.contains("patternType=PREFIXED"),
        "{}",
        all.stdout
    );
    assert!(
        all.stdout
            .contains("principal=User:mallory, host=*, operation=ALL, permissionType=DENY"),
        "{}",
        all.stdout
    );
    let matched = acls(&[
        "list",
        "--topic",
        &topic,
        "--resource-pattern-type",
        "match",
    ])
    .success("acls list match");
    assert!(matched.stdout.contains("User:alice"), "{}", matched.stdout);
    assert!(!matched.stdout.contains("mallory"), "{}", matched.stdout);
    let by_principal = acls(&["list", "--principal", "User:mallory"]).success("list principal");
    assert!(
        by_principal.stdout.contains("name=g1"),
        "{}",
        by_principal.stdout
    );
    assert!(
        !by_principal.stdout.contains("alice"),
        "{}",
        by_principal.stdout
    );

    // Enforced: alice may write.
    let sasl = [
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanism=PLAIN",
        "-X",
        "sasl.username=alice",
        "-X",
        "sasl.password=alice-pw",
    ];
    let bootstrap = broker.bootstrap_servers();
    let produce_args = [
        &["produce", &topic, "--bootstrap-server", &bootstrap][..],
        &sasl,
    ]
    .concat();
    spate_stdin(&produce_args, "a\n").success("produce with WRITE");
    let leo = || {
        broker
            .state()
            .topics
            .partition(&topic, 0)
            .unwrap()
            .log()
            .log_end_offset()
    };
    assert_eq!(leo(), 1);

    let removed = acls(&[
        "remove",
        "--topic",
        &topic[..4],
        "--resource-pattern-type",
        "prefixed",
    ])
    .success("acls remove");
    assert!(
        removed.stdout.contains("Removed 2 ACLs"),
        "{}",
        removed.stdout
    );
    let out = spate_stdin(&produce_args, "b\n");
    assert!(
        !out.status.success(),
        "produce after remove must fail: {}",
        out.stdout
    );
    assert_eq!(leo(), 1, "nothing written without WRITE");

    // Over SASL with --command-config: alice logs in, but listing ACLs needs DESCRIBE on the
    // cluster, which only the super user has.
    let props = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        props.path(),
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
         sasl.username=alice\nsasl.password=alice-pw\n",
    )
    .unwrap();
    let over_sasl = [
        "acls",
        "list",
        "--bootstrap-server",
        &bootstrap,
        "--command-config",
        props.path().to_str().unwrap(),
    ];
    spate(&over_sasl).failure("alice lists ACLs", "ClusterAuthorizationFailed");
    let wrong = [&over_sasl[..], &["-X", "sasl.password=nope"]].concat();
    spate(&wrong).failure("a wrong password", "authentication failed");
    println!("spate acls: added 3, listed, enforced, removed 2");
}
