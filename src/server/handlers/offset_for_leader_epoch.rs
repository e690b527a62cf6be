//! OffsetForLeaderEpoch (key 23), v2–v4 (what Kafka 4 serves; kafka-clients 4.x needs v3+ before
//! it validates positions, franz-go and librdkafka use it too): where a leader epoch ended, from
//! the partition's leader epoch cache (`storage::leader_epoch`).
//!
//! Consumers call it after a leader change, a seek, or on resuming from a committed offset that
//! carries an epoch (KIP-320): if the epoch they last saw ended before their position, the log was
//! truncated under them. Per partition, as Kafka's `Partition.lastOffsetForLeaderEpoch`:
//! - unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION;
//! - `current_leader_epoch` (the client's view of the leader's epoch; -1 = no check) below the
//!   partition's leader epoch: FENCED_LEADER_EPOCH; above it: UNKNOWN_LEADER_EPOCH;
//! - else `(leader_epoch, end_offset)` = the cache's `endOffsetFor(leader_epoch, log end)`: the
//!   largest epoch at or below the requested one and the start of the next epoch, or the log end
//!   for the current epoch; -1/-1 when the epoch is unknown (e.g. above the current one).
//!
//! Every partition's leader epoch is [`LEADER_EPOCH`] on this single node, the same epoch Metadata
//! and ListOffsets report and every stored batch carries. `replica_id` (v3+) tells a follower
//! (>= 0) from a consumer (-1) or a debugging tool (-2); a single node answers them alike, as its
//! own log is the leader's. In a cluster the image's leader epoch is the one fenced against, and a
//! broker that does not lead the partition answers NOT_LEADER_OR_FOLLOWER to everyone (followers
//! truncate with this request, against the leader).

use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};

use super::{HandlerError, Reply, Request};
use crate::server::authz::{self, AclOperation, CLUSTER_NAME, ResourceType};
use crate::server::partitions::on_owners;
use crate::shard::ShardCtx;
use crate::storage::leader_epoch::LEADER_EPOCH;

pub const MIN_VERSION: i16 = 2;
pub const MAX_VERSION: i16 = 4;

/// Kafka's `RecordBatch.NO_PARTITION_LEADER_EPOCH`: the client does not ask for fencing.
const NO_LEADER_EPOCH: i32 = -1;

/// (error code, leader epoch, end offset)
type Answer = (i16, i32, i64);

/// Kafka's `Partition.checkCurrentLeaderEpoch`.
fn fence(current_leader_epoch: i32) -> Option<ResponseError> {
    if current_leader_epoch == NO_LEADER_EPOCH {
        None
    } else if current_leader_epoch < LEADER_EPOCH {
        Some(ResponseError::FencedLeaderEpoch)
    } else if current_leader_epoch > LEADER_EPOCH {
        Some(ResponseError::UnknownLeaderEpoch)
    } else {
        None
    }
}

async fn end_offsets_on_owner(ctx: Rc<ShardCtx>, items: Vec<(String, i32, i32)>) -> Vec<Answer> {
    items
        .into_iter()
        .map(
            |(topic, partition, epoch)| match ctx.log(&topic, partition) {
                Some(log) => {
                    let (e, o) = log.end_offset_for_epoch(epoch);
                    (0, e, o)
                }
                None => (ResponseError::UnknownTopicOrPartition.code(), -1, -1),
            },
        )
        .collect()
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: OffsetForLeaderEpochRequest = req.decode()?;
    let ctx = req.ctx.clone();
    let snap = ctx.metadata();
    // Kafka: CLUSTER_ACTION on the cluster (brokers), else DESCRIBE on each topic (consumers).
    let cluster_action = authz::authorize(
        req.principal(),
        AclOperation::ClusterAction,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let mut items = Vec::new();
    let layout: Vec<Vec<Result<usize, i16>>> = r
        .topics
        .iter()
        .map(|t| {
            let name = t.topic.0.as_str();
            let allowed = cluster_action
                || authz::authorize(
                    req.principal(),
                    AclOperation::Describe,
                    ResourceType::Topic,
                    name,
                );
            let meta = snap.topic(name);
            t.partitions
                .iter()
                .map(|p| match meta {
                    _ if !allowed => Err(ResponseError::TopicAuthorizationFailed.code()),
                    Some(m) if p.partition >= 0 && p.partition < m.partitions => {
                        // In a cluster: the leader only, fenced by the image's leader epoch.
                        let refused = match crate::replica::leader_epoch(&ctx, name, p.partition) {
                            Some(_) => crate::replica::check_leader(
                                &ctx,
                                name,
                                p.partition,
                                p.current_leader_epoch,
                            )
                            .err(),
                            None => fence(p.current_leader_epoch),
                        };
                        if let Some(e) = refused {
                            return Err(e.code());
                        }
                        items.push((
                            ctx.owner_of(name, p.partition),
                            (name.to_string(), p.partition, p.leader_epoch),
                        ));
                        Ok(items.len() - 1)
                    }
                    _ => Err(ResponseError::UnknownTopicOrPartition.code()),
                })
                .collect()
        })
        .collect();
    let found = on_owners(items, end_offsets_on_owner, || {
        (ResponseError::NotLeaderOrFollower.code(), -1, -1)
    })
    .await;
    let topics = r
        .topics
        .iter()
        .zip(layout)
        .map(|(t, row)| {
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(row)
                        .map(|(p, slot)| {
                            let (code, epoch, end) = match slot {
                                Ok(i) => found[i],
                                Err(code) => (code, -1, -1),
                            };
                            EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_error_code(code)
                                .with_leader_epoch(epoch)
                                .with_end_offset(end)
                        })
                        .collect(),
                )
        })
        .collect();
    req.respond(&OffsetForLeaderEpochResponse::default().with_topics(topics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_follows_kafka() {
        assert_eq!(fence(-1), None);
        assert_eq!(fence(LEADER_EPOCH), None);
        assert_eq!(
            fence(LEADER_EPOCH + 1),
            Some(ResponseError::UnknownLeaderEpoch)
        );
        assert_eq!(fence(-5), Some(ResponseError::FencedLeaderEpoch));
    }
}
