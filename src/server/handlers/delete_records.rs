//! DeleteRecords (key 21), v0–v2 (all Kafka 4 serves; kafka-clients 4.x sends v2, franz-go and
//! librdkafka the highest the broker offers): moves each partition's log start offset, as
//! `kafka-delete-records` and `Admin.deleteRecords` ask.
//!
//! Per partition, as Kafka's `ReplicaManager.deleteRecordsOnLocalLog` / `Partition.deleteRecordsOnLeader`:
//! - unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION; a topic whose `cleanup.policy`
//!   lacks `delete` (compacted only): POLICY_VIOLATION;
//! - offset -1 means the high watermark; a negative offset otherwise, or one above the high
//!   watermark: OFFSET_OUT_OF_RANGE, nothing changed;
//! - otherwise the owner shard moves the log start there (never backwards), deletes the segments
//!   wholly below it and answers `low_watermark` = the log start afterwards, once the move is
//!   durable (`storage::log_start`). Errors answer `low_watermark` -1.
//!
//! A partition listed twice is answered once, for its last offset, as Kafka does. `timeout_ms`
//! is for waiting on followers; a single node answers as soon as its own log is done.

use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};

use super::{HandlerError, Reply, Request};
use crate::metadata::TopicMeta;
use crate::protocol::errors;
use crate::server::authz::{self, AclOperation, ResourceType};
use crate::server::partitions::on_owners;
use crate::shard::ShardCtx;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

/// (error code, low watermark)
type Outcome = (i16, i64);

/// On the owner shard: moves each partition's log start.
async fn delete_on_owner(ctx: Rc<ShardCtx>, items: Vec<(String, i32, i64)>) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(items.len());
    for (topic, partition, offset) in items {
        let Some(log) = ctx.log(&topic, partition) else {
            out.push((ResponseError::UnknownTopicOrPartition.code(), -1));
            continue;
        };
        out.push(match log.delete_records(offset).await {
            Ok(low) => (errors::NONE, low),
            Err(e) => {
                tracing::info!(%topic, partition, offset, error = %e, "DeleteRecords refused");
                (e.error_code(), -1)
            }
        });
    }
    out
}

/// Whether the topic's effective cleanup policy (its own, else the broker's `log.cleanup.policy`)
/// allows deleting records (Kafka's `LogConfig.delete`).
fn policy_allows_delete(topic: &TopicMeta, settings: &crate::config::BrokerSettings) -> bool {
    let policy = topic
        .configs
        .get("cleanup.policy")
        .unwrap_or(&settings.log_cleanup_policy);
    crate::storage::CleanupPolicy::parse(policy).is_none_or(|p| p.delete)
}

/// The request's partitions by topic, in first-seen order; a partition listed twice counts once,
/// with its last offset (Kafka collects them into a map keyed by partition).
fn dedup(r: &DeleteRecordsRequest) -> Vec<(TopicName, Vec<(i32, i64)>)> {
    let mut out: Vec<(TopicName, Vec<(i32, i64)>)> = Vec::new();
    for t in &r.topics {
        let i = match out.iter().position(|(n, _)| *n == t.name) {
            Some(i) => i,
            None => {
                out.push((t.name.clone(), Vec::new()));
                out.len() - 1
            }
        };
        let parts = &mut out[i].1;
        for p in &t.partitions {
            match parts.iter_mut().find(|(idx, _)| *idx == p.partition_index) {
                Some(slot) => slot.1 = p.offset,
                None => parts.push((p.partition_index, p.offset)),
            }
        }
    }
    out
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DeleteRecordsRequest = req.decode()?;
    let ctx = req.ctx.clone();
    let snap = ctx.metadata();
    let wanted = dedup(&r);
    let mut items = Vec::new();
    // Per partition: the index of its work item, or its error.
    let layout: Vec<Vec<Result<usize, i16>>> = wanted
        .iter()
        .map(|(topic, parts)| {
            let name = topic.0.as_str();
            let allowed = authz::authorize(
                req.principal(),
                AclOperation::Delete,
                ResourceType::Topic,
                name,
            );
            let meta = snap.topic(name);
            parts
                .iter()
                .map(|&(partition, offset)| match meta {
                    _ if !allowed => Err(ResponseError::TopicAuthorizationFailed.code()),
                    Some(m) if partition >= 0 && partition < m.partitions => {
                        if !policy_allows_delete(m, &snap.settings) {
                            return Err(ResponseError::PolicyViolation.code());
                        }
                        items.push((
                            ctx.owner_of(name, partition),
                            (name.to_string(), partition, offset),
                        ));
                        Ok(items.len() - 1)
                    }
                    _ => Err(ResponseError::UnknownTopicOrPartition.code()),
                })
                .collect()
        })
        .collect();
    let done = on_owners(items, delete_on_owner, || {
        (ResponseError::NotLeaderOrFollower.code(), -1)
    })
    .await;
    let topics = wanted
        .into_iter()
        .zip(layout)
        .map(|((name, parts), row)| {
            DeleteRecordsTopicResult::default()
                .with_name(name)
                .with_partitions(
                    parts
                        .iter()
                        .zip(row)
                        .map(|(&(partition, _), slot)| {
                            let (code, low) = match slot {
                                Ok(i) => done[i],
                                Err(code) => (code, -1),
                            };
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(partition)
                                .with_low_watermark(low)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    req.respond(&DeleteRecordsResponse::default().with_topics(topics))
}
