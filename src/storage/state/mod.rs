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
/// - `log_start <= durable <= hw <= assigned` (log start: `SegmentMap`; durable: `SyncState`;
///   high watermark and assigned: `WriteQueue`).
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
        }
    }

    /// `Offline` if the log failed, `Closed` if it was closed.
    pub(crate) fn check_usable(&self) -> Result<(), StorageError> {
        self.check_online()?;
        if self.closed {
            return Err(StorageError::Closed);
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

    /// One past the last written offset: the high watermark (single replica).
    pub(crate) fn hw(&self) -> i64 {
        self.queue.high_watermark()
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
    /// Woken when new data becomes readable (and on close), for Fetch long-polls.
    appended: Rc<Notify>,
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

    /// Wakes every waiter (a failure, or close).
    pub(crate) fn notify_all(&self) {
        self.progress.notify();
        self.synced.notify();
        self.appended.notify();
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
