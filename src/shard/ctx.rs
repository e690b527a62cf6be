//! [`ShardCtx`]: everything one shard owns, and the thread's current shard.
//!
//! A shard's state lives in its context, reached through `Rc` on the shard's own thread only
//! (`RefCell`, no locks): the metadata snapshot it answers from, the partition logs it owns, its
//! end of the mesh, the "shutting down" event. [`current`] gives the context of the shard running
//! on this thread, which is how [`super::run_on`] finds its origin without being passed one.
//!
//! Other subsystems (the group coordinator) keep their per-shard state in the context's type map
//! ([`ShardCtx::local_state`]) rather than in fields here, and reach another shard's state with the
//! same [`super::run_on`]: the shard layer does not need to know them.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::mesh::MeshPort;
use super::routing::owner;
use crate::config::BrokerSettings;
use crate::metadata::{MetadataSnapshot, MetadataStore};
use crate::storage::PartitionLog;
use crate::sync::LocalEvent;

/// Immutable facts about the broker, shared by all shards.
#[derive(Debug)]
pub struct BrokerInfo {
    /// Node id reported in Metadata (1, like a single-node KRaft cluster).
    pub node_id: i32,
    pub cluster_id: String,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub data_dir: std::path::PathBuf,
    pub settings: BrokerSettings,
    /// Client quota meters, one table shared by every shard ([`crate::quota`]).
    pub quota_meters: Arc<crate::quota::QuotaTracker>,
    /// The metadata quorum, in a cluster ([`crate::cluster::quorum`]); `None` on a single node.
    pub quorum: Option<crate::cluster::QuorumHandle>,
}

/// Per-shard state, reached through `Rc` on the shard's own thread only.
pub struct ShardCtx {
    pub id: usize,
    pub n_shards: usize,
    pub info: Arc<BrokerInfo>,
    metadata: RefCell<Arc<MetadataSnapshot>>,
    /// The partition logs this shard owns: topic → partition → log.
    logs: RefCell<HashMap<String, HashMap<i32, Rc<PartitionLog>>>>,
    /// The metadata store (controller role), present on shard 0 only.
    pub(crate) controller: Option<Rc<MetadataStore>>,
    /// This shard's end of the mesh (owned by [`super::mesh`]).
    pub(super) mesh: MeshPort,
    ext: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
    /// Set when the broker begins shutting down.
    pub stopping: LocalEvent,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<ShardCtx>>> = const { RefCell::new(None) };
}

/// The context of the shard running on this thread, if any.
pub fn current() -> Option<Rc<ShardCtx>> {
    CURRENT.with(|c| c.borrow().clone())
}

impl ShardCtx {
    pub(crate) fn new(
        id: usize,
        n_shards: usize,
        info: Arc<BrokerInfo>,
        metadata: Arc<MetadataSnapshot>,
        controller: Option<Rc<MetadataStore>>,
    ) -> Rc<Self> {
        Rc::new(ShardCtx {
            id,
            n_shards,
            info,
            metadata: RefCell::new(metadata),
            logs: RefCell::new(HashMap::new()),
            controller,
            mesh: MeshPort::default(),
            ext: RefCell::new(HashMap::new()),
            stopping: LocalEvent::default(),
        })
    }

    /// Makes this context the thread's current shard.
    pub(crate) fn install(self: &Rc<Self>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    pub(crate) fn uninstall() {
        CURRENT.with(|c| c.borrow_mut().take());
    }

    /// The current metadata snapshot (cheap `Arc` clone).
    pub fn metadata(&self) -> Arc<MetadataSnapshot> {
        self.metadata.borrow().clone()
    }

    /// Runs `f` on the current metadata snapshot without cloning its `Arc` (whose count every
    /// shard shares: a clone per request is a cross-core cache-line write).
    pub fn with_metadata<R>(&self, f: impl FnOnce(&MetadataSnapshot) -> R) -> R {
        f(&self.metadata.borrow())
    }

    /// The broker settings in effect now: the static ones with the dynamic broker configs applied.
    pub fn settings(&self) -> Arc<crate::config::BrokerSettings> {
        self.metadata.borrow().settings.clone()
    }

    pub(crate) fn set_metadata(&self, snap: Arc<MetadataSnapshot>) -> bool {
        let mut m = self.metadata.borrow_mut();
        if snap.version > m.version {
            *m = snap;
            true
        } else {
            false
        }
    }

    /// The log of `(topic, partition)` if this shard owns an open one.
    pub fn log(&self, topic: &str, partition: i32) -> Option<Rc<PartitionLog>> {
        self.logs
            .borrow()
            .get(topic)
            .and_then(|p| p.get(&partition))
            .cloned()
    }

    pub(crate) fn insert_log(&self, topic: &str, partition: i32, log: Rc<PartitionLog>) {
        self.logs
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(partition, log);
    }

    pub(crate) fn remove_log(&self, topic: &str, partition: i32) -> Option<Rc<PartitionLog>> {
        let mut logs = self.logs.borrow_mut();
        let parts = logs.get_mut(topic)?;
        let log = parts.remove(&partition);
        if parts.is_empty() {
            logs.remove(topic);
        }
        log
    }

    pub(crate) fn remove_topic_logs(&self, topic: &str) -> Vec<(i32, Rc<PartitionLog>)> {
        self.logs
            .borrow_mut()
            .remove(topic)
            .map(|m| m.into_iter().collect())
            .unwrap_or_default()
    }

    /// Every open log on this shard as (topic, partition, log).
    pub fn all_logs(&self) -> Vec<(String, i32, Rc<PartitionLog>)> {
        let logs = self.logs.borrow();
        let mut v = Vec::new();
        for (t, parts) in logs.iter() {
            for (p, l) in parts {
                v.push((t.clone(), *p, l.clone()));
            }
        }
        v
    }

    /// The shard owning `(topic, partition)` in this broker.
    pub fn owner_of(&self, topic: &str, partition: i32) -> usize {
        owner(topic, partition, self.n_shards)
    }

    /// Per-shard state of type `T` for other subsystems, created with `init` on first use.
    pub fn local_state<T: 'static>(&self, init: impl FnOnce() -> T) -> Rc<T> {
        let mut ext = self.ext.borrow_mut();
        let entry = ext
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Rc::new(init()) as Rc<dyn Any>);
        entry
            .clone()
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("type map keyed by TypeId"))
    }
}
