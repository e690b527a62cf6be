//! Shard-local wait/wake primitives: one task waits, another (on the same thread) wakes it.
//!
//! Everything that waits here waits on its own shard: a partition's log, a group's coordinator and
//! a connection live on one thread each, and a wait for another shard's work goes over the mesh
//! ([`crate::shard::run_on`], with its own reply slots). So none of these is `Send`
//! and none uses atomics or locks: `Cell`/`RefCell` and wakers. The waiters of [`LocalEvent`]
//! and [`Notify`](notify::Notify) remove their wakers when dropped, because most waits on them
//! lose a race (a long poll that times out, a read loop that ends before shutdown) and a partition
//! or a broker sees many of them come and go.
//!
//! # Which to use
//!
//! - [`LocalEvent`] ([`event`]): a latch. Set once, stays set; any number of tasks wait for it,
//!   and a wait that starts after it was set returns at once. For a state that, once reached, is
//!   never left: "the broker is shutting down", "the previous request of this connection released
//!   its turn", "the writer loop ended".
//! - [`Notify`](notify::Notify) ([`notify`]): a repeated signal that carries nothing. A wait
//!   resolves at the first `notify()` *after* it was created, and the waiter then re-checks its own
//!   condition (and waits again if it does not hold yet). For state that keeps moving, where each
//!   waiter wants its own threshold: a log's written, synced and readable offsets, a shared flush
//!   finishing. The wait takes the generation when it is created, so check the condition and
//!   create the wait with no `.await` between them: on one thread nothing can notify in between.
//! - [`oneshot`]: one value from one sender to one receiver; the receiver gets `None` if the sender
//!   is dropped without sending. For handing a result to a parked request: JoinGroup/SyncGroup
//!   answers, the outcome of a queued offset commit.
//! - [`join_all`] / [`select_any`] ([`join`]): wait for every one (results in order) or the first
//!   of a list of futures, inside the calling task. For fanning one request out to several owner
//!   shards, or a long poll over several partitions plus a timer and shutdown.
//!
//! Why hand-written: `futures`' `oneshot` and `event-listener` synchronise across threads
//! (`Arc`, atomics), which nothing here needs, and `futures`' `join_all`/`select_all` would bring
//! in a crate for twenty lines. The deregistration on drop is tested here because the code
//! relies on it.

pub mod event;
pub mod join;
pub mod notify;
pub mod oneshot;

pub use event::LocalEvent;
pub use join::{join_all, select_any};
