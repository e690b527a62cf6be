//! The transaction coordinator of one shard: the transactional ids placed on it, their durable
//! log, the two-phase end of a transaction and the timers.
//!
//! Every operation follows the same pattern: ask the pure state machine ([`TxnMetadata`]) for the
//! target, mark the id pending, write the target to the log and wait for its fdatasync, install it,
//! answer. Ending a transaction is two such writes around the markers: PrepareX durable → a marker
//! on every partition of the transaction, each written on the partition's owner shard with
//! [`PartitionLog::append_marker`](crate::storage::PartitionLog::append_marker) and waited durable
//! → the transactional offsets of every group completed (`group::shard::complete_txn`) →
//! CompleteX durable → answer. Markers and offset completions are retried until they succeed (or
//! the shard stops), as Kafka's marker channel retries: once PrepareX is durable the outcome is
//! decided, and a restart finds it in the log and completes it again (a marker for a producer
//! whose transaction is already ended on a partition is harmless).
//!
//! Timers: one task per shard wakes every `transaction.abort.timed.out.transaction.cleanup
//! .interval.ms`, aborts Ongoing transactions past their timeout (bumping the epoch, which fences
//! the producer, like Kafka's `abortTimedOutTransactions`) and, every
//! `transaction.remove.expired.transaction.cleanup.interval.ms`, removes ids idle for
//! `transactional.id.expiration.ms` with a tombstone.

use super::log::{TxnLog, TxnLogConfig};
use super::state::{EndPlan, InitPlan, TxnMetadata, TxnState};
use crate::shard::{owner, run_on};
use crate::storage::txn::TxnMarker;
use kafka_protocol::ResponseError;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

pub type Clock = Rc<dyn Fn() -> i64>;

/// Coordinator settings (Kafka broker-config names).
#[derive(Debug, Clone)]
pub struct TxnConfig {
    pub log: TxnLogConfig,
    /// `transaction.max.timeout.ms` (900000).
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms` (7 days).
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (10000).
    pub abort_interval_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (3600000).
    pub expire_interval_ms: u64,
}

impl TxnConfig {
    pub fn new(data_dir: impl Into<std::path::PathBuf>) -> Self {
        TxnConfig {
            log: TxnLogConfig::new(data_dir),
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 3600 * 1000,
            abort_interval_ms: 10_000,
            expire_interval_ms: 3_600_000,
        }
    }
}

/// The shard coordinating `transactional_id`.
pub fn shard_for(transactional_id: &str, shards: usize, partitions: u32) -> usize {
    super::log_partition(transactional_id, partitions) as usize % shards.max(1)
}

/// What DescribeTransactions / ListTransactions report of one id.
#[derive(Debug, Clone)]
pub struct TxnView {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: TxnState,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: Vec<(String, i32)>,
}

impl From<&TxnMetadata> for TxnView {
    fn from(m: &TxnMetadata) -> Self {
        TxnView {
            transactional_id: m.transactional_id.clone(),
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            state: m.state,
            timeout_ms: m.timeout_ms,
            start_ms: m.start_ms,
            partitions: m.partitions.iter().cloned().collect(),
        }
    }
}

type TxnResult<T> = Result<T, ResponseError>;

pub struct Coordinator {
    shard: usize,
    n_shards: usize,
    cfg: TxnConfig,
    log: Rc<TxnLog>,
    txns: RefCell<HashMap<String, TxnMetadata>>,
    clock: Clock,
    stopped: Rc<Cell<bool>>,
}

impl Coordinator {
    /// Loads this shard's transaction log partitions, resumes the transactions found between
    /// PrepareX and CompleteX, and starts the timer task.
    pub async fn start(
        shard: usize,
        n_shards: usize,
        cfg: TxnConfig,
        clock: Clock,
    ) -> Result<Rc<Self>, crate::storage::StorageError> {
        let n = n_shards.max(1);
        let (log, txns) = TxnLog::load(cfg.log.clone(), |p| p as usize % n == shard).await?;
        let c = Rc::new(Coordinator {
            shard,
            n_shards: n,
            cfg,
            log,
            txns: RefCell::new(HashMap::new()),
            clock,
            stopped: Rc::new(Cell::new(false)),
        });
        let mut resume = Vec::new();
        for m in txns {
            if m.state.is_preparing() {
                resume.push(m.transactional_id.clone());
            }
            c.txns.borrow_mut().insert(m.transactional_id.clone(), m);
        }
        for id in resume {
            tracing::info!(transactional_id = %id, "completing a transaction found prepared at start");
            let me = c.clone();
            glommio::spawn_local(async move {
                if let Err(e) = me.complete(&id).await {
                    tracing::warn!(transactional_id = %id, error = ?e, "completing a prepared transaction failed");
                }
            })
            .detach();
        }
        glommio::spawn_local(timers(Rc::downgrade(&c))).detach();
        Ok(c)
    }

    pub fn config(&self) -> &TxnConfig {
        &self.cfg
    }

    pub fn shard(&self) -> usize {
        self.shard
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn get(&self, id: &str) -> Option<TxnMetadata> {
        self.txns.borrow().get(id).cloned()
    }

    /// Writes `target` durably and installs it (module docs). The id must not be pending.
    async fn persist(&self, target: TxnMetadata) -> TxnResult<()> {
        let id = target.transactional_id.clone();
        match self.txns.borrow_mut().get_mut(&id) {
            Some(m) if m.pending => return Err(ResponseError::ConcurrentTransactions),
            Some(m) => m.pending = true,
            None => return Err(ResponseError::InvalidProducerIdMapping),
        }
        let p = super::log_partition(&id, self.cfg.log.num_partitions);
        let written = self.log.write(p, &target).await;
        let mut txns = self.txns.borrow_mut();
        let Some(m) = txns.get_mut(&id) else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        m.pending = false;
        if let Err(e) = written {
            tracing::error!(transactional_id = %id, error = %e, "transaction log write failed");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if target.state == TxnState::Dead {
            txns.remove(&id);
            return Ok(());
        }
        m.apply(target)
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use.
    pub async fn init_producer_id(
        self: &Rc<Self>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> TxnResult<(i64, i16)> {
        if timeout_ms <= 0 || timeout_ms > self.cfg.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        if self.get(id).is_none() {
            let pid = crate::metadata::producer_ids::allocate_remote().await?;
            // Another request may have created it while the id was being allocated.
            self.txns
                .borrow_mut()
                .entry(id.to_string())
                .or_insert_with(|| TxnMetadata::new(id, pid, timeout_ms, self.now()));
        }
        // At most: abort the previous epoch's transaction, then bump.
        for _ in 0..2 {
            let m = self.get(id).ok_or(ResponseError::ConcurrentTransactions)?;
            match m.plan_init(timeout_ms, expected, self.now())? {
                InitPlan::Bump(target) => {
                    let answer = (target.producer_id, target.producer_epoch);
                    self.persist(target).await?;
                    return Ok(answer);
                }
                InitPlan::Rotate => {
                    let pid = crate::metadata::producer_ids::allocate_remote().await?;
                    let target = m.rotate(pid, timeout_ms, expected.is_some(), self.now());
                    let answer = (target.producer_id, target.producer_epoch);
                    self.persist(target).await?;
                    return Ok(answer);
                }
                InitPlan::AbortOngoing => {
                    let target = m
                        .fence_abort(self.now())
                        .ok_or(ResponseError::ConcurrentTransactions)?;
                    self.end(target).await?;
                }
            }
        }
        Err(ResponseError::ConcurrentTransactions)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn (the groups).
    pub async fn add(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(String, i32)>,
        groups: Vec<String>,
    ) -> TxnResult<()> {
        let m = self
            .get(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        match m.plan_add(producer_id, epoch, &partitions, &groups, self.now())? {
            None => Ok(()),
            Some(target) => self.persist(target).await,
        }
    }

    /// Verify-only AddPartitionsToTxn (v4+) and Produce's verification: is the partition in the
    /// producer's ongoing transaction.
    pub fn verify(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        p: i32,
    ) -> TxnResult<()> {
        let txns = self.txns.borrow();
        let m = txns
            .get(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        m.verify(producer_id, epoch, topic, p)
    }

    /// EndTxn from the client: answers once the outcome is durable everywhere.
    pub async fn end_txn(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> TxnResult<()> {
        let m = self
            .get(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        match m.plan_end(producer_id, epoch, commit, self.now())? {
            EndPlan::AlreadyDone => Ok(()),
            EndPlan::Prepare(target) => self.end(target).await,
        }
    }

    /// Persists a PrepareX target, then completes it.
    async fn end(&self, prepare: TxnMetadata) -> TxnResult<()> {
        let id = prepare.transactional_id.clone();
        self.persist(prepare).await?;
        self.complete(&id).await
    }

    /// Markers, group offsets, CompleteX (module docs), for an id in PrepareX.
    async fn complete(&self, id: &str) -> TxnResult<()> {
        let m = self
            .get(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let commit = match m.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => return Err(ResponseError::InvalidTxnState),
        };
        let marker = TxnMarker {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            commit,
            coordinator_epoch: 0,
        };
        // All partitions at once: each marker waits for its own partition's fdatasync.
        let writes: Vec<_> = m
            .partitions
            .iter()
            .map(|(topic, p)| {
                let (topic, p, n) = (topic.clone(), *p, self.n_shards);
                let stopped = self.stopped.clone();
                glommio::spawn_local(async move {
                    retry(&stopped, || write_marker(n, topic.clone(), p, marker)).await
                })
            })
            .collect();
        for w in writes {
            w.await?;
        }
        for group in &m.groups {
            let (pid, e, g) = (m.producer_id, m.producer_epoch, group.clone());
            retry(&self.stopped, || complete_group(g.clone(), pid, e, commit)).await?;
        }
        let target = m
            .completed(self.now())
            .ok_or(ResponseError::InvalidTxnState)?;
        self.persist(target).await
    }

    /// DescribeTransactions of one id.
    pub fn describe(&self, id: &str) -> Option<TxnView> {
        self.txns.borrow().get(id).map(TxnView::from)
    }

    /// Every id on this shard (ListTransactions filters them).
    pub fn list(&self) -> Vec<TxnView> {
        self.txns.borrow().values().map(TxnView::from).collect()
    }

    /// Aborts the Ongoing transactions past their timeout (epoch bump, like Kafka).
    async fn abort_timed_out(self: &Rc<Self>) {
        let now = self.now();
        let due: Vec<TxnMetadata> = self
            .txns
            .borrow()
            .values()
            .filter(|m| m.timed_out(now))
            .filter_map(|m| m.fence_abort(now))
            .collect();
        for target in due {
            tracing::info!(transactional_id = %target.transactional_id, "aborting a timed-out transaction");
            let me = self.clone();
            glommio::spawn_local(async move {
                if let Err(e) = me.end(target).await {
                    tracing::warn!(error = ?e, "aborting a timed-out transaction failed");
                }
            })
            .detach();
        }
    }

    /// Removes ids idle past `transactional.id.expiration.ms` (a tombstone each).
    async fn expire_ids(&self) {
        let now = self.now();
        let due: Vec<TxnMetadata> = self
            .txns
            .borrow()
            .values()
            .filter(|m| m.expired(now, self.cfg.id_expiration_ms))
            .cloned()
            .collect();
        for m in due {
            let target = TxnMetadata {
                state: TxnState::Dead,
                ..m
            };
            if let Err(e) = self.persist(target).await {
                tracing::warn!(error = ?e, "expiring a transactional id failed");
            }
        }
    }

    pub async fn shutdown(&self) -> Result<(), crate::storage::StorageError> {
        self.stopped.set(true);
        self.log.close().await
    }

    pub fn log(&self) -> &Rc<TxnLog> {
        &self.log
    }
}

/// Writes one marker on the partition's owner shard and waits until it is durable. A partition
/// that no longer exists (its topic was deleted) needs no marker, as in Kafka.
async fn write_marker(
    n_shards: usize,
    topic: String,
    p: i32,
    marker: TxnMarker,
) -> Result<(), String> {
    let target = owner(&topic, p, n_shards);
    run_on(target, move |ctx| async move {
        let Some(log) = ctx.log(&topic, p) else {
            return Ok(());
        };
        let info = log.append_marker(marker).map_err(|e| e.to_string())?;
        log.wait_durable(info.last_offset)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Runs `op` until it succeeds, backing off up to a second between tries; gives up only when
/// the shard stops (the outcome is durable in PrepareX and completed after the restart).
async fn retry<F, Fut>(stopped: &Cell<bool>, op: F) -> TxnResult<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut backoff = 10u64;
    loop {
        match op().await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "completing a transaction: retrying");
                if stopped.get() {
                    return Err(ResponseError::CoordinatorNotAvailable);
                }
                glommio::timer::sleep(Duration::from_millis(backoff)).await;
                backoff = (backoff * 2).min(1000);
            }
        }
    }
}

async fn complete_group(group: String, pid: i64, epoch: i16, commit: bool) -> Result<(), String> {
    let ctx = crate::shard::current().ok_or("no shard context")?;
    crate::group::shard::complete_txn(&ctx, &group, pid, epoch, commit)
        .await
        .map_err(|code| format!("group {group}: error {code}"))
}

async fn timers(weak: Weak<Coordinator>) {
    let mut last_expiry = 0i64;
    loop {
        let interval = match weak.upgrade() {
            Some(c) => c.cfg.abort_interval_ms.max(1),
            None => return,
        };
        glommio::timer::sleep(Duration::from_millis(interval)).await;
        let Some(c) = weak.upgrade() else { return };
        if c.stopped.get() {
            return;
        }
        c.abort_timed_out().await;
        let now = c.now();
        if now - last_expiry >= c.cfg.expire_interval_ms as i64 {
            last_expiry = now;
            c.expire_ids().await;
        }
    }
}
