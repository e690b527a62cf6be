//! AddPartitionsToTxn (key 24), v0–v5: partitions join the producer's ongoing transaction before
//! it produces to them (transaction version 1).
//!
//! v0–v3 carry one transaction (the client path); v4+ a batch of them, each either a client-style
//! add or `verify_only` (KIP-890: "is this partition already in the transaction?", answered
//! without a write). Before the coordinator is asked, every partition is checked against the
//! metadata: if any is unknown, the whole transaction is refused, those partitions with
//! UNKNOWN_TOPIC_OR_PARTITION and the others with OPERATION_NOT_ATTEMPTED, as Kafka does; nothing
//! is written. Otherwise every partition gets the coordinator's answer (PRODUCER_FENCED is
//! INVALID_PRODUCER_EPOCH before v2, KIP-588).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResponse, AddPartitionsToTxnResult,
    AddPartitionsToTxnTopicResult,
};

use super::{HandlerError, Reply, Request, topic_name};
use crate::protocol::errors;
use crate::shard::ShardCtx;
use crate::txn::client_error;
use crate::txn::shard::on_coordinator;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 5;

/// One transaction of the request.
struct Txn {
    id: String,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    partitions: Vec<(String, i32)>,
}

fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect()
}

/// The error of every partition of `txn`.
async fn process(ctx: &ShardCtx, txn: Txn, version: i16) -> Vec<((String, i32), i16)> {
    let unknown: Vec<bool> = ctx.with_metadata(|snap| {
        txn.partitions
            .iter()
            .map(|(t, p)| snap.topic(t).is_none_or(|m| *p < 0 || *p >= m.partitions))
            .collect()
    });
    if unknown.iter().any(|u| *u) {
        return txn
            .partitions
            .into_iter()
            .zip(unknown)
            .map(|(tp, u)| {
                let e = if u {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::OperationNotAttempted
                };
                (tp, e.code())
            })
            .collect();
    }
    let Txn {
        id,
        producer_id,
        epoch,
        verify_only,
        partitions,
    } = txn;
    let key = id.clone();
    let parts = partitions.clone();
    let answers: Vec<Result<(), ResponseError>> = on_coordinator(ctx, &key, move |c| async move {
        if verify_only {
            parts
                .iter()
                .map(|(t, p)| c.verify(&id, producer_id, epoch, t, *p))
                .collect()
        } else {
            let r = c
                .add(&id, producer_id, epoch, parts.clone(), Vec::new())
                .await;
            vec![r; parts.len()]
        }
    })
    .await
    .unwrap_or_else(|| vec![Err(ResponseError::CoordinatorNotAvailable); partitions.len()]);
    partitions
        .into_iter()
        .zip(answers)
        .map(|(tp, r)| {
            (
                tp,
                r.map_or_else(|e| client_error(e, version, 2), |_| errors::NONE),
            )
        })
        .collect()
}

fn topic_results(results: Vec<((String, i32), i16)>) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut by_topic: BTreeMap<String, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
    for ((t, p), code) in results {
        by_topic.entry(t).or_default().push(
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(p)
                .with_partition_error_code(code),
        );
    }
    by_topic
        .into_iter()
        .map(|(t, parts)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic_name(&t))
                .with_results_by_partition(parts)
        })
        .collect()
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: AddPartitionsToTxnRequest = req.decode()?;
    let v = req.version;
    if v <= 3 {
        let txn = Txn {
            id: r.v3_and_below_transactional_id.0.to_string(),
            producer_id: r.v3_and_below_producer_id.0,
            epoch: r.v3_and_below_producer_epoch,
            verify_only: false,
            partitions: partitions_of(&r.v3_and_below_topics),
        };
        let results = process(&req.ctx, txn, v).await;
        return req.respond(
            &AddPartitionsToTxnResponse::default()
                .with_results_by_topic_v3_and_below(topic_results(results)),
        );
    }
    let mut out = Vec::with_capacity(r.transactions.len());
    for t in &r.transactions {
        let txn = Txn {
            id: t.transactional_id.0.to_string(),
            producer_id: t.producer_id.0,
            epoch: t.producer_epoch,
            verify_only: t.verify_only,
            partitions: partitions_of(&t.topics),
        };
        let results = process(&req.ctx, txn, v).await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topic_results(results)),
        );
    }
    req.respond(&AddPartitionsToTxnResponse::default().with_results_by_transaction(out))
}
