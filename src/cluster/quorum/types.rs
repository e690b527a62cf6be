//! openraft's type configuration for the metadata log, and the aliases the other files use.
//!
//! Node ids are Kafka's `node.id` (as `u64`, openraft's default); a node's address is its
//! controller listener (`BasicNode`); the application data is a [`MetaCommand`] and its result a
//! [`MetaResponse`]; snapshots are in-memory byte buffers (metadata images are small: a few
//! megabytes even with thousands of partitions), so openraft's default `Cursor<Vec<u8>>` fits.

use std::io::Cursor;

use openraft::BasicNode;

use crate::cluster::image::{MetaCommand, MetaResponse};

openraft::declare_raft_types!(
    /// The metadata quorum's Raft types.
    pub TypeConfig:
        D = MetaCommand,
        R = MetaResponse,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub(crate) type NodeId = u64;
pub(crate) type Raft = openraft::Raft<TypeConfig>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type LogId = openraft::LogId<NodeId>;
pub(crate) type Vote = openraft::Vote<NodeId>;
pub(crate) type StorageError = openraft::StorageError<NodeId>;
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, BasicNode>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, BasicNode>;
pub(crate) type Snapshot = openraft::Snapshot<TypeConfig>;

/// Kafka node ids are `i32`, Raft's are `u64`: non-negative ids map one to one.
pub(crate) fn raft_id(node_id: i32) -> NodeId {
    u64::try_from(node_id).unwrap_or(u64::MAX)
}

/// The Kafka node id of a Raft node id (`-1` if it does not fit, which config validation
/// prevents).
pub(crate) fn kafka_id(id: NodeId) -> i32 {
    i32::try_from(id).unwrap_or(-1)
}
pub(crate) type RaftMetricsOf = openraft::RaftMetrics<NodeId, BasicNode>;
