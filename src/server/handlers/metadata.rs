//! Metadata (key 3), v0–v12: this broker, its topics, auto-creation of requested unknown topics.
//!
//! In a cluster the brokers are every live (unfenced) registered broker with its advertised
//! address and rack, the controller is the metadata quorum's leader, and each partition has its
//! leader, leader epoch, replicas, ISR and offline replicas from the replicated image
//! (LEADER_NOT_AVAILABLE while it has no leader), so clients send each partition's requests to
//! its leader.
//!
//! Authorized operations ([`authz`]): v8+ reports each topic's when
//! `include_topic_authorized_operations` is set — as Kafka, for every topic answered by name, found
//! or not, but not for an unknown topic id; v8–v10 report the cluster's when
//! `include_cluster_authorized_operations` is set (v11 dropped the field: DescribeCluster has it).
//! Otherwise the fields keep the schema default, [`authz::NOT_REQUESTED`].

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};

use super::{HandlerError, Reply, Request, topic_name};
use crate::cluster::ClusterImage;
use crate::cluster::image::NO_LEADER;
use crate::metadata::controller::{self, NewTopic};
use crate::metadata::{TopicError, TopicMeta, validate_topic_name};
use crate::server::authz::{self, ResourceType};
use crate::shard::ShardCtx;
use crate::storage::leader_epoch::LEADER_EPOCH;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 12;

fn topic_entry(ctx: &ShardCtx, t: &TopicMeta) -> MetadataResponseTopic {
    if let Some(image) = ctx.with_metadata(|m| m.cluster.clone()) {
        return cluster_topic_entry(&image, t);
    }
    let node = BrokerId(ctx.info.node_id);
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_topic_id(t.id)
        .with_is_internal(false)
        .with_topic_authorized_operations(authz::NOT_REQUESTED)
        .with_partitions(
            (0..t.partitions)
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(node)
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}

/// Cluster mode: each partition's leader, epoch, replicas, ISR and offline replicas from the
/// image; LEADER_NOT_AVAILABLE for a partition without a leader.
fn cluster_topic_entry(image: &ClusterImage, t: &TopicMeta) -> MetadataResponseTopic {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let live = |b: &i32| image.brokers.get(b).is_some_and(|r| !r.fenced);
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&t.name)))
        .with_topic_id(t.id)
        .with_is_internal(false)
        .with_topic_authorized_operations(authz::NOT_REQUESTED)
        .with_partitions(
            (0..t.partitions)
                .filter_map(|p| image.partition(&t.name, p).map(|s| (p, s)))
                .map(|(p, s)| {
                    let offline: Vec<i32> =
                        s.replicas.iter().copied().filter(|b| !live(b)).collect();
                    let code = if s.leader == NO_LEADER {
                        ResponseError::LeaderNotAvailable.code()
                    } else {
                        0
                    };
                    MetadataResponsePartition::default()
                        .with_error_code(code)
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(s.leader))
                        .with_leader_epoch(s.leader_epoch)
                        .with_replica_nodes(ids(&s.replicas))
                        .with_isr_nodes(ids(&s.isr))
                        .with_offline_replicas(ids(&offline))
                })
                .collect(),
        )
}

/// The brokers and the controller id to report: cluster mode, every live (unfenced) broker and
/// the quorum leader (KRaft brokers report a random alive broker; the real one is more useful
/// to operators and equally opaque to clients); a single node, itself.
fn brokers(ctx: &ShardCtx) -> (Vec<MetadataResponseBroker>, BrokerId) {
    let node = BrokerId(ctx.info.node_id);
    let image = ctx.with_metadata(|m| m.cluster.clone());
    match (image, &ctx.info.quorum) {
        (Some(image), Some(quorum)) => {
            let brokers = image
                .live_brokers()
                .map(|b| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.id))
                        .with_host(sb(&b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.as_deref().map(sb))
                })
                .collect();
            (brokers, BrokerId(quorum.status().leader_id))
        }
        _ => (
            vec![
                MetadataResponseBroker::default()
                    .with_node_id(node)
                    .with_host(sb(&ctx.info.advertised_host))
                    .with_port(ctx.info.advertised_port),
            ],
            node,
        ),
    }
}

fn error_entry(name: Option<&str>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_topic_authorized_operations(authz::NOT_REQUESTED)
}

/// Creates `name` with the broker defaults if auto-creation is allowed; `Ok` also when someone
/// else created it first.
pub async fn auto_create(ctx: &ShardCtx, name: &str) -> Result<Arc<TopicMeta>, TopicError> {
    validate_topic_name(name)?;
    let res = controller::create_topic(
        NewTopic {
            name: name.to_string(),
            partitions: ctx.info.settings.num_partitions,
            replication_factor: -1,
            configs: Default::default(),
            assignments: None,
        },
        false,
    )
    .await;
    match res {
        Err(TopicError::AlreadyExists(_)) => ctx
            .metadata()
            .topic(name)
            .cloned()
            .ok_or_else(|| TopicError::UnknownTopic(name.into())),
        other => other,
    }
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: MetadataRequest = req.decode()?;
    let ctx = req.ctx.clone();
    let snap = ctx.metadata();
    // v0: an empty list means all topics; v1+: null means all topics.
    let all = match &r.topics {
        None => true,
        Some(t) => t.is_empty() && req.version == 0,
    };
    // Before v4 there is no flag and Kafka auto-creates when the broker allows it.
    let allow_create = ctx.info.settings.auto_create_topics_enable
        && (req.version < 4 || r.allow_auto_topic_creation);
    let mut topics = Vec::new();
    if all {
        for t in snap.topics.values() {
            topics.push(topic_entry(&ctx, t));
        }
    } else {
        for rt in r.topics.iter().flatten() {
            // v10+ may address a topic by id (name null; some clients send "" instead).
            let by_name = rt
                .name
                .as_ref()
                .filter(|n| !n.0.is_empty() || rt.topic_id.is_nil());
            match by_name {
                Some(name) => {
                    let name = name.0.as_str();
                    if let Some(t) = snap.topic(name) {
                        topics.push(topic_entry(&ctx, t));
                    } else if let Err(e) = validate_topic_name(name) {
                        topics.push(error_entry(Some(name), uuid::Uuid::nil(), e.error_code()));
                    } else if allow_create {
                        match auto_create(&ctx, name).await {
                            Ok(t) => topics.push(topic_entry(&ctx, &t)),
                            Err(e) => {
                                tracing::warn!(topic = name, error = %e, "auto-create failed");
                                topics.push(error_entry(
                                    Some(name),
                                    uuid::Uuid::nil(),
                                    e.error_code(),
                                ))
                            }
                        }
                    } else {
                        topics.push(error_entry(
                            Some(name),
                            uuid::Uuid::nil(),
                            ResponseError::UnknownTopicOrPartition.code(),
                        ));
                    }
                }
                None => match snap.topic_by_id(rt.topic_id) {
                    Some(t) => topics.push(topic_entry(&ctx, t)),
                    None => topics.push(error_entry(
                        None,
                        rt.topic_id,
                        ResponseError::UnknownTopicId.code(),
                    )),
                },
            }
        }
    }
    if req.version >= 8 && r.include_topic_authorized_operations {
        for t in topics.iter_mut() {
            if let Some(name) = &t.name {
                t.topic_authorized_operations = authz::authorized_operations(
                    ResourceType::Topic,
                    name.0.as_str(),
                    req.principal(),
                );
            }
        }
    }
    let cluster_ops = if (8..=10).contains(&req.version) && r.include_cluster_authorized_operations
    {
        authz::cluster_authorized_operations(req.principal())
    } else {
        authz::NOT_REQUESTED
    };
    let (brokers, controller) = brokers(&ctx);
    let resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(sb(&ctx.info.cluster_id)))
        .with_controller_id(controller)
        .with_cluster_authorized_operations(cluster_ops)
        .with_topics(topics);
    req.respond(&resp)
}
