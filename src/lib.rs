//! Ringbolt: a Kafka-compatible message broker, thread-per-core on io_uring.
//!
//! # Layout
//!
//! ```text
//! client ──TCP──▶ shard S (the core whose SO_REUSEPORT listener took the connection)
//!                  connection task: read frame → check size → decode header → dispatch by API key
//!                    │ partition-level work (produce / fetch / list offsets / commit)
//!                    ▼
//!                  owner shard O = owner(topic, partition)  (same core: direct call; else: mesh)
//!                    │ append / read / wait for data
//!                    ▼
//!                  S encodes the response; responses on one connection leave in request order
//! ```
//!
//! - [`cluster`]: brokers, the Raft metadata quorum (openraft, on its own thread), the
//!   replicated metadata image and the active controller's decisions.
//! - [`replica`]: data replication: partition leaders, followers fetching from them, ISR, high
//!   watermark, `acks=all` across replicas.
//! - [`config`]: typed broker and topic configuration (Kafka's names), defaults, validation.
//! - [`format`](mod@format): no I/O, no other module of the crate. The v2 record-batch format
//!   shared by the wire and the log: header views and validation, CRC-32C, compression codecs.
//! - [`protocol`]: no I/O. Framing, request headers, legacy message sets (magic 0/1) and the old
//!   request versions that carry them.
//! - [`storage`]: the partition log: segments (`.log`, `.index`, `.timeindex` in Kafka's layout),
//!   direct-I/O appends, group commit, recovery, retention.
//! - [`shard`]: glommio executors pinned one per core, partition→shard routing, the cross-shard mesh.
//! - [`metadata`]: topics, partitions and configs; persisted in the data dir, published to shards.
//! - [`server`]: listener, connections (in-order responses), dispatch, one handler file per API key.
//! - [`group`]: consumer-group coordinator and committed offsets.
//! - [`txn`]: the transaction coordinator and its durable log.
//! - [`sync`]: shard-local wait/wake primitives (latch, notifier, one-shot channel, join/select)
//!   and when to use which.
//! - [`tune`]: `ringbolt tune check|apply`, the host settings (see `tuning/README.md`).
//!
//! The data flow end to end is in `docs/architecture.md`; each module's own docs keep the reasoning
//! and trade-offs of its part, and `docs/perf/` the measurements behind them.

pub mod cluster;
pub mod config;
pub mod format;
pub mod group;
pub mod metadata;
pub mod protocol;
pub mod quota;
pub mod replica;
pub mod server;
pub mod shard;
pub mod storage;
pub mod sync;
pub mod txn;
// `ringbolt tune` needs nothing of the broker: its own crate, `crates/ringbolt-tune`.
pub use ringbolt_tune as tune;
pub(crate) mod util;
