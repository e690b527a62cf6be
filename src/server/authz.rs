//! Authorization: the operations a principal may perform on a resource, as Kafka reports them in
//! the "authorized operations" bitfields (KIP-430).
//!
//! Metadata (v8+, topics; v8–v10, cluster), DescribeCluster and DescribeGroups (v3+) can return,
//! when the client asks for it, a 32-bit field with bit `1 << code` set for every [`AclOperation`]
//! the requesting principal may perform on the resource. A field the client did not ask for is
//! [`NOT_REQUESTED`] (`i32::MIN`, the schema default), which clients read as "unknown".
//!
//! # No authorizer yet
//!
//! Ringbolt has no authorizer today (no `authorizer.class.name`, no ACLs), and a Kafka broker
//! without one allows everything: `AuthHelper.authorizedOperations` then reports every operation
//! that *applies* to the resource type (`AclEntry.supportedOperations`), not ALL or ANY. So
//! [`authorized_operations`] returns exactly that set, and [`authorize`] always allows.
//!
//! Both take the principal and the resource name although they ignore them now: this is the one
//! place the security work plugs its authorizer into. It replaces the bodies of these two functions
//! (ACL lookup per principal, resource type and literal name; for `authorized_operations`, the
//! supported set filtered by what the ACLs allow) and every handler that reports or checks
//! operations follows without change. Handlers get the principal from
//! [`super::handlers::Request::principal`], which is `User:ANONYMOUS` (Kafka's principal of an
//! unauthenticated PLAINTEXT connection) until connections authenticate.

use std::borrow::Cow;

/// Kafka's `AclOperation` codes (bit positions in an authorized-operations field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AclOperation {
    Unknown = 0,
    Any = 1,
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

impl AclOperation {
    /// Kafka's wire code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The resource types that carry authorized operations in responses (Kafka's `ResourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
}

impl ResourceType {
    /// Kafka's wire code (TOPIC 2, GROUP 3, CLUSTER 4).
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
        }
    }
}

/// The name Kafka gives the single cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// An authorized-operations field the client did not ask for (the schema default).
pub const NOT_REQUESTED: i32 = i32::MIN;

/// Who sent a request: Kafka's `KafkaPrincipal` (type and name, e.g. `User:alice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub principal_type: Cow<'static, str>,
    pub name: Cow<'static, str>,
}

/// The principal of a connection that did not authenticate (Kafka's `KafkaPrincipal.ANONYMOUS`).
pub const ANONYMOUS: Principal = Principal {
    principal_type: Cow::Borrowed("User"),
    name: Cow::Borrowed("ANONYMOUS"),
};

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// The operations that apply to a resource type: Kafka's `AclEntry.supportedOperations`.
pub fn supported_operations(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource_type {
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
    }
}

/// The bitfield of `ops` (Kafka's `Utils.to32BitField`).
pub fn bitfield(ops: &[AclOperation]) -> i32 {
    ops.iter().fold(0i32, |f, op| f | (1 << op.code()))
}

/// The operations in a bitfield, in code order (for logs and tests).
pub fn operations_of(field: i32) -> Vec<AclOperation> {
    use AclOperation::*;
    [
        Unknown,
        Any,
        All,
        Read,
        Write,
        Create,
        Delete,
        Alter,
        Describe,
        ClusterAction,
        DescribeConfigs,
        AlterConfigs,
        IdempotentWrite,
        CreateTokens,
        DescribeTokens,
    ]
    .into_iter()
    .filter(|op| field != NOT_REQUESTED && field & (1 << op.code()) != 0)
    .collect()
}

/// Whether `principal` may perform `operation` on the resource. Always true: no authorizer yet
/// (see the module docs).
pub fn authorize(
    principal: &Principal,
    operation: AclOperation,
    resource_type: ResourceType,
    resource_name: &str,
) -> bool {
    let _ = (principal, operation, resource_type, resource_name);
    true
}

/// The authorized-operations field for `principal` on the resource: every supported operation of
/// the resource type, as a Kafka broker without an authorizer reports it (see the module docs).
pub fn authorized_operations(
    resource_type: ResourceType,
    resource_name: &str,
    principal: &Principal,
) -> i32 {
    let allowed: Vec<AclOperation> = supported_operations(resource_type)
        .iter()
        .copied()
        .filter(|&op| authorize(principal, op, resource_type, resource_name))
        .collect();
    bitfield(&allowed)
}

/// The cluster's field as Metadata (v8–v10) and DescribeCluster report it: as Kafka, 0 when the
/// principal may not DESCRIBE the cluster, whatever else it may do.
pub fn cluster_authorized_operations(principal: &Principal) -> i32 {
    if authorize(
        principal,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        authorized_operations(ResourceType::Cluster, CLUSTER_NAME, principal)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_sets_without_an_authorizer() {
        // Bits as Kafka 4.3 reports them with no authorizer (checked against a real broker).
        assert_eq!(
            authorized_operations(ResourceType::Topic, "t", &ANONYMOUS),
            (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11)
        );
        assert_eq!(
            authorized_operations(ResourceType::Group, "g", &ANONYMOUS),
            (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)
        );
        assert_eq!(
            cluster_authorized_operations(&ANONYMOUS),
            (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
        );
        assert_eq!(
            operations_of(authorized_operations(ResourceType::Topic, "t", &ANONYMOUS)).len(),
            8
        );
        assert!(operations_of(NOT_REQUESTED).is_empty());
        assert_eq!(ANONYMOUS.to_string(), "User:ANONYMOUS");
    }
}
