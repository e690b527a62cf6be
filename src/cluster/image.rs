//! The replicated metadata state and the commands that change it. Pure: no I/O, no clock, no
//! randomness — every node applies the same commands in the same order and gets the same image.
//!
//! Randomness (topic ids, incarnation ids) and decisions (replica placement, which replica to
//! elect) are made by the proposer and carried in the command; `apply` only validates them against
//! the state at that point in the log, so a command made from a stale view fails cleanly with an
//! error code instead of corrupting the image. A refused command changes nothing but
//! `applied_index`, which every entry advances.
//!
//! # Rules (KRaft's `ReplicationControlManager` / `PartitionChangeBuilder`, without ELR)
//! - A broker is *eligible* (may lead, may join an ISR) when it is registered, unfenced and not
//!   in controlled shutdown. Elections take the first eligible replica in replica order, so the
//!   preferred (first) replica wins whenever it can.
//! - Every change of a partition bumps its `partition_epoch`; a leader change also bumps its
//!   `leader_epoch`. A command that would change nothing bumps nothing (AlterPartition with the
//!   current ISR answers the current state).
//! - Registering: a new id starts fenced with epoch = the entry's index. The same id and
//!   incarnation again is a lost answer being retried: `Ok`, nothing changes. A new incarnation is
//!   a restart: the registration is replaced (fenced, new epoch, shutdown flag cleared) and the
//!   broker leaves ISRs and leaderships as fencing does — its old process is gone.
//! - Fencing (epoch must match, else STALE_BROKER_EPOCH; an unknown id is
//!   BROKER_ID_NOT_REGISTERED): the broker leaves every ISR; where it led, the first eligible
//!   remaining ISR member leads. Where it was the last ISR member, it stays the ISR and the
//!   partition goes leaderless (no unclean election here): only that broker is known to hold every
//!   acknowledged record, so only it may lead again without loss.
//! - Unfencing gives leaderless partitions whose ISR holds the broker a leader.
//! - Controlled shutdown: the broker's leaderships move to another eligible ISR member and it
//!   leaves the ISRs in which others remain. Where it is the only in-sync copy it keeps leading
//!   and stays in the ISR: moving the leadership to nobody would only make the partition
//!   unavailable sooner (Kafka makes it leaderless at once); when it stops, fencing makes it
//!   leaderless as above. Applying it again (the controller retries while the broker still leads)
//!   moves what can be moved by then, e.g. after a follower caught up and rejoined the ISR.
//! - Topic creation (manual assignment, as Kafka checks it): at least one partition, each with the
//!   same non-zero number of distinct registered brokers; leader = first eligible replica, ISR =
//!   the eligible replicas, epochs 0; no eligible replica → INVALID_REPLICATION_FACTOR. New
//!   partitions must keep the topic's replication factor. At most `MAX_PARTITIONS` partitions
//!   per topic (INVALID_PARTITIONS), as on a single node.
//! - AlterPartition, in Kafka's order: unknown partition → UNKNOWN_TOPIC_OR_PARTITION; another
//!   leader epoch → FENCED_LEADER_EPOCH; another leader → NOT_LEADER_OR_FOLLOWER; another partition
//!   epoch → INVALID_UPDATE_VERSION (95); an ISR that is not a set of replicas containing the
//!   leader → INVALID_REQUEST; a member that is unregistered, fenced, or shutting down and not
//!   already in the ISR → INELIGIBLE_REPLICA. (A shutting-down leader that is the only in-sync copy
//!   may still grow its ISR, which is how its leadership can then move.) Success answers
//!   [`MetaResponse::Partition`] with the new state.
//! - ElectLeader: preferred → `replicas[0]` if eligible and in the ISR (ELECTION_NOT_NEEDED if it
//!   leads, else PREFERRED_LEADER_NOT_AVAILABLE), `unclean` is ignored. Otherwise only for a
//!   partition without a leader (else ELECTION_NOT_NEEDED): the first eligible ISR
//!   member, else with `unclean` the first eligible replica with ISR = `[it]` (records it never had
//!   may be lost: the caller decides), else ELIGIBLE_LEADERS_NOT_AVAILABLE.
//! - AllocateProducerIds: the broker must be registered; blocks are consecutive from
//!   `next_producer_id`.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use crate::config::dynamic::BrokerOverrides;
use crate::metadata::MAX_PARTITIONS;

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

/// An error answer: a Kafka error code and a message. The image is left untouched.
fn error(code: ResponseError, message: impl Into<String>) -> MetaResponse {
    MetaResponse::Error {
        code: code.code(),
        message: message.into(),
    }
}

/// The body of an `apply` arm: `Err` carries the error answer, the image being unchanged.
type Applied = Result<MetaResponse, MetaResponse>;

impl ClusterImage {
    /// Applies one committed command at log index `index` (sets `applied_index`, also when the
    /// command is refused). Deterministic: the result depends only on the image and the command.
    /// A refused command (a [`MetaResponse::Error`]) changes nothing else.
    pub fn apply(&mut self, index: u64, cmd: &MetaCommand) -> MetaResponse {
        self.applied_index = index;
        let result = match cmd {
            MetaCommand::RegisterBroker {
                id,
                incarnation,
                host,
                port,
                rack,
            } => self.register_broker(index, *id, incarnation, host, *port, rack),
            MetaCommand::FenceBroker { id, epoch } => self.fence_broker(*id, *epoch),
            MetaCommand::UnfenceBroker { id, epoch } => self.unfence_broker(*id, *epoch),
            MetaCommand::BeginControlledShutdown { id, epoch } => {
                self.begin_controlled_shutdown(*id, *epoch)
            }
            MetaCommand::CreateTopic {
                name,
                id,
                assignments,
                configs,
            } => self.create_topic(name, *id, assignments, configs),
            MetaCommand::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => Ok(MetaResponse::Ok),
                None => Err(unknown_topic(name)),
            },
            MetaCommand::CreatePartitions { name, assignments } => {
                self.create_partitions(name, assignments)
            }
            MetaCommand::SetTopicConfigs { name, configs } => match self.topics.get_mut(name) {
                Some(topic) => {
                    topic.configs = configs.clone();
                    Ok(MetaResponse::Ok)
                }
                None => Err(unknown_topic(name)),
            },
            MetaCommand::SetBrokerConfigs { configs } => {
                self.broker_configs = configs.clone();
                Ok(MetaResponse::Ok)
            }
            MetaCommand::SetQuotas { quotas } => {
                self.quotas = quotas.clone();
                Ok(MetaResponse::Ok)
            }
            MetaCommand::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => self.alter_partition(
                topic,
                *partition,
                *leader,
                *leader_epoch,
                *partition_epoch,
                isr,
            ),
            MetaCommand::ElectLeader {
                topic,
                partition,
                preferred,
                unclean,
            } => self.elect_leader(topic, *partition, *preferred, *unclean),
            MetaCommand::AllocateProducerIds { broker, count } => {
                self.allocate_producer_ids(*broker, *count)
            }
        };
        result.unwrap_or_else(|e| e)
    }

    /// The state of `topic`'s partition `partition`, if it exists.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
    }

    /// The topic with id `id`, if any.
    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<&TopicImage> {
        self.topics.values().find(|t| t.id == id)
    }

    /// The registration of the broker leading `topic`'s partition `partition`, if it has one.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<&BrokerRegistration> {
        let p = self.partition(topic, partition)?;
        self.brokers.get(&p.leader)
    }

    /// Brokers that are registered and not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Ids of the unfenced brokers, ascending.
    pub fn live_broker_ids(&self) -> Vec<i32> {
        self.live_brokers().map(|b| b.id).collect()
    }

    /// Whether `id` may lead or join an ISR: registered, unfenced, not in controlled shutdown.
    pub fn is_eligible(&self, id: i32) -> bool {
        self.brokers
            .get(&id)
            .is_some_and(|b| !b.fenced && !b.in_controlled_shutdown)
    }

    /// Whether `id` is registered and unfenced (it may still be shutting down).
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Every partition `id` leads, as (topic, partition), in topic-name then partition order.
    pub fn partitions_led_by(&self, id: i32) -> Vec<(String, i32)> {
        self.iter_partitions()
            .filter(|(_, _, p)| p.leader == id)
            .map(|(t, i, _)| (t.to_string(), i))
            .collect()
    }

    /// Whether `id` leads at least one partition.
    pub fn leads_any(&self, id: i32) -> bool {
        id != NO_LEADER && self.iter_partitions().any(|(_, _, p)| p.leader == id)
    }

    /// The replicas of a partition that are not live (unregistered or fenced), in replica order.
    /// Empty when the partition does not exist.
    pub fn offline_replicas(&self, topic: &str, partition: i32) -> Vec<i32> {
        self.partition(topic, partition)
            .map(|p| {
                p.replicas
                    .iter()
                    .copied()
                    .filter(|r| !self.is_live(*r))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every partition as (topic name, partition id, state), in topic-name then partition order.
    pub fn iter_partitions(&self) -> impl Iterator<Item = (&str, i32, &PartitionState)> {
        self.topics.values().flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .map(move |(i, p)| (t.name.as_str(), i as i32, p))
        })
    }

    /// Whether unclean leader election is allowed for `topic`: the topic's
    /// `unclean.leader.election.enable` override, else the dynamic cluster-wide default, else
    /// false (Kafka's default). The static broker config is not part of the image; the controller
    /// policy only consults this.
    pub fn unclean_election_allowed(&self, topic: &str) -> bool {
        const KEY: &str = "unclean.leader.election.enable";
        let topic_value = self.topics.get(topic).and_then(|t| t.configs.get(KEY));
        let cluster_value = self
            .broker_configs
            .get(crate::config::dynamic::CLUSTER_DEFAULT)
            .and_then(|layer| layer.get(KEY));
        topic_value
            .or(cluster_value)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The first eligible broker of `candidates`, taken in replica order.
    fn first_eligible(&self, replicas: &[i32], candidates: &[i32]) -> i32 {
        replicas
            .iter()
            .copied()
            .find(|r| candidates.contains(r) && self.is_eligible(*r))
            .unwrap_or(NO_LEADER)
    }

    /// The registration of `id` if `epoch` is its current broker epoch.
    fn check_epoch(&self, id: i32, epoch: u64) -> Result<(), MetaResponse> {
        match self.brokers.get(&id) {
            None => Err(error(
                ResponseError::BrokerIdNotRegistered,
                format!("broker {id} is not registered"),
            )),
            Some(b) if b.epoch != epoch => Err(error(
                ResponseError::StaleBrokerEpoch,
                format!("broker {id} has epoch {}, not {epoch}", b.epoch),
            )),
            Some(_) => Ok(()),
        }
    }

    fn register_broker(
        &mut self,
        index: u64,
        id: i32,
        incarnation: &str,
        host: &str,
        port: i32,
        rack: &Option<String>,
    ) -> Applied {
        if id < 0 {
            return Err(error(
                ResponseError::InvalidRequest,
                format!("invalid broker id {id}"),
            ));
        }
        if !(0..=i32::from(u16::MAX)).contains(&port) {
            return Err(error(
                ResponseError::InvalidRequest,
                format!("invalid port {port} for broker {id}"),
            ));
        }
        if let Some(old) = self.brokers.get(&id)
            && old.incarnation == incarnation
        {
            // The same process registering again (its first answer was lost): nothing changes.
            return Ok(MetaResponse::Ok);
        }
        let restarted = self.brokers.contains_key(&id);
        self.brokers.insert(
            id,
            BrokerRegistration {
                id,
                incarnation: incarnation.to_string(),
                host: host.to_string(),
                port,
                rack: rack.clone(),
                fenced: true,
                epoch: index,
                in_controlled_shutdown: false,
            },
        );
        if restarted {
            // The old process is gone: whatever it led or followed in sync is not on a live
            // process any more (its log may even be behind, after an unclean stop).
            self.remove_from_partitions(id);
        }
        Ok(MetaResponse::Ok)
    }

    fn fence_broker(&mut self, id: i32, epoch: u64) -> Applied {
        self.check_epoch(id, epoch)?;
        if let Some(b) = self.brokers.get_mut(&id) {
            b.fenced = true;
        }
        self.remove_from_partitions(id);
        Ok(MetaResponse::Ok)
    }

    /// Takes fenced broker `id` out of every ISR and leadership (see the module docs): the last
    /// ISR member stays in the ISR of a now leaderless partition.
    fn remove_from_partitions(&mut self, id: i32) {
        let mut changes = Vec::new();
        for (t, i, p) in self.iter_partitions() {
            if !p.isr.contains(&id) && p.leader != id {
                continue;
            }
            let mut isr: Vec<i32> = p.isr.iter().copied().filter(|r| *r != id).collect();
            let leader = if isr.is_empty() {
                isr = vec![id];
                NO_LEADER
            } else if p.leader != NO_LEADER && p.leader != id && self.is_eligible(p.leader) {
                p.leader
            } else {
                self.first_eligible(&p.replicas, &isr)
            };
            changes.push((t.to_string(), i, isr, leader));
        }
        for (t, i, isr, leader) in changes {
            self.change_partition(&t, i, isr, leader);
        }
    }

    fn unfence_broker(&mut self, id: i32, epoch: u64) -> Applied {
        self.check_epoch(id, epoch)?;
        if let Some(b) = self.brokers.get_mut(&id) {
            b.fenced = false;
        }
        // Partitions left without a leader whose ISR holds this broker get one back (normally
        // this broker: it was their last ISR member).
        let mut changes = Vec::new();
        for (t, i, p) in self.iter_partitions() {
            if p.leader == NO_LEADER && p.isr.contains(&id) {
                let leader = self.first_eligible(&p.replicas, &p.isr);
                if leader != NO_LEADER {
                    changes.push((t.to_string(), i, p.isr.clone(), leader));
                }
            }
        }
        for (t, i, isr, leader) in changes {
            self.change_partition(&t, i, isr, leader);
        }
        Ok(MetaResponse::Ok)
    }

    fn begin_controlled_shutdown(&mut self, id: i32, epoch: u64) -> Applied {
        self.check_epoch(id, epoch)?;
        if let Some(b) = self.brokers.get_mut(&id) {
            b.in_controlled_shutdown = true;
        }
        // Applying it again (the controller re-proposes while the broker still leads a partition
        // whose ISR gained another eligible member) moves what can be moved by then.
        let mut changes = Vec::new();
        for (t, i, p) in self.iter_partitions() {
            if !p.isr.contains(&id) {
                continue;
            }
            let isr: Vec<i32> = p.isr.iter().copied().filter(|r| *r != id).collect();
            if p.leader == id {
                let leader = self.first_eligible(&p.replicas, &isr);
                if leader != NO_LEADER {
                    changes.push((t.to_string(), i, isr, leader));
                }
                // Else it keeps leading with its ISR: it is the only in-sync copy, and moving
                // the leadership nowhere would only make the partition unavailable earlier.
            } else if !isr.is_empty() {
                changes.push((t.to_string(), i, isr, p.leader));
            }
        }
        for (t, i, isr, leader) in changes {
            self.change_partition(&t, i, isr, leader);
        }
        Ok(MetaResponse::Ok)
    }

    /// Sets a partition's ISR and leader, bumping `partition_epoch` when anything changed and
    /// `leader_epoch` when the leader did. Returns whether something changed.
    fn change_partition(
        &mut self,
        topic: &str,
        partition: i32,
        isr: Vec<i32>,
        leader: i32,
    ) -> bool {
        let Some(p) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition as usize))
        else {
            return false;
        };
        if p.isr == isr && p.leader == leader {
            return false;
        }
        if p.leader != leader {
            p.leader_epoch += 1;
        }
        p.leader = leader;
        p.isr = isr;
        p.partition_epoch += 1;
        true
    }

    /// Checks new partitions' replica lists (Kafka's manual-assignment rules) and builds their
    /// initial states: leader = first eligible replica, ISR = the eligible replicas.
    fn new_partitions(
        &self,
        assignments: &[Vec<i32>],
        replication_factor: Option<usize>,
    ) -> Result<Vec<PartitionState>, MetaResponse> {
        if assignments.is_empty() {
            return Err(error(
                ResponseError::InvalidPartitions,
                "no partitions to create",
            ));
        }
        let rf = replication_factor.unwrap_or(assignments[0].len());
        let mut states = Vec::with_capacity(assignments.len());
        for (i, replicas) in assignments.iter().enumerate() {
            if replicas.is_empty() {
                return Err(error(
                    ResponseError::InvalidReplicaAssignment,
                    format!("partition {i} has no replicas"),
                ));
            }
            if replicas.len() != rf {
                return Err(error(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "partition {i} has {} replicas, the others {rf}",
                        replicas.len()
                    ),
                ));
            }
            for (j, r) in replicas.iter().enumerate() {
                if replicas[..j].contains(r) {
                    return Err(error(
                        ResponseError::InvalidReplicaAssignment,
                        format!("partition {i} lists broker {r} twice"),
                    ));
                }
                if !self.brokers.contains_key(r) {
                    return Err(error(
                        ResponseError::InvalidReplicaAssignment,
                        format!("partition {i}: broker {r} is not registered"),
                    ));
                }
            }
            let isr: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|r| self.is_eligible(*r))
                .collect();
            let Some(&leader) = isr.first() else {
                return Err(error(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "partition {i}: all of its replicas {replicas:?} are fenced or shutting down"
                    ),
                ));
            };
            states.push(PartitionState {
                replicas: replicas.clone(),
                isr,
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        Ok(states)
    }

    fn create_topic(
        &mut self,
        name: &str,
        id: uuid::Uuid,
        assignments: &[Vec<i32>],
        configs: &BTreeMap<String, String>,
    ) -> Applied {
        if name.is_empty() {
            return Err(error(
                ResponseError::InvalidTopicException,
                "empty topic name",
            ));
        }
        if self.topics.contains_key(name) {
            return Err(error(
                ResponseError::TopicAlreadyExists,
                format!("topic {name} already exists"),
            ));
        }
        if id.is_nil() || self.topics.values().any(|t| t.id == id) {
            return Err(error(
                ResponseError::InvalidRequest,
                format!("topic id {id} is nil or already used"),
            ));
        }
        check_partition_count(assignments.len())?;
        let partitions = self.new_partitions(assignments, None)?;
        self.topics.insert(
            name.to_string(),
            TopicImage {
                name: name.to_string(),
                id,
                configs: configs.clone(),
                partitions,
            },
        );
        Ok(MetaResponse::Ok)
    }

    fn create_partitions(&mut self, name: &str, assignments: &[Vec<i32>]) -> Applied {
        let Some(topic) = self.topics.get(name) else {
            return Err(unknown_topic(name));
        };
        let rf = topic.partitions.first().map(|p| p.replicas.len());
        check_partition_count(topic.partitions.len() + assignments.len())?;
        let new = self.new_partitions(assignments, rf)?;
        if let Some(topic) = self.topics.get_mut(name) {
            topic.partitions.extend(new);
        }
        Ok(MetaResponse::Ok)
    }

    fn alter_partition(
        &mut self,
        topic: &str,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
    ) -> Applied {
        let Some(p) = self.partition(topic, partition) else {
            return Err(error(
                ResponseError::UnknownTopicOrPartition,
                format!("no partition {topic}-{partition}"),
            ));
        };
        if leader_epoch != p.leader_epoch {
            return Err(error(
                ResponseError::FencedLeaderEpoch,
                format!(
                    "{topic}-{partition}: leader epoch {leader_epoch}, current {}",
                    p.leader_epoch
                ),
            ));
        }
        if leader != p.leader {
            return Err(error(
                ResponseError::NotLeaderOrFollower,
                format!(
                    "{topic}-{partition}: broker {leader} is not the leader {}",
                    p.leader
                ),
            ));
        }
        if partition_epoch != p.partition_epoch {
            return Err(error(
                ResponseError::InvalidUpdateVersion,
                format!(
                    "{topic}-{partition}: partition epoch {partition_epoch}, current {}",
                    p.partition_epoch
                ),
            ));
        }
        if !isr.contains(&leader) {
            return Err(error(
                ResponseError::InvalidRequest,
                format!("{topic}-{partition}: the new ISR {isr:?} lacks the leader {leader}"),
            ));
        }
        for (j, r) in isr.iter().enumerate() {
            if !p.replicas.contains(r) || isr[..j].contains(r) {
                return Err(error(
                    ResponseError::InvalidRequest,
                    format!(
                        "{topic}-{partition}: the new ISR {isr:?} is not a set of replicas {:?}",
                        p.replicas
                    ),
                ));
            }
            // Current members may stay while shutting down (the leader itself, when it is the
            // only in-sync copy, shrinks and grows its ISR until it stops); new ones must be
            // eligible.
            let ok = match self.brokers.get(r) {
                None => false,
                Some(b) => !b.fenced && (!b.in_controlled_shutdown || p.isr.contains(r)),
            };
            if !ok {
                return Err(error(
                    ResponseError::IneligibleReplica,
                    format!(
                        "{topic}-{partition}: broker {r} is fenced, shutting down or unregistered"
                    ),
                ));
            }
        }
        self.change_partition(topic, partition, isr.to_vec(), leader);
        Ok(MetaResponse::Partition(
            self.partition(topic, partition)
                .cloned()
                .expect("checked above"),
        ))
    }

    fn elect_leader(
        &mut self,
        topic: &str,
        partition: i32,
        preferred: bool,
        unclean: bool,
    ) -> Applied {
        let Some(p) = self.partition(topic, partition) else {
            return Err(error(
                ResponseError::UnknownTopicOrPartition,
                format!("no partition {topic}-{partition}"),
            ));
        };
        let (isr, leader) = if preferred {
            let first = p.replicas[0];
            if p.leader == first {
                return Err(error(
                    ResponseError::ElectionNotNeeded,
                    format!("{topic}-{partition}: broker {first} leads already"),
                ));
            }
            if !p.isr.contains(&first) || !self.is_eligible(first) {
                return Err(error(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!(
                        "{topic}-{partition}: preferred replica {first} is not in sync and live"
                    ),
                ));
            }
            (p.isr.clone(), first)
        } else {
            if p.leader != NO_LEADER {
                return Err(error(
                    ResponseError::ElectionNotNeeded,
                    format!("{topic}-{partition}: broker {} leads already", p.leader),
                ));
            }
            let clean = self.first_eligible(&p.replicas, &p.isr);
            if clean != NO_LEADER {
                (p.isr.clone(), clean)
            } else if unclean {
                let any = self.first_eligible(&p.replicas, &p.replicas);
                if any == NO_LEADER {
                    return Err(error(
                        ResponseError::EligibleLeadersNotAvailable,
                        format!("{topic}-{partition}: no replica is live"),
                    ));
                }
                (vec![any], any)
            } else {
                return Err(error(
                    ResponseError::EligibleLeadersNotAvailable,
                    format!("{topic}-{partition}: no in-sync replica is live"),
                ));
            }
        };
        self.change_partition(topic, partition, isr, leader);
        Ok(MetaResponse::Partition(
            self.partition(topic, partition)
                .cloned()
                .expect("checked above"),
        ))
    }

    fn allocate_producer_ids(&mut self, broker: i32, count: i64) -> Applied {
        if !self.brokers.contains_key(&broker) {
            return Err(error(
                ResponseError::BrokerIdNotRegistered,
                format!("broker {broker} is not registered"),
            ));
        }
        if count <= 0 {
            return Err(error(
                ResponseError::InvalidRequest,
                format!("cannot allocate {count} producer ids"),
            ));
        }
        let first = self.next_producer_id;
        let Some(next) = first.checked_add(count) else {
            return Err(error(
                ResponseError::UnknownServerError,
                "producer ids exhausted",
            ));
        };
        self.next_producer_id = next;
        Ok(MetaResponse::ProducerIds { first })
    }
}

/// A topic has at most [`MAX_PARTITIONS`] partitions (as on a single node).
fn check_partition_count(count: usize) -> Result<(), MetaResponse> {
    if count > MAX_PARTITIONS as usize {
        return Err(error(
            ResponseError::InvalidPartitions,
            format!("{count} partitions, at most {MAX_PARTITIONS} allowed"),
        ));
    }
    Ok(())
}

fn unknown_topic(name: &str) -> MetaResponse {
    error(
        ResponseError::UnknownTopicOrPartition,
        format!("no topic {name}"),
    )
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
