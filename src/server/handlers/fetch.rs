//! Fetch (key 1), v0–v16: long poll, byte limits, zero-copy responses, sessionless; topics by
//! name up to v12 and by topic id from v13 (unknown ids get UNKNOWN_TOPIC_ID). v0–v3 (old
//! clients reading message sets) are decoded by `protocol::legacy_api` and answered with
//! down-converted records by `server::legacy_fetch`; everything before the response is shared.
//!
//! - Reads go to each partition's owner shard (one hop per owner, in parallel) and return file
//!   slices of whole batches starting with the batch that contains the fetch offset (the client
//!   skips records before its offset, as with Kafka).
//! - Long poll: if fewer than `min_bytes` are available, the request waits until `max_wait_ms`
//!   passes, the broker stops, or an append lands on one of its partitions (each owner waits on
//!   `wait_for_append` with the same deadline, so no waiter outlives the request by more than that).
//! - Byte limits, as Kafka's `ReplicaManager.readFromLog` (KIP-74): the response's budget is the
//!   request's `max_bytes` capped by the broker's `fetch.max.bytes`; partitions take from it in
//!   request order, each at most its `partition_max_bytes`. The first partition with data gets at
//!   least its first batch whatever the limits (so a consumer always progresses, one large batch
//!   at a time); every later one gets only the whole batches that fit in what is left, or none
//!   (its high watermark and error still go back). See `apply_limits` for how this works with
//!   reads that run in parallel on the owner shards.
//! - Isolation (v4+): read_committed (`isolation_level = 1`) reads whole batches below the
//!   partition's last stable offset only (`PartitionLog::read_below`: a batch straddling it waits
//!   for the marker that ends its transaction) and answers the aborted transactions overlapping
//!   `[fetch offset, end of the data)`; its long poll waits for the LSO, not the high watermark, to
//!   pass what it saw (the marker that moves the LSO is an append, so it wakes the waiters). The
//!   bytes are file slices like any read: read_committed keeps the zero-copy path, since the
//!   consumer, not the broker, drops aborted records using that list. Every response carries
//!   the real LSO; read_uncommitted ones a null aborted list, as Kafka's.
//! - Fetch sessions (KIP-227) are answered sessionless: session id 0 and every requested partition
//!   in every response, which all clients accept (a session id of 0 tells them none was created).
//! - The response is encoded by `server::fetch_response` with record bytes as file slices sent by
//!   sendfile(2); with `fetch.zerocopy.enable = false` the slices are read into memory and the
//!   response encoded by kafka-protocol (the copying path kept for comparison).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, ProducerId};

use super::{HandlerError, Reply, Request, topic_name};
use crate::metadata::MetadataSnapshot;
use crate::protocol::errors;
use crate::protocol::legacy_api;
use crate::quota::CONSUMER_BYTE_RATE;
use crate::server::fetch_response::{self, PartitionOut, TopicOut};
use crate::server::partitions::on_owners;
use crate::shard::{self, ShardCtx};
use crate::storage::txn::AbortedTxn;
use crate::storage::{FileSlice, PartitionLog, StorageError, page_cache};
use crate::sync::select_any;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 16;

/// Upper bound on a long poll, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

/// (topic, partition, end of what the last read could see: the high watermark, or the last
/// stable offset for a read_committed read)
type Seen = (String, i32, i64);

#[derive(Clone)]
struct Want {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: u32,
    /// The request's `max_bytes` or this partition's `partition_max_bytes` was negative.
    negative_limit: bool,
    /// `isolation_level = 1` (v4+): data below the last stable offset only, with the aborted
    /// transactions of the range.
    read_committed: bool,
    /// In a cluster, the fetching follower's broker id (`replica_id`): the read goes up to the
    /// log end, and the leader records the follower's progress ([`crate::replica`]).
    replica: Option<i32>,
    /// The client's `current_leader_epoch` (v9+; -1 = no check).
    current_leader_epoch: i32,
}

/// What a long poll waits to see grow past what the last read saw.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    HighWatermark,
    LastStable,
    /// A follower's fetch: the log end.
    LogEnd,
}

impl Want {
    fn bound(&self) -> Bound {
        if self.replica.is_some() {
            Bound::LogEnd
        } else if self.read_committed {
            Bound::LastStable
        } else {
            Bound::HighWatermark
        }
    }
}

#[derive(Clone)]
struct Got {
    error_code: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    slices: Vec<FileSlice>,
    /// Bytes of the first batch of `slices` (0 when none).
    first_batch_len: u32,
    /// read_committed reads only (null in the response otherwise, as Kafka sends).
    aborted: Option<Vec<AbortedTxn>>,
}

impl Got {
    fn err(code: i16) -> Self {
        Got {
            error_code: code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            slices: Vec::new(),
            first_batch_len: 0,
            aborted: None,
        }
    }
    fn bytes(&self) -> usize {
        self.slices.iter().map(|s| s.len as usize).sum()
    }
}

/// One partition's read on its owner: everything up to the high watermark, or for a
/// read_committed fetch the whole batches below the last stable offset with the aborted
/// transactions overlapping `[offset, end of the data)` (Kafka's `upperBoundOffset`). The LSO is
/// taken before the read (so it never exceeds the high watermark read): it only grows, and data
/// below it never changes, so the answer is consistent even if a marker lands meanwhile.
async fn read_one(log: &PartitionLog, w: &Want) -> Result<Got, StorageError> {
    let lso = log.last_stable_offset();
    // A follower reads up to the log end, a consumer up to the high watermark.
    if w.replica.is_some() || !w.read_committed {
        let r = if w.replica.is_some() {
            log.read_replica(w.offset, w.max_bytes).await?
        } else {
            log.read(w.offset, w.max_bytes).await?
        };
        return Ok(Got {
            error_code: errors::NONE,
            high_watermark: r.high_watermark,
            last_stable_offset: lso,
            log_start_offset: r.log_start_offset,
            slices: r.slices,
            first_batch_len: r.first_batch_len,
            aborted: None,
        });
    }
    let (r, upper) = log.read_below(w.offset, w.max_bytes, lso).await?;
    let aborted = if r.slices.is_empty() {
        Vec::new()
    } else {
        log.aborted_transactions(w.offset, upper)
    };
    Ok(Got {
        error_code: errors::NONE,
        high_watermark: r.high_watermark,
        last_stable_offset: lso,
        log_start_offset: r.log_start_offset,
        slices: r.slices,
        first_batch_len: r.first_batch_len,
        aborted: Some(aborted),
    })
}

async fn read_on_owner(ctx: Rc<ShardCtx>, wants: Vec<Want>) -> Vec<Got> {
    let mut out = Vec::with_capacity(wants.len());
    for w in wants {
        let Some(log) = ctx.log(&w.topic, w.partition) else {
            out.push(Got::err(ResponseError::UnknownTopicOrPartition.code()));
            continue;
        };
        // In a cluster: only the leader serves, and a follower's fetch reports its progress.
        let allowed = match w.replica {
            Some(id) => crate::replica::leader::on_follower_fetch(
                &ctx,
                &log,
                &(w.topic.clone(), w.partition),
                id,
                w.current_leader_epoch,
                w.offset,
            ),
            None => {
                crate::replica::check_leader(&ctx, &w.topic, w.partition, w.current_leader_epoch)
            }
        };
        if let Err(e) = allowed {
            out.push(Got {
                error_code: e.code(),
                high_watermark: log.high_watermark(),
                last_stable_offset: log.last_stable_offset(),
                log_start_offset: log.log_start_offset(),
                slices: Vec::new(),
                first_batch_len: 0,
                aborted: None,
            });
            continue;
        }
        match read_one(&log, &w).await {
            // Kafka's log refuses a negative size (IllegalArgumentException) where there is
            // something to read: UNKNOWN_SERVER_ERROR and unknown offsets.
            Ok(g) if w.negative_limit && !g.slices.is_empty() => {
                tracing::warn!(topic = %w.topic, partition = w.partition,
                    "fetch with a negative max_bytes or partition_max_bytes");
                out.push(Got::err(ResponseError::UnknownServerError.code()));
            }
            Ok(g) => {
                page_cache::prefetch(&g.slices, w.max_bytes);
                out.push(g);
            }
            Err(e) => {
                if !matches!(e, StorageError::OffsetOutOfRange { .. }) {
                    tracing::warn!(topic = %w.topic, partition = w.partition, error = %e, "read failed");
                }
                out.push(Got {
                    error_code: e.error_code(),
                    high_watermark: log.high_watermark(),
                    last_stable_offset: log.last_stable_offset(),
                    log_start_offset: log.log_start_offset(),
                    slices: Vec::new(),
                    first_batch_len: 0,
                    aborted: None,
                });
            }
        }
    }
    out
}

/// On an owner shard: returns when one of `parts` grows past what the last read saw (its high
/// watermark, or for read_committed its last stable offset: a transaction marker is an append,
/// so it wakes the waiters that way too), or at the deadline, or when the broker stops.
async fn wait_on_owner(ctx: Rc<ShardCtx>, parts: Vec<(Seen, Bound)>, deadline: Instant) {
    let mut futs: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::new();
    for ((topic, p, seen), bound) in &parts {
        if let Some(log) = ctx.log(topic, *p) {
            let end = match bound {
                Bound::LastStable => log.last_stable_offset(),
                Bound::HighWatermark => log.high_watermark(),
                Bound::LogEnd => log.log_end_offset(),
            };
            if end > *seen {
                return;
            }
            // A follower reads to the log end: every write wakes it, not only a HW advance.
            if *bound == Bound::LogEnd {
                futs.push(Box::pin(log.wait_for_write()));
            } else {
                futs.push(Box::pin(log.wait_for_append()));
            }
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    futs.push(Box::pin(async move {
        glommio::timer::sleep(left).await;
    }));
    let c = ctx.clone();
    futs.push(Box::pin(async move { c.stopping.wait().await }));
    select_any(futs).await;
}

/// Cuts the parallel reads down to the response's budget, in request order, to what Kafka's
/// sequential `ReplicaManager.readFromLog` returns.
///
/// Kafka reads the partitions one after another, each with min(`partition_max_bytes`, budget
/// left), the first with data allowed one batch past that (`minOneMessage`). Here every partition
/// was read at once with min(`partition_max_bytes`, `max_bytes`), at least one batch: exactly
/// Kafka's read for the first partition with data (nothing was taken before it), and at least
/// Kafka's read for each later one, which is then a prefix of ours. So, in order: the first
/// partition with data keeps its read; a later one keeps it if it fits in min(its limit, what is
/// left); if not, it gets nothing when even its first batch does not fit (Kafka answers such a
/// partition with no records, KIP-74), else it is read again on its owner with that as its
/// limit. Only partitions straddling the end of the budget are read twice, one hop each, and
/// the sum never exceeds `max_bytes` but for the first partition's first batch.
///
/// One difference is kept on purpose: Kafka sends a partition's bytes up to its limit, the start
/// of the next batch included (consumers drop it), and counts them; here only whole batches are
/// sent and counted, so where Kafka's partial batch would use up the budget a later partition may
/// still get batches. Both stay within the limits (`tests/server_fetch_limits.rs` runs the same
/// cases against Kafka and pins where the answers differ).
///
/// `cut_inside` is for Fetch v0–v2, whose down-converted answer `legacy_fetch` cuts at the byte
/// limits even inside a message (Kafka's `hardMaxBytesLimit`): there every partition keeps its
/// read while any budget is left, so that each has the messages it may send part of.
async fn apply_limits(got: &mut [Got], wants: &[(usize, Want)], max_bytes: u32, cut_inside: bool) {
    let mut left = max_bytes as usize;
    let mut first = true;
    for (g, (owner, want)) in got.iter_mut().zip(wants) {
        let n = g.bytes();
        if n == 0 {
            continue;
        }
        if std::mem::take(&mut first) || (cut_inside && left > 0) {
            left = left.saturating_sub(n);
            continue;
        }
        // The log returns one batch even past the limit it was given: for a later partition,
        // that batch must fit too.
        let limit = left.min(want.max_bytes as usize);
        if n <= limit {
            left -= n;
            continue;
        }
        if g.first_batch_len as usize > limit {
            g.slices.clear();
            continue;
        }
        let w = Want {
            max_bytes: limit as u32,
            ..want.clone()
        };
        let again = shard::run_on(*owner, move |c| read_on_owner(c, vec![w])).await;
        match again.ok().and_then(|mut v| v.pop()) {
            Some(r) if r.error_code == errors::NONE && r.bytes() <= limit => {
                left -= r.bytes();
                *g = r;
            }
            // Changed meanwhile (retention, a failed read): nothing rather than too much.
            _ => g.slices.clear(),
        }
    }
}

/// Decodes, plans the reads, long-polls until enough is there, cuts to the byte limits, answers.
pub async fn handle(req: Request) -> Result<Reply, HandlerError> {
    let r: FetchRequest = if req.version < 4 {
        legacy_api::decode_fetch(&req.body, req.version).map_err(|e| req.decode_error(e))?
    } else {
        req.decode()?
    };
    // Read-only: later requests of this connection need not wait for the long poll.
    req.release();
    let ctx = req.ctx.clone();
    let limits = Limits::of(&r, &ctx);
    let snap = ctx.metadata();
    let by_id = req.version >= 13;
    let plan = plan_reads(&ctx, &snap, &r, by_id, limits.max_bytes);
    let mut results = read_until_ready(&ctx, &plan.wants, &limits).await;
    apply_limits(
        &mut results,
        &plan.wants,
        limits.max_bytes,
        req.version <= 2,
    )
    .await;
    let topics_out = assemble(&r, &snap, by_id, plan, results);
    let record_bytes = topics_out
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.records)
        .map(|s| s.len as u64)
        .sum();
    let throttle_ms = req.meter_quota(CONSUMER_BYTE_RATE, record_bytes);
    // KIP-219: Fetch v8+ clients wait out the throttle themselves.
    req.delay_if_old(throttle_ms, req.version >= 8).await;
    let throttle_ms = throttle_ms.min(i32::MAX as u64) as i32;
    let zerocopy = req.version >= 4 && ctx.info.settings.fetch_zerocopy_enable;
    if !zerocopy && let Err(e) = settle_for_copy(&topics_out).await {
        return Ok(Reply::Close(format!("reading fetched records failed: {e}")));
    }
    respond(
        &req,
        &r,
        &topics_out,
        limits.max_bytes,
        zerocopy,
        throttle_ms,
    )
}

/// Encodes the answer: down-converted message sets for v0–v3, else the zero-copy response or
/// the copying one.
fn respond(
    req: &Request,
    r: &FetchRequest,
    topics_out: &[TopicOut],
    max_bytes: u32,
    zerocopy: bool,
    throttle_ms: i32,
) -> Result<Reply, HandlerError> {
    if req.version < 4 {
        return Ok(crate::server::legacy_fetch::reply(
            req, r, topics_out, max_bytes,
        ));
    }
    if zerocopy {
        Ok(Reply::Chunked(fetch_response::encode(
            req.header.correlation_id,
            req.version,
            throttle_ms,
            errors::NONE,
            0,
            topics_out,
        )))
    } else {
        copying_response(req, topics_out, throttle_ms)
    }
}

/// The request's time and byte limits as the broker applies them.
struct Limits {
    /// When the long poll gives up: `max_wait_ms` from now, capped by [`MAX_WAIT_CAP`].
    deadline: Instant,
    /// The response's byte budget.
    max_bytes: u32,
    /// What the long poll waits for; never more than `max_bytes`.
    min_bytes: usize,
}

impl Limits {
    /// The budget is the client's `max_bytes` capped by the broker's `fetch.max.bytes`, as
    /// Kafka's KafkaApis does (v0–v2 have none: decoded as `i32::MAX`). A negative limit fails
    /// the read of the partition it applies to (`read_on_owner`).
    fn of(r: &FetchRequest, ctx: &ShardCtx) -> Self {
        let wait = Duration::from_millis(r.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
        let max_bytes = (r.max_bytes.max(0) as u32).min(ctx.info.settings.fetch_max_bytes);
        Limits {
            deadline: Instant::now() + wait,
            max_bytes,
            min_bytes: (r.min_bytes.max(0) as u32).min(max_bytes) as usize,
        }
    }
}

/// The reads a request asks for, and where each answer goes in the response.
struct Plan {
    /// Per requested topic, per requested partition: the index of its read in `wants`, or
    /// `None` for a partition the broker does not have.
    layout: Vec<Vec<Option<usize>>>,
    /// Per requested topic: its name (the requested one when the topic is unknown).
    names: Vec<String>,
    /// The reads, in request order, each with its owner shard.
    wants: Vec<(usize, Want)>,
}

/// Resolves the requested topics (by name, or by id from v13) against the metadata snapshot and
/// lists one read per known partition, in request order.
fn plan_reads(
    ctx: &ShardCtx,
    snap: &MetadataSnapshot,
    r: &FetchRequest,
    by_id: bool,
    max_bytes: u32,
) -> Plan {
    let mut layout: Vec<Vec<Option<usize>>> = Vec::with_capacity(r.topics.len());
    let mut names: Vec<String> = Vec::with_capacity(r.topics.len());
    let mut wants: Vec<(usize, Want)> = Vec::new();
    // v0–v3 have no isolation level (decoded as 0, read_uncommitted).
    let read_committed = r.isolation_level == 1;
    // A follower: `replica_id` up to v14, `replica_state.replica_id` from v15 (the other is -1).
    // Only in a cluster; a single node answers every fetch as a consumer's, as it always has.
    let replica_id = r.replica_id.0.max(r.replica_state.replica_id.0);
    let replica = (snap.cluster.is_some() && replica_id >= 0).then_some(replica_id);
    for (ti, t) in r.topics.iter().enumerate() {
        let meta = if by_id {
            snap.topic_by_id(t.topic_id)
        } else {
            snap.topic(t.topic.0.as_str())
        };
        let name = match meta {
            Some(m) => m.name.clone(),
            None => t.topic.0.as_str().to_string(),
        };
        let name = name.as_str();
        names.push(name.to_string());
        let mut row = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.iter().enumerate() {
            match meta {
                Some(m) if p.partition >= 0 && p.partition < m.partitions => {
                    row.push(Some(wants.len()));
                    // Read with the most this partition can get: its own limit, within the
                    // response's (`apply_limits` cuts it down to what is left, in order).
                    wants.push((
                        ctx.owner_of(name, p.partition),
                        Want {
                            topic: name.to_string(),
                            partition: p.partition,
                            offset: p.fetch_offset,
                            max_bytes: (p.partition_max_bytes.max(0) as u32).min(max_bytes),
                            // Kafka's budget left goes to max(0, budget - bytes read) after
                            // the first partition, so only that one sees a negative max_bytes.
                            negative_limit: (ti == 0 && pi == 0 && r.max_bytes < 0)
                                || p.partition_max_bytes < 0,
                            read_committed: read_committed && replica.is_none(),
                            replica,
                            current_leader_epoch: p.current_leader_epoch,
                        },
                    ));
                }
                _ => row.push(None),
            }
        }
        layout.push(row);
    }
    Plan {
        layout,
        names,
        wants,
    }
}

/// Reads every wanted partition on its owner, and again after each append, until `min_bytes`
/// came back, a read failed, the deadline passed or the broker is stopping.
async fn read_until_ready(ctx: &ShardCtx, wants: &[(usize, Want)], limits: &Limits) -> Vec<Got> {
    loop {
        let got = on_owners(wants.to_vec(), read_on_owner, || {
            Got::err(ResponseError::NotLeaderOrFollower.code())
        })
        .await;
        let total: usize = got.iter().map(Got::bytes).sum();
        let errored = got.iter().any(|g| g.error_code != errors::NONE);
        if total >= limits.min_bytes.max(1)
            || limits.min_bytes == 0
            || errored
            || wants.is_empty()
            || Instant::now() >= limits.deadline
            || ctx.stopping.is_set()
        {
            return got;
        }
        wait_for_appends(wants, &got, limits.deadline).await;
    }
}

/// The long poll: waits on every owner concurrently until the first reports a partition grown
/// past what `got` saw, the deadline passes or the broker stops.
async fn wait_for_appends(wants: &[(usize, Want)], got: &[Got], deadline: Instant) {
    let mut by_owner: Vec<(usize, Vec<(Seen, Bound)>)> = Vec::new();
    for ((owner, w), g) in wants.iter().zip(got) {
        let seen = match w.bound() {
            Bound::LastStable => g.last_stable_offset,
            Bound::HighWatermark => g.high_watermark,
            // Nothing came back: the follower is at the leader's end (the fetch offset).
            Bound::LogEnd => w.offset,
        };
        let entry = ((w.topic.clone(), w.partition, seen), w.bound());
        match by_owner.iter_mut().find(|(o, _)| o == owner) {
            Some((_, v)) => v.push(entry),
            None => by_owner.push((*owner, vec![entry])),
        }
    }
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::new();
    for (owner, parts) in by_owner {
        waits.push(Box::pin(async move {
            let _ = shard::run_on(owner, move |c| wait_on_owner(c, parts, deadline)).await;
        }));
    }
    select_any(waits).await;
}

/// Puts the results back in request order, unknown topics and partitions answered
/// UNKNOWN_TOPIC_ID (a topic id the broker does not know) or UNKNOWN_TOPIC_OR_PARTITION.
fn assemble(
    r: &FetchRequest,
    snap: &MetadataSnapshot,
    by_id: bool,
    plan: Plan,
    mut results: Vec<Got>,
) -> Vec<TopicOut> {
    let mut topics_out = Vec::with_capacity(r.topics.len());
    for ((t, row), name) in r.topics.iter().zip(&plan.layout).zip(plan.names) {
        let unknown = if by_id && snap.topic_by_id(t.topic_id).is_none() {
            ResponseError::UnknownTopicId.code()
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        };
        let mut parts = Vec::with_capacity(row.len());
        for (p, slot) in t.partitions.iter().zip(row) {
            let g = match slot {
                Some(i) => std::mem::replace(&mut results[*i], Got::err(errors::NONE)),
                None => Got::err(unknown),
            };
            parts.push(PartitionOut {
                partition: p.partition,
                error_code: g.error_code,
                high_watermark: g.high_watermark,
                last_stable_offset: g.last_stable_offset,
                log_start_offset: g.log_start_offset,
                aborted: g.aborted,
                records: g.slices,
            });
        }
        topics_out.push(TopicOut {
            name,
            id: t.topic_id,
            partitions: parts,
        });
    }
    topics_out
}

/// For the paths that copy the records with pread: makes the file ranges ready first, off the
/// shard thread (the zero-copy path does this piece by piece before each sendfile).
async fn settle_for_copy(topics: &[TopicOut]) -> std::io::Result<()> {
    for s in topics
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.records)
        .filter(|s| s.mem.is_none())
    {
        page_cache::settle(&s.file, s.position, u64::from(s.len)).await?;
    }
    Ok(())
}

/// The copying path: records read into memory, response encoded by kafka-protocol.
fn copying_response(
    req: &Request,
    topics: &[TopicOut],
    throttle_ms: i32,
) -> Result<Reply, HandlerError> {
    let mut responses = Vec::with_capacity(topics.len());
    for t in topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut records = Vec::with_capacity(p.records.iter().map(|s| s.len as usize).sum());
            for s in &p.records {
                match s.read_to_vec() {
                    Ok(v) => records.extend_from_slice(&v),
                    Err(e) => {
                        return Ok(Reply::Close(format!("reading fetched records failed: {e}")));
                    }
                }
            }
            parts.push(
                PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_error_code(p.error_code)
                    .with_high_watermark(p.high_watermark)
                    .with_last_stable_offset(p.last_stable_offset)
                    .with_log_start_offset(p.log_start_offset)
                    .with_aborted_transactions(p.aborted.as_ref().map(|list| {
                        list.iter()
                            .map(|a| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(a.producer_id))
                                    .with_first_offset(a.first_offset)
                            })
                            .collect()
                    }))
                    .with_preferred_read_replica(BrokerId(-1))
                    .with_records(Some(Bytes::from(records))),
            );
        }
        let topic = FetchableTopicResponse::default().with_partitions(parts);
        responses.push(if req.version >= 13 {
            topic.with_topic_id(t.id)
        } else {
            topic.with_topic(topic_name(&t.name))
        });
    }
    req.respond(
        &FetchResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_ms),
    )
}
