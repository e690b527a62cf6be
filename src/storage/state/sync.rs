//! The syncer's part of the state: what is durable, what is wanted durable, and the counters of
//! the flush policy. How group commit works: `syncer.rs`.

/// Group-commit syncs of one partition since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// `fdatasync` of the active segment itself.
    pub file_syncs: u64,
    /// Syncs done by a device flush through the flush anchor, shared with the shard's other
    /// partitions (`flush_anchor.rs`).
    pub anchor_syncs: u64,
}

/// Group commit's progress and requests for one partition.
///
/// Invariants:
/// - Every offset below `durable` is on stable storage: a sync (fdatasync or shared device
///   flush) that started after it was written has completed, or the roll that sealed its segment
///   synced it. `durable` never passes the written end and never moves back.
/// - `running` is true exactly while a sync task exists (at most one per partition, one sync in
///   flight); the task ends once nothing written waits to become durable (`requested < durable`
///   or everything written is durable).
/// - `requested`: the highest offset someone waits to see durable (-1: none); never moves back.
/// - `persisting` is true exactly while the background write of new index entries runs (at most
///   one); `timer_armed` exactly while a `flush.ms` timer task is pending (at most one).
/// - `unflushed`: messages written since the last sync started (`flush.messages`).
/// - `wanted`: someone asked this partition for durability (`wait_durable`, or a `flush.*`
///   policy). It never turns off, and it turns on the zero-fill ahead of writes.
pub(crate) struct SyncState {
    durable: i64,
    requested: i64,
    running: bool,
    persisting: bool,
    stats: SyncStats,
    unflushed: u64,
    timer_armed: bool,
    wanted: bool,
}

impl SyncState {
    /// A log whose offsets below `durable` are durable (all of them, after open).
    pub(crate) fn new(durable: i64, wanted: bool) -> Self {
        SyncState {
            durable,
            requested: -1,
            running: false,
            persisting: false,
            stats: SyncStats::default(),
            unflushed: 0,
            timer_armed: false,
            wanted,
        }
    }

    /// Offsets below this are durable.
    pub(crate) fn durable(&self) -> i64 {
        self.durable
    }

    pub(crate) fn stats(&self) -> SyncStats {
        self.stats
    }

    /// Whether the partition was ever asked for durability (the zero-fill runs only then).
    pub(crate) fn wanted(&self) -> bool {
        self.wanted
    }

    /// Notes that someone waits for durability on this partition.
    pub(crate) fn want(&mut self) {
        self.wanted = true;
    }

    /// Asks for every offset <= `offset` to become durable.
    pub(crate) fn request(&mut self, offset: i64) {
        if self.requested < offset {
            self.requested = offset;
        }
    }

    /// Marks the sync task as started; false if one already runs.
    pub(crate) fn try_start(&mut self) -> bool {
        !std::mem::replace(&mut self.running, true)
    }

    /// Whether the sync task has nothing to do with `hw` the written end.
    pub(crate) fn is_idle(&self, hw: i64) -> bool {
        self.requested < self.durable || hw <= self.durable
    }

    /// Whether a sync task exists.
    pub(crate) fn running(&self) -> bool {
        self.running
    }

    /// Marks the sync task as ended.
    pub(crate) fn stop(&mut self) {
        self.running = false;
    }

    /// A sync starts: it covers every message written so far.
    pub(crate) fn begin(&mut self) {
        self.unflushed = 0;
    }

    /// Counts a completed sync, by kind.
    pub(crate) fn count(&mut self, device_flush: bool) {
        if device_flush {
            self.stats.anchor_syncs += 1;
        } else {
            self.stats.file_syncs += 1;
        }
    }

    /// Offsets below `offset` are now durable.
    pub(crate) fn advance(&mut self, offset: i64) {
        if self.durable < offset {
            self.durable = offset;
        }
    }

    /// Counts `messages` written; true once `flush_messages` have been written since the last
    /// sync started.
    pub(crate) fn note_written(&mut self, messages: u64, flush_messages: u64) -> bool {
        self.unflushed += messages;
        self.unflushed >= flush_messages
    }

    /// Marks the `flush.ms` timer as armed; false if it already was.
    pub(crate) fn try_arm_timer(&mut self) -> bool {
        !std::mem::replace(&mut self.timer_armed, true)
    }

    /// The `flush.ms` timer fired.
    pub(crate) fn timer_fired(&mut self) {
        self.timer_armed = false;
    }

    /// Marks the index persist as started; false if one already runs.
    pub(crate) fn try_start_persist(&mut self) -> bool {
        !std::mem::replace(&mut self.persisting, true)
    }

    pub(crate) fn persist_done(&mut self) {
        self.persisting = false;
    }

    pub(crate) fn persisting(&self) -> bool {
        self.persisting
    }
}

/// Which of the active file's data writes changed its metadata, and which of those changes an
/// fdatasync committed: what decides whether a sync may be a device flush (`flush_anchor.rs`).
/// One per active file.
///
/// Invariants: `made` counts completed data writes that may have changed the file's metadata
/// (they reached beyond the committed zero-filled region, so they allocated blocks or grew the
/// size), starting at 1 for a file this process has not fdatasynced yet. `committed` is `made`
/// as it was when the newest completed fdatasync of the file started, so `committed <= made`, and
/// equal means every completed data write sits in blocks whose metadata is committed: a device
/// flush makes it durable.
pub(crate) struct MetaChanges {
    made: u64,
    committed: u64,
}

impl MetaChanges {
    pub(crate) fn new() -> Self {
        MetaChanges {
            made: 1,
            committed: 0,
        }
    }

    /// Counts a completed data write that may have changed the metadata.
    pub(crate) fn note(&mut self) {
        self.made += 1;
    }

    /// The count to hand to [`MetaChanges::committed_through`] once an fdatasync starting now
    /// has completed.
    pub(crate) fn made(&self) -> u64 {
        self.made
    }

    /// An fdatasync that started when [`MetaChanges::made`] was `made` has completed.
    pub(crate) fn committed_through(&mut self, made: u64) {
        self.committed = self.committed.max(made);
    }

    /// Whether every completed data write's metadata is committed.
    pub(crate) fn all_committed(&self) -> bool {
        self.made == self.committed
    }
}
