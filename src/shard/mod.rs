//! Executors pinned per core, partition routing and the cross-shard mesh.
//!
//! # Model
//!
//! A broker runs `n` shards. Each shard is one OS thread running a glommio `LocalExecutor` pinned with
//! `Placement::Fixed(core)`, with its own SO_REUSEPORT listener on the broker port, its own partition
//! logs and its own copy of the metadata snapshot. Nothing mutable crosses a thread boundary: state that
//! belongs to a shard lives in its [`ShardCtx`] (reached through `Rc`, `RefCell`, no locks), and every
//! other shard reaches it only by sending a closure over the mesh with [`run_on`].
//!
//! - [`routing`]: which shard owns a partition ([`owner`]), a pure function of
//!   `(topic, partition, n_shards)`; any shard can open any partition.
//! - [`ctx`]: the per-shard context ([`ShardCtx`]), the thread's current shard ([`current`]) and
//!   the type map other subsystems keep their per-shard state in.
//! - [`mesh`]: [`run_on`] and [`post`], closures sent to another shard over glommio's channel
//!   mesh, with the reasoning on backpressure, ordering and how the mesh builder may be copied.
//!
//! The wait/wake primitives shards use (the "shutting down" event among them) are in
//! [`crate::sync`].

pub mod ctx;
pub mod mesh;
pub mod routing;

pub use ctx::{BrokerInfo, ShardCtx, current};
pub use mesh::{
    Envelope, MESH_CHANNEL_SIZE, Mesh, PendingGuard, Posted, ReplySlot, ShardError, post, run_on,
};
pub use routing::owner;
