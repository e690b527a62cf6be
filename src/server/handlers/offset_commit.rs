//! OffsetCommit (key 8), v0–v8. Validated against the group's generation, written to the
//! offsets log and acknowledged per its durability policy (see `group::offset_log`). Partitions
//! of unknown topics get UNKNOWN_TOPIC_OR_PARTITION, as in Kafka.
//!
//! v0–v1 (removed in Kafka 4, KIP-896; `github.com/Shopify/sarama` v1.38.1's ConsumerGroup still
//! commits with v1 by default) are decoded by `protocol::legacy_api` and go to the same offsets
//! store as v2+, so OffsetFetch of any version reads them back:
//! - v1 carries a generation and member id and is validated exactly like v2+ (Kafka 3.x): a
//!   member commits with its current generation (else ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID /
//!   REBALANCE_IN_PROGRESS); generation -1 with an empty member id is a simple commit, accepted
//!   while the group has no members. Its per-partition commit timestamp, unless -1, is stored as
//!   the commit time (retention counts from it), as Kafka 3.x did.
//! - v0 has neither: it is a simple commit (generation -1, empty member id) with the same rules.
//!   Kafka kept v0 offsets in ZooKeeper, outside the group's validation; here they share the
//!   store, so a v0 commit to a group with members is refused (UNKNOWN_MEMBER_ID) rather than
//!   overwriting the members' offsets.
//! - neither has a retention time (the broker default applies) nor a leader epoch.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequest;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};

use super::{HandlerError, Reply, Request};
use crate::group::coordinator::CommitPartition;
use crate::group::shard::on_coordinator;
use crate::protocol::legacy_api;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 8;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let v = req.version;
    // Per partition in request order: the v1 commit timestamp (-1: none).
    let (r, timestamps): (OffsetCommitRequest, Vec<i64>) = if v < 2 {
        legacy_api::decode_offset_commit_v0_v1(&req.body, v).map_err(|e| req.decode_error(e))?
    } else {
        (req.decode()?, Vec::new())
    };
    let mut timestamps = timestamps.into_iter();
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
                .map(|p| {
                    let ts = timestamps.next().unwrap_or(-1);
                    match meta {
                        Some(m) if p.partition_index >= 0 && p.partition_index < m.partitions => {
                            parts.push(CommitPartition {
                                topic: name.to_string(),
                                partition: p.partition_index,
                                offset: p.committed_offset,
                                leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                                metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
                                commit_timestamp: (ts != -1).then_some(ts),
                            });
                            Some(parts.len() - 1)
                        }
                        _ => None,
                    }
                })
                .collect(),
        );
    }
    let n = parts.len();
    let member = r.member_id.to_string();
    let instance = r.group_instance_id.as_ref().map(|s| s.to_string());
    let generation = r.generation_id_or_member_epoch;
    let retention = if (2..=4).contains(&v) {
        r.retention_time_ms
    } else {
        -1
    };
    let g = group.clone();
    let codes = if n == 0 {
        Vec::new()
    } else {
        on_coordinator(&req.ctx, &group, move |c| async move {
            c.commit(
                &g,
                &member,
                instance.as_deref(),
                generation,
                retention,
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
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(row)
                        .map(|(p, slot)| {
                            OffsetCommitResponsePartition::default()
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
    let resp = OffsetCommitResponse::default().with_topics(topics);
    // The v0–v1 response is the v2 layout (header v0, no throttle time).
    req.respond_as(v.max(2), &resp)
}
