//! CreateAcls (API 30), DescribeAcls (29) and DeleteAcls (31), as Kafka's `AclApis` answers
//! them: the caller needs ALTER (create, delete) or DESCRIBE (describe) on the cluster, else
//! CLUSTER_AUTHORIZATION_FAILED; without an authorizer every answer is SECURITY_DISABLED; a
//! creation or filter Kafka would refuse gets INVALID_REQUEST with Kafka's reason. Version 0
//! carries no pattern type: its ACLs and filters are LITERAL (the field's default).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::filter::AclBindingFilter;
use super::types::{
    AccessControlEntry, AclBinding, AclOperation, AclPermissionType, PatternType, ResourcePattern,
    ResourceType,
};
use crate::error::Result;
use crate::handlers::{HandlerRegistry, RequestContext};
use crate::state::BrokerState;

/// Registers the ACL APIs.
pub fn register(r: &mut HandlerRegistry) {
    r.register::<DescribeAclsRequest, _, _>(0, 3, describe)
        .register::<CreateAclsRequest, _, _>(0, 3, create)
        .register::<DeleteAclsRequest, _, _>(0, 3, delete);
}

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

fn text(s: &str) -> StrBytes {
    StrBytes::from(s.to_string())
}

/// The refusal every ACL API gives before looking at the request: no authorizer, or the
/// caller lacks `op` on the cluster.
fn refusal(state: &BrokerState, ctx: &RequestContext, op: AclOperation) -> Option<(i16, String)> {
    if !ctx.authz(state).cluster(op) {
        let e = ResponseError::ClusterAuthorizationFailed;
        return Some((
            e.code(),
            format!("Cluster authorization failed ({op} on the cluster)"),
        ));
    }
    (!state.security.authorizer.enabled())
        .then(|| (ResponseError::SecurityDisabled.code(), NO_AUTHORIZER.into()))
}

fn binding(c: &AclCreation) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::from_code(c.resource_type)
                .unwrap_or(ResourceType::Unknown),
            name: c.resource_name.to_string(),
            pattern_type: PatternType::from_code(c.resource_pattern_type)
                .unwrap_or(PatternType::Unknown),
        },
        entry: AccessControlEntry {
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: AclOperation::from_code(c.operation).unwrap_or(AclOperation::Unknown),
            permission: AclPermissionType::from_code(c.permission_type)
                .unwrap_or(AclPermissionType::Unknown),
        },
    }
}

fn result(error: Option<(i16, String)>) -> AclCreationResult {
    let mut r = AclCreationResult::default();
    if let Some((code, message)) = error {
        r.error_code = code;
        r.error_message = Some(text(&message));
    }
    r
}

/// CreateAcls: every valid creation is stored in one atomic update; each invalid one gets
/// INVALID_REQUEST. Creating an ACL that exists is a success (ACLs are a set).
pub async fn create(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: CreateAclsRequest,
) -> Result<CreateAclsResponse> {
    let mut resp = CreateAclsResponse::default();
    if let Some(err) = refusal(&state, &ctx, AclOperation::Alter) {
        resp.results = req
            .creations
            .iter()
            .map(|_| result(Some(err.clone())))
            .collect();
        return Ok(resp);
    }
    let checked: Vec<std::result::Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            let b = binding(c);
            b.validate().map(|()| b)
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let stored = state
        .security
        .authorizer
        .acls
        .update(|acls| acls.extend(valid));
    resp.results = checked
        .into_iter()
        .map(|c| match (&c, &stored) {
            (Err(why), _) => result(Some((ResponseError::InvalidRequest.code(), why.clone()))),
            (Ok(_), Err(e)) => result(Some((e.error_code().code(), e.to_string()))),
            (Ok(_), Ok(())) => result(None),
        })
        .collect();
    if let Err(e) = stored {
        tracing::warn!(error = %e, "storing ACLs failed");
    }
    Ok(resp)
}

fn filter_of(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::from_code(resource_type).unwrap_or(ResourceType::Unknown),
        name: name.map(|s| s.to_string()),
        pattern_type: PatternType::from_code(pattern_type).unwrap_or(PatternType::Unknown),
        principal: principal.map(|s| s.to_string()),
        host: host.map(|s| s.to_string()),
        operation: AclOperation::from_code(operation).unwrap_or(AclOperation::Unknown),
        permission: AclPermissionType::from_code(permission).unwrap_or(AclPermissionType::Unknown),
    }
}

/// DescribeAcls: the ACLs the filter matches, grouped by resource pattern.
pub async fn describe(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DescribeAclsRequest,
) -> Result<DescribeAclsResponse> {
    let mut resp = DescribeAclsResponse::default();
    if let Some((code, message)) = refusal(&state, &ctx, AclOperation::Describe) {
        resp.error_code = code;
        resp.error_message = Some(text(&message));
        return Ok(resp);
    }
    let filter = filter_of(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    );
    if let Err(why) = filter.validate() {
        resp.error_code = ResponseError::InvalidRequest.code();
        resp.error_message = Some(text(&why));
        return Ok(resp);
    }
    let mut by_pattern: BTreeMap<ResourcePattern, Vec<AclDescription>> = BTreeMap::new();
    for b in state.security.authorizer.acls.all() {
        if !filter.matches(&b) {
            continue;
        }
        let mut d = AclDescription::default();
        d.principal = text(&b.entry.principal);
        d.host = text(&b.entry.host);
        d.operation = b.entry.operation.code();
        d.permission_type = b.entry.permission.code();
        by_pattern.entry(b.pattern).or_default().push(d);
    }
    resp.resources = by_pattern
        .into_iter()
        .map(|(p, acls)| {
            let mut r = DescribeAclsResource::default();
            r.resource_type = p.resource_type.code();
            r.resource_name = text(&p.name);
            r.pattern_type = p.pattern_type.code();
            r.acls = acls;
            r
        })
        .collect();
    Ok(resp)
}

fn matching_acl(b: &AclBinding) -> DeleteAclsMatchingAcl {
    let mut m = DeleteAclsMatchingAcl::default();
    m.resource_type = b.pattern.resource_type.code();
    m.resource_name = text(&b.pattern.name);
    m.pattern_type = b.pattern.pattern_type.code();
    m.principal = text(&b.entry.principal);
    m.host = text(&b.entry.host);
    m.operation = b.entry.operation.code();
    m.permission_type = b.entry.permission.code();
    m
}

fn delete_filter(f: &DeleteAclsFilter) -> AclBindingFilter {
    filter_of(
        f.resource_type_filter,
        f.resource_name_filter.as_ref(),
        f.pattern_type_filter,
        f.principal_filter.as_ref(),
        f.host_filter.as_ref(),
        f.operation,
        f.permission_type,
    )
}

fn filter_error(code: i16, message: &str) -> DeleteAclsFilterResult {
    let mut r = DeleteAclsFilterResult::default();
    r.error_code = code;
    r.error_message = Some(text(message));
    r
}

/// DeleteAcls: every ACL any valid filter matches is removed in one atomic update; each
/// filter's result lists the ACLs it matched.
pub async fn delete(
    state: Arc<BrokerState>,
    ctx: RequestContext,
    req: DeleteAclsRequest,
) -> Result<DeleteAclsResponse> {
    let mut resp = DeleteAclsResponse::default();
    if let Some((code, message)) = refusal(&state, &ctx, AclOperation::Alter) {
        resp.filter_results = req
            .filters
            .iter()
            .map(|_| filter_error(code, &message))
            .collect();
        return Ok(resp);
    }
    let filters: Vec<AclBindingFilter> = req.filters.iter().map(delete_filter).collect();
    let removed = state.security.authorizer.acls.update(|acls| {
        let per_filter: Vec<std::result::Result<Vec<AclBinding>, String>> = filters
            .iter()
            .map(|f| {
                f.validate()?;
                Ok(acls.iter().filter(|b| f.matches(b)).cloned().collect())
            })
            .collect();
        for b in per_filter.iter().flatten().flatten() {
            acls.remove(b);
        }
        per_filter
    });
    resp.filter_results = match removed {
        Ok(per_filter) => per_filter
            .into_iter()
            .map(|r| match r {
                Err(why) => filter_error(ResponseError::InvalidRequest.code(), &why),
                Ok(matched) => {
                    let mut out = DeleteAclsFilterResult::default();
                    out.matching_acls = matched.iter().map(matching_acl).collect();
                    out
                }
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "storing ACLs failed");
            let code = e.error_code().code();
            let message = e.to_string();
            filters
                .iter()
                .map(|_| filter_error(code, &message))
                .collect()
        }
    };
    Ok(resp)
}
