//! Produce (key 0), v0–v9: acks 0/1/-1, many topics and partitions per request, per-partition
//! errors, auto-creation of unknown topics with `num.partitions`. v0–v2 (legacy message sets) are
//! decoded and answered by `protocol::legacy_api` and their records converted to v2 batches by
//! `protocol::ingest`, which also applies a topic's `compression.type` (off the common path) and,
//! for a topic whose `cleanup.policy` includes `compact`, refuses records without a key
//! (INVALID_RECORD with Kafka's `record_errors` and message; nothing of the partition's records
//! is appended). A transaction's first batch on a partition is verified with its transaction
//! coordinator first (KIP-890, `txn::verify`; later batches need no hop).
//!
//! One mesh round trip per owner shard (all owners in parallel). The owner validates each
//! partition's records and assigns their offsets (`append_assign`, synchronous: the write is only
//! queued) as the message arrives, then waits for the write (`wait_written`; acks=0/1) or for the
//! fdatasync covering it (`wait_durable`, acks=-1: one sync, group commit, covers everything
//! written before it started) and answers. The connection's next request is released once every
//! owner has its message queued: each (shard, shard) channel is FIFO and the owner assigns offsets
//! in arrival order (`shard::post`), so pipelined produces take their offsets in request order (as
//! Kafka guarantees per connection) while their disk writes coalesce and their durability waits
//! overlap. acks=0 sends nothing back; if any partition failed the connection is closed, which is
//! how Kafka tells an acks=0 producer something went wrong.
//!
//! Why release before the owner answers: at 250k msg/s acks=all with 5 requests in flight per
//! connection, each request otherwise waited for its predecessor's O_DIRECT write. Why one round
//! trip: an earlier version hopped twice (assign, then wait), and cross-shard wakeups were a large
//! share of broker CPU under load (measured in `docs/perf/produce-path.md`).

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, ProduceRequest};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};

use super::metadata::auto_create;
use super::{HandlerError, Reply, Request};
use crate::config::BrokerSettings;
use crate::format::compression::TopicCompression;
use crate::metadata::{TopicMeta, validate_topic_name};
use crate::protocol::errors;
use crate::protocol::{ingest, legacy_api};
use crate::quota::PRODUCER_BYTE_RATE;
use crate::server::partitions::post_to_owners;
use crate::shard::ShardCtx;
use crate::storage::CleanupPolicy;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 9;

struct Item {
    topic: String,
    partition: i32,
    records: Bytes,
}

#[derive(Clone)]
struct Outcome {
    /// Last offset written (for the durability wait), -1 on error.
    last_offset: i64,
    error_code: i16,
    error_message: Option<String>,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    /// Kafka's per-record errors (batch index, message): a keyless record in a compacted topic.
    record_errors: Vec<(i32, String)>,
}

impl Outcome {
    fn err(code: i16) -> Self {
        Outcome {
            last_offset: -1,
            error_code: code,
            error_message: None,
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
        }
    }
}

/// On the owner shard: validates and assigns offsets for every item synchronously (this runs in
/// the mesh receive loop, in the order the connection's shard posted, see `shard::post`), then
/// returns the future that waits for each write (acks=-1: for the fdatasync covering it and, in a
/// cluster, for the ISR to have it: [`crate::replica::wait_acks_all`]).
fn append_on_owner(
    ctx: Rc<ShardCtx>,
    items: Vec<Item>,
    acks: i16,
) -> impl Future<Output = Vec<Outcome>> {
    let durable = acks == -1;
    let mut assigned = Vec::with_capacity(items.len());
    for item in items {
        if let Err(e) = crate::replica::check_produce(&ctx, &item.topic, item.partition, acks) {
            assigned.push((Outcome::err(e.code()), None));
            continue;
        }
        let Some(log) = ctx.log(&item.topic, item.partition) else {
            assigned.push((
                Outcome::err(ResponseError::UnknownTopicOrPartition.code()),
                None,
            ));
            continue;
        };
        match log.append_assign(item.records) {
            Ok(info) => assigned.push((
                Outcome {
                    last_offset: info.last_offset,
                    error_code: errors::NONE,
                    error_message: None,
                    base_offset: info.base_offset,
                    log_append_time: info.log_append_time,
                    log_start_offset: info.log_start_offset,
                    record_errors: Vec::new(),
                },
                Some((log, item.topic, item.partition)),
            )),
            Err(e) => {
                tracing::debug!(topic = %item.topic, partition = item.partition, error = %e, "append failed");
                assigned.push((
                    Outcome {
                        error_message: Some(e.to_string()),
                        ..Outcome::err(e.error_code())
                    },
                    None,
                ));
            }
        }
    }
    async move {
        let mut out = Vec::with_capacity(assigned.len());
        for (outcome, log) in assigned {
            let Some((log, topic, partition)) = log else {
                out.push(outcome);
                continue;
            };
            let waited = if durable {
                crate::replica::wait_acks_all(&ctx, &topic, partition, &log, outcome.last_offset)
                    .await
                    .map_err(|e| (e.code(), None))
            } else {
                log.wait_written(outcome.last_offset)
                    .await
                    .map_err(|e| (e.error_code(), Some(e.to_string())))
            };
            match waited {
                Ok(()) => out.push(outcome),
                Err((code, message)) => {
                    tracing::error!(%topic, partition, code, ?message, "waiting for the write failed");
                    out.push(Outcome {
                        error_message: message,
                        ..Outcome::err(code)
                    });
                }
            }
        }
        out
    }
}

/// Decodes, resolves and readies every partition's records, appends them on their owners, waits
/// as the acks level asks, answers.
pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: ProduceRequest = if req.version < 3 {
        legacy_api::decode_produce(&req.body).map_err(|e| req.decode_error(e))?
    } else {
        req.decode()?
    };
    let ctx = req.ctx.clone();
    // Metered before the connection's next request may start, so a throttle mutes it.
    let throttle_ms = req.meter_quota(PRODUCER_BYTE_RATE, req.body.len() as u64);
    let (slots, items) = plan_appends(&ctx, &r).await;
    // One mesh message per owner shard: the owner assigns offsets as the message arrives (in the
    // order this shard posted) and answers once the writes are done (acks=-1: durable). So the
    // connection's next request may start as soon as every owner has its message queued: its
    // appends take offsets after these and may share their disk write.
    let acks = r.acks;
    let results = post_to_owners(
        items,
        move |ctx, items| append_on_owner(ctx, items, acks),
        || Outcome::err(ResponseError::NotLeaderOrFollower.code()),
    )
    .await;
    req.release();
    // Every ack level waits for the write (acks=0 too: a failed write closes the connection).
    let results = results.await;
    let (responses, any_error) = assemble(&r, slots, &results);
    // KIP-219: Produce v6+ clients wait out the throttle themselves.
    req.delay_if_old(throttle_ms, req.version >= 6).await;
    respond(&req, r.acks, responses, any_error, throttle_ms)
}

/// Per (topic, partition) in request order: an answer known before any append, or the index of
/// the partition's append among the items.
type Slots = Vec<Vec<Result<usize, Outcome>>>;

/// Resolves every topic and readies every partition's records, in request order: the appends to
/// post (each with its owner shard) and where each answer comes from.
async fn plan_appends(ctx: &Rc<ShardCtx>, r: &ProduceRequest) -> (Slots, Vec<(usize, Item)>) {
    let valid_acks = (-1..=1).contains(&r.acks);
    let mut slots: Slots = Vec::with_capacity(r.topic_data.len());
    let mut items: Vec<(usize, Item)> = Vec::new();
    // One snapshot of the effective (static + dynamic) settings for the whole request.
    let settings = ctx.settings();
    // In a cluster the ISR decides (replica::check_produce, per partition).
    let single = ctx.info.quorum.is_none();
    for td in &r.topic_data {
        let name = td.name.0.as_str();
        let topic = resolve_topic(ctx, name, valid_acks).await.and_then(|t| {
            if single {
                enough_replicas(&settings, &t, r.acks)?;
            }
            Ok(t)
        });
        let compression = topic.as_ref().map_or(TopicCompression::Producer, |t| {
            TopicCompression::effective(
                t.configs.get("compression.type"),
                &settings.compression_type,
            )
        });
        let compacted = topic.as_ref().is_ok_and(|t| {
            let policy = t
                .configs
                .get("cleanup.policy")
                .unwrap_or(&settings.log_cleanup_policy);
            CleanupPolicy::parse(policy).is_some_and(|p| p.compact)
        });
        let mut row = Vec::with_capacity(td.partition_data.len());
        for pd in &td.partition_data {
            let slot = match &topic {
                Err(code) => Err(Outcome::err(*code)),
                Ok(t) => match prepare_partition(t, pd, compression, compacted) {
                    Ok(item) => match verify_txn(ctx, &settings, r, &item).await {
                        Ok(()) => {
                            items.push((ctx.owner_of(name, pd.index), item));
                            Ok(items.len() - 1)
                        }
                        Err(code) => Err(Outcome::err(code)),
                    },
                    Err(o) => Err(o),
                },
            };
            row.push(slot);
        }
        slots.push(row);
    }
    (slots, items)
}

/// KIP-890's verification of a transactional batch (see `txn::verify`); Ok for all others.
async fn verify_txn(
    ctx: &ShardCtx,
    settings: &BrokerSettings,
    r: &ProduceRequest,
    item: &Item,
) -> Result<(), i16> {
    let Some(id) = r.transactional_id.as_ref().filter(|t| !t.0.is_empty()) else {
        return Ok(());
    };
    match crate::txn::verify::transactional_producer(&item.records) {
        Some(producer) if settings.transaction_partition_verification_enable => {
            crate::txn::verify::check(ctx, id, producer, &item.topic, item.partition).await
        }
        _ => Ok(()),
    }
}

/// acks=all needs `min.insync.replicas` in-sync replicas; a single broker is one (Kafka answers a
/// topic with replication factor 1 and a higher minimum the same way). Single node only.
fn enough_replicas(settings: &BrokerSettings, t: &TopicMeta, acks: i16) -> Result<(), i16> {
    if acks != -1 {
        return Ok(());
    }
    let min = t
        .configs
        .get("min.insync.replicas")
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(settings.min_insync_replicas);
    if min > 1 {
        return Err(ResponseError::NotEnoughReplicas.code());
    }
    Ok(())
}

/// The topic a produce names, created first if it does not exist and `auto.create.topics.enable`
/// allows; else the error code every one of its partitions is answered with.
async fn resolve_topic(
    ctx: &ShardCtx,
    name: &str,
    valid_acks: bool,
) -> Result<Arc<TopicMeta>, i16> {
    if !valid_acks {
        return Err(ResponseError::InvalidRequiredAcks.code());
    }
    if let Some(t) = ctx.metadata().topic(name) {
        return Ok(t.clone());
    }
    validate_topic_name(name).map_err(|e| e.error_code())?;
    if !ctx.info.settings.auto_create_topics_enable {
        return Err(ResponseError::UnknownTopicOrPartition.code());
    }
    auto_create(ctx, name).await.map_err(|e| e.error_code())
}

/// Checks one partition of a known topic and readies its records for the owner's append, or
/// the answer it gets instead.
fn prepare_partition(
    t: &TopicMeta,
    pd: &PartitionProduceData,
    compression: TopicCompression,
    compacted: bool,
) -> Result<Item, Outcome> {
    if pd.index < 0 || pd.index >= t.partitions {
        return Err(Outcome::err(ResponseError::UnknownTopicOrPartition.code()));
    }
    let Some(records) = pd.records.as_ref() else {
        return Err(Outcome::err(ResponseError::CorruptMessage.code()));
    };
    // No copy: the batches stay in the request frame until the owner's writer copies them into
    // its DMA buffer, patching the base offset as it goes. Legacy sets and topics with a
    // compression.type are converted here, on the connection's shard.
    match ingest::prepare(records, compression) {
        Ok(records) if compacted => match ingest::check_keys(&records, &t.name, pd.index) {
            Ok(()) => Ok(Item {
                topic: t.name.clone(),
                partition: pd.index,
                records,
            }),
            Err(e) => {
                tracing::debug!(topic = %t.name, partition = pd.index, error = %e.message, "keyless records refused");
                Err(Outcome {
                    error_message: Some(e.message.clone()),
                    record_errors: e.errors.clone(),
                    ..Outcome::err(e.error_code())
                })
            }
        },
        Ok(records) => Ok(Item {
            topic: t.name.clone(),
            partition: pd.index,
            records,
        }),
        Err(e) => {
            tracing::debug!(topic = %t.name, partition = pd.index, error = %e, "records refused");
            Err(Outcome {
                error_message: Some(e.to_string()),
                ..Outcome::err(e.error_code())
            })
        }
    }
}

/// The response's topics in request order, and the first partition error (for acks=0, which
/// has no response to carry it).
fn assemble(
    r: &ProduceRequest,
    slots: Slots,
    results: &[Outcome],
) -> (Vec<TopicProduceResponse>, Option<String>) {
    let mut any_error = None;
    let mut responses = Vec::with_capacity(r.topic_data.len());
    for (td, row) in r.topic_data.iter().zip(slots) {
        let mut parts = Vec::with_capacity(row.len());
        for (pd, slot) in td.partition_data.iter().zip(row) {
            let o = match slot {
                Ok(i) => results[i].clone(),
                Err(o) => o,
            };
            if o.error_code != errors::NONE && any_error.is_none() {
                any_error = Some(format!(
                    "{}-{}: error {}",
                    td.name.0.as_str(),
                    pd.index,
                    o.error_code
                ));
            }
            parts.push(
                PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_error_code(o.error_code)
                    .with_base_offset(o.base_offset)
                    .with_log_append_time_ms(o.log_append_time)
                    .with_log_start_offset(o.log_start_offset)
                    .with_error_message(o.error_message.as_deref().map(sb))
                    .with_record_errors(
                        o.record_errors
                            .iter()
                            .map(|(i, m)| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(*i)
                                    .with_batch_index_error_message(Some(sb(m)))
                            })
                            .collect(),
                    ),
            );
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name.clone())
                .with_partition_responses(parts),
        );
    }
    (responses, any_error)
}

/// Answers: nothing for acks=0 (or a closed connection if a partition failed), else the
/// response, in the pre-v3 layout for old clients.
fn respond(
    req: &Request,
    acks: i16,
    responses: Vec<TopicProduceResponse>,
    any_error: Option<String>,
    throttle_ms: u64,
) -> Result<Reply, HandlerError> {
    if acks == 0 {
        return Ok(match any_error {
            Some(e) => Reply::Close(format!("acks=0 produce failed ({e})")),
            None => Reply::None,
        });
    }
    let resp = ProduceResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(throttle_ms.min(i32::MAX as u64) as i32);
    if req.version < 3 {
        return Ok(Reply::Frame(legacy_api::encode_produce_response(
            req.header.correlation_id,
            req.version,
            &resp,
        )));
    }
    req.respond(&resp)
}
