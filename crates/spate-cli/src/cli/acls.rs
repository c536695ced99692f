//! `spate acls add|list|remove`: a broker's ACLs, as `kafka-acls.sh --add|--list|--remove`
//! manages them, with its flags (`--allow-principal`, `--deny-principal`, `--allow-host`,
//! `--deny-host`, `--operation`, `--topic`, `--group`, `--transactional-id`, `--cluster`,
//! `--resource-pattern-type`, `--principal`). It sends CreateAcls, DescribeAcls and DeleteAcls
//! over [`Connection`] (the Rust librdkafka wrapper has no ACL admin calls), with the client's
//! security settings (`--command-config FILE`, `-X`: TLS, SASL PLAIN/SCRAM): log in as a
//! principal with ALTER (add, remove) or DESCRIBE (list) on the cluster — a super user, or
//! `User:ANONYMOUS` on a loopback PLAINTEXT listener when it is in `super.users`.

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use spate_broker::acl::types::{CLUSTER_NAME, WILDCARD};
use spate_broker::acl::{AclOperation, AclPermissionType, PatternType, ResourceType};
use spate_client::config::ClientArgs;

use super::raw_admin::Connection;

/// `spate acls`.
#[derive(Args, Debug)]
pub struct AclsArgs {
    #[command(subcommand)]
    action: AclsAction,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum AclsAction {
    /// Add ACLs: every principal × host × operation on every resource given.
    Add(AclSpec),
    /// List ACLs (all, or those on the resources given / of `--principal`).
    List(AclSpec),
    /// Remove ACLs matching the flags (all ACLs of a resource when only the resource is given).
    Remove(AclSpec),
}

/// The flags of `kafka-acls.sh` that name ACLs.
#[derive(Args, Debug)]
pub struct AclSpec {
    /// `--bootstrap-server`, `--command-config`, `-X`, `--request-timeout-ms`.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Principals to allow (`User:alice`), repeatable.
    #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
    pub allow_principals: Vec<String>,
    /// Principals to deny, repeatable.
    #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
    pub deny_principals: Vec<String>,
    /// Hosts the allow principals may connect from (default: `*`, every host).
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Hosts the deny principals are denied from (default: `*`).
    #[arg(long = "deny-host", value_name = "HOST")]
    pub deny_hosts: Vec<String>,
    /// Operations (Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, All), repeatable; default All.
    #[arg(long = "operation", value_name = "OPERATION")]
    pub operations: Vec<String>,
    /// Topics, repeatable (`*` for all topics).
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Consumer groups, repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Transactional ids, repeatable.
    #[arg(long = "transactional-id", value_name = "ID")]
    pub transactional_ids: Vec<String>,
    /// The cluster resource.
    #[arg(long)]
    pub cluster: bool,
    /// How resource names match: literal (default) or prefixed; list and remove also take
    /// any and match.
    #[arg(long = "resource-pattern-type", value_name = "TYPE")]
    pub pattern_type: Option<String>,
    /// list and remove: only ACLs of this principal.
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: Vec<String>,
}

/// A resource named on the command line.
type Resource = (ResourceType, String);

impl AclSpec {
    fn resources(&self) -> Vec<Resource> {
        let mut out: Vec<Resource> = Vec::new();
        out.extend(self.topics.iter().map(|t| (ResourceType::Topic, t.clone())));
        out.extend(self.groups.iter().map(|g| (ResourceType::Group, g.clone())));
        out.extend(
            self.transactional_ids
                .iter()
                .map(|t| (ResourceType::TransactionalId, t.clone())),
        );
        if self.cluster {
            out.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
        }
        out
    }

    fn pattern_type(&self, default: PatternType) -> anyhow::Result<PatternType> {
        match &self.pattern_type {
            None => Ok(default),
            Some(t) => PatternType::parse(t)
                .filter(|p| *p != PatternType::Unknown)
                .with_context(|| format!("unknown --resource-pattern-type {t:?}")),
        }
    }

    fn operations(&self) -> anyhow::Result<Vec<AclOperation>> {
        if self.operations.is_empty() {
            return Ok(vec![AclOperation::All]);
        }
        self.operations
            .iter()
            .map(|o| {
                AclOperation::parse(o)
                    .filter(|op| !matches!(op, AclOperation::Unknown | AclOperation::Any))
                    .with_context(|| format!("unknown --operation {o:?}"))
            })
            .collect()
    }

    /// (permission, principal, host) for every principal and host given.
    fn entries(&self) -> Vec<(AclPermissionType, String, String)> {
        let hosts = |h: &[String]| match h.is_empty() {
            true => vec![WILDCARD.to_string()],
            false => h.to_vec(),
        };
        let mut out = Vec::new();
        for (perm, principals, hs) in [
            (
                AclPermissionType::Allow,
                &self.allow_principals,
                hosts(&self.allow_hosts),
            ),
            (
                AclPermissionType::Deny,
                &self.deny_principals,
                hosts(&self.deny_hosts),
            ),
        ] {
            for p in principals {
                for h in &hs {
                    out.push((perm, p.clone(), h.clone()));
                }
            }
        }
        out
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from(s.to_string())
}

fn error_name(code: i16) -> String {
    ResponseError::try_from_code(code)
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| format!("error {code}"))
}

/// Runs `spate acls`.
pub fn run(args: AclsArgs) -> anyhow::Result<()> {
    let spec = match &args.action {
        AclsAction::Add(s) | AclsAction::List(s) | AclsAction::Remove(s) => s,
    };
    let mut conn = Connection::connect(&spec.client)?;
    match args.action {
        AclsAction::Add(spec) => add(&mut conn, &spec),
        AclsAction::List(spec) => list(&mut conn, &spec),
        AclsAction::Remove(spec) => remove(&mut conn, &spec),
    }
}

fn pattern_text(rt: ResourceType, name: &str, pt: PatternType) -> String {
    format!("ResourcePattern(resourceType={rt}, name={name}, patternType={pt})")
}

fn entry_text(principal: &str, host: &str, op: AclOperation, perm: AclPermissionType) -> String {
    format!("(principal={principal}, host={host}, operation={op}, permissionType={perm})")
}

fn add(conn: &mut Connection, spec: &AclSpec) -> anyhow::Result<()> {
    let resources = spec.resources();
    if resources.is_empty() {
        bail!("name at least one resource: --topic, --group, --transactional-id or --cluster");
    }
    let entries = spec.entries();
    if entries.is_empty() {
        bail!("give --allow-principal or --deny-principal");
    }
    let pt = spec.pattern_type(PatternType::Literal)?;
    if !matches!(pt, PatternType::Literal | PatternType::Prefixed) {
        bail!("ACLs are added with --resource-pattern-type literal or prefixed, not {pt}");
    }
    let ops = spec.operations()?;
    let mut req = CreateAclsRequest::default();
    for (rt, name) in &resources {
        println!(
            "Adding ACLs for resource `{}`:",
            pattern_text(*rt, name, pt)
        );
        for (perm, principal, host) in &entries {
            for op in &ops {
                println!(" \t{}", entry_text(principal, host, *op, *perm));
                let mut c = AclCreation::default();
                c.resource_type = rt.code();
                c.resource_name = text(name);
                c.resource_pattern_type = pt.code();
                c.principal = text(principal);
                c.host = text(host);
                c.operation = op.code();
                c.permission_type = perm.code();
                req.creations.push(c);
            }
        }
    }
    let resp = conn.call(&req, 3)?;
    for r in &resp.results {
        if r.error_code != 0 {
            bail!(
                "CreateAcls failed: {}: {}",
                error_name(r.error_code),
                r.error_message.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// DescribeAcls filters for the resources (or every resource) and principals given.
fn describe_filters(spec: &AclSpec) -> anyhow::Result<Vec<DescribeAclsRequest>> {
    let resources = spec.resources();
    let (targets, pt): (Vec<(ResourceType, Option<String>)>, PatternType) = if resources.is_empty()
    {
        (
            vec![(ResourceType::Any, None)],
            spec.pattern_type(PatternType::Any)?,
        )
    } else {
        let named = resources.into_iter().map(|(rt, n)| (rt, Some(n))).collect();
        (named, spec.pattern_type(PatternType::Literal)?)
    };
    let principals: Vec<Option<String>> = match spec.principal.is_empty() {
        true => vec![None],
        false => spec.principal.iter().cloned().map(Some).collect(),
    };
    let mut out = Vec::new();
    for (rt, name) in &targets {
        for principal in &principals {
            out.push(
                DescribeAclsRequest::default()
                    .with_resource_type_filter(rt.code())
                    .with_resource_name_filter(name.as_deref().map(text))
                    .with_pattern_type_filter(pt.code())
                    .with_principal_filter(principal.as_deref().map(text))
                    .with_host_filter(None)
                    .with_operation(AclOperation::Any.code())
                    .with_permission_type(AclPermissionType::Any.code()),
            );
        }
    }
    Ok(out)
}

fn list(conn: &mut Connection, spec: &AclSpec) -> anyhow::Result<()> {
    for req in describe_filters(spec)? {
        let resp = conn.call(&req, 3)?;
        if resp.error_code != 0 {
            bail!(
                "DescribeAcls failed: {}: {}",
                error_name(resp.error_code),
                resp.error_message.as_deref().unwrap_or_default()
            );
        }
        for r in &resp.resources {
            let rt = ResourceType::from_code(r.resource_type).unwrap_or(ResourceType::Unknown);
            let pt = PatternType::from_code(r.pattern_type).unwrap_or(PatternType::Unknown);
            println!(
                "Current ACLs for resource `{}`:",
                pattern_text(rt, r.resource_name.as_str(), pt)
            );
            for a in &r.acls {
                let op = AclOperation::from_code(a.operation).unwrap_or(AclOperation::Unknown);
                let perm = AclPermissionType::from_code(a.permission_type)
                    .unwrap_or(AclPermissionType::Unknown);
                println!(
                    " \t{}",
                    entry_text(a.principal.as_str(), a.host.as_str(), op, perm)
                );
            }
            println!();
        }
    }
    Ok(())
}

fn remove(conn: &mut Connection, spec: &AclSpec) -> anyhow::Result<()> {
    let resources = spec.resources();
    if resources.is_empty() {
        bail!("name at least one resource: --topic, --group, --transactional-id or --cluster");
    }
    let pt = spec.pattern_type(PatternType::Literal)?;
    let ops = match spec.operations.is_empty() {
        true => vec![AclOperation::Any],
        false => spec.operations()?,
    };
    // Without principals: every ACL of the resource.
    let entries: Vec<(AclPermissionType, Option<String>, Option<String>)> = {
        let given = spec.entries();
        match given.is_empty() {
            true => vec![(AclPermissionType::Any, None, None)],
            false => given
                .into_iter()
                .map(|(perm, p, h)| (perm, Some(p), Some(h)))
                .collect(),
        }
    };
    let mut req = DeleteAclsRequest::default();
    for (rt, name) in &resources {
        for (perm, principal, host) in &entries {
            for op in &ops {
                let mut f = DeleteAclsFilter::default();
                f.resource_type_filter = rt.code();
                f.resource_name_filter = Some(text(name));
                f.pattern_type_filter = pt.code();
                f.principal_filter = principal.as_deref().map(text);
                f.host_filter = host.as_deref().map(text);
                f.operation = op.code();
                f.permission_type = perm.code();
                req.filters.push(f);
            }
        }
    }
    let resp = conn.call(&req, 3)?;
    let mut removed = 0;
    for r in &resp.filter_results {
        if r.error_code != 0 {
            bail!(
                "DeleteAcls failed: {}: {}",
                error_name(r.error_code),
                r.error_message.as_deref().unwrap_or_default()
            );
        }
        for m in &r.matching_acls {
            let rt = ResourceType::from_code(m.resource_type).unwrap_or(ResourceType::Unknown);
            let pt = PatternType::from_code(m.pattern_type).unwrap_or(PatternType::Unknown);
            let op = AclOperation::from_code(m.operation).unwrap_or(AclOperation::Unknown);
            let perm = AclPermissionType::from_code(m.permission_type)
                .unwrap_or(AclPermissionType::Unknown);
            println!(
                "Removed ACL from `{}`: {}",
                pattern_text(rt, m.resource_name.as_str(), pt),
                entry_text(m.principal.as_str(), m.host.as_str(), op, perm)
            );
            removed += 1;
        }
    }
    println!("Removed {removed} ACLs");
    Ok(())
}
