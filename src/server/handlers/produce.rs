//! Produce (key 0), v0–v9: acks 0/1/-1, many topics and partitions per request, per-partition
//! errors, auto-creation of unknown topics with `num.partitions`. v0–v2 (legacy message sets) are
//! decoded and answered by `protocol::legacy_api` and their records converted to v2 batches by
//! `protocol::ingest`, which also applies a topic's `compression.type` (off the common path).
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

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};

use super::metadata::auto_create;
use super::{HandlerError, Reply, Request};
use crate::metadata::validate_topic_name;
use crate::protocol::compression::TopicCompression;
use crate::protocol::errors;
use crate::protocol::{ingest, legacy_api};
use crate::server::partitions::post_to_owners;
use crate::shard::ShardCtx;
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
        }
    }
}

/// On the owner shard: validates and assigns offsets for every item synchronously (this runs in
/// the mesh receive loop, in the order the connection's shard posted, see `shard::post`), then
/// returns the future that waits for each write (`durable`: for the fdatasync covering it).
fn append_on_owner(
    ctx: Rc<ShardCtx>,
    items: Vec<Item>,
    durable: bool,
) -> impl Future<Output = Vec<Outcome>> {
    let mut assigned = Vec::with_capacity(items.len());
    for item in items {
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
                log.wait_durable(outcome.last_offset).await
            } else {
                log.wait_written(outcome.last_offset).await
            };
            match waited {
                Ok(()) => out.push(outcome),
                Err(e) => {
                    tracing::error!(%topic, partition, error = %e, "waiting for the write failed");
                    out.push(Outcome {
                        error_message: Some(e.to_string()),
                        ..Outcome::err(e.error_code())
                    });
                }
            }
        }
        out
    }
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: ProduceRequest = if req.version < 3 {
        legacy_api::decode_produce(&req.body).map_err(|e| req.decode_error(e))?
    } else {
        req.decode()?
    };
    let ctx = req.ctx.clone();
    let acks = r.acks;
    let valid_acks = (-1..=1).contains(&acks);
    let settings = &ctx.info.settings;

    // Per (topic, partition) in request order: either an immediate outcome or an index into items.
    let mut slots: Vec<Vec<Result<usize, Outcome>>> = Vec::with_capacity(r.topic_data.len());
    let mut items: Vec<(usize, Item)> = Vec::new();
    for td in &r.topic_data {
        let name = td.name.0.as_str();
        let mut snap_topic = ctx.metadata().topic(name).cloned();
        let mut topic_err = None;
        if !valid_acks {
            topic_err = Some(ResponseError::InvalidRequiredAcks.code());
        } else if snap_topic.is_none() {
            if let Err(e) = validate_topic_name(name) {
                topic_err = Some(e.error_code());
            } else if settings.auto_create_topics_enable {
                match auto_create(&ctx, name).await {
                    Ok(t) => snap_topic = Some(t),
                    Err(e) => topic_err = Some(e.error_code()),
                }
            } else {
                topic_err = Some(ResponseError::UnknownTopicOrPartition.code());
            }
        }
        let compression = snap_topic.as_ref().map_or(TopicCompression::Producer, |t| {
            TopicCompression::effective(
                t.configs.get("compression.type"),
                &settings.compression_type,
            )
        });
        let mut row = Vec::with_capacity(td.partition_data.len());
        for pd in &td.partition_data {
            if let Some(code) = topic_err {
                row.push(Err(Outcome::err(code)));
                continue;
            }
            let t = snap_topic.as_ref().expect("topic known when no error");
            if pd.index < 0 || pd.index >= t.partitions {
                row.push(Err(Outcome::err(
                    ResponseError::UnknownTopicOrPartition.code(),
                )));
                continue;
            }
            let Some(records) = pd.records.as_ref() else {
                row.push(Err(Outcome::err(ResponseError::CorruptMessage.code())));
                continue;
            };
            // No copy: the batches stay in the request frame until the owner's writer copies
            // them into its DMA buffer, patching the base offset as it goes. Legacy sets and
            // topics with a compression.type are converted here, on the connection's shard.
            let records: Bytes = match ingest::prepare(records, compression) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(topic = name, partition = pd.index, error = %e, "records refused");
                    row.push(Err(Outcome {
                        error_message: Some(e.to_string()),
                        ..Outcome::err(e.error_code())
                    }));
                    continue;
                }
            };
            row.push(Ok(items.len()));
            items.push((
                ctx.owner_of(name, pd.index),
                Item {
                    topic: name.to_string(),
                    partition: pd.index,
                    records,
                },
            ));
        }
        slots.push(row);
    }
    // One mesh message per owner shard: the owner assigns offsets as the message arrives (in the
    // order this shard posted) and answers once the writes are done (acks=-1: durable). So the
    // connection's next request may start as soon as every owner has its message queued: its
    // appends take offsets after these and may share their disk write.
    let durable = acks == -1;
    let results = post_to_owners(
        items,
        move |ctx, items| append_on_owner(ctx, items, durable),
        || Outcome::err(ResponseError::NotLeaderOrFollower.code()),
    )
    .await;
    req.release();
    // Every ack level waits for the write (acks=0 too: a failed write closes the connection).
    let results = results.await;

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
                    .with_error_message(o.error_message.as_deref().map(sb)),
            );
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name.clone())
                .with_partition_responses(parts),
        );
    }
    if acks == 0 {
        return Ok(match any_error {
            Some(e) => Reply::Close(format!("acks=0 produce failed ({e})")),
            None => Reply::None,
        });
    }
    let resp = ProduceResponse::default().with_responses(responses);
    if req.version < 3 {
        return Ok(Reply::Frame(legacy_api::encode_produce_response(
            req.header.correlation_id,
            req.version,
            &resp,
        )));
    }
    req.respond(&resp)
}
