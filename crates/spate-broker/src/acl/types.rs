//! Kafka's ACL vocabulary with its wire codes: resource types, pattern types, operations and
//! permission types (the `org.apache.kafka.common.acl` and `...resource` enums), and the ACL
//! binding itself: a resource pattern plus an access control entry.

use serde::{Deserialize, Serialize};

/// The name of the one CLUSTER resource (Kafka's `Resource.CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The resource name and principal that match everything (`ResourcePattern.WILDCARD_RESOURCE`,
/// `KafkaPrincipal.WILDCARD_PRINCIPAL`'s name), and the host that matches every host.
pub const WILDCARD: &str = "*";

/// The principal that matches every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every value, in wire-code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The value of a wire code; `None` for a code Kafka does not define.
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The wire code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// Kafka's name (as `kafka-acls.sh` prints it).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value named `text` (case-insensitive; `_` and `-` alike, as
            /// `kafka-acls.sh --operation DescribeConfigs` or `DESCRIBE_CONFIGS`).
            pub fn parse(text: &str) -> Option<Self> {
                let norm = |s: &str| s.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_lowercase();
                let want = norm(text.trim());
                Self::ALL.iter().copied().find(|v| norm(v.name()) == want)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum!(
    /// Kafka's `ResourceType`.
    ResourceType {
        /// A code this broker does not know.
        Unknown = 0, "UNKNOWN";
        /// Filters only: any resource type.
        Any = 1, "ANY";
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster (named `kafka-cluster`).
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user (quotas, delegation tokens).
        User = 7, "USER";
    }
);

wire_enum!(
    /// Kafka's `PatternType`: how an ACL's resource name matches resources.
    PatternType {
        /// A code this broker does not know.
        Unknown = 0, "UNKNOWN";
        /// Filters only: any pattern type, names compared literally.
        Any = 1, "ANY";
        /// Filters only: every ACL that would apply to the named resource (literal, wildcard
        /// and prefixed ACLs).
        Match = 2, "MATCH";
        /// The name is the resource's name, or `*` for every resource.
        Literal = 3, "LITERAL";
        /// The name is a prefix of the resources' names.
        Prefixed = 4, "PREFIXED";
    }
);

wire_enum!(
    /// Kafka's `AclOperation`.
    AclOperation {
        /// A code this broker does not know.
        Unknown = 0, "UNKNOWN";
        /// Filters only: any operation.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        /// Read (consume, commit offsets).
        Read = 3, "READ";
        /// Write (produce).
        Write = 4, "WRITE";
        /// Create (topics).
        Create = 5, "CREATE";
        /// Delete (topics, records, groups).
        Delete = 6, "DELETE";
        /// Alter (partitions, ACLs).
        Alter = 7, "ALTER";
        /// Describe (metadata, offsets, groups).
        Describe = 8, "DESCRIBE";
        /// Inter-broker actions.
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Describe configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Alter configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent produce (InitProducerId without a transactional id).
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

wire_enum!(
    /// Kafka's `AclPermissionType`.
    AclPermissionType {
        /// A code this broker does not know.
        Unknown = 0, "UNKNOWN";
        /// Filters only: either permission.
        Any = 1, "ANY";
        /// Denies the operation; wins over any ALLOW.
        Deny = 2, "DENY";
        /// Allows the operation.
        Allow = 3, "ALLOW";
    }
);

impl ResourceType {
    /// The operations Kafka supports on this resource type (`AclEntry.supportedOperations`,
    /// without ALL), in the order Kafka lists them.
    pub fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Unknown | ResourceType::Any => &[],
        }
    }
}

impl AclOperation {
    /// Whether an ALLOW ACL for `self` also allows `wanted`: ALL allows everything; READ,
    /// WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS. (A DENY
    /// ACL denies only its own operation, or every one for ALL.)
    pub fn allow_implies(self, wanted: AclOperation) -> bool {
        use AclOperation::*;
        self == All
            || self == wanted
            || match wanted {
                Describe => matches!(self, Read | Write | Delete | Alter),
                DescribeConfigs => self == AlterConfigs,
                _ => false,
            }
    }
}

/// What an ACL applies to: a resource type, a name and how the name matches
/// (Kafka's `ResourcePattern`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourcePattern {
    /// The resource type (never ANY or UNKNOWN in a stored ACL).
    pub resource_type: ResourceType,
    /// The resource name, a prefix, or `*`.
    pub name: String,
    /// LITERAL or PREFIXED in a stored ACL.
    pub pattern_type: PatternType,
}

impl ResourcePattern {
    /// Whether this (stored) pattern applies to the resource `name` of `resource_type`:
    /// a literal pattern naming it or `*`, or a prefixed pattern that is a prefix of it.
    pub fn applies_to(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.name == name || self.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.name),
                _ => false,
            }
    }
}

/// Who may or may not do what from where (Kafka's `AccessControlEntry`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccessControlEntry {
    /// `User:<name>`, or `User:*` for every principal.
    pub principal: String,
    /// A client IP address, or `*` for every host.
    pub host: String,
    /// The operation (ALL for every one).
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: AclPermissionType,
}

/// One ACL: a resource pattern and an entry (Kafka's `AclBinding`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// What the ACL applies to.
    pub pattern: ResourcePattern,
    /// Who, from where, which operation, allowed or denied.
    pub entry: AccessControlEntry,
}

impl AclBinding {
    /// Checks a binding to be created as Kafka's controller does (`validateNewAcl`) plus the
    /// broker's own checks (the cluster's name, a parsable principal); the reason is the
    /// INVALID_REQUEST message.
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.pattern;
        let e = &self.entry;
        if matches!(p.resource_type, ResourceType::Unknown | ResourceType::Any) {
            return Err(format!("Invalid resourceType {}", p.resource_type));
        }
        if !matches!(p.pattern_type, PatternType::Literal | PatternType::Prefixed) {
            return Err(format!("Invalid patternType {}", p.pattern_type));
        }
        if matches!(e.operation, AclOperation::Unknown | AclOperation::Any) {
            return Err(format!("Invalid operation {}", e.operation));
        }
        if !matches!(
            e.permission,
            AclPermissionType::Allow | AclPermissionType::Deny
        ) {
            return Err(format!("Invalid permissionType {}", e.permission));
        }
        if p.name.is_empty() {
            return Err("Invalid empty resource name".into());
        }
        if p.resource_type == ResourceType::Cluster && p.name != CLUSTER_NAME {
            return Err(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        match e.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
            _ => Err(format!(
                "Could not parse principal from `{}` (no colon is found separating principal type from name)",
                e.principal
            )),
        }
    }
}
