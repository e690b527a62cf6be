//! CreatePartitions (key 37), v0–v3: raises a topic's partition count; the new partitions are open
//! on their shards before the answer. Per topic: INVALID_PARTITIONS (not an increase, above the
//! limit), INVALID_REPLICA_ASSIGNMENT (an assignment that does not give each new partition to
//! this broker alone), UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST (topic named twice).
//! `validate_only` checks without changing anything. A client over its `controller_mutation_rate`
//! gets THROTTLING_QUOTA_EXCEEDED from v3 (see [`crate::quota`]).
//!
//! In a cluster an assignment names any registered brokers (one list per new partition, all as
//! long as the topic's replication factor); without one the placement policy chooses.

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};

use super::{HandlerError, Reply, Request};
use crate::metadata::{TopicError, alter};
use crate::protocol::errors::NONE;
use crate::server::mutation_quota::{EXCEEDED_MESSAGE, MutationQuota};
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 3;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: CreatePartitionsRequest = req.decode()?;
    let node = req.ctx.info.node_id;
    let dups = crate::util::repeated(r.topics.iter().map(|t| t.name.0.as_str()));
    let mut quota = MutationQuota::for_request(&req, 3);
    let mut results = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        let name = t.name.0.as_str();
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let current = req.ctx.metadata().topic(name).map(|m| m.partitions);
        let outcome = if dups.contains(name) {
            Err(TopicError::InvalidRequest(format!(
                "Duplicate topic in request: {name}"
            )))
        } else if let Err(code) = quota.admit() {
            results.push(
                result
                    .with_error_code(code)
                    .with_error_message(Some(sb(EXCEEDED_MESSAGE))),
            );
            continue;
        } else {
            if req.ctx.info.quorum.is_some() {
                // The controller checks the brokers of a given assignment (`metadata::cluster`).
                match cluster_assignments(t, current) {
                    Ok(a) => {
                        alter::create_partitions_assigned(
                            name.to_string(),
                            t.count,
                            a,
                            r.validate_only,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                }
            } else {
                match check_assignments(t, node, current) {
                    Ok(()) => {
                        alter::create_partitions(name.to_string(), t.count, r.validate_only).await
                    }
                    Err(e) => Err(e),
                }
            }
        };
        results.push(match outcome {
            Ok(()) => {
                quota.record(t.count - current.unwrap_or(t.count));
                result.with_error_code(NONE)
            }
            Err(e) => {
                tracing::info!(topic = %name, error = %e, "create partitions refused");
                result
                    .with_error_code(e.error_code())
                    .with_error_message(Some(sb(&e.to_string())))
            }
        });
    }
    let throttle = quota.finish(&req);
    req.respond(
        &CreatePartitionsResponse::default()
            .with_throttle_time_ms(throttle)
            .with_results(results),
    )
}

/// Cluster mode: the given assignment as replica lists, one per new partition.
fn cluster_assignments(
    t: &CreatePartitionsTopic,
    current: Option<i32>,
) -> Result<Option<Vec<Vec<i32>>>, TopicError> {
    let (Some(assignments), Some(current)) = (&t.assignments, current) else {
        return Ok(None);
    };
    let added = t.count - current;
    if added > 0 && assignments.len() as i32 != added {
        return Err(TopicError::InvalidReplicaAssignment(format!(
            "Increasing the number of partitions by {added} but {} assignments provided.",
            assignments.len()
        )));
    }
    Ok(Some(
        assignments
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect(),
    ))
}

/// A given assignment must have one entry per new partition, each naming this broker and only it
/// (one broker holds one replica). An unknown topic is left to the controller's answer.
fn check_assignments(
    t: &CreatePartitionsTopic,
    node: i32,
    current: Option<i32>,
) -> Result<(), TopicError> {
    let (Some(assignments), Some(current)) = (&t.assignments, current) else {
        return Ok(());
    };
    let added = t.count - current;
    if added > 0 && assignments.len() as i32 != added {
        return Err(TopicError::InvalidReplicaAssignment(format!(
            "Increasing the number of partitions by {added} but {} assignments provided.",
            assignments.len()
        )));
    }
    if let Some(bad) = assignments
        .iter()
        .find(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != node)
    {
        let ids: Vec<i32> = bad.broker_ids.iter().map(|b| b.0).collect();
        return Err(TopicError::InvalidReplicaAssignment(format!(
            "Replica assignment {ids:?} must be exactly this broker [{node}]"
        )));
    }
    Ok(())
}
