//! ACL binding filters (Kafka's `AclBindingFilter`): what DescribeAcls and DeleteAcls select.
//! Each field is either a value or a wildcard (`None` names, ANY codes); the resource name
//! with pattern type MATCH selects every ACL that would apply to that resource (literal ones
//! naming it or `*`, and prefixed ones that are a prefix of it), exactly as
//! `ResourcePatternFilter.matches` and `AccessControlEntryFilter.matches` do.

use super::types::{
    AccessControlEntry, AclBinding, AclOperation, AclPermissionType, PatternType, ResourcePattern,
    ResourceType, WILDCARD,
};

/// Selects ACL bindings; `None` strings match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    /// ANY, or the resource type to match.
    pub resource_type: ResourceType,
    /// The resource name, or `None` for any.
    pub name: Option<String>,
    /// ANY, MATCH, LITERAL or PREFIXED.
    pub pattern_type: PatternType,
    /// The principal, or `None` for any.
    pub principal: Option<String>,
    /// The host, or `None` for any.
    pub host: Option<String>,
    /// ANY, or the operation to match.
    pub operation: AclOperation,
    /// ANY, or the permission to match.
    pub permission: AclPermissionType,
}

impl AclBindingFilter {
    /// A filter that matches every binding.
    pub fn any() -> Self {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermissionType::Any,
        }
    }

    /// Kafka refuses filters with UNKNOWN elements (`validateFilter`); the reason is the
    /// INVALID_REQUEST message.
    pub fn validate(&self) -> Result<(), String> {
        if self.resource_type == ResourceType::Unknown || self.pattern_type == PatternType::Unknown
        {
            return Err("Unknown patternFilter.".into());
        }
        if self.operation == AclOperation::Unknown || self.permission == AclPermissionType::Unknown
        {
            return Err("Unknown entryFilter.".into());
        }
        Ok(())
    }

    /// Whether `binding` passes this filter.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(&binding.pattern) && self.matches_entry(&binding.entry)
    }

    fn matches_pattern(&self, p: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != p.resource_type {
            return false;
        }
        let pt = self.pattern_type;
        if pt != PatternType::Any && pt != PatternType::Match && pt != p.pattern_type {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if pt == PatternType::Any || pt == p.pattern_type {
            return *name == p.name;
        }
        // MATCH: the ACLs that apply to the resource `name`.
        match p.pattern_type {
            PatternType::Literal => *name == p.name || p.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&p.name),
            _ => false,
        }
    }

    fn matches_entry(&self, e: &AccessControlEntry) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == e.principal)
            && self.host.as_ref().is_none_or(|h| *h == e.host)
            && (self.operation == AclOperation::Any || self.operation == e.operation)
            && (self.permission == AclPermissionType::Any || self.permission == e.permission)
    }
}
