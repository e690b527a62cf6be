//! OffsetCommit (key 8), v2–v8. Validated against the group's generation, written to the
//! offsets log and acknowledged per its durability policy (see `group::offset_log`). Partitions
//! of unknown topics get UNKNOWN_TOPIC_OR_PARTITION, as in Kafka.

use kafka_protocol::messages::offset_commit_request::OffsetCommitRequest;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};

use super::{HandlerError, Reply, Request};
use crate::group::coordinator::CommitPartition;
use crate::group::shard::on_coordinator;
use crate::group::state::err;

pub const MIN_VERSION: i16 = 2;
pub const MAX_VERSION: i16 = 8;

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: OffsetCommitRequest = req.decode()?;
    let v = req.version;
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
                            leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                            metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
                        });
                        Some(parts.len() - 1)
                    }
                    _ => None,
                })
                .collect(),
        );
    }
    let n = parts.len();
    let member = r.member_id.to_string();
    let instance = r.group_instance_id.as_ref().map(|s| s.to_string());
    let generation = r.generation_id_or_member_epoch;
    let retention = if v <= 4 { r.retention_time_ms } else { -1 };
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
        .unwrap_or_else(|| vec![err::COORDINATOR_NOT_AVAILABLE; n])
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
                                    None => err::UNKNOWN_TOPIC_OR_PARTITION,
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    req.respond(&OffsetCommitResponse::default().with_topics(topics))
}
