//! Topics, partitions and configs; persistence; snapshots to shards.
//!
//! # Roles
//!
//! Shard 0 plays Kafka's controller: it owns the one mutable [`MetadataStore`] and is the only place
//! topics are created or deleted ([`controller`]). Every change is (1) validated, (2) written to
//! `<data-dir>/ringbolt-metadata.json` atomically (temp file, fsync, rename, fsync of the directory) and
//! only then (3) published: each shard receives an immutable `Arc<MetadataSnapshot>` with a higher
//! version over the mesh, swaps it in, opens the partition logs it now owns and closes (and, for a
//! deleted topic, removes) the ones that went away. The request that caused the change is answered after
//! every shard has applied it, so a client that creates a topic and produces right away never sees
//! UNKNOWN_TOPIC_OR_PARTITION. Controller operations are serialised by a shard-local semaphore; readers
//! never take a lock (they clone the shard's snapshot `Arc`).
//!
//! The file is small JSON rather than a log (`__cluster_metadata`) because topic changes are rare and a
//! whole-file atomic replace is simpler to reason about for crash safety than a replayed log.

pub mod alter;
pub mod cluster;
pub mod controller;
pub mod producer_ids;
pub mod quotas;

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;

use crate::config::BrokerSettings;
use crate::config::dynamic::BrokerOverrides;

pub use controller::MetadataStore;

/// One topic as the broker knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: uuid::Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (Kafka names), on top of the broker's defaults.
    pub configs: BTreeMap<String, String>,
}

/// An immutable view of all topics and the broker's dynamic configs; shards swap whole snapshots,
/// never mutate one.
#[derive(Debug, Default)]
pub struct MetadataSnapshot {
    /// Strictly increasing with every change; shards ignore older snapshots.
    pub version: u64,
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Dynamic broker config layers (see [`crate::config::dynamic`]).
    pub broker_configs: BrokerOverrides,
    /// The broker settings in effect: the static ones with `broker_configs` applied.
    pub settings: Arc<BrokerSettings>,
    /// Client quotas ([`crate::quota`]).
    pub quotas: Arc<crate::quota::Quotas>,
    /// In a cluster, the replicated image this snapshot was built from (brokers, partition
    /// leaders, replicas, ISR, epochs); `None` on a single node, which leads every partition.
    pub cluster: Option<Arc<crate::cluster::ClusterImage>>,
}

impl MetadataSnapshot {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<&Arc<TopicMeta>> {
        self.topics.values().find(|t| t.id == id)
    }
}

/// Why a topic operation failed, with its Kafka error code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TopicError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("number of partitions must be between 1 and {max}, got {got}")]
    InvalidPartitions { got: i32, max: i32 },
    #[error("replication factor must be 1 (or -1 for the default) on a single broker, got {0}")]
    InvalidReplicationFactor(i16),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    PartitionsNotIncreased(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("unknown topic id {0}")]
    UnknownTopicId(uuid::Uuid),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("broker is shutting down")]
    ShuttingDown,
    /// Cluster mode: an error from the metadata quorum or the image's validation, with its code.
    #[error("{1}")]
    Cluster(ResponseError, String),
}

impl TopicError {
    /// The Kafka error this answers as: the one place topic errors meet the protocol.
    pub fn response_error(&self) -> ResponseError {
        match self {
            TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
            TopicError::InvalidTopic(_) => ResponseError::InvalidTopicException,
            TopicError::InvalidPartitions { .. } => ResponseError::InvalidPartitions,
            TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
            TopicError::InvalidRequest(_) => ResponseError::InvalidRequest,
            TopicError::PartitionsNotIncreased(_) => ResponseError::InvalidPartitions,
            TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            TopicError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
            TopicError::UnknownTopicId(_) => ResponseError::UnknownTopicId,
            TopicError::Storage(_) => ResponseError::UnknownServerError,
            // Clients retry elsewhere or later.
            TopicError::ShuttingDown => ResponseError::NotLeaderOrFollower,
            TopicError::Cluster(e, _) => *e,
        }
    }

    /// The wire code of [`TopicError::response_error`].
    pub fn error_code(&self) -> i16 {
        self.response_error().code()
    }
}

impl From<crate::config::dynamic::AlterError> for TopicError {
    fn from(e: crate::config::dynamic::AlterError) -> Self {
        use crate::config::dynamic::AlterError;
        match e {
            AlterError::InvalidConfig(m) => TopicError::InvalidConfig(m),
            AlterError::InvalidRequest(m) => TopicError::InvalidRequest(m),
        }
    }
}

/// Most partitions one topic may have (guards against a typo creating a million directories).
pub const MAX_PARTITIONS: i32 = 10_000;

/// Kafka's rules for topic names: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::InvalidTopic("topic name is empty".into()));
    }
    if name == "." || name == ".." {
        return Err(TopicError::InvalidTopic(format!(
            "topic name cannot be '{name}'"
        )));
    }
    if name.len() > 249 {
        return Err(TopicError::InvalidTopic(format!(
            "topic name is longer than 249 characters: {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(TopicError::InvalidTopic(format!(
            "topic name '{name}' contains illegal character {c:?}; legal: [a-zA-Z0-9._-]"
        )));
    }
    Ok(())
}

/// The directory of one partition, in Kafka's layout.
pub fn partition_dir(
    data_dir: &std::path::Path,
    topic: &str,
    partition: i32,
) -> std::path::PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("web_log").is_ok());
        assert!(validate_topic_name("a.b-C_9").is_ok());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        for bad in ["", ".", "..", "a b", "a/b", "é", "a*"] {
            assert_eq!(
                validate_topic_name(bad).unwrap_err().error_code(),
                17,
                "{bad}"
            );
        }
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
