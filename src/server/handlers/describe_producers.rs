//! DescribeProducers (key 61), v0 (the only version; kafka-clients' `Admin.describeProducers`
//! and `kafka-transactions describe-producers` use it): per requested partition, the producers
//! its log tracks (idempotent and transactional alike), with each one's epoch, last sequence and
//! timestamp, the coordinator epoch of its last transaction marker and the first offset of its
//! ongoing transaction there, from `PartitionLog::producers`.
//!
//! Errors as Kafka's `KafkaApis.handleDescribeProducersRequest` answers them, per partition: a
//! topic the principal may not Read gets TOPIC_AUTHORIZATION_FAILED; a topic or partition the
//! broker does not have gets UNKNOWN_TOPIC_OR_PARTITION (NOT_LEADER_OR_FOLLOWER is for a broker
//! that is not the partition's leader, which a single node never is). No error message is set,
//! as Kafka sets none.

use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::describe_producers_request::DescribeProducersRequest;
use kafka_protocol::messages::describe_producers_response::{
    DescribeProducersResponse, PartitionResponse, ProducerState, TopicResponse,
};

use super::{HandlerError, Reply, Request};
use crate::protocol::errors;
use crate::server::authz::{self, AclOperation, ResourceType};
use crate::server::partitions::on_owners;
use crate::shard::ShardCtx;
use crate::storage::txn::ProducerInfo;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

/// On the owner shard: each partition's producers, or its error.
async fn describe_on_owner(
    ctx: Rc<ShardCtx>,
    items: Vec<(String, i32)>,
) -> Vec<Result<Vec<ProducerInfo>, i16>> {
    items
        .into_iter()
        .map(|(topic, p)| match ctx.log(&topic, p) {
            Some(log) => Ok(log.producers()),
            None => Err(ResponseError::UnknownTopicOrPartition.code()),
        })
        .collect()
}

fn producer_state(p: &ProducerInfo) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(p.producer_id))
        .with_producer_epoch(i32::from(p.producer_epoch))
        .with_last_sequence(p.last_sequence)
        .with_last_timestamp(p.last_timestamp)
        .with_coordinator_epoch(p.coordinator_epoch)
        .with_current_txn_start_offset(p.current_txn_start_offset)
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: DescribeProducersRequest = req.decode()?;
    let ctx = req.ctx.clone();
    let snap = ctx.metadata();
    let mut items = Vec::new();
    // Per partition: the index of its work item, or its error.
    let layout: Vec<Vec<Result<usize, i16>>> = r
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let allowed = authz::authorize(
                req.principal(),
                AclOperation::Read,
                ResourceType::Topic,
                name,
            );
            let meta = snap.topic(name);
            t.partition_indexes
                .iter()
                .map(|&p| match meta {
                    _ if !allowed => Err(ResponseError::TopicAuthorizationFailed.code()),
                    Some(m) if p >= 0 && p < m.partitions => {
                        items.push((ctx.owner_of(name, p), (name.to_string(), p)));
                        Ok(items.len() - 1)
                    }
                    _ => Err(ResponseError::UnknownTopicOrPartition.code()),
                })
                .collect()
        })
        .collect();
    let mut found = on_owners(items, describe_on_owner, || {
        Err(ResponseError::NotLeaderOrFollower.code())
    })
    .await;
    let topics = r
        .topics
        .iter()
        .zip(layout)
        .map(|(t, row)| {
            let partitions = t
                .partition_indexes
                .iter()
                .zip(row)
                .map(|(&p, slot)| {
                    let res = match slot {
                        Ok(i) => std::mem::replace(&mut found[i], Ok(Vec::new())),
                        Err(code) => Err(code),
                    };
                    let out = PartitionResponse::default().with_partition_index(p);
                    match res {
                        Ok(producers) => out
                            .with_error_code(errors::NONE)
                            .with_active_producers(producers.iter().map(producer_state).collect()),
                        Err(code) => out.with_error_code(code),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    req.respond(&DescribeProducersResponse::default().with_topics(topics))
}
