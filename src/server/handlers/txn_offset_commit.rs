//! TxnOffsetCommit (key 28), v0–v5: a transactional producer commits a consumer group's offsets
//! as part of its transaction (`sendOffsetsToTransaction`, KIP-98; the consume–transform–produce
//! loop of exactly-once). Routed to the group's coordinator shard, written there into the
//! group's `__consumer_offsets` partition as a transactional batch of the producer, and answered
//! once durable; the offsets stay pending — invisible to OffsetFetch — until the transaction
//! coordinator ends the transaction (`group::shard::complete_txn`): COMMIT makes them the group's
//! committed offsets, ABORT drops them.
//!
//! Versions (request and response layouts from kafka-protocol):
//! - v0–v2 name no member: accepted for any group state (Kafka's rule for anonymous
//!   transactional commits). v2 adds the committed leader epoch.
//! - v3+ (KIP-447, flexible) carry the consumer's generation id, member id and group instance
//!   id, fenced like an OffsetCommit of that member: UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
//!   ILLEGAL_GENERATION (a group this coordinator does not know: ILLEGAL_GENERATION, unless the
//!   generation is -1, which creates it Empty as a standalone commit does). A zombie consumer of an
//!   old generation thus cannot commit offsets into a new transaction.
//! - v4 is v3 with the producer-side retry semantics of KIP-890 part 1 (no layout change); v5
//!   (KIP-890 part 2, transaction version 2) lets the group coordinator add the offsets partition
//!   to the transaction implicitly. This broker does not advertise the `transaction.version`
//!   feature, so clients send AddOffsetsToTxn first and v5 is answered exactly like v4.
//!
//! Per partition, as Kafka answers: UNKNOWN_TOPIC_OR_PARTITION for a partition that does not
//! exist, OFFSET_METADATA_TOO_LARGE over `offset.metadata.max.bytes`; group-level failures
//! (INVALID_GROUP_ID, COORDINATOR_NOT_AVAILABLE, the fencing codes, INVALID_PRODUCER_EPOCH for a
//! producer whose newer epoch already wrote to the partition) on every partition.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequest;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};

use super::{HandlerError, Reply, Request};
use crate::group::coordinator::CommitPartition;
use crate::group::shard::on_coordinator;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let v = req.version;
    let r: TxnOffsetCommitRequest = req.decode()?;
    let group = r.group_id.0.to_string();
    let snap = req.ctx.metadata();
    // Per request partition: Some(index into `parts`) or None (unknown topic/partition).
    let mut slots: Vec<Vec<Option<usize>>> = Vec::with_capacity(r.topics.len());
    let mut parts = Vec::new();
    for t in &r.topics {
        let name = t.name.0.as_str();
        let meta = snap.topic(name);
        slots.push(
            t.partitions
                .iter()
                .map(|p| match meta {
                    Some(m) if p.partition_index >= 0 && p.partition_index < m.partitions => {
                        parts.push(CommitPartition {
                            topic: name.to_string(),
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            leader_epoch: if v >= 2 { p.committed_leader_epoch } else { -1 },
                            metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
                            commit_timestamp: None,
                        });
                        Some(parts.len() - 1)
                    }
                    _ => None,
                })
                .collect(),
        );
    }
    drop(snap);
    let n = parts.len();
    let (member, instance, generation) = if v >= 3 {
        (
            r.member_id.to_string(),
            r.group_instance_id.as_ref().map(|s| s.to_string()),
            r.generation_id,
        )
    } else {
        (String::new(), None, -1)
    };
    let producer_id = r.producer_id.0;
    let producer_epoch = r.producer_epoch;
    let g = group.clone();
    let codes = if n == 0 {
        Vec::new()
    } else {
        on_coordinator(&req.ctx, &group, move |c| async move {
            c.txn_commit(
                &g,
                &member,
                instance.as_deref(),
                generation,
                producer_id,
                producer_epoch,
                parts,
            )
            .await
        })
        .await
        .unwrap_or_else(|| vec![ResponseError::CoordinatorNotAvailable.code(); n])
    };
    let topics = r
        .topics
        .iter()
        .zip(slots)
        .map(|(t, row)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(row)
                        .map(|(p, slot)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(match slot {
                                    Some(i) => codes[i],
                                    None => ResponseError::UnknownTopicOrPartition.code(),
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    req.respond(&TxnOffsetCommitResponse::default().with_topics(topics))
}
