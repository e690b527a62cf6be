//! The controller role: the mutable topic store on shard 0, its persistence, and publication of
//! snapshots to every shard. Callable from any shard; the work always runs on shard 0.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    MAX_PARTITIONS, MetadataSnapshot, TopicError, TopicMeta, partition_dir, validate_topic_name,
};
use crate::config::BrokerSettings;
use crate::config::dynamic::{BrokerOverrides, effective_settings};
use crate::shard::{self, ShardCtx};
use crate::storage::PartitionLog;

/// Name of the metadata file inside the data dir.
pub const METADATA_FILE: &str = "ringbolt-metadata.json";

#[derive(Serialize, Deserialize)]
struct PersistedTopic {
    name: String,
    id: String,
    partitions: i32,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Default)]
struct PersistedMetadata {
    version: u64,
    #[serde(default)]
    cluster_id: Option<String>,
    topics: Vec<PersistedTopic>,
    /// Dynamic broker configs: `""` the cluster-wide default layer, a node id that broker's.
    #[serde(default)]
    broker_configs: BrokerOverrides,
    #[serde(default)]
    quotas: Vec<PersistedQuota>,
}

#[derive(Serialize, Deserialize)]
struct PersistedQuota {
    /// (entity type, name); a null name is the default entity (`<default>`).
    entity: Vec<(String, Option<String>)>,
    values: BTreeMap<String, f64>,
}

/// The one mutable copy of the topic table and the dynamic broker configs (lives on shard 0).
pub struct MetadataStore {
    path: PathBuf,
    pub(super) topics: RefCell<BTreeMap<String, Arc<TopicMeta>>>,
    pub(super) broker_configs: RefCell<BrokerOverrides>,
    /// The settings from the command line and config file, under the dynamic layers.
    pub(super) static_settings: Arc<BrokerSettings>,
    /// `static_settings` with `broker_configs` applied, recomputed when those change.
    pub(super) effective: RefCell<Arc<BrokerSettings>>,
    pub(super) quotas: RefCell<Arc<crate::quota::Quotas>>,
    pub(super) version: Cell<u64>,
    cluster_id: String,
    /// Serialises controller operations (validate → persist → publish).
    pub(super) op: glommio::sync::Semaphore,
}

fn random_uuid() -> std::io::Result<uuid::Uuid> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(uuid::Builder::from_random_bytes(b).into_uuid())
}

impl MetadataStore {
    /// Loads `<data_dir>/ringbolt-metadata.json` (or starts empty) and applies its dynamic broker
    /// configs to `settings` (a layer that no longer validates is logged and left out, as Kafka
    /// does). Call before the shards start.
    pub fn load_snapshot(
        data_dir: &Path,
        settings: &BrokerSettings,
    ) -> anyhow::Result<(Arc<MetadataSnapshot>, String)> {
        let path = data_dir.join(METADATA_FILE);
        let persisted: PersistedMetadata = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PersistedMetadata::default(),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        let mut topics = BTreeMap::new();
        for t in persisted.topics {
            let id = uuid::Uuid::parse_str(&t.id)
                .map_err(|e| anyhow::anyhow!("{}: topic {}: {e}", path.display(), t.name))?;
            topics.insert(
                t.name.clone(),
                Arc::new(TopicMeta {
                    name: t.name,
                    id,
                    partitions: t.partitions,
                    configs: t.configs,
                }),
            );
        }
        let cluster_id = match persisted.cluster_id {
            Some(c) => c,
            None => random_uuid()?.simple().to_string(),
        };
        let mut broker_configs = persisted.broker_configs;
        let effective = match effective_settings(settings, &broker_configs, settings.node_id) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, file = %path.display(), "dynamic broker configs do not validate; starting without them");
                broker_configs.clear();
                settings.clone()
            }
        };
        Ok((
            Arc::new(MetadataSnapshot {
                version: persisted.version,
                topics,
                broker_configs,
                settings: Arc::new(effective),
                quotas: Arc::new(load_quotas(persisted.quotas, &path)?),
                cluster: None,
            }),
            cluster_id,
        ))
    }

    pub(crate) fn new(
        data_dir: &Path,
        snap: &MetadataSnapshot,
        cluster_id: String,
        static_settings: Arc<BrokerSettings>,
    ) -> Self {
        MetadataStore {
            path: data_dir.join(METADATA_FILE),
            topics: RefCell::new(snap.topics.clone()),
            broker_configs: RefCell::new(snap.broker_configs.clone()),
            static_settings,
            effective: RefCell::new(snap.settings.clone()),
            quotas: RefCell::new(snap.quotas.clone()),
            version: Cell::new(snap.version),
            cluster_id,
            op: glommio::sync::Semaphore::new(1),
        }
    }

    pub(super) fn snapshot(&self) -> Arc<MetadataSnapshot> {
        Arc::new(MetadataSnapshot {
            version: self.version.get(),
            topics: self.topics.borrow().clone(),
            broker_configs: self.broker_configs.borrow().clone(),
            settings: self.effective.borrow().clone(),
            quotas: self.quotas.borrow().clone(),
            cluster: None,
        })
    }

    /// Bumps the version for a change made to the tables (before persisting it).
    pub(super) fn bump(&self) {
        self.version.set(self.version.get() + 1);
    }

    /// Writes the file atomically: temp file, fsync, rename, fsync of the directory.
    ///
    /// Blocking file I/O on the executor thread, deliberately: it happens only on topic
    /// create/delete (rare, a few KiB) and keeping it inline keeps the ordering obvious.
    pub(super) fn persist(&self) -> std::io::Result<()> {
        let topics = self.topics.borrow();
        let doc = PersistedMetadata {
            version: self.version.get(),
            cluster_id: Some(self.cluster_id.clone()),
            topics: topics
                .values()
                .map(|t| PersistedTopic {
                    name: t.name.clone(),
                    id: t.id.to_string(),
                    partitions: t.partitions,
                    configs: t.configs.clone(),
                })
                .collect(),
            broker_configs: self.broker_configs.borrow().clone(),
            quotas: self
                .quotas
                .borrow()
                .iter()
                .map(|(e, v)| PersistedQuota {
                    entity: e
                        .parts()
                        .into_iter()
                        .map(|(t, n)| (t.to_string(), n.map(String::from)))
                        .collect(),
                    values: v.clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn load_quotas(
    persisted: Vec<PersistedQuota>,
    path: &Path,
) -> anyhow::Result<crate::quota::Quotas> {
    persisted
        .into_iter()
        .map(|q| {
            let entity = crate::quota::Entity::from_parts(
                q.entity.iter().map(|(t, n)| (t.as_str(), n.as_deref())),
            )
            .map_err(|e| anyhow::anyhow!("{}: quota entity {:?}: {e}", path.display(), q.entity))?;
            Ok((entity, q.values))
        })
        .collect()
}

/// A request to create one topic.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 = broker default (`num.partitions`).
    pub partitions: i32,
    /// -1 = broker default (`default.replication.factor`); a single node accepts only 1.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Cluster mode: the replicas of each partition, preferred leader first (CreateTopics'
    /// `assignments`); `None` lets the placement policy choose.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// Creates a topic (or only validates it). Runs on the controller shard; returns after every shard
/// has the new metadata and the owners have opened the partition logs.
pub async fn create_topic(
    topic: NewTopic,
    validate_only: bool,
) -> Result<Arc<TopicMeta>, TopicError> {
    if let Some(ctx) = shard::current()
        && let Some(quorum) = ctx.info.quorum.clone()
    {
        return create_in_cluster(&ctx, &quorum, topic, validate_only).await;
    }
    shard::run_on(0, move |ctx| async move {
        let store = ctx.controller.clone().ok_or(TopicError::ShuttingDown)?;
        create_on_controller(&ctx, &store, topic, validate_only).await
    })
    .await
    .map_err(|_| TopicError::ShuttingDown)?
}

async fn create_on_controller(
    ctx: &Rc<ShardCtx>,
    store: &MetadataStore,
    topic: NewTopic,
    validate_only: bool,
) -> Result<Arc<TopicMeta>, TopicError> {
    validate_topic_name(&topic.name)?;
    let settings = ctx.settings();
    let partitions = if topic.partitions == -1 {
        settings.num_partitions
    } else {
        topic.partitions
    };
    if !(1..=MAX_PARTITIONS).contains(&partitions) {
        return Err(TopicError::InvalidPartitions {
            got: partitions,
            max: MAX_PARTITIONS,
        });
    }
    if topic.replication_factor != -1 && topic.replication_factor != 1 {
        return Err(TopicError::InvalidReplicationFactor(
            topic.replication_factor,
        ));
    }
    settings
        .validate_topic_configs(&topic.configs)
        .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
    let _permit = store
        .op
        .acquire_permit(1)
        .await
        .map_err(|_| TopicError::ShuttingDown)?;
    if store.topics.borrow().contains_key(&topic.name) {
        return Err(TopicError::AlreadyExists(topic.name));
    }
    let meta = Arc::new(TopicMeta {
        id: random_uuid().map_err(|e| TopicError::Storage(e.to_string()))?,
        name: topic.name,
        partitions,
        configs: topic.configs,
    });
    if validate_only {
        return Ok(meta);
    }
    store
        .topics
        .borrow_mut()
        .insert(meta.name.clone(), meta.clone());
    store.version.set(store.version.get() + 1);
    if let Err(e) = store.persist() {
        store.topics.borrow_mut().remove(&meta.name);
        store.version.set(store.version.get() + 1);
        tracing::error!(topic = %meta.name, error = %e, "persisting metadata failed");
        return Err(TopicError::Storage(e.to_string()));
    }
    let failed = publish(ctx, store.snapshot()).await;
    if let Some(first) = failed.first() {
        // A topic whose partitions cannot all be opened (out of file descriptors, a full or
        // read-only disk) must not be reported as created: take it back, so that the owners that
        // did open their partitions close and remove them again, and the client gets the reason.
        tracing::error!(
            topic = %meta.name,
            failed = failed.len(),
            first = %first,
            "created topic's partitions could not all be opened; rolling the topic back"
        );
        store.topics.borrow_mut().remove(&meta.name);
        store.version.set(store.version.get() + 1);
        if let Err(e) = store.persist() {
            tracing::error!(topic = %meta.name, error = %e, "persisting the rollback failed");
        }
        publish(ctx, store.snapshot()).await;
        for f in &failed {
            // Fresh directories of a topic that never existed: nothing in them was acknowledged.
            if let Err(e) = std::fs::remove_dir_all(&f.dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %f.dir.display(), error = %e, "removing partition dir failed");
            }
        }
        return Err(TopicError::Storage(format!(
            "{} of {partitions} partitions could not be opened, first {first}",
            failed.len()
        )));
    }
    tracing::info!(topic = %meta.name, partitions, id = %meta.id, "created topic");
    Ok(meta)
}

/// Cluster mode: validates as [`create_on_controller`] does, places the replicas (or checks the
/// given assignment) and proposes the topic to the metadata quorum (see [`super::cluster`]).
async fn create_in_cluster(
    ctx: &Rc<ShardCtx>,
    quorum: &crate::cluster::QuorumHandle,
    topic: NewTopic,
    validate_only: bool,
) -> Result<Arc<TopicMeta>, TopicError> {
    use super::cluster;
    validate_topic_name(&topic.name)?;
    let settings = ctx.settings();
    let image = quorum.image();
    let assignments = match topic.assignments {
        Some(a) => {
            cluster::check_assignment(&image, &a)?;
            a
        }
        None => {
            let partitions = if topic.partitions == -1 {
                settings.num_partitions
            } else {
                topic.partitions
            };
            if !(1..=MAX_PARTITIONS).contains(&partitions) {
                return Err(TopicError::InvalidPartitions {
                    got: partitions,
                    max: MAX_PARTITIONS,
                });
            }
            let rf = if topic.replication_factor == -1 {
                settings.default_replication_factor
            } else {
                topic.replication_factor
            };
            cluster::place(&image, 0, partitions, rf)?
        }
    };
    if assignments.len() as i32 > MAX_PARTITIONS {
        return Err(TopicError::InvalidPartitions {
            got: assignments.len() as i32,
            max: MAX_PARTITIONS,
        });
    }
    settings
        .validate_topic_configs(&topic.configs)
        .map_err(|e| TopicError::InvalidConfig(e.to_string()))?;
    if image.topics.contains_key(&topic.name) {
        return Err(TopicError::AlreadyExists(topic.name));
    }
    let meta = Arc::new(TopicMeta {
        id: random_uuid().map_err(|e| TopicError::Storage(e.to_string()))?,
        name: topic.name,
        partitions: assignments.len() as i32,
        configs: topic.configs,
    });
    if validate_only {
        return Ok(meta);
    }
    let cmd = crate::cluster::MetaCommand::CreateTopic {
        name: meta.name.clone(),
        id: meta.id,
        assignments,
        configs: meta.configs.clone(),
    };
    cluster::propose(quorum, cmd).await.map_err(|e| match e {
        // The image's own check: someone else created it first.
        TopicError::Cluster(kafka_protocol::ResponseError::TopicAlreadyExists, _) => {
            TopicError::AlreadyExists(meta.name.clone())
        }
        e => e,
    })?;
    tracing::info!(topic = %meta.name, partitions = meta.partitions, id = %meta.id, "created topic in the cluster");
    Ok(meta)
}

/// Runs `op` on the controller shard with the store's operation permit held, so that controller
/// operations that read the tables and then change them never interleave.
pub(super) async fn serialized<T, F, Fut>(op: F) -> Result<T, TopicError>
where
    F: FnOnce(Rc<ShardCtx>, Rc<MetadataStore>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, TopicError>> + 'static,
    T: Send + 'static,
{
    shard::run_on(0, move |ctx| async move {
        let store = ctx.controller.clone().ok_or(TopicError::ShuttingDown)?;
        let _permit = store
            .op
            .acquire_permit(1)
            .await
            .map_err(|_| TopicError::ShuttingDown)?;
        op(ctx, store.clone()).await
    })
    .await
    .map_err(|_| TopicError::ShuttingDown)?
}

/// Which topic to delete.
#[derive(Debug, Clone)]
pub enum TopicRef {
    Name(String),
    Id(uuid::Uuid),
}

/// Deletes a topic: metadata first (persisted), then every owner closes and removes its partition
/// directories. Returns the deleted topic.
pub async fn delete_topic(topic: TopicRef) -> Result<Arc<TopicMeta>, TopicError> {
    if let Some(ctx) = shard::current()
        && let Some(quorum) = ctx.info.quorum.clone()
    {
        let snap = ctx.metadata();
        let removed = match &topic {
            TopicRef::Name(n) => snap
                .topic(n)
                .cloned()
                .ok_or_else(|| TopicError::UnknownTopic(n.clone()))?,
            TopicRef::Id(id) => snap
                .topic_by_id(*id)
                .cloned()
                .ok_or(TopicError::UnknownTopicId(*id))?,
        };
        let cmd = crate::cluster::MetaCommand::DeleteTopic {
            name: removed.name.clone(),
        };
        super::cluster::propose(&quorum, cmd).await?;
        tracing::info!(topic = %removed.name, "deleted topic in the cluster");
        return Ok(removed);
    }
    serialized(move |ctx, store| async move {
        let name = match &topic {
            TopicRef::Name(n) => n.clone(),
            TopicRef::Id(id) => store
                .topics
                .borrow()
                .values()
                .find(|t| t.id == *id)
                .map(|t| t.name.clone())
                .ok_or(TopicError::UnknownTopicId(*id))?,
        };
        let removed = store
            .topics
            .borrow_mut()
            .remove(&name)
            .ok_or_else(|| TopicError::UnknownTopic(name.clone()))?;
        store.version.set(store.version.get() + 1);
        if let Err(e) = store.persist() {
            store.topics.borrow_mut().insert(name.clone(), removed);
            store.version.set(store.version.get() + 1);
            tracing::error!(topic = %name, error = %e, "persisting metadata failed");
            return Err(TopicError::Storage(e.to_string()));
        }
        tracing::info!(topic = %name, "deleted topic");
        publish(&ctx, store.snapshot()).await;
        Ok(removed)
    })
    .await
}

/// Sends `snap` to every shard and waits until each applied it; returns the partitions that
/// could not be opened.
pub(super) async fn publish(ctx: &Rc<ShardCtx>, snap: Arc<MetadataSnapshot>) -> Vec<OpenFailure> {
    let mut failed = Vec::new();
    for s in 0..ctx.n_shards {
        let snap = snap.clone();
        match shard::run_on(s, move |c| async move { apply_snapshot(&c, snap).await }).await {
            Ok(f) => failed.extend(f),
            Err(e) => tracing::warn!(shard = s, error = %e, "publishing metadata failed"),
        }
    }
    failed
}

/// A partition log that `apply_snapshot` could not open.
#[derive(Debug, Clone)]
pub struct OpenFailure {
    pub dir: std::path::PathBuf,
    pub error: String,
}

impl std::fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "opening partition log {}: {}",
            self.dir.display(),
            self.error
        )
    }
}

/// Installs a newer snapshot on this shard: closes and removes logs of topics that are gone, opens
/// the logs this shard owns that are not open yet. Returns the logs it could not open (each is
/// also logged). Once the shard is stopping it opens no more logs (a stop during startup need not
/// wait for the recovery of every partition; the next start opens them).
pub(crate) async fn apply_snapshot(
    ctx: &Rc<ShardCtx>,
    snap: Arc<MetadataSnapshot>,
) -> Vec<OpenFailure> {
    let mut failed = Vec::new();
    let previous = ctx.metadata();
    if !ctx.set_metadata(snap.clone()) {
        return failed;
    }
    let data_dir = ctx.info.data_dir.clone();
    // In a cluster a topic deleted and created again under its name between two snapshots has a
    // new id: its old logs go as if it had been deleted.
    let open_topics: Vec<String> = ctx.all_logs().into_iter().map(|(t, _, _)| t).collect();
    for topic in open_topics {
        if snap.topic(&topic).is_some() && !recreated(&previous, &snap, &topic) {
            continue;
        }
        for (p, log) in ctx.remove_topic_logs(&topic) {
            close_and_remove(ctx, &topic, p, log).await;
        }
    }
    for t in snap.topics.values() {
        let log_config = match snap.settings.log_config(&t.configs) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(topic = %t.name, error = %e, "bad topic config; using defaults");
                snap.settings
                    .log_config(&BTreeMap::new())
                    .unwrap_or_default()
            }
        };
        for p in 0..t.partitions {
            if ctx.owner_of(&t.name, p) != ctx.id {
                continue;
            }
            if let Some(image) = &snap.cluster {
                let here = image
                    .partition(&t.name, p)
                    .is_some_and(|s| s.replicas.contains(&ctx.info.node_id));
                if !here {
                    // No replica here (any more): a reassignment moved it away.
                    if let Some(log) = ctx.remove_log(&t.name, p) {
                        close_and_remove(ctx, &t.name, p, log).await;
                    }
                    continue;
                }
            }
            if let Some(log) = ctx.log(&t.name, p) {
                // A dynamic topic or broker config change reaches the running log here.
                if log.config() != log_config {
                    tracing::debug!(topic = %t.name, partition = p, "applying changed log config");
                    log.set_config(log_config.clone());
                }
                continue;
            }
            if ctx.stopping.is_set() {
                return failed;
            }
            let dir = partition_dir(&data_dir, &t.name, p);
            match PartitionLog::open(dir.clone(), log_config.clone()).await {
                Ok(log) => ctx.insert_log(&t.name, p, Rc::new(log)),
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "opening partition log failed");
                    failed.push(OpenFailure {
                        dir,
                        error: e.to_string(),
                    });
                }
            }
        }
    }
    crate::replica::apply_roles(ctx, &snap).await;
    failed
}

/// Whether `topic` has another id in `snap` than in `previous` (cluster mode: deleted and created
/// again between two snapshots; a single node's ids never change under open logs).
fn recreated(previous: &MetadataSnapshot, snap: &MetadataSnapshot, topic: &str) -> bool {
    match (previous.topic(topic), snap.topic(topic)) {
        (Some(a), Some(b)) => a.id != b.id,
        _ => false,
    }
}

/// Closes a partition log that is no longer here and deletes its directory.
async fn close_and_remove(ctx: &ShardCtx, topic: &str, p: i32, log: Rc<PartitionLog>) {
    if let Err(e) = log.close().await {
        tracing::warn!(topic = %topic, partition = p, error = %e, "closing log failed");
    }
    drop(log);
    let dir = partition_dir(&ctx.info.data_dir, topic, p);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "removing partition dir failed");
    }
}
