//! The authorizer: decides whether a principal connecting from a host may perform an operation
//! on a resource, with the rules of Kafka's `StandardAuthorizer`:
//!
//! - `super.users` may do anything;
//! - the ACLs that apply to a resource are the literal ones naming it, the literal `*` ones
//!   and the prefixed ones whose name is a prefix of it;
//! - of those, an ACL counts when its principal is the client's or `User:*` and its host the
//!   client's IP or `*`; a DENY counts for its own operation (or ALL), an ALLOW also for the
//!   operations it implies (READ, WRITE, DELETE, ALTER imply DESCRIBE; ALTER_CONFIGS implies
//!   DESCRIBE_CONFIGS);
//! - any counting DENY denies, whatever allows; else any counting ALLOW allows; else, when no
//!   ACL at all applies to the resource, `allow.everyone.if.no.acl.found` decides (default
//!   false); else denied.
//!
//! Without `authorizer.class.name` there is no authorizer: everything is allowed and the ACL
//! APIs answer SECURITY_DISABLED, as Kafka does.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::store::AclStore;
use super::types::{
    AclOperation, AclPermissionType, PatternType, ResourceType, WILDCARD, WILDCARD_PRINCIPAL,
};
use crate::error::{BrokerError, Result};

/// The `authorizer.class.name` values that turn the authorizer on: Kafka's KRaft authorizer,
/// and its ZooKeeper-era predecessor (same ACL semantics) so older `server.properties` work.
pub const AUTHORIZER_CLASSES: [&str; 2] = [
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// `authorizer.class.name`, `super.users` and `allow.everyone.if.no.acl.found`, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizerSettings {
    /// `authorizer.class.name`; `None` (Kafka's default, empty) runs without an authorizer.
    pub class_name: Option<String>,
    /// `super.users`: principals (`User:alice`) allowed everything.
    pub super_users: BTreeSet<String>,
    /// `allow.everyone.if.no.acl.found`: what a resource no ACL applies to allows.
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerSettings {
    /// True for the keys this module owns.
    pub fn handles(key: &str) -> bool {
        matches!(
            key,
            "authorizer.class.name" | "super.users" | "allow.everyone.if.no.acl.found"
        )
    }

    /// Sets one key; an authorizer class spate does not implement is an error, not ignored.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let v = value.trim();
        match key {
            "authorizer.class.name" if v.is_empty() => self.class_name = None,
            "authorizer.class.name" => {
                if !AUTHORIZER_CLASSES.contains(&v) {
                    return Err(BrokerError::invalid_config(
                        key,
                        value,
                        format!("unknown authorizer class (supported: {AUTHORIZER_CLASSES:?})"),
                    ));
                }
                self.class_name = Some(v.to_string());
            }
            "super.users" => {
                let mut users = BTreeSet::new();
                for u in v.split(';').map(str::trim).filter(|u| !u.is_empty()) {
                    if !u
                        .split_once(':')
                        .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty())
                    {
                        return Err(BrokerError::invalid_config(
                            key,
                            value,
                            format!("{u:?} is not a principal (expected User:<name>)"),
                        ));
                    }
                    users.insert(u.to_string());
                }
                self.super_users = users;
            }
            "allow.everyone.if.no.acl.found" => {
                self.allow_everyone_if_no_acl_found = v
                    .parse()
                    .map_err(|_| BrokerError::invalid_config(key, value, "not true/false"))?;
            }
            _ => {
                return Err(BrokerError::invalid_config(
                    key,
                    value,
                    "not an authorizer setting",
                ))
            }
        }
        Ok(())
    }

    /// Whether an authorizer is configured.
    pub fn enabled(&self) -> bool {
        self.class_name.is_some()
    }
}

/// The broker's authorizer: its settings and the ACLs it enforces.
#[derive(Debug)]
pub struct Authorizer {
    settings: AuthorizerSettings,
    /// The ACLs (persisted under the meta dir; kept even while no authorizer is configured).
    pub acls: AclStore,
}

/// Who asks, from where.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// `User:<name>`.
    pub principal: &'a str,
    /// The client's IP address as text (`127.0.0.1`).
    pub host: &'a str,
}

impl Authorizer {
    /// Opens the ACL store at `path` (in memory when `None`) under `settings`.
    pub fn open(settings: AuthorizerSettings, path: Option<PathBuf>) -> Result<Self> {
        Ok(Authorizer {
            settings,
            acls: AclStore::open(path)?,
        })
    }

    /// Whether an authorizer is configured (`authorizer.class.name`).
    pub fn enabled(&self) -> bool {
        self.settings.enabled()
    }

    /// Whether `who` may perform `op` on the resource `name` of type `rt`.
    pub fn authorize(
        &self,
        who: Requester<'_>,
        op: AclOperation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled() || self.settings.super_users.contains(who.principal) {
            return true;
        }
        let mut has_resource_acls = false;
        let mut allowed = false;
        for acl in self.acls.read().iter() {
            if !acl.pattern.applies_to(rt, name) {
                continue;
            }
            has_resource_acls = true;
            let e = &acl.entry;
            if !principal_matches(&e.principal, who.principal) || !host_matches(&e.host, who.host) {
                continue;
            }
            match e.permission {
                AclPermissionType::Deny
                    if e.operation == AclOperation::All || e.operation == op =>
                {
                    return false
                }
                AclPermissionType::Allow if e.operation.allow_implies(op) => allowed = true,
                _ => {}
            }
        }
        allowed || (!has_resource_acls && self.settings.allow_everyone_if_no_acl_found)
    }

    /// Whether `who` may perform `op` on some resource of type `rt` (Kafka's
    /// `authorizeByResourceType`, used for idempotent produce: WRITE on any topic): allowed
    /// when a literal name nobody has would be, or when an ALLOW ACL for `op` (or ALL) exists
    /// whose resources are not all covered by a DENY (a literal deny of the same name, a
    /// prefixed deny of a prefix, or a wildcard deny).
    pub fn authorize_any(&self, who: Requester<'_>, op: AclOperation, rt: ResourceType) -> bool {
        if self.authorize(who, op, rt, "hardcode") {
            return true;
        }
        let acls = self.acls.read();
        let counting = acls.iter().filter(|a| {
            a.pattern.resource_type == rt
                && principal_matches(&a.entry.principal, who.principal)
                && host_matches(&a.entry.host, who.host)
                && (a.entry.operation == op || a.entry.operation == AclOperation::All)
        });
        let (mut deny_literal, mut deny_prefixed) = (BTreeSet::new(), BTreeSet::new());
        let mut allows = Vec::new();
        for a in counting {
            let p = &a.pattern;
            match (a.entry.permission, p.pattern_type) {
                (AclPermissionType::Deny, PatternType::Literal) if p.name == WILDCARD => {
                    return false
                }
                (AclPermissionType::Deny, PatternType::Literal) => {
                    deny_literal.insert(p.name.as_str());
                }
                (AclPermissionType::Deny, PatternType::Prefixed) => {
                    deny_prefixed.insert(p.name.as_str());
                }
                (AclPermissionType::Allow, _) => allows.push(p),
                _ => {}
            }
        }
        if allows
            .iter()
            .any(|p| p.pattern_type == PatternType::Literal && p.name == WILDCARD)
        {
            return true;
        }
        allows.iter().any(|p| {
            let literal_denied =
                p.pattern_type == PatternType::Literal && deny_literal.contains(p.name.as_str());
            let prefix_denied = p
                .name
                .char_indices()
                .map(|(i, c)| &p.name[..i + c.len_utf8()])
                .any(|prefix| deny_prefixed.contains(prefix));
            !literal_denied && !prefix_denied
        })
    }

    /// The authorized-operations bitfield (KIP-430; bit `n` for operation code `n`) of `who`
    /// on a resource: every operation the resource type supports that [`authorize`] allows.
    ///
    /// [`authorize`]: Self::authorize
    pub fn authorized_operations(&self, who: Requester<'_>, rt: ResourceType, name: &str) -> i32 {
        rt.supported_operations()
            .iter()
            .filter(|op| self.authorize(who, **op, rt, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

fn principal_matches(acl_principal: &str, principal: &str) -> bool {
    acl_principal == principal || acl_principal == WILDCARD_PRINCIPAL
}

fn host_matches(acl_host: &str, host: &str) -> bool {
    acl_host == WILDCARD || acl_host == host
}
