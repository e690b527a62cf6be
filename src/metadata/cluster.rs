//! Cluster mode: the replicated image ([`crate::cluster::ClusterImage`]) becomes the shards'
//! snapshots, and controller operations become proposals to the metadata quorum.
//!
//! # Following the image
//! The quorum thread publishes every image it applies (a tokio `watch`: only the latest value is
//! kept). Shard 0 runs [`follow_images`]: for each new image it builds a [`MetadataSnapshot`]
//! (`version` = the image's `applied_index`, topics, broker configs, quotas and the effective
//! settings from it, `cluster` = the image) and publishes it to every shard as the single node
//! does (`controller::publish`: each shard swaps it in, opens the logs of partitions with
//! a replica here, closes and deletes the ones no longer here, then applies the replica roles).
//! A publish that takes long (many partitions to open) does not queue the images that arrived
//! meanwhile: the next round takes the latest one, so shards skip intermediate images but never
//! go backwards. The shard-0 [`MetadataStore`]'s tables are kept equal to the image too, so the
//! existing validation code (configs, partition counts) reads what the cluster has.
//!
//! # Changing it
//! A controller operation validates as on a single node, then proposes its [`MetaCommand`]
//! ([`propose`]): the quorum forwards it to the Raft leader, where it is committed and applied
//! (the image's `apply` validates it again against the state at that point of the log, so two
//! nodes racing to create one topic get one success and one TOPIC_ALREADY_EXISTS). The answer
//! waits until this node's shards have published an image at or past the command's index
//! ([`wait_published`], bounded), so a client that creates a topic and uses it on the same broker
//! at once finds it. Config and quota commands carry the whole new table, computed from this
//! node's latest image: two nodes changing configs at the same time, last writer wins (Kafka's
//! controller serialises them; Ringbolt's proposals are not conditional yet).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use kafka_protocol::ResponseError;

use super::controller::{MetadataStore, publish};
use super::{MetadataSnapshot, TopicError, TopicMeta};
use crate::cluster::image::QuotaEntry;
use crate::cluster::{ClusterImage, MetaCommand, MetaResponse, QuorumError, QuorumHandle};
use crate::config::BrokerSettings;
use crate::config::dynamic::effective_settings;
use crate::shard::{self, ShardCtx};

/// How long an operation waits for its command to reach this node's shards.
pub const PUBLISH_WAIT: Duration = Duration::from_secs(15);

/// The highest image index published to every shard (kept on shard 0).
#[derive(Default)]
struct Published(Cell<u64>);

/// Builds the shards' snapshot of `image` for the node with `static_settings`.
pub fn snapshot_from_image(
    static_settings: &BrokerSettings,
    image: Arc<ClusterImage>,
) -> MetadataSnapshot {
    let topics = image
        .topics
        .values()
        .map(|t| {
            (
                t.name.clone(),
                Arc::new(TopicMeta {
                    name: t.name.clone(),
                    id: t.id,
                    partitions: t.partitions.len() as i32,
                    configs: t.configs.clone(),
                }),
            )
        })
        .collect();
    let node = static_settings.node_id;
    let settings = match effective_settings(static_settings, &image.broker_configs, node) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "dynamic broker configs of the cluster do not validate here; using the static ones");
            static_settings.clone()
        }
    };
    let mut quotas = crate::quota::Quotas::new();
    for q in &image.quotas {
        match crate::quota::Entity::from_parts(
            q.entity.iter().map(|(t, n)| (t.as_str(), n.as_deref())),
        ) {
            Ok(e) => {
                quotas.insert(e, q.values.clone());
            }
            Err(e) => {
                tracing::warn!(entity = ?q.entity, error = %e, "bad quota entity in the cluster image")
            }
        }
    }
    MetadataSnapshot {
        version: image.applied_index,
        topics,
        broker_configs: image.broker_configs.clone(),
        settings: Arc::new(settings),
        quotas: Arc::new(quotas),
        cluster: Some(image),
    }
}

/// Quotas as the image keeps them.
pub fn quota_entries(quotas: &crate::quota::Quotas) -> Vec<QuotaEntry> {
    quotas
        .iter()
        .map(|(e, v)| QuotaEntry {
            entity: e
                .parts()
                .into_iter()
                .map(|(t, n)| (t.to_string(), n.map(String::from)))
                .collect(),
            values: v.clone(),
        })
        .collect()
}

/// Makes the shard-0 store's tables those of `snap` (cluster mode: the image is the truth).
fn sync_store(store: &MetadataStore, snap: &MetadataSnapshot) {
    *store.topics.borrow_mut() = snap.topics.clone();
    *store.broker_configs.borrow_mut() = snap.broker_configs.clone();
    *store.effective.borrow_mut() = snap.settings.clone();
    *store.quotas.borrow_mut() = snap.quotas.clone();
    store.version.set(snap.version);
}

/// Shard 0's task: publishes every new image to the shards until the broker stops (see the
/// module docs).
pub async fn follow_images(ctx: Rc<ShardCtx>, quorum: QuorumHandle) {
    let mut rx = quorum.watch();
    let published = ctx.local_state(Published::default);
    loop {
        let image = rx.borrow_and_update().clone();
        if image.applied_index > published.0.get() {
            let snap = Arc::new(snapshot_from_image(&ctx.info.settings, image.clone()));
            if ctx.with_metadata(|m| m.quotas != snap.quotas) {
                // Usage metered under the old quotas does not carry over to the new ones.
                ctx.info.quota_meters.clear();
            }
            if let Some(store) = &ctx.controller {
                // Not under the store's operation permit: an operation holds it while it waits
                // for its own command to arrive here. Its reads of the tables are not held across
                // an await, so swapping them is safe.
                sync_store(store, &snap);
            }
            let failed = publish(&ctx, snap).await;
            for f in &failed {
                tracing::error!(%f, "partition log could not be opened; retried at the next image");
            }
            published.0.set(image.applied_index);
        }
        if ctx.stopping.is_set() {
            return;
        }
        let stopped = async { rx.changed().await.is_err() }
            .or(async {
                ctx.stopping.wait().await;
                true
            })
            .await;
        if stopped {
            return;
        }
    }
}

/// The highest image index published to every shard of this node (0 before the first).
pub async fn published_index() -> u64 {
    shard::run_on(0, |ctx| async move {
        ctx.local_state(Published::default).0.get()
    })
    .await
    .unwrap_or(0)
}

/// Waits until this node's shards have the image at `index` or later (bounded by
/// [`PUBLISH_WAIT`]; REQUEST_TIMED_OUT past it: the change is committed, this node lags).
pub async fn wait_published(index: u64) -> Result<(), TopicError> {
    let waited = shard::run_on(0, move |ctx| async move {
        let published = ctx.local_state(Published::default);
        let deadline = Instant::now() + PUBLISH_WAIT;
        while published.0.get() < index {
            if Instant::now() >= deadline || ctx.stopping.is_set() {
                return false;
            }
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
        true
    })
    .await
    .map_err(|_| TopicError::ShuttingDown)?;
    if waited {
        Ok(())
    } else {
        Err(TopicError::Cluster(
            ResponseError::RequestTimedOut,
            format!(
                "the change was committed at metadata offset {index} but this broker has not applied it yet"
            ),
        ))
    }
}

/// The quorum of this broker, in cluster mode.
pub fn quorum(ctx: &ShardCtx) -> Option<&QuorumHandle> {
    ctx.info.quorum.as_ref()
}

/// A quorum failure as the Kafka error a client retries on.
pub fn quorum_error(e: QuorumError) -> TopicError {
    match e {
        QuorumError::NoLeader(m) => TopicError::Cluster(
            ResponseError::NotController,
            format!("no active controller: {m}"),
        ),
        QuorumError::Timeout => TopicError::Cluster(
            ResponseError::RequestTimedOut,
            "the metadata quorum did not commit the change in time".into(),
        ),
        QuorumError::Shutdown => TopicError::ShuttingDown,
        QuorumError::Other(m) => TopicError::Cluster(ResponseError::UnknownServerError, m),
    }
}

/// Proposes `cmd`, maps a refusal to its Kafka error, and waits until this node published the
/// result. Returns the command's response.
pub async fn propose(quorum: &QuorumHandle, cmd: MetaCommand) -> Result<MetaResponse, TopicError> {
    let (index, resp) = quorum.propose(cmd).await.map_err(quorum_error)?;
    if let MetaResponse::Error { code, message } = &resp {
        let err = ResponseError::try_from_code(*code).unwrap_or(ResponseError::UnknownServerError);
        return Err(TopicError::Cluster(err, message.clone()));
    }
    wait_published(index).await?;
    Ok(resp)
}

/// A random 64-bit seed (replica placement's starting broker).
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b) ^ crate::util::now_ms() as u64
}

/// Checks a requested replica assignment against the registered brokers: every partition has the
/// same number of replicas (at least one), no broker twice, every broker registered.
pub fn check_assignment(image: &ClusterImage, assignments: &[Vec<i32>]) -> Result<i16, TopicError> {
    let bad = |m: String| TopicError::InvalidReplicaAssignment(m);
    let rf = assignments.first().map(Vec::len).unwrap_or(0);
    if rf == 0 {
        return Err(bad("replica assignment has no replicas".into()));
    }
    for (p, replicas) in assignments.iter().enumerate() {
        if replicas.len() != rf {
            return Err(bad(format!(
                "partition {p} has {} replicas, the others {rf}; all partitions need the same replication factor",
                replicas.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for b in replicas {
            if !seen.insert(*b) {
                return Err(bad(format!("partition {p} names broker {b} twice")));
            }
            if !image.brokers.contains_key(b) {
                return Err(bad(format!("partition {p}: broker {b} is not registered")));
            }
        }
    }
    i16::try_from(rf).map_err(|_| bad(format!("replication factor {rf} is too large")))
}

/// New partitions' replicas from the placement policy; INVALID_REPLICATION_FACTOR when there are
/// fewer live brokers than `rf`.
pub fn place(
    image: &ClusterImage,
    first_partition: i32,
    partitions: i32,
    rf: i16,
) -> Result<Vec<Vec<i32>>, TopicError> {
    if rf < 1 {
        return Err(TopicError::Cluster(
            ResponseError::InvalidReplicationFactor,
            format!("replication factor must be larger than 0, got {rf}"),
        ));
    }
    let live = image.live_brokers().count();
    if rf as usize > live {
        return Err(TopicError::Cluster(
            ResponseError::InvalidReplicationFactor,
            format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {live} broker(s) are registered."
            ),
        ));
    }
    crate::cluster::placement::assign(
        &image.brokers,
        first_partition,
        partitions,
        rf,
        random_seed(),
    )
    .map_err(|e| match e {
        crate::cluster::placement::PlacementError::TooFewBrokers { .. } => {
            TopicError::Cluster(ResponseError::InvalidReplicationFactor, e.to_string())
        }
        crate::cluster::placement::PlacementError::Invalid(m) => {
            TopicError::InvalidReplicaAssignment(m)
        }
    })
}

/// Cluster mode: the broker coordinating internal partition `partition` (of the group or
/// transaction state, 50 each, as on one node): the live broker at `partition % live brokers` in
/// id order, the same on every node that applied the same image. `None` while none is live.
pub fn coordinator_of(
    image: &ClusterImage,
    partition: u32,
) -> Option<&crate::cluster::BrokerRegistration> {
    let live: Vec<_> = image.live_brokers().collect();
    if live.is_empty() {
        return None;
    }
    Some(live[partition as usize % live.len()])
}

/// Whether this broker coordinates internal partition `partition` (always on a single node).
/// Group and transaction state is not replicated yet: a coordinator that moves starts empty.
pub fn coordinates_locally(ctx: &ShardCtx, partition: u32) -> bool {
    ctx.with_metadata(|m| match &m.cluster {
        None => true,
        Some(image) => coordinator_of(image, partition).is_some_and(|b| b.id == ctx.info.node_id),
    })
}
