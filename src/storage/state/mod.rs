//! The partition log's mutable state, shared by `PartitionLog` (`log.rs`) and the tasks it
//! spawns: the writer (`appender.rs`), the syncer (`syncer.rs`) and the zero-fill
//! (`zero_fill.rs`), and by its reads (`read.rs`) and retention (`retention.rs`). It lives in a
//! module of its own so that the log and its tasks depend on it, not on each other.
//!
//! Everything mutable sits in one `RefCell<State>` that is never borrowed across an `.await`:
//! each step of a task (or of an append) borrows it, decides and updates synchronously, then
//! drops the borrow before it waits for I/O. One cell rather than one per part because most steps
//! touch several parts at once (a completed write updates the writer's position, the segment's
//! size, the tail cache and the flush counters together), and a step must see them consistent.
//!
//! The state is split by owner, each part a type with private fields, its methods and its
//! invariants (stated in its doc):
//! - [`SegmentMap`] (`segments.rs`): the segments, the log start, the warm sealed segments;
//! - [`WriteQueue`] and [`ActiveFile`] (`write.rs`): the writer's queue, offsets and positions,
//!   and the active segment's file;
//! - [`SyncState`] and, per active file, [`MetaChanges`] (`sync.rs`): the syncer's;
//! - [`ZeroFill`] (`fill.rs`), per active file: the zero-fill's;
//! - `RecentWrites` (`recent.rs`), per active file: the tail cache's.
//!
//! [`State`] holds the parts plus the producer state and whether the log failed or closed, and
//! keeps the invariants that span parts.

use std::cell::{Ref, RefCell, RefMut};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tracing::error;

use super::config::LogConfig;
use super::error::StorageError;
use super::producer_state::{self, ProducerStates};
use super::replica::ReplicaRole;
use crate::sync::notify::Notify;

mod fill;
mod segments;
mod sync;
mod write;

pub(crate) use fill::ZeroFill;
pub(crate) use segments::SegmentMap;
pub use sync::SyncStats;
pub(crate) use sync::{MetaChanges, SyncState};
pub(crate) use write::{ActiveFile, Op, WriteQueue};

/// One partition's mutable state: its parts, plus the producer state and the log's lifecycle.
///
/// Invariants across the parts:
/// - `log_start <= durable <= written <= assigned` (log start: `SegmentMap`; durable:
///   `SyncState`; written and assigned: `WriteQueue`).
/// - The high watermark ([`State::hw`]) is the written end for [`ReplicaRole::Single`];
///   otherwise `replicated_hw`, with `log_start <= replicated_hw <= written` (it only grows,
///   clamped to the written end, except when a truncation cuts the log below it).
/// - `truncating` is true exactly while `truncate_to` rebuilds the state (`replica.rs`): no
///   append, roll or marker is taken and no writer or syncer task runs meanwhile.
/// - `active` is the file of the segment the writer writes, the newest one in the map or, while
///   a roll is queued, the one before; `None` only once the log is closed.
/// - `producers` reflects every batch assigned an offset, queued ones included (`append_assign`
///   checks and updates it in the step that assigns offsets).
/// - `failed` is set once, by the first I/O error (`Inner::fail`); from then on no write, sync or
///   fill starts, and every wait ends with `Offline`. `closed` is set once, by `close`.
pub(crate) struct State {
    segments: SegmentMap,
    queue: WriteQueue,
    active: Option<ActiveFile>,
    sync: SyncState,
    producers: ProducerStates,
    failed: Option<String>,
    closed: bool,
    role: ReplicaRole,
    replicated_hw: i64,
    truncating: bool,
}

impl State {
    /// The state of a log just opened: everything in its segments is written and durable.
    pub(crate) fn new(
        segments: SegmentMap,
        active: ActiveFile,
        queue: WriteQueue,
        sync: SyncState,
        producers: ProducerStates,
    ) -> Self {
        State {
            segments,
            queue,
            active: Some(active),
            sync,
            producers,
            failed: None,
            closed: false,
            role: ReplicaRole::Single,
            replicated_hw: 0,
            truncating: false,
        }
    }

    /// What this broker is for the partition.
    pub(crate) fn role(&self) -> ReplicaRole {
        self.role
    }

    /// Switches the role. Leaving [`ReplicaRole::Single`] starts the replicated high watermark at
    /// the log start: nothing is known to be replicated until the replication layer says so
    /// (`replica.rs` explains why).
    pub(crate) fn set_role(&mut self, role: ReplicaRole) {
        if self.role == ReplicaRole::Single && role != ReplicaRole::Single {
            self.replicated_hw = self.segments.log_start();
        }
        self.role = role;
    }

    /// Moves the replicated high watermark up to `hw`, clamped to the written end; true if it
    /// moved. No-op for [`ReplicaRole::Single`] (the written end is the high watermark).
    pub(crate) fn advance_hw(&mut self, hw: i64) -> bool {
        if self.role == ReplicaRole::Single {
            return false;
        }
        let hw = hw.min(self.queue.written_end());
        if hw > self.replicated_hw {
            self.replicated_hw = hw;
            return true;
        }
        false
    }

    /// Whether a truncation is rebuilding the state.
    pub(crate) fn is_truncating(&self) -> bool {
        self.truncating
    }

    pub(crate) fn set_truncating(&mut self, on: bool) {
        self.truncating = on;
    }

    /// Replaces the parts with those of the log reloaded after a truncation, keeping the role,
    /// the high watermark (cut to the new end, or set to `hw_floor` when the log restarted
    /// there), whether durability was ever asked for, and the failure/close flags.
    pub(crate) fn replace_after_truncation(&mut self, mut new: State, hw_floor: Option<i64>) {
        let end = new.queue.written_end();
        new.role = self.role;
        new.replicated_hw = match hw_floor {
            Some(f) => f,
            None => self
                .replicated_hw
                .min(end)
                .max(new.segments.log_start().min(end)),
        };
        if self.sync.wanted() {
            new.sync.want();
        }
        new.failed = self.failed.take();
        new.closed = self.closed;
        new.truncating = self.truncating;
        *self = new;
    }

    /// `Offline` if the log failed, `Closed` if it was closed, `NotLeaderOrFollower` while a
    /// truncation rebuilds it.
    pub(crate) fn check_usable(&self) -> Result<(), StorageError> {
        self.check_online()?;
        if self.closed {
            return Err(StorageError::Closed);
        }
        if self.truncating {
            return Err(StorageError::NotLeaderOrFollower(
                "the log is being truncated".into(),
            ));
        }
        Ok(())
    }

    /// `Offline` if the log failed.
    pub(crate) fn check_online(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(f) => Err(StorageError::Offline(f.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Whether `close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Refuses further appends (`close`).
    pub(crate) fn mark_closed(&mut self) {
        self.closed = true;
    }

    pub(crate) fn segments(&self) -> &SegmentMap {
        &self.segments
    }

    pub(crate) fn segments_mut(&mut self) -> &mut SegmentMap {
        &mut self.segments
    }

    pub(crate) fn queue(&self) -> &WriteQueue {
        &self.queue
    }

    pub(crate) fn queue_mut(&mut self) -> &mut WriteQueue {
        &mut self.queue
    }

    /// The high watermark: what consumers may read (module docs of `replica.rs`). The written
    /// end for a single replica.
    pub(crate) fn hw(&self) -> i64 {
        match self.role {
            ReplicaRole::Single => self.queue.written_end(),
            _ => self.replicated_hw,
        }
    }

    /// One past the last written offset (the log end offset).
    pub(crate) fn written_end(&self) -> i64 {
        self.queue.written_end()
    }

    /// The active segment's file; `None` once closed.
    pub(crate) fn active(&self) -> Option<&ActiveFile> {
        self.active.as_ref()
    }

    pub(crate) fn active_mut(&mut self) -> Option<&mut ActiveFile> {
        self.active.as_mut()
    }

    /// The writer switched to a new segment's file (roll).
    pub(crate) fn set_active(&mut self, file: ActiveFile) {
        self.active = Some(file);
    }

    /// Takes the active file to close it.
    pub(crate) fn take_active(&mut self) -> Option<ActiveFile> {
        self.active.take()
    }

    pub(crate) fn sync(&self) -> &SyncState {
        &self.sync
    }

    pub(crate) fn sync_mut(&mut self) -> &mut SyncState {
        &mut self.sync
    }

    pub(crate) fn producers(&self) -> &ProducerStates {
        &self.producers
    }

    pub(crate) fn producers_mut(&mut self) -> &mut ProducerStates {
        &mut self.producers
    }

    /// The tail cache's copy of `[from, to)` of the segment at `base`, if it is the active file
    /// and the cache holds the whole range.
    pub(crate) fn tail_cache_copy(&self, base: i64, from: u64, to: u64) -> Option<Vec<u8>> {
        self.active
            .as_ref()
            .filter(|a| a.base() == base)
            .and_then(|a| a.recent().copy_range(from, to))
    }

    /// Queues a roll to a new segment starting at the assigned end; returns its sequence number.
    pub(crate) fn push_roll(&mut self, now: i64) -> u64 {
        let new_base = self.queue.assigned();
        let (old_base, indexes) = self.segments.roll(new_base, now);
        self.producers
            .expire(now, producer_state::PRODUCER_ID_EXPIRATION_MS);
        let producers = self.producers.encode(new_base);
        self.queue.push_roll(old_base, indexes, producers)
    }
}

/// What a `PartitionLog` and its tasks share (as `Rc<Inner>`): the directory, the
/// configuration, the state and the notifiers its waits use.
pub(crate) struct Inner {
    dir: PathBuf,
    config: RefCell<LogConfig>,
    st: RefCell<State>,
    /// Woken on every write, roll, failure and close (appenders wait here).
    progress: Rc<Notify>,
    /// Woken when the durable offset advances, on failure and close (`wait_durable` waits here,
    /// so durability waiters are not woken by every write).
    synced: Rc<Notify>,
    /// Woken when new data becomes readable (the high watermark moved), on role changes and on
    /// close, for Fetch long-polls and `wait_high_watermark`.
    appended: Rc<Notify>,
    /// Woken on every completed write (the written end moved), for followers' fetches on a
    /// leader, which read up to it; and on close.
    written: Rc<Notify>,
    /// Woken when the writer or syncer task ends (a truncation waits for both to be gone).
    idle: Rc<Notify>,
}

impl Inner {
    pub(crate) fn new(dir: PathBuf, config: LogConfig, st: State) -> Self {
        Inner {
            dir,
            config: RefCell::new(config),
            st: RefCell::new(st),
            progress: Notify::new(),
            synced: Notify::new(),
            appended: Notify::new(),
            written: Notify::new(),
            idle: Notify::new(),
        }
    }

    /// The partition directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn config(&self) -> Ref<'_, LogConfig> {
        self.config.borrow()
    }

    pub(crate) fn set_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
    }

    /// The state, borrowed; never hold it across an `.await`.
    pub(crate) fn state(&self) -> Ref<'_, State> {
        self.st.borrow()
    }

    /// The state, borrowed mutably; never hold it across an `.await`.
    pub(crate) fn state_mut(&self) -> RefMut<'_, State> {
        self.st.borrow_mut()
    }

    /// Woken on every write, roll, failure and close.
    pub(crate) fn progress(&self) -> &Rc<Notify> {
        &self.progress
    }

    /// Woken when the durable offset advances, on failure and close.
    pub(crate) fn synced(&self) -> &Rc<Notify> {
        &self.synced
    }

    /// Woken when new data becomes readable, and on close.
    pub(crate) fn appended(&self) -> &Rc<Notify> {
        &self.appended
    }

    /// Woken on every completed write, and on close.
    pub(crate) fn written(&self) -> &Rc<Notify> {
        &self.written
    }

    /// Woken when the writer or syncer task ends.
    pub(crate) fn idle(&self) -> &Rc<Notify> {
        &self.idle
    }

    /// Wakes every waiter (a failure, or close).
    pub(crate) fn notify_all(&self) {
        self.progress.notify();
        self.synced.notify();
        self.appended.notify();
        self.written.notify();
        self.idle.notify();
    }

    /// Marks the log offline after an I/O error: every waiter gets `Offline`.
    pub(crate) fn fail(&self, e: &StorageError) {
        error!(dir = %self.dir.display(), error = %e, "partition log failed; refusing further appends");
        {
            let mut st = self.st.borrow_mut();
            if st.failed.is_none() {
                st.failed = Some(e.to_string());
            }
        }
        self.notify_all();
    }
}
