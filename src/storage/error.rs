//! Storage errors and their Kafka error codes.

use kafka_protocol::ResponseError;

use crate::format::record_batch::BatchError;

/// Errors of the partition log. [`StorageError::response_error`] is the Kafka error a handler
/// answers with ([`StorageError::error_code`] its wire code).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// CRC mismatch, bad magic, bad length (Kafka `CORRUPT_MESSAGE`, 2).
    #[error("corrupt message: {0}")]
    CorruptMessage(String),
    /// Well-formed but semantically invalid batch, e.g. record count mismatch (`INVALID_RECORD`, 87).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A batch larger than `max.message.bytes` (`MESSAGE_TOO_LARGE`, 10).
    #[error("message too large: {size} bytes > max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: u32 },
    /// (`OFFSET_OUT_OF_RANGE`, 1).
    #[error("offset {offset} out of range [{log_start}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        high_watermark: i64,
    },
    /// An idempotent producer's sequence does not follow its last one
    /// (`OUT_OF_ORDER_SEQUENCE_NUMBER`, 45; see `producer_state`).
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    /// An idempotent producer's epoch is older than the partition's (`INVALID_PRODUCER_EPOCH`, 47).
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// A producer with an ongoing transaction sent a non-transactional batch (Kafka's
    /// `InvalidTxnStateException`, `INVALID_TXN_STATE`, 48).
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A marker from a transaction coordinator older than the one that last wrote a marker for
    /// the producer (Kafka's `TransactionCoordinatorFencedException`,
    /// `TRANSACTION_COORDINATOR_FENCED`, 52).
    #[error("transaction coordinator fenced: {0}")]
    CoordinatorFenced(String),
    /// (`INVALID_TIMESTAMP`, 32).
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(i64),
    /// A client append or marker on a follower's log, or any append while a truncation rebuilds
    /// the log (`NOT_LEADER_OR_FOLLOWER`, 6); also what `wait_high_watermark` ends with when
    /// the role it waited under is gone.
    #[error("not the leader: {0}")]
    NotLeaderOrFollower(String),
    /// A follower's append that does not continue its log: the leader's batches start below the
    /// log end offset, or their offsets go backwards (Kafka's `UnexpectedAppendOffsetException`;
    /// the fetcher truncates or resets; `UNKNOWN_SERVER_ERROR` should it ever reach a client).
    #[error(
        "replica append at offset {first} does not continue the log ending at {log_end} (batch offsets must increase from the log end)"
    )]
    UnexpectedAppendOffset { first: i64, log_end: i64 },
    /// The log was closed (`NOT_LEADER_OR_FOLLOWER`, 6, so clients refresh metadata and retry).
    #[error("log is closed")]
    Closed,
    /// An earlier write or sync failed; the log refuses further appends (`KAFKA_STORAGE_ERROR`, 56).
    #[error("log is offline after an I/O error: {0}")]
    Offline(String),
    /// (`KAFKA_STORAGE_ERROR`, 56).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl StorageError {
    /// The Kafka error this answers as: the one place storage errors meet the protocol.
    pub fn response_error(&self) -> ResponseError {
        match self {
            StorageError::CorruptMessage(_) => ResponseError::CorruptMessage,
            StorageError::InvalidRecord(_) => ResponseError::InvalidRecord,
            StorageError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
            StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            StorageError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
            StorageError::OutOfOrderSequence(_) => ResponseError::OutOfOrderSequenceNumber,
            StorageError::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
            StorageError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
            StorageError::CoordinatorFenced(_) => ResponseError::TransactionCoordinatorFenced,
            StorageError::Closed | StorageError::NotLeaderOrFollower(_) => {
                ResponseError::NotLeaderOrFollower
            }
            StorageError::UnexpectedAppendOffset { .. } => ResponseError::UnknownServerError,
            StorageError::Offline(_) | StorageError::Io(_) => ResponseError::KafkaStorageError,
        }
    }

    /// The wire code of [`StorageError::response_error`].
    pub fn error_code(&self) -> i16 {
        self.response_error().code()
    }
}

impl From<BatchError> for StorageError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::BadLength(_) | BatchError::BadMagic(_) | BatchError::BadCrc { .. } => {
                StorageError::CorruptMessage(e.to_string())
            }
            BatchError::Invalid(_) => StorageError::InvalidRecord(e.to_string()),
            BatchError::BadTimestamp(ts) => StorageError::InvalidTimestamp(ts),
        }
    }
}

impl From<glommio::GlommioError<()>> for StorageError {
    fn from(e: glommio::GlommioError<()>) -> Self {
        StorageError::Io(e.into())
    }
}
