//! One transactional id's metadata and its state machine (Kafka's `TransactionMetadata`), pure:
//! each operation looks at the current metadata and the time passed in, and answers either an
//! error code or the *target* metadata to persist. The coordinator writes the target to the
//! transaction log, waits for its fdatasync, and only then installs it with [`TxnMetadata::apply`]
//! (which checks the transition is one Kafka allows). While a write is in flight the id is
//! `pending`, and every other request for it gets CONCURRENT_TRANSACTIONS, as in Kafka, so the
//! state machine never sees two changes racing.
//!
//! States and legal transitions (Kafka's `TransactionState.validPreviousStates`, transaction
//! version 1):
//! - Empty ← Empty, CompleteCommit, CompleteAbort (InitProducerId)
//! - Ongoing ← Ongoing, Empty, CompleteCommit, CompleteAbort (AddPartitions/AddOffsets)
//! - PrepareCommit ← Ongoing; PrepareAbort ← Ongoing, PrepareEpochFence (EndTxn, timeout, fence)
//! - CompleteCommit ← PrepareCommit; CompleteAbort ← PrepareAbort (markers written)
//! - Dead ← Empty, CompleteCommit, CompleteAbort (`transactional.id.expiration.ms`)
//!
//! PrepareEpochFence is Kafka's in-memory step between Ongoing and PrepareAbort when the
//! coordinator itself aborts (a new producer instance or a timeout): Ringbolt goes straight to
//! PrepareAbort with the bumped epoch, which is also what Kafka writes to its log.

use kafka_protocol::ResponseError;
use std::collections::BTreeSet;

/// Kafka's `TransactionState`, with its on-disk ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

pub const ALL_STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

impl TxnState {
    /// The id in `TransactionLogValue.TransactionStatus`.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        ALL_STATES.iter().copied().find(|s| s.id() == id)
    }

    /// The name DescribeTransactions/ListTransactions report (Kafka's `stateName`).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        ALL_STATES.iter().copied().find(|s| s.name() == name)
    }

    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteCommit, CompleteAbort],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether `self` may follow `from`.
    pub fn can_follow(self, from: TxnState) -> bool {
        self.valid_previous().contains(&from)
    }

    /// A transaction between its PrepareX record and its CompleteX record.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// An epoch this high cannot be bumped again: the producer gets a new producer id.
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// One transactional id's state (Kafka's `TransactionMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The id before the last rotation (epoch exhaustion), for KIP-360 retries.
    pub prev_producer_id: i64,
    /// Kept for the log format (TV2's next id); always -1 with transaction version 1.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, so a retried InitProducerId gets the same answer.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions of the ongoing transaction (topic, partition), sorted.
    pub partitions: BTreeSet<(String, i32)>,
    /// The consumer groups of the ongoing transaction (AddOffsetsToTxn).
    pub groups: BTreeSet<String>,
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// A change is being written (not persisted; see the module docs).
    pub pending: bool,
}

/// What InitProducerId has to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitPlan {
    /// Persist this (state Empty, epoch bumped) and answer it.
    Bump(TxnMetadata),
    /// The previous epoch's transaction is ongoing: abort it first ([`TxnMetadata::fence_abort`]),
    /// then plan again.
    AbortOngoing,
    /// The epoch is exhausted: allocate a new producer id and persist [`TxnMetadata::rotate`].
    Rotate,
}

/// What EndTxn has to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndPlan {
    /// Persist this PrepareX, write the markers, then persist [`TxnMetadata::completed`].
    Prepare(TxnMetadata),
    /// A retry of an EndTxn that already completed: answer success.
    AlreadyDone,
}

type TxnResult<T> = Result<T, ResponseError>;

impl TxnMetadata {
    /// A new transactional id with a fresh producer id (epoch -1: the first InitProducerId bumps
    /// it to 0).
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            prev_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now,
            pending: false,
        }
    }

    /// Installs a persisted target, checking the transition.
    pub fn apply(&mut self, target: TxnMetadata) -> TxnResult<()> {
        if !target.state.can_follow(self.state) {
            return Err(ResponseError::InvalidTxnState);
        }
        *self = TxnMetadata {
            pending: false,
            ..target
        };
        Ok(())
    }

    fn busy(&self) -> TxnResult<()> {
        if self.pending {
            Err(ResponseError::ConcurrentTransactions)
        } else {
            Ok(())
        }
    }

    /// Kafka's `isValidProducerId` for InitProducerId's KIP-360 `producer_id`/`producer_epoch`.
    fn is_valid_producer_id(&self, producer_id: i64, epoch: i16) -> bool {
        self.producer_epoch == NO_PRODUCER_EPOCH
            || producer_id == self.producer_id
            || (producer_id == self.prev_producer_id && epoch_exhausted(epoch))
    }

    /// InitProducerId (`expected`: the KIP-360 producer id and epoch of v3+, if given).
    pub fn plan_init(
        &self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now: i64,
    ) -> TxnResult<InitPlan> {
        self.busy()?;
        if let Some((pid, epoch)) = expected
            && !self.is_valid_producer_id(pid, epoch)
        {
            return Err(ResponseError::ProducerFenced);
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing => Ok(InitPlan::AbortOngoing),
            TxnState::Dead => Err(ResponseError::ConcurrentTransactions),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                if epoch_exhausted(self.producer_epoch)
                    && expected.is_none_or(|(_, e)| e == self.producer_epoch)
                {
                    return Ok(InitPlan::Rotate);
                }
                let (epoch, last) = match expected {
                    None => (self.producer_epoch + 1, NO_PRODUCER_EPOCH),
                    Some((_, e))
                        if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch =>
                    {
                        (self.producer_epoch + 1, self.producer_epoch)
                    }
                    // A retry whose answer was lost: the same epoch again.
                    Some((_, e)) if e == self.last_producer_epoch => {
                        (self.producer_epoch, self.last_producer_epoch)
                    }
                    Some(_) => return Err(ResponseError::ProducerFenced),
                };
                Ok(InitPlan::Bump(TxnMetadata {
                    producer_epoch: epoch,
                    last_producer_epoch: last,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    groups: BTreeSet::new(),
                    start_ms: -1,
                    last_update_ms: now,
                    ..self.clone()
                }))
            }
        }
    }

    /// The target after an epoch exhaustion: `new_producer_id` at epoch 0. With `retriable` (the
    /// request named its id and epoch, KIP-360) the old epoch is kept as the last epoch, so a
    /// retry of the same request gets the same answer.
    pub fn rotate(
        &self,
        new_producer_id: i64,
        timeout_ms: i32,
        retriable: bool,
        now: i64,
    ) -> TxnMetadata {
        TxnMetadata {
            prev_producer_id: self.producer_id,
            producer_id: new_producer_id,
            producer_epoch: 0,
            last_producer_epoch: if retriable {
                self.producer_epoch
            } else {
                NO_PRODUCER_EPOCH
            },
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now,
            ..self.clone()
        }
    }

    /// The coordinator's own abort of an Ongoing transaction (a new producer instance, or a
    /// timeout): the epoch is bumped, which fences the current producer, and the abort markers
    /// carry the bumped epoch. `None` unless the transaction is Ongoing.
    pub fn fence_abort(&self, now: i64) -> Option<TxnMetadata> {
        if self.state != TxnState::Ongoing || self.pending {
            return None;
        }
        let epoch = if epoch_exhausted(self.producer_epoch) {
            self.producer_epoch
        } else {
            self.producer_epoch + 1
        };
        Some(TxnMetadata {
            producer_epoch: epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            state: TxnState::PrepareAbort,
            last_update_ms: now,
            ..self.clone()
        })
    }

    /// The checks every client call of an ongoing producer shares (Kafka's order).
    fn check_producer(&self, producer_id: i64, epoch: i16) -> TxnResult<()> {
        if producer_id != self.producer_id {
            Err(ResponseError::InvalidProducerIdMapping)
        } else if epoch != self.producer_epoch {
            Err(ResponseError::ProducerFenced)
        } else {
            self.busy()
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: `None` when nothing changes (all already in the
    /// ongoing transaction), else the Ongoing target.
    pub fn plan_add(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        groups: &[String],
        now: i64,
    ) -> TxnResult<Option<TxnMetadata>> {
        self.check_producer(producer_id, epoch)?;
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(ResponseError::ConcurrentTransactions);
            }
            TxnState::Dead => return Err(ResponseError::InvalidTxnState),
            TxnState::Ongoing
                if partitions.iter().all(|p| self.partitions.contains(p))
                    && groups.iter().all(|g| self.groups.contains(g)) =>
            {
                return Ok(None);
            }
            _ => {}
        }
        let mut target = TxnMetadata {
            state: TxnState::Ongoing,
            last_update_ms: now,
            ..self.clone()
        };
        if self.state != TxnState::Ongoing {
            target.start_ms = now;
            target.partitions.clear();
            target.groups.clear();
        }
        target.partitions.extend(partitions.iter().cloned());
        target.groups.extend(groups.iter().cloned());
        Ok(Some(target))
    }

    /// Whether `(topic, partition)` is in this producer's ongoing transaction (the verify-only
    /// AddPartitionsToTxn v4+ and Produce's verification, KIP-890).
    pub fn verify(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> TxnResult<()> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        let member = self
            .partitions
            .iter()
            .any(|(t, p)| t == topic && *p == partition);
        if self.state == TxnState::Ongoing && member {
            Ok(())
        } else {
            Err(ResponseError::InvalidTxnState)
        }
    }

    /// EndTxn from the client.
    pub fn plan_end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now: i64,
    ) -> TxnResult<EndPlan> {
        self.check_producer(producer_id, epoch)?;
        let wrong = Err(ResponseError::InvalidTxnState);
        match (self.state, commit) {
            (TxnState::Ongoing, _) => Ok(EndPlan::Prepare(TxnMetadata {
                state: if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                },
                last_update_ms: now,
                ..self.clone()
            })),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndPlan::AlreadyDone)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => Err(ResponseError::ConcurrentTransactions),
            _ => wrong,
        }
    }

    /// The CompleteX target after the markers of a PrepareX are written.
    pub fn completed(&self, now: i64) -> Option<TxnMetadata> {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        Some(TxnMetadata {
            state,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            last_update_ms: now,
            ..self.clone()
        })
    }

    /// An Ongoing transaction past its `transaction.timeout.ms`.
    pub fn timed_out(&self, now: i64) -> bool {
        self.state == TxnState::Ongoing
            && !self.pending
            && self.start_ms.saturating_add(self.timeout_ms as i64) < now
    }

    /// An idle id past `transactional.id.expiration.ms` (Kafka removes it with a tombstone).
    pub fn expired(&self, now: i64, expiration_ms: i64) -> bool {
        matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) && !self.pending
            && self.last_update_ms.saturating_add(expiration_ms) <= now
    }

    /// When the timer must look at this id next (timeout or expiration), if ever.
    pub fn next_deadline(&self, expiration_ms: i64) -> Option<i64> {
        if self.pending {
            return None;
        }
        match self.state {
            TxnState::Ongoing => Some(self.start_ms.saturating_add(self.timeout_ms as i64) + 1),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                Some(self.last_update_ms.saturating_add(expiration_ms))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
