//! The partition log's mutable state, shared by `PartitionLog` (`log.rs`), its writer
//! (`appender.rs`), its reads (`read.rs`) and retention (`retention.rs`). It lives in a module of
//! its own so that the log and the tasks it spawns depend on it, not on each other.
//!
//! Everything mutable sits in one `RefCell<State>` that is never borrowed across an `.await`.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;

use tracing::error;

use super::config::LogConfig;
use super::error::StorageError;
use super::notify::Notify;
use super::producer_state::{self, ProducerStates};
use super::segment::Segment;

mod fill;
mod sync;
mod write;

pub(crate) use fill::ZeroFill;
pub use sync::SyncStats;
pub(crate) use sync::{MetaChanges, SyncState};
pub(crate) use write::{ActiveFile, Op, WriteQueue};

/// Sealed segments whose indexes and read descriptor stay loaded (per partition).
pub(crate) const WARM_SEALED_SEGMENTS: usize = 2;

pub(crate) struct State {
    pub segments: BTreeMap<i64, Segment>,
    pub active: Option<ActiveFile>,
    pub log_start: i64,
    /// The writer's queue, offsets and positions (`appender.rs`).
    pub queue: WriteQueue,
    /// Group commit: what is durable, what is wanted durable (`syncer.rs`).
    pub sync: SyncState,
    pub failed: Option<String>,
    pub closed: bool,
    /// Sealed segments with loaded indexes/descriptor, least recently used first.
    pub warm: VecDeque<i64>,
    /// Idempotent producers' epochs and recent sequences (`producer_state`).
    pub producers: ProducerStates,
}

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub config: RefCell<LogConfig>,
    pub st: RefCell<State>,
    /// Woken on every write, roll, failure and close (appenders wait here).
    pub progress: Rc<Notify>,
    /// Woken when the durable offset advances, on failure and close (`wait_durable` waits here,
    /// so durability waiters are not woken by every write).
    pub synced: Rc<Notify>,
    /// Woken when new data becomes readable (and on close), for Fetch long-polls.
    pub appended: Rc<Notify>,
}
impl State {
    pub fn check_usable(&self) -> Result<(), StorageError> {
        if let Some(f) = &self.failed {
            return Err(StorageError::Offline(f.clone()));
        }
        if self.closed {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    pub fn active_segment_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    pub fn active_segment(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// Queues a roll to a new segment starting at the assigned end.
    pub fn push_roll(&mut self, now: i64) -> u64 {
        let new_base = self.queue.assigned();
        let old = self.active_segment_mut();
        old.seal_time_index();
        if let Some(i) = old.index.as_mut() {
            i.shrink();
        }
        if let Some(t) = old.time_index.as_mut() {
            t.shrink();
        }
        let old_base = old.base_offset;
        let index = old.index.as_ref().map(|i| i.encode()).unwrap_or_default();
        let time_index = old
            .time_index
            .as_ref()
            .map(|t| t.encode())
            .unwrap_or_default();
        self.segments
            .insert(new_base, Segment::new_empty(new_base, now));
        self.warm.push_back(old_base);
        self.evict_cold();
        self.producers
            .expire(now, producer_state::PRODUCER_ID_EXPIRATION_MS);
        let producers = self.producers.encode(new_base);
        self.queue.push_roll(old_base, index, time_index, producers)
    }

    /// Drops indexes and descriptors of sealed segments beyond the warm set.
    pub fn evict_cold(&mut self) {
        let active_base = self.active_segment().base_offset;
        while self.warm.len() > WARM_SEALED_SEGMENTS {
            let Some(b) = self.warm.pop_front() else {
                break;
            };
            if b == active_base {
                continue;
            }
            if let Some(s) = self.segments.get_mut(&b) {
                s.index = None;
                s.time_index = None;
                s.reader = None;
            }
        }
    }

    pub fn touch_warm(&mut self, base: i64) {
        if let Some(i) = self.warm.iter().position(|&b| b == base) {
            self.warm.remove(i);
        }
        self.warm.push_back(base);
        self.evict_cold();
    }
}

impl Inner {
    /// Marks the log offline after an I/O error: every waiter gets `Offline`.
    pub fn fail(&self, e: &StorageError) {
        error!(dir = %self.dir.display(), error = %e, "partition log failed; refusing further appends");
        {
            let mut st = self.st.borrow_mut();
            if st.failed.is_none() {
                st.failed = Some(e.to_string());
            }
        }
        self.progress.notify();
        self.synced.notify();
        self.appended.notify();
    }
}
