//! The follower side: one fetch loop per (shard, leader broker), Kafka's `ReplicaFetcherThread`.
//!
//! A [`Fetcher`] holds the partitions this shard follows from one leader, each at the leader
//! epoch the image gave it. Its task keeps one connection to the leader's client listener and
//! repeats, one request at a time:
//! 1. partitions that just started following are truncated first ([`super::truncate`]:
//!    OffsetForLeaderEpoch v4 with this broker's replica id);
//! 2. one Fetch v12 for every truncated partition (replica id, `current_leader_epoch`, fetch
//!    offset = log end), which the leader long-polls for up to `replica.fetch.wait.max.ms`;
//! 3. per partition: the batches go into the log as the leader stored them
//!    (`append_replica`), then the follower's HW follows the leader's (never past its own end).
//!
//! Partition errors put that partition aside for a second (the leader does not lead it at this
//! epoch yet or any more: the next image usually settles it, and [`add_partition`] resets the
//! pause); connection errors reconnect with a backoff of 100 ms doubling to 1 s. The loop ends
//! when its last partition leaves or the shard stops. Every check of "still following at this
//! epoch" is made right before the write it guards, with no await in between, so a role change
//! while a request is out never lets a stale answer into the log.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchResponse, PartitionData};
use kafka_protocol::messages::offset_for_leader_epoch_response::OffsetForLeaderEpochResponse;
use kafka_protocol::messages::{ApiKey, BrokerId};

use crate::server::handlers::topic_name;
use crate::shard::ShardCtx;
use crate::storage::PartitionLog;
use crate::sync::notify::Notify;
use crate::sync::select_any;

use super::ReplicaSettings;
use super::client::{ClientError, Conn};
use super::state::{Replicas, Tp};
use super::truncate;

/// Fetch's version the follower speaks (topic names, `current_leader_epoch`, `replica_id`).
pub const FETCH_VERSION: i16 = 12;

/// Kafka's `replica.fetch.response.max.bytes` default: the whole response's budget.
const RESPONSE_MAX_BYTES: i32 = 10 * 1024 * 1024;

/// Largest response frame accepted: the budget plus room for the one batch a leader sends past
/// it (bounded by its `message.max.bytes`) and the framing.
const MAX_FRAME: usize = RESPONSE_MAX_BYTES as usize + 128 * 1024 * 1024;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long a partition whose fetch failed sits out.
const PARTITION_PAUSE: Duration = Duration::from_secs(1);

/// One followed partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPart {
    /// The leader epoch this broker follows it at.
    pub epoch: i32,
    /// The divergent tail is gone; fetching may start.
    pub truncated: bool,
    /// Sitting out until then after an error.
    pub paused_until: Option<Instant>,
}

/// The partitions this shard follows from one leader.
pub struct Fetcher {
    pub leader: i32,
    pub parts: RefCell<BTreeMap<Tp, FetchPart>>,
    changed: Rc<Notify>,
    stopped: Cell<bool>,
}

impl Fetcher {
    /// Whether `tp` is still followed here at `epoch`.
    fn still(&self, tp: &Tp, epoch: i32) -> bool {
        !self.stopped.get()
            && self
                .parts
                .borrow()
                .get(tp)
                .is_some_and(|p| p.epoch == epoch)
    }

    fn update(&self, tp: &Tp, epoch: i32, f: impl FnOnce(&mut FetchPart)) {
        if let Some(p) = self
            .parts
            .borrow_mut()
            .get_mut(tp)
            .filter(|p| p.epoch == epoch)
        {
            f(p);
        }
    }

    fn pause(&self, tp: &Tp, epoch: i32) {
        self.update(tp, epoch, |p| {
            p.paused_until = Some(Instant::now() + PARTITION_PAUSE)
        });
    }
}

/// Starts following `tp` from `leader` at `epoch` (truncating first), creating the fetcher for
/// that leader if this shard has none.
pub fn add_partition(ctx: &Rc<ShardCtx>, reps: &Rc<Replicas>, leader: i32, tp: Tp, epoch: i32) {
    let f = {
        let mut fetchers = reps.fetchers.borrow_mut();
        fetchers
            .entry(leader)
            .or_insert_with(|| {
                let f = Rc::new(Fetcher {
                    leader,
                    parts: RefCell::new(BTreeMap::new()),
                    changed: Notify::new(),
                    stopped: Cell::new(false),
                });
                glommio::spawn_local(run(ctx.clone(), f.clone())).detach();
                f
            })
            .clone()
    };
    f.parts.borrow_mut().insert(
        tp,
        FetchPart {
            epoch,
            truncated: false,
            paused_until: None,
        },
    );
    f.changed.notify();
}

/// Stops following `tp` (from whichever leader); a fetcher left with nothing stops.
pub fn remove_partition(reps: &Rc<Replicas>, tp: &Tp) {
    let mut fetchers = reps.fetchers.borrow_mut();
    let mut empty = Vec::new();
    for (leader, f) in fetchers.iter() {
        if f.parts.borrow_mut().remove(tp).is_some() {
            f.changed.notify();
        }
        if f.parts.borrow().is_empty() {
            empty.push(*leader);
        }
    }
    for leader in empty {
        if let Some(f) = fetchers.remove(&leader) {
            f.stopped.set(true);
            f.changed.notify();
        }
    }
}

/// What one round did.
enum Round {
    /// Sent a request.
    Worked,
    /// Nothing to ask for now; wake up at this time at the latest.
    Idle(Option<Instant>),
}

/// The fetch loop of one leader on this shard.
async fn run(ctx: Rc<ShardCtx>, f: Rc<Fetcher>) {
    let mut backoff = BACKOFF_MIN;
    let mut conn: Option<Conn> = None;
    loop {
        if f.stopped.get() || ctx.stopping.is_set() {
            return;
        }
        if conn.is_none() {
            match connect(&ctx, f.leader).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(leader = f.leader, error = %e, "connecting to the partition leader failed");
                    pause(&ctx, &f, Some(Instant::now() + backoff)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            continue;
        };
        match round(&ctx, &f, c).await {
            Ok(Round::Worked) => backoff = BACKOFF_MIN,
            Ok(Round::Idle(until)) => pause(&ctx, &f, until).await,
            Err(e) => {
                tracing::warn!(leader = f.leader, error = %e, "fetching from the partition leader failed; reconnecting");
                conn = None;
                pause(&ctx, &f, Some(Instant::now() + backoff)).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Waits until `until`, a change of the fetcher's partitions, or the shard's stop.
async fn pause(ctx: &Rc<ShardCtx>, f: &Fetcher, until: Option<Instant>) {
    let mut futs: Vec<Pin<Box<dyn Future<Output = ()>>>> = vec![Box::pin(f.changed.wait())];
    if let Some(t) = until {
        futs.push(Box::pin(glommio::timer::sleep(
            t.saturating_duration_since(Instant::now()),
        )));
    }
    let c = ctx.clone();
    futs.push(Box::pin(async move { c.stopping.wait().await }));
    select_any(futs).await;
}

async fn connect(ctx: &ShardCtx, leader: i32) -> Result<Conn, ClientError> {
    let addr = ctx.with_metadata(|m| {
        let b = m.cluster.as_ref()?.brokers.get(&leader)?;
        Some((b.host.clone(), u16::try_from(b.port).ok()?))
    });
    let Some((host, port)) = addr else {
        return Err(ClientError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("broker {leader} has no address in the metadata"),
        )));
    };
    let sock = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host}: no address"))
        })?;
    let wait = Duration::from_millis(ReplicaSettings::of(ctx).fetch_wait_max_ms.max(0) as u64);
    Conn::connect(
        sock,
        &format!("ringbolt-replica-{}", ctx.info.node_id),
        Duration::from_secs(5),
        wait + Duration::from_secs(30),
        MAX_FRAME,
    )
    .await
}

/// One request: truncation if a partition needs it, else a fetch.
async fn round(ctx: &Rc<ShardCtx>, f: &Rc<Fetcher>, c: &mut Conn) -> Result<Round, ClientError> {
    let now = Instant::now();
    let mut next_wake: Option<Instant> = None;
    let mut to_truncate = Vec::new();
    let mut to_fetch = Vec::new();
    for (tp, p) in f.parts.borrow().iter() {
        if let Some(t) = p.paused_until.filter(|t| *t > now) {
            next_wake = Some(next_wake.map_or(t, |w| w.min(t)));
            continue;
        }
        if p.truncated {
            to_fetch.push((tp.clone(), p.epoch));
        } else {
            to_truncate.push((tp.clone(), p.epoch));
        }
    }
    if !to_truncate.is_empty() {
        truncate_round(ctx, f, c, to_truncate).await?;
        return Ok(Round::Worked);
    }
    if to_fetch.is_empty() {
        return Ok(Round::Idle(next_wake));
    }
    fetch_round(ctx, f, c, to_fetch).await?;
    Ok(Round::Worked)
}

/// Asks the leader where each partition's latest local epoch ends and cuts the logs there.
async fn truncate_round(
    ctx: &Rc<ShardCtx>,
    f: &Rc<Fetcher>,
    c: &mut Conn,
    parts: Vec<(Tp, i32)>,
) -> Result<(), ClientError> {
    let mut asks = Vec::new();
    for (tp, epoch) in parts {
        let Some(log) = ctx.log(&tp.0, tp.1) else {
            f.pause(&tp, epoch);
            continue;
        };
        match log.leader_epochs().last() {
            Some(latest) => asks.push((tp.0, tp.1, epoch, latest.epoch)),
            None => {
                // No epoch in the log: Kafka truncates to the high watermark (an empty log has
                // nothing to cut).
                let to = log.high_watermark().min(log.log_end_offset());
                if cut_log(f, &tp, epoch, &log, to).await {
                    f.update(&tp, epoch, |p| p.truncated = true);
                }
            }
        }
    }
    if asks.is_empty() {
        return Ok(());
    }
    let req = truncate::request(ctx.info.node_id, &asks);
    let resp: OffsetForLeaderEpochResponse = c
        .call(ApiKey::OffsetForLeaderEpoch, truncate::VERSION, &req)
        .await?;
    for t in resp.topics {
        for p in t.partitions {
            let tp: Tp = (t.topic.0.to_string(), p.partition);
            let Some(&(_, _, epoch, _)) = asks.iter().find(|a| a.0 == tp.0 && a.1 == tp.1) else {
                continue;
            };
            if p.error_code != 0 {
                tracing::info!(topic = %tp.0, partition = tp.1, epoch, code = p.error_code,
                    "leader refused OffsetForLeaderEpoch; retrying");
                f.pause(&tp, epoch);
                continue;
            }
            let Some(log) = ctx.log(&tp.0, tp.1) else {
                continue;
            };
            let local = log.end_offset_for_epoch(p.leader_epoch);
            let cut = truncate::cut(
                p.leader_epoch,
                p.end_offset,
                local,
                log.log_end_offset(),
                log.high_watermark(),
            );
            if cut_log(f, &tp, epoch, &log, cut.offset).await && cut.complete {
                f.update(&tp, epoch, |p| p.truncated = true);
            }
        }
    }
    Ok(())
}

/// Truncates `log` to `to` if it is past it and the partition is still followed at `epoch`.
async fn cut_log(f: &Fetcher, tp: &Tp, epoch: i32, log: &PartitionLog, to: i64) -> bool {
    if !f.still(tp, epoch) {
        return false;
    }
    if to >= log.log_end_offset() {
        return true;
    }
    tracing::info!(topic = %tp.0, partition = tp.1, epoch, from = log.log_end_offset(), to,
        "truncating the follower's divergent tail");
    match log.truncate_to(to).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(topic = %tp.0, partition = tp.1, error = %e, "truncation failed");
            f.pause(tp, epoch);
            false
        }
    }
}

/// The Fetch request for `parts` at their logs' ends.
pub fn fetch_request(
    node_id: i32,
    settings: &ReplicaSettings,
    parts: &[(Tp, i32, i64, i64)],
) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for ((topic, partition), epoch, fetch_offset, log_start) in parts {
        let p = FetchPartition::default()
            .with_partition(*partition)
            .with_current_leader_epoch(*epoch)
            .with_fetch_offset(*fetch_offset)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(*log_start)
            .with_partition_max_bytes(settings.fetch_max_bytes);
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == topic => t.partitions.push(p),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(node_id))
        .with_max_wait_ms(settings.fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES.max(settings.fetch_max_bytes))
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

async fn fetch_round(
    ctx: &Rc<ShardCtx>,
    f: &Rc<Fetcher>,
    c: &mut Conn,
    parts: Vec<(Tp, i32)>,
) -> Result<(), ClientError> {
    let mut want = Vec::with_capacity(parts.len());
    for (tp, epoch) in parts {
        let Some(log) = ctx.log(&tp.0, tp.1) else {
            f.pause(&tp, epoch);
            continue;
        };
        let (leo, start) = (log.log_end_offset(), log.log_start_offset());
        want.push((tp, epoch, leo, start));
    }
    if want.is_empty() {
        return Ok(());
    }
    let req = fetch_request(ctx.info.node_id, &ReplicaSettings::of(ctx), &want);
    let resp: FetchResponse = c.call(ApiKey::Fetch, FETCH_VERSION, &req).await?;
    if resp.error_code != 0 {
        tracing::warn!(
            leader = f.leader,
            code = resp.error_code,
            "fetch refused as a whole"
        );
        for (tp, epoch, _, _) in &want {
            f.pause(tp, *epoch);
        }
        return Ok(());
    }
    for t in resp.responses {
        for pd in t.partitions {
            let tp: Tp = (t.topic.0.to_string(), pd.partition_index);
            let Some(&(_, epoch, fetched_at, _)) = want.iter().find(|w| w.0 == tp) else {
                continue;
            };
            on_partition(ctx, f, &tp, epoch, fetched_at, pd).await;
        }
    }
    Ok(())
}

/// What a partition's answer asks the follower to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Append the complete batches in this byte range of the records, then follow the HW.
    Append { start: usize, end: usize },
    /// The data does not start at the follower's log end: truncate to this batch start first.
    TruncateThenAppend { to: i64, start: usize, end: usize },
    /// Nothing new; follow the HW.
    Nothing,
    /// Redo the truncation (the leader's log is shorter than ours).
    Retruncate,
    /// Sit out for a while (the leader refused: not leading at this epoch, or another error).
    Pause(i16),
}

/// The batches of `records` (base offset, last offset, byte range), whole ones only: a
/// trailing partial batch (a leader may cut one at its byte limit) is left for the next fetch.
pub fn complete_batches(records: &[u8]) -> Vec<(i64, i64, usize, usize)> {
    const HEADER: usize = 12;
    const LAST_OFFSET_DELTA_AT: usize = 23;
    let mut out = Vec::new();
    let mut pos = 0usize;
    while records.len() - pos >= LAST_OFFSET_DELTA_AT + 4 {
        let mut b = &records[pos..];
        let base = b.get_i64();
        let len = b.get_i32();
        if len < 0 {
            break;
        }
        let size = HEADER + len as usize;
        if records.len() - pos < size || size < LAST_OFFSET_DELTA_AT + 4 {
            break;
        }
        let delta = (&records[pos + LAST_OFFSET_DELTA_AT..]).get_i32();
        out.push((base, base + i64::from(delta), pos, pos + size));
        pos += size;
    }
    out
}

/// Kafka's `processPartitionData` / `handlePartitionsWithErrors` decision for one partition.
pub fn decide(error_code: i16, records: &[u8], leo: i64) -> Action {
    if error_code == ResponseError::OffsetOutOfRange.code() {
        return Action::Retruncate;
    }
    if error_code != 0 {
        return Action::Pause(error_code);
    }
    let batches: Vec<_> = complete_batches(records)
        .into_iter()
        .filter(|b| b.1 >= leo)
        .collect();
    let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
        return Action::Nothing;
    };
    let (start, end) = (first.2, last.3);
    // A first batch past our end is a gap a compacted leader log has: appended as it is.
    if first.0 < leo {
        return Action::TruncateThenAppend {
            to: first.0,
            start,
            end,
        };
    }
    Action::Append { start, end }
}

async fn on_partition(
    ctx: &Rc<ShardCtx>,
    f: &Rc<Fetcher>,
    tp: &Tp,
    epoch: i32,
    fetched_at: i64,
    pd: PartitionData,
) {
    let Some(log) = ctx.log(&tp.0, tp.1) else {
        return;
    };
    let records = pd.records.clone().unwrap_or_default();
    let leo = log.log_end_offset();
    if leo != fetched_at {
        // Truncated meanwhile (a new epoch); the next round fetches from the new end.
        return;
    }
    let (start, end, base) = match decide(pd.error_code, &records, leo) {
        Action::Nothing => {
            follow_hw(&log, pd.high_watermark);
            return;
        }
        Action::Retruncate => {
            tracing::info!(topic = %tp.0, partition = tp.1, leo,
                leader_start = pd.log_start_offset, leader_hw = pd.high_watermark,
                "fetch offset out of range on the leader; truncating again");
            if pd.log_start_offset > leo {
                // Behind the leader's log start (retention or DeleteRecords there): Kafka's
                // `truncateFullyAndStartAt(leaderLogStartOffset)`.
                if f.still(tp, epoch) {
                    tracing::info!(topic = %tp.0, partition = tp.1, leo,
                        leader_start = pd.log_start_offset,
                        "follower behind the leader's log start; restarting the log there");
                    if let Err(e) = log.truncate_fully_and_start_at(pd.log_start_offset).await {
                        tracing::error!(topic = %tp.0, partition = tp.1, error = %e,
                            "restarting the follower's log failed");
                        f.pause(tp, epoch);
                    }
                }
            } else {
                f.update(tp, epoch, |p| p.truncated = false);
            }
            return;
        }
        Action::Pause(code) => {
            tracing::debug!(topic = %tp.0, partition = tp.1, epoch, code, "fetch partition error; pausing");
            f.pause(tp, epoch);
            return;
        }
        Action::TruncateThenAppend { to, start, end } => {
            if !cut_log(f, tp, epoch, &log, to).await {
                return;
            }
            (start, end, to)
        }
        Action::Append { start, end } => (start, end, leo),
    };
    // Synchronous from the check to the append: the role cannot change in between.
    if !f.still(tp, epoch) || log.log_end_offset() != base {
        return;
    }
    let data: Bytes = records.slice(start..end);
    let info = match log.append_replica(data) {
        Ok(info) => info,
        Err(e) => {
            tracing::error!(topic = %tp.0, partition = tp.1, error = %e, "follower append failed");
            f.update(tp, epoch, |p| {
                p.truncated = false;
                p.paused_until = Some(Instant::now() + PARTITION_PAUSE);
            });
            return;
        }
    };
    if let Err(e) = log.wait_written(info.last_offset).await {
        tracing::error!(topic = %tp.0, partition = tp.1, error = %e, "follower write failed");
        f.pause(tp, epoch);
        return;
    }
    follow_hw(&log, pd.high_watermark);
}

/// The follower's HW: the leader's, within what this log has.
fn follow_hw(log: &PartitionLog, leader_hw: i64) {
    let hw = leader_hw.min(log.log_end_offset());
    if hw > log.high_watermark() {
        log.advance_high_watermark(hw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    /// A fake batch: the header fields `complete_batches` reads, zero elsewhere.
    fn batch(base: i64, records: i32, body: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_i64(base);
        let len = 49 - 12 + body;
        b.put_i32(len as i32);
        b.put_i32(0); // partition leader epoch
        b.put_u8(2); // magic
        b.put_u32(0); // crc
        b.put_i16(0); // attributes
        b.put_i32(records - 1); // last offset delta
        b.resize(12 + len, 0);
        b
    }

    #[test]
    fn batches_are_split_and_a_partial_tail_dropped() {
        let mut bytes = batch(10, 3, 5);
        let first = bytes.len();
        bytes.extend(batch(13, 2, 0));
        let two = bytes.len();
        let third = batch(15, 1, 40);
        bytes.extend(&third[..30]);
        let got = complete_batches(&bytes);
        assert_eq!(got, vec![(10, 12, 0, first), (13, 14, first, two)]);
        assert!(complete_batches(&[]).is_empty());
        assert!(complete_batches(&bytes[..20]).is_empty());
    }

    #[test]
    fn decisions_follow_kafka() {
        let mut bytes = batch(10, 3, 0);
        let first = bytes.len();
        bytes.extend(batch(13, 2, 0));
        let all = bytes.len();
        assert_eq!(decide(0, &bytes, 10), Action::Append { start: 0, end: all });
        // The batch holding our end starts before it: cut back to its start.
        assert_eq!(
            decide(0, &bytes, 11),
            Action::TruncateThenAppend {
                to: 10,
                start: 0,
                end: all
            }
        );
        // Batches we already have are skipped.
        assert_eq!(
            decide(0, &bytes, 13),
            Action::Append {
                start: first,
                end: all
            }
        );
        assert_eq!(decide(0, &bytes, 15), Action::Nothing);
        assert_eq!(decide(0, &[], 15), Action::Nothing);
        // A gap in front of the data (compaction on the leader): appended as it is.
        assert_eq!(decide(0, &bytes, 5), Action::Append { start: 0, end: all });
        assert_eq!(
            decide(ResponseError::OffsetOutOfRange.code(), &[], 5),
            Action::Retruncate
        );
        for e in [
            ResponseError::NotLeaderOrFollower,
            ResponseError::FencedLeaderEpoch,
            ResponseError::UnknownLeaderEpoch,
        ] {
            assert_eq!(decide(e.code(), &bytes, 10), Action::Pause(e.code()));
        }
    }

    #[test]
    fn the_fetch_request_speaks_as_a_follower() {
        let s = ReplicaSettings::default();
        let r = fetch_request(
            3,
            &s,
            &[
                (("a".into(), 0), 4, 100, 0),
                (("a".into(), 2), 4, 7, 5),
                (("b".into(), 1), 1, 0, 0),
            ],
        );
        assert_eq!(r.replica_id, BrokerId(3));
        assert_eq!(r.max_wait_ms, s.fetch_wait_max_ms);
        assert_eq!(r.min_bytes, 1);
        assert_eq!(r.topics.len(), 2);
        let p = &r.topics[0].partitions[1];
        assert_eq!(
            (
                p.partition,
                p.current_leader_epoch,
                p.fetch_offset,
                p.log_start_offset
            ),
            (2, 4, 7, 5)
        );
        assert_eq!(p.partition_max_bytes, s.fetch_max_bytes);
        // It encodes at the version the follower sends.
        let mut buf = bytes::BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(&r, &mut buf, FETCH_VERSION).unwrap();
        let back: FetchRequest =
            kafka_protocol::protocol::Decodable::decode(&mut buf.freeze(), FETCH_VERSION).unwrap();
        assert_eq!(back, r);
    }
}
