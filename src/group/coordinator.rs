//! The group coordinator of one shard: the groups placed on it, their parked requests, timers,
//! and the shard's committed offsets.
//!
//! Placement: a group lives on offsets partition `abs(javaHash(id)) % offsets.topic.num.partitions`
//! (Kafka's rule) and that partition on shard `p % shards` ([`shard_for`]). Every state change of
//! a group therefore happens on one thread; handlers on other shards reach it with a cross-shard
//! call and get plain, `Send` result values back. Nothing here is shared between shards.
//!
//! Parked JoinGroup/SyncGroup requests wait on a [`oneshot`] keyed by a request id; the state
//! machine's [`Reply`]s are routed to them.
//!
//! Timeouts are exact, as Kafka's per-member timers are: one timer task per shard sleeps until
//! the earliest deadline of any group ([`Group::next_deadline`]: a session running out, the
//! initial rebalance delay, a rebalance timeout), at most `tick_ms`, then applies what is due.
//! A request that creates an earlier deadline than the one the task sleeps towards (a new
//! group's initial delay, a new member's session) wakes it to re-plan. One task and a scan of
//! the shard's groups per wake-up instead of a timer per member: heartbeats, which only push
//! deadlines later, cost no timer work at all. Every `offsets.retention.check.interval.ms` the
//! same task also expires old offsets.
//!
//! The coordinator of a shard is created at shard start and kept in the shard context's type map
//! (see [`super::shard`]).

use super::offset_log::{Entry, OffsetStore, OffsetStoreConfig};
use super::offsets::{CommittedOffset, GroupActivity, OffsetKey, partition_for};
use super::state::{
    GroupConfig, GroupDescription, JoinRequest, JoinResult, Millis, Reply, ReqId, State,
    SyncRequest, SyncResult,
};
use crate::group::state::Group;
use crate::protocol::errors;
use crate::sync::oneshot;
use bytes::Buf;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};
use std::time::Duration;

/// Coordinator settings (Kafka broker-config names).
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub group: GroupConfig,
    pub offsets: OffsetStoreConfig,
    /// `offsets.retention.minutes` (7 days), in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (600000).
    pub retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: usize,
    /// The longest the timer task sleeps without looking at the groups (deadlines themselves are
    /// met exactly; this bounds how long a manual test clock goes unnoticed).
    pub tick_ms: u64,
}

impl CoordinatorConfig {
    pub fn new(data_dir: impl Into<std::path::PathBuf>) -> Self {
        CoordinatorConfig {
            group: GroupConfig::default(),
            offsets: OffsetStoreConfig::new(data_dir),
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            tick_ms: 100,
        }
    }
}

/// The shard coordinating `group`.
pub fn shard_for(group: &str, shards: usize, offsets_partitions: u32) -> usize {
    partition_for(group, offsets_partitions) as usize % shards.max(1)
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// The commit time the client gave (OffsetCommit v1; Kafka ≤ 3.x kept it as the commit
    /// timestamp, which retention counts from); `None`: the coordinator's clock.
    pub commit_timestamp: Option<i64>,
}

/// One partition of an OffsetFetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    /// UNSTABLE_OFFSET_COMMIT when `require_stable` asked and a transaction holds a pending
    /// offset for the partition; else NONE.
    pub error_code: i16,
}

#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: State,
}

pub type Clock = Rc<dyn Fn() -> Millis>;

pub fn system_clock() -> Clock {
    Rc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

pub struct Coordinator {
    cfg: CoordinatorConfig,
    clock: Clock,
    groups: RefCell<HashMap<String, Group>>,
    waiters: RefCell<HashMap<ReqId, oneshot::Sender<Reply>>>,
    next_req: Cell<ReqId>,
    offsets: Rc<OffsetStore>,
    last_expiry: Cell<Millis>,
    stopped: Cell<bool>,
    /// When the timer task will next apply deadlines (coordinator clock).
    wake_at: Cell<Millis>,
    /// Wakes the timer task early, to re-plan for a deadline earlier than `wake_at`.
    wake: RefCell<Option<oneshot::Sender<()>>>,
}

impl Coordinator {
    /// Loads this shard's offsets partitions and starts the timer task.
    pub async fn start(
        shard: usize,
        shards: usize,
        cfg: CoordinatorConfig,
        clock: Clock,
    ) -> Result<Rc<Self>, crate::storage::StorageError> {
        let shards = shards.max(1);
        let offsets =
            OffsetStore::load(cfg.offsets.clone(), |p| p as usize % shards == shard).await?;
        let now = clock();
        let c = Rc::new(Coordinator {
            cfg,
            clock,
            groups: RefCell::new(HashMap::new()),
            waiters: RefCell::new(HashMap::new()),
            next_req: Cell::new(1),
            offsets,
            last_expiry: Cell::new(now),
            stopped: Cell::new(false),
            wake_at: Cell::new(now),
            wake: RefCell::new(None),
        });
        let weak = Rc::downgrade(&c);
        glommio::spawn_local(timers(weak)).detach();
        Ok(c)
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.cfg
    }

    fn now(&self) -> Millis {
        (self.clock)()
    }

    /// After a group changed: wakes the timer task if the group now has a deadline earlier than
    /// the one the task sleeps towards.
    fn arm(&self, deadline: Option<Millis>) {
        if let Some(d) = deadline
            && d < self.wake_at.get()
        {
            self.wake_at.set(d);
            if let Some(tx) = self.wake.borrow_mut().take() {
                tx.send(());
            }
        }
    }

    /// The earliest deadline of any group on this shard.
    fn next_deadline(&self) -> Option<Millis> {
        self.groups
            .borrow()
            .values()
            .filter_map(|g| g.next_deadline())
            .min()
    }

    fn dispatch(&self, replies: Vec<Reply>) {
        let mut w = self.waiters.borrow_mut();
        for r in replies {
            if let Some(tx) = w.remove(&r.req()) {
                tx.send(r);
            }
        }
    }

    /// Registers a waiter for a fresh request id.
    fn park(&self) -> (ReqId, oneshot::Receiver<Reply>) {
        let id = self.next_req.get();
        self.next_req.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(id, tx);
        (id, rx)
    }

    // ---------------------------------------------------------------- membership

    /// JoinGroup; `r.req` is ignored (assigned here). Resolves when the rebalance completes.
    pub async fn join(&self, group_id: &str, mut r: JoinRequest) -> JoinResult {
        if group_id.is_empty() {
            return JoinResult {
                error: ResponseError::InvalidGroupId.code(),
                generation_id: -1,
                member_id: r.member_id,
                ..Default::default()
            };
        }
        let group_id = group_id.to_string();
        let (req, rx) = self.park();
        r.req = req;
        let now = self.now();
        let replies = {
            let mut groups = self.groups.borrow_mut();
            let g = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id.clone(), self.cfg.group.clone(), now));
            let replies = g.join(r, now);
            self.arm(g.next_deadline());
            replies
        };
        self.dispatch(replies);
        match rx.await {
            Some(Reply::Join(_, j)) => j,
            _ => JoinResult {
                error: ResponseError::CoordinatorNotAvailable.code(),
                generation_id: -1,
                ..Default::default()
            },
        }
    }

    /// SyncGroup; resolves when the leader's assignment is in (or the rebalance restarts).
    pub async fn sync(&self, group_id: &str, mut r: SyncRequest) -> SyncResult {
        let (req, rx) = self.park();
        r.req = req;
        let now = self.now();
        let replies = match self.groups.borrow_mut().get_mut(group_id) {
            Some(g) => {
                let replies = g.sync(r, now);
                self.arm(g.next_deadline());
                replies
            }
            None => vec![Reply::Sync(
                req,
                SyncResult {
                    error: if group_id.is_empty() {
                        ResponseError::InvalidGroupId.code()
                    } else {
                        ResponseError::UnknownMemberId.code()
                    },
                    ..Default::default()
                },
            )],
        };
        self.dispatch(replies);
        match rx.await {
            Some(Reply::Sync(_, s)) => s,
            _ => SyncResult {
                error: ResponseError::CoordinatorNotAvailable.code(),
                ..Default::default()
            },
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        let now = self.now();
        match self.groups.borrow_mut().get_mut(group_id) {
            Some(g) => g.heartbeat(member_id, instance, generation, now),
            None if group_id.is_empty() => ResponseError::InvalidGroupId.code(),
            None => ResponseError::UnknownMemberId.code(),
        }
    }

    /// LeaveGroup: one code per member, or a request-level error as Kafka answers it (an
    /// unknown group: UNKNOWN_MEMBER_ID; a deleted one: COORDINATOR_NOT_AVAILABLE).
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        let now = self.now();
        let (codes, replies) = match self.groups.borrow_mut().get_mut(group_id) {
            Some(g) if g.state() == State::Dead => {
                return Err(ResponseError::CoordinatorNotAvailable.code());
            }
            Some(g) => {
                let r = g.leave(members, now);
                self.arm(g.next_deadline());
                r
            }
            None if group_id.is_empty() => return Err(ResponseError::InvalidGroupId.code()),
            None => return Err(ResponseError::UnknownMemberId.code()),
        };
        self.dispatch(replies);
        Ok(codes)
    }

    /// Applies the deadlines of every group that are due (the timer task calls this).
    pub fn tick(&self) {
        let now = self.now();
        let mut replies = Vec::new();
        for g in self.groups.borrow_mut().values_mut() {
            replies.extend(g.tick(now));
        }
        self.dispatch(replies);
    }

    // ---------------------------------------------------------------- group admin

    fn group_exists(&self, group_id: &str) -> bool {
        self.groups.borrow().contains_key(group_id) || self.offsets.table().has_group(group_id)
    }

    /// DescribeGroups for one group. An unknown (or deleted) group is described as Dead with
    /// GROUP_ID_NOT_FOUND; the handler drops the error for versions before v6, which answered it
    /// without one (KIP-1043). Groups known only by their offsets (e.g. after a restart) are Empty.
    pub fn describe(&self, group_id: &str) -> (i16, GroupDescription) {
        if group_id.is_empty() {
            return (ResponseError::InvalidGroupId.code(), dead_description());
        }
        if let Some(g) = self.groups.borrow().get(group_id)
            && g.state() != State::Dead
        {
            return (errors::NONE, g.describe());
        }
        if self.offsets.table().has_group(group_id) {
            let mut d = dead_description();
            d.state = State::Empty;
            return (errors::NONE, d);
        }
        (ResponseError::GroupIdNotFound.code(), dead_description())
    }

    pub fn list(&self) -> Vec<ListedGroup> {
        let mut out: Vec<ListedGroup> = self
            .groups
            .borrow()
            .values()
            .filter(|g| g.state() != State::Dead)
            .map(|g| ListedGroup {
                group_id: g.id().to_string(),
                protocol_type: g.protocol_type().unwrap_or_default().to_string(),
                state: g.state(),
            })
            .collect();
        let known: HashSet<String> = out.iter().map(|g| g.group_id.clone()).collect();
        for id in self.offsets.table().group_ids() {
            if !known.contains(&id) {
                out.push(ListedGroup {
                    group_id: id,
                    protocol_type: String::new(),
                    state: State::Empty,
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DeleteGroups for one group: only empty groups; their offsets are deleted durably.
    pub async fn delete_group(&self, group_id: &str) -> i16 {
        if group_id.is_empty() {
            return ResponseError::InvalidGroupId.code();
        }
        if !self.group_exists(group_id) {
            return ResponseError::GroupIdNotFound.code();
        }
        if let Some(g) = self.groups.borrow().get(group_id)
            && !matches!(g.state(), State::Empty | State::Dead)
        {
            return ResponseError::NonEmptyGroup.code();
        }
        // Tombstones for the committed offsets and for the partitions only a pending
        // transactional offset has (Kafka's `deleteAllOffsets`): a tombstone also deletes the
        // pending offsets of its partition, so a later COMMIT of that transaction restores none.
        let entries: Vec<Entry> = {
            let table = self.offsets.table();
            let mut keys: Vec<(String, i32)> = table
                .group(group_id)
                .into_iter()
                .map(|(t, p, _)| (t, p))
                .collect();
            for k in table.pending_keys(group_id) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            keys.into_iter()
                .map(|(topic, partition)| {
                    (
                        OffsetKey {
                            group: group_id.to_string(),
                            topic,
                            partition,
                        },
                        None,
                    )
                })
                .collect()
        };
        if let Err(e) = self.offsets.write(group_id, entries).await {
            return e;
        }
        let now = self.now();
        // A join may have arrived while the tombstones were written.
        let mut groups = self.groups.borrow_mut();
        if let Some(g) = groups.get_mut(group_id)
            && g.state() == State::Empty
        {
            let replies = g.set_dead(now);
            groups.remove(group_id);
            drop(groups);
            self.dispatch(replies);
        }
        errors::NONE
    }

    // ---------------------------------------------------------------- offsets

    /// OffsetCommit: one code per partition, in order. `retention_ms` is the v2–v4 retention
    /// time (-1: broker default).
    pub async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        retention_ms: i64,
        parts: Vec<CommitPartition>,
    ) -> Vec<i16> {
        let now = self.now();
        let check = if group_id.is_empty() {
            ResponseError::InvalidGroupId.code()
        } else {
            let mut groups = self.groups.borrow_mut();
            match groups.get_mut(group_id) {
                Some(g) => g.validate_commit(member_id, instance, generation, now),
                None if generation < 0 => {
                    // A standalone consumer: the group comes into being, Empty.
                    groups.insert(
                        group_id.to_string(),
                        Group::new(group_id, self.cfg.group.clone(), now),
                    );
                    errors::NONE
                }
                None => ResponseError::IllegalGeneration.code(),
            }
        };
        if check != errors::NONE {
            return vec![check; parts.len()];
        }
        let (mut codes, entries) = self.commit_entries(group_id, parts, now, retention_ms);
        let entries = entries.into_iter().map(|(k, v)| (k, Some(v))).collect();
        if let Err(e) = self.offsets.write(group_id, entries).await {
            for c in codes.iter_mut().filter(|c| **c == errors::NONE) {
                *c = e;
            }
        }
        codes
    }

    /// The offsets of one commit request as log entries, with one code per partition (NONE, or
    /// OFFSET_METADATA_TOO_LARGE for a partition left out). Shared by OffsetCommit and
    /// TxnOffsetCommit, which differ only in how the entries are written.
    fn commit_entries(
        &self,
        group_id: &str,
        parts: Vec<CommitPartition>,
        now: i64,
        retention_ms: i64,
    ) -> (Vec<i16>, Vec<(OffsetKey, CommittedOffset)>) {
        let mut codes = vec![errors::NONE; parts.len()];
        let mut entries = Vec::with_capacity(parts.len());
        for (i, p) in parts.into_iter().enumerate() {
            let metadata = p.metadata.unwrap_or_default();
            if metadata.len() > self.cfg.offset_metadata_max_bytes {
                codes[i] = ResponseError::OffsetMetadataTooLarge.code();
                continue;
            }
            entries.push((
                OffsetKey {
                    group: group_id.to_string(),
                    topic: p.topic,
                    partition: p.partition,
                },
                CommittedOffset {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp: p.commit_timestamp.unwrap_or(now),
                    expire_timestamp: (retention_ms >= 0).then_some(now + retention_ms),
                },
            ));
        }
        (codes, entries)
    }

    /// TxnOffsetCommit: one code per partition, in order. Validated as Kafka validates
    /// transactional commits (KIP-447 generation fencing, [`Group::validate_txn_commit`]; an
    /// unknown group is created Empty for generation < 0, else ILLEGAL_GENERATION), then
    /// written as a transactional batch of the producer: pending, not visible to OffsetFetch,
    /// until [`Coordinator::complete_txn`].
    #[allow(clippy::too_many_arguments)]
    pub async fn txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        producer_id: i64,
        producer_epoch: i16,
        parts: Vec<CommitPartition>,
    ) -> Vec<i16> {
        let now = self.now();
        let check = if group_id.is_empty() {
            ResponseError::InvalidGroupId.code()
        } else if producer_id < 0 {
            ResponseError::InvalidProducerIdMapping.code()
        } else if producer_epoch < 0 {
            ResponseError::InvalidProducerEpoch.code()
        } else if self
            .offsets
            .table()
            .open_txn_epoch(self.offsets.partition_of(group_id), producer_id)
            .is_some_and(|e| e > producer_epoch)
        {
            // A zombie of a producer whose newer epoch already wrote here.
            ResponseError::InvalidProducerEpoch.code()
        } else {
            let mut groups = self.groups.borrow_mut();
            match groups.get(group_id) {
                Some(g) => g.validate_txn_commit(member_id, instance, generation),
                None if generation < 0 => {
                    groups.insert(
                        group_id.to_string(),
                        Group::new(group_id, self.cfg.group.clone(), now),
                    );
                    errors::NONE
                }
                None => ResponseError::IllegalGeneration.code(),
            }
        };
        if check != errors::NONE {
            return vec![check; parts.len()];
        }
        // TxnOffsetCommit carries no retention: the offsets never expire by their own time.
        let (mut codes, entries) = self.commit_entries(group_id, parts, now, -1);
        if let Err(e) = self
            .offsets
            .write_txn(group_id, producer_id, producer_epoch, entries)
            .await
        {
            for c in codes.iter_mut().filter(|c| **c == errors::NONE) {
                *c = e;
            }
        }
        codes
    }

    /// Ends `producer_id`'s transaction for `group_id` (see `group::shard::complete_txn`):
    /// writes the COMMIT/ABORT marker into the group's offsets partition and, once durable,
    /// materialises or drops the pending offsets. Idempotent: without pending or queued
    /// transactional offsets of the producer there (already completed, e.g. a retry after a
    /// restart, or none were sent) nothing is written.
    pub async fn complete_txn(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), i16> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId.code());
        }
        if !self.offsets.txn_open(group_id, producer_id) {
            return Ok(());
        }
        self.offsets
            .write_marker(group_id, producer_id, producer_epoch, commit)
            .await
    }

    /// OffsetFetch: `topics` None = every committed partition of the group. Partitions without
    /// a commit get offset -1 and empty metadata. With `require_stable` (v7+, read_committed
    /// consumers) a partition with a pending transactional offset answers
    /// UNSTABLE_OFFSET_COMMIT instead (per partition, as Kafka), so the client retries until the
    /// transaction is complete.
    pub fn fetch(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> (i16, Vec<FetchedOffset>) {
        if group_id.is_empty() {
            return (ResponseError::InvalidGroupId.code(), Vec::new());
        }
        let table = self.offsets.table();
        let row = |o: Option<&CommittedOffset>, topic: &str, partition: i32| {
            if require_stable && table.has_pending(group_id, topic, partition) {
                return FetchedOffset {
                    topic: topic.to_string(),
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    error_code: ResponseError::UnstableOffsetCommit.code(),
                };
            }
            match o {
                Some(o) => FetchedOffset {
                    topic: topic.to_string(),
                    partition,
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    error_code: errors::NONE,
                },
                None => FetchedOffset {
                    topic: topic.to_string(),
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    error_code: errors::NONE,
                },
            }
        };
        let out = match topics {
            None => table
                .group(group_id)
                .iter()
                .map(|(t, p, o)| row(Some(o), t, *p))
                .collect(),
            Some(topics) => {
                let mut out = Vec::new();
                for (t, parts) in topics {
                    for p in parts {
                        out.push(row(table.get(group_id, &t, p), &t, p));
                    }
                }
                out
            }
        };
        (errors::NONE, out)
    }

    /// OffsetDelete: (top-level error, per-partition codes in request order).
    pub async fn offset_delete(
        &self,
        group_id: &str,
        parts: Vec<(String, i32)>,
    ) -> (i16, Vec<i16>) {
        if group_id.is_empty() {
            return (ResponseError::InvalidGroupId.code(), Vec::new());
        }
        if !self.group_exists(group_id) {
            return (ResponseError::GroupIdNotFound.code(), Vec::new());
        }
        let mut subscribed: HashSet<String> = HashSet::new();
        if let Some(g) = self.groups.borrow().get(group_id)
            && !g.member_ids().is_empty()
        {
            if g.protocol_type() != Some("consumer") {
                return (ResponseError::NonEmptyGroup.code(), Vec::new());
            }
            for m in g.member_metadata() {
                subscribed.extend(subscription_topics(&m));
            }
        }
        let mut codes = Vec::with_capacity(parts.len());
        let mut entries = Vec::new();
        for (topic, partition) in parts {
            if subscribed.contains(&topic) {
                codes.push(ResponseError::GroupSubscribedToTopic.code());
                continue;
            }
            codes.push(errors::NONE);
            // A tombstone when there is a committed or a pending transactional offset (Kafka).
            let present = {
                let table = self.offsets.table();
                table.get(group_id, &topic, partition).is_some()
                    || table.has_pending(group_id, &topic, partition)
            };
            if present {
                entries.push((
                    OffsetKey {
                        group: group_id.to_string(),
                        topic,
                        partition,
                    },
                    None,
                ));
            }
        }
        if let Err(e) = self.offsets.write(group_id, entries).await {
            return (e, codes);
        }
        (errors::NONE, codes)
    }

    /// Deletes expired offsets (tombstones) and forgets empty groups without offsets.
    pub async fn expire_offsets(&self) {
        let now = self.now();
        let expired = {
            let groups = self.groups.borrow();
            self.offsets
                .table()
                .expired(now, self.cfg.offsets_retention_ms, |id| {
                    match groups.get(id) {
                        Some(g) if !g.member_ids().is_empty() => GroupActivity::Active,
                        Some(g) if g.protocol_type().is_some() => {
                            GroupActivity::EmptySince(g.state_since())
                        }
                        _ => GroupActivity::Unknown,
                    }
                })
        };
        let mut by_group: HashMap<String, Vec<Entry>> = HashMap::new();
        for k in expired {
            by_group.entry(k.group.clone()).or_default().push((k, None));
        }
        for (g, entries) in by_group {
            tracing::info!(group = %g, n = entries.len(), "expiring committed offsets");
            if let Err(e) = self.offsets.write(&g, entries).await {
                tracing::warn!(group = %g, code = e, "offset expiry write failed");
            }
        }
        let table = self.offsets.table();
        self.groups.borrow_mut().retain(|id, g| {
            // A group with an open transaction stays (Kafka's `cleanupExpiredOffsets`).
            g.state() != State::Empty
                || !g.is_empty()
                || table.has_group(id)
                || table.has_open_txns(id)
        });
    }

    /// Closes the offsets logs (clean shutdown).
    pub async fn shutdown(&self) -> Result<(), crate::storage::StorageError> {
        self.stopped.set(true);
        self.offsets.close().await
    }

    pub fn offsets(&self) -> &Rc<OffsetStore> {
        &self.offsets
    }
}

fn dead_description() -> GroupDescription {
    GroupDescription {
        state: State::Dead,
        protocol_type: String::new(),
        protocol: String::new(),
        members: Vec::new(),
    }
}

/// Topics of a consumer-protocol subscription (`i16 version` + ConsumerProtocolSubscription).
pub fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut buf = bytes::Bytes::copy_from_slice(metadata);
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    match ConsumerProtocolSubscription::decode(&mut buf, version) {
        Ok(s) => s.topics.iter().map(|t| t.to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The shard's timer task: sleeps until the earliest group deadline (at most `tick_ms`, and
/// less when [`Coordinator::arm`] wakes it), applies what is due, now and then expires offsets.
async fn timers(weak: Weak<Coordinator>) {
    loop {
        let (sleep_ms, woken) = {
            let Some(c) = weak.upgrade() else { return };
            let now = c.now();
            let cap = c.cfg.tick_ms.max(1) as i64;
            let until = c.next_deadline().map_or(now + cap, |d| d.min(now + cap));
            let (tx, rx) = oneshot::channel();
            c.wake_at.set(until);
            *c.wake.borrow_mut() = Some(tx);
            // At least 1 ms, so a deadline that is due stays a timer wake-up, never a busy loop.
            ((until - now).max(1) as u64, rx)
        };
        futures_lite::future::or(
            async {
                glommio::timer::sleep(Duration::from_millis(sleep_ms)).await;
            },
            async {
                woken.await;
            },
        )
        .await;
        let Some(c) = weak.upgrade() else { return };
        if c.stopped.get() {
            return;
        }
        c.tick();
        let now = c.now();
        if now - c.last_expiry.get() >= c.cfg.retention_check_interval_ms {
            c.last_expiry.set(now);
            c.expire_offsets().await;
        }
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
