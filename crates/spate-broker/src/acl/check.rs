//! The authorizer as handlers use it: one request's principal and host bound to the broker's
//! authorizer, with the questions Kafka's `AuthHelper` asks (may this client do OP on this
//! topic, group, transactional id or the cluster; which operations may it do on a resource).

use super::authorizer::{Authorizer, Requester};
use super::types::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::handlers::RequestContext;
use crate::state::BrokerState;

/// One request's view of the authorizer.
#[derive(Debug)]
pub struct RequestAuthz<'a> {
    authorizer: &'a Authorizer,
    principal: String,
    host: String,
}

impl<'a> RequestAuthz<'a> {
    /// The authorizer of `state` for the client of `ctx`.
    pub fn new(state: &'a BrokerState, ctx: &RequestContext) -> Self {
        RequestAuthz {
            authorizer: &state.security.authorizer,
            principal: ctx.auth.principal(),
            host: ctx.peer.ip().to_string(),
        }
    }

    fn who(&self) -> Requester<'_> {
        Requester {
            principal: &self.principal,
            host: &self.host,
        }
    }

    /// Whether the client may perform `op` on the resource `name` of type `rt`. A denial is
    /// logged at debug level with the principal and host (Kafka's authorizer audit log).
    pub fn allows(&self, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        let ok = self.authorizer.authorize(self.who(), op, rt, name);
        if !ok {
            tracing::debug!(principal = %self.principal, host = %self.host, operation = %op,
                resource_type = %rt, resource = name, "authorization denied");
        }
        ok
    }

    /// `op` on topic `name`.
    pub fn topic(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::Topic, name)
    }

    /// `op` on group `name`.
    pub fn group(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::Group, name)
    }

    /// `op` on transactional id `name`.
    pub fn transactional_id(&self, op: AclOperation, name: &str) -> bool {
        self.allows(op, ResourceType::TransactionalId, name)
    }

    /// `op` on the cluster.
    pub fn cluster(&self, op: AclOperation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// `op` on some resource of type `rt` (see [`Authorizer::authorize_any`]).
    pub fn any(&self, op: AclOperation, rt: ResourceType) -> bool {
        self.authorizer.authorize_any(self.who(), op, rt)
    }

    /// The cluster's authorized operations as Metadata and DescribeCluster report them: none
    /// unless the client may DESCRIBE the cluster.
    pub fn cluster_operations(&self) -> i32 {
        match self.cluster(AclOperation::Describe) {
            true => self.operations(ResourceType::Cluster, CLUSTER_NAME),
            false => 0,
        }
    }

    /// The authorized-operations bitfield of the resource `name` of type `rt`.
    pub fn operations(&self, rt: ResourceType, name: &str) -> i32 {
        self.authorizer.authorized_operations(self.who(), rt, name)
    }
}

impl RequestContext {
    /// The authorizer's answers for this request's client.
    pub fn authz<'a>(&self, state: &'a BrokerState) -> RequestAuthz<'a> {
        RequestAuthz::new(state, self)
    }
}
