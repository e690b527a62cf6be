//! The partition log as a replica: leader or follower of a replicated partition.
//!
//! A single node's log ([`ReplicaRole::Single`]) behaves as it always has: the high watermark is
//! the written end. As a leader the high watermark is what the replication layer says it is
//! (the ISR's minimum log end), consumer reads stop there and client appends are stamped with the
//! leader's epoch. As a follower only [`PartitionLog::append_replica`] writes, keeping the
//! leader's offsets and epochs.

use bytes::Bytes;

use super::error::StorageError;
use super::log::PartitionLog;
use super::slice::{AppendInfo, ReadResult};

/// What this broker is for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicaRole {
    /// Not replicated (single node): HW = written end, epoch 0.
    #[default]
    Single,
    /// Leader at `epoch`: client appends allowed and stamped with it; HW set by
    /// [`PartitionLog::advance_high_watermark`].
    Leader { epoch: i32 },
    /// Follower of the leader at `epoch`: client appends refused (NOT_LEADER_OR_FOLLOWER).
    Follower { epoch: i32 },
}

impl PartitionLog {
    /// Switches the role. Becoming leader at a new epoch records the epoch's start at the log
    /// end in the leader-epoch cache.
    pub fn set_role(&self, role: ReplicaRole) {
        let _ = role;
        todo!("issue 19: storage set_role")
    }

    pub fn role(&self) -> ReplicaRole {
        todo!("issue 19: storage role")
    }

    /// The follower's append: batches as the leader stored them (offsets, partition leader
    /// epochs, control batches included), which must start at the log end offset. Updates the
    /// producer state and leader-epoch cache as the leader's append did. Synchronous half, like
    /// [`PartitionLog::append_assign`]; wait with [`PartitionLog::wait_written`].
    pub fn append_replica(&self, records: Bytes) -> Result<AppendInfo, StorageError> {
        let _ = records;
        todo!("issue 19: storage append_replica")
    }

    /// Cuts the log back so that `offset` is the new log end (a follower's divergent tail):
    /// segments, indexes, producer state, transaction state, leader-epoch cache. No-op when
    /// `offset` is at or past the end. Never below the high watermark's committed data on a
    /// leader (callers only truncate followers).
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let _ = offset;
        todo!("issue 19: storage truncate_to")
    }

    /// Sets the high watermark (leader: the ISR's minimum log end; follower: the leader's HW,
    /// clamped to this log's end). Never moves backwards; wakes consumer fetches waiting on it.
    pub fn advance_high_watermark(&self, hw: i64) {
        let _ = hw;
        todo!("issue 19: storage advance_high_watermark")
    }

    /// Resolves once the high watermark is past `offset`, or with the error that took the log
    /// offline.
    pub async fn wait_high_watermark(&self, offset: i64) -> Result<(), StorageError> {
        let _ = offset;
        todo!("issue 19: storage wait_high_watermark")
    }

    /// A follower's read on the leader: like [`PartitionLog::read`] but bounded by the log end
    /// (written data), not the high watermark.
    pub async fn read_replica(
        &self,
        offset: i64,
        max_bytes: u32,
    ) -> Result<ReadResult, StorageError> {
        let _ = (offset, max_bytes);
        todo!("issue 19: storage read_replica")
    }
}
