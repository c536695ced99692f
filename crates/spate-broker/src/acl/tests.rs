//! Decision tables of the authorizer (resource × pattern × permission × host × principal) and
//! of the binding filters, against the rules of Kafka's `StandardAuthorizer` and
//! `AclBindingFilter`.

use super::authorizer::{Authorizer, AuthorizerSettings, Requester};
use super::filter::AclBindingFilter;
use super::types::*;
use AclOperation::*;
use AclPermissionType::{Allow, Deny};
use PatternType::{Literal, Prefixed};
use ResourceType::{Cluster, Group, Topic, TransactionalId};

fn acl(
    rt: ResourceType,
    name: &str,
    pt: PatternType,
    principal: &str,
    host: &str,
    op: AclOperation,
    perm: AclPermissionType,
) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: rt,
            name: name.into(),
            pattern_type: pt,
        },
        entry: AccessControlEntry {
            principal: principal.into(),
            host: host.into(),
            operation: op,
            permission: perm,
        },
    }
}

fn authorizer(acls: Vec<AclBinding>, allow_everyone: bool) -> Authorizer {
    let mut s = AuthorizerSettings::default();
    s.set(
        "authorizer.class.name",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    )
    .unwrap();
    s.set("super.users", "User:admin; User:ops").unwrap();
    s.allow_everyone_if_no_acl_found = allow_everyone;
    let a = Authorizer::open(s, None).unwrap();
    a.acls.update(|set| set.extend(acls)).unwrap();
    a
}

const ALICE: Requester<'static> = Requester {
    principal: "User:alice",
    host: "10.0.0.1",
};

fn who(principal: &'static str, host: &'static str) -> Requester<'static> {
    Requester { principal, host }
}

#[test]
fn decision_table() {
    let a = authorizer(
        vec![
            acl(Topic, "pay", Prefixed, "User:alice", "*", Write, Allow),
            acl(Topic, "payroll", Literal, "User:alice", "*", Write, Deny),
            acl(Topic, "logs", Literal, "User:*", "10.0.0.1", Read, Allow),
            acl(Topic, "*", Literal, "User:bob", "*", Describe, Allow),
            acl(Topic, "secret", Literal, "User:bob", "*", All, Deny),
            acl(Group, "g-", Prefixed, "User:alice", "*", Read, Allow),
            acl(
                TransactionalId,
                "tx",
                Literal,
                "User:alice",
                "*",
                Write,
                Allow,
            ),
            acl(
                Cluster,
                CLUSTER_NAME,
                Literal,
                "User:alice",
                "*",
                AlterConfigs,
                Allow,
            ),
            acl(Topic, "ro", Literal, "User:alice", "*", Read, Deny),
        ],
        false,
    );
    #[rustfmt::skip]
    let table: &[(Requester<'_>, AclOperation, ResourceType, &str, bool, &str)] = &[
        (ALICE, Write, Topic, "payments", true, "prefixed allow"),
        (ALICE, Write, Topic, "pay", true, "prefix equal to the name"),
        (ALICE, Write, Topic, "payroll", false, "literal deny wins over prefixed allow"),
        (ALICE, Describe, Topic, "payments", true, "WRITE implies DESCRIBE"),
        (ALICE, Describe, Topic, "payroll", true, "a WRITE deny does not deny DESCRIBE"),
        (ALICE, Read, Topic, "payments", false, "WRITE does not imply READ"),
        (ALICE, Write, Topic, "pa", false, "shorter than the prefix"),
        (ALICE, Read, Topic, "logs", true, "wildcard principal, matching host"),
        (who("User:alice", "10.0.0.2"), Read, Topic, "logs", false, "other host"),
        (who("User:carol", "10.0.0.1"), Read, Topic, "logs", true, "User:* is everyone"),
        (who("User:bob", "1.2.3.4"), Describe, Topic, "anything", true, "wildcard resource"),
        (who("User:bob", "1.2.3.4"), Describe, Topic, "secret", false, "ALL deny beats wildcard allow"),
        (who("User:bob", "1.2.3.4"), Read, Topic, "anything", false, "DESCRIBE implies nothing"),
        (ALICE, Read, Group, "g-1", true, "prefixed group"),
        (ALICE, Describe, Group, "g-1", true, "READ implies DESCRIBE"),
        (ALICE, Delete, Group, "g-1", false, "READ does not imply DELETE"),
        (ALICE, Read, Group, "h-1", false, "no ACL, allow.everyone false"),
        (ALICE, Write, TransactionalId, "tx", true, "transactional id"),
        (ALICE, Describe, TransactionalId, "tx", true, "WRITE implies DESCRIBE"),
        (ALICE, Write, TransactionalId, "tx2", false, "literal is exact"),
        (ALICE, DescribeConfigs, Cluster, CLUSTER_NAME, true, "ALTER_CONFIGS implies DESCRIBE_CONFIGS"),
        (ALICE, Describe, Cluster, CLUSTER_NAME, false, "ALTER_CONFIGS does not imply DESCRIBE"),
        (ALICE, Describe, Topic, "ro", false, "READ deny only; no allow"),
        (who("User:admin", "1.1.1.1"), Read, Topic, "secret", true, "super user"),
        (who("User:ops", "1.1.1.1"), Alter, Cluster, CLUSTER_NAME, true, "second super user"),
        (who("User:ANONYMOUS", "1.1.1.1"), Describe, Topic, "payments", false, "anonymous"),
    ];
    for (w, op, rt, name, want, why) in table {
        assert_eq!(
            a.authorize(*w, *op, *rt, name),
            *want,
            "{why}: {w:?} {op} {rt} {name}"
        );
    }
}

#[test]
fn allow_everyone_applies_only_where_no_acl_applies() {
    let acls = vec![acl(Topic, "t", Literal, "User:alice", "*", Read, Allow)];
    let open = authorizer(acls.clone(), true);
    let closed = authorizer(acls, false);
    let bob = who("User:bob", "1.1.1.1");
    assert!(open.authorize(bob, Write, Topic, "other"));
    assert!(!closed.authorize(bob, Write, Topic, "other"));
    // An ACL applies to `t`, so allow.everyone no longer helps bob there.
    assert!(!open.authorize(bob, Read, Topic, "t"));
    assert!(open.authorize(ALICE, Read, Topic, "t"));
}

#[test]
fn without_authorizer_everything_is_allowed() {
    let a = Authorizer::open(AuthorizerSettings::default(), None).unwrap();
    a.acls
        .update(|s| s.insert(acl(Topic, "*", Literal, "User:*", "*", All, Deny)))
        .unwrap();
    assert!(!a.enabled());
    assert!(a.authorize(ALICE, Write, Topic, "t"));
}

#[test]
fn authorize_any_follows_kafka() {
    let a = authorizer(
        vec![
            acl(Topic, "a", Prefixed, "User:alice", "*", Write, Allow),
            acl(Topic, "a", Prefixed, "User:bob", "*", Write, Allow),
            acl(Topic, "a", Prefixed, "User:bob", "*", Write, Deny),
            acl(Topic, "abc", Literal, "User:carol", "*", Write, Allow),
            acl(Topic, "ab", Prefixed, "User:carol", "*", Write, Deny),
        ],
        false,
    );
    assert!(a.authorize_any(ALICE, Write, Topic));
    assert!(
        !a.authorize_any(who("User:bob", "h"), Write, Topic),
        "same-prefix deny"
    );
    assert!(
        !a.authorize_any(who("User:carol", "h"), Write, Topic),
        "dominating prefix deny"
    );
    assert!(
        !a.authorize_any(who("User:dave", "h"), Write, Topic),
        "no ACL"
    );
    assert!(
        a.authorize_any(who("User:admin", "h"), Write, Topic),
        "super user"
    );
}

#[test]
fn authorized_operations_bitfield() {
    let a = authorizer(
        vec![acl(Topic, "t", Literal, "User:alice", "*", Write, Allow)],
        false,
    );
    // WRITE (4) and the DESCRIBE (8) it implies.
    assert_eq!(
        a.authorized_operations(ALICE, Topic, "t"),
        (1 << 4) | (1 << 8)
    );
    assert_eq!(a.authorized_operations(ALICE, Topic, "u"), 0);
    let admin = who("User:admin", "h");
    assert_eq!(a.authorized_operations(admin, Topic, "t"), 0b1101_1111_1000);
}

#[test]
fn filters_match_like_kafka() {
    let lit = acl(Topic, "foo", Literal, "User:a", "*", Read, Allow);
    let wild = acl(Topic, "*", Literal, "User:a", "*", Read, Allow);
    let pre = acl(Topic, "fo", Prefixed, "User:a", "h1", Write, Deny);
    let grp = acl(Group, "foo", Literal, "User:b", "*", Read, Allow);
    let all = [&lit, &wild, &pre, &grp];
    let sel = |f: &AclBindingFilter| -> Vec<usize> {
        (0..all.len()).filter(|i| f.matches(all[*i])).collect()
    };
    let base = AclBindingFilter::any();
    assert_eq!(sel(&base), vec![0, 1, 2, 3]);
    let f = |rt, name: Option<&str>, pt| AclBindingFilter {
        resource_type: rt,
        name: name.map(Into::into),
        pattern_type: pt,
        ..AclBindingFilter::any()
    };
    assert_eq!(
        sel(&f(Topic, Some("foo"), PatternType::Match)),
        vec![0, 1, 2]
    );
    assert_eq!(
        sel(&f(ResourceType::Any, Some("foo"), PatternType::Any)),
        vec![0, 3]
    );
    assert_eq!(sel(&f(Topic, Some("foo"), Literal)), vec![0]);
    assert_eq!(sel(&f(Topic, Some("fo"), Prefixed)), vec![2]);
    assert_eq!(sel(&f(Topic, None, Prefixed)), vec![2]);
    assert_eq!(sel(&f(Topic, Some("bar"), PatternType::Match)), vec![1]);
    let entry = AclBindingFilter {
        principal: Some("User:a".into()),
        host: Some("h1".into()),
        operation: Write,
        permission: Deny,
        ..AclBindingFilter::any()
    };
    assert_eq!(sel(&entry), vec![2]);
    assert!(f(ResourceType::Unknown, None, Literal).validate().is_err());
}

#[test]
fn creations_are_validated_like_kafka() {
    let ok = acl(Topic, "t", Literal, "User:a", "*", Read, Allow);
    assert!(ok.validate().is_ok());
    let mut bad = vec![];
    let mut b = ok.clone();
    b.pattern.pattern_type = PatternType::Match;
    bad.push(b);
    let mut b = ok.clone();
    b.pattern.resource_type = ResourceType::Any;
    bad.push(b);
    let mut b = ok.clone();
    b.entry.operation = AclOperation::Any;
    bad.push(b);
    let mut b = ok.clone();
    b.entry.permission = AclPermissionType::Any;
    bad.push(b);
    let mut b = ok.clone();
    b.pattern.name.clear();
    bad.push(b);
    let mut b = ok.clone();
    b.entry.principal = "alice".into();
    bad.push(b);
    bad.push(acl(Cluster, "other", Literal, "User:a", "*", Alter, Allow));
    for b in bad {
        assert!(b.validate().is_err(), "{b:?}");
    }
}

#[test]
fn store_survives_reopen_and_refuses_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acls.json");
    let store = super::store::AclStore::open(Some(path.clone())).unwrap();
    let b = acl(Topic, "t", Prefixed, "User:a", "*", Write, Allow);
    store.update(|s| s.insert(b.clone())).unwrap();
    let again = super::store::AclStore::open(Some(path.clone())).unwrap();
    assert_eq!(again.all(), vec![b]);
    std::fs::write(&path, b"{\"version\":1,\"acls\":[{").unwrap();
    let err = super::store::AclStore::open(Some(path.clone()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("acls.json"), "{err}");
}

#[test]
fn settings_refuse_unknown_classes() {
    let mut s = AuthorizerSettings::default();
    let err = s
        .set("authorizer.class.name", "com.example.MyAuthorizer")
        .unwrap_err();
    assert!(err.to_string().contains("authorizer.class.name"), "{err}");
    assert!(s.set("super.users", "alice").is_err());
    s.set(
        "authorizer.class.name",
        "kafka.security.authorizer.AclAuthorizer",
    )
    .unwrap();
    assert!(s.enabled());
    s.set("authorizer.class.name", "").unwrap();
    assert!(!s.enabled());
}
