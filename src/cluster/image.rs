//! The replicated metadata state and the commands that change it. Pure: no I/O, no clock, no
//! randomness — every node applies the same commands in the same order and gets the same image.
//!
//! Randomness (topic ids, incarnation ids) and decisions (replica placement, which replica to
//! elect) are made by the proposer and carried in the command; `apply` only validates them against
//! the state at that point in the log, so a command made from a stale view fails cleanly with an
//! error code instead of corrupting the image.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::dynamic::BrokerOverrides;

/// Kafka's "no leader" id.
pub const NO_LEADER: i32 = -1;

/// One broker as registered with the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    /// A random id per process start: a re-registration with a new one is a restart.
    pub incarnation: String,
    /// Advertised client listener.
    pub host: String,
    pub port: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are in no ISR; a broker starts fenced and is unfenced once
    /// it has caught up with the metadata log.
    pub fenced: bool,
    /// The metadata offset (Raft log index) of its latest registration: the broker epoch.
    pub epoch: u64,
    /// Set while the broker shuts down in a controlled way (its leaderships are moved away).
    pub in_controlled_shutdown: bool,
}

/// One partition's replication state (Kafka's `PartitionRecord` / `PartitionChangeRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas (always includes the leader while there is one).
    pub isr: Vec<i32>,
    /// [`NO_LEADER`] when no eligible replica is alive.
    pub leader: i32,
    /// Bumped on every leader change.
    pub leader_epoch: i32,
    /// Bumped on every change of this record (leader, ISR, replicas).
    pub partition_epoch: i32,
}

/// One topic in the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: uuid::Uuid,
    /// Topic-level config overrides (Kafka names).
    pub configs: BTreeMap<String, String>,
    /// Indexed by partition id.
    pub partitions: Vec<PartitionState>,
}

/// One client-quota entity and its values, as `crate::metadata::controller` persists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaEntry {
    /// (entity type, name); a `None` name is the default entity.
    pub entity: Vec<(String, Option<String>)>,
    pub values: BTreeMap<String, f64>,
}

/// The whole replicated metadata state, as of `applied_index`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterImage {
    /// Raft log index of the last applied entry (the "metadata offset"); 0 = nothing applied.
    pub applied_index: u64,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<String, TopicImage>,
    /// Dynamic broker configs (the same layers as the single-node file keeps).
    pub broker_configs: BrokerOverrides,
    pub quotas: Vec<QuotaEntry>,
    /// The next producer id not yet handed out in a block.
    pub next_producer_id: i64,
}

/// A change to the image, proposed to the quorum. Validated again at apply time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// A broker (re)starts. A new incarnation of a known id replaces the old one and starts fenced.
    RegisterBroker {
        id: i32,
        incarnation: String,
        host: String,
        port: i32,
        rack: Option<String>,
    },
    /// The active controller fences a broker (session expired, or a newer incarnation
    /// registered): it leaves every ISR and every partition it led gets a new leader from the
    /// remaining ISR (or none). `epoch` must match the registration's.
    FenceBroker {
        id: i32,
        epoch: u64,
    },
    /// The broker caught up with the metadata log and heartbeats: it may lead and rejoin ISRs.
    UnfenceBroker {
        id: i32,
        epoch: u64,
    },
    /// The broker asked for a controlled shutdown: move leaderships away, leave ISRs.
    BeginControlledShutdown {
        id: i32,
        epoch: u64,
    },
    /// Creates a topic with the given replica assignment (one list per partition, preferred
    /// leader first); leaders are the first live replica of each list, ISR = live replicas.
    CreateTopic {
        name: String,
        id: uuid::Uuid,
        assignments: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Adds partitions (one replica list each) at the end of a topic.
    CreatePartitions {
        name: String,
        assignments: Vec<Vec<i32>>,
    },
    /// Replaces a topic's config overrides.
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// Replaces the dynamic broker configs.
    SetBrokerConfigs {
        configs: BrokerOverrides,
    },
    /// Replaces the client quotas.
    SetQuotas {
        quotas: Vec<QuotaEntry>,
    },
    /// A partition leader changes its ISR (Kafka's AlterPartition). Applied only if `leader` and
    /// `leader_epoch` are current and `partition_epoch` matches (else an error code, and the
    /// leader refreshes from the image).
    AlterPartition {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Elects a leader for one partition: the preferred replica (`preferred`) if it is alive and
    /// in the ISR, else (unclean) any live replica when `unclean` is allowed.
    ElectLeader {
        topic: String,
        partition: i32,
        preferred: bool,
        unclean: bool,
    },
    /// Hands `count` producer ids to `broker` (Kafka's AllocateProducerIds).
    AllocateProducerIds {
        broker: i32,
        count: i64,
    },
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaResponse {
    Ok,
    /// Kafka error code and message (the command changed nothing).
    Error {
        code: i16,
        message: String,
    },
    /// The partition's state after an AlterPartition or ElectLeader.
    Partition(PartitionState),
    /// The first id of an allocated producer-id block.
    ProducerIds {
        first: i64,
    },
}

impl ClusterImage {
    /// Applies one committed command at log index `index` (sets `applied_index`). Deterministic.
    pub fn apply(&mut self, index: u64, cmd: &MetaCommand) -> MetaResponse {
        let _ = cmd;
        self.applied_index = index;
        todo!("issue 19: cluster image apply")
    }

    /// The state of `topic`'s partition `partition`, if it exists.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
    }

    /// Brokers that are registered and not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }
}
