//! The transaction coordinator (KIP-98, KIP-447; transaction version 1).
//!
//! - [`state`]: one transactional id's metadata and Kafka's state machine (Empty, Ongoing,
//!   PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, Dead, PrepareEpochFence), pure:
//!   operations return the target state to persist or a Kafka error; unit-tested with the time
//!   passed in.
//! - [`log`]: the durable store, Kafka's `__transaction_state` record format on Ringbolt's
//!   `PartitionLog`, reload and compaction.
//! - [`coordinator`]: one shard's coordinator: ids, the two-phase end of a transaction (markers,
//!   group offsets), timeouts and expiry.
//! - [`shard`]: wiring into the broker: per-shard start/stop, cross-shard calls.
//!
//! # Placement
//! A transactional id lives on `__transaction_state` partition `abs(javaHash(id)) % 50` (Kafka's
//! `transaction.state.log.num.partitions`) and that partition on shard `p % shards`, exactly like
//! a group and its offsets partition, so a restart with another core count moves whole
//! partitions and loses nothing. FindCoordinator (key type 1) names this broker; the handlers
//! reach the id's shard with one `run_on` hop carrying plain `Send` values.
//!
//! # Durability and when a request is answered
//! Every state change is one record in `<data-dir>/__transaction_state-<p>/`, fdatasynced before
//! the change is installed and answered: InitProducerId's epoch bump, AddPartitionsToTxn's and
//! AddOffsetsToTxn's Ongoing state (so a transaction whose partitions were acknowledged is always
//! found, and aborted, after a crash), and both halves of EndTxn. EndTxn is answered only once
//! CompleteCommit/CompleteAbort is durable, after the markers (each durable on its partition) and
//! the group offsets: a client never sees CONCURRENT_TRANSACTIONS after a normal EndTxn, and a
//! read_committed consumer that sees the commit marker sees all of the transaction. A restart
//! finds a transaction in PrepareX and completes it again; one found Ongoing keeps its timeout.
//!
//! # Versions and deviations from Kafka
//! - Transaction version 1 only: Ringbolt does not advertise the `transaction.version` feature,
//!   so clients add partitions with AddPartitionsToTxn before producing, and markers carry the
//!   producer's epoch. AddPartitionsToTxn v4+ (broker-to-broker verification) is served for its
//!   verify-only use.
//! - InitProducerId for an id whose previous producer left a transaction Ongoing aborts it (epoch
//!   bump, markers) and then answers with the next epoch in the same request, where Kafka answers
//!   CONCURRENT_TRANSACTIONS and lets the client retry into the same state: one round trip fewer,
//!   the same outcome and epochs.
//! - The consumer groups of a transaction (AddOffsetsToTxn) are kept by name in a Ringbolt
//!   tagged field of the log record, because Ringbolt completes transactional offsets with a call
//!   to the group coordinator (`group::shard::complete_txn`) rather than a marker in
//!   `__consumer_offsets`.
//! - Markers carry coordinator epoch 0: there is one coordinator per id and no leader election,
//!   so there is no zombie coordinator to fence.

pub mod coordinator;
pub mod log;
pub mod shard;
pub mod state;

/// The `__transaction_state` partition of a transactional id.
pub fn log_partition(transactional_id: &str, partitions: u32) -> u32 {
    crate::group::offsets::partition_for(transactional_id, partitions)
}

/// The code a client of `version` gets for `e`: before KIP-588 (`fenced_from`, the version
/// that added PRODUCER_FENCED to that API) Kafka answers INVALID_PRODUCER_EPOCH instead.
pub fn client_error(e: kafka_protocol::ResponseError, version: i16, fenced_from: i16) -> i16 {
    use kafka_protocol::ResponseError::{InvalidProducerEpoch, ProducerFenced};
    match e {
        ProducerFenced if version < fenced_from => InvalidProducerEpoch.code(),
        e => e.code(),
    }
}
