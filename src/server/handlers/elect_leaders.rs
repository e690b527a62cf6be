//! ElectLeaders (key 43), v0–v2 (`kafka-leader-election`, `Admin.electLeaders`): on one node
//! every partition is led by its only, preferred replica, so no election is ever needed.
//!
//! As Kafka's controller (`ReplicationControlManager.electLeaders`), for a preferred (0) or an
//! unclean (1) election alike, since the partition has its preferred leader and a leader:
//! - listed partitions: ELECTION_NOT_NEEDED ("Leader election not needed for topic partition."),
//!   or UNKNOWN_TOPIC_OR_PARTITION ("No such topic as t" / "No such partition as t-9");
//! - `topic_partitions` null means every partition: Kafka leaves out the ones that need no
//!   election, so every topic is listed with no partitions;
//! - an election type other than 0 or 1 (v1+) fails the whole request with INVALID_REQUEST, at
//!   the top and on every listed partition (Kafka's `ElectLeadersRequest.getErrorResponse`);
//! - without ALTER on the cluster: CLUSTER_AUTHORIZATION_FAILED the same way.
//!
//! Nothing is changed and nothing waits, so `timeout_ms` is not used.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_request::ElectLeadersRequest;
use kafka_protocol::messages::elect_leaders_response::{
    ElectLeadersResponse, PartitionResult, ReplicaElectionResult,
};

use super::{HandlerError, Reply, Request, topic_name};
use crate::server::authz::{self, AclOperation, CLUSTER_NAME, ResourceType};
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// The whole request refused with `error` (and `message`) on every listed partition.
fn refuse(r: &ElectLeadersRequest, error: ResponseError, message: String) -> ElectLeadersResponse {
    let results = r
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            ReplicaElectionResult::default()
                .with_topic(t.topic.clone())
                .with_partition_result(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            PartitionResult::default()
                                .with_partition_id(p)
                                .with_error_code(error.code())
                                .with_error_message(Some(sb(&message)))
                        })
                        .collect(),
                )
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(error.code())
        .with_replica_election_results(results)
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: ElectLeadersRequest = req.decode()?;
    if !authz::authorize(
        req.principal(),
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        let msg = "Cluster authorization failed.".to_string();
        return req.respond(&refuse(&r, ResponseError::ClusterAuthorizationFailed, msg));
    }
    if !matches!(r.election_type, PREFERRED | UNCLEAN) {
        let msg = format!("Unknown election type {}", r.election_type);
        return req.respond(&refuse(&r, ResponseError::InvalidRequest, msg));
    }
    let snap = req.ctx.metadata();
    let results = match &r.topic_partitions {
        None => snap
            .topics
            .keys()
            .map(|name| ReplicaElectionResult::default().with_topic(topic_name(name)))
            .collect(),
        Some(topics) => topics
            .iter()
            .map(|t| {
                let name = t.topic.0.as_str();
                let meta = snap.topic(name);
                let partitions = t
                    .partitions
                    .iter()
                    .map(|&p| {
                        let (error, message) = match meta {
                            None => (
                                ResponseError::UnknownTopicOrPartition,
                                format!("No such topic as {name}"),
                            ),
                            Some(m) if p < 0 || p >= m.partitions => (
                                ResponseError::UnknownTopicOrPartition,
                                format!("No such partition as {name}-{p}"),
                            ),
                            Some(_) => (
                                ResponseError::ElectionNotNeeded,
                                "Leader election not needed for topic partition.".to_string(),
                            ),
                        };
                        PartitionResult::default()
                            .with_partition_id(p)
                            .with_error_code(error.code())
                            .with_error_message(Some(sb(&message)))
                    })
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(t.topic.clone())
                    .with_partition_result(partitions)
            })
            .collect(),
    };
    req.respond(&ElectLeadersResponse::default().with_replica_election_results(results))
}
