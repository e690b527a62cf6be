//! OffsetFetch (key 9), v0–v8: one group (v0–v7; all partitions when topics is null, v2+) or
//! several groups in one request (v8). Partitions without a commit answer offset -1. With
//! `require_stable` (v7+, sent by read_committed consumers) a partition for which an open
//! transaction holds a pending TxnOffsetCommit answers UNSTABLE_OFFSET_COMMIT (per partition,
//! offset -1, as Kafka), and the consumer retries until the transaction is complete.
//!
//! v0 (removed in Kafka 4, KIP-896) read the offsets Kafka kept in ZooKeeper for OffsetCommit v0;
//! here every version's commits share one store, so v0 answers exactly like v1, whose request and
//! response layouts it has (kafka-protocol, which starts at v1, codes it as v1).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::GroupId;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};

use super::{HandlerError, Reply, Request, topic_name};
use crate::group::coordinator::FetchedOffset;
use crate::group::shard::on_coordinator;
use crate::protocol::errors;
use crate::shard::ShardCtx;
use crate::util::sb;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 8;

type Topics = Option<Vec<(String, Vec<i32>)>>;

async fn fetch_group(
    ctx: &ShardCtx,
    group: &str,
    topics: Topics,
    require_stable: bool,
) -> (i16, Vec<FetchedOffset>) {
    let g = group.to_string();
    let asked = topics.clone();
    match on_coordinator(ctx, group, move |c| async move {
        c.fetch(&g, asked, require_stable)
    })
    .await
    {
        Some(r) => r,
        None => (ResponseError::CoordinatorNotAvailable.code(), Vec::new()),
    }
}

/// Groups rows by topic, keeping first-seen topic order.
fn by_topic(rows: Vec<FetchedOffset>) -> Vec<(String, Vec<FetchedOffset>)> {
    let mut out: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|(t, _)| *t == r.topic) {
            Some((_, v)) => v.push(r),
            None => out.push((r.topic.clone(), vec![r])),
        }
    }
    out
}

pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let v = req.version;
    // v0 is coded as v1 (same layouts); `v` keeps the semantics (v0 and v1 alike here).
    let wire = v.max(1);
    let r: OffsetFetchRequest = req.decode_as(wire)?;
    let epoch = |e: i32| if v >= 5 { e } else { -1 };
    if v >= 8 {
        let mut groups = Vec::with_capacity(r.groups.len());
        for g in &r.groups {
            let topics: Topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let (code, rows) =
                fetch_group(&req.ctx, g.group_id.0.as_str(), topics, r.require_stable).await;
            let topics = by_topic(rows)
                .into_iter()
                .map(|(t, rows)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(topic_name(&t))
                        .with_partitions(
                            rows.iter()
                                .map(|o| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(o.partition)
                                        .with_committed_offset(o.offset)
                                        .with_committed_leader_epoch(epoch(o.leader_epoch))
                                        .with_metadata(Some(sb(&o.metadata)))
                                        .with_error_code(o.error_code)
                                })
                                .collect(),
                        )
                })
                .collect();
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(g.group_id.0.clone()))
                    .with_error_code(code)
                    .with_topics(topics),
            );
        }
        return req.respond(&OffsetFetchResponse::default().with_groups(groups));
    }
    let topics: Topics = r.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let asked = topics.clone();
    let require_stable = v >= 7 && r.require_stable;
    let (code, rows) = fetch_group(&req.ctx, r.group_id.0.as_str(), topics, require_stable).await;
    // v0–v1 have no top-level error code: report a group error on every requested partition.
    let rows = if code != errors::NONE && v < 2 {
        asked
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(t, ps)| {
                ps.into_iter().map(move |p| FetchedOffset {
                    topic: t.clone(),
                    partition: p,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    error_code: code,
                })
            })
            .collect()
    } else {
        rows
    };
    let topics = by_topic(rows)
        .into_iter()
        .map(|(t, rows)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&t))
                .with_partitions(
                    rows.iter()
                        .map(|o| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(o.partition)
                                .with_committed_offset(o.offset)
                                .with_committed_leader_epoch(epoch(o.leader_epoch))
                                .with_metadata(Some(sb(&o.metadata)))
                                .with_error_code(o.error_code)
                        })
                        .collect(),
                )
        })
        .collect();
    let resp = OffsetFetchResponse::default()
        .with_topics(topics)
        .with_error_code(if v >= 2 { code } else { errors::NONE });
    req.respond_as(wire, &resp)
}
