//! Authorized operations (KIP-430): the bitfield Metadata, DescribeCluster and DescribeGroups
//! return when a client sets `include_*_authorized_operations`. Kafka without an authorizer
//! reports every operation the resource type supports (`AclEntry.supportedOperations`): that is
//! what these are, the coordinator's default answer. With an authorizer the handlers replace it
//! with the authorizer's ([`crate::acl::RequestAuthz::operations`]).

/// Kafka's `AclOperation` codes.
const READ: u8 = 3;
const WRITE: u8 = 4;
const CREATE: u8 = 5;
const DELETE: u8 = 6;
const ALTER: u8 = 7;
const DESCRIBE: u8 = 8;
const CLUSTER_ACTION: u8 = 9;
const DESCRIBE_CONFIGS: u8 = 10;
const ALTER_CONFIGS: u8 = 11;
const IDEMPOTENT_WRITE: u8 = 12;

/// A resource type that reports authorized operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A topic (Metadata's topic authorized operations).
    Topic,
    /// A consumer group (DescribeGroups).
    Group,
    /// The cluster (Metadata and DescribeCluster).
    Cluster,
}

impl Resource {
    /// The operations Kafka supports on this resource type.
    pub fn supported(self) -> &'static [u8] {
        match self {
            Resource::Topic => &[
                READ,
                WRITE,
                CREATE,
                DESCRIBE,
                DELETE,
                ALTER,
                DESCRIBE_CONFIGS,
                ALTER_CONFIGS,
            ],
            Resource::Group => &[READ, DESCRIBE, DELETE, DESCRIBE_CONFIGS, ALTER_CONFIGS],
            Resource::Cluster => &[
                CREATE,
                CLUSTER_ACTION,
                DESCRIBE_CONFIGS,
                ALTER_CONFIGS,
                IDEMPOTENT_WRITE,
                ALTER,
                DESCRIBE,
            ],
        }
    }

    /// The authorized-operations bitfield (bit `n` set for operation code `n`, Kafka's
    /// `Utils.to32BitField`) of a principal allowed everything, as without an authorizer.
    pub fn all_authorized(self) -> i32 {
        self.supported().iter().fold(0, |bits, op| bits | (1 << op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_match_kafka() {
        // READ..ALTER_CONFIGS except CLUSTER_ACTION: bits 3-8, 10, 11.
        assert_eq!(Resource::Topic.all_authorized(), 0b1101_1111_1000);
        assert_eq!(Resource::Group.all_authorized(), 0b1101_0100_1000);
        assert_eq!(Resource::Cluster.all_authorized(), 0b1_1111_1010_0000);
        for r in [Resource::Topic, Resource::Group, Resource::Cluster] {
            assert_ne!(r.all_authorized(), 0);
        }
    }
}
