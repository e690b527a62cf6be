//! Data replication: partition leaders and followers (Kafka's replica manager).
//!
//! In a cluster ([`crate::cluster`]) each shard leads or follows the partitions it owns that have
//! a replica on this broker, as the metadata snapshot says. A leader answers produce and
//! consumer fetches, tracks each follower's log end offset from its fetches, keeps the ISR
//! (shrinks it after `replica.lag.time.max.ms`, expands it when a follower caught up; both through
//! AlterPartition in the metadata log) and advances the high watermark to the ISR's minimum. A
//! follower fetches from the leader (Kafka's Fetch with a replica id), truncates a divergent tail
//! first (OffsetForLeaderEpoch, KIP-101/279) and appends the leader's batches as they are.
//!
//! On a single node (snapshot without `cluster`) every function here is the trivial one: this
//! broker leads everything and `acks=all` waits for the local fdatasync only.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::ResponseError;

use crate::metadata::MetadataSnapshot;
use crate::shard::ShardCtx;
use crate::storage::PartitionLog;

/// Applies the partition roles `snap` gives this shard's logs (become leader / follower at the
/// snapshot's leader epoch, start or stop fetchers). Called by `apply_snapshot` after it opened
/// the logs. No-op on a single node.
pub async fn apply_roles(ctx: &Rc<ShardCtx>, snap: &Arc<MetadataSnapshot>) {
    if snap.cluster.is_none() {
        return;
    }
    let _ = ctx;
    todo!("issue 19: replica roles")
}

/// Whether this broker may take a produce for the partition now: NOT_LEADER_OR_FOLLOWER when it
/// is not the leader; NOT_ENOUGH_REPLICAS for `acks=all` when the ISR is smaller than
/// `min.insync.replicas`.
pub fn check_produce(
    ctx: &ShardCtx,
    topic: &str,
    partition: i32,
    acks: i16,
) -> Result<(), ResponseError> {
    if ctx.with_metadata(|m| m.cluster.is_none()) {
        return Ok(());
    }
    let _ = (topic, partition, acks);
    todo!("issue 19: check produce")
}

/// The `acks=all` wait: the batch ending at `last_offset` is durable on this broker and (in a
/// cluster) replicated to every ISR member. NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank
/// below `min.insync.replicas` meanwhile; NOT_LEADER_OR_FOLLOWER when leadership moved.
pub async fn wait_acks_all(
    ctx: &ShardCtx,
    topic: &str,
    partition: i32,
    log: &PartitionLog,
    last_offset: i64,
) -> Result<(), ResponseError> {
    if ctx.with_metadata(|m| m.cluster.is_none()) {
        return log
            .wait_durable(last_offset)
            .await
            .map_err(|e| e.response_error());
    }
    let _ = (topic, partition);
    todo!("issue 19: wait acks all")
}
