//! Produce (key 0), v0–v9: acks 0/1/-1, many topics and partitions per request, per-partition
//! errors, auto-creation of unknown topics with `num.partitions`. v0–v2 (legacy message sets) are
//! decoded and answered by `protocol::legacy_api` and their records converted to v2 batches by
//! `protocol::ingest`, which also applies a topic's `compression.type` (off the common path).
//!
//! Two phases, each one mesh hop per owner shard (all owners in parallel). Phase 1 validates each
//! partition's records and assigns their offsets (`append_assign`, synchronous on the owner: the
//! write is only queued). Then the request releases the connection's next request, so pipelined
//! produces take their offsets in request order (as Kafka guarantees per connection) while their
//! disk writes coalesce and their durability waits overlap. Phase 2 waits for the write
//! (`wait_written`; acks=0/1) or for the fdatasync covering it (`wait_durable`, acks=-1: one sync,
//! group commit, covers everything written before it started). acks=0 sends nothing back; if any
//! partition failed the connection is closed, which is how Kafka tells an acks=0 producer
//! something went wrong.
//!
//! Releasing after phase 1 instead of after the write: at 250k msg/s acks=all with 5 requests in
//! flight per connection, each request otherwise waited for its predecessor's O_DIRECT write.

use std::rc::Rc;

use bytes::BytesMut;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};

use super::metadata::auto_create;
use super::{HandlerError, Reply, Request, sb};
use crate::metadata::validate_topic_name;
use crate::protocol::compression::TopicCompression;
use crate::protocol::{errors, ingest, legacy_api};
use crate::server::partitions::on_owners;
use crate::shard::ShardCtx;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 9;

struct Item {
    topic: String,
    partition: i32,
    records: BytesMut,
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

async fn append_on_owner(ctx: Rc<ShardCtx>, items: Vec<Item>) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(log) = ctx.log(&item.topic, item.partition) else {
            out.push(Outcome::err(errors::UNKNOWN_TOPIC_OR_PARTITION));
            continue;
        };
        // Offsets are assigned (and the write queued) synchronously; the write is awaited in the
        // second phase, after the connection's next request was released.
        match log.append_assign(item.records) {
            Ok(info) => out.push(Outcome {
                last_offset: info.last_offset,
                error_code: errors::NONE,
                error_message: None,
                base_offset: info.base_offset,
                log_append_time: info.log_append_time,
                log_start_offset: info.log_start_offset,
            }),
            Err(e) => {
                tracing::debug!(topic = %item.topic, partition = item.partition, error = %e, "append failed");
                out.push(Outcome {
                    error_message: Some(e.to_string()),
                    ..Outcome::err(e.error_code())
                });
            }
        }
    }
    out
}

/// (topic, partition, last offset, durable) → `None` once written (and, if `durable`, on stable
/// storage), or the error.
async fn durable_on_owner(
    ctx: Rc<ShardCtx>,
    items: Vec<(String, i32, i64, bool)>,
) -> Vec<Option<(i16, String)>> {
    let mut out = Vec::with_capacity(items.len());
    for (topic, partition, last, durable) in items {
        let res = match ctx.log(&topic, partition) {
            None => Some((errors::UNKNOWN_TOPIC_OR_PARTITION, "partition gone".to_string())),
            Some(log) => match if durable {
                log.wait_durable(last).await
            } else {
                log.wait_written(last).await
            } {
                Ok(()) => None,
                Err(e) => {
                    tracing::error!(%topic, partition, error = %e, "waiting for durability failed");
                    Some((e.error_code(), e.to_string()))
                }
            },
        };
        out.push(res);
    }
    out
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
            topic_err = Some(errors::INVALID_REQUIRED_ACKS);
        } else if snap_topic.is_none() {
            if let Err(e) = validate_topic_name(name) {
                topic_err = Some(e.error_code());
            } else if settings.auto_create_topics_enable {
                match auto_create(&ctx, name).await {
                    Ok(t) => snap_topic = Some(t),
                    Err(e) => topic_err = Some(e.error_code()),
                }
            } else {
                topic_err = Some(errors::UNKNOWN_TOPIC_OR_PARTITION);
            }
        }
        let compression = snap_topic.as_ref().map_or(TopicCompression::Producer, |t| {
            TopicCompression::effective(t.configs.get("compression.type"), &settings.compression_type)
        });
        let mut row = Vec::with_capacity(td.partition_data.len());
        for pd in &td.partition_data {
            if let Some(code) = topic_err {
                row.push(Err(Outcome::err(code)));
                continue;
            }
            let t = snap_topic.as_ref().expect("topic known when no error");
            if pd.index < 0 || pd.index >= t.partitions {
                row.push(Err(Outcome::err(errors::UNKNOWN_TOPIC_OR_PARTITION)));
                continue;
            }
            let Some(records) = pd.records.as_ref() else {
                row.push(Err(Outcome::err(errors::CORRUPT_MESSAGE)));
                continue;
            };
            // One copy per batch: the log takes an owned, mutable buffer (it rewrites the base
            // offset) and the frame's bytes are shared. Legacy sets and topics with a
            // compression.type are converted here, on the connection's shard.
            let records: BytesMut = match ingest::prepare(records, compression) {
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
    let owners: Vec<usize> = items.iter().map(|(o, _)| *o).collect();
    let keys: Vec<(String, i32)> = items
        .iter()
        .map(|(_, i)| (i.topic.clone(), i.partition))
        .collect();
    let mut results = on_owners(items, append_on_owner, || {
        Outcome::err(errors::NOT_LEADER_OR_FOLLOWER)
    })
    .await;
    // The appends have their offsets and are queued in the logs: the connection's next request
    // may start (its appends queue behind these and may share their disk write).
    req.release();
    {
        // Every ack level waits for the write (acks=0 too: a failed write closes the connection);
        // acks=-1 also for the fdatasync covering it (wait_durable includes the write).
        let mut waits = Vec::new();
        let mut idx = Vec::new();
        for (i, o) in results.iter().enumerate() {
            if o.error_code == errors::NONE {
                idx.push(i);
                waits.push((
                    owners[i],
                    (keys[i].0.clone(), keys[i].1, o.last_offset, acks == -1),
                ));
            }
        }
        let durable = on_owners(waits, durable_on_owner, || {
            Some((errors::NOT_LEADER_OR_FOLLOWER, "owner shard unreachable".into()))
        })
        .await;
        for (i, d) in idx.into_iter().zip(durable) {
            if let Some((code, msg)) = d {
                results[i] = Outcome {
                    error_message: Some(msg),
                    ..Outcome::err(code)
                };
            }
        }
    }

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
