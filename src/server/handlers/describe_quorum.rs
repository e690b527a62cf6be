//! DescribeQuorum (key 55), v0–v2: the metadata quorum's leader, epoch, high watermark and each
//! voter's and observer's progress, for `kafka-metadata-quorum describe --status/--replication`
//! (KIP-595, KIP-836, KIP-853).
//!
//! Only a cluster node advertises and serves it (a single node has no quorum, as a ZooKeeper-mode
//! Kafka broker had none; see [`super`]); a single node closes the connection as for any API it
//! does not serve. The one partition is Kafka's `__cluster_metadata-0`; asking for anything else
//! is UNKNOWN_TOPIC_OR_PARTITION at the top level, as Kafka's Raft client answers. Kafka brokers
//! forward the request to the active controller; Ringbolt answers from this node's quorum status
//! ([`crate::cluster::QuorumHandle::status`]), which on the leader has every replica's progress
//! and elsewhere what this node knows (leader, epoch, committed offset). v2's `nodes` lists each
//! voter's controller listener from `controller.quorum.voters`; replica directory ids are not
//! tracked (zero).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::describe_quorum_request::DescribeQuorumRequest;
use kafka_protocol::messages::describe_quorum_response::{
    DescribeQuorumResponse, Listener, Node, PartitionData, ReplicaState, TopicData,
};

use super::{HandlerError, Reply, Request, topic_name};
use crate::cluster::quorum::ReplicaStatus;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

/// The metadata log's topic (Kafka's name).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

fn replica(r: &ReplicaStatus) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(r.id))
        .with_log_end_offset(r.log_end_offset)
        .with_last_fetch_timestamp(r.last_fetch_ms)
        .with_last_caught_up_timestamp(r.last_caught_up_ms)
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DescribeQuorumRequest = req.decode()?;
    let Some(quorum) = req.ctx.info.quorum.clone() else {
        return Err(HandlerError::Unsupported(req.api_key));
    };
    let valid = r.topics.len() == 1
        && r.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && r.topics[0].partitions.len() == 1
        && r.topics[0].partitions[0].partition_index == 0;
    if !valid {
        return req.respond(
            &DescribeQuorumResponse::default()
                .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
        );
    }
    let status = quorum.status();
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(status.leader_id))
        .with_leader_epoch(status.leader_epoch)
        .with_high_watermark(status.high_watermark)
        .with_current_voters(status.voters.iter().map(replica).collect())
        .with_observers(status.observers.iter().map(replica).collect());
    let cname = req.ctx.info.settings.controller_listener_name();
    let nodes = match req.ctx.info.settings.cluster() {
        Ok(Some(cs)) => cs
            .voters
            .iter()
            .map(|(id, addr)| {
                Node::default()
                    .with_node_id(BrokerId(*id))
                    .with_listeners(vec![
                        Listener::default()
                            .with_name(sb(&cname))
                            .with_host(sb(&addr.ip().to_string()))
                            .with_port(addr.port()),
                    ])
            })
            .collect(),
        _ => Vec::new(),
    };
    let resp = DescribeQuorumResponse::default()
        .with_topics(vec![
            TopicData::default()
                .with_topic_name(topic_name(METADATA_TOPIC))
                .with_partitions(vec![partition]),
        ])
        .with_nodes(if req.version >= 2 { nodes } else { Vec::new() });
    req.respond(&resp)
}
