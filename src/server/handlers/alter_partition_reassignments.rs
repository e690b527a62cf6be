//! AlterPartitionReassignments (key 45), v0–v1 (`kafka-reassign-partitions`,
//! `Admin.alterPartitionReassignments`; v1 adds `allow_replication_factor_change`, KIP-1101).
//!
//! A single node has one broker to place replicas on, and every partition's replicas are
//! `[this node]`. Per partition, as Kafka's controller (`ReplicationControlManager
//! .alterPartitionReassignment`, `validateManualPartitionAssignment`), with its messages:
//! - unknown topic: UNKNOWN_TOPIC_OR_PARTITION ("Unable to find a topic named t."); unknown
//!   partition: the same ("Unable to find partition t:9.");
//! - replicas null (cancel): NO_REASSIGNMENT_IN_PROGRESS (no message, as Kafka), as none ever is;
//! - an empty list, a broker id other than this node's ("... includes broker 7, but no such
//!   broker is registered."), or this node twice ("... includes the broker 1 more than once."):
//!   INVALID_REPLICA_ASSIGNMENT. Ids are checked in ascending order, as Kafka does;
//! - exactly `[this node]`: success, a no-op (the replicas already are that), so nothing is ever
//!   in progress and ListPartitionReassignments lists nothing. Since every other target is
//!   refused, a replication factor change cannot pass, whatever v1's flag says.
//!
//! Without ALTER on the cluster every partition gets CLUSTER_AUTHORIZATION_FAILED.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_request::AlterPartitionReassignmentsRequest;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    AlterPartitionReassignmentsResponse, ReassignablePartitionResponse, ReassignableTopicResponse,
};

use super::{HandlerError, Reply, Request};
use crate::metadata::MetadataSnapshot;
use crate::server::authz::{self, AclOperation, CLUSTER_NAME, ResourceType};
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

/// The outcome of one partition's reassignment: `None` when it succeeds.
fn check(
    snap: &MetadataSnapshot,
    node: i32,
    topic: &str,
    partition: i32,
    replicas: Option<&[i32]>,
) -> Option<(ResponseError, String)> {
    let Some(meta) = snap.topic(topic) else {
        return Some((
            ResponseError::UnknownTopicOrPartition,
            format!("Unable to find a topic named {topic}."),
        ));
    };
    if partition < 0 || partition >= meta.partitions {
        return Some((
            ResponseError::UnknownTopicOrPartition,
            format!("Unable to find partition {topic}:{partition}."),
        ));
    }
    let Some(replicas) = replicas else {
        // Kafka answers this one without a message.
        return Some((ResponseError::NoReassignmentInProgress, String::new()));
    };
    invalid_assignment(node, replicas).map(|m| (ResponseError::InvalidReplicaAssignment, m))
}

/// Kafka's `validateManualPartitionAssignment` with `node` the only registered broker.
fn invalid_assignment(node: i32, replicas: &[i32]) -> Option<String> {
    if replicas.is_empty() {
        return Some("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut prev = None;
    for id in sorted {
        if id != node {
            return Some(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            ));
        }
        if prev == Some(id) {
            return Some(format!(
                "The manual partition assignment includes the broker {id} more than once."
            ));
        }
        prev = Some(id);
    }
    None
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: AlterPartitionReassignmentsRequest = req.decode()?;
    let ctx = req.ctx.clone();
    let snap = ctx.metadata();
    let node = ctx.info.node_id;
    let authorized = authz::authorize(
        req.principal(),
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let responses = r
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let replicas: Option<Vec<i32>> =
                        p.replicas.as_ref().map(|v| v.iter().map(|b| b.0).collect());
                    let outcome = if authorized {
                        check(&snap, node, name, p.partition_index, replicas.as_deref())
                    } else {
                        Some((ResponseError::ClusterAuthorizationFailed, String::new()))
                    };
                    let res = ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match outcome {
                        None => res.with_error_message(None),
                        Some((e, msg)) => res
                            .with_error_code(e.code())
                            .with_error_message((!msg.is_empty()).then(|| sb(&msg))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    req.respond(
        &AlterPartitionReassignmentsResponse::default()
            .with_error_message(None)
            .with_allow_replication_factor_change(r.allow_replication_factor_change)
            .with_responses(responses),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_are_checked_as_kafka_checks_them() {
        assert_eq!(invalid_assignment(1, &[1]), None);
        assert!(
            invalid_assignment(1, &[])
                .unwrap()
                .contains("empty replica list")
        );
        assert!(
            invalid_assignment(1, &[2])
                .unwrap()
                .contains("broker 2, but no such broker")
        );
        // Ascending order: the unknown 0 is reported before the duplicate 1.
        assert!(
            invalid_assignment(1, &[1, 1, 0])
                .unwrap()
                .contains("broker 0,")
        );
        assert!(
            invalid_assignment(1, &[1, 1])
                .unwrap()
                .contains("broker 1 more than once")
        );
    }
}
