//! Produce-side verification (KIP-890 part 1, Kafka's `transaction.partition.verification.enable`):
//! the first transactional batch of a transaction on a partition is accepted only if the
//! transaction coordinator has that partition in the producer's ongoing transaction. Without it a
//! batch delayed past its transaction's end (retried after a timeout, say) would open a
//! transaction on the partition that no marker ever closes, holding back the last stable offset.
//!
//! Where the answer is kept: each shard remembers the (producer id, epoch, topic, partition)
//! it verified for the requests it decodes, so later batches of the same transaction need no hop
//! to the coordinator. When a transaction ends, the coordinator tells every shard to forget the
//! producer ([`forget`]) before it writes CompleteCommit/CompleteAbort, so the next transaction is
//! verified again. The memory is bounded by the partitions of ongoing transactions: every
//! transaction ends, by EndTxn or by its timeout.

use super::shard::on_coordinator;
use crate::shard::ShardCtx;
use kafka_protocol::ResponseError;
use std::cell::RefCell;
use std::collections::HashSet;

#[derive(Default)]
struct Verified(RefCell<HashSet<(i64, i16, String, i32)>>);

/// Attributes bit of a transactional v2 batch.
const TRANSACTIONAL: u16 = 0x10;

/// The producer id and epoch of `records` if its first batch is a transactional v2 batch (the
/// v2 header: base offset 8, length 4, leader epoch 4, magic 1, crc 4, attributes 2, last offset
/// delta 4, timestamps 16, producer id 8, epoch 2).
pub fn transactional_producer(records: &[u8]) -> Option<(i64, i16)> {
    if records.len() < 61 || records[16] != 2 {
        return None;
    }
    let attributes = u16::from_be_bytes([records[21], records[22]]);
    if attributes & TRANSACTIONAL == 0 {
        return None;
    }
    let pid = i64::from_be_bytes(records[43..51].try_into().ok()?);
    let epoch = i16::from_be_bytes(records[51..53].try_into().ok()?);
    Some((pid, epoch))
}

/// Checks a transactional produce to `(topic, partition)`; `Err` is the partition's Produce
/// error: INVALID_TXN_STATE when the partition is not in the transaction, INVALID_PRODUCER_EPOCH
/// for a fenced producer, and NOT_ENOUGH_REPLICAS (retriable, Kafka's conversion for Produce)
/// when the coordinator is busy or unreachable.
pub async fn check(
    ctx: &ShardCtx,
    transactional_id: &str,
    producer: (i64, i16),
    topic: &str,
    partition: i32,
) -> Result<(), i16> {
    let key = (producer.0, producer.1, topic.to_string(), partition);
    let cache = ctx.local_state(Verified::default);
    if cache.0.borrow().contains(&key) {
        return Ok(());
    }
    let (id, t) = (transactional_id.to_string(), topic.to_string());
    let answer = on_coordinator(ctx, transactional_id, move |c| async move {
        c.verify(&id, producer.0, producer.1, &t, partition)
    })
    .await
    .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
    match answer {
        Ok(()) => {
            cache.0.borrow_mut().insert(key);
            Ok(())
        }
        Err(ResponseError::ProducerFenced) => Err(ResponseError::InvalidProducerEpoch.code()),
        Err(e @ (ResponseError::InvalidTxnState | ResponseError::InvalidProducerIdMapping)) => {
            Err(e.code())
        }
        Err(_) => Err(ResponseError::NotEnoughReplicas.code()),
    }
}

/// Forgets what this shard verified for `producer_id` (its transaction ended).
pub fn forget(ctx: &ShardCtx, producer_id: i64) {
    ctx.local_state(Verified::default)
        .0
        .borrow_mut()
        .retain(|k| k.0 != producer_id);
}
