//! Transactions in the partition log (KIP-98): transaction markers (control batches), the
//! producers' ongoing transactions, the last stable offset and the aborted-transaction index
//! (`.txnindex`).
//!
//! This file holds the types the rest of the broker uses; the storage side of transactions is
//! being built behind [`super::PartitionLog::append_marker`],
//! [`super::PartitionLog::last_stable_offset`], [`super::PartitionLog::aborted_transactions`] and
//! [`super::PartitionLog::producers`].

/// A transaction marker to write into one partition (Kafka's `EndTransactionMarker` in a control
/// batch carrying the producer's id and epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
    /// The transaction coordinator's epoch (its partition's leader epoch in Kafka).
    pub coordinator_epoch: i32,
}

/// One aborted transaction overlapping a fetched range (Fetch's `aborted_transactions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// One producer's state on a partition (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 when unknown.
    pub last_sequence: i32,
    /// -1 when unknown.
    pub last_timestamp: i64,
    /// -1 when the producer never wrote a marker here.
    pub coordinator_epoch: i32,
    /// First offset of its ongoing transaction on this partition, or -1.
    pub current_txn_start_offset: i64,
}
