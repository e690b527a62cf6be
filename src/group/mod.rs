//! Consumer-group coordinator and committed offsets.
//!
//! - [`state`]: one group's membership state machine (Kafka's classic rebalance protocol), pure.
//! - [`offsets`]: the `__consumer_offsets` record format and the in-memory offset table, pure.
//! - [`offset_log`]: the durable offsets store of one shard (batched appends, reload, compaction).
//! - [`coordinator`]: one shard's coordinator: groups, parked requests, timers, offsets.
//! - [`shard`]: wiring into the broker: per-shard start/stop, `on_coordinator` cross-shard calls.
//! - [`oneshot`]: the single-threaded completion channel parked requests wait on.

pub mod coordinator;
pub mod offset_log;
pub mod offsets;
pub mod oneshot;
pub mod shard;
pub mod state;
