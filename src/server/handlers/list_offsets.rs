//! ListOffsets (key 2), v0–v7: earliest (-2), latest (-1), max timestamp (-3), by timestamp.
//! Max timestamp (v7+, KIP-734) answers the first record carrying the largest timestamp, with
//! that timestamp, as Kafka does (`storage::read` explains how it is found); an empty partition
//! answers offset -1, timestamp -1, as does a timestamp after every record. Max timestamp below
//! v7, or any other negative timestamp, gets `UNSUPPORTED_VERSION` for that partition (Kafka's
//! per-timestamp minimum versions).
//! v0 (old clients: sarama before 0.10.1) is decoded by `protocol::legacy_api`; its answer is
//! an offsets array of at most `max_num_offsets` entries holding the one offset found (Kafka's
//! v0 could list several segment base offsets; clients read the first).
//! Isolation level (v2+): read_committed (1) answers LATEST with the last stable offset, and a
//! timestamp lookup only finds offsets below it (none, -1, when the first record at or after the
//! timestamp is at or past it), as Kafka's `Partition.fetchOffsetForTimestamp` filters every
//! answer but EARLIEST by the isolation level's last fetchable offset; MAX_TIMESTAMP too.

use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};

use super::{HandlerError, Reply, Request};
use crate::protocol::errors;
use crate::protocol::legacy_api;
use crate::server::partitions::on_owners;
use crate::shard::ShardCtx;
use crate::storage::leader_epoch::LEADER_EPOCH;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 7;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;

/// (error code, timestamp, offset)
type Found = (i16, i64, i64);

/// Kafka's `isListOffsetsTimestampUnsupported`: a special (negative) timestamp needs the version
/// that introduced it (max timestamp: v7); any other negative value is unsupported at every
/// version we serve. Kafka answers `UNSUPPORTED_VERSION` for the partition, before looking the
/// topic up. Earliest and latest are also served at v0, for the old clients that use it.
/// Kafka's `ListOffsetsRequest.DEBUGGING_REPLICA_ID`: may read from a follower.
const DEBUGGING_REPLICA_ID: i32 = -2;

fn timestamp_supported(ts: i64, version: i16) -> bool {
    match ts {
        LATEST | EARLIEST => true,
        MAX_TIMESTAMP => version >= 7,
        ts => ts >= 0,
    }
}

/// (topic, partition, timestamp, read_committed)
type Item = (String, i32, i64, bool);

async fn lookup_on_owner(ctx: Rc<ShardCtx>, items: Vec<Item>) -> Vec<Found> {
    let mut out = Vec::with_capacity(items.len());
    for (topic, p, ts, read_committed) in items {
        let Some(log) = ctx.log(&topic, p) else {
            out.push((ResponseError::UnknownTopicOrPartition.code(), -1, -1));
            continue;
        };
        // What the isolation level lets the client see; taken before the lookup (it only grows).
        let upper = if read_committed {
            log.last_stable_offset()
        } else {
            log.high_watermark()
        };
        let found = match ts {
            LATEST => (errors::NONE, -1, upper),
            EARLIEST => (errors::NONE, -1, log.log_start_offset()),
            MAX_TIMESTAMP => match log.offset_of_max_timestamp().await {
                Ok(Some((o, t))) if o < upper => (errors::NONE, t, o),
                Ok(Some(_)) => (errors::NONE, -1, -1),
                Ok(None) => (errors::NONE, -1, -1),
                Err(e) => (e.error_code(), -1, -1),
            },
            ts if ts < 0 => (ResponseError::UnsupportedVersion.code(), -1, -1),
            ts => match log.offset_for_timestamp(ts).await {
                Ok(Some((o, t))) if o < upper => (errors::NONE, t, o),
                Ok(Some(_)) => (errors::NONE, -1, -1),
                Ok(None) => (errors::NONE, -1, -1),
                Err(e) => (e.error_code(), -1, -1),
            },
        };
        out.push(found);
    }
    out
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let (r, max_offsets): (ListOffsetsRequest, Vec<i32>) = if req.version == 0 {
        legacy_api::decode_list_offsets_v0(&req.body).map_err(|e| req.decode_error(e))?
    } else {
        (req.decode()?, Vec::new())
    };
    let ctx = req.ctx.clone();
    let snap = ctx.metadata();
    let mut layout = Vec::with_capacity(r.topics.len());
    // v0 and v1 have no isolation level (decoded as 0).
    let read_committed = r.isolation_level == 1;
    let mut items = Vec::new();
    for t in &r.topics {
        let name = t.name.0.as_str();
        let meta = snap.topic(name);
        let row: Vec<Result<usize, i16>> = t
            .partitions
            .iter()
            .map(|p| match meta {
                _ if !timestamp_supported(p.timestamp, req.version) => {
                    Err(ResponseError::UnsupportedVersion.code())
                }
                Some(m) if p.partition_index >= 0 && p.partition_index < m.partitions => {
                    // In a cluster only the leader answers (a debugging tool, replica id -2,
                    // may ask any replica), at the client's leader epoch.
                    if r.replica_id.0 != DEBUGGING_REPLICA_ID
                        && let Err(e) = crate::replica::check_leader(
                            &ctx,
                            name,
                            p.partition_index,
                            p.current_leader_epoch,
                        )
                    {
                        return Err(e.code());
                    }
                    items.push((
                        ctx.owner_of(name, p.partition_index),
                        (
                            name.to_string(),
                            p.partition_index,
                            p.timestamp,
                            read_committed,
                        ),
                    ));
                    Ok(items.len() - 1)
                }
                _ => Err(ResponseError::UnknownTopicOrPartition.code()),
            })
            .collect();
        layout.push(row);
    }
    let found = on_owners(items, lookup_on_owner, || {
        (ResponseError::NotLeaderOrFollower.code(), -1, -1)
    })
    .await;
    let version = req.version;
    if version == 0 {
        let mut i = 0;
        let topics: Vec<_> = r
            .topics
            .iter()
            .zip(layout)
            .map(|(t, row)| {
                let parts = t
                    .partitions
                    .iter()
                    .zip(row)
                    .map(|(p, slot)| {
                        let (code, _, off) = match slot {
                            Ok(j) => found[j],
                            Err(code) => (code, -1, -1),
                        };
                        let max = max_offsets[i];
                        i += 1;
                        let offsets = if code == errors::NONE && off >= 0 && max > 0 {
                            vec![off]
                        } else {
                            Vec::new()
                        };
                        (p.partition_index, code, offsets)
                    })
                    .collect();
                (t.name.0.as_str().to_string(), parts)
            })
            .collect();
        return Ok(Reply::Frame(legacy_api::encode_list_offsets_v0_response(
            req.header.correlation_id,
            &topics,
        )));
    }
    let topics = r
        .topics
        .iter()
        .zip(layout)
        .map(|(t, row)| {
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(row)
                        .map(|(p, slot)| {
                            let (code, ts, off) = match slot {
                                Ok(i) => found[i],
                                Err(code) => (code, -1, -1),
                            };
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                                .with_timestamp(ts)
                                .with_offset(off)
                                .with_leader_epoch(
                                    if version >= 4 && code == errors::NONE && off >= 0 {
                                        LEADER_EPOCH
                                    } else {
                                        -1
                                    },
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    req.respond(&ListOffsetsResponse::default().with_topics(topics))
}
