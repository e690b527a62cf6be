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
//!
//! # Layout
//! - [`state`]: the per-shard table of replicated partitions (role, epochs, ISR, the leader's
//!   view of its followers) in the shard's type map, and [`apply_roles`]' diff against it.
//! - [`leader`]: the leader's pure rules (high watermark over the maximal ISR, when to expand
//!   and shrink the ISR) and the tasks that apply them (one high-watermark task per led
//!   partition, one ISR-shrink task per shard, AlterPartition proposals).
//! - [`fetcher`]: the follower side: one fetch loop per (shard, leader broker).
//! - [`truncate`]: where a follower cuts its log before fetching (OffsetForLeaderEpoch).
//! - [`client`]: Kafka requests over a glommio TCP connection, encoded by kafka-protocol.
//!
//! # Where the state lives
//! Everything about a partition is touched on its owner shard only (produce, fetch reads,
//! `apply_snapshot` all run there), so the table needs no locks. The connection shard checks
//! leadership against its own copy of the metadata snapshot ([`check_leader`]): every shard
//! receives the same snapshots, and the owner's log role, set from the same snapshot, refuses a
//! write that slips through during a change.

pub mod client;
pub mod fetcher;
pub mod leader;
pub mod state;
pub mod truncate;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;

use crate::cluster::ClusterImage;
use crate::metadata::MetadataSnapshot;
use crate::shard::ShardCtx;
use crate::storage::PartitionLog;

/// Kafka's "no epoch check" value of `current_leader_epoch`.
pub const NO_EPOCH: i32 = -1;

/// The replication settings (Kafka names and defaults). Read once per use from the broker
/// settings; see [`ReplicaSettings::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// `replica.lag.time.max.ms`: an ISR member not caught up for this long is dropped.
    pub lag_time_max: Duration,
    /// `replica.fetch.wait.max.ms`: the follower's Fetch `max_wait_ms`.
    pub fetch_wait_max_ms: i32,
    /// `replica.fetch.max.bytes`: the follower's per-partition and response byte limit.
    pub fetch_max_bytes: i32,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            lag_time_max: Duration::from_millis(30_000),
            fetch_wait_max_ms: 500,
            fetch_max_bytes: 1_048_576,
        }
    }
}

impl ReplicaSettings {
    /// The settings in effect on this broker.
    // TODO(i19-broker): read `replica.lag.time.max.ms`, `replica.fetch.wait.max.ms` and
    // `replica.fetch.max.bytes` from `BrokerSettings` once the broker config carries them; until
    // then Kafka's defaults apply.
    pub fn of(ctx: &ShardCtx) -> Self {
        let _ = ctx;
        ReplicaSettings::default()
    }
}

/// Applies the partition roles `snap` gives this shard's logs (become leader / follower at the
/// snapshot's leader epoch, start or stop fetchers). Called by `apply_snapshot` after it opened
/// the logs. No-op on a single node.
pub async fn apply_roles(ctx: &Rc<ShardCtx>, snap: &Arc<MetadataSnapshot>) {
    let Some(image) = &snap.cluster else {
        return;
    };
    state::apply(ctx, image);
}

/// Kafka's `Partition.checkCurrentLeaderEpoch`: -1 asks for no check; an older epoch than the
/// partition's is fenced, a newer one is not known here yet.
pub fn fence_epoch(requested: i32, current: i32) -> Result<(), ResponseError> {
    if requested == NO_EPOCH || requested == current {
        Ok(())
    } else if requested < current {
        Err(ResponseError::FencedLeaderEpoch)
    } else {
        Err(ResponseError::UnknownLeaderEpoch)
    }
}

/// Whether `image` makes `node` the leader of the partition, checking the client's
/// `current_leader_epoch` too. A partition the image does not know passes (the handlers answer
/// UNKNOWN_TOPIC_OR_PARTITION from their own lookups, as on a single node).
pub fn check_leader_in(
    image: &ClusterImage,
    node: i32,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
) -> Result<(), ResponseError> {
    let Some(p) = image.partition(topic, partition) else {
        return Ok(());
    };
    if p.leader != node {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    fence_epoch(current_leader_epoch, p.leader_epoch)
}

/// For consumer reads (Fetch, ListOffsets, OffsetForLeaderEpoch): in a cluster, a partition this
/// broker does not lead answers NOT_LEADER_OR_FOLLOWER (the client refreshes its metadata), and
/// a `current_leader_epoch` other than the leader's FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH.
/// Always `Ok` on a single node.
pub fn check_leader(
    ctx: &ShardCtx,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
) -> Result<(), ResponseError> {
    ctx.with_metadata(|m| match &m.cluster {
        None => Ok(()),
        Some(image) => check_leader_in(
            image,
            ctx.info.node_id,
            topic,
            partition,
            current_leader_epoch,
        ),
    })
}

/// The partition's leader epoch in a cluster (`None` on a single node or for an unknown
/// partition): what OffsetForLeaderEpoch fences against.
pub fn leader_epoch(ctx: &ShardCtx, topic: &str, partition: i32) -> Option<i32> {
    ctx.with_metadata(|m| {
        m.cluster
            .as_ref()?
            .partition(topic, partition)
            .map(|p| p.leader_epoch)
    })
}

/// `min.insync.replicas` for the topic: its override, else the broker's setting.
fn min_insync(snap: &MetadataSnapshot, topic: &str) -> usize {
    let over = snap
        .topic(topic)
        .and_then(|t| t.configs.get("min.insync.replicas"))
        .and_then(|v| v.parse::<i32>().ok());
    over.unwrap_or(snap.settings.min_insync_replicas).max(1) as usize
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
    ctx.with_metadata(|m| {
        let Some(image) = &m.cluster else {
            return Ok(());
        };
        let Some(p) = image.partition(topic, partition) else {
            // The produce handler answers UNKNOWN_TOPIC_OR_PARTITION from its own lookup.
            return Ok(());
        };
        if p.leader != ctx.info.node_id {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        if acks == -1 && p.isr.len() < min_insync(m, topic) {
            return Err(ResponseError::NotEnoughReplicas);
        }
        Ok(())
    })
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
    log.wait_durable(last_offset)
        .await
        .map_err(|e| e.response_error())?;
    // Ends with NOT_LEADER_OR_FOLLOWER when the log stops leading at the epoch it was
    // appended under (storage's contract): a new leader may not have this batch.
    log.wait_high_watermark(last_offset)
        .await
        .map_err(|e| e.response_error())?;
    ctx.with_metadata(|m| {
        let Some(p) = m
            .cluster
            .as_ref()
            .and_then(|i| i.partition(topic, partition))
        else {
            return Err(ResponseError::NotLeaderOrFollower);
        };
        if p.leader != ctx.info.node_id {
            // The high watermark passed the batch while this broker led: the ISR had it. The
            // metadata moved on since; the batch is replicated, so it is acknowledged.
            return Ok(());
        }
        if p.isr.len() < min_insync(m, topic) {
            return Err(ResponseError::NotEnoughReplicasAfterAppend);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{PartitionState, TopicImage};

    fn image(leader: i32, epoch: i32) -> ClusterImage {
        let mut img = ClusterImage::default();
        img.topics.insert(
            "t".into(),
            TopicImage {
                name: "t".into(),
                id: uuid::Uuid::nil(),
                configs: Default::default(),
                partitions: vec![PartitionState {
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2, 3],
                    leader,
                    leader_epoch: epoch,
                    partition_epoch: 0,
                }],
            },
        );
        img
    }

    #[test]
    fn epoch_fencing_follows_kafka() {
        assert_eq!(fence_epoch(NO_EPOCH, 5), Ok(()));
        assert_eq!(fence_epoch(5, 5), Ok(()));
        assert_eq!(fence_epoch(4, 5), Err(ResponseError::FencedLeaderEpoch));
        assert_eq!(fence_epoch(6, 5), Err(ResponseError::UnknownLeaderEpoch));
    }

    #[test]
    fn only_the_leader_serves() {
        let img = image(2, 3);
        assert_eq!(check_leader_in(&img, 2, "t", 0, -1), Ok(()));
        assert_eq!(check_leader_in(&img, 2, "t", 0, 3), Ok(()));
        assert_eq!(
            check_leader_in(&img, 1, "t", 0, -1),
            Err(ResponseError::NotLeaderOrFollower)
        );
        assert_eq!(
            check_leader_in(&img, 2, "t", 0, 2),
            Err(ResponseError::FencedLeaderEpoch)
        );
        // Unknown partitions are the handlers' own business.
        assert_eq!(check_leader_in(&img, 1, "t", 7, -1), Ok(()));
        assert_eq!(check_leader_in(&img, 1, "u", 0, -1), Ok(()));
        // No leader at all.
        let img = image(crate::cluster::image::NO_LEADER, 4);
        assert_eq!(
            check_leader_in(&img, 1, "t", 0, -1),
            Err(ResponseError::NotLeaderOrFollower)
        );
    }
}
