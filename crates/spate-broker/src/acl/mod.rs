//! Authorization: Kafka's ACLs and the authorizer that enforces them on every request.
//!
//! - [`types`]: resource types, pattern types, operations, permissions and the ACL binding;
//! - [`filter`]: the binding filters DescribeAcls and DeleteAcls select with;
//! - [`store`]: the ACLs, persisted atomically under the meta dir;
//! - [`authorizer`]: the decisions (`authorizer.class.name`, `super.users`,
//!   `allow.everyone.if.no.acl.found`);
//! - [`check`]: a request's principal and host bound to the authorizer, for handlers;
//! - [`api`]: CreateAcls, DescribeAcls and DeleteAcls.

pub mod api;
pub mod authorizer;
pub mod check;
pub mod filter;
pub mod store;
pub mod types;

#[cfg(test)]
mod tests;

pub use authorizer::{Authorizer, AuthorizerSettings, Requester};
pub use check::RequestAuthz;
pub use filter::AclBindingFilter;
pub use types::{
    AccessControlEntry, AclBinding, AclOperation, AclPermissionType, PatternType, ResourcePattern,
    ResourceType,
};
