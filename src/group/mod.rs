//! Consumer-group coordinator and committed offsets (Kafka's classic group protocol).
//!
//! - [`state`]: one group's membership state machine, pure (events + an injected clock in,
//!   completed JoinGroup/SyncGroup answers out), unit-tested without sockets.
//! - [`offsets`]: the `__consumer_offsets` record format and the in-memory offset table, pure.
//! - [`offset_log`]: the durable offsets store of one shard (batched appends, reload, compaction).
//! - [`coordinator`]: one shard's coordinator: groups, parked requests, timers, offsets.
//! - [`shard`]: wiring into the broker: per-shard start/stop, `on_coordinator` cross-shard calls.
//!
//! # Placement
//! A group lives on offsets partition `abs(javaHash(group)) % 50` (Kafka's `partitionFor`) and that
//! partition on shard `p % shards`. All state changes of a group happen on that one thread; the
//! API handlers (one file per API key in `server/handlers/`) run on the connection's shard and
//! reach the coordinator with one `run_on` hop carrying plain `Send` values. FindCoordinator
//! always names this broker. Because placement goes through the 50 fixed offsets partitions, a
//! restart with another core count moves whole partitions between shards and loses nothing.
//!
//! # What is durable, and when a commit is acknowledged
//! Committed offsets are records in Kafka's own key/value format in
//! `<data-dir>/__consumer_offsets-<p>/` (Ringbolt's `PartitionLog`, so the same segment files and
//! recovery). An OffsetCommit is answered after the fdatasync covering its record completed
//! (group commit: concurrent commits share one append and one sync), so an acknowledged commit
//! survives power loss. Group *membership* is not persisted: after a restart members get
//! UNKNOWN_MEMBER_ID on their next heartbeat and rejoin (a fresh generation), as after a Kafka
//! coordinator move; their committed offsets are there. Old records are dropped by rewriting a
//! partition's live set (snapshot compaction), not by segment retention, which could delete the
//! only record of a live offset. `offsets.retention.minutes` expires offsets of empty groups.
//!
//! # Transactional offsets (KIP-98, KIP-447)
//! TxnOffsetCommit (`sendOffsetsToTransaction`) is validated like a member's OffsetCommit
//! (generation, member id, instance id: a consumer of an old generation cannot commit into a
//! transaction) and written into the group's offsets partition as a *transactional* batch of the
//! producer, Kafka's record format. Its offsets are then pending: OffsetFetch does not show them,
//! and answers UNSTABLE_OFFSET_COMMIT for their partitions to `require_stable` fetches
//! (read_committed consumers), which retry. When the transaction ends, the transaction
//! coordinator calls [`shard::complete_txn`]: a COMMIT or ABORT marker (control batch) goes into
//! the same partition, and once it is durable the offsets are committed or dropped. Everything is
//! applied in log order, so the table always equals a replay of the log: after a restart,
//! transactional batches without a marker are pending again and the coordinator, which completes
//! unfinished transactions after its own reload, calls `complete_txn` again (idempotent).
//! Deleting a group or an offset, and offset expiry, treat pending offsets as Kafka does:
//! tombstones delete them too; expiry skips partitions with pending offsets and keeps a group
//! with open transactions.
//!
//! # Trade-offs and deviations from Kafka
//! - Timeouts are met exactly (a member is gone `session.timeout.ms` after its last request, as
//!   with Kafka's per-member timers; clients such as librdkafka's test suite delete a group right
//!   then), but by one timer task per shard that sleeps until the earliest deadline rather than
//!   one timer per member, so a heartbeat costs no timer bookkeeping.
//! - No separate "pending sync" timeout: a leader that never sends SyncGroup (or a static member
//!   kept in the group while it was away) is removed by its session timeout, which restarts the
//!   rebalance.
//! - The KIP-848 consumer protocol (ConsumerGroupHeartbeat) is not served. Transaction
//!   coordinators (FindCoordinator key type 1) are the [`crate::txn`] module's, placed the same
//!   way on their own `__transaction_state` partitions.
//!
//! # Figures
//! `cargo bench --bench group` (see that file's docs for the exact loads) measures rebalance time
//! and durable OffsetCommit rates on the coordinator alone and over TCP; measured in
//! `docs/perf/group-coordinator.md`. Over TCP the rate per connection is bounded by one fdatasync
//! per request, because a connection's requests run one at a time (as in Kafka).

pub mod coordinator;
pub mod offset_log;
pub mod offsets;
pub mod shard;
pub mod state;
